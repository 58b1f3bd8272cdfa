//! Any text as the SDP offer of an INVITE: negotiated or refused with a reason, never a panic; what we
//! answer to an offer we accept reads back to the same codec and events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_telephony::sip::sdp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = sdp::parse(text) else {
        return;
    };
    if let Ok(negotiated) = sdp::negotiate(&offer) {
        let answer = sdp::answer("127.0.0.1".parse().unwrap(), 10_000, &negotiated, 1, 1);
        let back = sdp::negotiate(&sdp::parse(&answer).expect("our answer parses"))
            .expect("our answer negotiates");
        assert_eq!(back.codec, negotiated.codec);
        assert_eq!(back.payload_type, negotiated.payload_type);
        assert_eq!(back.dtmf_payload_type, negotiated.dtmf_payload_type);
    }
});
