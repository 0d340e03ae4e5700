//! Payloads of the administration subjects (admin role only): revoking agents and device
//! sessions, creating registration tokens, reading the audit log, managing users, listing and
//! revoking registration tokens, and rotating an agent's permanent token.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::{AgentId, AgentRef, SessionId};
use crate::limits::{MAX_AGENT_REF_LEN, MAX_INFO_LEN, MAX_PASSWORD_LEN, MAX_TOKEN_LEN, check_len};
use crate::payload::{Role, Validate, is_valid_name};

/// The most audit entries one `audit.list` answer carries.
pub const MAX_AUDIT_ENTRIES: u32 = 1000;
/// The longest registration token lifetime an admin may ask for (30 days).
pub const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

fn check_ref(field: &'static str, value: &str) -> Result<(), ProtocolError> {
    check_len(field, value, MAX_AGENT_REF_LEN)
}

/// `agent.revoke`: revoke an agent (id or name); its connection closes and its token stops working.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRevokeRequest {
    pub agent_id: AgentRef,
}

impl Validate for AgentRevokeRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_ref("agentId", &self.agent_id)
    }
}

/// `agent.revoke` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRevoked {
    pub agent_id: AgentId,
    pub name: String,
}

impl Validate for AgentRevoked {}

/// `session.list` request: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionListRequest {}

impl Validate for SessionListRequest {}

/// One live device session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionSummary {
    pub id: String,
    pub user: String,
    /// The label given at login (the device's host name).
    pub device: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// True for the session making this request.
    pub current: bool,
}

/// `session.list` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionListResponse {
    pub sessions: Vec<SessionSummary>,
    pub count: usize,
}

impl Validate for SessionListResponse {}

/// `session.revoke`: end a device session; its connections close.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRevokeRequest {
    pub session_id: SessionId,
}

impl Validate for SessionRevokeRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_ref("sessionId", &self.session_id)
    }
}

/// `session.revoke` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRevoked {
    pub session_id: SessionId,
}

impl Validate for SessionRevoked {}

/// `token.create`: a single-use registration token for enrolling a server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreateRequest {
    /// Lifetime in seconds; 15 minutes when absent, at most 30 days.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Why a registration token lifetime cannot be asked for, in the words the command lines use:
/// under a second, or over [`MAX_TOKEN_TTL_SECS`].
pub fn check_token_ttl(ttl: std::time::Duration) -> Result<(), &'static str> {
    if ttl < std::time::Duration::from_secs(1) {
        Err("a token must stay valid for at least 1s")
    } else if ttl > std::time::Duration::from_secs(MAX_TOKEN_TTL_SECS) {
        Err("a token may stay valid for at most 30 days (30d)")
    } else {
        Ok(())
    }
}

impl Validate for TokenCreateRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        match self.ttl_secs {
            Some(0) => Err(ProtocolError::invalid("ttlSecs", "must be at least 1")),
            Some(t) if t > MAX_TOKEN_TTL_SECS => {
                Err(ProtocolError::invalid("ttlSecs", "must be at most 30 days"))
            }
            _ => Ok(()),
        }
    }
}

/// `token.create` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreated {
    /// The token's id, as `token.list` shows it and `token.revoke` takes it.
    pub id: String,
    pub token: String,
    pub expires_at: String,
}

impl Validate for TokenCreated {}

/// `audit.list`: the newest audit entries, optionally for one agent and since a time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditListRequest {
    /// Agent id or name.
    #[serde(default)]
    pub agent_id: Option<AgentRef>,
    /// RFC 3339 time; only entries at or after it.
    #[serde(default)]
    pub since: Option<String>,
    /// At most this many entries (default and maximum 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl Validate for AuditListRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        if let Some(agent) = &self.agent_id {
            check_ref("agentId", agent)?;
        }
        if self.since.as_ref().is_some_and(|s| s.len() > MAX_INFO_LEN) {
            return Err(ProtocolError::invalid("since", "too long"));
        }
        if self.limit.is_some_and(|l| l == 0 || l > MAX_AUDIT_ENTRIES) {
            return Err(ProtocolError::invalid("limit", "must be 1 to 1000"));
        }
        Ok(())
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditRecord {
    pub id: i64,
    pub at: String,
    pub user: Option<String>,
    pub session_id: Option<SessionId>,
    pub agent_id: Option<AgentRef>,
    pub container: Option<String>,
    pub operation: String,
    /// `ok`, `failed` or `forbidden`.
    pub result: String,
    pub error_code: Option<String>,
    /// What an admin change applied to: a user name or a registration token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How, in words (`role operator -> viewer`); never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `audit.list` answer, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditListResponse {
    pub entries: Vec<AuditRecord>,
    pub count: usize,
}

impl Validate for AuditListResponse {}

// ---------------------------------------------------------------------------------------------
// Users, registration tokens, agent token rotation
// ---------------------------------------------------------------------------------------------

fn check_user(value: &str) -> Result<(), ProtocolError> {
    if !is_valid_name(value) {
        return Err(ProtocolError::invalid(
            "name",
            "must be 1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -",
        ));
    }
    Ok(())
}

/// `user.list` request: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UserListRequest {}

impl Validate for UserListRequest {}

/// One relay user. Never carries the password or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSummary {
    pub name: String,
    pub role: Role,
    /// A disabled user cannot log in and has no live sessions.
    pub disabled: bool,
    pub created_at: String,
    /// Live (not revoked) device sessions.
    pub sessions: u32,
}

impl Validate for UserSummary {}

/// `user.list` answer, by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserListResponse {
    pub users: Vec<UserSummary>,
    pub count: usize,
}

impl Validate for UserListResponse {}

/// A new password: 1 to [`MAX_PASSWORD_LEN`] bytes.
fn check_password(password: &str) -> Result<(), ProtocolError> {
    check_len("password", password, MAX_PASSWORD_LEN)
}

/// `user.create`: a new user with a password (sent once, over the authenticated connection;
/// the relay keeps only its argon2id hash).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserCreateRequest {
    pub name: String,
    pub role: Role,
    pub password: String,
}

impl std::fmt::Debug for UserCreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCreateRequest")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Validate for UserCreateRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_user(&self.name)?;
        check_password(&self.password)
    }
}

/// `user.update`: change a user's role and/or disable or enable it. At least one of `role` and
/// `disabled` is given. Disabling revokes every device session of the user; a role change
/// closes the user's live connections so they authenticate again with the new role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserUpdateRequest {
    pub name: String,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

impl Validate for UserUpdateRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_user(&self.name)?;
        if self.role.is_none() && self.disabled.is_none() {
            return Err(ProtocolError::invalid(
                "role",
                "give a role, disabled, or both",
            ));
        }
        Ok(())
    }
}

/// `user.password`: a new password for a user (sent once, over the authenticated connection;
/// the relay keeps only its argon2id hash). The user's device sessions end, except the
/// sender's own when admins change their own password.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPasswordRequest {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for UserPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPasswordRequest")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Validate for UserPasswordRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_user(&self.name)?;
        check_password(&self.password)
    }
}

/// `user.password` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPasswordSet {
    pub name: String,
    /// Device sessions of the user that were ended (their connections closed).
    pub sessions_ended: u32,
}

impl Validate for UserPasswordSet {}

/// `agent.forget` request from an authenticated agent: no fields (the agent is the
/// connection's own; it cannot name another).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentForgetRequest {}

impl Validate for AgentForgetRequest {}

/// `agent.forget` answer: the agent is revoked and its name may be enrolled again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentForgotten {
    pub agent_id: AgentId,
    pub name: String,
}

impl Validate for AgentForgotten {}

/// `token.list` request: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenListRequest {}

impl Validate for TokenListRequest {}

/// One registration token, as `token.list` shows it: never the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSummary {
    pub id: String,
    pub created_at: String,
    pub expires_at: String,
    /// `valid` (may still enrol an agent), `used`, `expired` or `revoked`.
    pub state: String,
    pub used_at: Option<String>,
    /// The id of the agent it enrolled.
    pub used_by_agent: Option<String>,
    pub revoked_at: Option<String>,
}

impl Validate for TokenSummary {}

/// `token.list` answer, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenListResponse {
    pub tokens: Vec<TokenSummary>,
    pub count: usize,
}

impl Validate for TokenListResponse {}

/// `token.revoke`: an unused registration token can no longer enrol an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRevokeRequest {
    pub token_id: String,
}

impl Validate for TokenRevokeRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_ref("tokenId", &self.token_id)
    }
}

/// `token.revoke` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRevoked {
    pub token_id: String,
}

impl Validate for TokenRevoked {}

/// `agent.rotate`: give a connected agent (id or name) a new permanent token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRotateRequest {
    pub agent_id: AgentRef,
}

impl Validate for AgentRotateRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_ref("agentId", &self.agent_id)
    }
}

/// `agent.rotate` answer: the agent stored its new token and the old one is refused from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRotated {
    pub agent_id: AgentId,
    pub name: String,
}

impl Validate for AgentRotated {}

/// `agent.token` (relay → agent): the new permanent token to store before answering.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentToken {
    pub token: String,
}

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentToken")
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Validate for AgentToken {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("token", &self.token, MAX_TOKEN_LEN)
    }
}

/// The agent's answer to `agent.token`: the token is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentTokenStored {
    pub agent_id: AgentId,
}

impl Validate for AgentTokenStored {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_requests_are_checked_and_passwords_not_debug_printed() {
        let create: UserCreateRequest =
            serde_json::from_str(r#"{"name":"bob","role":"viewer","password":"hunter2"}"#).unwrap();
        assert!(create.validate().is_ok());
        assert!(!format!("{create:?}").contains("hunter2"));
        let bad = UserCreateRequest {
            name: "bob; rm".into(),
            ..create.clone()
        };
        assert!(bad.validate().is_err());
        let empty = UserCreateRequest {
            password: String::new(),
            ..create
        };
        assert!(empty.validate().is_err());
        let nothing = UserUpdateRequest {
            name: "bob".into(),
            ..Default::default()
        };
        assert!(nothing.validate().is_err());
        assert!(
            serde_json::from_str::<UserUpdateRequest>(r#"{"name":"bob","role":"root"}"#).is_err()
        );
        let token = AgentToken {
            token: "za_s3cret".into(),
        };
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
