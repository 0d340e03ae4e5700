//! Names for the strings that identify things, so a function that wants an agent's id cannot be
//! handed a container's, and "an id or a name" is a type of its own. Each is the bare JSON string
//! on the wire (`#[serde(transparent)]`), so the wire format does not change.
//!
//! They deref to `str`, so reading one is as easy as reading a `String`; making one from text
//! is explicit (`AgentId::from(s)`, `.into()`).

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[doc = $doc:expr])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "specta", derive(specta::Type))]
        #[serde(transparent)]
        pub struct $name(pub String);

        /// The plain string the wire carries, inlined: the JSON Schema reads as it did before
        /// the type existed.
        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                String::schema_name()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(generator)
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }
    };
}

string_id! {
    /// An agent's id at the relay: a UUID the relay gave it at enrolment.
    AgentId
}

string_id! {
    /// What a request names an agent by: its id or its unique name. The relay resolves it to an
    /// [`AgentId`] (ids first; a name may not look like an id, see
    /// [`crate::payload::looks_like_agent_id`]).
    AgentRef
}

string_id! {
    /// A container's full 64-hex id, as Docker reports it.
    ContainerId
}

string_id! {
    /// What a request names a container by: its full id, an id prefix, or its name (with or
    /// without Docker's leading `/`); the agent's Docker engine resolves it.
    ContainerRef
}

string_id! {
    /// A device session's id at the relay (not its secret token).
    SessionId
}

impl From<AgentId> for AgentRef {
    /// An id is always a valid reference.
    fn from(id: AgentId) -> Self {
        Self(id.0)
    }
}

impl From<ContainerId> for ContainerRef {
    /// An id is always a valid reference.
    fn from(id: ContainerId) -> Self {
        Self(id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_strings_on_the_wire() {
        let id = AgentId::from("3f2b8c1e-4d5a-4e6f-9a7b-0c1d2e3f4a5b");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            r#""3f2b8c1e-4d5a-4e6f-9a7b-0c1d2e3f4a5b""#
        );
        let back: AgentId = serde_json::from_str(r#""abc""#).unwrap();
        assert_eq!(back, "abc");
        assert_eq!(back.len(), 3);
        assert_eq!(AgentRef::from(back.clone()).as_str(), "abc");
        assert!(serde_json::from_str::<ContainerRef>("1").is_err());
        let mut set = std::collections::HashSet::new();
        set.insert(SessionId::from("s1"));
        assert!(set.contains("s1"));
    }
}
