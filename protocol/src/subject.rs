//! Subject names. Requests keep the original ZedOps names; answers go to the request's inbox.

/// Prefix of every reply inbox; the rest is a UUID.
pub const INBOX_PREFIX: &str = "_INBOX.";

/// Agent → relay, first frame of a new agent: enrol with a single-use registration token.
pub const AGENT_REGISTER: &str = "agent.register";
/// Agent → relay, first frame of an enrolled agent: authenticate with the permanent token.
pub const AGENT_AUTH: &str = "agent.auth";
/// Relay → agent: the hello was accepted (carries the permanent token after enrolment).
pub const AGENT_WELCOME: &str = "agent.welcome";
/// Agent → relay, every [`crate::HEARTBEAT_INTERVAL`]; no answer.
pub const AGENT_HEARTBEAT: &str = "agent.heartbeat";

/// Client → relay, first frame: authenticate with a device token.
pub const CLIENT_HELLO: &str = "client.hello";
/// Relay → client: the hello was accepted.
pub const CLIENT_WELCOME: &str = "client.welcome";

/// Client → relay: list the agents the relay knows.
pub const AGENT_LIST: &str = "agent.list";
/// Relay → client, pushed: an agent came online or went offline.
pub const AGENT_STATUS: &str = "agent.status";

/// Client → relay → agent: list all containers, running and stopped.
pub const CONTAINER_LIST: &str = "container.list";
/// Client → relay → agent: start a container.
pub const CONTAINER_START: &str = "container.start";
/// Client → relay → agent: stop a container (10 s grace before SIGKILL).
pub const CONTAINER_STOP: &str = "container.stop";
/// Client → relay → agent: restart a container.
pub const CONTAINER_RESTART: &str = "container.restart";

/// Client → relay → agent: one container in detail (secrets in its environment masked).
pub const CONTAINER_INSPECT: &str = "container.inspect";

/// Client → relay → agent: a container's output, streamed as many answers to the inbox.
pub const CONTAINER_LOGS: &str = "container.logs";
/// Client → relay → agent: a container's resource usage, once or streamed.
pub const CONTAINER_STATS: &str = "container.stats";
/// Client → relay → agent: stop a streamed answer early.
pub const STREAM_CANCEL: &str = "stream.cancel";

/// Client → relay (admin): revoke an agent.
pub const AGENT_REVOKE: &str = "agent.revoke";
/// Client → relay (admin): list live device sessions.
pub const SESSION_LIST: &str = "session.list";
/// Client → relay (admin): end a device session.
pub const SESSION_REVOKE: &str = "session.revoke";
/// Client → relay (admin): create a registration token.
pub const TOKEN_CREATE: &str = "token.create";
/// Client → relay (admin): read the audit log.
pub const AUDIT_LIST: &str = "audit.list";

// Live state (see `crate::events`).

/// Agent → relay → subscribed clients, pushed: one container lifecycle change.
pub const CONTAINER_EVENT: &str = "container.event";
/// Agent → relay → subscribed clients, pushed: every container of the agent, after a gap.
pub const CONTAINER_SYNC: &str = "container.sync";
/// Client → relay: receive the events of some agents or of the whole fleet.
pub const EVENT_SUBSCRIBE: &str = "event.subscribe";
/// Relay → client, pushed: events were dropped for this slow connection; list again.
pub const EVENT_RESYNC: &str = "event.resync";

// User, registration token and agent token management (admin).
/// Client → relay (admin): list users.
pub const USER_LIST: &str = "user.list";
/// Client → relay (admin): create a user.
pub const USER_CREATE: &str = "user.create";
/// Client → relay (admin): change a user's role, or disable or enable the user.
pub const USER_UPDATE: &str = "user.update";
/// Client → relay (admin): list registration tokens (never the tokens themselves).
pub const TOKEN_LIST: &str = "token.list";
/// Client → relay (admin): revoke an unused registration token.
pub const TOKEN_REVOKE: &str = "token.revoke";
/// Client → relay (admin): give a connected agent a new permanent token.
pub const AGENT_ROTATE: &str = "agent.rotate";
/// Relay → agent: store this new permanent token, then answer; the relay switches to it only
/// after the answer.
pub const AGENT_TOKEN: &str = "agent.token";
/// Client → relay (admin): update an agent to the signed build the relay serves (audited).
pub const AGENT_UPDATE: &str = "agent.update";
/// Relay → agent: fetch, check and install this build, answer, then restart into it.
pub const AGENT_UPDATE_INSTALL: &str = "agent.update.install";
/// Agent → relay (download, verify, rolled back) and relay → admin clients (every phase): where
/// an agent's update is.
pub const AGENT_UPDATE_PROGRESS: &str = "agent.update.progress";
/// Client → relay (admin): give a user a new password; the user's other sessions end.
pub const USER_PASSWORD: &str = "user.password";
/// Agent → relay, about itself only: forget me (revoked at once, the name free again); sent
/// by `zedops-agent uninstall --purge` before it deletes its credentials.
pub const AGENT_FORGET: &str = "agent.forget";

// Deploy and remove (issue 14; payloads in `crate::deploy` and `crate::templates`).
/// Client → relay (operator): create a container on an agent from a template; the relay
/// resolves it and sends the agent `container.create`. A streamed answer (pull progress).
pub const CONTAINER_DEPLOY: &str = "container.deploy";
/// Relay → agent: create a container from a resolved spec. A streamed answer (pull progress).
pub const CONTAINER_CREATE: &str = "container.create";
/// Client → relay → agent (operator): remove a container.
pub const CONTAINER_REMOVE: &str = "container.remove";
/// Client → relay → agent: list the agent's images.
pub const IMAGE_LIST: &str = "image.list";
/// Client → relay → agent (operator): pull an image. A streamed answer (pull progress).
pub const IMAGE_PULL: &str = "image.pull";
/// Client → relay → agent (operator): remove an image.
pub const IMAGE_REMOVE: &str = "image.remove";
/// Client → relay: list templates.
pub const TEMPLATE_LIST: &str = "template.list";
/// Client → relay: one template in full.
pub const TEMPLATE_SHOW: &str = "template.show";
/// Client → relay (admin): store a new template.
pub const TEMPLATE_ADD: &str = "template.add";
/// Client → relay (admin): store a new version of a template.
pub const TEMPLATE_UPDATE: &str = "template.update";
/// Client → relay (admin): remove a template.
pub const TEMPLATE_REMOVE: &str = "template.remove";
/// Client → relay (admin): store the login for a private registry.
pub const REGISTRY_ADD: &str = "registry.add";
/// Client → relay (admin): the stored registry logins (servers and users, never passwords).
pub const REGISTRY_LIST: &str = "registry.list";
/// Client → relay (admin): forget a registry's login.
pub const REGISTRY_REMOVE: &str = "registry.remove";
/// Relay → agent: every registry login, replacing what the agent held (memory only).
pub const REGISTRY_LOGINS: &str = "registry.logins";

// Console sessions and files (see `crate::console`, `crate::files`).
/// Client → relay → agent (admin): run a command in a container; a streamed answer.
pub const CONTAINER_EXEC: &str = "container.exec";
/// Client → relay → agent (operator): the main process's console; a streamed answer.
pub const CONTAINER_ATTACH: &str = "container.attach";
/// Client → relay → agent (operator): one line to the main process's stdin.
pub const CONTAINER_SEND: &str = "container.send";
/// Client → relay → agent: input, resize, end of input or output credit of a session (no
/// answer).
pub const STREAM_INPUT: &str = "stream.input";
/// Client → relay → agent (operator): a directory's entries.
pub const FILE_LIST: &str = "file.list";
/// Client → relay → agent (operator): download a file; a streamed answer.
pub const FILE_GET: &str = "file.get";
/// Client → relay → agent (admin): upload a file; a streamed answer, bytes by `stream.input`.
pub const FILE_PUT: &str = "file.put";
/// Client → relay → agent (admin): remove a file or directory.
pub const FILE_REMOVE: &str = "file.remove";
/// Client → relay → agent (admin): make a directory.
pub const FILE_MKDIR: &str = "file.mkdir";

// Container updates (see `crate::container_update`).
/// Client → relay → agent (operator): update one container to a newer image, with a health
/// check and automatic rollback; a streamed answer.
pub const CONTAINER_UPDATE: &str = "container.update";

// Update available (issue 15; payloads in `crate::update_check`).
/// Agent → relay → subscribed clients, pushed: the agent's containers with a newer image.
pub const UPDATES_STATE: &str = "updates.state";
/// Client → relay: the latest update state of one agent or of all.
pub const UPDATES_LIST: &str = "updates.list";
/// Client → relay (operator) → agent(s): check the registries now; answered with fresh states.
pub const UPDATES_CHECK: &str = "updates.check";

/// Any direction: a frame that could not be handled and had no inbox to answer to,
/// or a refused hello just before the connection closes.
pub const ERROR: &str = "error";

/// True when `subject` is a reply inbox: the prefix and then 1 or more of `A-Z a-z 0-9 . _ -`.
pub fn is_inbox(subject: &str) -> bool {
    subject.strip_prefix(INBOX_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}
