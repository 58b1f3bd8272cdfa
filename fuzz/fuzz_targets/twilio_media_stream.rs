//! Any text as a Twilio Media Streams message: decoded or refused with a reason, never a panic, and the
//! decoded audio never larger than the message that carried it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_telephony::twilio::stream::{self, Event};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(message) = stream::decode(&text)
        && let Event::Media(media) = message.event
    {
        assert!(media.payload.len() <= text.len());
    }
});
