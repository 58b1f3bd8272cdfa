//! Asterisk AudioSocket: the TCP framing of `AudioSocket(uuid,host:port)` and the AudioSocket channel.
//!
//! Every message is one kind byte, a 16-bit big-endian payload length, and the payload. Asterisk sends
//! the call's UUID first (the one given in the dialplan: ours maps it to a call), then audio as signed
//! 16-bit little-endian PCM, mono, 20 ms per message (8 kHz unless the channel asks for more), DTMF digits,
//! and a hang-up or an error at the end. We send audio in the same framing, and a hang-up to end the call.

use switchboard_audio::SampleRate;
use uuid::Uuid;

/// Bytes before the payload: kind and length.
pub const HEADER_BYTES: usize = 3;

/// The most audio one message carries: the largest even length the 16-bit length field can hold.
const MAX_AUDIO_BYTES: usize = u16::MAX as usize & !1;

/// One AudioSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// End of the call (0x00).
    Hangup,
    /// The call's UUID, as given in the dialplan (0x01).
    Uuid(Uuid),
    /// A key the caller pressed (0x03).
    Dtmf(char),
    /// Signed 16-bit little-endian mono PCM (0x10 at 8 kHz; 0x12, 0x13, 0x16 at 16, 24, 48 kHz).
    Audio {
        /// The sample rate the kind byte names.
        rate: AudioRate,
        /// The PCM bytes, an even number of them.
        pcm: Vec<u8>,
    },
    /// Asterisk reports an error (0xff); the code, when it sent one.
    Error(Option<u8>),
}

/// The sample rates an AudioSocket audio message can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioRate {
    /// 0x10, what `AudioSocket()` sends.
    Hz8000,
    /// 0x12.
    Hz16000,
    /// 0x13.
    Hz24000,
    /// 0x16.
    Hz48000,
}

impl AudioRate {
    /// The kind byte of audio at this rate.
    fn kind(self) -> u8 {
        match self {
            Self::Hz8000 => 0x10,
            Self::Hz16000 => 0x12,
            Self::Hz24000 => 0x13,
            Self::Hz48000 => 0x16,
        }
    }

    fn from_kind(kind: u8) -> Option<Self> {
        [Self::Hz8000, Self::Hz16000, Self::Hz24000, Self::Hz48000]
            .into_iter()
            .find(|rate| rate.kind() == kind)
    }

    /// The same rate for the audio front end.
    pub fn sample_rate(self) -> SampleRate {
        match self {
            Self::Hz8000 => SampleRate::Hz8000,
            Self::Hz16000 => SampleRate::Hz16000,
            Self::Hz24000 => SampleRate::Hz24000,
            Self::Hz48000 => SampleRate::Hz48000,
        }
    }
}

/// Why a complete message could not be read. Its bytes are skipped and the call goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A kind this protocol does not define, or an audio rate we do not take.
    #[error("unknown or unsupported AudioSocket message kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A UUID message whose payload is not 16 bytes.
    #[error("UUID message with {0} bytes instead of 16")]
    BadUuid(usize),
    /// A DTMF message that is not one digit.
    #[error("DTMF message that is not one digit: {0:?}")]
    BadDigit(Vec<u8>),
    /// Audio with an odd number of bytes (half a sample).
    #[error("audio message of {0} bytes, not whole 16-bit samples")]
    OddAudio(usize),
}

/// The kind byte of a message.
fn kind_of(frame: &Frame) -> u8 {
    match frame {
        Frame::Hangup => 0x00,
        Frame::Uuid(_) => 0x01,
        Frame::Dtmf(_) => 0x03,
        Frame::Audio { rate, .. } => rate.kind(),
        Frame::Error(_) => 0xff,
    }
}

/// Reads the first message of `buffer`. `None`: the message is not complete yet (read more bytes).
/// Otherwise the message (or why it is malformed) and the number of bytes it took, to drop from the
/// buffer either way.
pub fn decode(buffer: &[u8]) -> Option<(Result<Frame, FrameError>, usize)> {
    let header: &[u8; HEADER_BYTES] = buffer.get(..HEADER_BYTES)?.try_into().ok()?;
    let [kind, high, low] = *header;
    let length = usize::from(u16::from_be_bytes([high, low]));
    let payload = buffer.get(HEADER_BYTES..HEADER_BYTES + length)?;
    Some((parse(kind, payload), HEADER_BYTES + length))
}

fn parse(kind: u8, payload: &[u8]) -> Result<Frame, FrameError> {
    match kind {
        0x00 => Ok(Frame::Hangup),
        0x01 => {
            let bytes: [u8; 16] = payload
                .try_into()
                .map_err(|_| FrameError::BadUuid(payload.len()))?;
            Ok(Frame::Uuid(Uuid::from_bytes(bytes)))
        }
        0x03 => match payload {
            [digit] if digit.is_ascii_digit() || b"*#ABCD".contains(digit) => {
                Ok(Frame::Dtmf(char::from(*digit)))
            }
            other => Err(FrameError::BadDigit(
                other.iter().take(8).copied().collect(),
            )),
        },
        0xff => Ok(Frame::Error(payload.first().copied())),
        kind => {
            let rate = AudioRate::from_kind(kind).ok_or(FrameError::UnknownKind(kind))?;
            if !payload.len().is_multiple_of(2) {
                return Err(FrameError::OddAudio(payload.len()));
            }
            Ok(Frame::Audio {
                rate,
                pcm: payload.to_vec(),
            })
        }
    }
}

/// The bytes of one message. Audio longer than a message can hold (65 535 bytes, 4 s at 8 kHz) is cut
/// at the last whole sample that fits; send 20 ms per message as Asterisk does.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let payload: Vec<u8> = match frame {
        Frame::Hangup => Vec::new(),
        Frame::Uuid(uuid) => uuid.as_bytes().to_vec(),
        Frame::Dtmf(digit) => {
            let mut buf = [0u8; 4];
            digit.encode_utf8(&mut buf).as_bytes().to_vec()
        }
        Frame::Audio { pcm, .. } => pcm[..pcm.len().min(MAX_AUDIO_BYTES)].to_vec(),
        Frame::Error(code) => code.iter().copied().collect(),
    };
    // Every payload above is at most MAX_AUDIO_BYTES long, so its length fits the header's 16 bits.
    let length = payload.len() as u16;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.push(kind_of(frame));
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_documented_examples_decode() {
        // A hang-up is 0x00 0x00 0x00.
        assert_eq!(decode(&[0, 0, 0]), Some((Ok(Frame::Hangup), 3)));
        let uuid = Uuid::parse_str("40325ec2-5efd-4bd3-805f-53576e581d13").unwrap();
        let mut message = vec![0x01, 0x00, 0x10];
        message.extend_from_slice(uuid.as_bytes());
        assert_eq!(decode(&message), Some((Ok(Frame::Uuid(uuid)), 19)));
        assert_eq!(
            decode(&[0x03, 0x00, 0x01, b'7']),
            Some((Ok(Frame::Dtmf('7')), 4))
        );
        assert_eq!(
            decode(&[0xff, 0x00, 0x01, 0x02]),
            Some((Ok(Frame::Error(Some(2))), 4))
        );
    }

    #[test]
    fn a_message_split_across_reads_waits_for_its_end() {
        let audio = Frame::Audio {
            rate: AudioRate::Hz8000,
            pcm: (0..320).map(|i| i as u8).collect(),
        };
        let bytes = encode(&audio);
        assert_eq!(&bytes[..3], &[0x10, 0x01, 0x40]);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "{cut} bytes");
        }
        let mut two = bytes.clone();
        two.extend_from_slice(&encode(&Frame::Hangup));
        let (first, used) = decode(&two).unwrap();
        assert_eq!(first, Ok(audio));
        assert_eq!(decode(&two[used..]), Some((Ok(Frame::Hangup), 3)));
    }

    #[test]
    fn malformed_messages_are_skipped_whole() {
        assert_eq!(
            decode(&[0x01, 0x00, 0x02, 1, 2, 0x00]),
            Some((Err(FrameError::BadUuid(2)), 5))
        );
        assert_eq!(
            decode(&[0x10, 0x00, 0x03, 1, 2, 3]),
            Some((Err(FrameError::OddAudio(3)), 6))
        );
        assert_eq!(
            decode(&[0x42, 0x00, 0x00]),
            Some((Err(FrameError::UnknownKind(0x42)), 3))
        );
        assert_eq!(
            decode(&[0x03, 0x00, 0x01, b'x']),
            Some((Err(FrameError::BadDigit(vec![b'x'])), 4))
        );
    }

    #[test]
    fn every_frame_round_trips() {
        for frame in [
            Frame::Hangup,
            Frame::Uuid(Uuid::now_v7()),
            Frame::Dtmf('#'),
            Frame::Error(None),
            Frame::Error(Some(1)),
            Frame::Audio {
                rate: AudioRate::Hz16000,
                pcm: vec![1, 2, 3, 4],
            },
        ] {
            let bytes = encode(&frame);
            assert_eq!(decode(&bytes), Some((Ok(frame), bytes.len())));
        }
    }

    #[test]
    fn oversized_audio_is_cut_at_a_whole_sample() {
        let bytes = encode(&Frame::Audio {
            rate: AudioRate::Hz8000,
            pcm: vec![0; 70_000],
        });
        assert_eq!(bytes.len(), 3 + 65_534);
        assert!(matches!(
            decode(&bytes),
            Some((Ok(Frame::Audio { .. }), 65_537))
        ));
    }

    proptest! {
        #[test]
        fn decoding_never_panics_and_never_overreads(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut rest = &bytes[..];
            while let Some((_, used)) = decode(rest) {
                prop_assert!(used >= HEADER_BYTES && used <= rest.len());
                rest = &rest[used..];
            }
        }
    }
}
