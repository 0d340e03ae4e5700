//! `docs/schema/protocol.json` is the JSON Schema of every payload, generated from the protocol
//! types (feature `schema`, `schemars`): for each direction, each subject's `data` and, for
//! requests, its answer. This test generates it afresh and compares; a stale committed file fails
//! it. Outside CI it also rewrites the file, so re-running passes once the new file is reviewed
//! and committed.
//!
//! The `match`es below name each subject's payload and answer types; a subject of the message
//! enums (`protocol/src/message.rs`) that none names fails the test, so a new subject cannot
//! land without its schema.

use std::path::Path;

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use zedops_protocol::*;

/// Where the bundle is committed, from the workspace root.
const SCHEMA_PATH: &str = "docs/schema/protocol.json";

/// The reference to `T`'s definition.
fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// An answer that is `T` or, on failure, an [`ErrorReply`].
fn or_error<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    json!({ "oneOf": [of::<T>(g), of::<ErrorReply>(g)] })
}

/// A streamed answer: frames of `T` to the inbox, the last with `end`; a refusal before the
/// stream starts is one [`ErrorReply`].
fn stream_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    json!({ "stream": of::<T>(g), "refusal": of::<ErrorReply>(g) })
}

/// One request: its `data` and the `data` of its answer.
fn request(data: Value, answer: Value) -> Value {
    json!({ "data": data, "answer": answer })
}

/// A request `R` answered with `A` or, on failure, an [`ErrorReply`].
fn answered<R: JsonSchema, A: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    request(of::<R>(g), or_error::<A>(g))
}

/// A request `R` answered with a stream of `T` (see [`stream_of`]).
fn streamed<R: JsonSchema, T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    request(of::<R>(g), stream_of::<T>(g))
}

/// A message that is never answered: its `data` alone.
fn unanswered<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    json!({ "data": of::<T>(g) })
}

fn client_request(kind: ClientRequestKind, g: &mut SchemaGenerator) -> Option<Value> {
    use ClientRequestKind as K;
    let action = |g: &mut SchemaGenerator| {
        request(
            of::<ContainerActionRequest>(g),
            json!({ "oneOf": [of::<OperationSuccess>(g), of::<OperationError>(g)] }),
        )
    };
    Some(match kind {
        K::AgentList => answered::<AgentListRequest, AgentListResponse>(g),
        K::ContainerList => answered::<ContainerListRequest, ContainerListResponse>(g),
        K::ContainerInspect => answered::<ContainerActionRequest, ContainerDetail>(g),
        K::ContainerLogs => streamed::<LogsRequest, LogChunk>(g),
        K::ContainerStats => streamed::<StatsRequest, StatsChunk>(g),
        K::StreamCancel => answered::<StreamCancel, StreamCancelled>(g),
        K::EventSubscribe => answered::<EventSubscribe, EventSubscribed>(g),
        K::ContainerStart | K::ContainerStop | K::ContainerRestart => action(g),
        K::AgentRevoke => answered::<AgentRevokeRequest, AgentRevoked>(g),
        K::AgentRotate => answered::<AgentRotateRequest, AgentRotated>(g),
        K::AgentUpdate => answered::<AgentUpdateRequest, AgentUpdated>(g),
        K::SessionList => answered::<SessionListRequest, SessionListResponse>(g),
        K::SessionRevoke => answered::<SessionRevokeRequest, SessionRevoked>(g),
        K::TokenCreate => answered::<TokenCreateRequest, TokenCreated>(g),
        K::TokenList => answered::<TokenListRequest, TokenListResponse>(g),
        K::TokenRevoke => answered::<TokenRevokeRequest, TokenRevoked>(g),
        K::AuditList => answered::<AuditListRequest, AuditListResponse>(g),
        K::UserList => answered::<UserListRequest, UserListResponse>(g),
        K::UserCreate => answered::<UserCreateRequest, UserSummary>(g),
        K::UserUpdate => answered::<UserUpdateRequest, UserSummary>(g),
        K::UserPassword => answered::<UserPasswordRequest, UserPasswordSet>(g),
        K::ContainerDeploy => streamed::<DeployRequest, DeployFrame>(g),
        K::ContainerRemove => answered::<ContainerRemoveRequest, ContainerRemoved>(g),
        K::ImageList => answered::<ImageListRequest, ImageListResponse>(g),
        K::ImagePull => streamed::<ImagePullRequest, DeployFrame>(g),
        K::ImageRemove => answered::<ImageRemoveRequest, ImageRemoved>(g),
        K::TemplateList => answered::<TemplateListRequest, TemplateListResponse>(g),
        K::TemplateShow => answered::<TemplateNameRequest, TemplateRecord>(g),
        K::TemplateAdd | K::TemplateUpdate => answered::<TemplateSaveRequest, TemplateSaved>(g),
        K::TemplateRemove => answered::<TemplateNameRequest, TemplateSaved>(g),
        K::RegistryAdd => answered::<RegistryAddRequest, RegistryAdded>(g),
        K::RegistryList => answered::<RegistryListRequest, RegistryListResponse>(g),
        K::RegistryRemove => answered::<RegistryRemoveRequest, RegistryRemoved>(g),
        K::ContainerExec => streamed::<ExecRequest, ConsoleOutput>(g),
        K::ContainerAttach => streamed::<AttachRequest, ConsoleOutput>(g),
        K::ContainerSend => answered::<SendRequest, SendResult>(g),
        // Never answered (an unknown or ended session's input is dropped).
        K::StreamInput => unanswered::<StreamInput>(g),
        K::FileList => answered::<FilePathRequest, FileList>(g),
        K::FileGet => streamed::<FileGetRequest, FileChunk>(g),
        K::FilePut => streamed::<FilePutRequest, FileChunk>(g),
        K::FileRemove | K::FileMkdir => answered::<FilePathRequest, FileDone>(g),
        K::UpdatesList => answered::<UpdateListRequest, UpdateListResponse>(g),
        K::UpdatesCheck => answered::<UpdateCheckRequest, UpdateListResponse>(g),
        K::ContainerUpdate => streamed::<ContainerUpdateRequest, ContainerUpdateFrame>(g),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn agent_request(kind: AgentRequestKind, g: &mut SchemaGenerator) -> Option<Value> {
    use AgentRequestKind as K;
    Some(match kind {
        K::AgentToken => answered::<AgentToken, AgentTokenStored>(g),
        K::AgentUpdateInstall => answered::<AgentUpdateOrder, AgentUpdated>(g),
        // Sent without a reply inbox: never answered.
        K::StreamCancel => unanswered::<StreamCancel>(g),
        K::Error => unanswered::<ErrorReply>(g),
        // The relay's resolution of a client's `container.deploy`.
        K::ContainerCreate => streamed::<ContainerCreate, DeployFrame>(g),
        // The agent answers with its own fresh state; the relay gathers them.
        K::UpdatesCheck => answered::<UpdateCheckRequest, UpdateState>(g),
        // Every registry login, from the relay (never from a client).
        K::RegistryLogins => answered::<RegistryLogins, RegistryLoginsStored>(g),
        // What a client asks an agent for is forwarded with the same payload and answer.
        _ => return client_request(ClientRequestKind::from_subject(kind.subject())?, g),
    })
}

fn agent_push(kind: AgentPushKind, g: &mut SchemaGenerator) -> Option<Value> {
    use AgentPushKind as K;
    Some(match kind {
        K::Heartbeat => unanswered::<Heartbeat>(g),
        K::ContainerEvent => unanswered::<ContainerEvent>(g),
        K::ContainerSync => unanswered::<ContainerSync>(g),
        K::AgentForget => answered::<AgentForgetRequest, AgentForgotten>(g),
        K::UpdatesState => unanswered::<UpdateState>(g),
        K::AgentUpdateProgress => unanswered::<AgentUpdateProgress>(g),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn client_push(kind: ClientPushKind, g: &mut SchemaGenerator) -> Option<Value> {
    use ClientPushKind as K;
    let data = match kind {
        K::AgentStatus => of::<AgentStatus>(g),
        K::ContainerEvent => of::<ContainerEvent>(g),
        K::ContainerSync => of::<ContainerSync>(g),
        K::EventResync => of::<EventResync>(g),
        K::UpdatesState => of::<UpdateState>(g),
        K::AgentUpdateProgress => of::<AgentUpdateProgress>(g),
        K::Error => of::<ErrorReply>(g),
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(json!({ "data": data }))
}

/// `subject → entry` for every kind of one direction, in declaration order; the subjects
/// without an entry go to `missing`.
fn direction<K: Copy>(
    all: &[K],
    subject: impl Fn(K) -> &'static str,
    entry: impl Fn(K, &mut SchemaGenerator) -> Option<Value>,
    g: &mut SchemaGenerator,
    missing: &mut Vec<&'static str>,
) -> Value {
    let mut map = Map::new();
    for &kind in all {
        match entry(kind, g) {
            Some(entry) => drop(map.insert(subject(kind).to_string(), entry)),
            None => missing.push(subject(kind)),
        }
    }
    Value::Object(map)
}

/// The whole bundle, as committed, and the subjects this file has no schema for.
fn generate() -> (String, Vec<&'static str>) {
    let mut missing = Vec::new();
    let mut g = SchemaSettings::draft2020_12().into_generator();
    let hellos = json!({
        "agent.register": answered::<AgentRegister, AgentWelcome>(&mut g),
        "agent.auth": answered::<AgentAuth, AgentWelcome>(&mut g),
        "client.hello": answered::<ClientHello, ClientWelcome>(&mut g),
    });
    let login = answered::<LoginRequest, LoginResponse>(&mut g);
    let client_requests = direction(
        ClientRequestKind::ALL,
        ClientRequestKind::subject,
        client_request,
        &mut g,
        &mut missing,
    );
    let agent_requests = direction(
        AgentRequestKind::ALL,
        AgentRequestKind::subject,
        agent_request,
        &mut g,
        &mut missing,
    );
    let agent_pushes = direction(
        AgentPushKind::ALL,
        AgentPushKind::subject,
        agent_push,
        &mut g,
        &mut missing,
    );
    let client_pushes = direction(
        ClientPushKind::ALL,
        ClientPushKind::subject,
        client_push,
        &mut g,
        &mut missing,
    );
    let bundle = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ZedOps wire protocol payloads",
        "description": "Generated from zedops-protocol by protocol/tests/schema.rs; do not edit. Each subject's `data` and, for a request, the `data` of its answer (to the request's reply inbox). docs/PROTOCOL.md describes the envelope, the behaviour and the limits.",
        "protocolVersion": PROTOCOL_VERSION,
        "first frames (hello → welcome, or an error frame and a close)": hellos,
        "POST /api/login": login,
        "client → relay": client_requests,
        "relay → agent": agent_requests,
        "agent → relay": agent_pushes,
        "relay → client": client_pushes,
        "$defs": g.take_definitions(true),
    });
    (
        serde_json::to_string_pretty(&bundle).unwrap() + "\n",
        missing,
    )
}

#[test]
fn committed_schema_matches_the_protocol_types() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SCHEMA_PATH);
    let (fresh, missing) = generate();
    assert!(
        missing.is_empty(),
        "no schema for {missing:?}: name their payload and answer types in protocol/tests/schema.rs"
    );
    let old = std::fs::read_to_string(&committed).unwrap_or_default();
    if fresh == old {
        return;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{SCHEMA_PATH} is stale: run `cargo test -p zedops-protocol --test schema` outside CI and commit the result"
        );
    }
    std::fs::create_dir_all(committed.parent().unwrap()).unwrap();
    std::fs::write(&committed, fresh).unwrap();
    panic!("{SCHEMA_PATH} was stale and has been regenerated: review and commit it");
}

/// Every type the schema names is defined in it, so a reader can resolve every `$ref`.
#[test]
fn every_reference_resolves() {
    let bundle: Value = serde_json::from_str(&generate().0).unwrap();
    let defs = bundle["$defs"].as_object().unwrap();
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&bundle, &mut found);
    assert!(found.len() > 50, "{found:?}");
    for r in found {
        let name = r.strip_prefix("#/$defs/").unwrap_or_else(|| panic!("{r}"));
        assert!(defs.contains_key(name), "{r} is not defined");
    }
}

/// Payloads are decoded strictly, and the schema says so: unknown fields are refused.
#[test]
fn payload_schemas_refuse_unknown_fields() {
    let bundle: Value = serde_json::from_str(&generate().0).unwrap();
    for name in ["ContainerActionRequest", "LogsRequest", "ClientHello"] {
        let def = &bundle["$defs"][name];
        assert_eq!(def["additionalProperties"], false, "{name}: {def}");
    }
}
