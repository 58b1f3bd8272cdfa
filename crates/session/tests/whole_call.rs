//! A whole call through `run_call` on the testkit's scripted engines (see `testkit`): a hang-up mid
//! answer, recordings with consent, a caller who pauses mid-sentence, a model server that stalls, digits
//! typed on the keypad, answers heard by the recogniser for spelled answers.
#![allow(clippy::unwrap_used)]

mod testkit;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_core::config::{DatabaseTarget, Recording};
use switchboard_core::{CallId, Speaker};
use switchboard_session::{Inbound, Outbound};
use switchboard_store::Database;
use testkit::{
    Running, ScriptedStt, Unreachable, database, engines, engines_on, frames, speak_a_turn,
    start_call, until, until_lines,
};

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
    until_lines(&mut out_rx, &mut seen, Speaker::Caller, 2).await;
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

/// The model server stalls mid-answer (headers and a first event, then nothing): the caller hears the
/// filler, then the apology, once each; the stalled request is given up; the next turn is answered by
/// the model as usual, and the call ends normally with every line stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_server_that_stalls_mid_answer_costs_a_filler_and_an_apology_and_the_call_goes_on()
{
    let server = testkit::model_server::start("garage", "Thank you. Is anything else damaged?");
    let settings = [
        ("LLM_PROVIDER", "openai".to_owned()),
        ("OPENAI_BASE_URL", server.base_url.clone()),
        ("LLM_FALLBACK", "none".to_owned()),
        ("RESPONSE_TIMEOUT_MS", "1500".to_owned()),
    ];
    let config = switchboard_core::Config::from_layers(None, &|key| {
        settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let model = switchboard_llm::chat_model(&config, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let mut engines = testkit::engines_on(
        dir.path(),
        &[
            "A tree fell on my garage last night.",
            "It also scratched my car.",
        ],
        Recording::Off,
        model,
        true,
    );
    engines.turns.filler_after = Duration::from_millis(500);
    engines.turns.response_timeout = Duration::from_millis(1_500);
    let Running {
        caller,
        mut out_rx,
        call,
        mut seen,
    } = start_call(Arc::new(engines), &db, call_id).await;
    let agent_said = |seen: &[Outbound], text: &str| {
        seen.iter()
            .filter(|o| matches!(o, Outbound::Transcript(t) if t.speaker == Speaker::Agent && t.is_final && t.text.contains(text)))
            .count()
    };
    speak_a_turn(&caller).await;
    until(
        &mut out_rx,
        &mut seen,
        |o| matches!(o, Outbound::Transcript(t) if t.speaker == Speaker::Agent && t.is_final && t.text.contains("took too long")),
    )
    .await;
    // The apology is recorded once heard: the caller goes on.
    speak_a_turn(&caller).await;
    until(
        &mut out_rx,
        &mut seen,
        |o| matches!(o, Outbound::Transcript(t) if t.speaker == Speaker::Agent && t.is_final && t.text.contains("anything else damaged")),
    )
    .await;
    caller.send(Inbound::Hangup).await.unwrap();
    let report = call.await.unwrap().unwrap();
    assert_eq!(report.end_reason, "caller_hung_up");
    assert_eq!(agent_said(&seen, "One moment please"), 1, "one filler");
    assert_eq!(agent_said(&seen, "took too long"), 1, "one apology");
    assert!(
        server
            .served
            .stall_abandoned
            .load(std::sync::atomic::Ordering::SeqCst),
        "the stalled request is given up"
    );
    let turns = db.turns(call_id).await.unwrap();
    let lines: Vec<(Speaker, &str)> = turns.iter().map(|t| (t.speaker, t.text.as_str())).collect();
    assert_eq!(
        turns.iter().map(|t| t.seq).collect::<Vec<_>>(),
        (1..=lines.len() as i64).collect::<Vec<_>>(),
        "numbered in order, none twice: {lines:?}"
    );
    let callers: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| *s == Speaker::Caller)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(
        callers,
        [
            "A tree fell on my garage last night.",
            "It also scratched my car."
        ]
    );
    assert!(
        lines
            .iter()
            .any(|(s, t)| *s == Speaker::Agent && t.contains("anything else damaged")),
        "{lines:?}"
    );
    eprintln!(
        "model stalled mid-answer: {} requests, {} lines stored, 0 lost",
        server
            .served
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        lines.len()
    );
}

/// A caller reads the letters of their policy number, then types the digits on the keypad and presses
/// `#`: the number is in the claim whole, the keys are a line of the caller's in the transcript, and
/// the agent goes on to its next question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_typed_on_the_keypad_complete_the_policy_number_the_caller_began_to_say() {
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let engines = engines(
        dir.path(),
        &["Hi, I'm Maria Gonzalez.", "It's policy CA."],
        Recording::Off,
    );
    let Running {
        caller,
        mut out_rx,
        call,
        mut seen,
    } = start_call(engines, &db, call_id).await;
    // Each turn waits for the agent's answer to the one before (its line, after the greeting's).
    for turn in 0..3 {
        match turn {
            0 | 1 => speak_a_turn(&caller).await,
            _ => {
                for key in "771209#".chars() {
                    caller.send(Inbound::Dtmf(key)).await.unwrap();
                }
            }
        }
        until_lines(&mut out_rx, &mut seen, Speaker::Agent, 2 + turn).await;
    }
    caller.send(Inbound::Hangup).await.unwrap();
    let report = call.await.unwrap().unwrap();
    assert_eq!(
        report.claim["policy_number"], "CA771209",
        "{:#}",
        report.claim
    );
    assert_eq!(report.turns, 3);
    let turns = db.turns(call_id).await.unwrap();
    let lines: Vec<(Speaker, &str)> = turns.iter().map(|t| (t.speaker, t.text.as_str())).collect();
    let keyed = lines
        .iter()
        .position(|(who, text)| {
            *who == Speaker::Caller && text.starts_with("(typed on the keypad)")
        })
        .unwrap_or_else(|| panic!("{lines:?}"));
    let (who, next) = lines.get(keyed + 1).unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(*who, Speaker::Agent);
    assert!(next.contains("When did it happen"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_questions_for_a_name_or_a_number_go_to_the_spelling_recogniser() {
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let scripted = |lines: &[&str]| {
        Arc::new(ScriptedStt(Arc::new(Mutex::new(
            lines.iter().map(|l| (*l).to_owned()).collect(),
        ))))
    };
    let everyday = scripted(&["I had a car accident.", "It happened yesterday."]);
    let spelling = scripted(&["My name is Ana Lopez.", "AB-48213."]);
    let mut engines = engines_on(
        dir.path(),
        &[],
        Recording::Off,
        Arc::new(Unreachable),
        false,
    );
    engines.stt = everyday.clone();
    engines.stt_spelling = Some(spelling.clone());
    let Running {
        caller,
        mut out_rx,
        call,
        mut seen,
    } = start_call(Arc::new(engines), &db, call_id).await;
    for turn in 0..4 {
        speak_a_turn(&caller).await;
        until_lines(&mut out_rx, &mut seen, Speaker::Agent, 2 + turn).await;
    }
    caller.send(Inbound::Hangup).await.unwrap();
    let report = call.await.unwrap().unwrap();
    // The story and the date were heard by the everyday recogniser, the name and the policy number
    // (asked for in between) by the spelling one: each answered exactly its own turns.
    assert!(everyday.0.lock().unwrap().is_empty(), "{:#}", report.claim);
    assert!(spelling.0.lock().unwrap().is_empty(), "{:#}", report.claim);
    assert_eq!(
        report.claim["caller_name"], "Ana Lopez",
        "{:#}",
        report.claim
    );
    assert_eq!(
        report.claim["policy_number"], "AB48213",
        "{:#}",
        report.claim
    );
    assert!(
        report.claim["incident_date"].is_string(),
        "{:#}",
        report.claim
    );
}

/// A model that answers from the documents slowly: its answer's first sentence comes at once, the rest
/// seconds later (the caller has heard the first by then), and `{}` to a request for JSON.
struct SlowToFinish;

impl switchboard_llm::ChatModel for SlowToFinish {
    fn name(&self) -> &str {
        "slow-to-finish"
    }

    fn chat<'a>(
        &'a self,
        request: &'a switchboard_llm::ChatRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<switchboard_llm::EventStream, switchboard_llm::LlmError>,
                > + Send
                + 'a,
        >,
    > {
        use futures_util::StreamExt;
        use switchboard_llm::{ChatEvent, Usage};
        let json = request.response_schema.is_some();
        Box::pin(async move {
            let events: switchboard_llm::EventStream = if json {
                Box::pin(futures_util::stream::iter([
                    Ok(ChatEvent::Text("{}".into())),
                    Ok(ChatEvent::Done(Usage::default())),
                ]))
            } else {
                Box::pin(
                    futures_util::stream::iter([Ok(ChatEvent::Text(
                        "Yes, a rental car is paid for up to 21 days. Please call".into(),
                    ))])
                    .chain(futures_util::stream::iter([(), ()]).then(|()| async {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        Ok(ChatEvent::Text(" us first.".into()))
                    }))
                    .chain(futures_util::stream::iter([Ok(ChatEvent::Done(
                        Usage::default(),
                    ))])),
                )
            };
            Ok(events)
        })
    }
}

/// The company's documents: one passage, close to any question. It shares no word with the caller's
/// question, so the agent cannot answer in the passage's words and the model writes the answer from it.
struct RentalCover;

impl switchboard_agent::KnowledgeSearch for RentalCover {
    fn search(
        &self,
        _query: &str,
        _k: usize,
    ) -> Result<Vec<switchboard_agent::Hit>, switchboard_agent::KnowledgeError> {
        Ok(vec![switchboard_agent::Hit {
            passage: switchboard_agent::Passage {
                document: "motor-policy.md".into(),
                index: 1,
                text: "Courtesy vehicles are provided for three weeks during repairs.".into(),
            },
            score: 0.9,
        }])
    }
}

/// An answer made from the documents is stored with its sources even when the caller hangs up after
/// its first sentence, before the model finished: the record has what the caller heard, and the
/// passages it was made from, though the turn's outcome never came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_before_the_model_finished_is_stored_with_its_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let mut engines = engines_on(
        dir.path(),
        &["I had a car accident. Does my policy pay for a rental car?"],
        Recording::Off,
        Arc::new(SlowToFinish),
        false,
    );
    engines.knowledge = Some(Arc::new(RentalCover));
    // The answer's end comes late on purpose; no filler or apology in between.
    engines.turns.filler_after = Duration::from_secs(30);
    engines.turns.response_timeout = Duration::from_secs(30);
    let Running {
        caller,
        mut out_rx,
        call,
        mut seen,
    } = start_call(Arc::new(engines), &db, call_id).await;
    speak_a_turn(&caller).await;
    // Half a second of the answer's first sentence went out; the model is not done.
    until_lines(&mut out_rx, &mut seen, Speaker::Caller, 1).await;
    let frames = std::cell::Cell::new(0);
    until(&mut out_rx, &mut seen, |o| {
        frames.set(frames.get() + usize::from(matches!(o, Outbound::Audio(_))));
        frames.get() == 25
    })
    .await;
    caller.send(Inbound::Hangup).await.unwrap();
    let report = call.await.unwrap().unwrap();
    assert_eq!(report.end_reason, "caller_hung_up");
    let turns = db.turns(call_id).await.unwrap();
    let answer = turns
        .iter()
        .find(|t| t.speaker == Speaker::Agent && t.text.contains("rental car"))
        .unwrap_or_else(|| panic!("{turns:#?}"));
    assert_eq!(
        answer
            .sources
            .iter()
            .map(|s| (s.document.as_str(), s.passage))
            .collect::<Vec<_>>(),
        [("motor-policy.md", 1)],
        "{turns:#?}"
    );
}

/// A caller who goes on talking over the answer, before its question: the question was not heard, so
/// their words are not taken as its answer, and it is asked afresh, not with "Sorry, I didn't catch …".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_talked_over_before_it_was_heard_is_asked_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let (db, call_id) = database(dir.path()).await;
    let mut engines = engines_on(
        dir.path(),
        &["I hit a cyclist with my car.", "I need to report it."],
        Recording::Off,
        Arc::new(Unreachable),
        false,
    );
    // Cut early enough that the answer's first sentence ("I'm sorry to hear that.", 460 ms of this
    // voice) is still playing.
    engines.turns.barge_in_min_speech = Duration::from_millis(100);
    let engines = Arc::new(engines);
    let Running {
        caller,
        mut out_rx,
        call,
        mut seen,
    } = start_call(engines, &db, call_id).await;
    speak_a_turn(&caller).await;
    until_lines(&mut out_rx, &mut seen, Speaker::Caller, 1).await;
    until(&mut out_rx, &mut seen, |o| matches!(o, Outbound::Audio(_))).await;
    // The answer's first sentence is playing: the caller goes on, in real time (the answer is cut half
    // a second into their words, and their turn ends after them).
    for frame in frames(1_000, true).into_iter().chain(frames(600, false)) {
        caller.send(Inbound::Audio(frame)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_lines(&mut out_rx, &mut seen, Speaker::Agent, 3).await;
    caller.send(Inbound::Hangup).await.unwrap();
    call.await.unwrap().unwrap();
    let turns = db.turns(call_id).await.unwrap();
    let lines: Vec<(Speaker, &str)> = turns.iter().map(|t| (t.speaker, t.text.as_str())).collect();
    let agent: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| *s == Speaker::Agent)
        .map(|(_, t)| *t)
        .collect();
    assert!(!agent[1].contains('?'), "the question was cut: {lines:?}");
    assert!(
        agent[2].contains("name") && !agent[2].contains("didn't catch"),
        "asked afresh: {lines:?}"
    );
}
