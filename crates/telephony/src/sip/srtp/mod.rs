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
mod tests;
