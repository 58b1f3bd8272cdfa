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
    let mut predicted = vec![false; labels.len()];
    let mut open: Option<u64> = None;
    let mut segments = 0;
    let mark = |from: u64, to: u64, predicted: &mut [bool]| {
        let first = (from as usize).div_ceil(FRAME);
        let last = (to as usize) / FRAME;
        for p in predicted.iter_mut().take(last).skip(first) {
            *p = true;
        }
    };
    for frame in samples.chunks_exact(FRAME) {
        match detector.process(frame)? {
            Some(VadEvent::SpeechStarted { at }) => open = Some(at),
            Some(VadEvent::SpeechEnded { at, started_at }) => {
                mark(started_at, at, &mut predicted);
                open = None;
                segments += 1;
            }
            None => {}
        }
    }
    if let Some(start) = open {
        mark(start, samples.len() as u64, &mut predicted);
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
    Ok(VadScore {
        precision: tp as f64 / (tp + fp).max(1) as f64,
        recall: tp as f64 / (tp + fn_).max(1) as f64,
        segments,
    })
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
