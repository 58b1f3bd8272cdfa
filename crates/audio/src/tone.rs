//! Tones on the caller's line: the beep an answering machine plays before it records. A beep is one
//! frequency, nearly all of a frame's energy within two bins of the frame's strongest, that does not
//! move by more than [`DRIFT_HZ`] for at least [`MIN_TONE`]. Speech spreads its energy over harmonics,
//! and even a held vowel's strongest harmonic follows the voice's pitch. Each 20 ms frame at 16 kHz is
//! windowed and transformed (50 Hz bins, the peak's frequency refined between bins); a tone is
//! reported once it ends, since the message must start after it.

use std::sync::Arc;
use std::time::Duration;

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

use crate::pcm::to_f32;

/// Samples analysed at a time: 20 ms at 16 kHz, 50 Hz a bin.
const FRAME: usize = 320;
const BIN_HZ: f32 = 16_000.0 / FRAME as f32;
/// Beeps sit between these (answering machines use 440 Hz to 2.1 kHz; the telephone band ends at 3.4).
const LOWEST_HZ: f32 = 400.0;
const HIGHEST_HZ: f32 = 3_000.0;
/// Share of a frame's energy within two bins of its strongest for the frame to hold a tone (a steady
/// sine leaves more than 99 % there through the Hann window).
const PURITY: f32 = 0.9;
/// How far a tone's frequency may move from where it started.
const DRIFT_HZ: f32 = 15.0;
/// Quietest frame that can hold a tone: -40 dBFS.
const MIN_POWER: f32 = 1e-4;
/// Shortest tone reported: 160 ms (eight frames). Answering machines beep for 0.2 to 1 s.
const MIN_TONE: usize = 8;

/// A steady tone that just ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tone {
    /// Its frequency, to the nearest 10 Hz.
    pub hz: f32,
    /// How long it lasted.
    pub duration: Duration,
}

/// Finds steady tones in caller audio (16 kHz).
pub struct ToneDetector {
    fft: Arc<dyn RealToComplex<f32>>,
    scratch: Vec<Complex32>,
    window: Vec<f32>,
    time: Vec<f32>,
    spectrum: Vec<Complex32>,
    power: Vec<f32>,
    pending: Vec<i16>,
    /// The current run of tone frames: its first frame's frequency and its length in frames.
    run: Option<(f32, usize)>,
}

impl std::fmt::Debug for ToneDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToneDetector")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl Default for ToneDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl ToneDetector {
    /// A detector; allocates its buffers here.
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FRAME);
        let window = (0..FRAME)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / (FRAME - 1) as f32).cos())
            .collect();
        Self {
            scratch: fft.make_scratch_vec(),
            spectrum: fft.make_output_vec(),
            power: vec![0.0; FRAME / 2 + 1],
            time: vec![0.0; FRAME],
            fft,
            window,
            pending: Vec::with_capacity(FRAME),
            run: None,
        }
    }

    /// Takes caller audio (16 kHz, any length); returns a tone that ended in it.
    pub fn push(&mut self, samples: &[i16]) -> Option<Tone> {
        let mut ended = None;
        for &s in samples {
            self.pending.push(s);
            if self.pending.len() == FRAME {
                let peak = self.tone_hz();
                self.pending.clear();
                if let Some(tone) = self.step(peak) {
                    ended = Some(tone);
                }
            }
        }
        ended
    }

    /// The frequency of the pending frame's tone, when it holds one.
    fn tone_hz(&mut self) -> Option<f32> {
        for ((t, &s), w) in self.time.iter_mut().zip(&self.pending).zip(&self.window) {
            *t = to_f32(s) * w;
        }
        let power = self.pending.iter().map(|&s| to_f32(s).powi(2)).sum::<f32>() / FRAME as f32;
        if power < MIN_POWER {
            return None;
        }
        self.fft
            .process_with_scratch(&mut self.time, &mut self.spectrum, &mut self.scratch)
            .ok()?;
        let bins = &mut self.power;
        for (b, c) in bins.iter_mut().zip(&self.spectrum) {
            *b = c.norm_sqr();
        }
        let total: f32 = bins[1..].iter().sum();
        // The strongest bin of the whole frame, not only of the band: a voice's low harmonics are not
        // a beep in the band above them.
        let peak = (1..bins.len() - 2).max_by(|&a, &b| bins[a].total_cmp(&bins[b]))?;
        let near: f32 = bins[peak.saturating_sub(2).max(1)..=peak + 2].iter().sum();
        if near < PURITY * total {
            return None;
        }
        // The peak between bins, from the parabola through the log powers of the peak and its neighbours.
        let (l, c, r) = (
            bins[peak - 1].max(1e-12).ln(),
            bins[peak].max(1e-12).ln(),
            bins[peak + 1].max(1e-12).ln(),
        );
        let shift = 0.5 * (l - r) / (l - 2.0 * c + r).min(-1e-6);
        let hz = (peak as f32 + shift.clamp(-0.5, 0.5)) * BIN_HZ;
        (LOWEST_HZ..=HIGHEST_HZ).contains(&hz).then_some(hz)
    }

    fn step(&mut self, tone: Option<f32>) -> Option<Tone> {
        match (self.run, tone) {
            (Some((first, frames)), Some(hz)) if (hz - first).abs() <= DRIFT_HZ => {
                self.run = Some((first, frames + 1));
                None
            }
            (run, next) => {
                self.run = next.map(|hz| (hz, 1));
                let (hz, frames) = run?;
                (frames >= MIN_TONE).then(|| Tone {
                    hz: (hz / 10.0).round() * 10.0,
                    duration: Duration::from_millis(frames as u64 * 20),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, ms: usize, amplitude: f32) -> Vec<i16> {
        (0..ms * 16)
            .map(|i| {
                (amplitude * (2.0 * std::f32::consts::PI * hz * i as f32 / 16_000.0).sin()) as i16
            })
            .collect()
    }

    fn tones_in(samples: &[i16]) -> Vec<Tone> {
        let mut detector = ToneDetector::new();
        samples
            .chunks(FRAME)
            .filter_map(|frame| detector.push(frame))
            .collect()
    }

    #[test]
    fn a_beep_is_reported_once_it_ends() {
        let mut line = vec![0i16; 3_200];
        line.extend(tone(1_000.0, 400, 8_000.0));
        line.extend(vec![0; 3_200]);
        let tones = tones_in(&line);
        assert_eq!(tones.len(), 1, "{tones:?}");
        assert!((tones[0].hz - 1_000.0).abs() <= 10.0, "{tones:?}");
        assert!((380..=420).contains(&(tones[0].duration.as_millis() as u64)));
    }

    #[test]
    fn short_quiet_or_out_of_band_tones_are_not_beeps() {
        for line in [
            tone(1_000.0, 140, 8_000.0),
            tone(1_000.0, 500, 100.0),
            tone(250.0, 500, 8_000.0),
            tone(4_000.0, 500, 8_000.0),
        ] {
            let mut line = line;
            line.extend(vec![0; 3_200]);
            assert!(tones_in(&line).is_empty());
        }
    }

    #[test]
    fn two_tones_at_once_are_not_a_beep() {
        let a = tone(700.0, 500, 6_000.0);
        let b = tone(1_300.0, 500, 6_000.0);
        let mut mixed: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        mixed.extend(vec![0; 3_200]);
        assert!(tones_in(&mixed).is_empty());
    }
}
