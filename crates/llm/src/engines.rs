//! The chat model a configuration asks for: LLM_PROVIDER's engine guarded by RESPONSE_TIMEOUT_MS, retries
//! and a circuit breaker, with the embedded model behind it when LLM_FALLBACK says so.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_core::Config;
use switchboard_core::compute::ComputeGate;
use switchboard_core::config::{LlmFallback, LlmProvider};

use crate::embedded::{EmbeddedLlama, EmbeddedOptions};
use crate::{
    ChatModel, CircuitBreaker, FallbackChain, LlmError, OllamaChat, OpenAiChat, Resilient,
    RetryPolicy,
};

/// How long connecting to a model server may take before the engine counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Failures in a row that open a server engine's circuit, and how long it stays open.
const BREAKER_THRESHOLD: u32 = 3;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

/// The GGUF the embedded engine runs: LLM_MODEL_PATH, else the shipped LLM_MODEL in MODELS_DIR.
pub fn embedded_model_path(config: &Config) -> PathBuf {
    config
        .llm
        .model_path
        .clone()
        .unwrap_or_else(|| config.paths.models_dir.join(config.llm.model.file()))
}

/// Loads the embedded engine of `config`, its steps queued on `gate` when given. Blocking.
pub fn load_embedded(
    config: &Config,
    gate: Option<Arc<ComputeGate>>,
) -> Result<EmbeddedLlama, LlmError> {
    let path = embedded_model_path(config);
    if !path.is_file() {
        return Err(LlmError::Engine {
            engine: "embedded".into(),
            detail: format!(
                "{} does not exist; run `switchboard models fetch {}` or set LLM_MODEL_PATH to a .gguf file",
                path.display(),
                config.llm.model
            ),
        });
    }
    load_gguf(&path, config, gate)
}

/// Loads any GGUF with the embedded engine settings of `config` (threads, context), its steps queued on
/// `gate` when given. Blocking.
pub fn load_gguf(
    path: &std::path::Path,
    config: &Config,
    gate: Option<Arc<ComputeGate>>,
) -> Result<EmbeddedLlama, LlmError> {
    EmbeddedLlama::load(
        path,
        EmbeddedOptions {
            context_tokens: config.llm.context_tokens,
            threads: config.llm.threads,
            gate,
            ..EmbeddedOptions::default()
        },
    )
}

/// The configured Ollama server's engine, unguarded.
pub fn ollama_chat(config: &Config) -> Result<OllamaChat, LlmError> {
    OllamaChat::new(
        config.llm.ollama_host.as_str(),
        &config.llm.ollama_model,
        CONNECT_TIMEOUT,
    )
}

/// The configured OpenAI-compatible server's engine, unguarded.
pub fn openai_chat(config: &Config) -> Result<OpenAiChat, LlmError> {
    OpenAiChat::new(
        config.llm.openai_base_url.as_str(),
        &config.llm.openai_model,
        config
            .llm
            .openai_api_key
            .as_ref()
            .map(|k| k.expose().to_owned()),
        CONNECT_TIMEOUT,
    )
}

/// The configured chat model, ready to serve calls. Blocking (loads the embedded model when used). An
/// embedded model queues its steps on `gate`, the node's queue for model work, when given.
pub fn chat_model(
    config: &Config,
    gate: Option<Arc<ComputeGate>>,
) -> Result<Arc<dyn ChatModel>, LlmError> {
    let guarded = |engine: Arc<dyn ChatModel>| -> Arc<dyn ChatModel> {
        Arc::new(Resilient::new(
            engine,
            config.calls.response_timeout,
            RetryPolicy::default(),
            CircuitBreaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN),
        ))
    };
    let primary: Arc<dyn ChatModel> = match config.llm.provider {
        LlmProvider::Embedded => return Ok(Arc::new(load_embedded(config, gate)?)),
        LlmProvider::Ollama => guarded(Arc::new(ollama_chat(config)?)),
        LlmProvider::Openai => guarded(Arc::new(openai_chat(config)?)),
    };
    match config.llm.fallback {
        LlmFallback::None => Ok(primary),
        LlmFallback::Embedded => {
            let embedded: Arc<dyn ChatModel> = Arc::new(load_embedded(config, gate)?);
            Ok(Arc::new(FallbackChain::new(vec![primary, embedded])))
        }
    }
}

/// Whether the language model answering first runs on another host: an Ollama or OpenAI-compatible
/// server whose URL names neither `localhost` nor a loopback address.
pub fn model_is_remote(config: &Config) -> bool {
    let url = match config.llm.provider {
        LlmProvider::Embedded => return false,
        LlmProvider::Ollama => &config.llm.ollama_host,
        LlmProvider::Openai => &config.llm.openai_base_url,
    };
    match url.host() {
        Some(url::Host::Domain(name)) => !name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        None => true,
    }
}

/// Whether the engine a configuration answers with first uses a tool API well enough to be offered
/// the tools directly (server models); small embedded models get the claim through extraction only.
pub fn uses_native_tools(config: &Config) -> bool {
    config.llm.provider != LlmProvider::Embedded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_layers(None, &move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_model_on_this_machine_is_local_and_one_elsewhere_remote() {
        assert!(!model_is_remote(&config(&[])), "embedded");
        for (provider, key, url, remote) in [
            ("ollama", "OLLAMA_HOST", "http://localhost:11434", false),
            ("ollama", "OLLAMA_HOST", "http://127.0.0.1:11434", false),
            (
                "ollama",
                "OLLAMA_HOST",
                "http://gpu-box.internal:11434",
                true,
            ),
            ("openai", "OPENAI_BASE_URL", "http://[::1]:8080/v1", false),
            ("openai", "OPENAI_BASE_URL", "https://10.0.0.7/v1", true),
        ] {
            let c = config(&[("LLM_PROVIDER", provider), (key, url)]);
            assert_eq!(model_is_remote(&c), remote, "{url}");
        }
    }
}
