//! Speech recognition and synthesis.

mod chunker;
pub mod wer;

pub use chunker::{ChunkerOptions, SentenceChunker};
pub mod whisper;
