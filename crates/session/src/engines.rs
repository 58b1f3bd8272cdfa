//! The models a call uses, loaded once per process and shared by every call: speech recognition, the
//! voice and its phrase cache, the language model, the knowledge base, and the settings a call needs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_agent::{AgentConfig, KnowledgeSearch};
use switchboard_audio::NoiseSuppression;
use switchboard_audio::vad::{self, SpeechProbability, VadOptions};
use switchboard_core::Config;
use switchboard_core::config::LlmMasking;
use switchboard_llm::ChatModel;
use switchboard_speech::tts::{self, PhraseCache, TextToSpeech};
use switchboard_speech::whisper::{self, WhisperModel};
use switchboard_speech::{
    ComputeGate, SpeechToText, StreamOptions, StreamingRecognizer, WhisperRecognizer,
};

use crate::machine::TurnOptions;
use crate::phrases::PhraseBook;

/// Why the engines could not be loaded; each names the engine, what failed and what to do. The inner
/// error is part of the message, not a source, so that a report of the whole chain says it once.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Speech recognition.
    #[error("speech recognition: {0}")]
    Stt(switchboard_speech::whisper::SttError),
    /// The voice.
    #[error("voice: {0} (run `switchboard models fetch`)")]
    Tts(switchboard_speech::tts::TtsError),
    /// The language model.
    #[error("language model: {0}")]
    Llm(switchboard_llm::LlmError),
    /// The agent's configuration.
    #[error(transparent)]
    Agent(#[from] switchboard_agent::AgentConfigError),
}

impl From<switchboard_speech::whisper::SttError> for EngineError {
    fn from(e: switchboard_speech::whisper::SttError) -> Self {
        Self::Stt(e)
    }
}

impl From<switchboard_speech::tts::TtsError> for EngineError {
    fn from(e: switchboard_speech::tts::TtsError) -> Self {
        Self::Tts(e)
    }
}

impl From<switchboard_llm::LlmError> for EngineError {
    fn from(e: switchboard_llm::LlmError) -> Self {
        Self::Llm(e)
    }
}

/// Everything a call needs besides its transport and the database.
pub struct Engines {
    /// Streaming speech recognition.
    pub stt: Arc<dyn SpeechToText>,
    /// Recognition for an answer spelled or read digit by digit (WHISPER_SPELLING_MODEL), when it is
    /// another model than `stt`'s.
    pub stt_spelling: Option<Arc<dyn SpeechToText>>,
    /// The agent's voice.
    pub tts: Arc<dyn TextToSpeech>,
    /// Pre-synthesised fixed phrases in that voice.
    pub phrases: Arc<PhraseCache>,
    /// The wording of the fixed phrases.
    pub phrase_book: PhraseBook,
    /// The language model.
    pub model: Arc<dyn ChatModel>,
    /// Whether the model gets tools through its engine's tool API.
    pub native_tools: bool,
    /// The company's documents, when any were added.
    pub knowledge: Option<Arc<dyn KnowledgeSearch>>,
    /// Persona, intents, claim schema.
    pub agent: AgentConfig,
    /// Turn-taking settings.
    pub turns: TurnOptions,
    /// Tell the recogniser when the caller goes quiet (STT_EARLY_FINAL).
    pub early_final: bool,
    /// Quiet after which the caller's words are answered on a draft while the end of their turn is
    /// being confirmed (LLM_READ_AHEAD): the cue silence, or half the full silence without cues. A
    /// shorter pause, between words or digit groups, is too often followed by more words, and a draft
    /// dropped then has kept the cores from the recogniser. `None` when off, as it is without
    /// STT_EARLY_FINAL (which transcribes the words at the pause).
    pub read_ahead_after: Option<Duration>,
    /// Silence after which a turn whose transcript sounds finished ends (VAD_CUE_SILENCE_MS); `None`
    /// when cues are off, or cannot be read (no pass starts at a pause without STT_EARLY_FINAL).
    pub cue_silence: Option<Duration>,
    /// Silence a pause lasts before it ends a turn whose transcript so far sounds unfinished, or is not
    /// known yet (VAD_HOLD_SILENCE_MS); `None` when off, or without STT_EARLY_FINAL.
    pub hold_silence: Option<Duration>,
    /// Where the VAD model lives.
    pub models_dir: PathBuf,
    /// VAD thresholds.
    pub vad: VadOptions,
    /// VAD_SENSITIVITY, for the energy fallback.
    pub vad_sensitivity: u8,
    /// Noise suppression on caller audio.
    pub noise_suppression: NoiseSuppression,
    /// Echo cancellation on caller audio, against the agent's audio as sent (ECHO_CANCELLATION).
    pub echo_cancellation: bool,
    /// Transcript lines are stored with personal data masked (MASK_PII_IN_TRANSCRIPTS).
    pub mask_stored_pii: bool,
    /// Whether calls are recorded (RECORDING).
    pub recording: switchboard_core::config::Recording,
    /// Answering-machine detection on the calls the agent places (AMD).
    pub amd: switchboard_core::config::Amd,
}

/// The configured language model, sent masked text when MASK_PII_FOR_LLM says so; an embedded one takes
/// its turns on `gate`.
fn model_for(config: &Config, gate: Arc<ComputeGate>) -> Result<Arc<dyn ChatModel>, EngineError> {
    let model = switchboard_llm::chat_model(config, Some(gate))?;
    let masked = match config.privacy.mask_pii_for_llm {
        LlmMasking::Always => true,
        LlmMasking::Remote => switchboard_llm::model_is_remote(config),
        LlmMasking::Off => false,
    };
    if masked {
        tracing::info!(
            model = model.name(),
            "text for the language model has personal data masked"
        );
        return Ok(Arc::new(switchboard_agent::MaskedModel::new(model)));
    }
    Ok(model)
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field("voice", self.tts.info())
            .field("model", &self.model.name())
            .field("knowledge", &self.knowledge.is_some())
            .finish_non_exhaustive()
    }
}

impl Engines {
    /// Loads the configured engines (blocking: model files are read and the phrase cache is warmed).
    pub fn load(
        config: &Config,
        knowledge: Option<Arc<dyn KnowledgeSearch>>,
    ) -> Result<Self, EngineError> {
        let agent = AgentConfig::from_config(config)?;
        let recognizer = |model| -> Result<Arc<WhisperRecognizer>, EngineError> {
            let weights = Arc::new(WhisperModel::load(&whisper::model_file(config, model))?);
            Ok(Arc::new(WhisperRecognizer::new(
                weights,
                whisper::options_from_config(config),
            )))
        };
        let stream_options = if config.stt.early_final {
            StreamOptions::for_calls(config.stt.partial_interval, config.audio.vad_min_silence)
        } else {
            StreamOptions {
                partial_interval: config.stt.partial_interval,
                ..StreamOptions::default()
            }
        };
        // One queue for the node's model work: whisper's passes and llama's steps take the cores in turn
        // (each spins its threads while the other has them otherwise).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = config.stt.threads.max(config.llm.threads);
        let gate = ComputeGate::new(
            ComputeGate::slots_for(cores, usize::from(threads)),
            config.stt.preempt_partials,
        );
        let stt = Arc::new(StreamingRecognizer::with_gate(
            recognizer(config.stt.model)?,
            stream_options,
            gate.clone(),
        ));
        // Both recognisers queue on the one gate: a spelled answer's passes take the cores in turn
        // with every other call's.
        let stt_spelling = match config.stt.spelling_model {
            Some(model) if model != config.stt.model => {
                let spelling: Arc<dyn SpeechToText> = Arc::new(StreamingRecognizer::with_gate(
                    recognizer(model)?,
                    stream_options,
                    gate.clone(),
                ));
                Some(spelling)
            }
            _ => None,
        };
        let voice = tts::load(&tts::options_from_config(config))?;
        let phrases = Arc::new(PhraseCache::open(&config.paths.data_dir.join("phrases"))?);
        let native_tools = switchboard_llm::uses_native_tools(config);
        let phrase_book = PhraseBook::new(&agent, native_tools)
            .with_machine_message(config.calls.amd_message.as_deref());
        let synthesized = phrases.warm(voice.as_ref(), &phrase_book.all())?;
        tracing::info!(synthesized, voice = %voice.info().voice, "phrase cache ready");
        let cue_silence = (config.stt.early_final
            && !config.audio.vad_cue_silence.is_zero()
            && config.audio.vad_cue_silence < config.audio.vad_min_silence)
            .then_some(config.audio.vad_cue_silence);
        Ok(Self {
            stt,
            stt_spelling,
            tts: voice,
            phrases,
            phrase_book,
            model: model_for(config, gate)?,
            native_tools,
            knowledge,
            agent,
            turns: TurnOptions::from_config(config),
            early_final: config.stt.early_final,
            read_ahead_after: (config.stt.early_final && config.llm.read_ahead)
                .then(|| cue_silence.unwrap_or(config.audio.vad_min_silence / 2)),
            cue_silence,
            hold_silence: (config.stt.early_final
                && config.audio.vad_hold_silence > config.audio.vad_min_silence)
                .then_some(config.audio.vad_hold_silence),
            models_dir: config.paths.models_dir.clone(),
            vad: vad::options_from_config(&config.audio),
            vad_sensitivity: config.audio.vad_sensitivity.level(),
            noise_suppression: config.audio.noise_suppression,
            echo_cancellation: config.audio.echo_cancellation,
            mask_stored_pii: config.privacy.mask_pii_in_transcripts,
            recording: config.calls.recording,
            amd: config.calls.amd,
        })
    }

    /// A VAD engine for one call: Silero, or the energy detector when its model is missing (logged).
    pub fn vad_engine(&self) -> Box<dyn SpeechProbability> {
        let (engine, fallback) = vad::default_engine(&self.models_dir, self.vad_sensitivity);
        if let Some(reason) = fallback {
            tracing::warn!(%reason, "silero VAD unavailable; this call uses the energy detector");
            metrics::counter!("switchboard_errors_total", "kind" => "vad_fallback").increment(1);
        }
        engine
    }
}
