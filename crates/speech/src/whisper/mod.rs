//! Whisper on whisper.cpp: the converter from the shipped CTranslate2 weights to ggml, and the recogniser.

pub mod convert;
pub mod ct2;
pub mod mel;
mod recognizer;
pub mod vocab;

pub use recognizer::{MAX_AUDIO, Segment, SttError, TranscribeOptions, Transcript, WhisperModel};

/// Why a model could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The input is not what the converter understands.
    #[error("cannot convert: {0}")]
    Format(String),
}
