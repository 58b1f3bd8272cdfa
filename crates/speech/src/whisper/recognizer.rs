//! Whisper on whisper.cpp: one loaded model per process, shared by every call; each transcription gets a
//! state of its own (the model is read-only, so calls never contend for it).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::repeats::collapse_repeats;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// Why recognition failed.
#[derive(Debug, thiserror::Error)]
pub enum SttError {
    /// The model file could not be loaded.
    #[error(
        "cannot load the Whisper model {path}: {detail}; run `switchboard models fetch` (it fetches the model WHISPER_MODEL names)"
    )]
    Load {
        /// The file.
        path: String,
        /// whisper.cpp's reason.
        detail: String,
    },
    /// whisper.cpp failed on this audio.
    #[error("transcription failed: {0}")]
    Inference(String),
    /// A partial pass stopped early so that a pass someone waits for could run.
    #[error("the pass was stopped for a more urgent one")]
    Stopped,
    /// Longer than one call of the recogniser is allowed to take in memory.
    #[error("audio of {seconds:.0} s is longer than the {max:.0} s limit")]
    TooLong {
        /// Given.
        seconds: f64,
        /// Limit.
        max: f64,
    },
}

/// How to run one transcription.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// ISO 639-1 language; `None` lets a multilingual model detect it (English-only models are always `en`).
    pub language: Option<String>,
    /// CPU threads for this transcription.
    pub threads: usize,
    /// The shortest window the encoder looks at; a longer utterance gets a window that covers it.
    /// `None` is Whisper's full 30 s window whatever the audio's length. The encoder's cost grows with its
    /// window, and a caller's turn lasts seconds: on 40 real prompts (449 words) with tiny.en, a 15 s
    /// window kept WER at 2.4 % (2.2 % with 30 s) at 2.5× the speed; 10 s gave 3.1 % at 3×; a window
    /// fitted to the audio (about 1 s) 29 %: the model was trained on 30 s windows and degrades only when
    /// the window gets very short.
    pub min_window: Option<Duration>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: Some("en".into()),
            threads: 2,
            min_window: None,
        }
    }
}

/// A stretch of recognised text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    /// Start, seconds from the start of the audio.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Text.
    pub text: String,
    /// Mean token probability, 0–1.
    pub confidence: f32,
}

/// The result of a transcription.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Transcript {
    /// All segments' text, trimmed.
    pub text: String,
    /// Segments with timing and confidence.
    pub segments: Vec<Segment>,
    /// Audio length, seconds.
    pub audio_seconds: f64,
    /// Language spoken (ISO 639-1): the one asked for, or what a multilingual model detected.
    pub language: Option<String>,
    /// Wall time spent.
    #[serde(serialize_with = "as_seconds")]
    pub elapsed: Duration,
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Transcript {
    /// Processing time over audio time.
    pub fn real_time_factor(&self) -> f64 {
        self.elapsed.as_secs_f64() / self.audio_seconds.max(1e-9)
    }
}

/// Longest audio one transcription takes: a caller's turn, or a file to transcribe, never an hour.
pub const MAX_AUDIO: Duration = Duration::from_secs(600);
/// Whisper's encoder positions per second of audio (one per 20 ms).
const CONTEXT_PER_SECOND: f64 = 50.0;

/// Tokens one segment may take, for audio of this length: room for a fast talker (about five tokens a
/// second) three times over, and never less than 48. A decoder stuck in a loop stops there instead of
/// at whisper.cpp's 220 (each token is a decoder step: about 450 ms of a 2-core pass, seen on noise).
fn token_budget(audio_seconds: f64) -> i32 {
    const TOKENS_PER_SECOND: f64 = 16.0;
    const LEAST: f64 = 48.0;
    (LEAST + audio_seconds * TOKENS_PER_SECOND)
        .ceil()
        .min(220.0) as i32
}

/// Idle decoding states kept for reuse; more concurrent passes than this allocate and free their own.
const IDLE_STATES: usize = 4;

/// A loaded Whisper model.
pub struct WhisperModel {
    context: WhisperContext,
    /// Decoding states of finished passes. A state holds whisper.cpp's compute buffers and KV caches
    /// (tens of MB for tiny); allocating one per pass cost every caller turn that time again.
    idle_states: std::sync::Mutex<Vec<whisper_rs::WhisperState>>,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel").finish_non_exhaustive()
    }
}

impl WhisperModel {
    /// Loads a ggml model (as `switchboard models fetch` converts it).
    pub fn load(path: &Path) -> Result<Self, SttError> {
        // whisper.cpp otherwise prints its loader's chatter to stderr; route it into `tracing` instead.
        static LOGGING: std::sync::Once = std::sync::Once::new();
        LOGGING.call_once(whisper_rs::install_logging_hooks);
        let load = |detail: String| SttError::Load {
            path: path.display().to_string(),
            detail,
        };
        if !path.is_file() {
            return Err(load("no such file".into()));
        }
        let path_str = path
            .to_str()
            .ok_or_else(|| load("path is not UTF-8".into()))?;
        let context =
            WhisperContext::new_with_params(path_str, WhisperContextParameters::default())
                .map_err(|e| load(e.to_string()))?;
        Ok(Self {
            context,
            idle_states: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Whether the model knows more languages than English (the shipped tiny is English-only).
    pub fn is_multilingual(&self) -> bool {
        self.context.is_multilingual()
    }

    /// Transcribes 16 kHz mono samples in [-1, 1).
    pub fn transcribe(
        &self,
        audio: &[f32],
        options: &TranscribeOptions,
    ) -> Result<Transcript, SttError> {
        self.transcribe_unless_stopped(audio, options, None)
    }

    /// Transcribes like [`WhisperModel::transcribe`]; once `stop` is set, whisper.cpp gives up between
    /// steps of its graphs and the result is [`SttError::Stopped`].
    pub fn transcribe_unless_stopped(
        &self,
        audio: &[f32],
        options: &TranscribeOptions,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<Transcript, SttError> {
        let audio_seconds = audio.len() as f64 / 16_000.0;
        if audio_seconds > MAX_AUDIO.as_secs_f64() {
            return Err(SttError::TooLong {
                seconds: audio_seconds,
                max: MAX_AUDIO.as_secs_f64(),
            });
        }
        let started = Instant::now();
        if audio.is_empty() {
            return Ok(Transcript {
                text: String::new(),
                segments: Vec::new(),
                audio_seconds,
                language: options.language.clone(),
                elapsed: started.elapsed(),
            });
        }
        let fail = |e: whisper_rs::WhisperError| SttError::Inference(e.to_string());
        let reused = self
            .idle_states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut state = match reused {
            Some(state) => state,
            None => self.context.create_state().map_err(fail)?,
        };
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(options.language.as_deref());
        params.set_n_threads(options.threads.max(1) as i32);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        // No temperature fallback. whisper.cpp decodes again at temperatures 0.2 … 1.0 whenever the
        // greedy result's mean log-probability is under -1, and keeps the last try if none does better:
        // on a caller's one-word turn after a moment of silence that was five more decodes (a 55 ms pass
        // took 500 ms, and over 2 s on a busy call) for the same word. Over the 353 recorded prompts the
        // word error rate is the same without it (6.1 %). What the fallback guards against, a decoder
        // stuck repeating itself, is bounded by the token budget below and cut back afterwards.
        params.set_temperature_inc(0.0);
        params.set_max_tokens(token_budget(audio_seconds));
        if let Some(window) = options.min_window {
            // One encoder position per 20 ms, the audio plus a margin; never more than Whisper's 1500.
            let audio_positions = (audio_seconds * CONTEXT_PER_SECOND).ceil() as i32 + 64;
            let window_positions = (window.as_secs_f64() * CONTEXT_PER_SECOND).round() as i32;
            params.set_audio_ctx(audio_positions.max(window_positions).min(1500));
        }
        if let Some(stop) = &stop {
            watch_stop_flag(&mut params, stop);
        }
        // `stop` outlives this call, which is all whisper.cpp reads it during.
        if let Err(e) = state.full(params, audio) {
            // A stopped pass's state is reused: every pass starts by resetting what it keeps (results,
            // caches), and making a new state costs the next pass, the one that stopped this, its time.
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                self.keep_idle(state);
                return Err(SttError::Stopped);
            }
            return Err(fail(e));
        }
        let mut segments = Vec::new();
        for i in 0..state.full_n_segments() {
            let Some(segment) = state.get_segment(i) else {
                continue;
            };
            let text = collapse_repeats(segment.to_str_lossy().map_err(fail)?.trim());
            if is_annotation(&text) {
                continue;
            }
            let tokens = segment.n_tokens();
            let probabilities: Vec<f32> = (0..tokens)
                .filter_map(|t| segment.get_token(t))
                .map(|t| t.token_probability())
                .collect();
            let confidence = if probabilities.is_empty() {
                0.0
            } else {
                probabilities.iter().sum::<f32>() / probabilities.len() as f32
            };
            // whisper.cpp timestamps are in 10 ms units.
            segments.push(Segment {
                start: segment.start_timestamp() as f64 / 100.0,
                end: segment.end_timestamp() as f64 / 100.0,
                text,
                confidence,
            });
        }
        let text = collapse_repeats(
            segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
                .trim(),
        );
        let language = match &options.language {
            Some(language) => Some(language.clone()),
            None if !self.context.is_multilingual() => Some("en".to_owned()),
            None => whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(str::to_owned),
        };
        self.keep_idle(state);
        Ok(Transcript {
            text,
            segments,
            audio_seconds,
            language,
            elapsed: started.elapsed(),
        })
    }

    /// Keeps a decoding state for the next pass (up to [`IDLE_STATES`]).
    fn keep_idle(&self, state: whisper_rs::WhisperState) {
        let mut idle = self
            .idle_states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < IDLE_STATES {
            idle.push(state);
        }
    }
}

/// whisper.cpp's abort callback: whether the pass's stop flag is set.
extern "C" fn stop_requested(flag: *mut std::ffi::c_void) -> bool {
    // SAFETY: `flag` is the `AtomicBool` that `watch_stop_flag` registered, kept alive by the caller's
    // `Arc` for the whole `full` call during which whisper.cpp calls this; it is only read, atomically.
    #[allow(unsafe_code)]
    let flag = unsafe { &*(flag as *const AtomicBool) };
    flag.load(Ordering::Relaxed)
}

/// Makes whisper.cpp poll `stop` between the steps of its graphs and give up once it is set.
///
/// whisper-rs 0.16's `set_abort_callback_safe` hands whisper.cpp a pointer to a boxed trait object
/// and reads it back as the closure itself, so the flag it polls is arbitrary memory (passes were
/// aborted at random); the callback is registered by hand instead.
fn watch_stop_flag(params: &mut FullParams<'_, '_>, stop: &Arc<AtomicBool>) {
    // SAFETY: `stop_requested` only reads the `AtomicBool` behind the pointer, which the caller keeps
    // alive (its `Arc`) until `full` returns; whisper.cpp does not keep either after the call.
    #[allow(unsafe_code)]
    unsafe {
        params.set_abort_callback(Some(stop_requested));
        params.set_abort_callback_user_data(Arc::as_ptr(stop) as *mut std::ffi::c_void);
    }
}

/// Whisper marks non-speech with bracketed annotations (`[BLANK_AUDIO]`, `(upbeat music)`): not words the
/// caller said, so they never reach a transcript.
fn is_annotation(text: &str) -> bool {
    text.is_empty()
        || (text.starts_with('[') && text.ends_with(']'))
        || (text.starts_with('(') && text.ends_with(')'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_speech_annotations_are_recognised() {
        for a in ["[BLANK_AUDIO]", "(upbeat music)", "[ Silence ]", ""] {
            assert!(is_annotation(a), "{a}");
        }
        for t in ["Activated.", "Press [1] now", "(555) 0100 is my number"] {
            assert!(!is_annotation(t), "{t}");
        }
    }
}
