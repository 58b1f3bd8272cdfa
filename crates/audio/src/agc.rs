//! Automatic gain control: brings a quiet caller up and a shouting one down to one level for the
//! recogniser, without pumping up the line noise between words and without ever clipping.
//!
//! The level follows the signal's RMS with a fast attack and a slow release; the gain moves toward
//! `target - level` (down quickly, up slowly) only while the frame is clearly above the tracked noise
//! floor, and holds otherwise. A per-sample limit then guarantees no output sample exceeds the ceiling.

use crate::pcm::{to_f32, to_i16};

/// AGC settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgcOptions {
    /// Target speech level, dBFS RMS.
    pub target_dbfs: f32,
    /// Most the gain may add, dB.
    pub max_gain_db: f32,
    /// Most the gain may take away, dB (negative).
    pub min_gain_db: f32,
    /// Time for the gain to fall by 10 dB (loud speech arrives).
    pub attack_ms: f32,
    /// Time for the gain to rise by 10 dB (speech got quieter).
    pub release_ms: f32,
    /// A frame counts as speech when this far above the noise floor, dB.
    pub speech_margin_db: f32,
    /// Output peak ceiling, dBFS.
    pub ceiling_dbfs: f32,
}

impl Default for AgcOptions {
    fn default() -> Self {
        Self {
            target_dbfs: -20.0,
            max_gain_db: 24.0,
            min_gain_db: -12.0,
            attack_ms: 30.0,
            release_ms: 800.0,
            speech_margin_db: 10.0,
            ceiling_dbfs: -1.0,
        }
    }
}

/// AGC state of one call direction.
#[derive(Debug, Clone)]
pub struct Agc {
    options: AgcOptions,
    frame_ms: f32,
    gain_db: f32,
    /// Gain applied at the end of the last frame (linear), so each frame ramps from it.
    applied: f32,
    floor_dbfs: f32,
    frames_seen: u32,
}

impl Agc {
    /// An AGC for frames of `frame_ms` milliseconds.
    pub fn new(options: AgcOptions, frame_ms: f32) -> Self {
        Self {
            options,
            frame_ms,
            gain_db: 0.0,
            applied: 1.0,
            floor_dbfs: -70.0,
            frames_seen: 0,
        }
    }

    /// Current gain, dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Applies gain to one frame in place.
    pub fn process(&mut self, frame: &mut [i16]) {
        if frame.is_empty() {
            return;
        }
        let energy = frame.iter().map(|&s| to_f32(s).powi(2)).sum::<f32>() / frame.len() as f32;
        let level = 10.0 * (energy + 1e-12).log10();
        self.track_floor(level);
        let o = self.options;
        if level > self.floor_dbfs + o.speech_margin_db {
            let wanted = (o.target_dbfs - level).clamp(o.min_gain_db, o.max_gain_db);
            let step = if wanted < self.gain_db {
                10.0 * self.frame_ms / o.attack_ms
            } else {
                10.0 * self.frame_ms / o.release_ms
            };
            self.gain_db += (wanted - self.gain_db).clamp(-step, step);
        }
        let target = 10f32.powf(self.gain_db / 20.0);
        let ceiling = 10f32.powf(o.ceiling_dbfs / 20.0);
        let n = frame.len() as f32;
        let start = self.applied;
        for (i, s) in frame.iter_mut().enumerate() {
            let x = to_f32(*s);
            let ramped = start + (target - start) * (i as f32 + 1.0) / n;
            // The limiter: never let this sample past the ceiling, whatever the gain wants.
            let g = if x.abs() * ramped > ceiling {
                ceiling / x.abs()
            } else {
                ramped
            };
            *s = to_i16(x * g);
        }
        self.applied = target;
    }

    fn track_floor(&mut self, level: f32) {
        // Down fast, up slowly (~1.5 dB a second at 20 ms frames): the floor is the quiet between words.
        self.floor_dbfs = if self.frames_seen == 0 {
            level
        } else if level < self.floor_dbfs {
            0.8 * self.floor_dbfs + 0.2 * level
        } else {
            (self.floor_dbfs + 0.03).min(level)
        };
        self.frames_seen = self.frames_seen.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::Rng;

    fn rms_dbfs(x: &[i16]) -> f32 {
        let e = x.iter().map(|&s| to_f32(s).powi(2)).sum::<f32>() / x.len() as f32;
        10.0 * e.log10()
    }

    /// A syllable-like signal: a 200 Hz tone under a 4 Hz envelope, at a chosen RMS level, with pauses.
    fn speechy(level_dbfs: f32, seconds: f32, rng: &mut Rng) -> Vec<i16> {
        let amplitude = 10f32.powf(level_dbfs / 20.0) * 2f32.sqrt() * 32_768.0;
        (0..(seconds * 16_000.0) as usize)
            .map(|n| {
                let t = n as f32 / 16_000.0;
                let envelope = (2.0 * std::f32::consts::PI * 2.0 * t).sin().abs();
                let voice =
                    (2.0 * std::f32::consts::PI * 200.0 * t).sin() * amplitude * envelope * 1.4;
                (voice + rng.gaussian() as f32 * 3.0) as i16
            })
            .collect()
    }

    fn run(agc: &mut Agc, signal: &mut [i16]) {
        for frame in signal.chunks_mut(320) {
            agc.process(frame);
        }
    }

    #[test]
    fn quiet_and_loud_speakers_end_near_the_target() {
        let mut rng = Rng::new(3);
        for level in [-40.0, -30.0, -12.0] {
            let mut agc = Agc::new(AgcOptions::default(), 20.0);
            let mut signal = speechy(level, 6.0, &mut rng);
            run(&mut agc, &mut signal);
            let tail = rms_dbfs(&signal[signal.len() / 2..]);
            assert!(
                (tail - -20.0).abs() < 3.0,
                "input {level} dBFS came out at {tail:.1} dBFS"
            );
        }
    }

    #[test]
    fn never_clips_even_on_full_scale_bursts() {
        let mut rng = Rng::new(5);
        let mut agc = Agc::new(AgcOptions::default(), 20.0);
        // Quiet first, so the gain is at its maximum when a full-scale burst arrives.
        let mut signal = speechy(-45.0, 3.0, &mut rng);
        signal.extend((0..16_000).map(|n| if n % 40 < 20 { 32_000i16 } else { -32_000 }));
        run(&mut agc, &mut signal);
        let ceiling = (10f32.powf(-1.0 / 20.0) * 32_768.0) as i32 + 1;
        let peak = signal.iter().map(|&s| i32::from(s).abs()).max().unwrap();
        assert!(peak <= ceiling, "peak {peak} over ceiling {ceiling}");
        assert!(!signal.iter().any(|&s| s == i16::MAX || s == i16::MIN));
    }

    #[test]
    fn silence_between_words_is_not_pumped_up() {
        let mut rng = Rng::new(9);
        let mut agc = Agc::new(AgcOptions::default(), 20.0);
        let mut speech = speechy(-30.0, 3.0, &mut rng);
        run(&mut agc, &mut speech);
        let gain_after_speech = agc.gain_db();
        let mut hiss: Vec<i16> = (0..16_000 * 3)
            .map(|_| (rng.gaussian() * 30.0) as i16)
            .collect();
        run(&mut agc, &mut hiss);
        assert!(
            (agc.gain_db() - gain_after_speech).abs() < 0.5,
            "gain drifted in silence"
        );
    }
}
