//! Speech recognition and synthesis.

mod chunker;
pub mod gate;
pub mod stream;
pub mod tts;
pub mod wer;

pub use chunker::{ChunkerOptions, SentenceChunker};
pub use gate::{PassGate, Priority, Ticket};
pub use stream::{
    Hypothesis, Recognizer, SpeechStream, SpeechToText, StreamOptions, StreamingRecognizer,
    WhisperRecognizer,
};
pub mod whisper;
