//! The fallback detector when the Silero model is absent: band-limited energy against a tracked noise floor.
//! Cheap and model-free, but it hears any loud noise as speech; Silero is the default for that reason.

use super::{SpeechProbability, VadError};

const WINDOW: usize = 512;

/// Energy detector state for one call.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    /// Decibels above the noise floor that count as speech (set from VAD_SENSITIVITY).
    margin_db: f32,
    floor_db: f32,
    highpass_prev_in: f32,
    highpass_prev_out: f32,
    windows_seen: u32,
}

impl EnergyVad {
    /// A detector that calls speech anything `margin_db` above the line's noise floor.
    pub fn new(margin_db: f32) -> Self {
        Self {
            margin_db,
            floor_db: -60.0,
            highpass_prev_in: 0.0,
            highpass_prev_out: 0.0,
            windows_seen: 0,
        }
    }
}

impl SpeechProbability for EnergyVad {
    fn window(&self) -> usize {
        WINDOW
    }

    fn probability(&mut self, window: &[f32]) -> Result<f32, VadError> {
        super::check_window(window, WINDOW)?;
        // First-order high-pass at ~100 Hz: mains hum and DC are not speech.
        const A: f32 = 0.961;
        let mut energy = 0.0f32;
        for &x in window {
            let y = A * (self.highpass_prev_out + x - self.highpass_prev_in);
            self.highpass_prev_in = x;
            self.highpass_prev_out = y;
            energy += y * y;
        }
        let db = 10.0 * (energy / WINDOW as f32 + 1e-10).log10();
        // Floor: follow quieter windows quickly, louder ones slowly (0.1 dB a window, about 3 dB a second),
        // so speech does not drag the floor up but a line that gets noisier is tracked within seconds.
        self.floor_db = if self.windows_seen == 0 {
            db
        } else if db < self.floor_db {
            0.7 * self.floor_db + 0.3 * db
        } else {
            (self.floor_db + 0.1).min(db)
        };
        self.windows_seen = self.windows_seen.saturating_add(1);
        let excess = db - self.floor_db - self.margin_db;
        Ok(1.0 / (1.0 + (-excess / 2.0).exp()))
    }

    fn reset(&mut self) {
        *self = Self::new(self.margin_db);
    }

    fn name(&self) -> &'static str {
        "energy"
    }

    fn skip_background(&self) -> bool {
        // It tracks its own noise floor from every window, and costs next to nothing.
        false
    }
}
