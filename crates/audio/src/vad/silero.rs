//! Silero VAD v5 on ONNX Runtime: 512-sample windows at 16 kHz, each prefixed with the previous window's
//! last 64 samples as the model expects, and the recurrent state carried from window to window per call.

use std::path::Path;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

use super::{SpeechProbability, VadError};
use crate::onnx::ensure_runtime;

const WINDOW: usize = 512;
const CONTEXT: usize = 64;
const STATE_LEN: usize = 2 * 128;

/// Silero VAD for one call. Input buffers are made once; each window reuses them.
pub struct SileroVad {
    session: Session,
    input: Tensor<f32>,
    state: Tensor<f32>,
    sample_rate: Tensor<i64>,
    context: [f32; CONTEXT],
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").finish_non_exhaustive()
    }
}

impl SileroVad {
    /// Loads the model at `model` on the ONNX Runtime library at `runtime`, single-threaded: one
    /// inference is ~0.1 ms, and a call center runs many calls, not one fast one.
    pub fn load(runtime: &Path, model: &Path) -> Result<Self, VadError> {
        let environment = ensure_runtime(runtime).map_err(VadError::Load)?;
        if !model.is_file() {
            return Err(VadError::Load(format!(
                "{} is missing; run `switchboard models fetch silero-vad`",
                model.display()
            )));
        }
        let load = |e: ort::Error| VadError::Load(format!("{}: {e}", model.display()));
        let session = Session::builder(environment)
            .map_err(load)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| load(e.into()))?
            .with_intra_threads(1)
            .map_err(|e| load(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| load(e.into()))?
            .commit_from_file(model)
            .map_err(load)?;
        let input = Tensor::from_array(([1usize, CONTEXT + WINDOW], vec![0f32; CONTEXT + WINDOW]))
            .map_err(load)?;
        let state = Tensor::from_array(([2usize, 1, 128], vec![0f32; STATE_LEN])).map_err(load)?;
        let sample_rate = Tensor::from_array(((), vec![16_000i64])).map_err(load)?;
        Ok(Self {
            session,
            input,
            state,
            sample_rate,
            context: [0.0; CONTEXT],
        })
    }
}

impl SpeechProbability for SileroVad {
    fn window(&self) -> usize {
        WINDOW
    }

    fn probability(&mut self, window: &[f32]) -> Result<f32, VadError> {
        super::check_window(window, WINDOW)?;
        {
            let (_, data) = self.input.extract_tensor_mut();
            data[..CONTEXT].copy_from_slice(&self.context);
            data[CONTEXT..].copy_from_slice(window);
        }
        self.context.copy_from_slice(&window[WINDOW - CONTEXT..]);
        let fail = |e: ort::Error| VadError::Inference(e.to_string());
        let outputs = self
            .session
            // Positional inputs, in the model's order (input, state, sr): an array, no allocation per window.
            .run(ort::inputs![&self.input, &self.state, &self.sample_rate])
            .map_err(fail)?;
        let (_, probability) = outputs["output"]
            .try_extract_tensor::<f32>()
            .map_err(fail)?;
        let probability = probability.first().copied().unwrap_or(0.0);
        let (_, next_state) = outputs["stateN"]
            .try_extract_tensor::<f32>()
            .map_err(fail)?;
        if next_state.len() != STATE_LEN {
            return Err(VadError::Inference(format!(
                "state of {} values, expected {STATE_LEN}",
                next_state.len()
            )));
        }
        let next_state: [f32; STATE_LEN] = next_state
            .try_into()
            .map_err(|_| VadError::Inference("state size".into()))?;
        drop(outputs);
        self.state
            .extract_tensor_mut()
            .1
            .copy_from_slice(&next_state);
        Ok(probability.clamp(0.0, 1.0))
    }

    fn reset(&mut self) {
        self.state.extract_tensor_mut().1.fill(0.0);
        self.context = [0.0; CONTEXT];
    }

    fn name(&self) -> &'static str {
        "silero"
    }
}
