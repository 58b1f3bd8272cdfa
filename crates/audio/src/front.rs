//! The caller-side chain of one call: decode -> resample to 16 kHz -> echo suppression (against what we
//! sent) -> VAD, and on to noise suppression -> AGC for the recogniser. Built once per call; each 20 ms
//! frame then passes through without allocating.
//!
//! The VAD listens before noise suppression, not after as first designed: measured on 231 s of real
//! speech at 10 dB SNR, Silero's recall fell from 0.971 to 0.932 when it heard the denoised signal (the
//! suppressor's gains shave soft onsets and word ends, and Silero is trained on noisy speech anyway).

use crate::g711::{alaw_decode_into, ulaw_decode_into};
use crate::pcm::pcm16le_decode_into;
use crate::vad::{EnergyVad, SpeechProbability, VadDetector, VadError, VadEvent, VadOptions};
use crate::{
    Agc, AgcOptions, AudioError, EchoCanceller, EchoOptions, EchoStats, Framer, MAX_CHUNK_SAMPLES,
    Resampler, RnnoiseDenoiser, SampleRate, SpectralDenoiser, Tone, ToneDetector,
};
pub use switchboard_core::config::NoiseSuppression;

/// How the caller's audio arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// G.711 µ-law at 8 kHz (Twilio, SIP PCMU).
    Ulaw8k,
    /// G.711 A-law at 8 kHz (SIP PCMA).
    Alaw8k,
    /// PCM16 little-endian at the given rate (WebSocket, AudioSocket at 8 kHz, browsers at 48 kHz).
    Pcm16(SampleRate),
}

impl InputFormat {
    /// Sample rate of the decoded input.
    pub fn rate(self) -> SampleRate {
        match self {
            InputFormat::Ulaw8k | InputFormat::Alaw8k => SampleRate::Hz8000,
            InputFormat::Pcm16(rate) => rate,
        }
    }
}

/// Which stages run.
#[derive(Debug, Clone, Copy)]
pub struct FrontEndOptions {
    /// Input codec and rate.
    pub input: InputFormat,
    /// Echo suppression against the agent's audio; `None` when the transport cancels echo itself.
    pub echo: Option<EchoOptions>,
    /// Noise suppression engine.
    pub noise_suppression: NoiseSuppression,
    /// Gain control.
    pub agc: Option<AgcOptions>,
    /// VAD thresholds (from VAD_SENSITIVITY).
    pub vad: VadOptions,
}

impl FrontEndOptions {
    /// Every stage on, for `input` and a VAD sensitivity 0–3.
    pub fn full(input: InputFormat, vad_sensitivity: u8) -> Self {
        Self {
            input,
            echo: Some(EchoOptions::default()),
            noise_suppression: NoiseSuppression::Spectral,
            agc: Some(AgcOptions::default()),
            vad: VadOptions::for_sensitivity(vad_sensitivity),
        }
    }
}

/// Why a frame could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontEndError {
    /// Malformed audio.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// The VAD engine failed.
    #[error(transparent)]
    Vad(#[from] VadError),
}

/// The noise suppressor a chain runs.
enum Suppressor {
    Spectral(Box<SpectralDenoiser>),
    Rnnoise(Box<RnnoiseDenoiser>),
}

/// One 20 ms frame out of the chain.
#[derive(Debug)]
pub struct CleanFrame<'a> {
    /// Call-relative index of the frame's first sample at 16 kHz.
    pub start: u64,
    /// The processed audio, 16 kHz: what the recogniser hears.
    pub samples: &'a [i16],
    /// A voice activity change this frame completed.
    pub event: Option<VadEvent>,
    /// A steady tone (an answering machine's beep) that ended in this frame, when listened for.
    pub tone: Option<Tone>,
}

/// The agent's side of the echo canceller: its audio framed and brought to 16 kHz.
struct Reference {
    decoded: Vec<i16>,
    framer: Framer,
    to_16k: Resampler,
    frame_16k: Vec<i16>,
}

impl Reference {
    fn new(rate: SampleRate) -> Result<Self, AudioError> {
        Ok(Self {
            decoded: vec![0; MAX_CHUNK_SAMPLES],
            framer: Framer::new(rate),
            to_16k: Resampler::new(rate, SampleRate::Hz16000)?,
            frame_16k: vec![0; SampleRate::Hz16000.frame_samples()],
        })
    }

    /// Moves every complete frame into the canceller.
    fn drain(&mut self, echo: &mut EchoCanceller) -> Result<(), AudioError> {
        while let Some((_, frame)) = self.framer.next_frame() {
            self.to_16k.process_frame(frame, &mut self.frame_16k)?;
            echo.push_reference(&self.frame_16k);
        }
        Ok(())
    }
}

/// The caller-side audio chain of one call.
pub struct FrontEnd {
    options: FrontEndOptions,
    decoded: Vec<i16>,
    framer: Framer,
    to_16k: Resampler,
    frame_16k: Vec<i16>,
    echo: Option<EchoCanceller>,
    /// The agent's audio on its way to the canceller: decoded, framed, resampled to 16 kHz.
    reference: Option<Reference>,
    denoiser: Option<Suppressor>,
    agc: Option<Agc>,
    vad: VadDetector,
    /// Listens for beeps, before noise suppression learns a steady tone as noise and removes it.
    tones: Option<ToneDetector>,
    frames_out: u64,
}

impl std::fmt::Debug for FrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontEnd")
            .field("input", &self.options.input)
            .finish_non_exhaustive()
    }
}

impl FrontEnd {
    /// Builds the chain around a VAD engine (Silero by default; see [`FrontEnd::with_energy_vad`]).
    pub fn new(
        options: FrontEndOptions,
        vad_engine: Box<dyn SpeechProbability>,
    ) -> Result<Self, AudioError> {
        let rate = options.input.rate();
        Ok(Self {
            decoded: vec![0; MAX_CHUNK_SAMPLES],
            framer: Framer::new(rate),
            to_16k: Resampler::new(rate, SampleRate::Hz16000)?,
            frame_16k: vec![0; SampleRate::Hz16000.frame_samples()],
            echo: options.echo.map(EchoCanceller::new),
            reference: match options.echo {
                Some(_) => Some(Reference::new(rate)?),
                None => None,
            },
            denoiser: match options.noise_suppression {
                NoiseSuppression::Spectral => Some(Suppressor::Spectral(Box::default())),
                NoiseSuppression::Rnnoise => {
                    Some(Suppressor::Rnnoise(Box::new(RnnoiseDenoiser::new()?)))
                }
                NoiseSuppression::Off => None,
            },
            agc: options.agc.map(|o| Agc::new(o, 20.0)),
            vad: VadDetector::new(vad_engine, options.vad),
            tones: None,
            options,
            frames_out: 0,
        })
    }

    /// The chain with the model-free energy VAD, for when the Silero model is absent.
    pub fn with_energy_vad(
        options: FrontEndOptions,
        vad_sensitivity: u8,
    ) -> Result<Self, AudioError> {
        Self::new(
            options,
            Box::new(EnergyVad::new(VadOptions::energy_margin_db(
                vad_sensitivity,
            ))),
        )
    }

    /// Takes a transport payload in the input format (any length up to one second).
    pub fn push_payload(&mut self, payload: &[u8]) -> Result<(), AudioError> {
        let n = match self.options.input {
            InputFormat::Ulaw8k | InputFormat::Alaw8k => {
                if payload.is_empty() {
                    return Err(AudioError::Empty);
                }
                if payload.len() > MAX_CHUNK_SAMPLES {
                    return Err(AudioError::TooLarge {
                        len: payload.len(),
                        max: MAX_CHUNK_SAMPLES,
                    });
                }
                let out = &mut self.decoded[..payload.len()];
                if self.options.input == InputFormat::Ulaw8k {
                    ulaw_decode_into(payload, out)?;
                } else {
                    alaw_decode_into(payload, out)?;
                }
                payload.len()
            }
            InputFormat::Pcm16(_) => pcm16le_decode_into(payload, &mut self.decoded)?,
        };
        self.framer.push(&self.decoded[..n])
    }

    /// Takes samples already decoded at the input rate.
    pub fn push_samples(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        self.framer.push(samples)
    }

    /// Records what the agent played (16 kHz) as the echo reference.
    pub fn push_reference(&mut self, agent_16k: &[i16]) {
        if let Some(echo) = &mut self.echo {
            echo.push_reference(agent_16k);
        }
    }

    /// Records agent audio as it was sent, in the input format (the transports use one format both
    /// ways), as the echo reference. Call it in step with the caller's audio: the reference sent while a
    /// caller payload was on its way goes in before that payload.
    pub fn push_reference_payload(&mut self, payload: &[u8]) -> Result<(), AudioError> {
        let (Some(echo), Some(reference)) = (&mut self.echo, &mut self.reference) else {
            return Ok(());
        };
        let n = match self.options.input {
            InputFormat::Ulaw8k | InputFormat::Alaw8k => {
                let len = payload.len().min(MAX_CHUNK_SAMPLES);
                let out = &mut reference.decoded[..len];
                if self.options.input == InputFormat::Ulaw8k {
                    ulaw_decode_into(&payload[..len], out)?;
                } else {
                    alaw_decode_into(&payload[..len], out)?;
                }
                len
            }
            InputFormat::Pcm16(_) => pcm16le_decode_into(payload, &mut reference.decoded)?,
        };
        reference.framer.push(&reference.decoded[..n])?;
        reference.drain(echo)
    }

    /// Records `samples` samples (at the input rate) of silence from the agent as the echo reference (a
    /// tick with nothing sent).
    pub fn push_reference_silence(&mut self, samples: usize) -> Result<(), AudioError> {
        let (Some(echo), Some(reference)) = (&mut self.echo, &mut self.reference) else {
            return Ok(());
        };
        reference.decoded.fill(0);
        let mut left = samples;
        while left > 0 {
            let n = left.min(reference.decoded.len());
            reference.framer.push(&reference.decoded[..n])?;
            reference.drain(echo)?;
            left -= n;
        }
        Ok(())
    }

    /// Reports steady tones from now on ([`CleanFrame::tone`]): an answering machine's beep.
    pub fn listen_for_tones(&mut self) {
        self.tones.get_or_insert_with(ToneDetector::new);
    }

    /// Stops looking for tones (the answer was screened).
    pub fn stop_listening_for_tones(&mut self) {
        self.tones = None;
    }

    /// The echo reference and the caller's audio were lined up again: the echo canceller searches for the
    /// echo's delay afresh (see [`EchoCanceller::restart_delay_search`]).
    pub fn restart_echo_delay_search(&mut self) {
        if let Some(echo) = &mut self.echo {
            echo.restart_delay_search();
        }
    }

    /// What the echo canceller has learned and done so far; `None` when it is off.
    pub fn echo_stats(&self) -> Option<EchoStats> {
        self.echo.as_ref().map(EchoCanceller::stats)
    }

    /// Runs the next buffered 20 ms frame through the chain, if one is complete.
    pub fn next_frame(&mut self) -> Result<Option<CleanFrame<'_>>, FrontEndError> {
        let Some((_, frame)) = self.framer.next_frame() else {
            return Ok(None);
        };
        self.to_16k.process_frame(frame, &mut self.frame_16k)?;
        if let Some(echo) = &mut self.echo {
            echo.process(&mut self.frame_16k);
        }
        let tone = self
            .tones
            .as_mut()
            .and_then(|tones| tones.push(&self.frame_16k));
        let event = self.vad.process(&self.frame_16k)?;
        match &mut self.denoiser {
            Some(Suppressor::Spectral(d)) => d.process(&mut self.frame_16k)?,
            Some(Suppressor::Rnnoise(d)) => d.process(&mut self.frame_16k)?,
            None => {}
        }
        if let Some(agc) = &mut self.agc {
            agc.process(&mut self.frame_16k);
        }
        let start = self.frames_out * self.frame_16k.len() as u64;
        self.frames_out += 1;
        Ok(Some(CleanFrame {
            start,
            samples: &self.frame_16k,
            event,
            tone,
        }))
    }

    /// Whether the caller is speaking now.
    pub fn in_speech(&self) -> bool {
        self.vad.in_speech()
    }

    /// Whether the caller went quiet after speaking, and the end of speech is not yet declared.
    pub fn pausing(&self) -> bool {
        self.vad.pausing()
    }

    /// How long the caller has been quiet in the current pause; `None` when not pausing.
    pub fn quiet_for(&self) -> Option<std::time::Duration> {
        self.vad.quiet_for()
    }

    /// Makes the current pause last `silence` before it ends speech (see [`VadDetector::hold_pause`]).
    pub fn hold_pause(&mut self, silence: std::time::Duration) {
        self.vad.hold_pause(silence);
    }

    /// Ends the caller's speech now, during a pause (see [`VadDetector::end_speech_now`]).
    pub fn end_speech_now(&mut self) -> Option<VadEvent> {
        self.vad.end_speech_now()
    }

    /// Input samples dropped because frames were not drained.
    pub fn dropped_samples(&self) -> u64 {
        self.framer.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::ulaw_encode;

    #[test]
    fn ulaw_payloads_become_16k_frames_with_positions() {
        let options = FrontEndOptions::full(InputFormat::Ulaw8k, 2);
        let mut front = FrontEnd::with_energy_vad(options, 2).unwrap();
        let tone: Vec<u8> = (0..800)
            .map(|n| ulaw_encode((8000.0 * (n as f32 * 0.3).sin()) as i16))
            .collect();
        front.push_payload(&tone).unwrap();
        let mut starts = Vec::new();
        while let Some(frame) = front.next_frame().unwrap() {
            assert_eq!(frame.samples.len(), 320);
            starts.push(frame.start);
        }
        assert_eq!(starts, vec![0, 320, 640, 960, 1280]);
    }

    #[test]
    fn malformed_payloads_are_errors_and_the_chain_keeps_working() {
        let mut pcm = FrontEnd::with_energy_vad(
            FrontEndOptions::full(InputFormat::Pcm16(SampleRate::Hz16000), 2),
            2,
        )
        .unwrap();
        assert_eq!(
            pcm.push_payload(&[1, 2, 3]),
            Err(AudioError::OddLength { len: 3 })
        );
        assert_eq!(pcm.push_payload(&[]), Err(AudioError::Empty));
        assert!(matches!(
            pcm.push_payload(&vec![0; 200_000]),
            Err(AudioError::TooLarge { .. })
        ));
        pcm.push_payload(&[0; 640]).unwrap();
        assert!(pcm.next_frame().unwrap().is_some());
        let mut ulaw =
            FrontEnd::with_energy_vad(FrontEndOptions::full(InputFormat::Ulaw8k, 2), 2).unwrap();
        assert!(matches!(
            ulaw.push_payload(&vec![0xFF; 60_000]),
            Err(AudioError::TooLarge { .. })
        ));
    }
}
