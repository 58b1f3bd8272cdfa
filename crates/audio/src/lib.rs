//! The audio front end of a call: codecs, framing, resampling, jitter buffering, voice activity detection,
//! echo and noise suppression, gain control.
//!
//! Everything here is synchronous and allocation-free once built: a stage is created per call with its
//! buffers, then fed one 20 ms frame at a time. Bad input returns an [`AudioError`]; nothing panics.

mod agc;
pub mod bench;
pub mod corpus;
mod denoise;
mod echo;
mod error;
pub mod eval;
mod framer;
mod front;
pub mod g711;
mod jitter;
pub mod onnx;
pub mod pcm;
mod rate;
mod resample;
mod spectral;
mod tone;
pub mod vad;

pub use agc::{Agc, AgcOptions};
pub use denoise::RnnoiseDenoiser;
pub use echo::{EchoCanceller, EchoOptions, EchoStats};
pub use error::AudioError;
pub use framer::Framer;
pub use front::{
    CleanFrame, FrontEnd, FrontEndError, FrontEndOptions, InputFormat, NoiseSuppression,
};
pub use jitter::{JitterBuffer, JitterOptions, JitterStats, Playout, Pushed};
pub use rate::{FRAME_DURATION, MAX_CHUNK_SAMPLES, SampleRate};
pub use resample::Resampler;
pub use spectral::SpectralDenoiser;
pub use tone::{Tone, ToneDetector};
