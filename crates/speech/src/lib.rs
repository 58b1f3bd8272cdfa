//! Speech recognition and synthesis.

mod chunker;
pub mod stream;
pub mod tts;
pub mod wer;

pub use chunker::{ChunkerOptions, SentenceChunker};
pub use stream::{
    Hypothesis, Recognizer, SpeechStream, SpeechToText, StreamOptions, StreamingRecognizer,
    WhisperRecognizer,
};
pub use switchboard_core::compute::{ComputeGate, Priority, Ticket};
pub mod whisper;
