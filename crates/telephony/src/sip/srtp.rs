//! SRTP and SRTCP (RFC 3711) with the SDES suites SIP phones and PBXs offer (RFC 4568): AES-128 in
//! counter mode with HMAC-SHA1, an 80- or 32-bit tag on RTP and 80 bits on RTCP. The master keys travel
//! in the SDP's `a=crypto` lines, so they are secret only when the signalling is (SIP over TLS).
//!
//! Pure functions of packets: [`Sender`] protects what we send, [`Receiver`] authenticates what comes
//! in (refusing forgeries and replays) and decrypts it.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Bytes of a master key.
const MASTER_KEY: usize = 16;
/// Bytes of a master salt.
const MASTER_SALT: usize = 14;
/// Bytes of the HMAC-SHA1 session key.
const AUTH_KEY: usize = 20;
/// Bytes of the tag on SRTCP packets, whatever the suite.
const RTCP_TAG: usize = 10;
/// Packets behind the newest one still taken (RFC 3711 §3.3.2's minimum window).
const REPLAY_WINDOW: u64 = 64;

/// The key-derivation labels of RFC 3711 §4.3.1.
const LABEL_RTP_ENCRYPTION: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_ENCRYPTION: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Too short, or its header runs past its end.
    #[error("not an SRTP packet (too short or a header longer than the packet)")]
    Malformed,
    /// The tag does not match: a forgery, a damaged packet or the wrong key.
    #[error("the SRTP packet failed authentication")]
    Authentication,
    /// Seen already, or too old to tell.
    #[error("the SRTP packet was replayed")]
    Replayed,
}

/// Why an `a=crypto` key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an SRTP master key must be 30 bytes in base64 (16 of key, 14 of salt)")]
pub struct KeyError;

/// The crypto suites we take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 4568's default).
    AesCm128HmacSha1_80,
    /// The same with a 32-bit tag on RTP (SRTCP keeps 80).
    AesCm128HmacSha1_32,
}

impl Suite {
    /// Every suite, in the order we prefer them.
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    /// The name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite `a=crypto` names, when we take it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    fn rtp_tag(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// A master key and salt: one side's sending key. Never printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey {
    key: [u8; MASTER_KEY],
    salt: [u8; MASTER_SALT],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh key from the operating system's random source.
    pub fn random() -> Self {
        let mut bytes = [0u8; MASTER_KEY + MASTER_SALT];
        // getrandom fails only where the OS has no random source, and then nothing here is safe to run.
        if let Err(e) = getrandom::fill(&mut bytes) {
            panic!("the operating system gave no random bytes for an SRTP key: {e}");
        }
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8; MASTER_KEY + MASTER_SALT]) -> Self {
        let mut key = [0u8; MASTER_KEY];
        let mut salt = [0u8; MASTER_SALT];
        key.copy_from_slice(&bytes[..MASTER_KEY]);
        salt.copy_from_slice(&bytes[MASTER_KEY..]);
        Self { key, salt }
    }

    /// Reads the key of `inline:KEY` (base64 of key then salt).
    pub fn from_inline(text: &str) -> Result<Self, KeyError> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| KeyError)?;
        let bytes: [u8; MASTER_KEY + MASTER_SALT] = bytes.try_into().map_err(|_| KeyError)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The key as `inline:` writes it.
    pub fn to_inline(&self) -> String {
        let mut bytes = Vec::with_capacity(MASTER_KEY + MASTER_SALT);
        bytes.extend_from_slice(&self.key);
        bytes.extend_from_slice(&self.salt);
        BASE64.encode(bytes)
    }
}

/// The session keys of one stream (RTP or RTCP) of one direction.
struct SessionKeys {
    cipher: Aes128,
    auth: Hmac<Sha1>,
    salt: [u8; MASTER_SALT],
}

impl SessionKeys {
    /// Derives them from `master` with the three labels of RFC 3711 §4.3 (key derivation rate 0).
    fn derive(master: &MasterKey, labels: [u8; 3]) -> Self {
        let prf = Aes128::new(GenericArray::from_slice(&master.key));
        let derive = |label: u8, out: &mut [u8]| {
            // x = (label || index DIV kdr) XOR master salt, the label at the 7th byte from the end.
            let mut iv = [0u8; 16];
            iv[..MASTER_SALT].copy_from_slice(&master.salt);
            iv[7] ^= label;
            out.fill(0);
            keystream_xor(&prf, iv, out);
        };
        let mut key = [0u8; MASTER_KEY];
        let mut auth = [0u8; AUTH_KEY];
        let mut salt = [0u8; MASTER_SALT];
        derive(labels[0], &mut key);
        derive(labels[1], &mut auth);
        derive(labels[2], &mut salt);
        Self {
            cipher: Aes128::new(GenericArray::from_slice(&key)),
            // HMAC takes a key of any length.
            auth: <Hmac<Sha1> as Mac>::new_from_slice(&auth)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
            salt,
        }
    }

    fn rtp(master: &MasterKey) -> Self {
        Self::derive(
            master,
            [LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT],
        )
    }

    fn rtcp(master: &MasterKey) -> Self {
        Self::derive(
            master,
            [LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT],
        )
    }

    /// Encrypts or decrypts `data` of the packet `index` from `ssrc` (AES-CM, RFC 3711 §4.1.1).
    fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..MASTER_SALT].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= i;
        }
        keystream_xor(&self.cipher, iv, data);
    }

    /// The full HMAC-SHA1 of `parts`, in order.
    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha1> {
        let mut mac = self.auth.clone();
        for part in parts {
            mac.update(part);
        }
        mac
    }
}

/// XORs `data` with the AES counter-mode keystream from `iv`.
fn keystream_xor(cipher: &Aes128, iv: [u8; 16], data: &mut [u8]) {
    let start = u128::from_be_bytes(iv);
    for (j, chunk) in data.chunks_mut(16).enumerate() {
        let mut block = GenericArray::from(start.wrapping_add(j as u128).to_be_bytes());
        cipher.encrypt_block(&mut block);
        for (d, k) in chunk.iter_mut().zip(block.iter()) {
            *d ^= k;
        }
    }
}

/// Length of an RTP packet's header (fixed part, CSRCs and extension), checked against the packet.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if len > packet.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

fn ssrc_at(packet: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]])
}

/// Protects what we send with our master key.
pub struct Sender {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    /// Rollover counter and the last sequence number sent.
    roc: u32,
    last_seq: Option<u16>,
    rtcp_index: u32,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("srtp::Sender")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender with `key` in `suite`.
    pub fn new(suite: Suite, key: &MasterKey) -> Self {
        Self {
            suite,
            rtp: SessionKeys::rtp(key),
            rtcp: SessionKeys::rtcp(key),
            roc: 0,
            last_seq: None,
            rtcp_index: 0,
        }
    }

    /// The SRTP packet of an RTP packet (sequence numbers in sending order).
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let header = rtp_header_len(packet)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        if self
            .last_seq
            .is_some_and(|last| seq < last && last - seq > 0x8000)
        {
            self.roc = self.roc.wrapping_add(1);
        }
        self.last_seq = Some(seq);
        let index = (u64::from(self.roc) << 16) | u64::from(seq);
        let mut out = Vec::with_capacity(packet.len() + self.suite.rtp_tag());
        out.extend_from_slice(packet);
        self.rtp
            .crypt(ssrc_at(packet, 8), index, &mut out[header..]);
        let tag = self
            .rtp
            .mac(&[&out, &self.roc.to_be_bytes()])
            .finalize()
            .into_bytes();
        out.extend_from_slice(&tag[..self.suite.rtp_tag()]);
        Ok(out)
    }

    /// The SRTCP packet of an RTCP packet (or compound): all but its first 8 bytes encrypted, then
    /// the E flag with the SRTCP index, then the tag.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if packet.len() < 8 {
            return Err(SrtpError::Malformed);
        }
        let index = self.rtcp_index;
        self.rtcp_index = (index + 1) & 0x7fff_ffff;
        let mut out = Vec::with_capacity(packet.len() + 4 + RTCP_TAG);
        out.extend_from_slice(packet);
        self.rtcp
            .crypt(ssrc_at(packet, 4), u64::from(index), &mut out[8..]);
        out.extend_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let tag = self.rtcp.mac(&[&out]).finalize().into_bytes();
        out.extend_from_slice(&tag[..RTCP_TAG]);
        Ok(out)
    }
}

/// Authenticates and decrypts what the peer sends with its master key.
pub struct Receiver {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    /// The highest packet index taken, and which of the REPLAY_WINDOW before it were taken too.
    highest: Option<u64>,
    window: u64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("srtp::Receiver")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver of a peer that sends with `key` in `suite`.
    pub fn new(suite: Suite, key: &MasterKey) -> Self {
        Self {
            suite,
            rtp: SessionKeys::rtp(key),
            rtcp: SessionKeys::rtcp(key),
            highest: None,
            window: 0,
        }
    }

    /// The packet index of sequence number `seq`: the one nearest the highest taken (RFC 3711 §3.3.1).
    fn index_of(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            return u64::from(seq);
        };
        let roc = highest >> 16;
        let candidates = [roc.wrapping_sub(1), roc, roc + 1];
        candidates
            .into_iter()
            .filter(|r| *r <= u64::from(u32::MAX))
            .map(|r| (r << 16) | u64::from(seq))
            .min_by_key(|i| i.abs_diff(highest))
            .unwrap_or(u64::from(seq))
    }

    fn replayed(&self, index: u64) -> bool {
        match self.highest {
            None => false,
            Some(highest) if index > highest => false,
            Some(highest) => {
                let behind = highest - index;
                behind >= REPLAY_WINDOW || self.window & (1 << behind) != 0
            }
        }
    }

    fn taken(&mut self, index: u64) {
        match self.highest {
            Some(highest) if index <= highest => self.window |= 1 << (highest - index),
            Some(highest) => {
                let ahead = index - highest;
                self.window = if ahead >= REPLAY_WINDOW {
                    1
                } else {
                    (self.window << ahead) | 1
                };
                self.highest = Some(index);
            }
            None => {
                self.highest = Some(index);
                self.window = 1;
            }
        }
    }

    /// The RTP packet inside an SRTP packet, once its tag is checked and it is not a replay.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let tag_len = self.suite.rtp_tag();
        if packet.len() < 12 + tag_len {
            return Err(SrtpError::Malformed);
        }
        let (body, tag) = packet.split_at(packet.len() - tag_len);
        let header = rtp_header_len(body)?;
        let seq = u16::from_be_bytes([body[2], body[3]]);
        let index = self.index_of(seq);
        if self.replayed(index) {
            return Err(SrtpError::Replayed);
        }
        let roc = (index >> 16) as u32;
        self.rtp
            .mac(&[body, &roc.to_be_bytes()])
            .verify_truncated_left(tag)
            .map_err(|_| SrtpError::Authentication)?;
        let mut out = body.to_vec();
        self.rtp.crypt(ssrc_at(body, 8), index, &mut out[header..]);
        self.taken(index);
        Ok(out)
    }

    /// The RTCP packet inside an SRTCP packet, once its tag is checked.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if packet.len() < 8 + 4 + RTCP_TAG {
            return Err(SrtpError::Malformed);
        }
        let (body, tag) = packet.split_at(packet.len() - RTCP_TAG);
        self.rtcp
            .mac(&[body])
            .verify_truncated_left(tag)
            .map_err(|_| SrtpError::Authentication)?;
        let (rtcp, trailer) = body.split_at(body.len() - 4);
        let word = u32::from_be_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let mut out = rtcp.to_vec();
        if word & 0x8000_0000 != 0 {
            self.rtcp.crypt(
                ssrc_at(rtcp, 4),
                u64::from(word & 0x7fff_ffff),
                &mut out[8..],
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
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
            0x80, 200, 0, 6, 0xCA, 0xFE, 0xBA, 0xBE, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
            15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
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
}
