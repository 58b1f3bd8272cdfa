//! Which models a configuration needs on disk before the server can call itself ready.

use switchboard_core::Config;
use switchboard_core::config::{LlmFallback, LlmProvider, TtsEngine};

/// Names of the manifest models that `config`'s engines load. A user-supplied GGUF (LLM_MODEL_PATH)
/// replaces the shipped LLM; remote LLM providers need none.
pub fn required_models(config: &Config) -> Vec<String> {
    // onnxruntime runs Silero VAD on every call, and Piper and Kokoro.
    let mut names = vec![
        "onnxruntime".to_owned(),
        "silero-vad".to_owned(),
        "all-minilm-l6-v2".to_owned(),
    ];
    names.push(config.stt.model.as_str().to_owned());
    if let Some(spelling) = config.stt.spelling_model
        && spelling != config.stt.model
    {
        names.push(spelling.as_str().to_owned());
    }
    match config.tts.engine {
        TtsEngine::Piper => names.push(format!("piper-{}", config.tts.voice)),
        TtsEngine::Kokoro => names.extend(["kokoro-82m".to_owned(), "kokoro-voices-ja".to_owned()]),
        TtsEngine::Espeak => {}
    }
    let runs_embedded = config.llm.provider == LlmProvider::Embedded
        || config.llm.fallback == LlmFallback::Embedded;
    if runs_embedded && config.llm.model_path.is_none() {
        names.push(config.llm.model.as_str().to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;

    #[test]
    fn the_default_configuration_needs_exactly_the_default_models() {
        let config = Config::from_layers(None, &|_| None).unwrap();
        let mut required = required_models(&config);
        required.sort();
        let manifest = Manifest::builtin().unwrap();
        let mut defaults: Vec<String> = manifest.defaults().map(|m| m.name.clone()).collect();
        defaults.sort();
        assert_eq!(required, defaults);
    }

    #[test]
    fn every_required_model_is_in_the_manifest() {
        let manifest = Manifest::builtin().unwrap();
        for env in [
            ("TTS_MODEL", "kokoro"),
            ("LLM_PROVIDER", "ollama"),
            ("LLM_MODEL", "gemma-3-270m"),
            ("TTS_MODEL", "espeak"),
        ] {
            let config =
                Config::from_layers(None, &|n: &str| (n == env.0).then(|| env.1.to_string()))
                    .unwrap();
            for name in required_models(&config) {
                manifest.model(&name).unwrap();
            }
        }
    }
}
