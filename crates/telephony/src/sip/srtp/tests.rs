//! SRTP against RFC 3711's vectors, libsrtp's output, forgeries, replays and wrapping sequence numbers.

use super::*;

fn hex(text: &str) -> Vec<u8> {
    let text: String = text.split_whitespace().collect();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn master(key: &str, salt: &str) -> MasterKey {
    let mut bytes = [0u8; 30];
    bytes[..16].copy_from_slice(&hex(key));
    bytes[16..].copy_from_slice(&hex(salt));
    MasterKey::from_bytes(&bytes)
}

#[test]
fn the_counter_mode_keystream_matches_rfc_3711_appendix_b2() {
    let cipher = Aes128::new(GenericArray::from_slice(&hex(
        "2B7E151628AED2A6ABF7158809CF4F3C",
    )));
    let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
    let mut stream = [0u8; 48];
    keystream_xor(&cipher, iv, &mut stream);
    assert_eq!(
        stream.to_vec(),
        hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB \
             41E95B3BB0A2E8DD477901E4FCA894C0"
        )
    );
}

#[test]
fn session_keys_derive_as_rfc_3711_appendix_b3() {
    let key = master(
        "E1F97A0D3E018BE0D64FA32C06DE4139",
        "0EC675AD498AFEEBB6960B3AABE6",
    );
    let keys = SessionKeys::rtp(&key);
    assert_eq!(keys.salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    // The cipher key, seen through the block it encrypts.
    let mut block = GenericArray::from([0u8; 16]);
    keys.cipher.encrypt_block(&mut block);
    let expected = Aes128::new(GenericArray::from_slice(&hex(
        "C61E7A93744F39EE10734AFE3FF7A087",
    )));
    let mut reference = GenericArray::from([0u8; 16]);
    expected.encrypt_block(&mut reference);
    assert_eq!(block, reference);
    // The authentication key, seen through a MAC it makes.
    let made = keys.mac(&[b"abc"]).finalize().into_bytes();
    let reference =
        <Hmac<Sha1> as Mac>::new_from_slice(&hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"))
            .unwrap()
            .chain_update(b"abc")
            .finalize()
            .into_bytes();
    assert_eq!(made, reference);
}

fn rtp_packet(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x80, 0x00];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&0xCAFE_BABEu32.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

#[test]
fn packets_are_protected_byte_for_byte_as_libsrtp_protects_them() {
    // libsrtp 2 (through PyPI's pylibsrtp 1.0.0) with RFC 3711 B.3's master key, on an RTP packet of
    // sequence 7 with a 32-byte payload of 0, 1, 2, ... and an RTCP sender report; libsrtp numbers
    // its first SRTCP packet 1, ours is our second.
    let key = master(
        "E1F97A0D3E018BE0D64FA32C06DE4139",
        "0EC675AD498AFEEBB6960B3AABE6",
    );
    let payload: Vec<u8> = (0..32).collect();
    let rtcp: Vec<u8> = [0x80, 200, 0, 6, 0xCA, 0xFE, 0xBA, 0xBE]
        .into_iter()
        .chain(1..25)
        .collect();
    let rtp = "8000000700000460cafebabe6c95ddaf617d082951f1f648e79b47136b99eb53ba780551ad787db32fad99\
               c11a61a510";
    let rtcp_by_libsrtp = "80c80006cafebabedb81abf44a2a151e1c5930e65fd201136f56003ed4023a3f\
                           80000001ddfcc32474c200fb2841";
    for (suite, tag) in [
        (Suite::AesCm128HmacSha1_80, "cc337e85c436"),
        (Suite::AesCm128HmacSha1_32, ""),
    ] {
        let mut sender = Sender::new(suite, &key);
        let protected = sender.protect_rtp(&rtp_packet(7, &payload)).unwrap();
        assert_eq!(protected, hex(&format!("{rtp}{tag}")), "{suite:?}");
        sender.protect_rtcp(&rtcp).unwrap();
        assert_eq!(sender.protect_rtcp(&rtcp).unwrap(), hex(rtcp_by_libsrtp));
        let mut receiver = Receiver::new(suite, &key);
        assert_eq!(
            receiver.unprotect_rtp(&protected).unwrap(),
            rtp_packet(7, &payload)
        );
        assert_eq!(
            receiver.unprotect_rtcp(&hex(rtcp_by_libsrtp)).unwrap(),
            rtcp
        );
    }
}

#[test]
fn what_one_side_protects_the_other_takes_once_and_a_forgery_never() {
    for suite in Suite::ALL {
        let key = MasterKey::random();
        let mut sender = Sender::new(suite, &key);
        let mut receiver = Receiver::new(suite, &key);
        let plain = rtp_packet(7, &[0x55; 160]);
        let protected = sender.protect_rtp(&plain).unwrap();
        assert_eq!(protected.len(), plain.len() + suite.rtp_tag());
        assert_eq!(protected[..12], plain[..12], "the header stays readable");
        assert_ne!(protected[12..172], plain[12..], "the payload does not");
        assert_eq!(receiver.unprotect_rtp(&protected).unwrap(), plain);
        assert_eq!(receiver.unprotect_rtp(&protected), Err(SrtpError::Replayed));
        let mut forged = sender.protect_rtp(&rtp_packet(8, &[0x55; 160])).unwrap();
        forged[20] ^= 1;
        assert_eq!(
            receiver.unprotect_rtp(&forged),
            Err(SrtpError::Authentication)
        );
        // Another key's packets are refused too.
        let mut stranger = Sender::new(suite, &MasterKey::random());
        let theirs = stranger.protect_rtp(&rtp_packet(9, &[1; 160])).unwrap();
        assert_eq!(
            receiver.unprotect_rtp(&theirs),
            Err(SrtpError::Authentication)
        );
        assert_eq!(
            receiver.unprotect_rtp(&[0x80; 8]),
            Err(SrtpError::Malformed)
        );
    }
}

#[test]
fn sequence_numbers_wrap_and_late_packets_within_the_window_are_taken() {
    let key = MasterKey::random();
    let mut sender = Sender::new(Suite::AesCm128HmacSha1_80, &key);
    let mut receiver = Receiver::new(Suite::AesCm128HmacSha1_80, &key);
    let seqs: Vec<u16> = (65_530..=65_535).chain(0..6).collect();
    let packets: Vec<(Vec<u8>, Vec<u8>)> = seqs
        .iter()
        .map(|&s| {
            let plain = rtp_packet(s, &[s as u8; 20]);
            let protected = sender.protect_rtp(&plain).unwrap();
            (plain, protected)
        })
        .collect();
    // Out of order around the wrap: 65530, 65532, 65531, 1, 65533..., as a network reorders.
    let order = [0usize, 2, 1, 7, 3, 4, 5, 6, 8, 9, 10, 11];
    for i in order {
        assert_eq!(
            receiver.unprotect_rtp(&packets[i].1).as_ref(),
            Ok(&packets[i].0),
            "packet {}",
            seqs[i]
        );
    }
    assert_eq!(receiver.highest, Some((1 << 16) | 5));
}

#[test]
fn srtcp_round_trips_with_its_index_and_refuses_a_forgery() {
    let key = MasterKey::random();
    let mut sender = Sender::new(Suite::AesCm128HmacSha1_32, &key);
    let mut receiver = Receiver::new(Suite::AesCm128HmacSha1_32, &key);
    let report = [
        0x80, 200, 0, 6, 0xCA, 0xFE, 0xBA, 0xBE, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24,
    ];
    for expected_index in 0..3u32 {
        let protected = sender.protect_rtcp(&report).unwrap();
        assert_eq!(protected.len(), report.len() + 4 + 10);
        let word = &protected[report.len()..report.len() + 4];
        assert_eq!(word, (expected_index | 0x8000_0000).to_be_bytes());
        assert_ne!(protected[8..report.len()], report[8..]);
        assert_eq!(receiver.unprotect_rtcp(&protected).unwrap(), report);
    }
    let mut forged = sender.protect_rtcp(&report).unwrap();
    forged[9] ^= 0x40;
    assert_eq!(
        receiver.unprotect_rtcp(&forged),
        Err(SrtpError::Authentication)
    );
}

#[test]
fn keys_read_back_from_their_inline_form_and_never_print() {
    let key = MasterKey::random();
    let inline = key.to_inline();
    assert_eq!(inline.len(), 40);
    assert_eq!(MasterKey::from_inline(&inline), Ok(key));
    assert_eq!(MasterKey::from_inline("c2hvcnQ="), Err(KeyError));
    assert_eq!(MasterKey::from_inline("not base64!"), Err(KeyError));
    assert_eq!(format!("{key:?}"), "MasterKey(..)");
}
