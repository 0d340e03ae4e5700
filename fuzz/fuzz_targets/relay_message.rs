//! Any frame through the relay's per-message handling for a signed-in client, as the client
//! endpoint runs it: decoding, the policy table, payload decoding, the admin subjects, the
//! audit log and routing to an agent, on a real SQLite file with an agent connection that
//! answers. The first byte picks the sender's role (admin, operator, viewer).
//!
//! Checked on every input: nothing panics, the answer goes to the request's inbox (or is an
//! `error` frame when there is none), a role the policy refuses always gets `FORBIDDEN`, an
//! unknown subject always gets `INVALID_REQUEST`, and no answer carries a password hash.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use zedops_protocol::{AgentInfo, Frame, Role, UserCreateRequest, subject};
use zedops_relay::connection::ClientConn;
use zedops_relay::router::Reply;
use zedops_relay::store::Session;
use zedops_relay::{AppState, Options, Server};
use zedops_relay::{Limits, Store, Timeouts, policy, router};

struct World {
    rt: tokio::runtime::Runtime,
    state: Arc<AppState>,
    sessions: [Session; 3],
    /// The connection's state: its event subscription and open streams.
    conn: ClientConn,
    /// Holds the relay's shutdown signal open for the state's tasks.
    _server: Server,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("relay.db").display().to_string();
        let (state, sessions, server) = rt.block_on(async {
            let store = Store::open(&db).await.expect("store");
            let mut sessions = vec![];
            for (name, role) in [
                ("fuzz-admin", Role::Admin),
                ("fuzz-operator", Role::Operator),
                ("fuzz-viewer", Role::Viewer),
            ] {
                store.add_user(name, "fuzz-password", role).await.expect("user");
                let (session, _) = store
                    .login(name, "fuzz-password", Some("fuzz"))
                    .await
                    .expect("login")
                    .expect("right password");
                sessions.push(session);
            }
            let token = store
                .create_registration_token(Duration::from_secs(3600))
                .await
                .expect("token");
            let info = AgentInfo {
                version: "0".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                ..Default::default()
            };
            let (agent, _) = store.enrol_agent(&token, "fuzz-agent", &info).await.expect("enrol");
            store.close().await;
            // The relay's own state, built as `serve` builds it (so new fields need no change
            // here); it is never made to listen.
            let server = Server::new(Options {
                listen: "127.0.0.1:0".parse().expect("address"),
                db: db.clone(),
                tls: None,
                timeouts: Timeouts {
                    list: Duration::from_millis(500),
                    operation: Duration::from_millis(500),
                    ..Timeouts::default()
                },
                installer: Default::default(),
                limits: Limits::default(),
            })
            .await
            .expect("relay state");
            let state = server.state();
            let (link, mut outbound, _closed) = state.hub.connect_agent(&agent.id, "fuzz-agent");
            // The agent: answers every request at once, as a real agent would.
            tokio::spawn(async move {
                let _closed = _closed;
                while let Some(text) = outbound.recv().await {
                    let Ok(frame) = Frame::decode(&text) else { continue };
                    let Some(inbox) = frame.reply.clone() else { continue };
                    let data: Value = serde_json::from_str(frame.raw_data()).unwrap_or(Value::Null);
                    let answer = match frame.subject.as_str() {
                        subject::CONTAINER_LIST => r#"{"containers":[],"count":0}"#.to_string(),
                        subject::AGENT_TOKEN => format!(r#"{{"agentId":"{}"}}"#, link.id),
                        op => {
                            let operation = op.trim_start_matches("container.");
                            serde_json::json!({"success": true, "containerId": data["containerId"], "operation": operation}).to_string()
                        }
                    };
                    link.answer(&inbox, &answer);
                }
            });
            (state, sessions, server)
        });
        World {
            rt,
            state,
            sessions: sessions.try_into().expect("three sessions"),
            conn: ClientConn::default(),
            _server: server,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&who, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(frame) = Frame::decode(text) else {
        return;
    };
    let world = world();
    let session = &world.sessions[usize::from(who % 3)];
    // Creating a user hashes a password with argon2id, on purpose slow (tens of milliseconds);
    // a valid one is checked for decoding only, so the fuzzer spends its time on the handling.
    if frame.subject == subject::USER_CREATE
        && session.role == Role::Admin
        && frame.payload::<UserCreateRequest>().is_ok()
    {
        return;
    }
    let reply = frame.reply.clone();
    let subject = frame.subject.clone();
    let answer = match world
        .rt
        .block_on(router::handle(&world.state, session, &world.conn, frame))
    {
        Reply::Frame(answer) => answer,
        // A streamed answer (logs) was opened; its frames are the agent's. Forget it.
        Reply::Stream { stream, .. } => {
            stream.link.close_stream(&stream.agent_inbox);
            return;
        }
    };

    let answer: Value = serde_json::from_str(&answer).expect("answers are JSON");
    let expected = reply.as_deref().unwrap_or(subject::ERROR);
    assert_eq!(answer["subject"], expected, "{answer}");
    let code = answer["data"]["errorCode"].as_str();
    if reply.is_some() {
        match policy::need(&subject) {
            None => assert_eq!(code, Some("INVALID_REQUEST"), "{subject}: {answer}"),
            Some(need) if !policy::allows(session.role, need) => {
                assert_eq!(
                    code,
                    Some("FORBIDDEN"),
                    "{} sent {subject}: {answer}",
                    session.role
                )
            }
            Some(_) => {}
        }
    }
    assert!(!answer.to_string().contains("$argon2"), "{answer}");
});
