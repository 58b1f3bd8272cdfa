//! Any bytes as an AudioSocket TCP stream: read message by message as the server does. Every message
//! takes at least its header and never more than was read, and a message that decodes encodes back to bytes
//! that decode to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_telephony::audiosocket::{self, HEADER_BYTES};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Some((frame, used)) = audiosocket::decode(rest) {
        assert!((HEADER_BYTES..=rest.len()).contains(&used));
        if let Ok(frame) = frame {
            let bytes = audiosocket::encode(&frame);
            // A hang-up's payload and all but an error's first byte are ignored; every other message
            // is rebuilt byte for byte.
            if !matches!(rest[0], 0x00 | 0xff) {
                assert_eq!(bytes, rest[..used]);
            }
            assert_eq!(
                audiosocket::decode(&bytes),
                Some((Ok(frame), bytes.len()))
            );
        }
        rest = &rest[used..];
    }
});
