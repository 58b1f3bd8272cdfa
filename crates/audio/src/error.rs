//! Errors of the audio path. Cheap to build (no allocation): they can happen once per frame on bad input.

/// Why a buffer could not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// No samples where some were required.
    #[error("empty audio buffer")]
    Empty,
    /// PCM16 needs two bytes a sample.
    #[error("PCM16 payload of {len} bytes has an odd length")]
    OddLength {
        /// Bytes given.
        len: usize,
    },
    /// More input than any legitimate frame carries: refused before it costs memory or time.
    #[error("buffer of {len} samples exceeds the limit of {max}")]
    TooLarge {
        /// Samples given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not one of the rates the pipeline supports.
    #[error("unsupported sample rate {hz} Hz (supported: 8000, 16000, 22050, 24000, 48000)")]
    UnsupportedRate {
        /// Rate given.
        hz: u32,
    },
    /// A processing stage expects exactly one frame of a given size.
    #[error("expected a frame of {expected} samples, got {got}")]
    WrongFrameSize {
        /// What the stage was built for.
        expected: usize,
        /// What it got.
        got: usize,
    },
    /// The output buffer cannot hold the result.
    #[error("output buffer of {got} samples is too small; {needed} needed")]
    OutputTooSmall {
        /// Needed capacity.
        needed: usize,
        /// Given capacity.
        got: usize,
    },
}
