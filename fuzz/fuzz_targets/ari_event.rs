//! Any text as an event on the ARI WebSocket: decoded or refused with a reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_telephony::ari;

fuzz_target!(|data: &[u8]| {
    let _ = ari::decode_event(&String::from_utf8_lossy(data));
});
