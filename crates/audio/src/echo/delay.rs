//! The echo path's bulk delay: the energy envelopes of what we sent and what came back, correlated over
//! the last two seconds every 250 ms; a delay seen twice in a row is taken.

use realfft::num_complex::Complex32;

use super::{BLOCK, DELAY_WINDOW, EchoCanceller, FIRST_WINDOW, NO_ECHO_ESTIMATES};

impl EchoCanceller {
    /// The reference and the caller's audio were lined up again (one of them stalled past what the
    /// pairing absorbs): the echo's delay may have moved by any amount, and the envelopes before this
    /// point pair the wrong blocks. The delay is searched afresh from here, on these blocks only; until
    /// it is found, anything sent within the longest delay searched counts as possibly coming back (so
    /// the suppressor guards it all), and a "no echo" verdict is taken back, to be judged again.
    pub fn restart_delay_search(&mut self) {
        self.search_from = (self.env_blocks, self.far_blocks);
        self.delay_known = false;
        self.delay_candidate = None;
        self.quiet_estimates = 0;
        self.stats.no_echo = false;
        self.stats.delay_restarts += 1;
        self.evidence_blocks = 0;
        self.evidence_in = 0.0;
        self.evidence_left = 0.0;
    }

    /// Records this near block's energy, and now and then estimates the delay over the blocks both
    /// envelopes hold.
    pub(super) fn record_near_envelope(&mut self, near_energy: f32) {
        let len = self.near_env.len() as u64;
        self.near_env[(self.env_blocks % len) as usize] = 10.0 * (near_energy + 1e-10).log10();
        self.env_blocks += 1;
        if !self.env_blocks.is_multiple_of(25) || self.far_blocks == 0 {
            return;
        }
        // Near block n pairs with reference block n - lag; the newest n with its reference in is `top`.
        let (newest_near, newest_far) = (self.env_blocks - 1, self.far_blocks - 1);
        let top = newest_near.min(newest_far);
        let max_delay = self.options.max_delay_blocks as u64;
        // Only blocks since the last restart pair up: near from `near_from`, the reference from `far_from`.
        let (near_from, far_from) = self.search_from;
        let window = (DELAY_WINDOW as u64)
            .min((top + 1).saturating_sub(max_delay))
            .min((top + 1).saturating_sub(near_from))
            .min((top + 1).saturating_sub(max_delay + far_from))
            .min(len.saturating_sub(newest_near - top))
            .min(len.saturating_sub(max_delay + newest_far - top));
        if window >= FIRST_WINDOW as u64 {
            self.estimate_delay(top, window);
        }
    }

    /// Picks the lag at which the near-end envelope best follows the reference envelope, over the
    /// `window` near blocks up to `top`.
    fn estimate_delay(&mut self, top: u64, window: u64) {
        let len = self.far_env.len() as u64;
        let at = |env: &[f32], block: u64| env[(block % len) as usize];
        let mut best = (0usize, 0.0f32);
        let mut reference_active = false;
        for lag in 0..=self.options.max_delay_blocks as u64 {
            let (mut sn, mut sf, mut snn, mut sff, mut snf) = (0.0f32, 0.0, 0.0, 0.0, 0.0);
            for k in 0..window {
                let n = at(&self.near_env, top - k);
                let f = at(&self.far_env, top - k - lag);
                sn += n;
                sf += f;
                snn += n * n;
                sff += f * f;
                snf += n * f;
            }
            let w = window as f32;
            let cov = snf - sn * sf / w;
            let var = ((snn - sn * sn / w) * (sff - sf * sf / w)).sqrt();
            // A silent reference has no variance: nothing to learn from this window.
            reference_active |= (sff - sf * sf / w) / w > 1.0;
            if var > 1e-3 {
                let r = cov / var;
                if r > best.1 {
                    best = (lag as usize, r);
                }
            }
        }
        if best.1 <= 0.5 {
            // The agent talked and nothing on the line followed it: no echo (or not yet).
            if reference_active && best.1 < 0.3 {
                self.quiet_estimates += 1;
                if self.quiet_estimates >= NO_ECHO_ESTIMATES {
                    self.stats.no_echo = true;
                }
            }
            return;
        }
        self.quiet_estimates = 0;
        // Move only on an estimate seen twice in a row and more than a block away: each move throws away
        // what the filter has learned, and speech envelopes give the odd spurious peak.
        let candidate = best.0;
        let confirmed = self.delay_candidate == Some(candidate);
        self.delay_candidate = Some(candidate);
        if !confirmed {
            return;
        }
        let moves = candidate != self.delay_blocks
            && (self.stats.adapted_blocks == 0 || candidate.abs_diff(self.delay_blocks) > 1);
        if moves {
            if self.found_once {
                self.stats.delay_moves += 1;
            }
            self.delay_blocks = candidate;
            self.since_delay = 0;
            self.evidence_blocks = 0;
            self.evidence_in = 0.0;
            self.evidence_left = 0.0;
            for w in &mut self.weights {
                w.fill(Complex32::default());
            }
        }
        self.delay_known = true;
        self.found_once = true;
        self.stats.delay_samples = self.delay_blocks * BLOCK;
        self.stats.longest_delay_samples = self
            .stats
            .longest_delay_samples
            .max(self.stats.delay_samples);
    }
}
