//! Turns per-window speech probabilities into speech-start and speech-end events.
//!
//! Hysteresis (a higher threshold to start than to continue), a minimum speech duration (a cough or a
//! click is not a turn) and a minimum silence (a pause between words is not the end of a turn). The start
//! threshold rises with the probability the engine reports on this line's background, so a noisy line
//! needs clearer speech. While no one speaks, windows within 3 dB of the background energy are judged
//! without the model, which saves most model calls on a call's quiet side. Timestamps are call-relative sample indices at 16 kHz, refined inside the first
//! and last speech windows to the 4 ms block where the energy crosses the noise floor.

use std::time::Duration;

use super::{SpeechProbability, VadError};
use crate::SampleRate;

/// Detector settings; [`VadOptions::for_sensitivity`] maps VAD_SENSITIVITY to them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadOptions {
    /// Probability needed to start speech on a quiet line.
    pub start_threshold: f32,
    /// Probability below which speech counts as paused.
    pub end_threshold: f32,
    /// Speech shorter than this is ignored.
    pub min_speech: Duration,
    /// Silence shorter than this does not end speech.
    pub min_silence: Duration,
}

impl VadOptions {
    /// VAD_SENSITIVITY 0–3 (3 the most sensitive):
    ///
    /// | level | start | end  | energy margin | for |
    /// |-------|-------|------|---------------|-----|
    /// | 0     | 0.80  | 0.60 | 15 dB         | very noisy lines; may miss soft speech |
    /// | 1     | 0.65  | 0.45 | 12 dB         | noisy lines |
    /// | 2     | 0.50  | 0.35 | 9 dB          | default |
    /// | 3     | 0.35  | 0.20 | 6 dB          | quiet lines, soft speakers |
    ///
    /// Minimum speech 96 ms (three Silero windows), minimum silence 320 ms at every level.
    pub fn for_sensitivity(level: u8) -> Self {
        let (start, end) = match level {
            0 => (0.80, 0.60),
            1 => (0.65, 0.45),
            2 => (0.50, 0.35),
            _ => (0.35, 0.20),
        };
        Self {
            start_threshold: start,
            end_threshold: end,
            min_speech: Duration::from_millis(96),
            min_silence: Duration::from_millis(320),
        }
    }

    /// The energy detector's margin over the noise floor for a sensitivity level.
    pub fn energy_margin_db(level: u8) -> f32 {
        match level {
            0 => 15.0,
            1 => 12.0,
            2 => 9.0,
            _ => 6.0,
        }
    }
}

/// A change in the caller's voice activity. Sample indices count from the start of the call at 16 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at this sample (reported once `min_speech` has passed).
    SpeechStarted {
        /// First speech sample.
        at: u64,
    },
    /// Speech ended at this sample (reported once `min_silence` has passed).
    SpeechEnded {
        /// First sample after the speech.
        at: u64,
        /// The matching start.
        started_at: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Silence,
    /// Probably speech since `start`, not yet long enough.
    Onset {
        start: u64,
    },
    Speech {
        start: u64,
    },
    /// Speech since `start`, quiet since `quiet_from`.
    Pause {
        start: u64,
        quiet_from: u64,
    },
}

/// Block size for timestamp refinement: 4 ms at 16 kHz.
const BLOCK: usize = 64;

/// One call's voice activity detector over 16 kHz audio.
pub struct VadDetector {
    engine: Box<dyn SpeechProbability>,
    options: VadOptions,
    window: Vec<f32>,
    filled: usize,
    /// Call-relative index of `window[0]`.
    window_start: u64,
    state: State,
    /// Average probability the engine gives this line's non-speech: raises the start threshold on noisy lines.
    background_probability: f32,
    /// Noise floor energy per sample, for timestamp refinement.
    floor_energy: f32,
    last_probability: f32,
    min_speech: u64,
    min_silence: u64,
    /// Extra silence the current pause needs before it ends speech (see `hold_pause`).
    hold: u64,
    windows_seen: u64,
    skipped_windows: u64,
}

/// While no one speaks, a window less than this many times the background energy (3 dB) is line noise
/// and is not worth a model call. Speech at 5 dB SNR clears it; the model still decides everything else.
const GATE_RATIO: f32 = 2.0;
/// Windows (about 0.3 s) to learn the background before gating starts.
const GATE_WARMUP: u64 = 10;

impl std::fmt::Debug for VadDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VadDetector")
            .field("engine", &self.engine.name())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl VadDetector {
    /// A detector over `engine`.
    pub fn new(engine: Box<dyn SpeechProbability>, options: VadOptions) -> Self {
        let window = engine.window();
        let samples =
            |d: Duration| (d.as_secs_f64() * f64::from(SampleRate::Hz16000.hz())).round() as u64;
        Self {
            window: vec![0.0; window],
            engine,
            options,
            filled: 0,
            window_start: 0,
            state: State::Silence,
            background_probability: 0.0,
            floor_energy: 1e-6,
            last_probability: 0.0,
            min_speech: samples(options.min_speech),
            min_silence: samples(options.min_silence),
            hold: 0,
            windows_seen: 0,
            skipped_windows: 0,
        }
    }

    /// Feeds 16 kHz samples (any length; normally one 20 ms frame) and returns the event they completed,
    /// if any. At most one window completes per 20 ms frame, so at most one event comes back.
    pub fn process(&mut self, samples: &[i16]) -> Result<Option<VadEvent>, VadError> {
        let mut event = None;
        for &s in samples {
            self.window[self.filled] = crate::pcm::to_f32(s);
            self.filled += 1;
            if self.filled == self.window.len() {
                let energy =
                    self.window.iter().map(|x| x * x).sum::<f32>() / self.window.len() as f32;
                let p = if self.is_background(energy) {
                    self.skipped_windows += 1;
                    0.0
                } else {
                    self.engine.probability(&self.window)?
                };
                self.last_probability = p;
                if let Some(e) = self.step(p, energy) {
                    event = Some(e);
                }
                self.window_start += self.window.len() as u64;
                self.filled = 0;
            }
        }
        Ok(event)
    }

    /// Whether the caller is speaking now (including a pause shorter than `min_silence`).
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. } | State::Pause { .. })
    }

    /// Whether the caller went quiet after speaking and the detector is waiting out `min_silence` to
    /// call it the end of speech.
    pub fn pausing(&self) -> bool {
        matches!(self.state, State::Pause { .. })
    }

    /// How long the caller has been quiet in the current pause; `None` when not pausing.
    pub fn quiet_for(&self) -> Option<Duration> {
        let State::Pause { quiet_from, .. } = self.state else {
            return None;
        };
        let heard = self.window_start + self.filled as u64;
        Some(Duration::from_secs_f64(
            heard.saturating_sub(quiet_from) as f64 / f64::from(SampleRate::Hz16000.hz()),
        ))
    }

    /// Declares the end of speech now, during a pause, before `min_silence` has run out: what the
    /// caller said told the turn detector they are done. Returns the event the silence would have
    /// given; `None` (and no change) when the caller is not pausing.
    pub fn end_speech_now(&mut self) -> Option<VadEvent> {
        let State::Pause { start, quiet_from } = self.state else {
            return None;
        };
        self.state = State::Silence;
        self.hold = 0;
        Some(VadEvent::SpeechEnded {
            at: quiet_from,
            started_at: start,
        })
    }

    /// Makes the current pause wait until the caller has been quiet for `silence` in all (at least
    /// `min_silence`) before it ends speech: what the caller said so far sounds unfinished ("my number
    /// is", a trailing "and"). The next pause waits `min_silence` again. No effect when not pausing.
    pub fn hold_pause(&mut self, silence: Duration) {
        if matches!(self.state, State::Pause { .. }) {
            let total =
                (silence.as_secs_f64() * f64::from(SampleRate::Hz16000.hz())).round() as u64;
            self.hold = total.saturating_sub(self.min_silence);
        }
    }

    /// Windows judged background by energy alone, without running the engine (a cost saving).
    pub fn skipped_windows(&self) -> u64 {
        self.skipped_windows
    }

    fn is_background(&mut self, energy: f32) -> bool {
        self.windows_seen += 1;
        if !self.engine.skip_background()
            || self.windows_seen <= GATE_WARMUP
            || !matches!(self.state, State::Silence)
        {
            return false;
        }
        energy < self.floor_energy * GATE_RATIO
    }

    /// The engine's last probability.
    pub fn last_probability(&self) -> f32 {
        self.last_probability
    }

    /// The start threshold in force: the configured one, raised on lines whose background scores high.
    pub fn start_threshold(&self) -> f32 {
        self.options
            .start_threshold
            .max((self.background_probability + 0.25).min(0.95))
    }

    fn step(&mut self, p: f32, energy: f32) -> Option<VadEvent> {
        let start_threshold = self.start_threshold();
        let end_threshold = self.options.end_threshold.min(start_threshold - 0.1);
        let here = self.window_start;
        if matches!(self.state, State::Silence) {
            // Learn the background from windows that are clearly not speech.
            self.background_probability += (p - self.background_probability) * 0.05;
            self.floor_energy += (energy - self.floor_energy) * 0.1;
        }
        match self.state {
            State::Silence if p >= start_threshold => {
                let start = here + self.first_loud_block() as u64;
                self.state = State::Onset { start };
                self.confirm_onset(start)
            }
            State::Silence => None,
            State::Onset { start } if p >= end_threshold => self.confirm_onset(start),
            State::Onset { .. } => {
                self.state = State::Silence;
                None
            }
            State::Speech { start } if p < end_threshold => {
                self.state = State::Pause {
                    start,
                    quiet_from: here,
                };
                None
            }
            State::Speech { .. } => None,
            State::Pause { start, .. } if p >= end_threshold => {
                self.state = State::Speech { start };
                self.hold = 0;
                None
            }
            State::Pause { start, quiet_from } => {
                let quiet_end = here + self.window.len() as u64;
                if quiet_end - quiet_from >= self.min_silence + self.hold {
                    self.state = State::Silence;
                    self.hold = 0;
                    Some(VadEvent::SpeechEnded {
                        at: quiet_from,
                        started_at: start,
                    })
                } else {
                    None
                }
            }
        }
    }

    fn confirm_onset(&mut self, start: u64) -> Option<VadEvent> {
        let window_end = self.window_start + self.window.len() as u64;
        if window_end.saturating_sub(start) >= self.min_speech {
            self.state = State::Speech { start };
            Some(VadEvent::SpeechStarted { at: start })
        } else {
            None
        }
    }

    /// Offset of the first 4 ms block in the window clearly above the noise floor (6 dB), else 0.
    fn first_loud_block(&self) -> usize {
        let threshold = self.floor_energy * 4.0;
        self.window
            .chunks_exact(BLOCK)
            .position(|block| block.iter().map(|x| x * x).sum::<f32>() / BLOCK as f32 > threshold)
            .map_or(0, |i| i * BLOCK)
    }

    /// Forgets the call: a new call starts from silence with a fresh background estimate.
    pub fn reset(&mut self) {
        self.engine.reset();
        self.filled = 0;
        self.window_start = 0;
        self.state = State::Silence;
        self.hold = 0;
        self.background_probability = 0.0;
        self.floor_energy = 1e-6;
        self.windows_seen = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays scripted probabilities, one per window.
    struct Scripted(Vec<f32>, usize);

    impl SpeechProbability for Scripted {
        fn window(&self) -> usize {
            512
        }
        fn probability(&mut self, _: &[f32]) -> Result<f32, VadError> {
            let p = self.0.get(self.1).copied().unwrap_or(0.0);
            self.1 += 1;
            Ok(p)
        }
        fn reset(&mut self) {}
        fn name(&self) -> &'static str {
            "scripted"
        }
    }

    fn events(probabilities: &[f32], options: VadOptions) -> Vec<VadEvent> {
        let mut vad = VadDetector::new(Box::new(Scripted(probabilities.to_vec(), 0)), options);
        let frame = [0i16; 320];
        let mut out = Vec::new();
        for _ in 0..(probabilities.len() * 512 / 320 + 2) {
            if let Some(e) = vad.process(&frame).unwrap() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn speech_is_reported_with_its_start_and_end_samples() {
        let mut p = vec![0.0; 5];
        p.extend([0.9; 10]);
        p.extend([0.0; 15]);
        let e = events(&p, VadOptions::for_sensitivity(2));
        assert_eq!(
            e,
            vec![
                VadEvent::SpeechStarted { at: 5 * 512 },
                VadEvent::SpeechEnded {
                    at: 15 * 512,
                    started_at: 5 * 512
                }
            ]
        );
    }

    #[test]
    fn a_blip_shorter_than_min_speech_is_ignored() {
        let mut p = vec![0.0; 5];
        p.extend([0.9; 2]);
        p.extend([0.0; 20]);
        assert!(events(&p, VadOptions::for_sensitivity(2)).is_empty());
    }

    #[test]
    fn a_pause_shorter_than_min_silence_does_not_end_speech() {
        let mut p = vec![0.0; 3];
        p.extend([0.9; 10]);
        p.extend([0.1; 5]); // 160 ms
        p.extend([0.9; 10]);
        p.extend([0.0; 20]);
        let e = events(&p, VadOptions::for_sensitivity(2));
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn a_held_pause_ends_speech_only_after_the_longer_silence() {
        let mut p = vec![0.0; 3];
        p.extend([0.9; 10]);
        p.extend([0.0; 40]);
        let mut options = VadOptions::for_sensitivity(2);
        options.min_silence = Duration::from_millis(320);
        let mut vad = VadDetector::new(Box::new(Scripted(p, 0)), options);
        let window = [0i16; 512];
        for _ in 0..14 {
            vad.process(&window).unwrap();
        }
        assert!(vad.pausing());
        // Held for 960 ms (30 windows of 32 ms) in all: no end at 320 ms.
        vad.hold_pause(Duration::from_millis(960));
        let ended_at = (14..53).find(|_| vad.process(&window).unwrap().is_some());
        assert!(
            ended_at.is_some_and(|w| w >= 13 + 29),
            "ended at window {ended_at:?}"
        );
    }

    #[test]
    fn speech_can_be_ended_early_in_a_pause_and_only_there() {
        let mut p = vec![0.0; 3];
        p.extend([0.9; 10]);
        p.extend([0.0; 20]);
        let mut vad = VadDetector::new(Box::new(Scripted(p, 0)), VadOptions::for_sensitivity(2));
        let window = [0i16; 512];
        assert_eq!(vad.end_speech_now(), None, "not speaking yet");
        for _ in 0..13 {
            vad.process(&window).unwrap();
        }
        assert!(vad.in_speech() && vad.quiet_for().is_none());
        assert_eq!(vad.end_speech_now(), None, "speaking, not pausing");
        for _ in 0..4 {
            assert_eq!(vad.process(&window).unwrap(), None);
        }
        // Quiet since window 13; four windows heard: 128 ms.
        assert_eq!(vad.quiet_for(), Some(Duration::from_millis(128)));
        assert_eq!(
            vad.end_speech_now(),
            Some(VadEvent::SpeechEnded {
                at: 13 * 512,
                started_at: 3 * 512
            })
        );
        assert!(!vad.in_speech() && vad.quiet_for().is_none());
        for _ in 0..20 {
            assert_eq!(vad.process(&window).unwrap(), None, "ended once, not twice");
        }
    }

    #[test]
    fn sensitivity_changes_what_counts_as_speech() {
        let mut p = vec![0.0; 3];
        p.extend([0.45; 10]);
        p.extend([0.0; 20]);
        assert!(events(&p, VadOptions::for_sensitivity(1)).is_empty());
        assert_eq!(events(&p, VadOptions::for_sensitivity(3)).len(), 2);
    }

    #[test]
    fn a_line_whose_background_scores_high_needs_clearer_speech() {
        // Background at 0.4 for 4 s: the start threshold rises above 0.5.
        let mut p = vec![0.4; 125];
        p.extend([0.55; 10]);
        p.extend([0.4; 20]);
        assert!(events(&p, VadOptions::for_sensitivity(2)).is_empty());
    }
}
