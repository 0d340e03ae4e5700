//! Payloads of the administration subjects (admin role only): revoking agents and device
//! sessions, creating registration tokens, and reading the audit log.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::limits::{MAX_AGENT_REF_LEN, MAX_INFO_LEN};
use crate::payload::Validate;

/// The most audit entries one `audit.list` answer carries.
pub const MAX_AUDIT_ENTRIES: u32 = 1000;
/// The longest registration token lifetime an admin may ask for (30 days).
pub const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

fn check_ref(field: &'static str, value: &str) -> Result<(), ProtocolError> {
    if value.is_empty() || value.len() > MAX_AGENT_REF_LEN {
        return Err(ProtocolError::invalid(field, "must be 1 to 64 bytes"));
    }
    Ok(())
}

/// `agent.revoke`: revoke an agent (id or name); its connection closes and its token stops working.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRevokeRequest {
    pub agent_id: String,
}

impl Validate for AgentRevokeRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_ref("agentId", &self.agent_id)
    }
}

/// `agent.revoke` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRevoked {
    pub agent_id: String,
    pub name: String,
}

impl Validate for AgentRevoked {}

/// `session.list` request: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionListRequest {}

impl Validate for SessionListRequest {}

/// One live device session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionListResponse {
    pub sessions: Vec<SessionSummary>,
    pub count: usize,
}

impl Validate for SessionListResponse {}

/// `session.revoke`: end a device session; its connections close.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRevokeRequest {
    pub session_id: String,
}

impl Validate for SessionRevokeRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_ref("sessionId", &self.session_id)
    }
}

/// `session.revoke` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRevoked {
    pub session_id: String,
}

impl Validate for SessionRevoked {}

/// `token.create`: a single-use registration token for enrolling a server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreateRequest {
    /// Lifetime in seconds; 15 minutes when absent, at most 30 days.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreated {
    pub token: String,
    pub expires_at: String,
}

impl Validate for TokenCreated {}

/// `audit.list`: the newest audit entries, optionally for one agent and since a time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditListRequest {
    /// Agent id or name.
    #[serde(default)]
    pub agent_id: Option<String>,
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditRecord {
    pub id: i64,
    pub at: String,
    pub user: Option<String>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub container: Option<String>,
    pub operation: String,
    /// `ok`, `failed` or `forbidden`.
    pub result: String,
    pub error_code: Option<String>,
}

/// `audit.list` answer, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditListResponse {
    pub entries: Vec<AuditRecord>,
    pub count: usize,
}

impl Validate for AuditListResponse {}
