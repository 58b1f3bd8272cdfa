//! Speech recognition and synthesis.

pub mod wer;
pub mod whisper;
