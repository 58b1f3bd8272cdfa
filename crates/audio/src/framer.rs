//! Cuts a stream of arbitrarily sized chunks into fixed 20 ms frames, counting samples so every frame
//! knows its position in the call (VAD events are timestamped to the sample from this count).

use crate::{AudioError, MAX_CHUNK_SAMPLES, SampleRate};

/// Buffers incoming samples and hands them out one frame at a time.
#[derive(Debug)]
pub struct Framer {
    frame: usize,
    buf: Vec<i16>,
    len: usize,
    /// Samples handed out as frames so far: the call-relative index of the next frame's first sample.
    emitted: u64,
    /// Samples dropped because the caller pushed without draining.
    dropped: u64,
    out: Vec<i16>,
}

impl Framer {
    /// A framer for 20 ms frames at `rate`. Allocates once, here.
    pub fn new(rate: SampleRate) -> Self {
        let frame = rate.frame_samples();
        Self {
            frame,
            buf: vec![0; frame + MAX_CHUNK_SAMPLES],
            len: 0,
            emitted: 0,
            dropped: 0,
            out: vec![0; frame],
        }
    }

    /// Appends a chunk. Oversized chunks are refused; if frames were left undrained and the buffer is full,
    /// the oldest samples are dropped (and counted) so the newest audio always gets through.
    pub fn push(&mut self, chunk: &[i16]) -> Result<(), AudioError> {
        if chunk.len() > MAX_CHUNK_SAMPLES {
            return Err(AudioError::TooLarge {
                len: chunk.len(),
                max: MAX_CHUNK_SAMPLES,
            });
        }
        let free = self.buf.len() - self.len;
        if chunk.len() > free {
            let excess = chunk.len() - free;
            self.buf.copy_within(excess..self.len, 0);
            self.len -= excess;
            self.dropped += excess as u64;
            self.emitted += excess as u64;
        }
        self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
        self.len += chunk.len();
        Ok(())
    }

    /// The next whole frame and the call-relative index of its first sample, if one is buffered.
    pub fn next_frame(&mut self) -> Option<(u64, &[i16])> {
        if self.len < self.frame {
            return None;
        }
        self.out.copy_from_slice(&self.buf[..self.frame]);
        self.buf.copy_within(self.frame..self.len, 0);
        self.len -= self.frame;
        let start = self.emitted;
        self.emitted += self.frame as u64;
        Some((start, &self.out))
    }

    /// Samples lost to overflow since the start of the call.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_preserve_order_and_positions(chunks in proptest::collection::vec(1usize..700, 1..40)) {
            let mut framer = Framer::new(SampleRate::Hz16000);
            let mut next_value = 0i64;
            let mut expected_start = 0u64;
            for len in chunks {
                let chunk: Vec<i16> = (0..len).map(|i| ((next_value + i as i64) % 30_000) as i16).collect();
                next_value += len as i64;
                framer.push(&chunk).unwrap();
                while let Some((start, frame)) = framer.next_frame() {
                    prop_assert_eq!(start, expected_start);
                    prop_assert_eq!(frame.len(), 320);
                    prop_assert_eq!(i64::from(frame[0]), (start as i64) % 30_000);
                    expected_start += 320;
                }
            }
            prop_assert_eq!(framer.dropped(), 0);
        }
    }

    #[test]
    fn oversized_chunks_are_refused_and_overflow_drops_the_oldest() {
        let mut framer = Framer::new(SampleRate::Hz8000);
        assert!(framer.push(&vec![0; MAX_CHUNK_SAMPLES + 1]).is_err());
        framer.push(&vec![1; MAX_CHUNK_SAMPLES]).unwrap();
        framer.push(&[2; 400]).unwrap();
        assert_eq!(framer.dropped(), 240);
        let mut last = None;
        while let Some((start, frame)) = framer.next_frame() {
            last = Some((start, frame[frame.len() - 1]));
        }
        assert_eq!(last.map(|(_, v)| v), Some(2), "newest samples survive");
    }
}
