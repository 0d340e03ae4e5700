//! The envelope every frame travels in, and strict decoding of incoming frames.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::ProtocolError;
use crate::limits::{MAX_FRAME_BYTES, MAX_SUBJECT_LEN, check_len};
use crate::subject::is_inbox;

/// An outgoing frame: `{subject, reply?, data}`.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    pub subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<&'a str>,
    pub data: T,
}

impl<'a, T: Serialize> Envelope<'a, T> {
    /// A frame that expects no answer (pushes, heartbeats, replies).
    pub fn new(subject: &'a str, data: T) -> Self {
        Self {
            subject,
            reply: None,
            data,
        }
    }

    /// A request whose answer goes to `reply`.
    pub fn request(subject: &'a str, reply: &'a str, data: T) -> Self {
        Self {
            subject,
            reply: Some(reply),
            data,
        }
    }

    /// The JSON text of this frame.
    pub fn to_json(&self) -> String {
        // Serialising our own payload types cannot fail: they hold only strings, numbers and maps
        // with string keys.
        serde_json::to_string(self).expect("protocol types always serialise")
    }
}

/// An incoming frame, decoded just far enough to route it; `data` stays raw until the
/// receiver knows which payload type to expect.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    pub subject: String,
    #[serde(default)]
    pub reply: Option<String>,
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

impl Frame {
    /// Decodes one text frame, refusing oversize input, unknown envelope fields, over-long
    /// subjects and reply subjects that are not inboxes.
    pub fn decode(text: &str) -> Result<Self, ProtocolError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(ProtocolError::TooLarge { len: text.len() });
        }
        let frame: Frame =
            serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        check_len("subject", &frame.subject, MAX_SUBJECT_LEN)?;
        if let Some(reply) = &frame.reply
            && (reply.len() > MAX_SUBJECT_LEN || !is_inbox(reply))
        {
            return Err(ProtocolError::invalid(
                "reply",
                "must be an _INBOX. subject",
            ));
        }
        Ok(frame)
    }

    /// Decodes `data` strictly as `T` (unknown fields refused) and checks its limits.
    /// A missing `data` decodes as `{}`.
    pub fn payload<T: DeserializeOwned + crate::payload::Validate>(
        &self,
    ) -> Result<T, ProtocolError> {
        let raw = self.data.as_deref().map(RawValue::get).unwrap_or("{}");
        let value: T =
            serde_json::from_str(raw).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        value.validate()?;
        Ok(value)
    }

    /// The raw JSON text of `data` (`null` when absent).
    pub fn raw_data(&self) -> &str {
        self.data.as_deref().map(RawValue::get).unwrap_or("null")
    }
}

/// A fresh inbox subject from a caller-supplied unique suffix (a UUID in practice).
pub fn new_inbox_suffix(suffix: impl std::fmt::Display) -> String {
    format!("{}{}", crate::subject::INBOX_PREFIX, suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::ContainerActionRequest;

    #[test]
    fn round_trips_a_request() {
        let data = ContainerActionRequest {
            agent_id: "a1".into(),
            container_id: "web".into(),
        };
        let text = Envelope::request("container.start", "_INBOX.1", &data).to_json();
        assert_eq!(
            text,
            r#"{"subject":"container.start","reply":"_INBOX.1","data":{"agentId":"a1","containerId":"web"}}"#
        );
        let frame = Frame::decode(&text).unwrap();
        assert_eq!(frame.subject, "container.start");
        assert_eq!(frame.reply.as_deref(), Some("_INBOX.1"));
        let back: ContainerActionRequest = frame.payload().unwrap();
        assert_eq!(back.container_id, "web");
    }

    #[test]
    fn refuses_unknown_fields_and_bad_input() {
        assert!(matches!(
            Frame::decode("{nope"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            Frame::decode(r#"{"subject":"x","extra":1}"#),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            Frame::decode(r#"{"subject":"x","reply":"not-an-inbox"}"#),
            Err(ProtocolError::Invalid { .. })
        ));
        assert!(matches!(
            Frame::decode(r#"{"subject":"x","reply":"_INBOX.a\",\"b"}"#),
            Err(ProtocolError::Invalid { .. })
        ));
        let big = format!(r#"{{"subject":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        assert!(matches!(
            Frame::decode(&big),
            Err(ProtocolError::TooLarge { .. })
        ));
        let frame = Frame::decode(
            r#"{"subject":"container.start","data":{"agentId":"a","containerId":"b","x":1}}"#,
        )
        .unwrap();
        assert!(frame.payload::<ContainerActionRequest>().is_err());
        let frame = Frame::decode(
            r#"{"subject":"container.start","data":{"agentId":"a","containerId":""}}"#,
        )
        .unwrap();
        assert!(matches!(
            frame.payload::<ContainerActionRequest>(),
            Err(ProtocolError::Invalid { .. })
        ));
    }
}
