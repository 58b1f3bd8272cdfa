//! What crosses between a transport (the WebSocket, Twilio, AudioSocket, SIP) and a call: caller audio and
//! signals in, agent audio, marks, transcripts and reports out. Transports translate their wire format to
//! and from these; the call never sees a wire format.

use std::time::Duration;

use serde::Serialize;
use switchboard_audio::InputFormat;
use switchboard_core::Speaker;

use crate::latency::TurnLatency;

/// From the transport to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Caller audio in the call's wire format.
    Audio(Vec<u8>),
    /// A key pressed on the caller's phone.
    Dtmf(char),
    /// The far side has played everything before this mark (its name as sent in [`Outbound::Mark`]).
    Mark(String),
    /// The caller hung up or the stream stopped.
    Hangup,
}

/// From the call to the transport.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// 20 ms of agent audio in the call's wire format.
    Audio(Vec<u8>),
    /// Everything before this point has been sent: `speech-{n}.{piece}` after each piece (sentence) of
    /// a speech, `speech-{n}` after the whole speech. A peer that plays audio echoes it back once played.
    Mark(String),
    /// Drop any agent audio queued on the far side (barge-in).
    Clear,
    /// A line of the transcript (the caller's partials are not final).
    Transcript(TranscriptLine),
    /// How long a turn's answer took, and where the time went.
    Latency(TurnLatency),
    /// The call is over.
    Hangup {
        /// Why (`caller_hung_up`, `agent_ended`, `transferred`, ...).
        reason: String,
    },
}

/// A transcript event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptLine {
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said (the agent: what was played).
    pub text: String,
    /// False for a partial that may still change.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Its position in the stored transcript, once stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// Samples of one 20 ms frame of `format` and its size on the wire in bytes.
pub fn frame_bytes(format: InputFormat) -> usize {
    match format {
        InputFormat::Ulaw8k | InputFormat::Alaw8k => 160,
        InputFormat::Pcm16(rate) => rate.frame_samples() * 2,
    }
}

/// The duration `bytes` of `format` audio lasts.
pub fn audio_duration(format: InputFormat, bytes: usize) -> Duration {
    let samples = match format {
        InputFormat::Ulaw8k | InputFormat::Alaw8k => bytes,
        InputFormat::Pcm16(_) => bytes / 2,
    };
    format.rate().duration_of(samples as u64)
}
