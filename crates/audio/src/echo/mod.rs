//! Echo suppression: the agent's own voice, coming back on the caller's line, must not be heard as the
//! caller speaking (it would barge in on itself).
//!
//! Three parts, all at 16 kHz in 10 ms blocks:
//! 1. A delay estimator correlates the energy envelopes of what we sent (the reference) and what came
//!    back, and finds the bulk delay of the echo path (up to `max_delay`).
//! 2. A partitioned-block frequency-domain adaptive filter (overlap-save, 320-point FFTs, one gradient
//!    constraint per block in rotation, as in the MDF canceller) models the path from there and subtracts
//!    its echo estimate. Adaptation pauses while the caller talks over the agent (Geigel double-talk test,
//!    which assumes, as G.168 does, that the echo's peaks return below what we sent by a margin (here
//!    3 dB; a louder echo path reads as double talk and stalls adaptation).
//! 3. A non-linear processor (ITU-T G.168's NLP): while only the agent talks, the residual left by the
//!    linear filter is attenuated to the line's noise floor. It watches a wider span than the filter
//!    models (150 ms either side of it, or every delay searched until one is known), so an echo whose
//!    delay moved is suppressed until the estimator catches up, and holds off for 240 ms after the
//!    caller is heard over the agent.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::pcm::{to_f32, to_i16};

mod delay;

const BLOCK: usize = 160;
const FFT: usize = 2 * BLOCK;
const BINS: usize = BLOCK + 1;
/// Reference history kept, in samples: enough for `max_delay` plus the filter span.
const HISTORY: usize = 1 << 15;
/// Envelope blocks correlated when estimating the delay (2 s).
const DELAY_WINDOW: usize = 200;
/// Blocks of the filter's span before the estimated delay (30 ms).
const SLACK: usize = 3;
/// Blocks the suppressor holds off after the caller was heard over the agent (240 ms).
const DOUBLE_TALK_HOLD: u32 = 24;
/// How far, in blocks either side of the filter's span, the suppressor looks for the echo once its delay
/// is known (150 ms): a line's jitter buffers move the delay by that much under load.
const DELAY_DRIFT: usize = 15;
/// How far the reference may trail the caller's audio and still be paired with it, in blocks (500 ms): in
/// a live call it arrives in step with the caller's audio, a little behind.
const LAG_ROOM: usize = 50;
/// The shortest window a first estimate is made on (1 s): a call's greeting is long enough to find it.
const FIRST_WINDOW: usize = 100;
/// Estimates in a row, with the reference active, that found no echo before the line is judged to return
/// none (about 1 s of agent speech).
const NO_ECHO_ESTIMATES: u32 = 4;

/// Echo suppression settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoOptions {
    /// Longest bulk delay of the echo path searched for, in 10 ms blocks (default 40 = 400 ms).
    pub max_delay_blocks: usize,
    /// Adaptive filter length, in 10 ms partitions (default 6 = 60 ms of echo tail).
    pub partitions: usize,
    /// Normalised step size of the adaptive filter.
    pub step: f32,
    /// Apply the non-linear processor.
    pub nlp: bool,
}

impl Default for EchoOptions {
    fn default() -> Self {
        Self {
            max_delay_blocks: 40,
            partitions: 6,
            step: 0.35,
            nlp: true,
        }
    }
}

/// What the canceller knows, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EchoStats {
    /// Estimated bulk delay of the echo path, in samples.
    pub delay_samples: usize,
    /// The longest bulk delay estimated so far in the call, in samples.
    pub longest_delay_samples: usize,
    /// Times the estimate moved once known (each move starts the adaptive filter afresh).
    pub delay_moves: u64,
    /// Times the search was started afresh because the streams were lined up again.
    pub delay_restarts: u64,
    /// Whether the last block was judged double talk.
    pub double_talk: bool,
    /// Blocks in which the filter adapted.
    pub adapted_blocks: u64,
    /// Whether the line has been judged to return no echo (the non-linear processor then stays off, so
    /// a caller quieter than the agent is never suppressed).
    pub no_echo: bool,
    /// Blocks with only the agent talking and something on the line to cancel.
    pub echo_blocks: u64,
    /// Energy that came in during those blocks.
    pub echo_in_energy: f64,
    /// Energy left after the canceller in those blocks.
    pub echo_out_energy: f64,
}

impl EchoStats {
    /// Echo return loss enhancement over the call so far (dB): how much of what came back while only the
    /// agent talked was removed. `None` before 1 s of such audio.
    pub fn erle_db(&self) -> Option<f64> {
        (self.echo_blocks >= 100)
            .then(|| 10.0 * (self.echo_in_energy / self.echo_out_energy.max(1e-12)).log10())
    }
}

/// Echo suppression for one call.
pub struct EchoCanceller {
    options: EchoOptions,
    fft: Arc<dyn RealToComplex<f32>>,
    ifft: Arc<dyn ComplexToReal<f32>>,
    scratch_fwd: Vec<Complex32>,
    scratch_inv: Vec<Complex32>,
    time: Vec<f32>,
    spec: Vec<Complex32>,
    reference: Vec<f32>,
    reference_written: u64,
    near_done: u64,
    /// Reference spectra, newest first (ring of `partitions`).
    x_spectra: Vec<Vec<Complex32>>,
    x_head: usize,
    weights: Vec<Vec<Complex32>>,
    power: Vec<f32>,
    constrain_next: usize,
    /// Energy envelopes (dB per block): the reference's by reference block, the near end's by near block.
    far_env: Vec<f32>,
    near_env: Vec<f32>,
    far_blocks: u64,
    env_blocks: u64,
    delay_blocks: usize,
    delay_candidate: Option<usize>,
    /// An estimate has found the echo's delay since the search last started.
    delay_known: bool,
    /// The delay has been found at least once in the call.
    found_once: bool,
    /// Near and reference blocks from which envelopes pair up (the last restart of the search).
    search_from: (u64, u64),
    /// Estimates in a row that found no echo while the reference was active.
    quiet_estimates: u32,
    /// Blocks the last double-talk decision still holds.
    double_talk_hold: u32,
    /// Since the delay last moved: blocks adapted, and leaky sums of what came in and what the linear
    /// filter left, over blocks with the agent talking and something on the line.
    since_delay: u64,
    evidence_blocks: u64,
    evidence_in: f32,
    evidence_left: f32,
    noise_floor: f32,
    near_block: Vec<f32>,
    stats: EchoStats,
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl EchoCanceller {
    /// A canceller; allocates all its buffers here.
    pub fn new(options: EchoOptions) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(FFT);
        let ifft = planner.plan_fft_inverse(FFT);
        let partitions = options.partitions.max(1);
        let env_len = DELAY_WINDOW + options.max_delay_blocks + 1 + LAG_ROOM;
        Self {
            scratch_fwd: fft.make_scratch_vec(),
            scratch_inv: ifft.make_scratch_vec(),
            fft,
            ifft,
            options: EchoOptions {
                partitions,
                ..options
            },
            time: vec![0.0; FFT],
            spec: vec![Complex32::default(); BINS],
            reference: vec![0.0; HISTORY],
            reference_written: 0,
            near_done: 0,
            x_spectra: vec![vec![Complex32::default(); BINS]; partitions],
            x_head: 0,
            weights: vec![vec![Complex32::default(); BINS]; partitions],
            power: vec![1e-6; BINS],
            constrain_next: 0,
            far_env: vec![0.0; env_len],
            near_env: vec![0.0; env_len],
            far_blocks: 0,
            env_blocks: 0,
            delay_blocks: 0,
            delay_candidate: None,
            delay_known: false,
            found_once: false,
            search_from: (0, 0),
            quiet_estimates: 0,
            double_talk_hold: 0,
            since_delay: 0,
            evidence_blocks: 0,
            evidence_in: 0.0,
            evidence_left: 0.0,
            noise_floor: 1e-6,
            near_block: vec![0.0; BLOCK],
            stats: EchoStats::default(),
        }
    }

    /// Records what was played to the caller (16 kHz, in play order). Call as audio leaves; the near-end
    /// stream is assumed to run on the same clock, sample for sample.
    pub fn push_reference(&mut self, samples: &[i16]) {
        for &s in samples {
            let i = (self.reference_written % HISTORY as u64) as usize;
            self.reference[i] = to_f32(s);
            self.reference_written += 1;
        }
        let len = self.far_env.len() as u64;
        while (self.far_blocks + 1) * BLOCK as u64 <= self.reference_written {
            let first = (self.far_blocks * BLOCK as u64) as i64;
            let energy = (first..first + BLOCK as i64)
                .map(|i| self.reference_at(i).powi(2))
                .sum::<f32>()
                / BLOCK as f32;
            self.far_env[(self.far_blocks % len) as usize] = 10.0 * (energy + 1e-10).log10();
            self.far_blocks += 1;
        }
    }

    /// Removes the echo from a caller frame (16 kHz; any multiple of 10 ms) in place.
    pub fn process(&mut self, frame: &mut [i16]) {
        for block in frame.chunks_mut(BLOCK) {
            if block.len() == BLOCK {
                self.process_block(block);
            }
        }
    }

    /// What the canceller currently believes.
    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    fn reference_at(&self, index: i64) -> f32 {
        if index < 0
            || index as u64 >= self.reference_written
            || self.reference_written - index as u64 > HISTORY as u64
        {
            0.0
        } else {
            self.reference[(index as u64 % HISTORY as u64) as usize]
        }
    }

    fn process_block(&mut self, block: &mut [i16]) {
        let start = self.near_done as i64;
        for (d, &s) in self.near_block.iter_mut().zip(block.iter()) {
            *d = to_f32(s);
        }
        let near_energy = self.near_block.iter().map(|x| x * x).sum::<f32>() / BLOCK as f32;
        self.record_near_envelope(near_energy);

        // The reference as the echo path delays it: the filter models the rest of the path from here.
        // SLACK blocks before the estimated delay keep the path's onset inside the filter, and an echo
        // that comes back a little sooner than estimated (a delay that moves by a packet or two between
        // the agent's speeches) inside both the filter and the double-talk window.
        let lag = (self.delay_blocks.saturating_sub(SLACK) * BLOCK) as i64;
        let aligned_start = start - lag;
        for i in 0..FFT {
            self.time[i] = self.reference_at(aligned_start - BLOCK as i64 + i as i64);
        }
        let partitions = self.options.partitions;
        self.x_head = (self.x_head + partitions - 1) % partitions;
        let _ = self.fft.process_with_scratch(
            &mut self.time,
            &mut self.x_spectra[self.x_head],
            &mut self.scratch_fwd,
        );

        // Echo estimate: sum over partitions of W_p * X_(now - p), back to time, last half (overlap-save).
        self.spec.fill(Complex32::default());
        for p in 0..partitions {
            let x = &self.x_spectra[(self.x_head + p) % partitions];
            for ((acc, w), x) in self.spec.iter_mut().zip(&self.weights[p]).zip(x) {
                *acc += w * x;
            }
        }
        self.spec[0].im = 0.0;
        self.spec[BINS - 1].im = 0.0;
        let _ =
            self.ifft
                .process_with_scratch(&mut self.spec, &mut self.time, &mut self.scratch_inv);
        let scale = 1.0 / FFT as f32;
        let mut error = [0.0f32; BLOCK];
        for ((e, d), y) in error
            .iter_mut()
            .zip(&self.near_block)
            .zip(&self.time[BLOCK..])
        {
            *e = d - y * scale;
        }
        let error_energy = error.iter().map(|e| e * e).sum::<f32>() / BLOCK as f32;

        // Double talk (Geigel): the caller is louder than any echo of what we sent could be. The filter
        // adapts only on the reference it models; until the echo's delay is known, anything sent within
        // the longest delay searched may be coming back.
        let peak_over = |newest: i64, span: usize| {
            (0..span as i64)
                .map(|i| self.reference_at(newest - i - 1).abs())
                .fold(0.0, f32::max)
        };
        let search = (
            start + BLOCK as i64,
            BLOCK * (partitions + self.options.max_delay_blocks),
        );
        let (modelled, guarded) = if self.delay_known {
            // The suppressor also guards DELAY_DRIFT blocks either side of the filter's span: a delay that
            // moved (the line's jitter buffers deepened or drained) leaves the echo there until the next
            // estimate, and it must not reach the caller's side in the meantime.
            let newest = aligned_start + BLOCK as i64;
            let drift = (DELAY_DRIFT * BLOCK) as i64;
            (
                (newest, BLOCK * partitions),
                (
                    (newest + drift).min(search.0),
                    BLOCK * (partitions + 2 * DELAY_DRIFT),
                ),
            )
        } else {
            (search, search)
        };
        let far_peak = peak_over(modelled.0, modelled.1);
        let guard_peak = peak_over(guarded.0, guarded.1);
        let near_peak = self.near_block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let far_active = far_peak > 1e-3;
        let double_talk = far_active && near_peak > 0.7 * far_peak;
        self.stats.double_talk = double_talk;
        // The suppressor's own test is against the loudest of everything the echo may hold, so only a
        // caller's louder syllables clear it: it then holds off for DOUBLE_TALK_HOLD blocks, through the
        // quieter ones between them (a caller's "hello?" over the greeting). The line's hiss under the
        // first quiet sound of a speech is not a caller.
        let echo_possible = guard_peak > 1e-3;
        if echo_possible && near_peak > 0.7 * guard_peak && near_energy > 16.0 * self.noise_floor {
            self.double_talk_hold = DOUBLE_TALK_HOLD;
        }
        let caller_talking = self.double_talk_hold > 0;
        self.double_talk_hold = self.double_talk_hold.saturating_sub(1);

        if far_active && !double_talk {
            self.adapt(&error);
            self.stats.adapted_blocks += 1;
            self.since_delay += 1;
            if near_energy > 4.0 * self.noise_floor {
                self.weigh_evidence(near_energy, error_energy);
            }
        }
        // The line's own noise, learned while nothing we sent can be coming back.
        if !echo_possible {
            self.noise_floor += (near_energy - self.noise_floor)
                * if near_energy < self.noise_floor {
                    0.3
                } else {
                    0.01
                };
        }

        // Non-linear processor: with only the agent talking, what is left is echo; bring it down to the
        // floor. A line that returns no echo has nothing to suppress.
        let echo_only = echo_possible && !caller_talking;
        let gain = if self.options.nlp
            && echo_only
            && !self.stats.no_echo
            && error_energy > self.noise_floor
        {
            (self.noise_floor / error_energy).sqrt().max(0.01)
        } else {
            1.0
        };
        for (out, e) in block.iter_mut().zip(error) {
            *out = to_i16(e * gain);
        }
        if echo_only && near_energy > 4.0 * self.noise_floor {
            self.stats.echo_blocks += 1;
            self.stats.echo_in_energy += f64::from(near_energy);
            self.stats.echo_out_energy += f64::from(error_energy * gain * gain);
        }
        self.near_done += BLOCK as u64;
    }

    /// Whether the line returns an echo, judged by what the linear filter manages to remove while the
    /// agent talks and something is on the line: an echo is removed once the filter has converged; a
    /// caller talking over the agent is not (and must never be suppressed as if it were echo). Judged
    /// only while the delay estimator agrees with the filter's delay: an echo that moved is not removed
    /// either, until the filter follows it.
    fn weigh_evidence(&mut self, near_energy: f32, error_energy: f32) {
        const LEAK: f32 = 1.0 / 100.0;
        self.evidence_blocks += 1;
        self.evidence_in += (near_energy - self.evidence_in) * LEAK;
        self.evidence_left += (error_energy - self.evidence_left) * LEAK;
        if self.evidence_blocks < 100 {
            return;
        }
        let removed_db = 10.0 * (self.evidence_in / self.evidence_left.max(1e-12)).log10();
        if self.stats.no_echo {
            if removed_db > 6.0 {
                self.stats.no_echo = false;
            }
        } else if self.delay_known
            && self.delay_candidate == Some(self.delay_blocks)
            && self.since_delay >= 300
            && removed_db < 3.0
        {
            self.stats.no_echo = true;
        }
    }

    fn adapt(&mut self, error: &[f32; BLOCK]) {
        self.time[..BLOCK].fill(0.0);
        self.time[BLOCK..].copy_from_slice(error);
        let _ =
            self.fft
                .process_with_scratch(&mut self.time, &mut self.spec, &mut self.scratch_fwd);
        let newest = &self.x_spectra[self.x_head];
        for (p, x) in self.power.iter_mut().zip(newest) {
            *p = 0.9 * *p + 0.1 * x.norm_sqr();
        }
        let partitions = self.options.partitions;
        let mu = self.options.step / partitions as f32;
        for p in 0..partitions {
            let x = &self.x_spectra[(self.x_head + p) % partitions];
            for (((w, e), x), power) in self.weights[p]
                .iter_mut()
                .zip(&self.spec)
                .zip(x)
                .zip(&self.power)
            {
                *w += e * x.conj() * (mu / (power + 1e-4));
            }
        }
        // Keep one partition's filter causal and block-long each block (the gradient constraint), in turn.
        let p = self.constrain_next;
        self.constrain_next = (p + 1) % partitions;
        let mut spectrum = std::mem::take(&mut self.weights[p]);
        spectrum[0].im = 0.0;
        spectrum[BINS - 1].im = 0.0;
        let _ =
            self.ifft
                .process_with_scratch(&mut spectrum, &mut self.time, &mut self.scratch_inv);
        let scale = 1.0 / FFT as f32;
        for (i, t) in self.time.iter_mut().enumerate() {
            *t = if i < BLOCK { *t * scale } else { 0.0 };
        }
        let _ = self
            .fft
            .process_with_scratch(&mut self.time, &mut spectrum, &mut self.scratch_fwd);
        self.weights[p] = spectrum;
    }
}

#[cfg(test)]
mod tests;
