-- ZedOps relay: users, device sessions, agents, registration tokens and the audit log.
-- Secrets are stored only as hashes: argon2id for passwords, SHA-256 for random tokens.
-- Times are Unix seconds.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE device_sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    device       TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,
    last_seen      INTEGER,
    version        TEXT,
    docker_version TEXT,
    engine_id      TEXT,
    os             TEXT,
    arch           TEXT,
    hostname       TEXT,
    revoked_at     INTEGER
);

-- A name belongs to one live agent; a revoked agent's name may be enrolled again.
CREATE UNIQUE INDEX agents_live_name ON agents (name) WHERE revoked_at IS NULL;

CREATE TABLE registration_tokens (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    used_by_agent TEXT
);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    user_name  TEXT,
    session_id TEXT,
    agent_id   TEXT,
    container  TEXT,
    operation  TEXT NOT NULL,
    result     TEXT NOT NULL,
    error_code TEXT
);

CREATE INDEX audit_log_at ON audit_log (at);
