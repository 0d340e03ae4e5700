-- Management over the relay API: revoking registration tokens, rotating an agent's permanent
-- token: the new token's hash waits in next_token_hash until the agent confirms it stored it.

ALTER TABLE registration_tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE agents ADD COLUMN next_token_hash TEXT;

-- Admin changes name what they changed: the user or token (target) and how (detail, never a secret).
ALTER TABLE audit_log ADD COLUMN target TEXT;
ALTER TABLE audit_log ADD COLUMN detail TEXT;
