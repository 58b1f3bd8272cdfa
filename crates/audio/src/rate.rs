//! Sample rates the pipeline speaks, and the 20 ms frame every stage works in.

use std::time::Duration;

use crate::AudioError;

/// Every stage processes audio in frames of this length: the packet time of telephone RTP and of
/// Twilio Media Streams, and short enough that a barge-in stops speech within one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Largest buffer accepted in one call: one second at the highest rate. Anything bigger is a malformed
/// or hostile frame, refused before it costs memory or time.
pub const MAX_CHUNK_SAMPLES: usize = 48_000;

/// A supported sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SampleRate {
    /// Narrowband telephony (G.711).
    Hz8000,
    /// Wideband; what Whisper and Silero VAD take.
    Hz16000,
    /// Piper voices.
    Hz22050,
    /// Kokoro.
    Hz24000,
    /// Browsers and WebRTC.
    Hz48000,
}

impl SampleRate {
    /// Every supported rate, ascending.
    pub const ALL: [SampleRate; 5] = [
        SampleRate::Hz8000,
        SampleRate::Hz16000,
        SampleRate::Hz22050,
        SampleRate::Hz24000,
        SampleRate::Hz48000,
    ];

    /// The rate for `hz`, or an error naming it.
    pub fn from_hz(hz: u32) -> Result<Self, AudioError> {
        Self::ALL
            .into_iter()
            .find(|r| r.hz() == hz)
            .ok_or(AudioError::UnsupportedRate { hz })
    }

    /// Samples per second.
    pub const fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8_000,
            SampleRate::Hz16000 => 16_000,
            SampleRate::Hz22050 => 22_050,
            SampleRate::Hz24000 => 24_000,
            SampleRate::Hz48000 => 48_000,
        }
    }

    /// Samples in one 20 ms frame (22.05 kHz rounds down: 441 samples).
    pub const fn frame_samples(self) -> usize {
        (self.hz() / 50) as usize
    }

    /// The time `samples` samples last at this rate.
    pub fn duration_of(self, samples: u64) -> Duration {
        Duration::from_secs_f64(samples as f64 / f64::from(self.hz()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_twenty_milliseconds() {
        assert_eq!(SampleRate::Hz8000.frame_samples(), 160);
        assert_eq!(SampleRate::Hz16000.frame_samples(), 320);
        assert_eq!(SampleRate::Hz48000.frame_samples(), 960);
        assert_eq!(SampleRate::Hz16000.duration_of(320), FRAME_DURATION);
    }

    #[test]
    fn unknown_rates_are_named_in_the_error() {
        assert_eq!(
            SampleRate::from_hz(44_100),
            Err(AudioError::UnsupportedRate { hz: 44_100 })
        );
        assert_eq!(SampleRate::from_hz(24_000), Ok(SampleRate::Hz24000));
    }
}
