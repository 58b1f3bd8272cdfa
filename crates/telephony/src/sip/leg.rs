//! One SIP call's RTP leg, carried by the server on the session's clock: what it takes in (see [`RtpPeer`] for whose packets), the jitter buffer the
//! session's 20 ms clock reads, the agent's audio out in the negotiated law, key presses out as RFC 4733
//! events, and RTCP sender reports; all of it SRTP when the SDP negotiated keys.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use switchboard_audio::{JitterBuffer, JitterOptions, JitterStats, SampleRate, g711, pcm};
use tokio::sync::watch;

use super::peer::RtpPeer;
use super::ports::RtpSockets;
use super::rtp::{self, RtpSender};
use super::sdp::{Codec, Negotiated, SrtpKeys};
use super::srtp;

/// Samples of one 20 ms frame at 8 kHz.
const FRAME: usize = 160;
/// A key press we send lasts 100 ms (800 timestamp units at 8 kHz), updated every 20 ms.
const KEY_PRESS: u16 = 800;
const KEY_PRESS_STEP: u16 = FRAME as u16;
/// The pause after each key press: three 20 ms frames.
const KEY_GAP_FRAMES: usize = 3;

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes)
}

/// The audio of one call: whose packets it takes and where it sends (see [`RtpPeer`]), the outgoing
/// stream's counters, the jitter buffer of what comes in, and the last key press seen.
pub struct RtpLeg {
    /// The call's RTP and RTCP sockets: the carrier waits on them.
    pub sockets: RtpSockets,
    negotiated: watch::Receiver<Option<Negotiated>>,
    peer: RtpPeer,
    sender: RtpSender,
    jitter: JitterBuffer,
    started: Instant,
    /// Timestamp of the last key press handed on, so its repeated end packets count once.
    last_key: Option<u32>,
    /// Key presses being sent: the packets due on each coming 20 ms tick.
    keys_out: VecDeque<Vec<Vec<u8>>>,
    /// The agent's audio that came while key presses went out, sent on the ticks after them in order.
    held_audio: VecDeque<Vec<u8>>,
    bad_packets: u64,
    /// SRTP packets refused (failed authentication, replayed).
    unauthenticated: u64,
    crypto: Option<Crypto>,
}

impl std::fmt::Debug for RtpLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the SRTP keys.
        f.debug_struct("RtpLeg")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What a leg carried, for the log line at the end of a call.
#[derive(Debug, Clone, Copy)]
pub struct LegStats {
    /// The jitter buffer's counts of what came in.
    pub received: JitterStats,
    /// RTP packets sent.
    pub sent: u32,
    /// Datagrams that were not RTP.
    pub malformed: u64,
    /// Whether the call's media is SRTP.
    pub srtp: bool,
    /// SRTP packets refused (failed authentication, replayed).
    pub unauthenticated: u64,
    /// Packets refused for coming from elsewhere than the caller.
    pub refused: u64,
}

/// A call's SRTP, made when the negotiation names keys. A re-INVITE with new keys from the peer
/// replaces the receiver; ours stay for the call (its rollover counter with them, so no keystream is
/// ever used twice).
struct Crypto {
    keys: SrtpKeys,
    sender: srtp::Sender,
    receiver: srtp::Receiver,
}

impl Crypto {
    fn new(keys: SrtpKeys) -> Self {
        Self {
            keys,
            sender: srtp::Sender::new(keys.suite, &keys.ours),
            receiver: srtp::Receiver::new(keys.suite, &keys.theirs),
        }
    }
}

impl RtpLeg {
    /// The leg of a call whose media `negotiated` describes, on `sockets`; `symmetric_rtp` as
    /// SIP_SYMMETRIC_RTP says.
    pub fn new(
        sockets: RtpSockets,
        negotiated: watch::Receiver<Option<Negotiated>>,
        symmetric_rtp: bool,
    ) -> Self {
        Self {
            sockets,
            negotiated,
            peer: RtpPeer::new(symmetric_rtp),
            sender: RtpSender::new(random_u32(), random_u32() as u16, random_u32()),
            jitter: JitterBuffer::new(SampleRate::Hz8000, JitterOptions::default()),
            started: Instant::now(),
            last_key: None,
            keys_out: VecDeque::new(),
            held_audio: VecDeque::new(),
            bad_packets: 0,
            unauthenticated: 0,
            crypto: None,
        }
    }

    /// The caller spoke over the agent: the agent audio held behind key presses is not played either.
    pub fn clear_held(&mut self) {
        self.held_audio.clear();
    }

    /// What the leg carried so far.
    pub fn stats(&self) -> LegStats {
        LegStats {
            received: self.jitter.stats(),
            sent: self.sender.packets,
            malformed: self.bad_packets,
            srtp: self.current().is_some_and(|n| n.srtp.is_some()),
            unauthenticated: self.unauthenticated,
            refused: self.peer.refused(),
        }
    }

    /// The call's SRTP as last negotiated; `None` for plain RTP.
    fn crypto(&mut self) -> Option<&mut Crypto> {
        let keys = self.current()?.srtp?;
        match &mut self.crypto {
            Some(crypto) if crypto.keys == keys => {}
            Some(crypto) if crypto.keys.ours == keys.ours && crypto.keys.suite == keys.suite => {
                crypto.receiver = srtp::Receiver::new(keys.suite, &keys.theirs);
                crypto.keys = keys;
            }
            slot => *slot = Some(Crypto::new(keys)),
        }
        self.crypto.as_mut()
    }

    /// `packet` as it goes on the wire: SRTP-protected when the call is; `None` when it cannot be.
    fn wire(&mut self, packet: Vec<u8>) -> Option<Vec<u8>> {
        match self.crypto() {
            Some(crypto) => crypto.sender.protect_rtp(&packet).ok(),
            None => Some(packet),
        }
    }

    pub fn current(&self) -> Option<Negotiated> {
        *self.negotiated.borrow()
    }

    /// Where our RTP goes; `None` on hold.
    fn destination(&self) -> Option<(SocketAddr, Negotiated)> {
        let negotiated = self.current()?;
        if !negotiated.sending() {
            return None;
        }
        Some((self.peer.destination(negotiated.remote)?, negotiated))
    }

    /// Schedules `digits` as RFC 4733 key presses, one packet slot per 20 ms tick; false when the peer
    /// took no telephone events.
    pub fn queue_keys(&mut self, digits: &str) -> bool {
        let Some(payload_type) = self.current().and_then(|n| n.dtmf_payload_type) else {
            return false;
        };
        for event in digits.chars().filter_map(rtp::key_event) {
            let packets = self
                .sender
                .key_press(payload_type, event, KEY_PRESS, KEY_PRESS_STEP);
            // One update per tick; the end packet's three copies go out together on the last one.
            let (updates, ends) = packets.split_at(packets.len().saturating_sub(3));
            self.keys_out
                .extend(updates.iter().map(|packet| vec![packet.clone()]));
            self.keys_out.push_back(ends.to_vec());
            self.sender.skip((KEY_GAP_FRAMES * FRAME) as u32);
            self.keys_out
                .extend(std::iter::repeat_n(Vec::new(), KEY_GAP_FRAMES));
        }
        true
    }

    /// What goes out on this 20 ms tick: the key-press packets due, else the oldest held agent frame.
    pub async fn send_due(&mut self) {
        if let Some(slot) = self.keys_out.pop_front() {
            if let Some((to, _)) = self.destination() {
                for packet in slot {
                    if let Some(packet) = self.wire(packet) {
                        let _ = self.sockets.rtp.send_to(&packet, to).await;
                    }
                }
            }
        } else if let Some(frame) = self.held_audio.pop_front() {
            self.send_frame(&frame).await;
        }
    }

    /// Takes 20 ms of agent audio: sent now, or held behind key presses (and the frames already held) so
    /// that no word is lost.
    pub async fn send_audio(&mut self, pcm16: Vec<u8>) {
        if self.keys_out.is_empty() && self.held_audio.is_empty() {
            self.send_frame(&pcm16).await;
        } else {
            self.held_audio.push_back(pcm16);
        }
    }

    /// Sends 20 ms of agent audio (PCM16 little-endian) in the negotiated law.
    async fn send_frame(&mut self, pcm16: &[u8]) {
        let Some((to, negotiated)) = self.destination() else {
            self.sender.skip(FRAME as u32);
            return;
        };
        let mut samples = [0i16; FRAME];
        let Ok(count) = pcm::pcm16le_decode_into(pcm16, &mut samples) else {
            return;
        };
        let mut payload = [0u8; FRAME];
        let encoded = match negotiated.codec {
            Codec::Pcmu => g711::ulaw_encode_into(&samples[..count], &mut payload[..count]),
            Codec::Pcma => g711::alaw_encode_into(&samples[..count], &mut payload[..count]),
        };
        if encoded.is_err() {
            return;
        }
        let packet = self
            .sender
            .packet(negotiated.payload_type, &payload[..count], count as u32);
        if let Some(packet) = self.wire(packet) {
            let _ = self.sockets.rtp.send_to(&packet, to).await;
        }
    }

    /// Takes one datagram from the RTP socket: audio into the jitter buffer, a key press out.
    pub fn receive(&mut self, datagram: &[u8], from: SocketAddr) -> Option<char> {
        if rtp::is_rtcp(datagram) {
            return None;
        }
        // An SRTP call takes only what authenticates: a stranger's packets never reach the latch below.
        let unprotected = self
            .crypto()
            .map(|crypto| crypto.receiver.unprotect_rtp(datagram));
        let datagram = match &unprotected {
            Some(Ok(plain)) => plain.as_slice(),
            Some(Err(e)) => {
                self.unauthenticated += 1;
                if self.unauthenticated == 1 {
                    tracing::warn!(%from, error = %e, "dropping SRTP that does not authenticate");
                }
                return None;
            }
            None => datagram,
        };
        let packet = match rtp::decode(datagram) {
            Ok(packet) => packet,
            Err(e) => {
                self.bad_packets += 1;
                if self.bad_packets == 1 {
                    tracing::warn!(%from, error = %e, "dropping malformed RTP");
                }
                return None;
            }
        };
        let negotiated = self.current()?;
        let header = packet.header;
        let known = header.payload_type == negotiated.payload_type
            || Some(header.payload_type) == negotiated.dtmf_payload_type;
        if !known || !self.peer.accept(from, header.ssrc, negotiated.remote) {
            return None;
        }
        if Some(header.payload_type) == negotiated.dtmf_payload_type {
            let event = rtp::decode_event(packet.payload).ok()?;
            if !event.end || self.last_key == Some(header.timestamp) {
                return None;
            }
            self.last_key = Some(header.timestamp);
            return rtp::event_key(event.event);
        }
        if header.payload_type != negotiated.payload_type || packet.payload.len() != FRAME {
            return None;
        }
        let mut samples = [0i16; FRAME];
        let decoded = match negotiated.codec {
            Codec::Pcmu => g711::ulaw_decode_into(packet.payload, &mut samples),
            Codec::Pcma => g711::alaw_decode_into(packet.payload, &mut samples),
        };
        if decoded.is_ok() {
            let _ = self.jitter.push(
                header.sequence,
                header.timestamp,
                self.started.elapsed(),
                &samples,
            );
        }
        None
    }

    /// The next 20 ms for the session, PCM16 little-endian.
    pub fn next_frame(&mut self) -> Vec<u8> {
        let mut samples = [0i16; FRAME];
        let _ = self.jitter.pop(&mut samples);
        let mut bytes = vec![0u8; FRAME * 2];
        let _ = pcm::pcm16le_encode_into(&samples, &mut bytes);
        bytes
    }

    /// An RTCP sender report to the peer's RTCP port (the port above its RTP port).
    pub async fn send_report(&mut self) {
        let Some((to, _)) = self.destination() else {
            return;
        };
        let Some(report) = self.sender.sender_report(SystemTime::now(), 8_000) else {
            return;
        };
        let report = match self.crypto() {
            Some(crypto) => match crypto.sender.protect_rtcp(&report) {
                Ok(report) => report,
                Err(_) => return,
            },
            None => report,
        };
        let rtcp = SocketAddr::new(to.ip(), to.port().wrapping_add(1));
        let _ = self.sockets.rtcp.send_to(&report, rtcp).await;
    }
}
