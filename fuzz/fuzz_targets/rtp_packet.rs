//! Any datagram on a call's RTP port: read as RTP or refused with a reason, never a panic; a packet that
//! reads writes back (without CSRCs, extension or padding) to one that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_telephony::sip::rtp;

fuzz_target!(|data: &[u8]| {
    let _ = rtp::is_rtcp(data);
    if let Ok(packet) = rtp::decode(data) {
        let bytes = rtp::encode(&packet.header, packet.payload);
        assert_eq!(rtp::decode(&bytes), Ok(packet));
        if let Ok(event) = rtp::decode_event(packet.payload) {
            assert_eq!(rtp::encode_event(&event)[0], event.event);
            let _ = rtp::event_key(event.event);
        }
    }
});
