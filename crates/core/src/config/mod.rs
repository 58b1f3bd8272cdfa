//! Configuration: defaults < `config.yaml` < environment, validated once at start-up into typed values.
//!
//! A bad value stops start-up with a message naming the environment variable, the `config.yaml` key,
//! the value and what is allowed. Code past start-up only sees the typed [`Config`].

mod auth;
mod choice;
mod example;
mod layers;
mod reader;
mod server;
pub mod settings;
mod sources;
mod storage;
mod telephony;

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::secret::{REDACTED, Secret};
pub use auth::{AuthConfig, OidcConfig};
pub use choice::{
    Amd, ComputeType, Device, Environment, LlmFallback, LlmMasking, LlmModel, LlmProvider,
    LogFormat, LogLevel, NoiseSuppression, Recording, SrtpPolicy, SttModel, TelephonyProvider,
    TlsVersion, TtsEngine,
};
pub use example::{example_env, example_yaml};
pub use layers::{Resolved, ResolvedSettings, Source};
use reader::{Reader, is_host};
pub use server::{ServerConfig, TlsConfig};
use settings::Setting;
pub use sources::{Sources, SourcesError};
pub use storage::{DatabaseConfig, DatabaseTarget, RedisConfig, SentinelConfig};
pub use telephony::{
    AriConfig, DEFAULT_AUDIOSOCKET_PORT, DEFAULT_SIP_PORT, InboundAuth, SipConfig, TelephonyConfig,
    TwilioConfig,
};

/// A configuration that cannot be used, explained for the operator who wrote it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file named by `--config` / `CONFIG_FILE` could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid YAML or not shaped like our sections.
    #[error("config file {}: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column where YAML reports them.
        message: String,
    },
    /// A key we do not know: most often a typo.
    #[error("config file {}: unknown setting '{key}'{}", path.display(), hint.map(|h| format!(" (did you mean '{h}'?)")).unwrap_or_default())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The dotted key as written.
        key: String,
        /// The closest known key.
        hint: Option<&'static str>,
    },
    /// A value outside what the setting allows.
    #[error(
        "invalid setting {env} (config key {key}) = {value:?} from {origin}: expected {allowed}"
    )]
    Invalid {
        /// Environment variable name.
        env: &'static str,
        /// `config.yaml` key.
        key: &'static str,
        /// The value as given ([`REDACTED`] for secrets).
        value: String,
        /// Which layer it came from.
        origin: Source,
        /// What the setting accepts.
        allowed: &'static str,
    },
    /// Settings that are each valid but do not work together.
    #[error("{0}")]
    Inconsistent(String),
}

/// The validated configuration of one Switchboard process.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Deployment stage.
    pub environment: Environment,
    /// Logging.
    pub log: LogConfig,
    /// Where state and models live.
    pub paths: PathsConfig,
    /// Phone network adapters.
    pub telephony: TelephonyConfig,
    /// Speech recognition.
    pub stt: SttConfig,
    /// Speech synthesis.
    pub tts: TtsConfig,
    /// Language model.
    pub llm: LlmConfig,
    /// config.yaml's `agent:` section (persona, claim schema, intents), read by the agent crate.
    pub agent: Option<serde_yaml_ng::Value>,
    /// Per-call limits.
    pub calls: CallsConfig,
    /// API authentication.
    pub auth: AuthConfig,
    /// Audio front end.
    pub audio: AudioConfig,
    /// System of record.
    pub database: DatabaseConfig,
    /// Shared state between nodes; `None` keeps live state in process.
    pub redis: Option<RedisConfig>,
    /// Metrics and tracing.
    pub observability: ObservabilityConfig,
    /// How long callers' data is kept.
    pub privacy: PrivacyConfig,
    /// The raw values and their sources, for `config show`.
    pub resolved: ResolvedSettings,
}

/// Logging settings.
#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    /// Verbosity.
    pub level: LogLevel,
    /// Line format.
    pub format: LogFormat,
}

/// Filesystem locations.
#[derive(Debug, Clone)]
pub struct PathsConfig {
    /// State directory (embedded database, phrase cache).
    pub data_dir: PathBuf,
    /// Model files.
    pub models_dir: PathBuf,
}

/// Speech recognition settings.
#[derive(Debug, Clone)]
pub struct SttConfig {
    /// Model.
    pub model: SttModel,
    /// Model for answers spelled or read digit by digit (WHISPER_SPELLING_MODEL); `None`: `model`.
    pub spelling_model: Option<SttModel>,
    /// Device.
    pub device: Device,
    /// Numeric precision.
    pub compute_type: ComputeType,
    /// CPU threads per transcription.
    pub threads: u16,
    /// Caller language (ISO 639-1); `None` means detect.
    pub language: Option<String>,
    /// New audio between partial transcripts.
    pub partial_interval: Duration,
    /// The encoder's shortest window (WHISPER_WINDOW_MS).
    pub window: Duration,
    /// Start the final pass when the caller goes quiet (STT_EARLY_FINAL).
    pub early_final: bool,
    /// Stop running partials for a pass someone waits for (STT_PREEMPT_PARTIALS).
    pub preempt_partials: bool,
}

/// Speech synthesis settings.
#[derive(Debug, Clone)]
pub struct TtsConfig {
    /// Engine.
    pub engine: TtsEngine,
    /// Voice name within the engine.
    pub voice: String,
    /// Conversation language (ISO 639-1).
    pub language: String,
    /// Speaking rate, 1.0 is the voice's natural speed.
    pub rate: f32,
    /// CPU threads per synthesis.
    pub threads: u16,
    /// A Kokoro voices file given by the user.
    pub kokoro_voices: Option<PathBuf>,
}

/// Language model settings.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Which engine answers.
    pub provider: LlmProvider,
    /// A user-supplied GGUF for the embedded engine.
    pub model_path: Option<PathBuf>,
    /// Ollama server.
    pub ollama_host: Url,
    /// Ollama model tag.
    pub ollama_model: String,
    /// The shipped GGUF the embedded engine runs when `model_path` is unset.
    pub model: LlmModel,
    /// Embedded engine threads.
    pub threads: u16,
    /// Embedded engine context, tokens.
    pub context_tokens: u32,
    /// Engine behind the configured one.
    pub fallback: LlmFallback,
    /// Answer a turn on a draft while its end is being confirmed (LLM_READ_AHEAD).
    pub read_ahead: bool,
    /// OpenAI-compatible server (…/v1).
    pub openai_base_url: Url,
    /// Model name for it.
    pub openai_model: String,
    /// Its API key.
    pub openai_api_key: Option<Secret>,
}

/// Per-call limits.
#[derive(Debug, Clone)]
pub struct CallsConfig {
    /// Calls carried at once.
    pub max_concurrent: u32,
    /// Turns before a polite hang-up.
    pub max_conversation_turns: u32,
    /// Call length before a polite hang-up.
    pub max_duration: Duration,
    /// Longest wait for an answer.
    pub response_timeout: Duration,
    /// Caller silence before a reprompt.
    pub silence_reprompt: Duration,
    /// Reprompts before a polite hang-up.
    pub silence_max_reprompts: u32,
    /// Caller speech over the agent that interrupts it.
    pub barge_in_min_speech: Duration,
    /// Wait for first audio before a filler phrase.
    pub filler_after: Duration,
    /// Earlier calls' summaries of the same caller number given to the agent (CALLER_MEMORY).
    pub caller_memory: bool,
    /// Whether calls are recorded (RECORDING).
    pub recording: Recording,
    /// The key that, pressed alone, hands the caller to a person (KEYPAD_HANDOVER_KEY).
    pub keypad_handover_key: Option<char>,
    /// Keys typed count as entered this long after the last one (KEYPAD_PAUSE_MS).
    pub keypad_pause: Duration,
    /// Answering-machine detection on the calls the agent places (AMD).
    pub amd: Amd,
    /// What the agent leaves on an answering machine (AMD_MESSAGE); `None`: the persona's default.
    pub amd_message: Option<String>,
}

/// How sensitive voice activity detection is; the audio crate maps each level to thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VadSensitivity(u8);

impl VadSensitivity {
    /// The level, 0 (least sensitive) to 3 (most).
    pub fn level(self) -> u8 {
        self.0
    }
}

/// Audio front-end settings.
#[derive(Debug, Clone, Copy)]
pub struct AudioConfig {
    /// Upper bound on queued audio per direction.
    pub buffer_size: Duration,
    /// VAD sensitivity.
    pub vad_sensitivity: VadSensitivity,
    /// Noise suppression engine.
    pub noise_suppression: NoiseSuppression,
    /// Echo cancellation against the agent's audio.
    pub echo_cancellation: bool,
    /// Shortest speech that counts.
    pub vad_min_speech: Duration,
    /// Shortest silence that ends speech.
    pub vad_min_silence: Duration,
    /// Shortest silence that ends speech whose transcript sounds finished; zero: no such cue.
    pub vad_cue_silence: Duration,
    /// Silence that ends speech whose transcript so far sounds unfinished; zero or not above
    /// `vad_min_silence`: no hold.
    pub vad_hold_silence: Duration,
}

/// How long callers' data is kept.
#[derive(Debug, Clone, Copy)]
pub struct PrivacyConfig {
    /// Days a call's data is kept after it ends; `None`: until erased.
    pub retention_days: Option<u32>,
    /// Days audit entries are kept; `None`: always.
    pub audit_retention_days: Option<u32>,
    /// Store transcripts and syntheses with personal data masked.
    pub mask_pii_in_transcripts: bool,
    /// When text for the language model is masked.
    pub mask_pii_for_llm: LlmMasking,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            retention_days: None,
            audit_retention_days: None,
            mask_pii_in_transcripts: true,
            mask_pii_for_llm: LlmMasking::Remote,
        }
    }
}

/// Observability settings.
#[derive(Debug, Clone)]
pub struct ObservabilityConfig {
    /// Serve /metrics.
    pub enable_metrics: bool,
    /// Where /metrics is served on its own; `None`: beside the API.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Export traces.
    pub enable_tracing: bool,
    /// OTLP endpoint.
    pub otlp_endpoint: Option<Url>,
}

impl Config {
    /// Loads the configuration of this process: the file from `explicit_file`, else `CONFIG_FILE`,
    /// else `./config.yaml` when it exists; then the process environment.
    pub fn load(explicit_file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let file = match explicit_file {
            Some(path) => Some(path.to_owned()),
            None => match env("CONFIG_FILE").filter(|v| !v.is_empty()) {
                Some(path) => Some(PathBuf::from(path)),
                None => Some(PathBuf::from("config.yaml")).filter(|p| p.is_file()),
            },
        };
        let text = match &file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let file = file.as_deref().zip(text.as_deref());
        Self::from_layers(file, &env)
    }

    /// Builds a configuration from a config file's text and an environment lookup; no I/O, for tests.
    pub fn from_layers(
        file: Option<(&Path, &str)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let resolved = ResolvedSettings::resolve(file, env)?;
        let agent = match file {
            Some((path, text)) => layers::agent_section(path, text)?,
            None => None,
        };
        let r = Reader {
            resolved: &resolved,
        };
        use settings::*;

        let data_dir = match r.text(&DATA_DIR) {
            Some(dir) => PathBuf::from(dir),
            None => default_data_dir(env),
        };
        let models_dir = r
            .text(&MODELS_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("models"));

        let server = server::server_config(&r)?;
        let telephony = telephony::telephony_config(&r)?;
        let database = storage::database_config(&r, &data_dir)?;
        let redis = storage::redis_config(&r)?;
        let config = Config {
            server,
            environment: r.choice(&ENVIRONMENT)?,
            log: LogConfig {
                level: r.choice(&LOG_LEVEL)?,
                format: r.choice(&LOG_FORMAT)?,
            },
            paths: PathsConfig {
                data_dir,
                models_dir,
            },
            telephony,
            stt: SttConfig {
                model: r.choice(&WHISPER_MODEL)?,
                spelling_model: match r.required_text(&WHISPER_SPELLING_MODEL)?.trim() {
                    none if none.eq_ignore_ascii_case("none") => None,
                    _ => Some(r.choice(&WHISPER_SPELLING_MODEL)?),
                },
                device: r.choice(&WHISPER_DEVICE)?,
                compute_type: r.choice(&WHISPER_COMPUTE_TYPE)?,
                threads: r.int(&WHISPER_THREADS, 1..=64)? as u16,
                language: r.checked(&WHISPER_LANGUAGE, is_language_code)?,
                partial_interval: Duration::from_millis(
                    r.int(&STT_PARTIAL_INTERVAL_MS, 100..=10_000)? as u64,
                ),
                early_final: r.bool(&STT_EARLY_FINAL)?,
                preempt_partials: r.bool(&STT_PREEMPT_PARTIALS)?,
                window: Duration::from_millis(r.int(&WHISPER_WINDOW_MS, 5_000..=30_000)? as u64),
            },
            tts: TtsConfig {
                engine: r.choice(&TTS_MODEL)?,
                voice: r.required_text(&TTS_VOICE)?,
                language: r
                    .checked(&TTS_LANGUAGE, is_language_code)?
                    .unwrap_or_else(|| "en".into()),
                rate: r.int(&TTS_RATE, 50..=200)? as f32 / 100.0,
                threads: r.int(&TTS_THREADS, 1..=64)? as u16,
                kokoro_voices: r.text(&KOKORO_VOICES).map(PathBuf::from),
            },
            llm: LlmConfig {
                provider: r.choice(&LLM_PROVIDER)?,
                model_path: r.text(&LLM_MODEL_PATH).map(PathBuf::from),
                ollama_host: r.required_url(&OLLAMA_HOST)?,
                ollama_model: r.required_text(&OLLAMA_MODEL)?,
                model: r.choice(&LLM_MODEL)?,
                threads: r.int(&LLM_THREADS, 1..=64)? as u16,
                context_tokens: r.int(&LLM_CONTEXT_TOKENS, 512..=131_072)? as u32,
                fallback: r.choice(&LLM_FALLBACK)?,
                read_ahead: r.bool(&LLM_READ_AHEAD)?,
                openai_base_url: r.required_url(&OPENAI_BASE_URL)?,
                openai_model: r.required_text(&OPENAI_MODEL)?,
                openai_api_key: r.text(&OPENAI_API_KEY).map(Secret::new),
            },
            agent,
            calls: CallsConfig {
                max_concurrent: r.int(&MAX_CONCURRENT_CALLS, 1..=100_000)? as u32,
                max_conversation_turns: r.int(&MAX_CONVERSATION_TURNS, 1..=10_000)? as u32,
                max_duration: Duration::from_secs(r.int(&MAX_CALL_DURATION_S, 10..=86_400)? as u64),
                response_timeout: Duration::from_millis(
                    r.int(&RESPONSE_TIMEOUT_MS, 100..=600_000)? as u64,
                ),
                silence_reprompt: Duration::from_millis(
                    r.int(&SILENCE_REPROMPT_MS, 1_000..=600_000)? as u64,
                ),
                silence_max_reprompts: r.int(&SILENCE_MAX_REPROMPTS, 0..=20)? as u32,
                barge_in_min_speech: Duration::from_millis(
                    r.int(&BARGE_IN_MIN_SPEECH_MS, 100..=5_000)? as u64,
                ),
                filler_after: Duration::from_millis(r.int(&FILLER_AFTER_MS, 100..=600_000)? as u64),
                caller_memory: r.bool(&CALLER_MEMORY)?,
                recording: r.choice(&RECORDING)?,
                keypad_handover_key: r.handover_key()?,
                keypad_pause: Duration::from_millis(r.int(&KEYPAD_PAUSE_MS, 500..=20_000)? as u64),
                amd: r.choice(&AMD)?,
                amd_message: r.text(&AMD_MESSAGE).filter(|m| !m.trim().is_empty()),
            },
            auth: auth::auth_config(&r)?,
            audio: AudioConfig {
                buffer_size: Duration::from_millis(
                    r.int(&AUDIO_BUFFER_SIZE_MS, 100..=60_000)? as u64
                ),
                vad_sensitivity: VadSensitivity(r.int(&VAD_SENSITIVITY, 0..=3)? as u8),
                noise_suppression: r.choice(&NOISE_SUPPRESSION)?,
                echo_cancellation: r.bool(&ECHO_CANCELLATION)?,
                vad_min_speech: Duration::from_millis(r.int(&VAD_MIN_SPEECH_MS, 32..=2_000)? as u64),
                vad_min_silence: Duration::from_millis(
                    r.int(&VAD_MIN_SILENCE_MS, 64..=5_000)? as u64
                ),
                vad_cue_silence: Duration::from_millis(
                    r.int(&VAD_CUE_SILENCE_MS, 0..=5_000)? as u64
                ),
                vad_hold_silence: Duration::from_millis(
                    r.int(&VAD_HOLD_SILENCE_MS, 0..=5_000)? as u64
                ),
            },
            database,
            redis,
            privacy: PrivacyConfig {
                retention_days: r.int_opt(&RETENTION_DAYS, 1..=36_500)?.map(|d| d as u32),
                audit_retention_days: r
                    .int_opt(&AUDIT_RETENTION_DAYS, 1..=36_500)?
                    .map(|d| d as u32),
                mask_pii_in_transcripts: r.bool(&MASK_PII_IN_TRANSCRIPTS)?,
                mask_pii_for_llm: r.choice(&MASK_PII_FOR_LLM)?,
            },
            observability: ObservabilityConfig {
                enable_metrics: r.bool(&ENABLE_METRICS)?,
                metrics_address: match r.text(&METRICS_ADDRESS) {
                    Some(text) => Some(text.parse().map_err(|_| r.invalid(&METRICS_ADDRESS))?),
                    None => None,
                },
                enable_tracing: r.bool(&ENABLE_TRACING)?,
                otlp_endpoint: r.url(&OTEL_EXPORTER_OTLP_ENDPOINT)?,
            },
            resolved: resolved.clone(),
        };
        config.check_consistency()?;
        Ok(config)
    }

    /// Rules that span several settings: each value is fine alone, the combination cannot work.
    fn check_consistency(&self) -> Result<(), ConfigError> {
        if self.telephony.provider == TelephonyProvider::Twilio {
            let t = &self.telephony.twilio;
            let mut missing = Vec::new();
            if t.account_sid.is_none() {
                missing.push("TWILIO_ACCOUNT_SID");
            }
            if t.auth_token.is_none() {
                missing.push("TWILIO_AUTH_TOKEN");
            }
            if self.server.public_url.is_none() {
                missing.push("PUBLIC_URL");
            }
            if !missing.is_empty() {
                return Err(ConfigError::Inconsistent(format!(
                    "TELEPHONY_PROVIDER=twilio also needs {}: Twilio must reach this server and sign its requests",
                    missing.join(", ")
                )));
            }
        }
        if self.observability.enable_tracing && self.observability.otlp_endpoint.is_none() {
            return Err(ConfigError::Inconsistent(
                "ENABLE_TRACING=true needs OTEL_EXPORTER_OTLP_ENDPOINT (where to send traces)"
                    .into(),
            ));
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < 32
        {
            return Err(ConfigError::Inconsistent(
                "JWT_SECRET is too short: use at least 32 random characters (e.g. `openssl rand -hex 32`)"
                    .into(),
            ));
        }
        if self.calls.recording != Recording::Off && self.database.data_key_file.is_none() {
            return Err(ConfigError::Inconsistent(format!(
                "RECORDING={} needs DATA_KEY_FILE: recordings are only kept sealed (make a key with `switchboard keys data-key`)",
                self.calls.recording
            )));
        }
        if let Some(path) = &self.llm.model_path
            && path.extension().and_then(|e| e.to_str()) != Some("gguf")
        {
            return Err(ConfigError::Inconsistent(format!(
                "LLM_MODEL_PATH={} must name a .gguf file",
                path.display()
            )));
        }
        Ok(())
    }

    /// Every setting as `(setting, shown value, source)`, secrets redacted: what `config show` prints.
    pub fn effective(&self) -> Vec<(&'static Setting, Option<String>, Option<Source>)> {
        settings::ALL
            .iter()
            .map(|s| match self.resolved.get(s) {
                Some(v) => {
                    let shown = if s.secret {
                        REDACTED.to_owned()
                    } else {
                        v.text.clone()
                    };
                    (s, Some(shown), Some(v.source.clone()))
                }
                None => (s, derived_value(self, s), None),
            })
            .collect()
    }
}

/// Values computed from others when unset (paths), so `config show` tells the whole truth.
fn derived_value(config: &Config, s: &Setting) -> Option<String> {
    match s.key {
        k if k == settings::DATA_DIR.key => Some(config.paths.data_dir.display().to_string()),
        k if k == settings::MODELS_DIR.key => Some(config.paths.models_dir.display().to_string()),
        _ => None,
    }
}

fn default_data_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(xdg) = env("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("switchboard");
    }
    match env("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/switchboard"),
        None => PathBuf::from("data"),
    }
}

fn is_language_code(s: &str) -> bool {
    s.len() == 2 && s.chars().all(|c| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests;
