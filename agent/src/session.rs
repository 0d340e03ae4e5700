//! The agent's life on the wire: enrol or authenticate, serve the relay's requests, and reconnect
//! with backoff whenever the connection is lost, until shutdown or a refusal retrying cannot fix.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use zedops_protocol::payload::is_valid_name;
use zedops_protocol::{
    AgentAuth, AgentId, AgentRegister, AgentRequest, AgentRequestKind, AgentToken,
    AgentTokenStored, AgentWelcome, Envelope, ErrorCode, ErrorReply, Frame, HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT, Heartbeat, MAX_TOKEN_LEN, Operation, PROTOCOL_VERSION, ProtocolError,
    SendResult, subject,
};
use zedops_transport::{Backoff, FrameReader, FrameWriter, RelayUrl, TransportError};

use crate::console::{Sessions, spawn_reply};
use crate::credentials::{self, Credentials};
use crate::docker::DockerClient;
use crate::files;
use crate::handlers::{self, Request};
use crate::pacing::PushBudget;
use crate::policy::LocalPolicy;
use crate::run_error::RunError;
use crate::status::{self, Status};
use crate::streams::Streams;
use crate::update_check::UpdateChecker;
use crate::{AgentOptions, info};

/// Frames waiting for the writer; beyond this, heartbeats and refusals are dropped and request
/// tasks wait, rather than memory growing while the relay does not read.
const OUTGOING_QUEUE: usize = 256;
/// How long a clean shutdown waits for the WebSocket close to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Who the agent says it is in its hello.
pub(crate) enum Identity {
    /// Stored credentials: `agent.auth`.
    Enrolled(Credentials),
    /// First start: `agent.register` with a single-use token.
    Enrolling { token: String, name: String },
}

/// How one served connection ended.
enum Ended {
    Shutdown,
    Lost(String),
}

/// What the options give before the first connection; any failure here is the options'.
struct Setup {
    relays: Vec<RelayUrl>,
    tls: Arc<rustls::ClientConfig>,
    identity: Identity,
    policy: LocalPolicy,
}

fn setup(options: &AgentOptions) -> anyhow::Result<Setup> {
    // Several relays of a cluster (comma-separated): tried in order, the next after each failure.
    let relays = options
        .relay_url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| RelayUrl::parse(u, options.insecure))
        .collect::<Result<Vec<_>, _>>()?;
    ensure!(!relays.is_empty(), "no relay URL given (--relay)");
    let tls = zedops_transport::client_config(options.ca_file.as_deref())?;
    let identity = identity(options, &relays[0])?;
    let policy = LocalPolicy::new(&options.allow_bind, options.docker_host.as_deref())?;
    Ok(Setup {
        relays,
        tls,
        identity,
        policy,
    })
}

/// See [`crate::run`].
pub async fn run(
    options: AgentOptions,
    budget: PushBudget,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let Setup {
        relays,
        tls,
        mut identity,
        policy,
    } = setup(&options).map_err(RunError::Options)?;
    let relay = relays[0].clone();
    let mut docker = DockerClient::connect(options.docker_host.as_deref()).await;
    if !options.allow_bind.is_empty() {
        let dirs: Vec<String> = policy
            .allowed_binds()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        tracing::info!(dirs = %dirs.join(", "), "bind mounts allowed under these directories");
    }
    docker.set_policy(policy);
    docker.set_max_file_size(options.max_file_size);
    let docker = Arc::new(docker);
    // Update checks outlive connections: their result is pushed again after each reconnect.
    let updates = UpdateChecker::new(docker.clone(), &options.data_dir);
    let _checking = (!options.update_check_interval.is_zero()).then(|| {
        AbortOnDrop(tokio::spawn(
            updates
                .clone()
                .every(options.update_check_interval)
                .in_current_span(),
        ))
    });
    // An update cut short by the agent's stop is finished or undone before anything else.
    crate::container_update::recover(&docker, &options.data_dir).await;
    let urls: Vec<String> = relays.iter().map(|r| r.ws("/ws/agent")).collect();
    let mut next = 0usize;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Backoff::default();
    let mut failures = 0u32;
    loop {
        let url = &urls[next % urls.len()];
        let attempt = tokio::select! {
            () = &mut shutdown => return Ok(()),
            attempt = hello(url, &tls, &identity, &docker) => attempt,
        };
        let (writer, reader, welcome) = match attempt {
            Ok(connected) => connected,
            Err(TransportError::Refused(reply)) if is_fatal(reply.error_code) => {
                let advice = refusal_advice(&reply, &identity, &options.data_dir);
                let refused = Status::refused(reply.error_code.as_str(), &advice);
                status::write(&options.data_dir, &refused);
                return Err(RunError::Refused {
                    code: reply.error_code,
                    advice,
                });
            }
            Err(err) => {
                failures += 1;
                // A draining relay asks for another try in a second (through a load balancer
                // that is about to send it elsewhere); its pace, not a growing backoff.
                let asked = err.retry_after();
                // Logged once: an agent waiting for its relay for hours must not fill the journal.
                if failures == 1 {
                    tracing::warn!(%err, "cannot connect to the relay; retrying with backoff");
                    let retrying = Status::retrying(&format!("cannot connect to the relay: {err}"));
                    status::write(&options.data_dir, &retrying);
                } else {
                    tracing::debug!(%err, attempt = failures, "still cannot connect to the relay");
                }
                // The next relay at once; the backoff once every relay was tried.
                next += 1;
                if !next.is_multiple_of(urls.len()) {
                    continue;
                }
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(backoff.delay_after(asked)) => continue,
                }
            }
        };
        if failures > 0 {
            tracing::info!("connected to relay after {} attempts", failures + 1);
        }
        failures = 0;
        backoff.reset();
        if let Identity::Enrolling { name, .. } = &identity {
            let stored = enrolled(&options.data_dir, &relay, name, welcome.clone())
                .map_err(RunError::Enrolment)?;
            identity = Identity::Enrolled(stored);
        }
        tracing::info!(agent = ?welcome.name, id = %welcome.agent_id, "connected to the relay; serving requests");
        // Registry logins live as long as the connection: the relay sends the current ones
        // after each welcome (none when it has none), so one removed meanwhile is not kept.
        docker.set_registry_logins(Vec::new());
        status::write(
            &options.data_dir,
            &Status::connected(&welcome.name, &welcome.agent_id),
        );
        match serve(
            writer,
            reader,
            &docker,
            &updates,
            &options.data_dir,
            budget,
            shutdown.as_mut(),
        )
        .await
        {
            Ended::Shutdown => return Ok(()),
            Ended::Lost(reason) => {
                // The relay that dropped it (stopping, draining) is tried last.
                next += 1;
                tracing::warn!(reason = ?reason.to_string(), "lost the connection to the relay; reconnecting");
                let retrying = Status::retrying(&format!("lost the connection: {reason}"));
                status::write(&options.data_dir, &retrying);
            }
        }
        // The relay may have rotated the token meanwhile: the stored file is the truth.
        if let Identity::Enrolled(current) = &identity {
            match credentials::load(&options.data_dir) {
                Ok(Some(stored)) if stored != *current => {
                    tracing::info!("using the rotated agent token from now on");
                    identity = Identity::Enrolled(stored);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(%err, "cannot re-read the stored credentials; keeping the ones in memory")
                }
            }
        }
        // A short jittered pause, so a relay that accepts and at once drops is not hammered.
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(Backoff::default().next_delay()) => {}
        }
    }
}

/// The stored credentials, or what is needed to enrol; refuses a start that cannot succeed.
fn identity(options: &AgentOptions, relay: &RelayUrl) -> anyhow::Result<Identity> {
    if let Some(stored) = credentials::load(&options.data_dir)? {
        if options.registration_token.is_some() {
            tracing::info!(id = %stored.agent_id, "already enrolled; ignoring the registration token");
        }
        if options.name.is_some() {
            // A name is given once, at enrolment; said so rather than silently dropped.
            tracing::warn!(
                id = %stored.agent_id,
                "already enrolled; --name (ZEDOPS_NAME) only names an agent as it enrols, so this one keeps the name it enrolled with"
            );
        }
        if stored.relay != relay.canonical() && !options.relay_url.contains(&stored.relay) {
            tracing::warn!(issued_by = %stored.relay, relay = %relay.canonical(), "credentials were issued for another relay URL; trying them anyway");
        }
        return Ok(Identity::Enrolled(stored));
    }
    let Some(token) = options
        .registration_token
        .clone()
        .filter(|t| !t.trim().is_empty())
    else {
        let given = if options.registration_token.is_some() {
            "the registration token given is empty"
        } else {
            "it has no registration token"
        };
        bail!(
            "this agent is not enrolled yet and {given}: create one with `zedops token create` \
             (or `zedops-relay token create` on the relay) and run again with ZEDOPS_TOKEN set \
             to it or --token-file FILE"
        );
    };
    ensure!(
        token.len() <= MAX_TOKEN_LEN,
        "the registration token is longer than {MAX_TOKEN_LEN} bytes; check it"
    );
    let name = match &options.name {
        Some(name) => {
            ensure!(
                is_valid_name(name),
                "invalid --name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -"
            );
            name.clone()
        }
        None => info::default_name(info::hostname().as_deref()),
    };
    // Fail now rather than after the single-use token has been spent.
    credentials::create_dir(&options.data_dir)?;
    Ok(Identity::Enrolling {
        token: token.trim().to_string(),
        name,
    })
}

/// Dials the relay and exchanges hellos.
pub(crate) async fn hello(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    identity: &Identity,
    docker: &DockerClient,
) -> Result<(FrameWriter, FrameReader, AgentWelcome), TransportError> {
    // Asked before dialling, so a slow Docker never holds a half-open handshake.
    let info = info::gather(docker).await;
    let (mut writer, mut reader) = zedops_transport::connect(url, tls.clone()).await?;
    let welcome = match identity {
        Identity::Enrolled(c) => {
            let auth = AgentAuth {
                protocol_version: PROTOCOL_VERSION,
                agent_id: c.agent_id.clone(),
                token: c.token.clone(),
                info,
            };
            zedops_transport::hello(
                &mut writer,
                &mut reader,
                subject::AGENT_AUTH,
                &auth,
                subject::AGENT_WELCOME,
            )
            .await?
        }
        Identity::Enrolling { token, name } => {
            let register = AgentRegister {
                protocol_version: PROTOCOL_VERSION,
                registration_token: token.clone(),
                name: name.clone(),
                info,
            };
            zedops_transport::hello(
                &mut writer,
                &mut reader,
                subject::AGENT_REGISTER,
                &register,
                subject::AGENT_WELCOME,
            )
            .await?
        }
    };
    Ok((writer, reader, welcome))
}

/// Stores the credentials an `agent.register` earned.
fn enrolled(
    data_dir: &Path,
    relay: &RelayUrl,
    name: &str,
    welcome: AgentWelcome,
) -> anyhow::Result<Credentials> {
    let token = welcome
        .token
        .context("the relay accepted the registration but sent no agent token")?;
    let stored = Credentials {
        agent_id: welcome.agent_id,
        token,
        relay: relay.canonical(),
    };
    credentials::save(data_dir, &stored).with_context(|| {
        format!("enrolled as {name}, but the credentials could not be stored; enrol again with a new token")
    })?;
    let path = credentials::path(data_dir);
    tracing::info!(%name, id = %stored.agent_id, path = %path.display(), "enrolled; credentials stored");
    Ok(stored)
}

/// Refusals that retrying cannot fix.
fn is_fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unauthorized
            | ErrorCode::NameTaken
            | ErrorCode::UnsupportedVersion
            | ErrorCode::InvalidRequest
    )
}

/// The relay's reason for a fatal refusal and what the operator can do about it.
fn refusal_advice(reply: &ErrorReply, identity: &Identity, data_dir: &Path) -> String {
    // Not `--token`: a token on the command line shows in `ps`.
    const NEW_TOKEN: &str = "create a new registration token with `zedops-relay token create` and \
         run again with it in ZEDOPS_TOKEN or --token-file";
    let relay_says = format!("the relay refused this agent ({reply})");
    // The relay's message may carry the remedy already ("…; create a new one with …"): then it
    // is not said a second time in other words.
    let relay_advised = reply.error.contains("; ");
    match (reply.error_code, identity) {
        (ErrorCode::Unauthorized, Identity::Enrolling { .. }) if relay_advised => relay_says,
        (ErrorCode::Unauthorized, Identity::Enrolled(_)) => format!(
            "{relay_says}: its stored credentials are no longer valid (revoked?). Delete {}, then {NEW_TOKEN}",
            credentials::path(data_dir).display()
        ),
        (ErrorCode::Unauthorized, Identity::Enrolling { .. }) => {
            format!(
                "{relay_says}: the registration token is wrong, expired or already used; {NEW_TOKEN}"
            )
        }
        (ErrorCode::NameTaken, Identity::Enrolling { name, .. }) => format!(
            "{relay_says}: another agent is already called {name}; run again with a different --name \
             (if the token was used up, {NEW_TOKEN})"
        ),
        (ErrorCode::UnsupportedVersion, _) => format!(
            "{relay_says}: this agent speaks protocol version {PROTOCOL_VERSION}; install an agent that \
             matches the relay's version"
        ),
        _ => format!("{relay_says}; {NEW_TOKEN}"),
    }
}

/// Serves one connection until it is lost or shutdown is asked for.
async fn serve(
    writer: FrameWriter,
    mut reader: FrameReader,
    docker: &Arc<DockerClient>,
    updates: &Arc<UpdateChecker>,
    data_dir: &Path,
    budget: PushBudget,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Ended {
    let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
    let (close_tx, close_rx) = oneshot::channel();
    let mut writing = tokio::spawn(write_frames(writer, rx, close_rx));
    // Live state for this connection: a snapshot first, then Docker's events as they happen,
    // paced so that the relay never refuses one.
    let streams = Arc::new(Streams::default());
    // Console sessions and file transfers; dropped with the connection, which ends them (and
    // the processes of execs).
    let consoles = Arc::new(Sessions::default());
    let _following = AbortOnDrop(tokio::spawn(
        crate::live::follow(docker.clone(), tx.clone(), budget).in_current_span(),
    ));
    let _pushing_updates = AbortOnDrop(tokio::spawn(
        crate::update_check::push(updates.subscribe(), tx.clone()).in_current_span(),
    ));
    // A revert since the last connection: the relay tells the admin who asked for the update.
    #[cfg(unix)]
    crate::selfupdate::report_rollback(data_dir, &tx);
    let heartbeat_frame = Envelope::new(subject::AGENT_HEARTBEAT, Heartbeat {}).to_json();
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT_INTERVAL,
        HEARTBEAT_INTERVAL,
    );
    let ended = loop {
        tokio::select! {
            () = &mut shutdown => break Ended::Shutdown,
            written = &mut writing => {
                let reason = match written {
                    Ok(Ok(())) => "the writer stopped".to_string(),
                    Ok(Err(err)) => err.to_string(),
                    Err(err) => err.to_string(),
                };
                return Ended::Lost(reason);
            }
            _ = heartbeat.tick() => queue(&tx, heartbeat_frame.clone()),
            received = reader.recv_idle(HEARTBEAT_TIMEOUT) => match received {
                Ok(Some(frame)) => dispatch(frame, docker, updates, &streams, &consoles, data_dir, &tx),
                Ok(None) => break Ended::Lost("the relay closed the connection".into()),
                Err(TransportError::Protocol(err)) => {
                    tracing::warn!(%err, "refused an unreadable frame from the relay");
                    queue(&tx, handlers::refusal(None, &err));
                }
                Err(TransportError::Timeout(_)) => {
                    break Ended::Lost(format!("nothing arrived from the relay for {} s", HEARTBEAT_TIMEOUT.as_secs()));
                }
                Err(err) => break Ended::Lost(err.to_string()),
            },
        }
    };
    let _ = close_tx.send(());
    if matches!(ended, Ended::Shutdown) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, writing).await;
    } else {
        // Nobody is listening any more; answers still being prepared are dropped.
        writing.abort();
    }
    ended
}

/// Ends a connection's background task however the connection ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts handling one frame from the relay. Requests run in their own task, so a 10-second stop
/// never delays a list.
fn dispatch(
    frame: Frame,
    docker: &Arc<DockerClient>,
    updates: &Arc<UpdateChecker>,
    streams: &Arc<Streams>,
    consoles: &Arc<Sessions>,
    data_dir: &Path,
    tx: &mpsc::Sender<String>,
) {
    let kind = AgentRequestKind::from_subject(&frame.subject);
    // Frames that expect no answer are never answered, not even with a refusal: two peers
    // answering each other's errors would loop forever.
    let answerless = matches!(
        kind,
        Some(
            AgentRequestKind::Error
                | AgentRequestKind::StreamCancel
                | AgentRequestKind::StreamInput
        )
    );
    let inbox = match (&frame.reply, answerless) {
        (Some(inbox), _) => inbox.clone(),
        (None, true) => String::new(),
        (None, false) => {
            let err = ProtocolError::invalid("reply", "a request needs a reply inbox");
            tracing::warn!(subject = ?frame.subject, %err, "refused a request");
            return queue(tx, handlers::refusal(None, &err));
        }
    };
    let request = match AgentRequest::decode(&frame) {
        Ok(request) => request,
        Err(err) if answerless => {
            return tracing::warn!(subject = ?frame.subject, %err, "ignored an unreadable frame from the relay");
        }
        // A subject this agent does not know comes from a newer relay: UNSUPPORTED says so.
        Err(err @ ProtocolError::UnknownSubject(_)) => {
            tracing::warn!(subject = ?frame.subject, "refused a request this agent does not know");
            let reply = ErrorReply::new(
                ErrorCode::Unsupported,
                format!(
                    "{err}: this agent ({}) is older than the relay",
                    crate::VERSION
                ),
            );
            return queue(tx, Envelope::new(&inbox, reply).to_json());
        }
        Err(err) => {
            tracing::warn!(subject = ?frame.subject, %err, "refused a request");
            return queue(tx, handlers::refusal(frame.reply.as_deref(), &err));
        }
    };
    let answer = |request: Request| spawn_answer(request, inbox.clone(), docker, tx);
    match request {
        AgentRequest::Error(reply) => {
            tracing::warn!(code = %reply.error_code, error = ?reply.error, "the relay reported an error")
        }
        AgentRequest::StreamCancel(cancel) => {
            // An inbox is a stream's or a console session's, never both.
            if !consoles.cancel(&cancel.inbox) {
                streams.cancel(&cancel.inbox);
            }
        }
        AgentRequest::StreamInput(input) => consoles.input(input),
        AgentRequest::ContainerExec(request) => {
            consoles.start_exec(docker.clone(), request, inbox, tx.clone())
        }
        AgentRequest::ContainerAttach(request) => {
            consoles.start_attach(docker.clone(), request, inbox, tx.clone())
        }
        AgentRequest::FileGet(request) => consoles.start_get(
            docker.clone(),
            request,
            docker.max_file_size(),
            inbox,
            tx.clone(),
        ),
        AgentRequest::FilePut(request) => consoles.start_put(
            docker.clone(),
            request,
            docker.max_file_size(),
            inbox,
            tx.clone(),
        ),
        AgentRequest::ContainerSend(request) => {
            let docker = docker.clone();
            spawn_reply(tx, inbox, async move {
                let bytes = docker
                    .send_line(&request.container_id, &request.line)
                    .await
                    .map_err(ErrorReply::from)?;
                Ok(SendResult { bytes })
            })
        }
        AgentRequest::FileList(request) => {
            let docker = docker.clone();
            spawn_reply(
                tx,
                inbox,
                async move { files::list(&docker, &request).await },
            )
        }
        AgentRequest::FileRemove(request) => {
            let docker = docker.clone();
            spawn_reply(
                tx,
                inbox,
                async move { files::remove(&docker, &request).await },
            )
        }
        AgentRequest::FileMkdir(request) => {
            let docker = docker.clone();
            spawn_reply(
                tx,
                inbox,
                async move { files::mkdir(&docker, &request).await },
            )
        }
        AgentRequest::UpdatesCheck(_) => {
            let updates = updates.clone();
            spawn_reply(tx, inbox, async move {
                updates.check().await.map_err(ErrorReply::from)
            })
        }
        AgentRequest::AgentToken(new) => rotate(new, inbox, data_dir.to_path_buf(), tx),
        #[cfg(unix)]
        AgentRequest::AgentUpdateInstall(order) => crate::selfupdate::start(order, inbox, tx),
        #[cfg(not(unix))]
        AgentRequest::AgentUpdateInstall(_) => queue(
            tx,
            Envelope::new(
                &inbox,
                ErrorReply::new(
                    ErrorCode::Unsupported,
                    "this agent updates itself on Linux only",
                ),
            )
            .to_json(),
        ),
        AgentRequest::ContainerLogs(request) => {
            streams.start_logs(docker.clone(), request, inbox, tx.clone())
        }
        AgentRequest::ContainerStats(request) => {
            streams.start_stats(docker.clone(), request, inbox, tx.clone())
        }
        AgentRequest::ContainerCreate(request) => {
            streams.start_create(docker.clone(), *request, inbox, tx.clone())
        }
        AgentRequest::ImagePull(request) => {
            streams.start_pull(docker.clone(), request, inbox, tx.clone())
        }
        AgentRequest::RegistryLogins(logins) => {
            // Memory only; the passwords are never logged (RegistryLogin's Debug hides them).
            let count = docker.set_registry_logins(logins.logins);
            tracing::info!(count, "took the registry logins from the relay");
            let stored = zedops_protocol::RegistryLoginsStored {
                count: count as u32,
            };
            queue(tx, Envelope::new(&inbox, stored).to_json())
        }
        AgentRequest::ContainerUpdate(request) => crate::container_update::start(
            docker.clone(),
            updates.clone(),
            data_dir.to_path_buf(),
            request,
            inbox,
            tx.clone(),
        ),
        AgentRequest::ContainerRemove(request) => answer(Request::Remove(request)),
        AgentRequest::ImageList(_) => answer(Request::Images),
        AgentRequest::ImageRemove(request) => answer(Request::RemoveImage(request)),
        AgentRequest::ContainerList(_) => answer(Request::List),
        AgentRequest::ContainerInspect(request) => answer(Request::Inspect {
            container_id: request.container_id,
        }),
        AgentRequest::ContainerStart(request) => answer(Request::action(Operation::Start, request)),
        AgentRequest::ContainerStop(request) => answer(Request::action(Operation::Stop, request)),
        AgentRequest::ContainerRestart(request) => {
            answer(Request::action(Operation::Restart, request))
        }
    }
}

/// Carries out a Docker request in its own task and queues its answer for `inbox`.
fn spawn_answer(
    request: Request,
    inbox: String,
    docker: &Arc<DockerClient>,
    tx: &mpsc::Sender<String>,
) {
    let span = tracing::info_span!("request", subject = %request.subject(), %inbox);
    let (docker, tx) = (docker.clone(), tx.clone());
    tokio::spawn(
        async move {
            let answer = request.answer(&docker, &inbox).await;
            if tx.send(answer).await.is_err() {
                tracing::debug!("the connection is gone; dropping the answer");
            }
        }
        .instrument(span),
    );
}

/// `agent.token`: stores the relay's new permanent token atomically in the credentials file,
/// then answers. The relay switches to the new token only after this answer, so a failure
/// here leaves the old token working.
fn rotate(new: AgentToken, inbox: String, data_dir: PathBuf, tx: &mpsc::Sender<String>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let stored = tokio::task::spawn_blocking(move || store_rotated(&data_dir, new.token))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
        let answer = match stored {
            Ok(agent_id) => {
                tracing::info!("stored a new agent token from the relay");
                Envelope::new(&inbox, AgentTokenStored { agent_id }).to_json()
            }
            Err(err) => {
                tracing::error!(err = %format!("{err:#}"), "could not store the rotated agent token; keeping the old one");
                let reply = ErrorReply::new(
                    ErrorCode::Internal,
                    format!(
                        "the agent could not store the new token ({err:#}); it keeps the old one"
                    ),
                );
                Envelope::new(&inbox, reply).to_json()
            }
        };
        if tx.send(answer).await.is_err() {
            tracing::debug!("the connection is gone; dropping the rotation answer");
        }
    });
}

/// Replaces the token in the stored credentials (one rotation at a time); the agent id.
fn store_rotated(data_dir: &Path, token: String) -> anyhow::Result<AgentId> {
    static ROTATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = ROTATING.lock().unwrap_or_else(|p| p.into_inner());
    let mut stored =
        credentials::load(data_dir)?.context("this agent has no stored credentials to rotate")?;
    stored.token = token;
    credentials::save(data_dir, &stored)?;
    Ok(stored.agent_id)
}

/// Queues a frame the read loop sends itself, without ever blocking that loop.
fn queue(tx: &mpsc::Sender<String>, text: String) {
    if tx.try_send(text).is_err() {
        tracing::debug!("outgoing queue full or closed; dropping a frame");
    }
}

/// Owns the sending half: the only place frames are written.
async fn write_frames(
    mut writer: FrameWriter,
    mut rx: mpsc::Receiver<String>,
    mut close: oneshot::Receiver<()>,
) -> Result<(), TransportError> {
    loop {
        tokio::select! {
            biased;
            _ = &mut close => break,
            text = rx.recv() => match text {
                Some(text) => writer.send_text(text).await?,
                None => break,
            },
        }
    }
    writer.close().await;
    Ok(())
}
