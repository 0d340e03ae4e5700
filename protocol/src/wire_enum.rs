//! `wire_enum!`: a field-less enum declared from one list of its variants with their wire
//! spellings, so that the enum, `ALL`, `as_str`, `parse` and `Display` cannot drift apart.

/// Declares `pub enum $name` with the derives every wire enum has (`Copy`, `Eq`, `Hash`, serde
/// and the JSON Schema) plus the attributes given (its serde renaming, more derives), and from
/// the same list `ALL` (declaration order), `as_str` (the wire spelling), `parse` (its inverse)
/// and `Display` (the wire spelling). The spellings must be the ones serde writes: the test
/// below checks every enum declared this way.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)*
        }
    ) => {
        // First, so that the serde attributes given below it are known.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$(Self::$variant,)*];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }

            /// The value with this wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    use crate::*;

    fn spelled_as_serde_writes<T: serde::Serialize + Copy>(
        all: &[T],
        as_str: fn(T) -> &'static str,
    ) {
        for &value in all {
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, format!("\"{}\"", as_str(value)));
        }
    }

    #[test]
    fn every_wire_enum_is_spelled_as_serde_writes_it() {
        spelled_as_serde_writes(ErrorCode::ALL, ErrorCode::as_str);
        spelled_as_serde_writes(ContainerAction::ALL, ContainerAction::as_str);
    }
}
