//! Builds the configured voice (TTS_MODEL, TTS_VOICE, TTS_RATE, KOKORO_VOICES) from the files in
//! MODELS_DIR. A voice that does not exist is an error naming what does, never a silent switch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchboard_core::config::{Config, TtsEngine};

use super::espeak::{ESPEAK_SAMPLE_RATE, Espeak};
use super::{KokoroVoice, PieceEngine, PiperVoice, Synthesizer, TextToSpeech, TtsError, VoiceInfo};

/// What to load.
#[derive(Debug, Clone)]
pub struct TtsOptions {
    /// Engine.
    pub engine: TtsEngine,
    /// Voice within the engine.
    pub voice: String,
    /// Speaking rate, 1.0 natural.
    pub rate: f32,
    /// CPU threads per synthesis.
    pub threads: usize,
    /// Where the model files are.
    pub models_dir: PathBuf,
    /// A Kokoro voices file other than the shipped pack.
    pub kokoro_voices: Option<PathBuf>,
    /// espeak-ng voice for the fallback and the espeak engine's language (`en-us`).
    pub espeak_voice: String,
}

/// The options `config` asks for.
pub fn options_from_config(config: &Config) -> TtsOptions {
    TtsOptions {
        engine: config.tts.engine,
        voice: config.tts.voice.clone(),
        rate: config.tts.rate,
        threads: usize::from(config.tts.threads),
        models_dir: config.paths.models_dir.clone(),
        kokoro_voices: config.tts.kokoro_voices.clone(),
        espeak_voice: espeak_voice_for(&config.tts.language),
    }
}

fn espeak_voice_for(language: &str) -> String {
    match language {
        "en" => "en-us".into(),
        other => other.into(),
    }
}

/// The ONNX Runtime library inside MODELS_DIR (as the manifest installs it).
fn onnx_environment(models_dir: &Path) -> Result<&'static ort::environment::Environment, TtsError> {
    let library = models_dir.join("onnxruntime/libonnxruntime.so.1.31.1");
    switchboard_audio::onnx::ensure_runtime(&library).map_err(TtsError::Load)
}

/// Loads the configured voice, with espeak-ng standing in for pieces a neural voice fails on.
pub fn load(options: &TtsOptions) -> Result<Arc<dyn TextToSpeech>, TtsError> {
    let espeak = Espeak::locate()?;
    let fallback = || -> Box<dyn PieceEngine> {
        Box::new(EspeakVoice {
            espeak: espeak.clone(),
            info: VoiceInfo {
                engine: "espeak",
                voice: options.espeak_voice.clone(),
                sample_rate: ESPEAK_SAMPLE_RATE,
                rate: options.rate,
            },
        })
    };
    let engine: Box<dyn PieceEngine> = match options.engine {
        TtsEngine::Piper => {
            let dir = options.models_dir.join("piper");
            let model = dir.join(format!("{}.onnx", options.voice));
            if !model.is_file() {
                return Err(TtsError::VoiceNotFound {
                    engine: "piper",
                    voice: options.voice.clone(),
                    available: list_piper_voices(&dir),
                    hint: "set TTS_VOICE to one of them, or run `switchboard models fetch` for the default voice".into(),
                });
            }
            let environment = onnx_environment(&options.models_dir)?;
            Box::new(PiperVoice::load(
                environment,
                &model,
                options.rate,
                options.threads,
            )?)
        }
        TtsEngine::Kokoro => {
            let dir = options.models_dir.join("kokoro");
            let model = dir.join("kokoro-v1.0.int8.onnx");
            let vocab = dir.join("vocab.json");
            for (file, package) in [(&model, "kokoro-82m"), (&vocab, "kokoro-voices-ja")] {
                if !file.is_file() {
                    return Err(TtsError::Load(format!(
                        "{} is missing; run `switchboard models fetch {package}`",
                        file.display()
                    )));
                }
            }
            let voices = match &options.kokoro_voices {
                Some(path) if !path.is_file() => {
                    return Err(TtsError::Load(format!(
                        "KOKORO_VOICES points at {}, which does not exist",
                        path.display()
                    )));
                }
                Some(path) => path.clone(),
                None => {
                    let pack = dir.join("voices_ja.npz");
                    if !pack.is_file() {
                        return Err(TtsError::Load(format!(
                            "{} is missing; run `switchboard models fetch kokoro-voices-ja` or set KOKORO_VOICES",
                            pack.display()
                        )));
                    }
                    pack
                }
            };
            let environment = onnx_environment(&options.models_dir)?;
            Box::new(KokoroVoice::load(
                environment,
                &model,
                &vocab,
                &voices,
                &options.voice,
                options.rate,
                options.threads,
            )?)
        }
        TtsEngine::Espeak => {
            let voices = espeak.voices()?;
            if !voices.iter().any(|v| v == &options.voice) {
                return Err(TtsError::VoiceNotFound {
                    engine: "espeak",
                    voice: options.voice.clone(),
                    available: summarize(&voices),
                    hint: "set TTS_VOICE to an espeak-ng voice such as en-us".into(),
                });
            }
            let voice = EspeakVoice {
                espeak,
                info: VoiceInfo {
                    engine: "espeak",
                    voice: options.voice.clone(),
                    sample_rate: ESPEAK_SAMPLE_RATE,
                    rate: options.rate,
                },
            };
            return Ok(Arc::new(Synthesizer::new(Box::new(voice), None)));
        }
    };
    Ok(Arc::new(Synthesizer::new(engine, Some(fallback()))))
}

fn list_piper_voices(dir: &Path) -> String {
    let mut voices: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".onnx"))
                .map(str::to_owned)
        })
        .collect();
    voices.sort();
    if voices.is_empty() {
        format!("none in {}", dir.display())
    } else {
        voices.join(", ")
    }
}

fn summarize(voices: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut text = voices
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if voices.len() > SHOWN {
        text.push_str(&format!(
            " and {} more (`espeak-ng --voices`)",
            voices.len() - SHOWN
        ));
    }
    text
}

/// espeak-ng's own voice.
struct EspeakVoice {
    espeak: Espeak,
    info: VoiceInfo,
}

impl PieceEngine for EspeakVoice {
    fn info(&self) -> &VoiceInfo {
        &self.info
    }

    fn speak_piece(&self, piece: &str) -> Result<Vec<f32>, TtsError> {
        self.espeak.speak(&self.info.voice, piece, self.info.rate)
    }
}
