//! RTP jitter buffer: packets arrive late, early, twice or never; the media clock takes exactly one
//! 20 ms frame every 20 ms. This buffer reorders, drops duplicates and packets too late to play, hides a
//! lost packet by repeating the last frame at falling gain, and sizes its depth from the measured
//! interarrival jitter (RFC 3550 §6.4.1) so a clean line adds little delay and a bad one stops crackling.

use std::time::Duration;

use crate::{AudioError, SampleRate};

/// Depth limits, in 20 ms frames.
#[derive(Debug, Clone, Copy)]
pub struct JitterOptions {
    /// Never hold fewer frames than this before playing (1 = 20 ms).
    pub min_depth: usize,
    /// Never hold more (also bounds the added delay).
    pub max_depth: usize,
    /// Frames of concealment before falling back to silence.
    pub max_concealed: usize,
}

impl Default for JitterOptions {
    fn default() -> Self {
        Self {
            min_depth: 2,
            max_depth: 10,
            max_concealed: 3,
        }
    }
}

/// What `push` did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Buffered for playout.
    Accepted,
    /// Already buffered.
    Duplicate,
    /// Its turn has passed.
    Late,
    /// A jump in sequence numbers too large to be reordering: the buffer restarted from this packet.
    Resynchronised,
}

/// What `pop` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// A received frame.
    Audio,
    /// A repeat of the last frame at reduced gain, standing in for a lost packet.
    Concealed,
    /// Nothing to play (buffering, or loss longer than concealment covers).
    Silence,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted.
    pub received: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Late packets dropped.
    pub late: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Frames dropped to shrink an over-deep buffer.
    pub shrunk: u64,
    /// Times playout ran dry and rebuffered.
    pub underruns: u64,
}

#[derive(Debug, Clone)]
struct Slot {
    seq: u16,
    filled: bool,
    samples: Vec<i16>,
}

/// One call direction's jitter buffer, fixed-size frames of one sample rate.
#[derive(Debug)]
pub struct JitterBuffer {
    options: JitterOptions,
    frame: usize,
    clock_hz: f64,
    slots: Vec<Slot>,
    next_seq: Option<u16>,
    playing: bool,
    target_depth: usize,
    jitter_ts: f64,
    last_transit: Option<f64>,
    last_frame: Vec<i16>,
    losses_in_a_row: usize,
    over_deep_pops: usize,
    stats: JitterStats,
}

/// Pops (20 ms each) the buffer must stay over-deep before it drops a frame: half a second.
const SHRINK_AFTER_POPS: usize = 25;

impl JitterBuffer {
    /// A buffer for 20 ms frames at `rate` (which is also the RTP clock rate for G.711 and L16).
    pub fn new(rate: SampleRate, options: JitterOptions) -> Self {
        let options = JitterOptions {
            min_depth: options.min_depth.max(1),
            max_depth: options.max_depth.max(options.min_depth.max(1)),
            ..options
        };
        let frame = rate.frame_samples();
        let capacity = (options.max_depth * 2).max(8);
        Self {
            options,
            frame,
            clock_hz: f64::from(rate.hz()),
            slots: vec![
                Slot {
                    seq: 0,
                    filled: false,
                    samples: vec![0; frame],
                };
                capacity
            ],
            next_seq: None,
            playing: false,
            target_depth: options.min_depth,
            jitter_ts: 0.0,
            last_transit: None,
            last_frame: vec![0; frame],
            losses_in_a_row: 0,
            over_deep_pops: 0,
            stats: JitterStats::default(),
        }
    }

    /// Offers a packet: its RTP sequence number and timestamp, when it arrived on the call's clock, and
    /// its decoded samples (exactly one frame).
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        arrival: Duration,
        samples: &[i16],
    ) -> Result<Pushed, AudioError> {
        if samples.len() != self.frame {
            return Err(AudioError::WrongFrameSize {
                expected: self.frame,
                got: samples.len(),
            });
        }
        self.update_jitter(timestamp, arrival);
        let capacity = self.slots.len();
        let mut outcome = Pushed::Accepted;
        match self.next_seq {
            None => self.next_seq = Some(seq),
            Some(next) => {
                let ahead = seq.wrapping_sub(next) as i16;
                if ahead < 0 {
                    if i32::from(ahead) > -(capacity as i32) {
                        self.stats.late += 1;
                        return Ok(Pushed::Late);
                    }
                    self.resync(seq);
                    outcome = Pushed::Resynchronised;
                } else if ahead as usize >= capacity {
                    self.resync(seq);
                    outcome = Pushed::Resynchronised;
                }
            }
        }
        let slot = &mut self.slots[seq as usize % capacity];
        if slot.filled && slot.seq == seq {
            self.stats.duplicates += 1;
            return Ok(Pushed::Duplicate);
        }
        slot.seq = seq;
        slot.filled = true;
        slot.samples.copy_from_slice(samples);
        self.stats.received += 1;
        Ok(outcome)
    }

    /// Writes the next 20 ms into `out` (one frame). Call exactly once per frame period.
    pub fn pop(&mut self, out: &mut [i16]) -> Result<Playout, AudioError> {
        if out.len() < self.frame {
            return Err(AudioError::OutputTooSmall {
                needed: self.frame,
                got: out.len(),
            });
        }
        let out = &mut out[..self.frame];
        let Some(next) = self.next_seq else {
            out.fill(0);
            return Ok(Playout::Silence);
        };
        let buffered = self.buffered_from(next);
        if !self.playing {
            if buffered < self.target_depth {
                out.fill(0);
                return Ok(Playout::Silence);
            }
            self.playing = true;
        }
        if buffered == 0 {
            // The sender paused or the network stalled: hold our place in the sequence (resumed packets
            // must not count as late) and rebuffer to the target depth.
            self.playing = false;
            self.stats.underruns += 1;
            return Ok(self.conceal(out));
        }
        // Persistently too deep (the network recovered after a bad spell): skip one frame to bring the delay
        // back down. A momentary burst is left alone; it drains by itself.
        let mut next = next;
        if buffered > self.target_depth + 2 {
            self.over_deep_pops += 1;
        } else {
            self.over_deep_pops = 0;
        }
        if self.over_deep_pops > SHRINK_AFTER_POPS {
            self.over_deep_pops = 0;
            let capacity = self.slots.len();
            let slot = &mut self.slots[next as usize % capacity];
            if slot.filled && slot.seq == next {
                slot.filled = false;
            }
            next = next.wrapping_add(1);
            self.stats.shrunk += 1;
        }
        let capacity = self.slots.len();
        let slot = &mut self.slots[next as usize % capacity];
        self.next_seq = Some(next.wrapping_add(1));
        if slot.filled && slot.seq == next {
            slot.filled = false;
            out.copy_from_slice(&slot.samples);
            self.last_frame.copy_from_slice(&slot.samples);
            self.losses_in_a_row = 0;
            Ok(Playout::Audio)
        } else {
            Ok(self.conceal(out))
        }
    }

    /// Current playout depth target, in frames.
    pub fn target_depth(&self) -> usize {
        self.target_depth
    }

    /// Interarrival jitter estimate.
    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.jitter_ts / self.clock_hz)
    }

    /// Counters since the start of the call.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    fn conceal(&mut self, out: &mut [i16]) -> Playout {
        self.losses_in_a_row += 1;
        if self.losses_in_a_row > self.options.max_concealed {
            out.fill(0);
            return Playout::Silence;
        }
        // Each repeat 6 dB quieter, so a repeated frame fades instead of buzzing.
        let shift = self.losses_in_a_row as u32;
        for (o, &s) in out.iter_mut().zip(&self.last_frame) {
            *o = s >> shift;
        }
        self.stats.concealed += 1;
        Playout::Concealed
    }

    /// Frames buffered contiguously or not, from `next` up to the newest packet held.
    fn buffered_from(&self, next: u16) -> usize {
        let capacity = self.slots.len();
        (0..capacity)
            .rev()
            .find(|&offset| {
                let seq = next.wrapping_add(offset as u16);
                let slot = &self.slots[seq as usize % capacity];
                slot.filled && slot.seq == seq
            })
            .map_or(0, |offset| offset + 1)
    }

    fn resync(&mut self, seq: u16) {
        for slot in &mut self.slots {
            slot.filled = false;
        }
        self.next_seq = Some(seq);
        self.playing = false;
        self.last_transit = None;
    }

    fn update_jitter(&mut self, timestamp: u32, arrival: Duration) {
        let transit = arrival.as_secs_f64() * self.clock_hz - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // A huge step is a timestamp discontinuity, not jitter.
            if d < self.clock_hz {
                self.jitter_ts += (d - self.jitter_ts) / 16.0;
            }
        }
        self.last_transit = Some(transit);
        let frame_ts = self.frame as f64;
        let wanted = 1 + (3.0 * self.jitter_ts / frame_ts).ceil() as usize;
        self.target_depth = wanted.clamp(self.options.min_depth, self.options.max_depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRAME: usize = 160;

    fn frame(marker: i16) -> Vec<i16> {
        vec![marker; FRAME]
    }

    fn at(frames: f64) -> Duration {
        Duration::from_secs_f64(frames * 0.02)
    }

    fn jb() -> JitterBuffer {
        JitterBuffer::new(SampleRate::Hz8000, JitterOptions::default())
    }

    /// Pops until `n` audio frames came out (or a bound), returning their markers.
    fn drain(jb: &mut JitterBuffer, pops: usize) -> Vec<(Playout, i16)> {
        let mut out = [0i16; FRAME];
        (0..pops)
            .map(|_| (jb.pop(&mut out).unwrap(), out[0]))
            .collect()
    }

    #[test]
    fn reordered_packets_play_in_order() {
        let mut b = jb();
        for (i, seq) in [0u16, 2, 1, 4, 3, 5].into_iter().enumerate() {
            b.push(
                seq,
                u32::from(seq) * 160,
                at(i as f64),
                &frame(seq as i16 + 1),
            )
            .unwrap();
        }
        let played: Vec<i16> = drain(&mut b, 6)
            .into_iter()
            .filter(|(p, _)| *p == Playout::Audio)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(played, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(b.stats().concealed, 0);
    }

    #[test]
    fn duplicates_and_late_packets_are_dropped_and_counted() {
        let mut b = jb();
        for seq in 0..4u16 {
            b.push(seq, u32::from(seq) * 160, at(f64::from(seq)), &frame(1))
                .unwrap();
        }
        assert_eq!(
            b.push(2, 320, at(4.0), &frame(9)).unwrap(),
            Pushed::Duplicate
        );
        drain(&mut b, 3);
        assert_eq!(b.push(0, 0, at(5.0), &frame(9)).unwrap(), Pushed::Late);
        assert_eq!(b.stats().duplicates, 1);
        assert_eq!(b.stats().late, 1);
    }

    #[test]
    fn a_lost_packet_is_concealed_then_silence() {
        let mut b = jb();
        // Packet 1..=4 lost; 5 arrives.
        for seq in [0u16, 5, 6] {
            b.push(seq, u32::from(seq) * 160, at(f64::from(seq)), &frame(1000))
                .unwrap();
        }
        let out = drain(&mut b, 7);
        let kinds: Vec<Playout> = out.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            kinds,
            vec![
                Playout::Audio,
                Playout::Concealed,
                Playout::Concealed,
                Playout::Concealed,
                Playout::Silence,
                Playout::Audio,
                Playout::Audio
            ]
        );
        assert_eq!(out[1].1, 500, "first repeat is 6 dB down");
        assert_eq!(out[2].1, 250);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut b = jb();
        for (i, seq) in [65_534u16, 65_535, 0, 1].into_iter().enumerate() {
            b.push(seq, i as u32 * 160, at(i as f64), &frame(i as i16 + 1))
                .unwrap();
        }
        let played: Vec<i16> = drain(&mut b, 4).into_iter().map(|(_, m)| m).collect();
        assert_eq!(played, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_pause_in_sending_does_not_make_resumed_packets_late() {
        let mut b = jb();
        for seq in 0..3u16 {
            b.push(seq, u32::from(seq) * 160, at(f64::from(seq)), &frame(1))
                .unwrap();
        }
        drain(&mut b, 50); // one second with nothing arriving
        for seq in 3..6u16 {
            assert_eq!(
                b.push(
                    seq,
                    u32::from(seq) * 160,
                    at(60.0 + f64::from(seq)),
                    &frame(2)
                )
                .unwrap(),
                Pushed::Accepted
            );
        }
        assert!(
            drain(&mut b, 5)
                .iter()
                .any(|(p, m)| *p == Playout::Audio && *m == 2)
        );
        assert_eq!(b.stats().late, 0);
        assert!(b.stats().underruns >= 1);
    }

    #[test]
    fn a_new_stream_resynchronises() {
        let mut b = jb();
        b.push(100, 0, at(0.0), &frame(1)).unwrap();
        assert_eq!(
            b.push(40_000, 0, at(1.0), &frame(2)).unwrap(),
            Pushed::Resynchronised
        );
    }

    #[test]
    fn depth_follows_the_measured_jitter() {
        let mut steady = jb();
        for seq in 0..200u16 {
            steady
                .push(seq, u32::from(seq) * 160, at(f64::from(seq)), &frame(1))
                .unwrap();
            drain(&mut steady, 1);
        }
        assert_eq!(steady.target_depth(), 2);

        let mut jittery = jb();
        for seq in 0..200u16 {
            // ±30 ms of arrival noise, deterministic.
            let noise = if seq % 3 == 0 {
                1.5
            } else if seq % 3 == 1 {
                -1.0
            } else {
                0.3
            };
            jittery
                .push(
                    seq,
                    u32::from(seq) * 160,
                    at(f64::from(seq) + noise),
                    &frame(1),
                )
                .unwrap();
            drain(&mut jittery, 1);
        }
        assert!(
            jittery.target_depth() > 3,
            "depth {} for {:?} jitter",
            jittery.target_depth(),
            jittery.jitter()
        );
        assert!(jittery.target_depth() <= 10);
    }

    #[test]
    fn a_persistently_deep_buffer_shrinks_back_to_its_target() {
        let mut b = jb();
        // 10 frames arrive at once, then the stream continues steadily: 200 ms of extra delay to shed.
        for seq in 0..10u16 {
            b.push(seq, u32::from(seq) * 160, at(0.0), &frame(1))
                .unwrap();
        }
        for seq in 10..200u16 {
            b.push(seq, u32::from(seq) * 160, at(f64::from(seq)), &frame(1))
                .unwrap();
            drain(&mut b, 1);
        }
        assert!(b.stats().shrunk >= 1);
        assert!(b.buffered_from(b.next_seq.unwrap()) <= b.target_depth() + 3);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let mut b = jb();
        assert!(b.push(0, 0, at(0.0), &[0; 10]).is_err());
        assert!(b.pop(&mut [0; 10]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_never_plays_a_frame_twice(
            events in proptest::collection::vec((any::<bool>(), any::<u16>(), 0u32..100_000), 0..400)
        ) {
            let mut b = jb();
            let mut out = [0i16; FRAME];
            let mut t = 0.0;
            for (is_push, seq, ts) in events {
                t += 0.3;
                if is_push {
                    let _ = b.push(seq, ts, at(t), &frame(seq as i16));
                } else {
                    let _ = b.pop(&mut out).unwrap();
                }
            }
            let s = b.stats();
            prop_assert!(s.received + s.duplicates + s.late <= 400);
        }
    }
}
