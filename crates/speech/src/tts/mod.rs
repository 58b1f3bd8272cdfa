//! Text to speech: text in, a stream of PCM chunks out, the first as early as possible.
//!
//! Every engine speaks one piece at a time (a sentence, or the first clause of a long first sentence);
//! [`Synthesizer`] cuts the text with the same [`SentenceChunker`] the agent's token stream uses and hands
//! each piece's audio to the caller's sink before starting the next. Engines: Piper (the default English
//! voice), Kokoro-82M, and espeak-ng, which also stands in for a neural voice whose inference fails
//! mid-call, so the caller hears the answer in a plainer voice rather than silence.

mod cache;
mod espeak;
mod kokoro;
mod load;
mod npy;
mod piper;

use std::ops::ControlFlow;
use std::time::Duration;

pub use cache::{Origin, Phrase, PhraseCache};
pub use espeak::{Clause, ESPEAK_SAMPLE_RATE, Espeak, split_clauses};
pub use kokoro::{KOKORO_SAMPLE_RATE, KokoroVoice, kokoro_phonemes};
pub use load::{TtsOptions, load, options_from_config};
pub use piper::PiperVoice;

use crate::{ChunkerOptions, SentenceChunker};

/// Longest text one synthesis call accepts: a reply, never a document.
pub const MAX_TEXT_CHARS: usize = 5_000;

/// Why synthesis failed.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// The engine or its files could not be loaded.
    #[error("cannot load the text-to-speech engine: {0}")]
    Load(String),
    /// The configured voice does not exist in the engine.
    #[error("{engine} has no voice {voice:?} (available: {available}); {hint}")]
    VoiceNotFound {
        /// Engine name.
        engine: &'static str,
        /// The voice asked for.
        voice: String,
        /// What exists, comma-separated.
        available: String,
        /// What to do.
        hint: String,
    },
    /// More text than one call takes.
    #[error("text of {chars} characters is longer than the {max} character limit")]
    TooLong {
        /// Given.
        chars: usize,
        /// Limit.
        max: usize,
    },
    /// The engine failed on this text.
    #[error("synthesis failed: {0}")]
    Inference(String),
}

/// Which voice speaks and at what rate.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceInfo {
    /// `piper`, `kokoro` or `espeak`.
    pub engine: &'static str,
    /// The voice within the engine.
    pub voice: String,
    /// Samples per second of its audio.
    pub sample_rate: u32,
    /// Speaking rate, 1.0 natural.
    pub rate: f32,
}

/// A piece of synthesised speech.
#[derive(Debug, Clone)]
pub struct AudioChunk {
    /// Mono samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Their rate (a fallback voice may differ from the primary's).
    pub sample_rate: u32,
    /// The text this chunk speaks.
    pub text: String,
    /// Whether this is the reply's last chunk.
    pub last: bool,
}

impl AudioChunk {
    /// Length of the audio.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.sample_rate.max(1)))
    }
}

/// A voice: text in, audio chunks out.
pub trait TextToSpeech: Send + Sync {
    /// Engine, voice, sample rate.
    fn info(&self) -> &VoiceInfo;

    /// Speaks `text`, handing each chunk to `sink` as soon as it is ready. The sink returns
    /// `ControlFlow::Break` to stop early (the caller barged in); nothing more is synthesised then.
    fn synthesize(
        &self,
        text: &str,
        sink: &mut dyn FnMut(AudioChunk) -> ControlFlow<()>,
    ) -> Result<(), TtsError>;

    /// All of `text`'s audio at once, at [`VoiceInfo::sample_rate`] (fallback chunks resampled).
    fn synthesize_all(&self, text: &str) -> Result<Vec<f32>, TtsError> {
        let rate = self.info().sample_rate;
        let mut audio = Vec::new();
        let mut resample_error = None;
        self.synthesize(text, &mut |chunk| {
            if chunk.sample_rate == rate {
                audio.extend_from_slice(&chunk.samples);
            } else {
                match resample_linear(&chunk.samples, chunk.sample_rate, rate) {
                    Ok(samples) => audio.extend(samples),
                    Err(e) => {
                        resample_error = Some(e);
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        match resample_error {
            Some(e) => Err(e),
            None => Ok(audio),
        }
    }
}

/// A fallback chunk brought to the primary voice's rate for a file (linear interpolation; failures give
/// silence of the right length, which cannot happen for the non-zero rates voices have).
pub fn resample_for_file(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    resample_linear(samples, from, to).unwrap_or_default()
}

/// Linear interpolation between two rates: only for joining a fallback voice's chunk to a file at another
/// rate; live audio goes through the audio crate's resampler.
fn resample_linear(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, TtsError> {
    if from == 0 || to == 0 {
        return Err(TtsError::Inference(format!(
            "cannot resample {from} Hz to {to} Hz"
        )));
    }
    let out_len = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    Ok((0..out_len)
        .map(|i| {
            let position = i as f64 * step;
            let index = position as usize;
            let fraction = (position - index as f64) as f32;
            let a = samples.get(index).copied().unwrap_or(0.0);
            let b = samples.get(index + 1).copied().unwrap_or(a);
            a + (b - a) * fraction
        })
        .collect())
}

/// An engine that speaks one piece of text (a sentence or clause) per inference.
pub trait PieceEngine: Send + Sync {
    /// Engine, voice, rate.
    fn info(&self) -> &VoiceInfo;
    /// The audio of one piece, at `info().sample_rate`.
    fn speak_piece(&self, piece: &str) -> Result<Vec<f32>, TtsError>;
}

/// A [`PieceEngine`] made streaming: text cut into pieces, a pause after each sentence, and espeak-ng
/// speaking any piece the engine fails on.
pub struct Synthesizer {
    engine: Box<dyn PieceEngine>,
    fallback: Option<Box<dyn PieceEngine>>,
    pause: Duration,
}

impl std::fmt::Debug for Synthesizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synthesizer")
            .field("voice", self.engine.info())
            .field("fallback", &self.fallback.as_ref().map(|f| f.info()))
            .finish()
    }
}

impl Synthesizer {
    /// Streams `engine`'s speech; `fallback` speaks the pieces it fails on.
    pub fn new(engine: Box<dyn PieceEngine>, fallback: Option<Box<dyn PieceEngine>>) -> Self {
        Self {
            engine,
            fallback,
            pause: Duration::from_millis(150),
        }
    }

    fn speak(&self, piece: &str) -> Result<(Vec<f32>, u32), TtsError> {
        match self.engine.speak_piece(piece) {
            Ok(samples) => Ok((samples, self.engine.info().sample_rate)),
            Err(error) => match &self.fallback {
                Some(fallback) => {
                    tracing::warn!(%error, voice = %self.engine.info().voice, "voice failed on a piece; espeak-ng speaks it");
                    Ok((fallback.speak_piece(piece)?, fallback.info().sample_rate))
                }
                None => Err(error),
            },
        }
    }
}

/// The pieces `text` is spoken in, in order.
pub fn pieces(text: &str) -> Vec<String> {
    let mut chunker = SentenceChunker::new(ChunkerOptions::default());
    let mut pieces = chunker.push(text);
    pieces.extend(chunker.finish());
    pieces.retain(|p| p.chars().any(char::is_alphanumeric));
    pieces
}

impl TextToSpeech for Synthesizer {
    fn info(&self) -> &VoiceInfo {
        self.engine.info()
    }

    fn synthesize(
        &self,
        text: &str,
        sink: &mut dyn FnMut(AudioChunk) -> ControlFlow<()>,
    ) -> Result<(), TtsError> {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(TtsError::TooLong {
                chars,
                max: MAX_TEXT_CHARS,
            });
        }
        let pieces = pieces(text);
        let count = pieces.len();
        for (index, piece) in pieces.into_iter().enumerate() {
            let (mut samples, sample_rate) = self.speak(&piece)?;
            let last = index + 1 == count;
            if !last {
                let pause = (self.pause.as_secs_f64() * f64::from(sample_rate)) as usize;
                samples.extend(std::iter::repeat_n(0.0, pause));
            }
            let chunk = AudioChunk {
                samples,
                sample_rate,
                text: piece,
                last,
            };
            if sink(chunk).is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// Scales `samples` so the loudest is at -1 dBFS (neural voices come out at arbitrary levels).
fn normalize_peak(samples: &mut [f32]) {
    let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
    if peak > 1e-4 {
        let gain = 0.89 / peak;
        samples.iter_mut().for_each(|s| *s *= gain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten samples per character; the 8 kHz one fails on pieces that say "fail".
    struct Tone(VoiceInfo);

    impl PieceEngine for Tone {
        fn info(&self) -> &VoiceInfo {
            &self.0
        }
        fn speak_piece(&self, piece: &str) -> Result<Vec<f32>, TtsError> {
            if piece.contains("fail") && self.0.sample_rate == 8_000 {
                return Err(TtsError::Inference("cannot".into()));
            }
            Ok(vec![0.5; piece.len() * 10])
        }
    }

    fn tone(rate: u32) -> Box<dyn PieceEngine> {
        Box::new(Tone(VoiceInfo {
            engine: "tone",
            voice: format!("tone{rate}"),
            sample_rate: rate,
            rate: 1.0,
        }))
    }

    #[test]
    fn chunks_follow_sentences_and_the_last_is_marked() {
        let tts = Synthesizer::new(tone(8_000), None);
        let mut chunks = Vec::new();
        tts.synthesize(
            "Hello there. Dr. Smith will call you back today!",
            &mut |c| {
                chunks.push(c);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            ["Hello there.", "Dr. Smith will call you back today!"]
        );
        assert!(!chunks[0].last && chunks[1].last);
        // A pause follows the first sentence only.
        assert_eq!(chunks[0].samples.len(), 120 + 1_200);
        assert_eq!(chunks[1].samples.len(), 350);
    }

    #[test]
    fn a_break_stops_synthesis() {
        let tts = Synthesizer::new(tone(8_000), None);
        let mut seen = 0;
        tts.synthesize("One. Two. Three.", &mut |_| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn a_failing_piece_is_spoken_by_the_fallback_at_its_own_rate() {
        let tts = Synthesizer::new(tone(8_000), Some(tone(16_000)));
        let mut rates = Vec::new();
        tts.synthesize("This works. This will fail.", &mut |c| {
            rates.push(c.sample_rate);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(rates, [8_000, 16_000]);
        let all = tts.synthesize_all("This will fail.").unwrap();
        assert_eq!(all.len(), 150 / 2);
        let alone = Synthesizer::new(tone(8_000), None);
        assert!(matches!(
            alone.synthesize_all("This will fail."),
            Err(TtsError::Inference(_))
        ));
    }

    #[test]
    fn oversized_and_empty_text() {
        let tts = Synthesizer::new(tone(8_000), None);
        let long = "word ".repeat(MAX_TEXT_CHARS);
        assert!(matches!(
            tts.synthesize_all(&long),
            Err(TtsError::TooLong { .. })
        ));
        assert!(tts.synthesize_all("").unwrap().is_empty());
        assert!(tts.synthesize_all(" ... ").unwrap().is_empty());
    }

    #[test]
    fn peaks_are_normalised() {
        let mut s = vec![0.1, -0.2, 0.05];
        normalize_peak(&mut s);
        assert!((s[1] + 0.89).abs() < 1e-6);
        let mut silence = vec![0.0; 4];
        normalize_peak(&mut silence);
        assert_eq!(silence, vec![0.0; 4]);
    }
}
