//! Noise suppression with RNNoise (the `nnnoiseless` port): a small recurrent network that estimates a gain
//! per frequency band, trained on speech in real noise. It runs at 48 kHz in 10 ms frames, so each 20 ms
//! frame at 16 kHz is resampled up, denoised as two RNNoise frames, and resampled back.

use nnnoiseless::DenoiseState;

use crate::{AudioError, Resampler, SampleRate};

const RNNOISE_FRAME: usize = DenoiseState::FRAME_SIZE;
const UP: usize = SampleRate::Hz48000.frame_samples();

/// One call's noise suppressor over 20 ms frames at 16 kHz. Adds the two resamplers' delay (see
/// [`RnnoiseDenoiser::delay_samples`]) plus RNNoise's own 10 ms.
pub struct RnnoiseDenoiser {
    state: Box<DenoiseState<'static>>,
    up: Resampler,
    down: Resampler,
    wide: Vec<i16>,
    wide_f: Vec<f32>,
    cleaned_f: Vec<f32>,
    cleaned: Vec<i16>,
    last_speech_probability: f32,
}

impl std::fmt::Debug for RnnoiseDenoiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RnnoiseDenoiser").finish_non_exhaustive()
    }
}

impl RnnoiseDenoiser {
    /// A suppressor; allocates its buffers and the network state here.
    pub fn new() -> Result<Self, AudioError> {
        Ok(Self {
            state: DenoiseState::new(),
            up: Resampler::new(SampleRate::Hz16000, SampleRate::Hz48000)?,
            down: Resampler::new(SampleRate::Hz48000, SampleRate::Hz16000)?,
            wide: vec![0; UP],
            wide_f: vec![0.0; UP],
            cleaned_f: vec![0.0; UP],
            cleaned: vec![0; UP],
            last_speech_probability: 0.0,
        })
    }

    /// Denoises one 20 ms frame at 16 kHz in place.
    pub fn process(&mut self, frame: &mut [i16]) -> Result<(), AudioError> {
        self.up.process_frame(frame, &mut self.wide)?;
        // RNNoise works on samples in the 16-bit range, as floats.
        for (f, &s) in self.wide_f.iter_mut().zip(&self.wide) {
            *f = f32::from(s);
        }
        let mut probability = 0.0f32;
        for (out, input) in self
            .cleaned_f
            .chunks_exact_mut(RNNOISE_FRAME)
            .zip(self.wide_f.chunks_exact(RNNOISE_FRAME))
        {
            probability = probability.max(self.state.process_frame(out, input));
        }
        self.last_speech_probability = probability;
        for (c, &f) in self.cleaned.iter_mut().zip(&self.cleaned_f) {
            *c = f.round().clamp(-32_768.0, 32_767.0) as i16;
        }
        self.down.process_frame(&self.cleaned, frame)?;
        Ok(())
    }

    /// RNNoise's own voice probability for the last frame (a by-product; the VAD decides).
    pub fn last_speech_probability(&self) -> f32 {
        self.last_speech_probability
    }

    /// Delay added, in 16 kHz samples.
    pub fn delay_samples(&self) -> usize {
        self.up.delay() / 3 + self.down.delay() + RNNOISE_FRAME / 3
    }
}
