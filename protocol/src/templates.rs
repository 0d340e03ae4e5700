//! Templates: a named, versioned container specification an admin writes once and operators
//! deploy many times, with variables the deployer fills in. The relay stores them; this module
//! holds their wire form, the `template.*` payloads, and the resolution of variables into a
//! [`ContainerSpec`], so that the relay, the CLI and the app check a template the same way.
//!
//! A template's `spec` is a [`ContainerSpec`] in which any string may name variables as
//! `${NAME}`. A string that is nothing but `${NAME}` in a numeric or yes/no field (`host`,
//! `memoryBytes`, `readOnly`, …) takes the value as a number or boolean.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::deploy::{ContainerSpec, MAX_SPEC_ENTRIES, is_valid_env_name, is_valid_value};
use crate::error::{ErrorCode, ErrorReply, ProtocolError};
use crate::payload::{Validate, is_valid_name};

/// Largest template, as JSON.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Longest template or variable description.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// What a secret variable's value is shown as in audit entries and answers.
pub const SECRET_MASK: &str = "******";

/// Fields whose value may be a bare `${NAME}` standing for a number.
const NUMERIC_FIELDS: &[&str] = &[
    "container",
    "host",
    "cpus",
    "memoryBytes",
    "memorySwapBytes",
    "pids",
    "restartMaxRetries",
    "intervalSecs",
    "timeoutSecs",
    "retries",
    "startPeriodSecs",
    "stopGraceSecs",
];
/// Fields whose value may be a bare `${NAME}` standing for `true` or `false`.
const BOOLEAN_FIELDS: &[&str] = &["readOnly", "openStdin", "tty"];

/// One variable a deployer fills in.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateVariable {
    #[serde(default)]
    pub description: String,
    /// Used when the deployer gives no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A deploy without a value (and no default) is refused with `MISSING_VARIABLE`.
    #[serde(default)]
    pub required: bool,
    /// Masked in audit entries and never sent back; allowed only in `env`.
    #[serde(default)]
    pub secret: bool,
}

/// A template as written in a file (TOML or JSON) and sent to `template.add|update`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub variables: BTreeMap<String, TemplateVariable>,
    /// A [`ContainerSpec`] with `${NAME}` references.
    pub spec: Value,
}

/// A template resolved for one deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub spec: ContainerSpec,
    /// Every variable's value, secret ones as [`SECRET_MASK`]: what the audit records.
    pub shown: BTreeMap<String, String>,
}

fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::TemplateInvalid, message)
}

impl TemplateBody {
    /// Checks the template as the relay stores it: the name, the variables, every `${NAME}`
    /// declared, secrets only in `env`, and the spec valid once resolved with each variable's
    /// default (or a stand-in value). Errors name the field.
    pub fn check(&self) -> Result<(), ErrorReply> {
        if !is_valid_name(&self.name) {
            return Err(invalid(
                "name: must be 1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -",
            ));
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(invalid("description: at most 1024 bytes"));
        }
        if self.variables.len() > MAX_SPEC_ENTRIES {
            return Err(invalid("variables: at most 128"));
        }
        for (name, variable) in &self.variables {
            if !is_valid_env_name(name) {
                return Err(invalid(format!(
                    "variables.{}: names must be [A-Za-z_][A-Za-z0-9_]*",
                    name.escape_debug()
                )));
            }
            if variable.description.len() > MAX_DESCRIPTION_LEN {
                return Err(invalid(format!(
                    "variables.{name}.description: at most 1024 bytes"
                )));
            }
            if variable
                .default
                .as_deref()
                .is_some_and(|d| !is_valid_value(d))
            {
                return Err(invalid(format!(
                    "variables.{name}.default: at most 4096 bytes without control characters"
                )));
            }
            if variable.secret && variable.default.is_some() {
                return Err(invalid(format!(
                    "variables.{name}.default: a secret variable may not have a default (templates hold no secrets)"
                )));
            }
        }
        let size = serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_TEMPLATE_BYTES {
            return Err(invalid("the template is larger than 64 KiB"));
        }
        let mut used = Vec::new();
        collect_references(&self.spec, None, &mut used)?;
        for (name, path) in &used {
            let Some(variable) = self.variables.get(name) else {
                return Err(invalid(format!(
                    "spec.{path}: uses ${{{name}}}, which [variables] does not declare"
                )));
            };
            if variable.secret && !path.starts_with("env.") {
                return Err(invalid(format!(
                    "spec.{path}: secret variable {name} may only be used in env"
                )));
            }
        }
        // Stand-ins that fit anywhere a value may: a number, a name, a word.
        let samples = self
            .variables
            .iter()
            .filter(|(_, v)| v.default.is_none())
            .map(|(k, _)| (k.clone(), "1".to_string()))
            .collect();
        self.resolve(&samples).map(|_| ())
    }

    /// Resolves the spec with `values` (each variable's default where absent). An undeclared
    /// name is `UNKNOWN_VARIABLE`, a required one left empty `MISSING_VARIABLE`, a spec that
    /// does not hold once filled in `TEMPLATE_INVALID` naming the field.
    pub fn resolve(&self, values: &BTreeMap<String, String>) -> Result<Resolved, ErrorReply> {
        if let Some(unknown) = values.keys().find(|k| !self.variables.contains_key(*k)) {
            let declared: Vec<&str> = self.variables.keys().map(String::as_str).collect();
            return Err(ErrorReply::new(
                ErrorCode::UnknownVariable,
                format!(
                    "template {} has no variable {}; it has: {}",
                    self.name,
                    unknown.escape_debug(),
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared.join(", ")
                    }
                ),
            ));
        }
        let mut filled = BTreeMap::new();
        let mut shown = BTreeMap::new();
        for (name, variable) in &self.variables {
            let value = values.get(name).or(variable.default.as_ref());
            match value {
                Some(value) => {
                    if !is_valid_value(value) {
                        return Err(ErrorReply::new(
                            ErrorCode::InvalidRequest,
                            format!("{name}: at most 4096 bytes without control characters"),
                        ));
                    }
                    filled.insert(name.clone(), value.clone());
                    let display = if variable.secret {
                        SECRET_MASK.to_string()
                    } else {
                        value.clone()
                    };
                    shown.insert(name.clone(), display);
                }
                None if variable.required => {
                    return Err(ErrorReply::new(
                        ErrorCode::MissingVariable,
                        format!(
                            "template {} needs a value for {name} ({}); add --set {name}=VALUE",
                            self.name,
                            if variable.description.is_empty() {
                                "no description"
                            } else {
                                &variable.description
                            }
                        ),
                    ));
                }
                None => {
                    filled.insert(name.clone(), String::new());
                }
            }
        }
        let spec = substitute(&self.spec, None, &filled);
        let spec: ContainerSpec = serde_path_to_error::deserialize(spec).map_err(|e| {
            let field = dotted(e.path());
            let at = if field.is_empty() {
                String::new()
            } else {
                format!(".{field}")
            };
            self.blame(values, &field, format!("spec{at}: {}", e.inner()))
        })?;
        spec.validate().map_err(|e| match e {
            ProtocolError::Invalid { field, reason } => {
                self.blame(values, field, format!("spec.{field}: {reason}"))
            }
            other => invalid(format!("spec: {other}")),
        })?;
        Ok(Resolved { spec, shown })
    }

    /// `TEMPLATE_INVALID` with `message`, led by the deployer's values of the variables used in
    /// `field` (`PORT=99999 does not fit the template: spec.ports.0.host: …`; a secret one
    /// masked), so the one who typed the value learns which one to change.
    fn blame(&self, values: &BTreeMap<String, String>, field: &str, message: String) -> ErrorReply {
        let mut references = Vec::new();
        // The spec's references were read once already: this cannot fail here.
        let _ = collect_references(&self.spec, None, &mut references);
        let field = unindexed(field);
        let mut given: Vec<String> = Vec::new();
        for (name, at) in references {
            let Some(value) = values.get(&name) else {
                continue;
            };
            let secret = self.variables.get(&name).is_some_and(|v| v.secret);
            let said = format!("{name}={}", if secret { SECRET_MASK } else { value });
            if unindexed(&at) == field && !given.contains(&said) {
                given.push(said);
            }
        }
        if given.is_empty() {
            return invalid(message);
        }
        invalid(format!(
            "{} does not fit the template: {message}",
            given.join(", ")
        ))
    }
}

/// A decode error's place in the spec as references name it: `ports.0.host`.
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let parts: Vec<String> = path
        .iter()
        .map(|segment| match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => "?".to_string(),
        })
        .collect();
    parts.join(".")
}

/// A field without its list positions (`ports.0.host` → `ports.host`), as checks name fields.
fn unindexed(field: &str) -> String {
    field
        .split('.')
        .filter(|part| part.parse::<usize>().is_err())
        .collect::<Vec<_>>()
        .join(".")
}

/// Every `${NAME}` in `value` with where it is (`env.PASSWORD`, `ports.0.host`).
fn collect_references(
    value: &Value,
    path: Option<&str>,
    out: &mut Vec<(String, String)>,
) -> Result<(), ErrorReply> {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    return Err(invalid(format!(
                        "spec.{}: an unclosed ${{",
                        path.unwrap_or("")
                    )));
                };
                out.push((after[..end].to_string(), path.unwrap_or("").to_string()));
                rest = &after[end + 1..];
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let here = join(path, &i.to_string());
                collect_references(item, Some(&here), out)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let here = join(path, key);
                collect_references(item, Some(&here), out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn join(path: Option<&str>, key: &str) -> String {
    match path {
        Some(p) if !p.is_empty() => format!("{p}.{key}"),
        _ => key.to_string(),
    }
}

/// `value` with every `${NAME}` replaced; in a numeric or yes/no field a lone `${NAME}` becomes
/// the number or boolean its value spells (left as text when it spells none, so the decoder
/// names the field).
fn substitute(value: &Value, key: Option<&str>, values: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(text) => {
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        out.push_str(values.get(&after[..end]).map_or("", String::as_str));
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push_str(&rest[start..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            let lone =
                text.starts_with("${") && text.ends_with('}') && text.matches("${").count() == 1;
            if lone && key.is_some_and(|k| NUMERIC_FIELDS.contains(&k)) {
                if let Ok(n) = out.parse::<u64>() {
                    return Value::from(n);
                }
                if let Ok(f) = out.parse::<f64>() {
                    return Value::from(f);
                }
            }
            if lone && key.is_some_and(|k| BOOLEAN_FIELDS.contains(&k)) {
                match out.as_str() {
                    "true" => return Value::Bool(true),
                    "false" => return Value::Bool(false),
                    _ => {}
                }
            }
            Value::String(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| substitute(i, key, values)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    // Inside env and labels the keys are the user's names, not spec fields.
                    let field = if matches!(key, Some("env" | "labels")) {
                        None
                    } else {
                        Some(k.as_str())
                    };
                    (k.clone(), substitute(v, field, values))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// template.* payloads
// ---------------------------------------------------------------------------------------------

/// `template.list` request: no fields.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateListRequest {}

impl Validate for TemplateListRequest {}

/// One template in a list.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSummary {
    pub name: String,
    pub version: u32,
    pub description: String,
    /// The spec's image reference (with its `${NAME}`s).
    pub image: String,
    pub updated_by: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
}

/// `template.list` answer.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateListResponse {
    pub templates: Vec<TemplateSummary>,
}

impl Validate for TemplateListResponse {}

/// `template.show` and `template.remove` request.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateNameRequest {
    pub name: String,
}

impl Validate for TemplateNameRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        if !is_valid_name(&self.name) {
            return Err(ProtocolError::invalid("name", "must be a template name"));
        }
        Ok(())
    }
}

/// `template.show` answer: the template and who changed it when.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateRecord {
    pub version: u32,
    pub template: TemplateBody,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_by: Option<String>,
    pub updated_at: String,
}

impl Validate for TemplateRecord {}

/// `template.add` request; `template.update` carries the same body (its `name` says which).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSaveRequest {
    pub template: TemplateBody,
}

impl Validate for TemplateSaveRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        if !is_valid_name(&self.template.name) {
            return Err(ProtocolError::invalid(
                "template.name",
                "must be a template name",
            ));
        }
        Ok(())
    }
}

/// `template.add|update|remove` answer.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSaved {
    pub name: String,
    /// The version now current (for a removal, the last one).
    pub version: u32,
}

impl Validate for TemplateSaved {}

#[cfg(test)]
mod tests {
    use super::*;

    fn zomboid() -> TemplateBody {
        serde_json::from_value(serde_json::json!({
            "name": "zomboid",
            "description": "Project Zomboid",
            "variables": {
                "SERVER_NAME": {"description": "shown in the browser", "default": "servertest"},
                "ADMIN_PASSWORD": {"description": "admin password", "required": true, "secret": true},
                "PORT": {"default": "16261"},
                "MEMORY": {"default": "2147483648"}
            },
            "spec": {
                "image": "127.0.0.1:5000/pz:1",
                "env": {"SERVER_NAME": "${SERVER_NAME}", "ADMIN_PASSWORD": "${ADMIN_PASSWORD}", "host": "${PORT}"},
                "ports": [{"container": 16261, "host": "${PORT}", "protocol": "udp"}],
                "resources": {"memoryBytes": "${MEMORY}"},
                "labels": {"game": "pz ${SERVER_NAME}"}
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_template_carries_the_pre_update_hook_as_labels_checked_when_stored() {
        let mut t = zomboid();
        t.spec["labels"]["zedops.update.hook"] =
            serde_json::json!("rcon-cli servermsg 'restart in ${HOOK_WAIT} s'");
        t.spec["labels"]["zedops.update.hook-wait"] = serde_json::json!("${HOOK_WAIT}");
        t.spec["labels"]["zedops.update"] = serde_json::json!("pinned");
        t.variables.insert(
            "HOOK_WAIT".into(),
            serde_json::from_value(serde_json::json!({"default": "60"})).unwrap(),
        );
        t.check().unwrap();
        let values = BTreeMap::from([("ADMIN_PASSWORD".to_string(), "x".to_string())]);
        let labels = t.resolve(&values).unwrap().spec.labels;
        assert_eq!(
            labels["zedops.update.hook"],
            "rcon-cli servermsg 'restart in 60 s'"
        );
        assert_eq!(labels["zedops.update.hook-wait"], "60");
        // A wait the hook could not use is refused when the template is stored, naming it.
        t.variables.get_mut("HOOK_WAIT").unwrap().default = Some("900".into());
        let err = t.check().unwrap_err();
        assert!(
            err.error.contains("spec.labels") && err.error.contains("hook-wait"),
            "{}",
            err.error
        );
    }

    #[test]
    fn variables_resolve_with_types_and_masks() {
        let t = zomboid();
        t.check().unwrap();
        let values = BTreeMap::from([
            ("ADMIN_PASSWORD".to_string(), "hunter2".to_string()),
            ("PORT".to_string(), "17000".to_string()),
        ]);
        let r = t.resolve(&values).unwrap();
        assert_eq!(r.spec.ports[0].host, Some(17000));
        assert_eq!(r.spec.env["ADMIN_PASSWORD"], "hunter2");
        // env keys are names, not fields: a value stays text.
        assert_eq!(r.spec.env["host"], "17000");
        assert_eq!(r.spec.resources.memory_bytes, Some(2147483648));
        assert_eq!(r.spec.labels["game"], "pz servertest");
        assert_eq!(r.shown["ADMIN_PASSWORD"], SECRET_MASK);
        assert_eq!(r.shown["PORT"], "17000");
    }

    #[test]
    fn each_mistake_has_its_code_and_names_the_field() {
        let t = zomboid();
        let missing = t.resolve(&BTreeMap::new()).unwrap_err();
        assert_eq!(missing.error_code, ErrorCode::MissingVariable);
        assert!(
            missing.error.contains("--set ADMIN_PASSWORD=VALUE"),
            "{}",
            missing.error
        );
        let unknown = t
            .resolve(&BTreeMap::from([("NOPE".into(), "1".into())]))
            .unwrap_err();
        assert_eq!(unknown.error_code, ErrorCode::UnknownVariable);
        // A value that does not fit its field names the variable and the field.
        for (variable, value, says) in [
            ("PORT", "seventeen", "spec.ports.0.host: "),
            (
                "PORT",
                "99999",
                "spec.ports.0.host: invalid value: integer `99999`",
            ),
            ("MEMORY", "lots", "spec.resources.memoryBytes: "),
        ] {
            let err = t
                .resolve(&BTreeMap::from([
                    ("ADMIN_PASSWORD".into(), "x".into()),
                    (variable.into(), value.into()),
                ]))
                .unwrap_err();
            assert_eq!(err.error_code, ErrorCode::TemplateInvalid);
            assert!(
                err.error.starts_with(&format!(
                    "{variable}={value} does not fit the template: {says}"
                )),
                "{}",
                err.error
            );
        }

        let mut undeclared = zomboid();
        undeclared.spec["cmd"] = serde_json::json!(["${WHO}"]);
        let err = undeclared.check().unwrap_err();
        assert!(
            err.error.starts_with("spec.cmd.0: uses ${WHO}"),
            "{}",
            err.error
        );

        let mut leaked = zomboid();
        leaked.spec["labels"]["pw"] = serde_json::json!("${ADMIN_PASSWORD}");
        let err = leaked.check().unwrap_err();
        assert!(
            err.error.contains("may only be used in env"),
            "{}",
            err.error
        );

        let mut unknown_field = zomboid();
        unknown_field.spec["hostConfig"] = serde_json::json!({});
        let err = unknown_field.check().unwrap_err();
        assert!(
            err.error.contains("unknown field `hostConfig`"),
            "{}",
            err.error
        );

        let mut bad_image = zomboid();
        bad_image.spec["image"] = serde_json::json!("Not An Image");
        let err = bad_image.check().unwrap_err();
        assert!(err.error.starts_with("spec.image: "), "{}", err.error);

        // Privileged is expressible (so the agent can refuse it by name) and passes here.
        let mut privileged = zomboid();
        privileged.spec["privileged"] = serde_json::json!(true);
        privileged.check().unwrap();
    }
}
