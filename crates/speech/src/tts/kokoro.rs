//! Kokoro-82M (v1.0, int8 ONNX, 24 kHz): phoneme tokens + a 256-value style vector taken from the voice
//! by token count + speed → audio. Phonemes come from espeak-ng with tied multi-letter phonemes, mapped
//! onto Kokoro's phoneme set (its diphthong letters `A I O W Y`, `ʤ ʧ`, rhotic vowels).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

use super::espeak::{Espeak, split_clauses};
use super::{PieceEngine, TtsError, VoiceInfo, normalize_peak};

/// Kokoro's output rate.
pub const KOKORO_SAMPLE_RATE: u32 = 24_000;
/// Longest token sequence the model takes (without its two boundary pads).
const MAX_TOKENS: usize = 510;
/// Values in a style vector.
const STYLE: usize = 256;

/// espeak-ng IPA (with `^` ties) → Kokoro's American English phonemes, longest match first.
const ESPEAK_TO_KOKORO: &[(&str, &str)] = &[
    ("ʔˌn\u{329}", "tᵊn"),
    ("ʔn\u{329}", "tᵊn"),
    ("ɜːɹ", "ɜɹ"),
    ("a^ɪ", "I"),
    ("a^ʊ", "W"),
    ("d^ʒ", "ʤ"),
    ("e^ɪ", "A"),
    ("o^ʊ", "O"),
    ("t^ʃ", "ʧ"),
    ("ɔ^ɪ", "Y"),
    ("ə^l", "ᵊl"),
    ("ʔn", "tᵊn"),
    ("ɜː", "ɜɹ"),
    ("ɪə", "iə"),
    ("ʔ", "t"),
    ("e", "A"),
    ("r", "ɹ"),
    ("x", "k"),
    ("ç", "k"),
    ("ɐ", "ə"),
    ("ɚ", "əɹ"),
    ("ɬ", "l"),
    ("ʲ", ""),
    ("ː", ""),
    ("^", ""),
];

/// Maps espeak's phonemes onto Kokoro's set.
pub fn kokoro_phonemes(espeak: &str) -> String {
    let mut out = String::with_capacity(espeak.len());
    let mut rest = espeak;
    'scan: while !rest.is_empty() {
        for (from, to) in ESPEAK_TO_KOKORO {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// A Kokoro voice.
pub struct KokoroVoice {
    info: VoiceInfo,
    session: Mutex<Session>,
    espeak: Espeak,
    espeak_voice: &'static str,
    vocab: HashMap<char, i64>,
    style: Vec<f32>,
}

impl std::fmt::Debug for KokoroVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KokoroVoice")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl KokoroVoice {
    /// Loads the model, the phoneme vocabulary (`vocab.json`) and `voice` from the voices file.
    pub fn load(
        environment: &ort::environment::Environment,
        model: &Path,
        vocab: &Path,
        voices: &Path,
        voice: &str,
        rate: f32,
        threads: usize,
    ) -> Result<Self, TtsError> {
        let load = |detail: String| TtsError::Load(format!("Kokoro: {detail}"));
        let all = super::npy::read_npz(voices)?;
        let Some(array) = all.get(voice) else {
            return Err(TtsError::VoiceNotFound {
                engine: "kokoro",
                voice: voice.to_owned(),
                available: all.keys().cloned().collect::<Vec<_>>().join(", "),
                hint: format!(
                    "set TTS_VOICE to one of them, or point KOKORO_VOICES at Kokoro's voices-v1.0.bin for af_heart and the other English voices (now {})",
                    voices.display()
                ),
            });
        };
        if array.data.len() % STYLE != 0 || array.data.is_empty() {
            return Err(load(format!(
                "voice {voice} has shape {:?}, expected (N, 1, 256)",
                array.shape
            )));
        }
        let vocab = read_vocab(vocab)?;
        let session = Session::builder(environment)
            .map_err(|e| load(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| load(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| load(e.to_string()))?
            .commit_from_file(model)
            .map_err(|e| load(format!("{}: {e}", model.display())))?;
        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_owned())
            .collect();
        if inputs.len() != 3 || !inputs[1].contains("style") {
            return Err(load(format!(
                "{} has inputs {inputs:?}; expected (tokens, style, speed)",
                model.display()
            )));
        }
        // British voices (b*) take espeak's en-gb; everything else American English.
        let espeak_voice = if voice.starts_with('b') {
            "en-gb-x-rp"
        } else {
            "en-us"
        };
        Ok(Self {
            info: VoiceInfo {
                engine: "kokoro",
                voice: voice.to_owned(),
                sample_rate: KOKORO_SAMPLE_RATE,
                rate,
            },
            session: Mutex::new(session),
            espeak: Espeak::locate()?,
            espeak_voice,
            vocab,
            style: array.data.clone(),
        })
    }

    /// Kokoro phonemes for a piece, clauses joined with their punctuation.
    pub fn phonemes(&self, piece: &str) -> Result<String, TtsError> {
        let clauses = split_clauses(piece);
        let phonemes = self.espeak.phonemize(self.espeak_voice, &clauses, true)?;
        let mut out = String::new();
        for (clause, text) in clauses.iter().zip(&phonemes) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&kokoro_phonemes(text));
            if let Some(p) = clause.punctuation {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn infer(&self, tokens: &[i64]) -> Result<Vec<f32>, TtsError> {
        let fail = |e: ort::Error| TtsError::Inference(format!("Kokoro: {e}"));
        let rows = self.style.len() / STYLE;
        let row = tokens.len().min(rows - 1);
        let style = self.style[row * STYLE..(row + 1) * STYLE].to_vec();
        let mut padded = Vec::with_capacity(tokens.len() + 2);
        padded.push(0);
        padded.extend_from_slice(tokens);
        padded.push(0);
        let tokens = Tensor::from_array(([1usize, padded.len()], padded)).map_err(fail)?;
        let style = Tensor::from_array(([1usize, STYLE], style)).map_err(fail)?;
        let speed = Tensor::from_array(([1usize], vec![self.info.rate])).map_err(fail)?;
        let mut session = self.session.lock().map_err(|_| {
            TtsError::Inference("Kokoro session poisoned by an earlier panic".into())
        })?;
        let outputs = session
            .run(ort::inputs![tokens, style, speed])
            .map_err(fail)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
        Ok(audio.to_vec())
    }
}

fn read_vocab(path: &Path) -> Result<HashMap<char, i64>, TtsError> {
    #[derive(serde::Deserialize)]
    struct Vocab {
        vocab: HashMap<String, i64>,
    }
    let bad =
        |detail: String| TtsError::Load(format!("Kokoro vocabulary {}: {detail}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let vocab: Vocab = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    Ok(vocab
        .vocab
        .into_iter()
        .filter_map(|(k, v)| {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some((c, v)),
                _ => None,
            }
        })
        .collect())
}

impl PieceEngine for KokoroVoice {
    fn info(&self) -> &VoiceInfo {
        &self.info
    }

    fn speak_piece(&self, piece: &str) -> Result<Vec<f32>, TtsError> {
        let phonemes = self.phonemes(piece)?;
        let tokens: Vec<i64> = phonemes
            .chars()
            .filter_map(|c| self.vocab.get(&c).copied())
            .collect();
        let mut audio = Vec::new();
        // A piece is bounded by the chunker (220 characters), far below 510 tokens; cut anyway if not.
        for part in tokens.chunks(MAX_TOKENS) {
            audio.extend(self.infer(part)?);
        }
        normalize_peak(&mut audio);
        Ok(audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn espeak_phonemes_map_to_kokoros_set() {
        // espeak-ng 1.51 en-us, --ipa --tie=^: "My bottle of water", "joyful", "claim", "go"
        assert_eq!(
            kokoro_phonemes("ma^ɪ bˈɑːɾə^l ʌv wˈɔːɾɚ"),
            "mI bˈɑɾᵊl ʌv wˈɔɾəɹ"
        );
        assert_eq!(kokoro_phonemes("d^ʒˈɔ^ɪfə^l"), "ʤˈYfᵊl");
        assert_eq!(kokoro_phonemes("klˈe^ɪm ɡˈo^ʊ"), "klˈAm ɡˈO");
        assert_eq!(kokoro_phonemes("hˈɜːt tʃ"), "hˈɜɹt tʃ");
    }
}
