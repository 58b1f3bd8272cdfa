//! Whisper on whisper.cpp: the converter from the shipped CTranslate2 weights to ggml, and the recogniser.

pub mod convert;
pub mod ct2;
pub mod mel;
mod recognizer;
mod repeats;
pub mod vocab;

pub use recognizer::{MAX_AUDIO, Segment, SttError, TranscribeOptions, Transcript, WhisperModel};

use std::path::PathBuf;

use switchboard_core::Config;
use switchboard_core::config::{ComputeType, SttModel};

use convert::WeightType;

/// Where `switchboard models fetch` puts the converted model WHISPER_MODEL names, in the weight type
/// WHISPER_COMPUTE_TYPE asks for.
pub fn model_path(config: &Config) -> PathBuf {
    model_file(config, config.stt.model)
}

/// Where `model`'s converted weights are, in the precision WHISPER_COMPUTE_TYPE selects.
pub fn model_file(config: &Config, model: SttModel) -> PathBuf {
    // The model's directory is named as the setting names the model (the manifest's model name).
    let dir = model.as_str();
    let file = match weight_type(config.stt.compute_type) {
        WeightType::F16 => "ggml-model.bin",
        WeightType::Q8_0 => "ggml-model-q8_0.bin",
    };
    config.paths.models_dir.join(dir).join(file)
}

/// The converted weights WHISPER_COMPUTE_TYPE selects. `default` is the shipped f16: on the 2-core
/// AMD EPYC measured, 8-bit weights gave the same word error rate and were 5–10 % slower (whisper-tiny's
/// matrices are small enough that f16 stays in cache; docs/benchmarks.md, speech recognition).
pub fn weight_type(compute: ComputeType) -> WeightType {
    match compute {
        ComputeType::Default | ComputeType::Float16 => WeightType::F16,
        ComputeType::Int8 => WeightType::Q8_0,
    }
}

/// Transcription options from WHISPER_THREADS and WHISPER_LANGUAGE. Without WHISPER_LANGUAGE the call's
/// language (TTS_LANGUAGE) is used: detecting it per utterance costs a pass and, on a word or two of
/// telephone audio, guesses wrong (seen: Albanian and Lingala for "hello").
pub fn options_from_config(config: &Config) -> TranscribeOptions {
    TranscribeOptions {
        language: config
            .stt
            .language
            .clone()
            .or_else(|| Some(config.tts.language.clone())),
        threads: usize::from(config.stt.threads),
        min_window: (config.stt.window < std::time::Duration::from_secs(30))
            .then_some(config.stt.window),
    }
}

/// Why a model could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The input is not what the converter understands.
    #[error("cannot convert: {0}")]
    Format(String),
}
