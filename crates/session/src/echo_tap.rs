//! The echo canceller's reference: the agent's audio exactly as playout sends it, one entry per tick of
//! playout's clock (a frame, or nothing sent), handed to the listener, which lines it up with the
//! caller's audio before each caller payload goes through the front end.
//!
//! The canceller pairs the n-th reference sample with the n-th caller sample, so the two streams are
//! aligned by count: the reference sent up to the moment a caller payload reached the call goes in just
//! before that payload. Ticks and payloads carry the time they were sent and arrived, so a call that
//! falls behind its caller's audio (a busy machine) pairs them as they happened, not as it gets to them.
//! Both run on real-time clocks, so the offset stays within a frame or two; the echo path's own delay
//! (network, the far side's jitter buffer, the line) is what the canceller finds. The offset is reset
//! when the streams drift apart past [`MAX_SKEW_MS`] (the caller's audio stopped for a while, or playout
//! stalled).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use switchboard_audio::InputFormat;
use tokio::time::Instant;

/// Ticks the tap keeps when the caller's side does not take them (its audio stopped, or the call is
/// behind on it): three seconds, 24 KB of G.711.
const TAP_TICKS: usize = 150;
/// How far the reference may run ahead of, or behind, the caller's audio before the two are lined up
/// again, in milliseconds.
const MAX_SKEW_MS: u64 = 200;

/// Playout's side writes, the listener's side takes. Shared by the two tasks of one call.
#[derive(Clone, Default)]
pub(crate) struct EchoTap {
    ticks: Arc<Mutex<VecDeque<Tick>>>,
}

/// When playout's clock ticked, and the frame it sent then (`None`: nothing).
type Tick = (Instant, Option<Vec<u8>>);

impl EchoTap {
    /// One tick of playout: the frame it sent, or `None` when it sent nothing (silence on the line).
    pub(crate) fn sent(&self, frame: Option<&[u8]>) {
        self.sent_at(Instant::now(), frame);
    }

    fn sent_at(&self, at: Instant, frame: Option<&[u8]>) {
        let mut ticks = self.ticks.lock().unwrap_or_else(PoisonError::into_inner);
        if ticks.len() == TAP_TICKS {
            ticks.pop_front();
        }
        ticks.push_back((at, frame.map(<[u8]>::to_vec)));
    }

    /// Every tick since the last call, oldest first.
    pub(crate) fn take(&self) -> Vec<Option<Vec<u8>>> {
        let mut ticks = self.ticks.lock().unwrap_or_else(PoisonError::into_inner);
        ticks.drain(..).map(|(_, frame)| frame).collect()
    }

    /// The ticks sent up to `until`, oldest first; later ones stay for the next call.
    pub(crate) fn take_until(&self, until: Instant) -> Vec<Option<Vec<u8>>> {
        let mut ticks = self.ticks.lock().unwrap_or_else(PoisonError::into_inner);
        let due = ticks.iter().take_while(|(at, _)| *at <= until).count();
        ticks.drain(..due).map(|(_, frame)| frame).collect()
    }
}

/// What goes into the canceller's reference before a caller payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReferenceStep {
    /// A frame the agent sent, in the call's format.
    Frame(Vec<u8>),
    /// This many samples (at the call's rate) of nothing sent.
    Silence(usize),
}

/// Keeps the reference and the caller's audio in step, by sample count.
#[derive(Debug)]
pub(crate) struct Alignment {
    format: InputFormat,
    /// Caller samples pushed so far, at the call's rate.
    near: u64,
    /// Reference samples pushed so far.
    reference: u64,
    started: bool,
    /// Times the streams were lined up again.
    realigned: u64,
}

impl Alignment {
    pub(crate) fn new(format: InputFormat) -> Self {
        Self {
            format,
            near: 0,
            reference: 0,
            started: false,
            realigned: 0,
        }
    }

    /// Samples at the call's rate in `bytes` of its format.
    fn samples(&self, bytes: usize) -> u64 {
        match self.format {
            InputFormat::Ulaw8k | InputFormat::Alaw8k => bytes as u64,
            InputFormat::Pcm16(_) => bytes as u64 / 2,
        }
    }

    fn tick_samples(&self) -> u64 {
        self.format.rate().frame_samples() as u64
    }

    /// The reference to push before a caller payload of `payload_bytes`, from the ticks playout sent
    /// since the previous payload.
    pub(crate) fn before_payload(
        &mut self,
        ticks: Vec<Option<Vec<u8>>>,
        payload_bytes: usize,
    ) -> Vec<ReferenceStep> {
        let payload = self.samples(payload_bytes);
        if !self.started {
            // The streams start together here: what playout sent before the caller's first audio
            // arrived is not what this audio can hold an echo of.
            self.started = true;
            self.near = payload;
            return Vec::new();
        }
        let skew = MAX_SKEW_MS * u64::from(self.format.rate().hz()) / 1_000;
        let mut steps: Vec<ReferenceStep> = ticks
            .into_iter()
            .map(|tick| match tick {
                Some(frame) => ReferenceStep::Frame(frame),
                None => ReferenceStep::Silence(self.tick_samples() as usize),
            })
            .collect();
        let size = |step: &ReferenceStep, this: &Self| match step {
            ReferenceStep::Frame(frame) => this.samples(frame.len()),
            ReferenceStep::Silence(n) => *n as u64,
        };
        let offered: u64 = steps.iter().map(|s| size(s, self)).sum();
        if self.reference + offered > self.near + skew {
            // Ahead: keep only the newest ticks, enough to meet the caller's audio.
            self.realigned += 1;
            let mut room = self.near.saturating_sub(self.reference);
            let mut keep = 0;
            for step in steps.iter().rev() {
                let n = size(step, self);
                if n > room {
                    break;
                }
                room -= n;
                keep += 1;
            }
            steps.drain(..steps.len() - keep);
        } else if self.reference + offered + skew < self.near {
            // Behind: playout missed ticks; the gap was silence on the line.
            self.realigned += 1;
            let gap = self.near - self.reference - offered;
            steps.insert(0, ReferenceStep::Silence(gap as usize));
        }
        self.reference += steps.iter().map(|s| size(s, self)).sum::<u64>();
        self.near += payload;
        steps
    }

    /// Times the two streams drifted apart and were lined up again.
    pub(crate) fn realigned(&self) -> u64 {
        self.realigned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_audio::SampleRate;

    const ULAW: InputFormat = InputFormat::Ulaw8k;

    fn frame(byte: u8) -> Option<Vec<u8>> {
        Some(vec![byte; 160])
    }

    #[test]
    fn the_tap_keeps_the_last_three_seconds_when_nobody_takes_them() {
        let tap = EchoTap::default();
        for i in 0..TAP_TICKS + 10 {
            tap.sent(Some(&[i as u8]));
        }
        let ticks = tap.take();
        assert_eq!(ticks.len(), TAP_TICKS);
        assert_eq!(ticks[0], Some(vec![10]));
        assert!(tap.take().is_empty());
    }

    #[test]
    fn a_call_behind_on_its_callers_audio_pairs_each_payload_with_what_was_sent_before_it_arrived()
    {
        // Playout sends a frame every 20 ms; each caller payload arrives 5 ms after one of them. The
        // call was busy for half a second and gets to the 25 payloads only once all 25 ticks are in.
        let start = Instant::now();
        let ms = |n: u64| start + std::time::Duration::from_millis(n);
        let tap = EchoTap::default();
        for k in 0..25u64 {
            tap.sent_at(ms(20 * k), Some(&[k as u8; 160]));
        }
        let mut a = Alignment::new(ULAW);
        for k in 0..25u64 {
            let steps = a.before_payload(tap.take_until(ms(20 * k + 5)), 160);
            if k == 0 {
                assert!(steps.is_empty(), "the streams start together");
            } else {
                assert_eq!(steps, vec![ReferenceStep::Frame(vec![k as u8; 160])]);
            }
        }
        assert_eq!(a.realigned(), 0, "nothing was dropped or padded");
        assert!(tap.take().is_empty());
    }

    #[test]
    fn what_was_sent_before_the_callers_first_audio_is_dropped_then_ticks_pass_in_order() {
        let mut a = Alignment::new(ULAW);
        assert!(a.before_payload(vec![frame(1), frame(2)], 160).is_empty());
        let steps = a.before_payload(vec![frame(3), None], 160);
        assert_eq!(
            steps,
            vec![
                ReferenceStep::Frame(vec![3; 160]),
                ReferenceStep::Silence(160)
            ]
        );
        // Jitter: two payloads, then two ticks at once; no realignment.
        assert!(a.before_payload(vec![], 160).is_empty());
        assert_eq!(a.before_payload(vec![frame(4), frame(5)], 160).len(), 2);
        assert_eq!(a.realigned(), 0);
    }

    #[test]
    fn a_reference_far_ahead_keeps_its_newest_ticks() {
        let mut a = Alignment::new(ULAW);
        a.before_payload(vec![], 160);
        // The caller's audio stopped for a second while playout went on.
        let ticks: Vec<_> = (0..50u8).map(frame).collect();
        let steps = a.before_payload(ticks, 160);
        assert_eq!(a.realigned(), 1);
        assert_eq!(steps, vec![ReferenceStep::Frame(vec![49; 160])]);
    }

    #[test]
    fn a_reference_far_behind_is_padded_with_silence() {
        let mut a = Alignment::new(InputFormat::Pcm16(SampleRate::Hz8000));
        a.before_payload(vec![], 320);
        // 300 ms of caller audio in one payload while playout sent nothing.
        assert!(a.before_payload(vec![], 320 * 15).is_empty());
        assert_eq!(a.realigned(), 0);
        let steps = a.before_payload(vec![Some(vec![0; 320])], 320);
        assert_eq!(a.realigned(), 1);
        assert_eq!(steps[0], ReferenceStep::Silence(15 * 160));
        assert_eq!(steps.len(), 2);
    }
}
