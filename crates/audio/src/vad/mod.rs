//! Voice activity detection: is the caller speaking, and exactly when did they start and stop?
//!
//! An engine turns 16 kHz windows into a speech probability ([`SileroVad`], or [`EnergyVad`] when the
//! model is absent); [`VadDetector`] turns probabilities into `SpeechStarted` / `SpeechEnded` events with
//! sample timestamps, adapting its thresholds to the line's noise floor.

mod detector;
mod energy;
mod silero;

pub use detector::{VadDetector, VadEvent, VadOptions};
pub use energy::EnergyVad;
pub use silero::SileroVad;

/// Why an engine could not produce a probability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VadError {
    /// The model or runtime could not be loaded (start-up only).
    #[error("cannot load the VAD model: {0}")]
    Load(String),
    /// Inference failed on a window.
    #[error("VAD inference failed: {0}")]
    Inference(String),
    /// The window was not the size the engine takes.
    #[error("VAD window of {got} samples; the engine takes {expected}")]
    WindowSize {
        /// Engine's window.
        expected: usize,
        /// Given.
        got: usize,
    },
}

/// A speech-probability engine over fixed windows of 16 kHz audio in [-1, 1).
pub trait SpeechProbability: Send {
    /// Samples per window.
    fn window(&self) -> usize;
    /// Probability in [0, 1] that the window holds speech. Engines keep state between windows of a call.
    fn probability(&mut self, window: &[f32]) -> Result<f32, VadError>;
    /// Forgets the call's state (a new call, or after a long gap).
    fn reset(&mut self);
    /// Short name for logs and benchmarks.
    fn name(&self) -> &'static str;
    /// Whether the detector may skip this engine on windows that are plainly background noise. True for
    /// model engines (a call saved is real CPU); false for engines that must see every window.
    fn skip_background(&self) -> bool {
        true
    }
}
