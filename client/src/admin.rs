//! The relay's administration API, typed: users, device sessions, registration tokens, agent
//! revocation and rotation, and the audit log. The relay checks the role (admin); these only
//! ask, with the protocol's own request and answer types, so the CLI and the app share them.

use zedops_protocol::{
    AgentRevokeRequest, AgentRevoked, AgentRotateRequest, AgentRotated, AgentUpdateRequest,
    AgentUpdated, AuditListRequest, AuditListResponse, ClientRequest, Role, SessionListRequest,
    SessionListResponse, SessionRevokeRequest, SessionRevoked, TokenCreateRequest, TokenCreated,
    TokenListRequest, TokenListResponse, TokenRevokeRequest, TokenRevoked, UserCreateRequest,
    UserListRequest, UserListResponse, UserPasswordRequest, UserPasswordSet, UserSummary,
    UserUpdateRequest,
};

use crate::client::{Client, REQUEST_GRACE};

/// How long the relay lets an agent download, check and install a build.
pub const AGENT_UPDATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(330);
use crate::error::ClientError;

impl Client {
    /// Revokes an agent (id or name): its connection closes and its token is refused.
    pub async fn revoke_agent(&self, agent: &str) -> Result<AgentRevoked, ClientError> {
        let request = AgentRevokeRequest {
            agent_id: agent.into(),
        };
        self.quick_request(ClientRequest::AgentRevoke(request))
            .await
    }

    /// Gives a connected agent a new permanent token; the old one is refused once it is stored.
    pub async fn rotate_agent(&self, agent: &str) -> Result<AgentRotated, ClientError> {
        let request = AgentRotateRequest {
            agent_id: agent.into(),
        };
        // The agent writes a file before it answers: an operation's time.
        self.operation_request(ClientRequest::AgentRotate(request))
            .await
    }

    /// Has an agent install the signed build the relay serves for it (`version`: refused
    /// unless the relay serves exactly that). Answers once the agent verified and installed it
    /// and is restarting; whether it came back shows in [`Client::agents`].
    pub async fn update_agent(
        &self,
        agent: &str,
        version: Option<&str>,
        allow_downgrade: bool,
    ) -> Result<AgentUpdated, ClientError> {
        let request = AgentUpdateRequest {
            agent_id: agent.into(),
            version: version.map(str::to_string),
            allow_downgrade,
        };
        // The agent downloads and checks a few megabytes first: up to the relay's limit.
        self.request(
            ClientRequest::AgentUpdate(request),
            AGENT_UPDATE_TIMEOUT + REQUEST_GRACE,
        )
        .await
    }

    /// Every device session, live or not.
    pub async fn sessions(&self) -> Result<SessionListResponse, ClientError> {
        self.quick_request(ClientRequest::SessionList(SessionListRequest {}))
            .await
    }

    /// Ends a device session; its connections close.
    pub async fn revoke_session(&self, id: &str) -> Result<SessionRevoked, ClientError> {
        let request = SessionRevokeRequest {
            session_id: id.into(),
        };
        self.quick_request(ClientRequest::SessionRevoke(request))
            .await
    }

    /// A single-use registration token valid for `ttl_secs` (the relay's default when `None`).
    pub async fn create_token(&self, ttl_secs: Option<u64>) -> Result<TokenCreated, ClientError> {
        let request = TokenCreateRequest { ttl_secs };
        self.quick_request(ClientRequest::TokenCreate(request))
            .await
    }

    /// Registration tokens by id and state (never the tokens themselves).
    pub async fn tokens(&self) -> Result<TokenListResponse, ClientError> {
        self.quick_request(ClientRequest::TokenList(TokenListRequest {}))
            .await
    }

    /// Revokes an unused registration token.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenRevoked, ClientError> {
        let request = TokenRevokeRequest {
            token_id: id.to_string(),
        };
        self.quick_request(ClientRequest::TokenRevoke(request))
            .await
    }

    /// The newest audit entries matching `query` (agent, since, limit).
    pub async fn audit(&self, query: &AuditListRequest) -> Result<AuditListResponse, ClientError> {
        self.quick_request(ClientRequest::AuditList(query.clone()))
            .await
    }

    /// Every user with role, state and live sessions.
    pub async fn users(&self) -> Result<UserListResponse, ClientError> {
        self.quick_request(ClientRequest::UserList(UserListRequest {}))
            .await
    }

    /// Creates a user. The password travels once over this authenticated connection; the relay
    /// keeps only its hash.
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password: String,
    ) -> Result<UserSummary, ClientError> {
        let request = UserCreateRequest {
            name: name.to_string(),
            role,
            password,
        };
        // Hashing the password is deliberately slow.
        self.operation_request(ClientRequest::UserCreate(request))
            .await
    }

    /// Gives a user a new password; their other device sessions end.
    pub async fn set_password(
        &self,
        name: &str,
        password: String,
    ) -> Result<UserPasswordSet, ClientError> {
        let request = UserPasswordRequest {
            name: name.to_string(),
            password,
        };
        self.operation_request(ClientRequest::UserPassword(request))
            .await
    }

    /// Changes a user's role and/or disables or enables them.
    pub async fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<UserSummary, ClientError> {
        let request = UserUpdateRequest {
            name: name.to_string(),
            role,
            disabled,
        };
        self.quick_request(ClientRequest::UserUpdate(request)).await
    }
}
