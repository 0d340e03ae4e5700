//! The messages of each direction as enums: every subject a peer may receive is one variant
//! carrying its payload type, so a receiver decodes a [`Frame`] once and `match`es, and the
//! compiler points at every place a new subject must be handled.
//!
//! | enum              | direction                | what                                       |
//! |-------------------|--------------------------|--------------------------------------------|
//! | [`ClientRequest`] | client → relay           | requests, each with the role it [`Need`]s  |
//! | [`AgentRequest`]  | relay → agent            | requests (and `stream.cancel`, `error`)    |
//! | [`AgentPush`]     | agent → relay            | heartbeats, live state, `agent.forget`     |
//! | [`ClientPush`]    | relay → client           | agent status, live state, resync, `error`  |
//! | [`AgentHello`]    | agent → relay, first     | `agent.register` or `agent.auth`           |
//!
//! `client.hello` and the welcomes are the one possible first frame of their connection and are
//! decoded on their own; answers go to reply inboxes and
//! are typed by the request that asked. Each enum comes with a field-less `…Kind` twin (its
//! subject without a payload), so a receiver can decide on a subject before decoding the
//! payload, e.g. the relay refuses a request its role may not send before looking at its data.
//!
//! Payloads of a few hundred bytes (a container event carries the container) are boxed, so
//! every message stays small to move.
//!
//! To add a subject: its constant in [`crate::subject`], its payload type, and one line in the
//! `messages!` list of its direction below (for a client request also its [`Need`]). The
//! receivers' `match`es then fail to compile until they handle it.

use serde::{Deserialize, Serialize};

use crate::admin::*;
use crate::console::*;
use crate::container_update::*;
use crate::deploy::*;
use crate::envelope::{Envelope, Frame};
use crate::error::{ErrorReply, ProtocolError};
use crate::events::*;
use crate::files::*;
use crate::payload::*;
use crate::registry::*;
use crate::stream::*;
use crate::subject;
use crate::templates::*;
use crate::update::*;
use crate::update_check::*;

/// What a client request needs of the sender's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// Any signed-in user (reading state).
    Read,
    /// Operators and admins (changing containers).
    Operate,
    /// Admins only (users, tokens, agents).
    Admin,
}

/// Declares one direction's message enum and its `…Kind` twin from one list of
/// `Variant(Payload) = SUBJECT` lines; the `requests` form takes a [`Need`] on each line too.
macro_rules! messages {
    (
        $(#[doc = $doc:expr])*
        requests $name:ident, $kind:ident {
            $($(#[doc = $vdoc:expr])* $variant:ident($payload:ty) = $subject:path => $need:ident,)*
        }
    ) => {
        messages! {
            $(#[doc = $doc])*
            messages $name, $kind {
                $($(#[doc = $vdoc])* $variant($payload) = $subject,)*
            }
        }

        impl $kind {
            /// The role this request needs.
            pub const fn need(self) -> Need {
                match self {
                    $(Self::$variant => Need::$need,)*
                }
            }
        }

        impl $name {
            /// The role this request needs.
            pub const fn need(&self) -> Need {
                self.kind().need()
            }
        }
    };
    (
        $(#[doc = $doc:expr])*
        messages $name:ident, $kind:ident {
            $($(#[doc = $vdoc:expr])* $variant:ident($payload:ty) = $subject:path,)*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone)]
        pub enum $name {
            $($(#[doc = $vdoc])* $variant($payload),)*
        }

        #[doc = concat!("The subject of a [`", stringify!($name), "`], without its payload.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $kind {
            $($(#[doc = $vdoc])* $variant,)*
        }

        impl $kind {
            /// Every subject of this direction, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The subject's wire name.
            pub const fn subject(self) -> &'static str {
                match self {
                    $(Self::$variant => $subject,)*
                }
            }

            /// The kind a subject names, or `None` when this direction has no such subject.
            pub fn from_subject(subject: &str) -> Option<Self> {
                match subject {
                    $($subject => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// Decodes `frame`'s data strictly (unknown fields refused) as this kind's payload,
            /// whatever the frame's subject says.
            pub fn decode(self, frame: &Frame) -> Result<$name, ProtocolError> {
                match self {
                    $(Self::$variant => frame.payload().map($name::$variant),)*
                }
            }
        }

        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.subject())
            }
        }

        impl $name {
            /// Which subject this is.
            pub const fn kind(&self) -> $kind {
                match self {
                    $(Self::$variant(_) => $kind::$variant,)*
                }
            }

            /// The subject's wire name.
            pub const fn subject(&self) -> &'static str {
                self.kind().subject()
            }

            /// Decodes a frame of this direction: its subject must be one of this enum's
            /// ([`ProtocolError::UnknownSubject`] otherwise), its data that subject's payload.
            pub fn decode(frame: &Frame) -> Result<Self, ProtocolError> {
                $kind::from_subject(&frame.subject)
                    .ok_or_else(|| ProtocolError::UnknownSubject(frame.subject.clone()))?
                    .decode(frame)
            }

            /// The frame's JSON text, with `reply` as its inbox when it expects an answer.
            pub fn to_frame(&self, reply: Option<&str>) -> String {
                match self {
                    $(Self::$variant(data) => Envelope {
                        subject: $subject,
                        reply,
                        data,
                    }
                    .to_json(),)*
                }
            }
        }
    };
}

messages! {
    /// A request a client (the app or the CLI) sends the relay. Every one gets an answer on its
    /// reply inbox; the relay answers some itself and forwards the others to an agent.
    requests ClientRequest, ClientRequestKind {
        /// `agent.list`
        AgentList(AgentListRequest) = subject::AGENT_LIST => Read,
        /// `container.list`, forwarded to the agent.
        ContainerList(ContainerListRequest) = subject::CONTAINER_LIST => Read,
        /// `container.inspect`, forwarded to the agent.
        ContainerInspect(ContainerActionRequest) = subject::CONTAINER_INSPECT => Read,
        /// `container.logs`, forwarded to the agent; a streamed answer.
        ContainerLogs(LogsRequest) = subject::CONTAINER_LOGS => Read,
        /// `container.stats`, forwarded to the agent; one answer or a stream.
        ContainerStats(StatsRequest) = subject::CONTAINER_STATS => Read,
        /// `stream.cancel` of one of this connection's streams.
        StreamCancel(StreamCancel) = subject::STREAM_CANCEL => Read,
        /// `event.subscribe`: which agents' live state this connection receives.
        EventSubscribe(EventSubscribe) = subject::EVENT_SUBSCRIBE => Read,
        /// `container.start`, forwarded to the agent and audited.
        ContainerStart(ContainerActionRequest) = subject::CONTAINER_START => Operate,
        /// `container.stop`, forwarded to the agent and audited.
        ContainerStop(ContainerActionRequest) = subject::CONTAINER_STOP => Operate,
        /// `container.restart`, forwarded to the agent and audited.
        ContainerRestart(ContainerActionRequest) = subject::CONTAINER_RESTART => Operate,
        /// `agent.revoke`
        AgentRevoke(AgentRevokeRequest) = subject::AGENT_REVOKE => Admin,
        /// `agent.rotate`: a new permanent token for a connected agent.
        AgentRotate(AgentRotateRequest) = subject::AGENT_ROTATE => Admin,
        /// `agent.update`: install the relay's signed agent build on an agent (audited).
        AgentUpdate(AgentUpdateRequest) = subject::AGENT_UPDATE => Admin,
        /// `session.list`
        SessionList(SessionListRequest) = subject::SESSION_LIST => Admin,
        /// `session.revoke`
        SessionRevoke(SessionRevokeRequest) = subject::SESSION_REVOKE => Admin,
        /// `token.create`: a registration token.
        TokenCreate(TokenCreateRequest) = subject::TOKEN_CREATE => Admin,
        /// `token.list`
        TokenList(TokenListRequest) = subject::TOKEN_LIST => Admin,
        /// `token.revoke`
        TokenRevoke(TokenRevokeRequest) = subject::TOKEN_REVOKE => Admin,
        /// `audit.list`
        AuditList(AuditListRequest) = subject::AUDIT_LIST => Admin,
        /// `user.list`
        UserList(UserListRequest) = subject::USER_LIST => Admin,
        /// `user.create`
        UserCreate(UserCreateRequest) = subject::USER_CREATE => Admin,
        /// `user.update`: role, disabled.
        UserUpdate(UserUpdateRequest) = subject::USER_UPDATE => Admin,
        /// `user.password`
        UserPassword(UserPasswordRequest) = subject::USER_PASSWORD => Admin,
        /// `container.deploy`: a template resolved at the relay, created by the agent; a
        /// streamed answer (pull progress, then the container).
        ContainerDeploy(DeployRequest) = subject::CONTAINER_DEPLOY => Operate,
        /// `container.remove`, forwarded to the agent and audited.
        ContainerRemove(ContainerRemoveRequest) = subject::CONTAINER_REMOVE => Operate,
        /// `image.list`, forwarded to the agent.
        ImageList(ImageListRequest) = subject::IMAGE_LIST => Read,
        /// `image.pull`, forwarded to the agent and audited; a streamed answer.
        ImagePull(ImagePullRequest) = subject::IMAGE_PULL => Operate,
        /// `image.remove`, forwarded to the agent and audited.
        ImageRemove(ImageRemoveRequest) = subject::IMAGE_REMOVE => Operate,
        /// `template.list`
        TemplateList(TemplateListRequest) = subject::TEMPLATE_LIST => Read,
        /// `template.show`
        TemplateShow(TemplateNameRequest) = subject::TEMPLATE_SHOW => Read,
        /// `template.add`
        TemplateAdd(Box<TemplateSaveRequest>) = subject::TEMPLATE_ADD => Admin,
        /// `template.update`
        TemplateUpdate(Box<TemplateSaveRequest>) = subject::TEMPLATE_UPDATE => Admin,
        /// `template.remove`
        TemplateRemove(TemplateNameRequest) = subject::TEMPLATE_REMOVE => Admin,
        /// `registry.add`: a private registry's login, kept encrypted at the relay.
        RegistryAdd(RegistryAddRequest) = subject::REGISTRY_ADD => Admin,
        /// `registry.list`: servers and users, never passwords.
        RegistryList(RegistryListRequest) = subject::REGISTRY_LIST => Admin,
        /// `registry.remove`
        RegistryRemove(RegistryRemoveRequest) = subject::REGISTRY_REMOVE => Admin,
        /// `container.exec`: a console session (admin: a shell is root in the container).
        ContainerExec(ExecRequest) = subject::CONTAINER_EXEC => Admin,
        /// `container.attach`: the main process's console.
        ContainerAttach(AttachRequest) = subject::CONTAINER_ATTACH => Operate,
        /// `container.send`: one console line (audited with the line).
        ContainerSend(SendRequest) = subject::CONTAINER_SEND => Operate,
        /// `stream.input`: bytes, resize, end or credit of one of the sender's own sessions.
        StreamInput(StreamInput) = subject::STREAM_INPUT => Read,
        /// `file.list`
        FileList(FilePathRequest) = subject::FILE_LIST => Operate,
        /// `file.get`: a streamed answer.
        FileGet(FileGetRequest) = subject::FILE_GET => Operate,
        /// `file.put`: a streamed answer (audited with path and size).
        FilePut(FilePutRequest) = subject::FILE_PUT => Admin,
        /// `file.remove` (audited).
        FileRemove(FilePathRequest) = subject::FILE_REMOVE => Admin,
        /// `file.mkdir` (audited).
        FileMkdir(FilePathRequest) = subject::FILE_MKDIR => Admin,
        /// `updates.list`: the relay's latest update state of one agent or all.
        UpdatesList(UpdateListRequest) = subject::UPDATES_LIST => Read,
        /// `updates.check`: one agent or all check their images' registries now.
        UpdatesCheck(UpdateCheckRequest) = subject::UPDATES_CHECK => Operate,
        /// `container.update`: a new image with health check and rollback; a streamed answer
        /// (audited).
        ContainerUpdate(ContainerUpdateRequest) = subject::CONTAINER_UPDATE => Operate,
    }
}

impl ClientRequestKind {
    /// The container operation a start, stop or restart asks for.
    pub const fn operation(self) -> Option<Operation> {
        match self {
            Self::ContainerStart => Some(Operation::Start),
            Self::ContainerStop => Some(Operation::Stop),
            Self::ContainerRestart => Some(Operation::Restart),
            _ => None,
        }
    }
}

messages! {
    /// What the relay sends an agent: requests, each with a reply inbox, and two frames that
    /// expect no answer (`stream.cancel`, `error`).
    messages AgentRequest, AgentRequestKind {
        /// `container.list`
        ContainerList(ContainerListRequest) = subject::CONTAINER_LIST,
        /// `container.inspect`
        ContainerInspect(ContainerActionRequest) = subject::CONTAINER_INSPECT,
        /// `container.start`
        ContainerStart(ContainerActionRequest) = subject::CONTAINER_START,
        /// `container.stop`
        ContainerStop(ContainerActionRequest) = subject::CONTAINER_STOP,
        /// `container.restart`
        ContainerRestart(ContainerActionRequest) = subject::CONTAINER_RESTART,
        /// `container.logs`: answered with a stream.
        ContainerLogs(LogsRequest) = subject::CONTAINER_LOGS,
        /// `container.stats`: answered once or with a stream.
        ContainerStats(StatsRequest) = subject::CONTAINER_STATS,
        /// `stream.cancel`: stop a stream early (no answer).
        StreamCancel(StreamCancel) = subject::STREAM_CANCEL,
        /// `agent.token`: store this new permanent token, then answer.
        AgentToken(AgentToken) = subject::AGENT_TOKEN,
        /// `agent.update.install`: fetch, check and install a build, answer, restart.
        AgentUpdateInstall(AgentUpdateOrder) = subject::AGENT_UPDATE_INSTALL,
        /// `container.create`: from a resolved spec, after the local policy; a streamed answer.
        ContainerCreate(Box<ContainerCreate>) = subject::CONTAINER_CREATE,
        /// `container.remove`
        ContainerRemove(ContainerRemoveRequest) = subject::CONTAINER_REMOVE,
        /// `image.list`
        ImageList(ImageListRequest) = subject::IMAGE_LIST,
        /// `image.pull`: a streamed answer.
        ImagePull(ImagePullRequest) = subject::IMAGE_PULL,
        /// `image.remove`
        ImageRemove(ImageRemoveRequest) = subject::IMAGE_REMOVE,
        /// `container.exec`: a console session (streamed answer, input by `stream.input`).
        ContainerExec(ExecRequest) = subject::CONTAINER_EXEC,
        /// `container.attach`: the main process's console (streamed answer).
        ContainerAttach(AttachRequest) = subject::CONTAINER_ATTACH,
        /// `container.send`
        ContainerSend(SendRequest) = subject::CONTAINER_SEND,
        /// `stream.input`: input for a session (no answer).
        StreamInput(StreamInput) = subject::STREAM_INPUT,
        /// `file.list`
        FileList(FilePathRequest) = subject::FILE_LIST,
        /// `file.get`: a streamed answer.
        FileGet(FileGetRequest) = subject::FILE_GET,
        /// `file.put`: a streamed answer, bytes by `stream.input`.
        FilePut(FilePutRequest) = subject::FILE_PUT,
        /// `file.remove`
        FileRemove(FilePathRequest) = subject::FILE_REMOVE,
        /// `file.mkdir`
        FileMkdir(FilePathRequest) = subject::FILE_MKDIR,
        /// `updates.check`: check every image's registry now; answered with the state.
        UpdatesCheck(UpdateCheckRequest) = subject::UPDATES_CHECK,
        /// `container.update`: answered with a stream.
        ContainerUpdate(ContainerUpdateRequest) = subject::CONTAINER_UPDATE,
        /// `registry.logins`: every private registry login (kept in memory only).
        RegistryLogins(RegistryLogins) = subject::REGISTRY_LOGINS,
        /// `error`: the relay could not handle a frame the agent sent (never answered).
        Error(ErrorReply) = subject::ERROR,
    }
}

impl AgentRequest {
    /// `container.start|stop|restart` of `request` as `operation` names it.
    pub fn container_action(operation: Operation, request: ContainerActionRequest) -> Self {
        match operation {
            Operation::Start => Self::ContainerStart(request),
            Operation::Stop => Self::ContainerStop(request),
            Operation::Restart => Self::ContainerRestart(request),
        }
    }
}

messages! {
    /// What an authenticated agent sends the relay on its own (answers to the relay's requests
    /// go to their inboxes and are not listed here).
    messages AgentPush, AgentPushKind {
        /// `agent.heartbeat`, every [`crate::HEARTBEAT_INTERVAL`].
        Heartbeat(Heartbeat) = subject::AGENT_HEARTBEAT,
        /// `container.event`: one lifecycle change, fanned out to subscribed clients.
        ContainerEvent(Box<ContainerEvent>) = subject::CONTAINER_EVENT,
        /// `container.sync`: every container (or one part of them), fanned out likewise.
        ContainerSync(ContainerSync) = subject::CONTAINER_SYNC,
        /// `agent.forget`: revoke me (a request: it has a reply inbox).
        AgentForget(AgentForgetRequest) = subject::AGENT_FORGET,
        /// `updates.state`: the agent's containers with a newer image (after each check and
        /// each reconnect), kept by the relay and fanned out to subscribed clients.
        UpdatesState(UpdateState) = subject::UPDATES_STATE,
        /// `agent.update.progress`: where this agent's update is (rate-limited by the agent).
        AgentUpdateProgress(AgentUpdateProgress) = subject::AGENT_UPDATE_PROGRESS,
    }
}

messages! {
    /// The first frame of an agent's connection, before it is authenticated.
    messages AgentHello, AgentHelloKind {
        /// `agent.register`: enrol with a single-use registration token.
        Register(AgentRegister) = subject::AGENT_REGISTER,
        /// `agent.auth`: authenticate with the permanent token.
        Auth(AgentAuth) = subject::AGENT_AUTH,
    }
}

messages! {
    /// What the relay pushes a client, unasked (answers go to the request's inbox).
    messages ClientPush, ClientPushKind {
        /// `agent.status`: an agent came online or went offline.
        AgentStatus(AgentStatus) = subject::AGENT_STATUS,
        /// `container.event` of a watched agent.
        ContainerEvent(Box<ContainerEvent>) = subject::CONTAINER_EVENT,
        /// `container.sync` of a watched agent (possibly one part of a snapshot).
        ContainerSync(ContainerSync) = subject::CONTAINER_SYNC,
        /// `event.resync`: pushes were dropped for this slow connection.
        EventResync(EventResync) = subject::EVENT_RESYNC,
        /// `updates.state` of a watched agent.
        UpdatesState(UpdateState) = subject::UPDATES_STATE,
        /// `agent.update.progress`: an agent's update moved on (admin connections only).
        AgentUpdateProgress(AgentUpdateProgress) = subject::AGENT_UPDATE_PROGRESS,
        /// `error`: a frame without an inbox could not be handled.
        Error(ErrorReply) = subject::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const AGENT: &str = "3f2b8c1e-4d5a-4e6f-9a7b-0c1d2e3f4a5b";

    /// A valid `data` for every subject; a subject without one fails the round-trip tests.
    fn sample(subject: &str) -> Value {
        match subject {
            subject::AGENT_LIST
            | subject::SESSION_LIST
            | subject::TOKEN_LIST
            | subject::USER_LIST
            | subject::AGENT_HEARTBEAT
            | subject::AGENT_FORGET => json!({}),
            subject::CONTAINER_LIST => json!({"agentId": AGENT}),
            subject::CONTAINER_INSPECT
            | subject::CONTAINER_START
            | subject::CONTAINER_STOP
            | subject::CONTAINER_RESTART
            | subject::CONTAINER_LOGS
            | subject::CONTAINER_STATS => json!({"agentId": AGENT, "containerId": "web"}),
            subject::STREAM_CANCEL => json!({"inbox": "_INBOX.1"}),
            subject::EVENT_SUBSCRIBE => json!({"agents": ["web-1"]}),
            subject::AGENT_REVOKE | subject::AGENT_ROTATE => json!({"agentId": "web-1"}),
            subject::SESSION_REVOKE => json!({"sessionId": "s1"}),
            subject::TOKEN_CREATE => json!({"ttlSecs": 60}),
            subject::TOKEN_REVOKE => json!({"tokenId": "t1"}),
            subject::AUDIT_LIST => json!({"limit": 10}),
            subject::USER_CREATE => json!({"name": "ann", "role": "viewer", "password": "pw"}),
            subject::USER_UPDATE => json!({"name": "ann", "disabled": true}),
            subject::USER_PASSWORD => json!({"name": "ann", "password": "pw"}),
            subject::AGENT_TOKEN => json!({"token": format!("zat_{}", "a".repeat(43))}),
            subject::AGENT_UPDATE => json!({"agentId": "web-1", "allowDowngrade": false}),
            subject::AGENT_UPDATE_INSTALL => json!({
                "version": "0.2.0", "platform": "linux-x86_64", "sha256": "a".repeat(64),
                "size": 4_000_000, "allowDowngrade": false,
            }),
            subject::AGENT_UPDATE_PROGRESS => json!({
                "agentId": AGENT, "name": "web-1", "phase": "downloading", "version": "0.2.0",
                "bytes": 1024, "total": 4_000_000,
            }),
            subject::ERROR => json!({"errorCode": "TIMEOUT", "error": "slow"}),
            subject::AGENT_REGISTER => json!({
                "protocolVersion": 1, "registrationToken": "zrt_x", "name": "web-1",
                "info": {"version": "0.1.0", "os": "linux", "arch": "x86_64"},
            }),
            subject::AGENT_AUTH => json!({
                "protocolVersion": 1, "agentId": AGENT, "token": "zat_x",
                "info": {"version": "0.1.0", "os": "linux", "arch": "x86_64"},
            }),
            subject::AGENT_STATUS => {
                json!({"agentId": AGENT, "name": "web-1", "online": true, "lastSeen": null})
            }
            subject::CONTAINER_EVENT => json!({
                "agentId": AGENT, "containerId": "ab".repeat(32), "name": "web",
                "action": "start", "timeNano": 1,
            }),
            subject::CONTAINER_SYNC => {
                json!({"agentId": AGENT, "containers": [], "reason": "connected"})
            }
            subject::EVENT_RESYNC => json!({"missed": 3}),
            subject::CONTAINER_DEPLOY => json!({
                "agentId": AGENT, "template": "web", "name": "web-1",
                "variables": {"PORT": "8080"}, "start": true,
            }),
            subject::CONTAINER_CREATE => json!({
                "agentId": AGENT, "name": "web-1", "start": true,
                "spec": {"image": "nginx:1.27", "ports": [{"container": 80, "host": 8080}]},
                "template": {"name": "web", "version": 2}, "createdBy": "ann",
            }),
            subject::CONTAINER_REMOVE => {
                json!({"agentId": AGENT, "containerId": "web", "force": true, "volumes": false})
            }
            subject::IMAGE_LIST => json!({"agentId": AGENT}),
            subject::IMAGE_PULL => json!({"agentId": AGENT, "image": "nginx:1.27"}),
            subject::IMAGE_REMOVE => {
                json!({"agentId": AGENT, "image": "nginx:1.27", "force": false})
            }
            subject::TEMPLATE_LIST | subject::REGISTRY_LIST => json!({}),
            subject::REGISTRY_ADD => {
                json!({"server": "registry.example:5000", "username": "ci", "password": "pw"})
            }
            subject::REGISTRY_REMOVE => json!({"server": "registry.example:5000"}),
            subject::REGISTRY_LOGINS => json!({
                "logins": [{"server": "registry.example:5000", "username": "ci", "password": "pw"}],
            }),
            subject::TEMPLATE_SHOW | subject::TEMPLATE_REMOVE => json!({"name": "web"}),
            subject::TEMPLATE_ADD | subject::TEMPLATE_UPDATE => json!({
                "template": {"name": "web", "spec": {"image": "nginx:1.27"}},
            }),
            subject::CONTAINER_EXEC => json!({
                "agentId": AGENT, "containerId": "web", "cmd": ["sh"], "tty": true, "stdin": true,
                "size": {"cols": 80, "rows": 24},
            }),
            subject::CONTAINER_ATTACH => {
                json!({"agentId": AGENT, "containerId": "web", "stdin": true})
            }
            subject::CONTAINER_SEND => {
                json!({"agentId": AGENT, "containerId": "web", "line": "save"})
            }
            subject::STREAM_INPUT => json!({"inbox": "_INBOX.1", "data": "aGk=", "grant": 5}),
            subject::FILE_LIST | subject::FILE_REMOVE | subject::FILE_MKDIR => {
                json!({"agentId": AGENT, "containerId": "web", "path": "/srv"})
            }
            subject::FILE_GET => json!({"agentId": AGENT, "containerId": "web", "path": "/srv/a"}),
            subject::FILE_PUT => {
                json!({"agentId": AGENT, "containerId": "web", "path": "/srv/a", "size": 3})
            }
            subject::CONTAINER_UPDATE => json!({
                "agentId": AGENT, "containerId": "web", "image": "nginx:1.28",
                "healthTimeoutSecs": 30, "stableSecs": 5,
            }),
            subject::UPDATES_LIST | subject::UPDATES_CHECK => json!({"agentId": "web-1"}),
            subject::UPDATES_STATE => json!({
                "agentId": AGENT, "checkedAt": 5,
                "updates": [{
                    "container": "web", "image": "nginx:1.27",
                    "currentDigest": format!("sha256:{}", "a".repeat(64)),
                    "newDigest": format!("sha256:{}", "b".repeat(64)), "foundAt": 4,
                }],
                "skipped": [{"image": "local/app:1", "reason": "built locally"}],
            }),
            other => panic!("no sample payload for {other}: add one"),
        }
    }

    /// Decodes the sample of every subject of a direction, encodes it again, and checks the
    /// frame came back the same; then checks a subject of no direction is refused.
    macro_rules! round_trips {
        ($name:ident, $kind:ident) => {{
            for &kind in $kind::ALL {
                let text = json!({"subject": kind.subject(), "reply": "_INBOX.7", "data": sample(kind.subject())})
                    .to_string();
                let frame = Frame::decode(&text).unwrap();
                let message = $name::decode(&frame)
                    .unwrap_or_else(|e| panic!("{} does not decode: {e}", kind.subject()));
                assert_eq!(message.kind(), kind);
                assert_eq!(message.subject(), kind.subject());
                assert_eq!($kind::from_subject(kind.subject()), Some(kind));
                let again: Value =
                    serde_json::from_str(&message.to_frame(Some("_INBOX.7"))).unwrap();
                let first: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(again["subject"], first["subject"]);
                assert_eq!(again["reply"], first["reply"]);
                // Encoding may add defaults, but decodes to the same message.
                let back = $name::decode(&Frame::decode(&again.to_string()).unwrap()).unwrap();
                assert_eq!(
                    back.to_frame(None),
                    message.to_frame(None),
                    "{}",
                    kind.subject()
                );
            }
            let frame = Frame::decode(r#"{"subject":"no.such.subject","data":{}}"#).unwrap();
            let err = $name::decode(&frame).unwrap_err();
            assert!(matches!(err, ProtocolError::UnknownSubject(_)), "{err}");
            assert_eq!(err.to_string(), r#"unknown subject "no.such.subject""#);
            assert_eq!(err.to_reply().error_code, crate::ErrorCode::InvalidRequest);
            assert_eq!($kind::from_subject("no.such.subject"), None);
        }};
    }

    #[test]
    fn every_subject_round_trips_through_its_enum() {
        round_trips!(ClientRequest, ClientRequestKind);
        round_trips!(AgentRequest, AgentRequestKind);
        round_trips!(AgentPush, AgentPushKind);
        round_trips!(ClientPush, ClientPushKind);
        round_trips!(AgentHello, AgentHelloKind);
    }

    #[test]
    fn payloads_are_decoded_strictly() {
        let frame = Frame::decode(
            r#"{"subject":"container.stop","data":{"agentId":"a","containerId":"web","x":1}}"#,
        )
        .unwrap();
        assert!(matches!(
            ClientRequest::decode(&frame),
            Err(ProtocolError::Malformed(_))
        ));
        let frame = Frame::decode(
            r#"{"subject":"container.stop","data":{"agentId":"a","containerId":"../x"}}"#,
        )
        .unwrap();
        assert!(matches!(
            AgentRequest::decode(&frame),
            Err(ProtocolError::Invalid { .. })
        ));
        // A subject of another direction is unknown here: an agent never takes a client's
        // `agent.revoke`, a client never sends `agent.token`.
        let frame = Frame::decode(r#"{"subject":"agent.revoke","data":{}}"#).unwrap();
        assert!(AgentRequest::decode(&frame).is_err());
        assert_eq!(ClientRequestKind::from_subject(subject::AGENT_TOKEN), None);
        assert_eq!(ClientRequestKind::from_subject(subject::AGENT_FORGET), None);
        assert_eq!(ClientRequestKind::from_subject(subject::ERROR), None);
    }

    #[test]
    fn every_client_request_has_the_intended_need() {
        // Written out by hand: a new request without a row here fails.
        let intended: &[(&str, Need)] = &[
            (subject::AGENT_LIST, Need::Read),
            (subject::CONTAINER_LIST, Need::Read),
            (subject::CONTAINER_INSPECT, Need::Read),
            (subject::CONTAINER_LOGS, Need::Read),
            (subject::CONTAINER_STATS, Need::Read),
            (subject::STREAM_CANCEL, Need::Read),
            (subject::STREAM_INPUT, Need::Read),
            (subject::CONTAINER_ATTACH, Need::Operate),
            (subject::CONTAINER_SEND, Need::Operate),
            (subject::FILE_LIST, Need::Operate),
            (subject::FILE_GET, Need::Operate),
            (subject::CONTAINER_EXEC, Need::Admin),
            (subject::FILE_PUT, Need::Admin),
            (subject::FILE_REMOVE, Need::Admin),
            (subject::FILE_MKDIR, Need::Admin),
            (subject::EVENT_SUBSCRIBE, Need::Read),
            (subject::CONTAINER_START, Need::Operate),
            (subject::CONTAINER_STOP, Need::Operate),
            (subject::CONTAINER_RESTART, Need::Operate),
            (subject::AGENT_REVOKE, Need::Admin),
            (subject::AGENT_ROTATE, Need::Admin),
            (subject::AGENT_UPDATE, Need::Admin),
            (subject::SESSION_LIST, Need::Admin),
            (subject::SESSION_REVOKE, Need::Admin),
            (subject::TOKEN_CREATE, Need::Admin),
            (subject::TOKEN_LIST, Need::Admin),
            (subject::TOKEN_REVOKE, Need::Admin),
            (subject::AUDIT_LIST, Need::Admin),
            (subject::USER_LIST, Need::Admin),
            (subject::USER_CREATE, Need::Admin),
            (subject::USER_UPDATE, Need::Admin),
            (subject::USER_PASSWORD, Need::Admin),
            (subject::CONTAINER_DEPLOY, Need::Operate),
            (subject::CONTAINER_REMOVE, Need::Operate),
            (subject::IMAGE_LIST, Need::Read),
            (subject::IMAGE_PULL, Need::Operate),
            (subject::IMAGE_REMOVE, Need::Operate),
            (subject::TEMPLATE_LIST, Need::Read),
            (subject::TEMPLATE_SHOW, Need::Read),
            (subject::TEMPLATE_ADD, Need::Admin),
            (subject::TEMPLATE_UPDATE, Need::Admin),
            (subject::TEMPLATE_REMOVE, Need::Admin),
            (subject::REGISTRY_ADD, Need::Admin),
            (subject::REGISTRY_LIST, Need::Admin),
            (subject::REGISTRY_REMOVE, Need::Admin),
            (subject::UPDATES_LIST, Need::Read),
            (subject::UPDATES_CHECK, Need::Operate),
            (subject::CONTAINER_UPDATE, Need::Operate),
        ];
        assert_eq!(intended.len(), ClientRequestKind::ALL.len());
        for (subject, need) in intended {
            let kind = ClientRequestKind::from_subject(subject)
                .unwrap_or_else(|| panic!("{subject} is not a client request"));
            assert_eq!(kind.need(), *need, "{subject}");
        }
        let mut seen = std::collections::HashSet::new();
        assert!(
            ClientRequestKind::ALL
                .iter()
                .all(|k| seen.insert(k.subject()))
        );
    }

    #[test]
    fn actions_name_their_operation() {
        for op in [Operation::Start, Operation::Stop, Operation::Restart] {
            let kind = ClientRequestKind::from_subject(op.subject()).unwrap();
            assert_eq!(kind.operation(), Some(op));
            let request = ContainerActionRequest {
                agent_id: AGENT.into(),
                container_id: "web".into(),
            };
            assert_eq!(
                AgentRequest::container_action(op, request).subject(),
                op.subject()
            );
        }
        assert_eq!(ClientRequestKind::AgentList.operation(), None);
    }
}
