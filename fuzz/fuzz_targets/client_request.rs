//! Any frame decoded as each payload a peer may send: strict decoding and validation never
//! panic, and an accepted payload stays within its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zedops_protocol::payload::Validate;
use zedops_protocol::*;

fn check<T: serde::de::DeserializeOwned + Validate>(frame: &Frame) -> Option<T> {
    frame.payload::<T>().ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frame) = Frame::decode(text) else { return };
    if let Some(r) = check::<ContainerActionRequest>(&frame) {
        let bare = r.container_id.trim_start_matches('/');
        assert!(!bare.contains('/') && !bare.starts_with('.'), "{:?}", r.container_id);
        assert!(r.agent_id.len() <= MAX_AGENT_REF_LEN);
    }
    if let Some(r) = check::<AgentRegister>(&frame) {
        assert!(payload::is_valid_name(&r.name));
    }
    let _ = check::<AgentAuth>(&frame);
    let _ = check::<ClientHello>(&frame);
    let _ = check::<ContainerListRequest>(&frame);
    let _ = check::<ContainerListResponse>(&frame);
    let _ = check::<OperationError>(&frame);
    let _ = check::<ErrorReply>(&frame);
    let _ = check::<AuditListRequest>(&frame);
    let _ = check::<TokenCreateRequest>(&frame);
    let _ = check::<SessionRevokeRequest>(&frame);
});
