//! The session's testkit (test tools, never the product): a recogniser that "hears" the lines it is
//! given, in order, a voice that speaks silence as long as its text, a model that is unreachable (the
//! agent answers from its readers and fixed questions) or a model server on loopback that can stall
//! ([`model_server`]); the energy VAD (no model files), so the caller's "speech" is a tone; a real SQLite
//! file; and a call started on them, driven frame by frame.
#![allow(dead_code)]

pub(crate) mod model_server;

use std::collections::VecDeque;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use switchboard_agent::{AgentConfig, CallContext};
use switchboard_audio::vad;
use switchboard_audio::{InputFormat, SampleRate};
use switchboard_core::config::{DatabaseTarget, Recording};
use switchboard_core::{CallDirection, CallId, Config};
use switchboard_llm::{ChatModel, ChatRequest, EventStream, LlmError};
use switchboard_session::phrases::PhraseBook;
use switchboard_session::{
    CallSetup, Engines, Inbound, Outbound, TurnOptions, caller_channel, run_call,
};
use switchboard_speech::tts::{AudioChunk, PhraseCache, TextToSpeech, TtsError, VoiceInfo};
use switchboard_speech::whisper::SttError;
use switchboard_speech::{Hypothesis, SpeechStream, SpeechToText};
use switchboard_store::{Database, NewCall};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Hears the scripted lines in order, one per utterance.
pub(crate) struct ScriptedStt(pub(crate) Arc<Mutex<VecDeque<String>>>);

struct ScriptedStream {
    lines: Arc<Mutex<VecDeque<String>>>,
    samples: usize,
}

impl SpeechToText for ScriptedStt {
    fn stream(&self) -> Box<dyn SpeechStream> {
        Box::new(ScriptedStream {
            lines: self.0.clone(),
            samples: 0,
        })
    }
}

impl SpeechStream for ScriptedStream {
    fn push(&mut self, samples: &[f32]) -> Result<(), SttError> {
        self.samples += samples.len();
        Ok(())
    }
    fn poll_partial(&mut self) -> Option<Hypothesis> {
        None
    }
    fn finish(&mut self) -> Result<Hypothesis, SttError> {
        let text = self.lines.lock().unwrap().pop_front().unwrap_or_default();
        Ok(Hypothesis {
            text,
            confidence: 0.9,
            is_final: true,
            audio: self.audio(),
            compute: Duration::ZERO,
            segments: Vec::new(),
            language: Some("en".into()),
        })
    }
    fn audio(&self) -> Duration {
        Duration::from_secs_f64(self.samples as f64 / 16_000.0)
    }
}

/// Speaks silence, 20 ms a character, after thinking for 300 ms a sentence (as a voice on a busy node).
pub(crate) struct SilentVoice(pub(crate) VoiceInfo);

const VOICE_THINKS: Duration = Duration::from_millis(300);

impl TextToSpeech for SilentVoice {
    fn info(&self) -> &VoiceInfo {
        &self.0
    }
    fn synthesize(
        &self,
        text: &str,
        sink: &mut dyn FnMut(AudioChunk) -> ControlFlow<()>,
    ) -> Result<(), TtsError> {
        std::thread::sleep(VOICE_THINKS);
        let _ = sink(AudioChunk {
            samples: vec![0.0; text.chars().count() * 320],
            sample_rate: 16_000,
            text: text.to_owned(),
            last: true,
        });
        Ok(())
    }
}

/// A model server that cannot be reached.
pub(crate) struct Unreachable;

impl ChatModel for Unreachable {
    fn name(&self) -> &str {
        "unreachable"
    }
    fn chat<'a>(
        &'a self,
        _: &'a ChatRequest,
    ) -> Pin<Box<dyn Future<Output = Result<EventStream, LlmError>> + Send + 'a>> {
        Box::pin(async {
            Err(LlmError::Unreachable {
                engine: "test".into(),
                url: "http://127.0.0.1:9".into(),
                detail: "refused".into(),
            })
        })
    }
}

pub(crate) fn engines(
    dir: &std::path::Path,
    lines: &[&str],
    recording: switchboard_core::config::Recording,
) -> Arc<Engines> {
    Arc::new(engines_on(
        dir,
        lines,
        recording,
        Arc::new(Unreachable),
        false,
    ))
}

/// The scripted engines with `model` answering; with `native_tools`, every answer is the model's.
pub(crate) fn engines_on(
    dir: &std::path::Path,
    lines: &[&str],
    recording: switchboard_core::config::Recording,
    model: Arc<dyn ChatModel>,
    native_tools: bool,
) -> Engines {
    let config = Config::from_layers(None, &|_| None).unwrap();
    let mut agent = AgentConfig::from_config(&config).unwrap();
    agent.announce_recording = recording == Recording::Announce;
    Engines {
        stt: Arc::new(ScriptedStt(Arc::new(Mutex::new(
            lines.iter().map(|l| (*l).to_owned()).collect(),
        )))),
        stt_spelling: None,
        tts: Arc::new(SilentVoice(VoiceInfo {
            engine: "piper",
            voice: "silence".into(),
            sample_rate: 16_000,
            rate: 1.0,
        })),
        phrases: Arc::new(PhraseCache::open(&dir.join("phrases")).unwrap()),
        phrase_book: PhraseBook::new(&agent, false),
        model,
        native_tools,
        knowledge: None,
        agent,
        turns: TurnOptions::default(),
        early_final: false,
        read_ahead_after: None,
        cue_silence: None,
        hold_silence: None,
        models_dir: dir.join("no-models"),
        vad: vad::options_from_config(&config.audio),
        vad_sensitivity: 2,
        // A steady tone is what a noise suppressor learns to remove.
        noise_suppression: switchboard_audio::NoiseSuppression::Off,
        echo_cancellation: true,
        mask_stored_pii: true,
        recording,
        amd: switchboard_core::config::Amd::Off,
    }
}

/// `ms` of a loud 300 Hz tone (speech to the energy detector), or of silence, as 20 ms PCM16 frames.
pub(crate) fn frames(ms: usize, loud: bool) -> Vec<Vec<u8>> {
    (0..ms / 20)
        .map(|f| {
            (0..320)
                .flat_map(|i| {
                    let t = (f * 320 + i) as f32 / 16_000.0;
                    let s = if loud {
                        (8_000.0 * (2.0 * std::f32::consts::PI * 300.0 * t).sin()) as i16
                    } else {
                        0
                    };
                    s.to_le_bytes()
                })
                .collect()
        })
        .collect()
}

pub(crate) async fn database(dir: &std::path::Path) -> (Database, CallId) {
    let db = Database::connect(&DatabaseTarget::Sqlite {
        path: dir.join("calls.db"),
    })
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let id = CallId::new();
    db.insert_call(&NewCall {
        id,
        direction: CallDirection::Inbound,
        from_number: None,
        to_number: None,
        started_at: SystemTime::now(),
        status: "active",
        context: None,
    })
    .await
    .unwrap();
    (db, id)
}

/// Waits for an outbound message matching `wanted`, collecting everything on the way.
pub(crate) async fn until(
    out_rx: &mut mpsc::Receiver<Outbound>,
    seen: &mut Vec<Outbound>,
    wanted: impl Fn(&Outbound) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(out) = out_rx.recv().await {
            let hit = wanted(&out);
            seen.push(out);
            if hit {
                return;
            }
        }
        panic!("the call ended first");
    })
    .await
    .unwrap_or_else(|_| {
        let said: Vec<_> = seen
            .iter()
            .filter(|o| !matches!(o, Outbound::Audio(_)))
            .collect();
        panic!("not within 20 s; the call sent {said:?}")
    });
}

/// Whether `out` is a final transcript line of `speaker`.
pub(crate) fn final_line_of(out: &Outbound, speaker: switchboard_core::Speaker) -> bool {
    matches!(out, Outbound::Transcript(t) if t.speaker == speaker && t.is_final)
}

/// Waits until the call has sent `count` final transcript lines of `speaker`.
pub(crate) async fn until_lines(
    out_rx: &mut mpsc::Receiver<Outbound>,
    seen: &mut Vec<Outbound>,
    speaker: switchboard_core::Speaker,
    count: usize,
) {
    while seen.iter().filter(|o| final_line_of(o, speaker)).count() < count {
        until(out_rx, seen, |o| final_line_of(o, speaker)).await;
    }
}

/// A call started on `engines`: the caller's side, what the call sends, its task and what it sent so far,
/// once the greeting has played to its end.
pub(crate) struct Running {
    pub(crate) caller: switchboard_session::CallerSender,
    pub(crate) out_rx: mpsc::Receiver<Outbound>,
    pub(crate) call: tokio::task::JoinHandle<
        Result<switchboard_session::CallReport, switchboard_session::CallError>,
    >,
    pub(crate) seen: Vec<Outbound>,
}

/// A call spawned on `engines` (`placed`: one the agent placed, which AMD may screen), before anything
/// was said: the caller's side, what the call sends, and its task.
pub(crate) fn spawn_call(
    engines: Arc<Engines>,
    db: &Database,
    call_id: CallId,
    placed: bool,
) -> (
    switchboard_session::CallerSender,
    mpsc::Receiver<Outbound>,
    tokio::task::JoinHandle<
        Result<switchboard_session::CallReport, switchboard_session::CallError>,
    >,
) {
    let (caller, inbound) = caller_channel(250);
    let (out_tx, out_rx) = mpsc::channel(4_096);
    let setup = CallSetup {
        call_id,
        format: InputFormat::Pcm16(SampleRate::Hz16000),
        context: CallContext::default(),
        echoes_marks: false,
        placed,
    };
    let call = tokio::spawn(run_call(
        setup,
        engines,
        db.clone(),
        inbound,
        out_tx,
        CancellationToken::new(),
    ));
    (caller, out_rx, call)
}

pub(crate) async fn start_call(engines: Arc<Engines>, db: &Database, call_id: CallId) -> Running {
    let (caller, mut out_rx, call) = spawn_call(engines, db, call_id, false);
    let mut seen = Vec::new();
    until(
        &mut out_rx,
        &mut seen,
        |o| matches!(o, Outbound::Mark(m) if m == "speech-1"),
    )
    .await;
    Running {
        caller,
        out_rx,
        call,
        seen,
    }
}

/// A turn: a quiet line (the detector learns its floor), a second of "speech", then silence.
pub(crate) async fn speak_a_turn(caller: &switchboard_session::CallerSender) {
    for frame in frames(600, false)
        .into_iter()
        .chain(frames(1_000, true))
        .chain(frames(600, false))
    {
        caller.send(Inbound::Audio(frame)).await.unwrap();
    }
}
