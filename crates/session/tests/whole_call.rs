//! A whole call through `run_call` on scripted engines (test tools, not the product): a recogniser that
//! "hears" the lines it is given, in order, a voice that speaks silence as long as its text, and a model
//! that is unreachable (the agent answers from its readers and fixed questions). The VAD is the energy
//! detector (no model files), so the caller's "speech" is a tone. The database is a real SQLite file.
#![allow(clippy::unwrap_used)]

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
use switchboard_core::{CallDirection, CallId, Config, Speaker};
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
struct ScriptedStt(Arc<Mutex<VecDeque<String>>>);

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
struct SilentVoice(VoiceInfo);

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
struct Unreachable;

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

fn engines(
    dir: &std::path::Path,
    lines: &[&str],
    recording: switchboard_core::config::Recording,
) -> Arc<Engines> {
    let config = Config::from_layers(None, &|_| None).unwrap();
    let mut agent = AgentConfig::from_config(&config).unwrap();
    agent.announce_recording = recording == Recording::Announce;
    Arc::new(Engines {
        stt: Arc::new(ScriptedStt(Arc::new(Mutex::new(
            lines.iter().map(|l| (*l).to_owned()).collect(),
        )))),
        tts: Arc::new(SilentVoice(VoiceInfo {
            engine: "piper",
            voice: "silence".into(),
            sample_rate: 16_000,
            rate: 1.0,
        })),
        phrases: Arc::new(PhraseCache::open(&dir.join("phrases")).unwrap()),
        phrase_book: PhraseBook::new(&agent, false),
        model: Arc::new(Unreachable),
        native_tools: false,
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
    })
}

/// `ms` of a loud 300 Hz tone (speech to the energy detector), or of silence, as 20 ms PCM16 frames.
fn frames(ms: usize, loud: bool) -> Vec<Vec<u8>> {
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

async fn database(dir: &std::path::Path) -> (Database, CallId) {
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
async fn until(
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

/// A call started on `engines`: the caller's side, what the call sends, its task and what it sent so far,
/// once the greeting has played to its end.
struct Running {
    caller: switchboard_session::CallerSender,
    out_rx: mpsc::Receiver<Outbound>,
    call: tokio::task::JoinHandle<
        Result<switchboard_session::CallReport, switchboard_session::CallError>,
    >,
    seen: Vec<Outbound>,
}

async fn start_call(engines: Arc<Engines>, db: &Database, call_id: CallId) -> Running {
    let (caller, inbound) = caller_channel(250);
    let (out_tx, mut out_rx) = mpsc::channel(4_096);
    let setup = CallSetup {
        call_id,
        format: InputFormat::Pcm16(SampleRate::Hz16000),
        context: CallContext::default(),
        echoes_marks: false,
    };
    let call = tokio::spawn(run_call(
        setup,
        engines,
        db.clone(),
        inbound,
        out_tx,
        CancellationToken::new(),
    ));
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
async fn speak_a_turn(caller: &switchboard_session::CallerSender) {
    for frame in frames(600, false)
        .into_iter()
        .chain(frames(1_000, true))
        .chain(frames(600, false))
    {
        caller.send(Inbound::Audio(frame)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_mid_answer_and_mid_sentence_still_records_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let engines = engines(
        dir.path(),
        &[
            "My car was hit on Main Street this morning.",
            "And my number is four one five, five five five, oh one three four",
        ],
        Recording::Off,
    );
    // The greeting plays to its end; then a turn, and silence until the answer starts playing.
    let Running {
        caller,
        mut out_rx,
        call,
        mut seen,
    } = start_call(engines, &db, call_id).await;
    speak_a_turn(&caller).await;
    until(
        &mut out_rx,
        &mut seen,
        |o| matches!(o, Outbound::Transcript(t) if t.speaker == Speaker::Caller && t.is_final),
    )
    .await;
    until(&mut out_rx, &mut seen, |o| matches!(o, Outbound::Audio(_))).await;
    // The caller talks over the answer, then hangs up mid-sentence.
    for frame in frames(400, true) {
        caller.send(Inbound::Audio(frame)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    caller.send(Inbound::Hangup).await.unwrap();
    let report = call.await.unwrap().unwrap();
    assert_eq!(report.end_reason, "caller_hung_up");

    let turns = db.turns(call_id).await.unwrap();
    let lines: Vec<(Speaker, &str)> = turns.iter().map(|t| (t.speaker, t.text.as_str())).collect();
    assert_eq!(
        turns.iter().map(|t| t.seq).collect::<Vec<_>>(),
        (1..=lines.len() as i64).collect::<Vec<_>>(),
        "numbered in order, none twice: {lines:?}"
    );
    assert_eq!(lines[0].0, Speaker::Agent, "the greeting: {lines:?}");
    assert_eq!(
        lines[1],
        (
            Speaker::Caller,
            "My car was hit on Main Street this morning."
        )
    );
    // The answer being played at the hang-up is recorded as far as it was heard.
    assert!(
        lines[2..]
            .iter()
            .any(|(speaker, text)| *speaker == Speaker::Agent && !text.is_empty()),
        "the answer cut by the hang-up: {lines:?}"
    );
    // The caller's words in progress are transcribed and recorded, the number they said masked
    // (MASK_PII_IN_TRANSCRIPTS) down to its last four digits.
    assert_eq!(
        lines.last().copied(),
        Some((Speaker::Caller, "And my number is [phone …0134]")),
        "{lines:?}"
    );
}

/// One call with RECORDING as given, the caller saying `line` in one turn; returns what was stored.
async fn recorded_call(
    recording: Recording,
    line: &str,
) -> (tempfile::TempDir, Database, CallId, Vec<(Speaker, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let keys =
        switchboard_store::DataKeys::parse(&switchboard_store::new_key_line("t").unwrap()).unwrap();
    let db = db.with_data_keys(Arc::new(keys));
    let engines = engines(dir.path(), &[line], recording);
    let Running {
        caller,
        mut out_rx,
        call,
        mut seen,
    } = start_call(engines, &db, call_id).await;
    speak_a_turn(&caller).await;
    // The answer plays to its end, then the caller hangs up.
    until(
        &mut out_rx,
        &mut seen,
        |o| matches!(o, Outbound::Mark(m) if m == "speech-2"),
    )
    .await;
    caller.send(Inbound::Hangup).await.unwrap();
    call.await.unwrap().unwrap();
    let turns = db.turns(call_id).await.unwrap();
    let lines = turns.into_iter().map(|t| (t.speaker, t.text)).collect();
    (dir, db, call_id, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_keeps_both_sides_sealed_and_a_caller_who_declines_is_not_recorded() {
    let (dir, db, call_id, lines) = recorded_call(
        Recording::Always,
        "My car was hit on Main Street this morning.",
    )
    .await;
    let recording = db.recording(call_id).await.unwrap().expect("recorded");
    assert_eq!(recording.sample_rate, 16_000);
    let seconds = recording.samples.len() as f64 / 2.0 / 16_000.0;
    assert!(
        seconds > 2.0,
        "both sides of the whole call: {seconds:.1} s, {lines:?}"
    );
    // The caller's side (left) holds the 8000-peak tone the line sent; the agent's voice is silent here.
    let loudest_left = recording
        .samples
        .iter()
        .step_by(2)
        .map(|s| s.unsigned_abs())
        .max();
    assert!(loudest_left.unwrap_or(0) > 7_000, "{loudest_left:?}");
    // Sealed: without the key the stored chunks do not open.
    let without_key = Database::connect(&DatabaseTarget::Sqlite {
        path: dir.path().join("calls.db"),
    })
    .await
    .unwrap();
    assert!(without_key.recording(call_id).await.is_err());

    // Announced, and the caller declines: nothing is kept, and the agent says so first.
    let (_dir, db, call_id, lines) =
        recorded_call(Recording::Announce, "I don't want this call recorded.").await;
    assert!(db.recording(call_id).await.unwrap().is_none(), "{lines:?}");
    assert!(lines[0].1.contains("recorded and transcribed"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|(who, text)| *who == Speaker::Agent && text.contains("no longer recorded")),
        "{lines:?}"
    );
}

/// A caller who pauses at a comma and goes on before the answer to the first half is heard: that answer
/// is cancelled, and the two halves are answered together as one turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_pauses_mid_sentence_is_answered_once_on_the_whole_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let engines = engines(
        dir.path(),
        &["It happened at my house,", "12 Oak Avenue in Portland."],
        Recording::Off,
    );
    let Running {
        caller,
        mut out_rx,
        call,
        mut seen,
    } = start_call(engines, &db, call_id).await;
    // In real time: the pause (460 ms) outlasts the VAD's silence (320 ms), so the first half is a
    // turn of its own until the caller goes on.
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    for frame in frames(600, false)
        .into_iter()
        .chain(frames(1_000, true))
        .chain(frames(460, false))
        .chain(frames(1_000, true))
        .chain(frames(800, false))
    {
        clock.tick().await;
        caller.send(Inbound::Audio(frame)).await.unwrap();
    }
    let finals = |seen: &[Outbound]| {
        seen.iter()
            .filter(|o| matches!(o, Outbound::Transcript(t) if t.speaker == Speaker::Caller && t.is_final))
            .count()
    };
    while finals(&seen) < 2 {
        until(
            &mut out_rx,
            &mut seen,
            |o| matches!(o, Outbound::Transcript(t) if t.speaker == Speaker::Caller && t.is_final),
        )
        .await;
    }
    until(
        &mut out_rx,
        &mut seen,
        |o| matches!(o, Outbound::Transcript(t) if t.speaker == Speaker::Agent && t.is_final),
    )
    .await;
    caller.send(Inbound::Hangup).await.unwrap();
    let report = call.await.unwrap().unwrap();
    assert_eq!(report.turns, 1, "the two halves are one turn");
    let place = report.claim["incident_location"]
        .as_str()
        .unwrap_or_default();
    assert!(place.contains("Oak Avenue"), "{:#}", report.claim);
    // Both halves are in the transcript, as said.
    let turns = db.turns(call_id).await.unwrap();
    let callers: Vec<&str> = turns
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(
        callers,
        ["It happened at my house,", "12 Oak Avenue in Portland."]
    );
    // Nothing of an answer to the first half was heard between them.
    let speakers: Vec<Speaker> = turns.iter().map(|t| t.speaker).collect();
    assert_eq!(
        speakers[..3],
        [Speaker::Agent, Speaker::Caller, Speaker::Caller],
        "{:?}",
        turns.iter().map(|t| &t.text).collect::<Vec<_>>()
    );
}
