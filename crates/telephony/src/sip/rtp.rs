//! RTP (RFC 3550) and the telephone-event payload (RFC 4733), as pure functions: packets in, typed
//! packets out, and the sender's bookkeeping (sequence numbers, timestamps, the RTCP sender report).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of the fixed RTP header.
pub const HEADER_BYTES: usize = 12;

/// Why a datagram is not an RTP packet we can read. It is dropped and counted; the call goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the headers it announces.
    #[error("RTP packet of {0} bytes is shorter than its headers")]
    Truncated(usize),
    /// Not RTP version 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// Padding longer than the payload.
    #[error("RTP padding of {0} bytes is longer than the payload")]
    Padding(u8),
    /// A telephone-event payload that is not 4 bytes.
    #[error("telephone-event payload of {0} bytes, expected 4")]
    Event(usize),
}

/// The parts of an RTP header a voice call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit: the first packet of a talkspurt, or of a telephone event.
    pub marker: bool,
    /// The payload type the SDP negotiated.
    pub payload_type: u8,
    /// Increments by one per packet, wrapping.
    pub sequence: u16,
    /// Sampling instant of the first sample, in the clock of the payload (8 kHz for G.711).
    pub timestamp: u32,
    /// The sender's stream id.
    pub ssrc: u32,
}

/// A received packet: header and payload (CSRCs, extension and padding removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header.
    pub header: RtpHeader,
    /// The payload.
    pub payload: &'a [u8],
}

/// Whether a datagram on the RTP port is RTCP instead (RFC 5761: payload types 200–204 sit where RTP's
/// marker bit and payload type are; a peer multiplexing RTCP sends them on the same port).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (200..=204).contains(&datagram[1])
}

/// Reads one RTP packet.
pub fn decode(datagram: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let truncated = || RtpError::Truncated(datagram.len());
    let fixed: &[u8; HEADER_BYTES] = datagram
        .get(..HEADER_BYTES)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(truncated)?;
    let version = fixed[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    let padded = fixed[0] & 0x20 != 0;
    let extended = fixed[0] & 0x10 != 0;
    let csrcs = usize::from(fixed[0] & 0x0f);
    let mut start = HEADER_BYTES + 4 * csrcs;
    if extended {
        let extension = datagram.get(start..start + 4).ok_or_else(truncated)?;
        let words = usize::from(u16::from_be_bytes([extension[2], extension[3]]));
        start += 4 + 4 * words;
    }
    let mut end = datagram.len();
    if start > end {
        return Err(truncated());
    }
    if padded {
        let padding = datagram[end - 1];
        if padding == 0 || usize::from(padding) > end - start {
            return Err(RtpError::Padding(padding));
        }
        end -= usize::from(padding);
    }
    Ok(RtpPacket {
        header: RtpHeader {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7f,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        },
        payload: &datagram[start..end],
    })
}

/// Writes one RTP packet (no CSRCs, extension or padding).
pub fn encode(header: &RtpHeader, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.push(0x80);
    bytes.push(u8::from(header.marker) << 7 | (header.payload_type & 0x7f));
    bytes.extend_from_slice(&header.sequence.to_be_bytes());
    bytes.extend_from_slice(&header.timestamp.to_be_bytes());
    bytes.extend_from_slice(&header.ssrc.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// An RFC 4733 telephone event (a key press), as carried in one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event code: 0–9, 10 `*`, 11 `#`, 12–15 A–D.
    pub event: u8,
    /// The last packets of the event have this set.
    pub end: bool,
    /// Power level in −dBm0 (0–63).
    pub volume: u8,
    /// How long the key has been down so far, in timestamp units.
    pub duration: u16,
}

/// Reads a telephone-event payload.
pub fn decode_event(payload: &[u8]) -> Result<TelephoneEvent, RtpError> {
    let [event, flags, high, low]: [u8; 4] = payload
        .try_into()
        .map_err(|_| RtpError::Event(payload.len()))?;
    Ok(TelephoneEvent {
        event,
        end: flags & 0x80 != 0,
        volume: flags & 0x3f,
        duration: u16::from_be_bytes([high, low]),
    })
}

/// Writes a telephone-event payload.
pub fn encode_event(event: &TelephoneEvent) -> [u8; 4] {
    let [high, low] = event.duration.to_be_bytes();
    [
        event.event,
        u8::from(event.end) << 7 | (event.volume & 0x3f),
        high,
        low,
    ]
}

/// The key of an event code (`None` for codes that are not keys: tones, flash).
pub fn event_key(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code of a key.
pub fn key_event(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        _ => None,
    }
}

/// Our side of an outgoing RTP stream: sequence numbers and timestamps that run on across silences, the
/// marker on the first packet of each talkspurt, and the counts an RTCP sender report gives.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    talkspurt_over: bool,
    /// Packets sent.
    pub packets: u32,
    /// Payload bytes sent.
    pub octets: u32,
    /// The last packet's timestamp and when it was sent, for the sender report.
    last: Option<(u32, SystemTime)>,
}

impl RtpSender {
    /// A stream with its random SSRC and random starting sequence number and timestamp (RFC 3550 §5.1).
    pub fn new(ssrc: u32, first_sequence: u16, first_timestamp: u32) -> Self {
        Self {
            ssrc,
            sequence: first_sequence,
            timestamp: first_timestamp,
            talkspurt_over: true,
            packets: 0,
            octets: 0,
            last: None,
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The next packet: `payload` of `payload_type`, `samples` long in the payload's clock.
    pub fn packet(&mut self, payload_type: u8, payload: &[u8], samples: u32) -> Vec<u8> {
        let header = RtpHeader {
            marker: std::mem::take(&mut self.talkspurt_over),
            payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.last = Some((self.timestamp, SystemTime::now()));
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        encode(&header, payload)
    }

    /// Time passed without audio (`samples` of it): the timestamp runs on and the next packet starts a
    /// talkspurt.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.talkspurt_over = true;
    }

    /// The packets of one key press of `duration` timestamp units: RFC 4733's start packet with the
    /// marker, updates every `step` units, and the end packet three times, all on one timestamp.
    pub fn key_press(
        &mut self,
        payload_type: u8,
        event: u8,
        duration: u16,
        step: u16,
    ) -> Vec<Vec<u8>> {
        let start = self.timestamp;
        let mut packets = Vec::new();
        let mut elapsed = step.min(duration);
        let mut first = true;
        loop {
            let end = elapsed >= duration;
            let payload = encode_event(&TelephoneEvent {
                event,
                end,
                volume: 10,
                duration: elapsed,
            });
            let repeats = if end { 3 } else { 1 };
            for _ in 0..repeats {
                let header = RtpHeader {
                    marker: std::mem::take(&mut first),
                    payload_type,
                    sequence: self.sequence,
                    timestamp: start,
                    ssrc: self.ssrc,
                };
                self.sequence = self.sequence.wrapping_add(1);
                self.packets = self.packets.wrapping_add(1);
                self.octets = self.octets.wrapping_add(4);
                packets.push(encode(&header, &payload));
            }
            if end {
                break;
            }
            elapsed = elapsed.saturating_add(step).min(duration);
        }
        self.timestamp = start.wrapping_add(u32::from(duration));
        self.talkspurt_over = true;
        packets
    }

    /// An RTCP sender report (RFC 3550 §6.4.1) with no report blocks, or `None` before the first packet.
    /// `clock_rate` converts the wall time since the last packet into the RTP timestamp it stands for.
    pub fn sender_report(&self, now: SystemTime, clock_rate: u32) -> Option<Vec<u8>> {
        let (timestamp, sent) = self.last?;
        let since = now.duration_since(sent).unwrap_or(Duration::ZERO);
        let rtp_now = timestamp.wrapping_add((since.as_secs_f64() * f64::from(clock_rate)) as u32);
        let ntp = ntp_timestamp(now);
        let mut bytes = Vec::with_capacity(28);
        bytes.push(0x80);
        bytes.push(200);
        bytes.extend_from_slice(&6u16.to_be_bytes());
        bytes.extend_from_slice(&self.ssrc.to_be_bytes());
        bytes.extend_from_slice(&ntp.to_be_bytes());
        bytes.extend_from_slice(&rtp_now.to_be_bytes());
        bytes.extend_from_slice(&self.packets.to_be_bytes());
        bytes.extend_from_slice(&self.octets.to_be_bytes());
        Some(bytes)
    }
}

/// Seconds between 1900 (NTP's epoch) and 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A wall-clock time as NTP's 64-bit fixed point: seconds since 1900 and a binary fraction.
fn ntp_timestamp(at: SystemTime) -> u64 {
    let since_unix = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_packet_reads_back_with_its_header_and_payload() {
        let header = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65_535,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
        };
        let bytes = encode(&header, &[1, 2, 3]);
        assert_eq!(bytes[..2], [0x80, 0x88]);
        assert_eq!(
            decode(&bytes),
            Ok(RtpPacket {
                header,
                payload: &[1, 2, 3]
            })
        );
    }

    #[test]
    fn csrcs_extension_and_padding_are_stepped_over() {
        // Version 2, padding, extension, one CSRC; PT 0; then the CSRC, a one-word extension, the
        // payload and two bytes of padding.
        let mut bytes = vec![0xb1, 0x00, 0, 7, 0, 0, 0, 160, 0, 0, 0, 1];
        bytes.extend_from_slice(&[9, 9, 9, 9]);
        bytes.extend_from_slice(&[0xbe, 0xde, 0, 1, 5, 5, 5, 5]);
        bytes.extend_from_slice(&[0xff, 0x7f]);
        bytes.extend_from_slice(&[0, 2]);
        let packet = decode(&bytes).unwrap();
        assert_eq!(packet.payload, &[0xff, 0x7f]);
        assert_eq!(packet.header.sequence, 7);
        assert_eq!(packet.header.timestamp, 160);
    }

    #[test]
    fn malformed_packets_are_refused_with_a_reason() {
        assert_eq!(decode(&[0x80; 5]), Err(RtpError::Truncated(5)));
        assert_eq!(decode(&[0x40; 12]), Err(RtpError::Version(1)));
        let mut padded = encode(
            &RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: 1,
                timestamp: 1,
                ssrc: 1,
            },
            &[1, 2, 3],
        );
        padded[0] |= 0x20;
        *padded.last_mut().unwrap() = 9;
        assert_eq!(decode(&padded), Err(RtpError::Padding(9)));
        // An extension whose length runs past the datagram.
        let mut extended = vec![0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 9];
        extended.extend_from_slice(&[0; 8]);
        assert_eq!(decode(&extended), Err(RtpError::Truncated(24)));
    }

    #[test]
    fn rtcp_is_told_apart_from_rtp() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(!is_rtcp(&[0x80, 0x00, 0, 6]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8, 0, 6]));
    }

    #[test]
    fn sequence_and_timestamp_run_on_across_silence_and_mark_talkspurts() {
        let mut sender = RtpSender::new(42, 65_534, u32::MAX - 100);
        let first = decode(&sender.packet(0, &[0; 160], 160)).unwrap().header;
        let second_bytes = sender.packet(0, &[0; 160], 160);
        let second = decode(&second_bytes).unwrap().header;
        assert!(first.marker && !second.marker);
        assert_eq!((first.sequence, second.sequence), (65_534, 65_535));
        assert_eq!(second.timestamp, first.timestamp.wrapping_add(160));
        sender.skip(800);
        let third = decode(&sender.packet(0, &[0; 160], 160)).unwrap().header;
        assert!(third.marker, "a new talkspurt after silence");
        assert_eq!(third.sequence, 0, "wrapped");
        assert_eq!(third.timestamp, second.timestamp.wrapping_add(160 + 800));
        assert_eq!((sender.packets, sender.octets), (3, 480));
    }

    #[test]
    fn a_key_press_follows_rfc_4733() {
        let mut sender = RtpSender::new(7, 100, 8_000);
        let packets = sender.key_press(101, key_event('#').unwrap(), 800, 400);
        let read: Vec<(RtpHeader, TelephoneEvent)> = packets
            .iter()
            .map(|p| {
                let packet = decode(p).unwrap();
                (packet.header, decode_event(packet.payload).unwrap())
            })
            .collect();
        // Start (marker), one update, then the end three times; one timestamp throughout.
        assert_eq!(read.len(), 4);
        assert!(read[0].0.marker && read[1..].iter().all(|(h, _)| !h.marker));
        assert!(
            read.iter()
                .all(|(h, e)| h.timestamp == 8_000 && e.event == 11)
        );
        assert_eq!(
            read.iter()
                .map(|(_, e)| (e.duration, e.end))
                .collect::<Vec<_>>(),
            vec![(400, false), (800, true), (800, true), (800, true)]
        );
        assert_eq!(
            read.iter().map(|(h, _)| h.sequence).collect::<Vec<_>>(),
            vec![100, 101, 102, 103]
        );
        // Audio after the key resumes after its duration, as a new talkspurt.
        let after = decode(&sender.packet(0, &[0; 160], 160)).unwrap().header;
        assert_eq!((after.timestamp, after.marker), (8_800, true));
    }

    #[test]
    fn keys_and_event_codes_map_both_ways() {
        for key in "0123456789*#ABCD".chars() {
            assert_eq!(event_key(key_event(key).unwrap()), Some(key));
        }
        assert_eq!(event_key(16), None);
        assert_eq!(key_event('x'), None);
    }

    #[test]
    fn the_sender_report_carries_ntp_time_and_counts() {
        let mut sender = RtpSender::new(0xabcd, 1, 1_000);
        assert_eq!(sender.sender_report(SystemTime::now(), 8_000), None);
        sender.packet(0, &[0; 160], 160);
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let report = sender.sender_report(at, 8_000).unwrap();
        assert_eq!(report.len(), 28);
        assert_eq!(report[..4], [0x80, 200, 0, 6]);
        assert!(is_rtcp(&report));
        let ntp_seconds = u32::from_be_bytes(report[8..12].try_into().unwrap());
        assert_eq!(u64::from(ntp_seconds), 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(u32::from_be_bytes(report[20..24].try_into().unwrap()), 1);
        assert_eq!(u32::from_be_bytes(report[24..28].try_into().unwrap()), 160);
    }

    proptest! {
        #[test]
        fn any_datagram_is_read_or_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(packet) = decode(&bytes) {
                prop_assert!(packet.payload.len() <= bytes.len() - HEADER_BYTES);
            }
            let _ = decode_event(&bytes);
        }
    }
}
