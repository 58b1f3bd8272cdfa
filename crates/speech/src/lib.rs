//! Speech recognition and synthesis.

pub mod whisper;
