//! The envelope parser on arbitrary bytes: it never panics, and whatever it accepts is an
//! object with a string event whose id, when present, is echoed intact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vania_ws_core::{ErrorCode, Envelope, Frame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Envelope::parse(text) {
        Ok(envelope) => {
            assert!(text.trim_start().starts_with('{'));
            if let Some(id) = envelope.id {
                let ack = Frame::ack(id, "null");
                let back: serde_json::Value = serde_json::from_str(ack.as_str()).unwrap();
                assert_eq!(back["id"].as_u64(), Some(id));
            }
        }
        Err(refused) => {
            assert!(matches!(
                refused.error.code,
                ErrorCode::InvalidJson | ErrorCode::InvalidEnvelope
            ));
            // Every error frame is valid JSON.
            let frame = Frame::error(refused.id, &refused.error);
            serde_json::from_str::<serde_json::Value>(frame.as_str()).unwrap();
        }
    }
});
