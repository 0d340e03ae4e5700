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

fn client_request(kind: ClientRequestKind, g: &mut SchemaGenerator) -> Option<Value> {
    use ClientRequestKind as K;
    let action = |g: &mut SchemaGenerator| {
        request(
            of::<ContainerActionRequest>(g),
            json!({ "oneOf": [of::<OperationSuccess>(g), of::<OperationError>(g)] }),
        )
    };
    Some(match kind {
        K::AgentList => request(of::<AgentListRequest>(g), or_error::<AgentListResponse>(g)),
        K::ContainerList => request(
            of::<ContainerListRequest>(g),
            or_error::<ContainerListResponse>(g),
        ),
        K::ContainerInspect => request(
            of::<ContainerActionRequest>(g),
            or_error::<ContainerDetail>(g),
        ),
        K::ContainerLogs => request(of::<LogsRequest>(g), stream_of::<LogChunk>(g)),
        K::ContainerStats => request(of::<StatsRequest>(g), stream_of::<StatsChunk>(g)),
        K::StreamCancel => request(of::<StreamCancel>(g), or_error::<StreamCancelled>(g)),
        K::EventSubscribe => request(of::<EventSubscribe>(g), or_error::<EventSubscribed>(g)),
        K::ContainerStart | K::ContainerStop | K::ContainerRestart => action(g),
        K::AgentRevoke => request(of::<AgentRevokeRequest>(g), or_error::<AgentRevoked>(g)),
        K::AgentRotate => request(of::<AgentRotateRequest>(g), or_error::<AgentRotated>(g)),
        K::AgentUpdate => request(of::<AgentUpdateRequest>(g), or_error::<AgentUpdated>(g)),
        K::SessionList => request(
            of::<SessionListRequest>(g),
            or_error::<SessionListResponse>(g),
        ),
        K::SessionRevoke => request(of::<SessionRevokeRequest>(g), or_error::<SessionRevoked>(g)),
        K::TokenCreate => request(of::<TokenCreateRequest>(g), or_error::<TokenCreated>(g)),
        K::TokenList => request(of::<TokenListRequest>(g), or_error::<TokenListResponse>(g)),
        K::TokenRevoke => request(of::<TokenRevokeRequest>(g), or_error::<TokenRevoked>(g)),
        K::AuditList => request(of::<AuditListRequest>(g), or_error::<AuditListResponse>(g)),
        K::UserList => request(of::<UserListRequest>(g), or_error::<UserListResponse>(g)),
        K::UserCreate => request(of::<UserCreateRequest>(g), or_error::<UserSummary>(g)),
        K::UserUpdate => request(of::<UserUpdateRequest>(g), or_error::<UserSummary>(g)),
        K::UserPassword => request(of::<UserPasswordRequest>(g), or_error::<UserPasswordSet>(g)),
        K::ContainerDeploy => request(of::<DeployRequest>(g), stream_of::<DeployFrame>(g)),
        K::ContainerRemove => request(
            of::<ContainerRemoveRequest>(g),
            or_error::<ContainerRemoved>(g),
        ),
        K::ImageList => request(of::<ImageListRequest>(g), or_error::<ImageListResponse>(g)),
        K::ImagePull => request(of::<ImagePullRequest>(g), stream_of::<DeployFrame>(g)),
        K::ImageRemove => request(of::<ImageRemoveRequest>(g), or_error::<ImageRemoved>(g)),
        K::TemplateList => request(
            of::<TemplateListRequest>(g),
            or_error::<TemplateListResponse>(g),
        ),
        K::TemplateShow => request(of::<TemplateNameRequest>(g), or_error::<TemplateRecord>(g)),
        K::TemplateAdd | K::TemplateUpdate => {
            request(of::<TemplateSaveRequest>(g), or_error::<TemplateSaved>(g))
        }
        K::TemplateRemove => request(of::<TemplateNameRequest>(g), or_error::<TemplateSaved>(g)),
        K::RegistryAdd => request(of::<RegistryAddRequest>(g), or_error::<RegistryAdded>(g)),
        K::RegistryList => request(
            of::<RegistryListRequest>(g),
            or_error::<RegistryListResponse>(g),
        ),
        K::RegistryRemove => request(
            of::<RegistryRemoveRequest>(g),
            or_error::<RegistryRemoved>(g),
        ),
        K::ContainerExec => request(of::<ExecRequest>(g), stream_of::<ConsoleOutput>(g)),
        K::ContainerAttach => request(of::<AttachRequest>(g), stream_of::<ConsoleOutput>(g)),
        K::ContainerSend => request(of::<SendRequest>(g), or_error::<SendResult>(g)),
        // Never answered (an unknown or ended session's input is dropped).
        K::StreamInput => json!({ "data": of::<StreamInput>(g) }),
        K::FileList => request(of::<FilePathRequest>(g), or_error::<FileList>(g)),
        K::FileGet => request(of::<FileGetRequest>(g), stream_of::<FileChunk>(g)),
        K::FilePut => request(of::<FilePutRequest>(g), stream_of::<FileChunk>(g)),
        K::FileRemove | K::FileMkdir => request(of::<FilePathRequest>(g), or_error::<FileDone>(g)),
        K::UpdatesList => request(
            of::<UpdateListRequest>(g),
            or_error::<UpdateListResponse>(g),
        ),
        K::UpdatesCheck => request(
            of::<UpdateCheckRequest>(g),
            or_error::<UpdateListResponse>(g),
        ),
        K::ContainerUpdate => request(
            of::<ContainerUpdateRequest>(g),
            stream_of::<ContainerUpdateFrame>(g),
        ),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn agent_request(kind: AgentRequestKind, g: &mut SchemaGenerator) -> Option<Value> {
    use AgentRequestKind as K;
    Some(match kind {
        K::AgentToken => request(of::<AgentToken>(g), or_error::<AgentTokenStored>(g)),
        K::AgentUpdateInstall => request(of::<AgentUpdateOrder>(g), or_error::<AgentUpdated>(g)),
        // Sent without a reply inbox: never answered.
        K::StreamCancel => json!({ "data": of::<StreamCancel>(g) }),
        K::Error => json!({ "data": of::<ErrorReply>(g) }),
        // The relay's resolution of a client's `container.deploy`.
        K::ContainerCreate => request(of::<ContainerCreate>(g), stream_of::<DeployFrame>(g)),
        // The agent answers with its own fresh state; the relay gathers them.
        K::UpdatesCheck => request(of::<UpdateCheckRequest>(g), or_error::<UpdateState>(g)),
        // Every registry login, from the relay (never from a client).
        K::RegistryLogins => request(of::<RegistryLogins>(g), or_error::<RegistryLoginsStored>(g)),
        // What a client asks an agent for is forwarded with the same payload and answer.
        _ => return client_request(ClientRequestKind::from_subject(kind.subject())?, g),
    })
}

fn agent_push(kind: AgentPushKind, g: &mut SchemaGenerator) -> Option<Value> {
    use AgentPushKind as K;
    Some(match kind {
        K::Heartbeat => json!({ "data": of::<Heartbeat>(g) }),
        K::ContainerEvent => json!({ "data": of::<ContainerEvent>(g) }),
        K::ContainerSync => json!({ "data": of::<ContainerSync>(g) }),
        K::AgentForget => request(of::<AgentForgetRequest>(g), or_error::<AgentForgotten>(g)),
        K::UpdatesState => json!({ "data": of::<UpdateState>(g) }),
        K::AgentUpdateProgress => json!({ "data": of::<AgentUpdateProgress>(g) }),
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
        "agent.register": request(of::<AgentRegister>(&mut g), or_error::<AgentWelcome>(&mut g)),
        "agent.auth": request(of::<AgentAuth>(&mut g), or_error::<AgentWelcome>(&mut g)),
        "client.hello": request(of::<ClientHello>(&mut g), or_error::<ClientWelcome>(&mut g)),
    });
    let login = request(
        of::<LoginRequest>(&mut g),
        or_error::<LoginResponse>(&mut g),
    );
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
