//! Piper voices: a VITS model in ONNX plus its `.onnx.json` (sample rate, espeak voice, inference scales,
//! and the phoneme → id map). Phonemes come from espeak-ng, decomposed to code points as Piper's own
//! phonemizer does; the model turns one sentence's ids into its audio in a single run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::espeak::{Espeak, split_clauses};
use super::{PieceEngine, TtsError, VoiceInfo, normalize_peak};

#[derive(Debug, Deserialize)]
struct VoiceConfig {
    audio: AudioConfig,
    espeak: EspeakConfig,
    #[serde(default)]
    inference: InferenceConfig,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: u32,
}

#[derive(Debug, Deserialize)]
struct AudioConfig {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct EspeakConfig {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct InferenceConfig {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

const PAD: char = '_';
const BOS: char = '^';
const EOS: char = '$';

/// A loaded Piper voice.
pub struct PiperVoice {
    info: VoiceInfo,
    session: Mutex<Session>,
    espeak: Espeak,
    espeak_voice: String,
    ids: HashMap<char, Vec<i64>>,
    scales: [f32; 3],
    multi_speaker: bool,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl PiperVoice {
    /// Loads `model` (its config beside it as `<model>.json`) on the ONNX Runtime `environment`.
    pub fn load(
        environment: &ort::environment::Environment,
        model: &Path,
        rate: f32,
        threads: usize,
    ) -> Result<Self, TtsError> {
        let config_path = model.with_extension("onnx.json");
        let load =
            |detail: String| TtsError::Load(format!("Piper voice {}: {detail}", model.display()));
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| load(format!("{}: {e}", config_path.display())))?;
        let config: VoiceConfig = serde_json::from_str(&text)
            .map_err(|e| load(format!("{}: {e}", config_path.display())))?;
        let mut ids = HashMap::new();
        for (phoneme, id) in config.phoneme_id_map {
            let mut chars = phoneme.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                ids.insert(c, id);
            }
        }
        for required in [PAD, BOS, EOS] {
            if !ids.contains_key(&required) {
                return Err(load(format!("phoneme_id_map has no {required:?}")));
            }
        }
        let session = Session::builder(environment)
            .map_err(|e| load(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| load(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| load(e.to_string()))?
            .commit_from_file(model)
            .map_err(|e| load(e.to_string()))?;
        let voice = model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let inference = config.inference;
        Ok(Self {
            info: VoiceInfo {
                engine: "piper",
                voice,
                sample_rate: config.audio.sample_rate,
                rate,
            },
            session: Mutex::new(session),
            espeak: Espeak::locate()?,
            espeak_voice: config.espeak.voice,
            ids,
            scales: [
                inference.noise_scale,
                inference.length_scale / rate.clamp(0.25, 4.0),
                inference.noise_w,
            ],
            multi_speaker: config.num_speakers > 1,
        })
    }

    /// The phoneme string Piper is trained on: clause phonemes, each followed by its punctuation, with a
    /// space between clauses.
    pub fn phonemes(&self, piece: &str) -> Result<String, TtsError> {
        let clauses = split_clauses(piece);
        let phonemes = self.espeak.phonemize(&self.espeak_voice, &clauses, false)?;
        let mut out = String::new();
        for (clause, text) in clauses.iter().zip(&phonemes) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(text);
            if let Some(p) = clause.punctuation {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Model input ids: BOS, each phoneme code point followed by a pad, EOS. Unknown phonemes are dropped.
    fn phoneme_ids(&self, phonemes: &str) -> Vec<i64> {
        let mut out = Vec::with_capacity(phonemes.len() * 2 + 3);
        let push = |c: char, out: &mut Vec<i64>| {
            if let Some(ids) = self.ids.get(&c) {
                out.extend_from_slice(ids);
            }
        };
        push(BOS, &mut out);
        push(PAD, &mut out);
        for c in phonemes.nfd() {
            if self.ids.contains_key(&c) {
                push(c, &mut out);
                push(PAD, &mut out);
            }
        }
        push(EOS, &mut out);
        out
    }
}

impl PieceEngine for PiperVoice {
    fn info(&self) -> &VoiceInfo {
        &self.info
    }

    fn speak_piece(&self, piece: &str) -> Result<Vec<f32>, TtsError> {
        let phonemes = self.phonemes(piece)?;
        let ids = self.phoneme_ids(&phonemes);
        if ids.len() <= 3 {
            return Ok(Vec::new());
        }
        let fail = |e: ort::Error| TtsError::Inference(format!("Piper: {e}"));
        let length = ids.len();
        let input = Tensor::from_array(([1usize, length], ids)).map_err(fail)?;
        let lengths = Tensor::from_array(([1usize], vec![length as i64])).map_err(fail)?;
        let scales = Tensor::from_array(([3usize], self.scales.to_vec())).map_err(fail)?;
        let speaker = Tensor::from_array(([1usize], vec![0i64])).map_err(fail)?;
        let mut session = self.session.lock().map_err(|_| {
            TtsError::Inference("Piper session poisoned by an earlier panic".into())
        })?;
        let outputs = if self.multi_speaker {
            session.run(ort::inputs![input, lengths, scales, speaker])
        } else {
            session.run(ort::inputs![input, lengths, scales])
        }
        .map_err(fail)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
        let mut audio = audio.to_vec();
        normalize_peak(&mut audio);
        Ok(audio)
    }
}
