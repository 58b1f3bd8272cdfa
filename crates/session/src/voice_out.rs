//! The agent's voice on its way out: synthesised samples at the voice's rate become 20 ms frames in the
//! call's wire format (resampled, then PCM16 or G.711), ready for the 20 ms clock.

use switchboard_audio::g711::{alaw_encode, ulaw_encode};
use switchboard_audio::pcm::to_i16;
use switchboard_audio::{AudioError, InputFormat, Resampler, SampleRate};

/// Turns a voice's samples into wire frames.
#[derive(Debug)]
pub struct VoiceEncoder {
    format: InputFormat,
    from: SampleRate,
    resampler: Resampler,
    pending: Vec<i16>,
    out: Vec<i16>,
}

impl VoiceEncoder {
    /// Encoder from a voice at `voice_hz` to `format`.
    pub fn new(voice_hz: u32, format: InputFormat) -> Result<Self, AudioError> {
        let from = SampleRate::from_hz(voice_hz)?;
        let to = format.rate();
        Ok(Self {
            format,
            from,
            resampler: Resampler::new(from, to)?,
            pending: Vec::with_capacity(from.frame_samples() * 2),
            out: vec![0; to.frame_samples()],
        })
    }

    /// The voice's rate.
    pub fn voice_rate(&self) -> u32 {
        self.from.hz()
    }

    /// Adds samples; returns every whole frame they complete.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Vec<u8>>, AudioError> {
        self.pending.extend(samples.iter().map(|&s| to_i16(s)));
        let size = self.from.frame_samples();
        let mut frames = Vec::with_capacity(self.pending.len() / size);
        let mut start = 0;
        while self.pending.len() - start >= size {
            let frame = self.encode(start, size)?;
            frames.push(frame);
            start += size;
        }
        self.pending.drain(..start);
        Ok(frames)
    }

    /// The last, partial frame padded with silence (plus the resampler's delay), if anything is left.
    pub fn finish(&mut self) -> Result<Vec<Vec<u8>>, AudioError> {
        let size = self.from.frame_samples();
        let mut frames = Vec::new();
        if !self.pending.is_empty() {
            self.pending.resize(size, 0);
            frames.push(self.encode(0, size)?);
            self.pending.clear();
        }
        // One more frame of silence flushes what the resampler holds back.
        self.pending.resize(size, 0);
        frames.push(self.encode(0, size)?);
        self.pending.clear();
        Ok(frames)
    }

    fn encode(&mut self, start: usize, size: usize) -> Result<Vec<u8>, AudioError> {
        let n = self
            .resampler
            .process_frame(&self.pending[start..start + size], &mut self.out)?;
        let samples = &self.out[..n];
        Ok(match self.format {
            InputFormat::Ulaw8k => samples.iter().map(|&s| ulaw_encode(s)).collect(),
            InputFormat::Alaw8k => samples.iter().map(|&s| alaw_encode(s)).collect(),
            InputFormat::Pcm16(_) => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piper_voice_becomes_twenty_millisecond_frames_in_each_wire_format() {
        let tone: Vec<f32> = (0..22_050)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 22_050.0).sin() * 0.5)
            .collect();
        for (format, frame_len) in [
            (InputFormat::Pcm16(SampleRate::Hz16000), 640),
            (InputFormat::Ulaw8k, 160),
            (InputFormat::Alaw8k, 160),
        ] {
            let mut encoder = VoiceEncoder::new(22_050, format).unwrap();
            let mut frames = Vec::new();
            // Uneven pushes, as synthesis delivers them.
            for piece in tone.chunks(1_000) {
                frames.extend(encoder.push(piece).unwrap());
            }
            frames.extend(encoder.finish().unwrap());
            assert!(frames.iter().all(|f| f.len() == frame_len), "{format:?}");
            // One second of voice is 50 frames, plus padding and the resampler's flush.
            assert!((50..=52).contains(&frames.len()), "{} frames", frames.len());
        }
    }

    #[test]
    fn unsupported_voice_rates_are_errors() {
        assert!(VoiceEncoder::new(11_025, InputFormat::Ulaw8k).is_err());
    }
}
