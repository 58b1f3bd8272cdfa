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

/// The VAD engine a call should use: Silero from MODELS_DIR, or the energy detector when the model or ONNX
/// Runtime is absent. The second value says why the fallback was taken, for the caller to log and count;
/// falling back is never silent.
pub fn default_engine(
    models_dir: &std::path::Path,
    sensitivity: u8,
) -> (Box<dyn SpeechProbability>, Option<VadError>) {
    let runtime = crate::onnx::runtime_library(models_dir);
    match SileroVad::load(&runtime, &models_dir.join("silero-vad/silero_vad.onnx")) {
        Ok(silero) => (Box::new(silero), None),
        Err(e) => (
            Box::new(EnergyVad::new(VadOptions::energy_margin_db(sensitivity))),
            Some(e),
        ),
    }
}

/// Detector options from the validated configuration.
pub fn options_from_config(audio: &switchboard_core::config::AudioConfig) -> VadOptions {
    VadOptions {
        min_speech: audio.vad_min_speech,
        min_silence: audio.vad_min_silence,
        ..VadOptions::for_sensitivity(audio.vad_sensitivity.level())
    }
}

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

/// The error for a window of the wrong size, shared by the engines.
pub(crate) fn check_window(window: &[f32], expected: usize) -> Result<(), VadError> {
    if window.len() == expected {
        Ok(())
    } else {
        Err(VadError::WindowSize {
            expected,
            got: window.len(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_falls_back_to_energy_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, why) = default_engine(dir.path(), 2);
        assert_eq!(engine.name(), "energy");
        assert!(
            why.unwrap()
                .to_string()
                .contains("switchboard models fetch")
        );
    }

    #[test]
    fn configured_durations_reach_the_detector() {
        let env = |n: &str| match n {
            "VAD_MIN_SILENCE_MS" => Some("800".to_string()),
            "VAD_SENSITIVITY" => Some("3".to_string()),
            _ => None,
        };
        let config = switchboard_core::Config::from_layers(None, &env).unwrap();
        let o = options_from_config(&config.audio);
        assert_eq!(o.min_silence, std::time::Duration::from_millis(800));
        assert_eq!(
            o,
            VadOptions {
                min_silence: std::time::Duration::from_millis(800),
                ..VadOptions::for_sensitivity(3)
            }
        );
    }
}
