//! Measures the VAD on real speech: prompts laid end to end with pauses, frame labels taken from the clean
//! speech, noise mixed in at a chosen SNR, and frame-level precision and recall of the detected segments.

use crate::SampleRate;
use crate::corpus::{Prompt, Rng};
use crate::vad::{VadDetector, VadError, VadEvent};

const FRAME: usize = SampleRate::Hz16000.frame_samples();

/// A test signal at 16 kHz and, per 20 ms frame, whether the clean speech is active.
#[derive(Debug, Clone)]
pub struct LabelledSignal {
    /// Clean samples.
    pub samples: Vec<i16>,
    /// Speech label per 20 ms frame.
    pub labels: Vec<bool>,
}

impl LabelledSignal {
    /// Per-sample activity, for SNR scaling.
    pub fn active_samples(&self) -> Vec<bool> {
        self.labels
            .iter()
            .flat_map(|&l| std::iter::repeat_n(l, FRAME))
            .take(self.samples.len())
            .collect()
    }
}

/// Frames quieter than this below the prompt's loudest frame are pauses, not speech.
const LABEL_RANGE_DB: f64 = 35.0;
/// Pauses shorter than this inside a prompt stay labelled speech: a pause between words is not a turn end,
/// and the detector is built (minimum silence 320 ms) not to split there.
const BRIDGE_FRAMES: usize = 16;

/// Lays `prompts` out with 0.6–1.4 s of silence between them (seeded) and labels every frame.
pub fn build_signal(prompts: &[Prompt], seed: u64) -> LabelledSignal {
    let mut rng = Rng::new(seed);
    let mut samples = vec![0i16; FRAME * 50];
    let mut labels = vec![false; 50];
    for prompt in prompts {
        let frames = prompt.samples.len() / FRAME;
        let energies: Vec<f64> = prompt.samples[..frames * FRAME]
            .chunks_exact(FRAME)
            .map(|f| f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / FRAME as f64)
            .collect();
        let peak = energies.iter().copied().fold(0.0, f64::max);
        let floor = peak * 10f64.powf(-LABEL_RANGE_DB / 10.0);
        let mut own: Vec<bool> = energies.iter().map(|&e| e > floor).collect();
        bridge_short_gaps(&mut own, BRIDGE_FRAMES);
        samples.extend_from_slice(&prompt.samples[..frames * FRAME]);
        labels.extend(own);
        let gap_frames = 30 + (rng.next_f64() * 40.0) as usize;
        samples.extend(std::iter::repeat_n(0, gap_frames * FRAME));
        labels.extend(std::iter::repeat_n(false, gap_frames));
    }
    LabelledSignal { samples, labels }
}

fn bridge_short_gaps(labels: &mut [bool], max_gap: usize) {
    let mut last_speech: Option<usize> = None;
    for i in 0..labels.len() {
        if labels[i] {
            if let Some(j) = last_speech
                && i - j - 1 <= max_gap
            {
                labels[j + 1..i].fill(true);
            }
            last_speech = Some(i);
        }
    }
}

/// Frame-level agreement between detected speech and labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadScore {
    /// Of frames detected as speech, the share that is speech.
    pub precision: f64,
    /// Of speech frames, the share detected.
    pub recall: f64,
    /// Speech segments the detector reported.
    pub segments: usize,
}

/// Runs `detector` over `samples` in 20 ms frames and scores its segments against `labels`.
pub fn score(
    detector: &mut VadDetector,
    samples: &[i16],
    labels: &[bool],
) -> Result<VadScore, VadError> {
    let mut events = Vec::new();
    for frame in samples.chunks_exact(FRAME) {
        events.extend(detector.process(frame)?);
    }
    Ok(score_events(&events, samples.len() as u64, labels))
}

/// Runs a whole front end (PCM16 input at 16 kHz) over `samples` and scores the VAD events it emits: the
/// VAD as deployed, hearing audio after noise suppression and gain control.
pub fn score_front_end(
    front: &mut crate::FrontEnd,
    samples: &[i16],
    labels: &[bool],
) -> Result<VadScore, crate::FrontEndError> {
    let mut events = Vec::new();
    for frame in samples.chunks_exact(FRAME) {
        front.push_samples(frame)?;
        while let Some(out) = front.next_frame()? {
            events.extend(out.event);
        }
    }
    Ok(score_events(&events, samples.len() as u64, labels))
}

/// Frame-level precision and recall of the speech segments that `events` describe.
pub fn score_events(events: &[VadEvent], total_samples: u64, labels: &[bool]) -> VadScore {
    let mut predicted = vec![false; labels.len()];
    let mut mark = |from: u64, to: u64| {
        let first = (from as usize).div_ceil(FRAME);
        let last = (to as usize) / FRAME;
        for p in predicted.iter_mut().take(last).skip(first) {
            *p = true;
        }
    };
    let mut open: Option<u64> = None;
    let mut segments = 0;
    for event in events {
        match *event {
            VadEvent::SpeechStarted { at } => open = Some(at),
            VadEvent::SpeechEnded { at, started_at } => {
                mark(started_at, at);
                open = None;
                segments += 1;
            }
        }
    }
    if let Some(start) = open {
        mark(start, total_samples);
        segments += 1;
    }
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (&p, &l) in predicted.iter().zip(labels) {
        match (p, l) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    VadScore {
        precision: tp as f64 / (tp + fp).max(1) as f64,
        recall: tp as f64 / (tp + fn_).max(1) as f64,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_gaps_are_bridged_long_ones_kept() {
        let mut l = vec![true, false, false, true, false, false, false, false, true];
        bridge_short_gaps(&mut l, 2);
        assert_eq!(
            l,
            vec![true, true, true, true, false, false, false, false, true]
        );
    }
}

/// How the echo path of the test is simulated.
#[derive(Debug, Clone, Copy)]
pub struct EchoPath {
    /// Bulk delay.
    pub delay_ms: u32,
    /// Gain of the path, dB (negative: echo return loss).
    pub gain_db: f64,
}

impl Default for EchoPath {
    /// 60 ms, −12 dB: a plausible hybrid echo behind a VoIP gateway.
    fn default() -> Self {
        Self {
            delay_ms: 60,
            gain_db: -12.0,
        }
    }
}

/// The echo the caller's line returns for `far` (16 kHz): delayed, band-limited by a short FIR, with a
/// 20 ms exponentially decaying reverberant tail (seeded), scaled to the path gain.
pub fn simulate_echo(far: &[i16], path: EchoPath, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut h = vec![0.0f64; 16 * 20];
    // Direct part: a low-pass, phone-like response.
    for (k, v) in [0.05, 0.2, 0.35, 0.25, 0.1, -0.05, -0.08, -0.03]
        .into_iter()
        .enumerate()
    {
        h[k] = v;
    }
    for (k, tap) in h.iter_mut().enumerate().skip(8) {
        *tap += 0.08 * rng.gaussian() * (-(k as f64) / 80.0).exp();
    }
    let norm = h.iter().map(|x| x * x).sum::<f64>().sqrt();
    let gain = 10f64.powf(path.gain_db / 20.0) / norm;
    let delay = path.delay_ms as usize * 16;
    let mut echo = vec![0.0; far.len()];
    for (n, out) in echo.iter_mut().enumerate().skip(delay) {
        let mut y = 0.0;
        for (k, hk) in h.iter().enumerate() {
            if n >= delay + k {
                y += hk * f64::from(far[n - delay - k]);
            }
        }
        *out = y * gain;
    }
    echo
}

/// Echo suppression measured on one scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoScore {
    /// Echo return loss enhancement of the linear filter alone, dB, after the first 3 s.
    pub erle_linear_db: f64,
    /// ERLE with the non-linear processor, dB.
    pub erle_total_db: f64,
    /// Delay the canceller found, ms.
    pub delay_found_ms: f64,
}

/// Runs far-end `far` through the simulated path into a canceller (with and without NLP) and measures ERLE
/// over blocks where the far end is active.
pub fn score_echo(far: &[i16], path: EchoPath, seed: u64) -> EchoScore {
    use crate::{EchoCanceller, EchoOptions};
    let echo = simulate_echo(far, path, seed);
    let noise = crate::corpus::pink_noise(far.len(), seed ^ 0x5eed);
    // The line's own noise floor, about −66 dBFS.
    let near: Vec<i16> = echo
        .iter()
        .zip(&noise)
        .map(|(e, n)| (e + n * 15.0).round().clamp(-32_768.0, 32_767.0) as i16)
        .collect();
    let run = |nlp: bool| {
        let mut aec = EchoCanceller::new(EchoOptions {
            nlp,
            ..EchoOptions::default()
        });
        let mut out = near.clone();
        for (f, n) in far.chunks(FRAME).zip(out.chunks_mut(FRAME)) {
            aec.push_reference(f);
            aec.process(n);
        }
        (out, aec.stats().delay_samples)
    };
    let erle = |out: &[i16]| {
        let skip = 16_000 * 3;
        let (mut e_in, mut e_out) = (0.0, 0.0);
        for i in (skip..far.len().min(out.len())).step_by(FRAME) {
            let end = (i + FRAME).min(out.len());
            let far_e: f64 = far[i.saturating_sub(1600)..end]
                .iter()
                .map(|&s| f64::from(s).powi(2))
                .sum();
            if far_e / ((end - i.saturating_sub(1600)) as f64) < 1e4 {
                continue; // the far end is quiet here: nothing to cancel
            }
            e_in += near[i..end]
                .iter()
                .map(|&s| f64::from(s).powi(2))
                .sum::<f64>();
            e_out += out[i..end]
                .iter()
                .map(|&s| f64::from(s).powi(2))
                .sum::<f64>();
        }
        10.0 * (e_in / e_out.max(1.0)).log10()
    };
    let (linear, delay) = run(false);
    let (total, _) = run(true);
    EchoScore {
        erle_linear_db: erle(&linear),
        erle_total_db: erle(&total),
        delay_found_ms: delay as f64 / 16.0,
    }
}

/// What a noise suppressor did to a noisy signal, measured against the clean speech.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenoiseScore {
    /// Scale-invariant signal-to-distortion ratio of the input over speech frames, dB (equals its SNR).
    pub input_si_sdr_db: f64,
    /// The same for the output, after aligning it to the clean speech: residual noise under speech and
    /// speech distortion both count against it.
    pub output_si_sdr_db: f64,
    /// How much quieter the pauses between utterances got, dB.
    pub pause_noise_reduction_db: f64,
    /// Processing delay found by correlation, samples.
    pub delay_samples: usize,
}

impl DenoiseScore {
    /// Output minus input SI-SDR: the SNR gain.
    pub fn gain_db(&self) -> f64 {
        self.output_si_sdr_db - self.input_si_sdr_db
    }
}

/// Scores any 20 ms frame processor as a noise suppressor on `clean + noise = noisy`.
pub fn score_denoise(
    clean: &[i16],
    noisy: &[i16],
    labels: &[bool],
    mut process: impl FnMut(&mut [i16]),
) -> DenoiseScore {
    let mut out = noisy.to_vec();
    for frame in out.chunks_exact_mut(FRAME) {
        process(frame);
    }
    let delay = find_delay(clean, &out, 2_000);
    let aligned = &out[delay.min(out.len())..];
    let speech_mask: Vec<bool> = labels
        .iter()
        .flat_map(|&l| std::iter::repeat_n(l, FRAME))
        .collect();
    let pause_power = |signal: &[i16]| {
        let (sum, n) = signal
            .chunks_exact(FRAME)
            .zip(labels)
            .enumerate()
            .filter(|(i, (_, l))| {
                !**l && *i > 50
                    && labels[i.saturating_sub(5)..(*i + 6).min(labels.len())]
                        .iter()
                        .all(|x| !x)
            })
            .fold((0.0, 0usize), |(s, n), (_, (f, _))| {
                (
                    s + f.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>(),
                    n + FRAME,
                )
            });
        sum / n.max(1) as f64
    };
    DenoiseScore {
        input_si_sdr_db: si_sdr(clean, noisy, &speech_mask),
        output_si_sdr_db: si_sdr(clean, aligned, &speech_mask),
        pause_noise_reduction_db: 10.0
            * (pause_power(noisy) / pause_power(aligned).max(1e-9)).log10(),
        delay_samples: delay,
    }
}

/// Scale-invariant SDR of `estimate` against `reference` over the masked samples, dB.
pub fn si_sdr(reference: &[i16], estimate: &[i16], mask: &[bool]) -> f64 {
    let (mut rr, mut re) = (0.0f64, 0.0f64);
    for ((&r, &e), _) in reference
        .iter()
        .zip(estimate)
        .zip(mask)
        .filter(|(_, m)| **m)
    {
        rr += f64::from(r).powi(2);
        re += f64::from(r) * f64::from(e);
    }
    let alpha = re / rr.max(1e-9);
    let (mut target, mut error) = (0.0f64, 0.0f64);
    for ((&r, &e), _) in reference
        .iter()
        .zip(estimate)
        .zip(mask)
        .filter(|(_, m)| **m)
    {
        let t = alpha * f64::from(r);
        target += t * t;
        error += (f64::from(e) - t).powi(2);
    }
    10.0 * (target / error.max(1e-9)).log10()
}

/// The lag (0..max) at which `delayed` best matches `reference`, from a speech-rich 4 s excerpt.
fn find_delay(reference: &[i16], delayed: &[i16], max: usize) -> usize {
    let energy: Vec<f64> = reference
        .chunks(16_000)
        .map(|c| c.iter().map(|&x| f64::from(x).powi(2)).sum())
        .collect();
    let start = energy
        .windows(4)
        .enumerate()
        .max_by(|a, b| a.1.iter().sum::<f64>().total_cmp(&b.1.iter().sum::<f64>()))
        .map_or(0, |(i, _)| i * 16_000);
    let len = (16_000 * 4).min(reference.len().saturating_sub(start + max));
    let excerpt = &reference[start..start + len];
    (0..max)
        .max_by(|&a, &b| {
            let corr = |lag: usize| -> f64 {
                excerpt
                    .iter()
                    .zip(&delayed[(start + lag).min(delayed.len())..])
                    .map(|(&r, &d)| f64::from(r) * f64::from(d))
                    .sum()
            };
            corr(a).total_cmp(&corr(b))
        })
        .unwrap_or(0)
}
