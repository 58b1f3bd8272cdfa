//! Answering-machine detection (AMD) on calls the agent placed, through `run_call` on the testkit's
//! scripted engines and real recorded audio played in real time: Asterisk's voicemail greeting
//! ("Please leave your message after the tone …") and its beep, or a person's "Hello?".
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod testkit;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_audio::corpus::{DEFAULT_SOUNDS_DIR, read_wav_16k};
use switchboard_core::Speaker;
use switchboard_core::config::{Amd, Recording};
use switchboard_session::{Inbound, Outbound};
use testkit::{Unreachable, database, engines_on, spawn_call};

/// Recorded prompts as 20 ms PCM16 frames at 16 kHz, with `quiet_ms` of silence before each.
fn line(parts: &[(u64, &str)]) -> Option<Vec<Vec<u8>>> {
    let dir = Path::new(DEFAULT_SOUNDS_DIR);
    let mut samples = Vec::new();
    for (quiet_ms, name) in parts {
        let path = dir.join(format!("{name}.wav"));
        if !path.is_file() {
            assert!(
                std::env::var_os("CI").is_none(),
                "asterisk-core-sounds-en-wav is not installed (scripts/setup.sh installs it)"
            );
            return None;
        }
        samples.extend(std::iter::repeat_n(0i16, (*quiet_ms * 16) as usize));
        samples.extend(read_wav_16k(&path).unwrap());
    }
    Some(
        samples
            .chunks(320)
            .map(|c| {
                let mut frame: Vec<u8> = c.iter().flat_map(|s| s.to_le_bytes()).collect();
                frame.resize(640, 0);
                frame
            })
            .collect(),
    )
}

/// What a placed call did.
struct Placed {
    end_reason: String,
    answered_by: Option<String>,
    lines: Vec<(Speaker, String)>,
    /// When the agent's first audio went out, from the start of the line's audio.
    first_audio: Option<Duration>,
}

impl Placed {
    /// What the agent said, line by line.
    fn agent_lines(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == Speaker::Agent)
            .map(|(_, t)| t.as_str())
            .collect()
    }
}

/// Places a call answered by `audio` (then silence, in real time) with `amd`; the recogniser hears
/// `heard`, one line per utterance. The call is hung up from the far side `hang_up_after` its first
/// agent audio, unless it ends first.
async fn place(amd: Amd, audio: Vec<Vec<u8>>, heard: &[&str], hang_up_after: Duration) -> Placed {
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let mut engines = engines_on(
        dir.path(),
        heard,
        Recording::Off,
        Arc::new(Unreachable),
        false,
    );
    engines.amd = amd;
    let (caller, mut out_rx, call) = spawn_call(Arc::new(engines), &db, call_id, true);
    let started = Instant::now();
    let mut first_audio = None;
    let mut frames = audio.into_iter();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let deadline = started + Duration::from_secs(60);
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Outbound::Audio(_)) if first_audio.is_none() => first_audio = Some(started.elapsed()),
                Some(_) => {}
                None => break,
            },
            _ = ticker.tick() => {
                let frame = frames.next().unwrap_or_else(|| vec![0; 640]);
                if caller.send(Inbound::Audio(frame)).await.is_err() {
                    break;
                }
                if first_audio.is_some_and(|at| started.elapsed() > at + hang_up_after) {
                    let _ = caller.send(Inbound::Hangup).await;
                }
                assert!(Instant::now() < deadline, "the call did not end within 60 s");
            }
        }
    }
    let report = call.await.unwrap().unwrap();
    println!(
        "AMD {amd}: ended {} after {:?}, first agent audio at {first_audio:?}",
        report.end_reason,
        started.elapsed()
    );
    let record = db.call(call_id).await.unwrap().unwrap();
    let lines = db
        .turns(call_id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.speaker, t.text))
        .collect();
    Placed {
        end_reason: report.end_reason,
        answered_by: record.answered_by,
        lines,
        first_audio,
    }
}

const GREETING: &str =
    "Please leave your message after the tone. When done, hang up or press the pound key.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voicemail_greeting_gets_the_message_after_its_beep_and_the_call_ends() {
    // 600 ms of quiet line, the greeting (5.7 s), 400 ms, the beep (0.4 s): the beep ends at 7.1 s.
    let Some(audio) = line(&[(600, "vm-intro"), (400, "beep")]) else {
        return;
    };
    let placed = place(
        Amd::LeaveMessage,
        audio,
        &[GREETING],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(placed.end_reason, "answering_machine");
    assert_eq!(placed.answered_by.as_deref(), Some("machine"));
    let first = placed.first_audio.expect("the message was left");
    assert!(
        first >= Duration::from_millis(7_100) && first < Duration::from_millis(9_000),
        "the message starts after the beep: {first:?}"
    );
    let agent = placed.agent_lines();
    assert_eq!(agent.len(), 1, "only the message: {:?}", placed.lines);
    assert!(
        agent[0].starts_with("Hello, this is") && agent[0].contains("call us back"),
        "{agent:?}"
    );
    // The machine's greeting is in the transcript, as what the far side said.
    assert!(
        placed
            .lines
            .iter()
            .any(|(s, t)| *s == Speaker::Caller && t == GREETING),
        "{:?}",
        placed.lines
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_detect_a_voicemail_greeting_is_hung_up_on_without_a_word() {
    let Some(audio) = line(&[(600, "vm-intro"), (400, "beep")]) else {
        return;
    };
    let placed = place(Amd::Detect, audio, &[GREETING], Duration::from_secs(30)).await;
    assert_eq!(placed.end_reason, "answering_machine");
    assert_eq!(placed.answered_by.as_deref(), Some("machine"));
    assert_eq!(placed.first_audio, None, "the agent said nothing");
    assert!(
        placed.lines.iter().all(|(s, _)| *s == Speaker::Caller),
        "{:?}",
        placed.lines
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_saying_hello_is_greeted_once_and_their_hello_is_not_a_turn() {
    let Some(audio) = line(&[(600, "hello")]) else {
        return;
    };
    let placed = place(
        Amd::LeaveMessage,
        audio,
        &["Hello?"],
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(placed.answered_by.as_deref(), Some("human"));
    assert_eq!(placed.end_reason, "caller_hung_up");
    let first = placed.first_audio.expect("greeted");
    // "Hello?" ends at 1.4 s; the VAD's end 320 ms later, then 800 ms of quiet hands the turn over.
    assert!(
        first >= Duration::from_millis(2_400) && first < Duration::from_millis(4_000),
        "greeted once the person waits: {first:?}"
    );
    let agent = placed.agent_lines();
    assert_eq!(
        agent.len(),
        1,
        "the greeting, and no answer to 'Hello?': {:?}",
        placed.lines
    );
    assert!(!agent[0].contains("call us back"), "{agent:?}");
}
