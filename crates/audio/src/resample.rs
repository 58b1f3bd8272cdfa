//! Sample-rate conversion between the pipeline's rates, one 20 ms frame in, one 20 ms frame out.
//!
//! Quality: rubato's synchronous FFT resampler (`FftFixedIn`) with one sub-chunk per frame, so the FFT
//! spans one 20 ms frame and the anti-aliasing filter is a Blackman-Harris-windowed sinc cut off just
//! below the lower rate's Nyquist frequency. Every pair of our rates has a whole number of samples per
//! 20 ms (441 at 22.05 kHz), so each call yields exactly one output frame. Added latency: one frame
//! ([`Resampler::delay`]).

use rubato::{FftFixedIn, Resampler as _};

use crate::pcm::{to_f32, to_i16};
use crate::{AudioError, SampleRate};

/// Converts 20 ms frames from one rate to another. One per call direction; holds its filter state.
pub struct Resampler {
    inner: FftFixedIn<f32>,
    from: SampleRate,
    to: SampleRate,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

impl Resampler {
    /// A resampler from `from` to `to` (the same rate is allowed and copies).
    pub fn new(from: SampleRate, to: SampleRate) -> Result<Self, AudioError> {
        let inner = FftFixedIn::<f32>::new(
            from.hz() as usize,
            to.hz() as usize,
            from.frame_samples(),
            1,
            1,
        )
        .map_err(|_| AudioError::UnsupportedRate { hz: to.hz() })?;
        let output = vec![0.0; inner.output_frames_max()];
        Ok(Self {
            inner,
            from,
            to,
            input: vec![0.0; from.frame_samples()],
            output,
        })
    }

    /// Converts one input frame (`from.frame_samples()` samples) into `out`, which must hold
    /// `to.frame_samples()`. Returns the samples written.
    pub fn process_frame(&mut self, frame: &[i16], out: &mut [i16]) -> Result<usize, AudioError> {
        if frame.len() != self.from.frame_samples() {
            return Err(AudioError::WrongFrameSize {
                expected: self.from.frame_samples(),
                got: frame.len(),
            });
        }
        if self.from == self.to {
            if out.len() < frame.len() {
                return Err(AudioError::OutputTooSmall {
                    needed: frame.len(),
                    got: out.len(),
                });
            }
            out[..frame.len()].copy_from_slice(frame);
            return Ok(frame.len());
        }
        for (dst, &s) in self.input.iter_mut().zip(frame) {
            *dst = to_f32(s);
        }
        let (_, written) = self
            .inner
            .process_into_buffer(&[&self.input], &mut [&mut self.output], None)
            .map_err(|_| AudioError::WrongFrameSize {
                expected: self.from.frame_samples(),
                got: frame.len(),
            })?;
        if out.len() < written {
            return Err(AudioError::OutputTooSmall {
                needed: written,
                got: out.len(),
            });
        }
        for (dst, &s) in out.iter_mut().zip(&self.output[..written]) {
            *dst = to_i16(s);
        }
        Ok(written)
    }

    /// Output samples of delay the filter adds (zero when rates match).
    pub fn delay(&self) -> usize {
        if self.from == self.to {
            0
        } else {
            self.inner.output_delay()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: SampleRate, hz: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                (amplitude
                    * (2.0 * std::f64::consts::PI * hz * n as f64 / f64::from(rate.hz())).sin())
                    as i16
            })
            .collect()
    }

    fn run(from: SampleRate, to: SampleRate, input: &[i16]) -> Vec<i16> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0i16; to.frame_samples()];
        for frame in input.chunks_exact(from.frame_samples()) {
            let n = r.process_frame(frame, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn every_pair_yields_one_frame_per_frame() {
        for from in SampleRate::ALL {
            for to in SampleRate::ALL {
                let out = run(
                    from,
                    to,
                    &sine(from, 440.0, 8000.0, from.frame_samples() * 10),
                );
                assert_eq!(out.len(), to.frame_samples() * 10, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn a_tone_in_band_keeps_its_level() {
        for (from, to) in [
            (SampleRate::Hz8000, SampleRate::Hz16000),
            (SampleRate::Hz48000, SampleRate::Hz16000),
            (SampleRate::Hz22050, SampleRate::Hz8000),
        ] {
            let out = run(
                from,
                to,
                &sine(from, 1000.0, 10_000.0, from.frame_samples() * 50),
            );
            let steady = &out[out.len() / 2..];
            let ratio_db = 20.0 * (rms(steady) / (10_000.0 / 2f64.sqrt())).log10();
            assert!(
                ratio_db.abs() < 0.5,
                "{from:?} -> {to:?}: level changed by {ratio_db:.2} dB"
            );
        }
    }

    #[test]
    fn a_tone_above_the_new_nyquist_is_filtered_out() {
        // 6 kHz cannot exist at 8 kHz; it must vanish, not fold back to 2 kHz.
        let out = run(
            SampleRate::Hz16000,
            SampleRate::Hz8000,
            &sine(SampleRate::Hz16000, 6000.0, 10_000.0, 320 * 50),
        );
        let steady = &out[out.len() / 2..];
        let attenuation_db = 20.0 * (rms(steady) / (10_000.0 / 2f64.sqrt())).log10();
        assert!(
            attenuation_db < -40.0,
            "aliasing only {attenuation_db:.1} dB down"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_frames_at_any_pair_give_whole_frames_and_never_panic(
            from_i in 0usize..5,
            to_i in 0usize..5,
            seed in proptest::prelude::any::<u64>(),
            frames in 1usize..6,
        ) {
            let (from, to) = (SampleRate::ALL[from_i], SampleRate::ALL[to_i]);
            let mut rng = crate::corpus::Rng::new(seed);
            // Full-scale noise, the worst case for overshoot: the output must saturate, not wrap.
            let input: Vec<i16> = (0..from.frame_samples() * frames)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * 32_767.0) as i16)
                .collect();
            let out = run(from, to, &input);
            proptest::prop_assert_eq!(out.len(), to.frame_samples() * frames);
        }
    }

    #[test]
    fn wrong_frame_sizes_are_errors() {
        let mut r = Resampler::new(SampleRate::Hz8000, SampleRate::Hz16000).unwrap();
        let mut out = [0i16; 320];
        assert_eq!(
            r.process_frame(&[0; 100], &mut out),
            Err(AudioError::WrongFrameSize {
                expected: 160,
                got: 100
            })
        );
        assert!(matches!(
            r.process_frame(&[0; 160], &mut out[..10]),
            Err(AudioError::OutputTooSmall { .. })
        ));
    }
}
