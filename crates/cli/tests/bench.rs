//! The whole-call benchmarks as a user runs them: `switchboard bench latency` (voice-to-voice percentiles
//! and their parts, how the turn's end is judged) and `switchboard bench capacity` (levels of calls at
//! once, the turns that needed the model, memory, the capacity figure), each on real calls to an
//! in-process server.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use switchboard_core::Speaker;

mod common;
use common::{provisioned_models, speech_corpus_installed, switchboard};

/// `switchboard bench latency` runs scripted calls and prints voice-to-voice percentiles and their parts;
/// its JSON holds every turn of every call.
#[test]
fn bench_latency_prints_percentiles_of_whole_calls() {
    if !speech_corpus_installed() {
        return;
    }
    let Some(models) = provisioned_models() else {
        return;
    };
    let (stdout, report) = bench_latency(&models, &[], &["--calls", "1", "--concurrency", "2"]);
    for row in [
        "voice-to-voice",
        "end-of-turn wait",
        "STT final",
        "LLM first sentence",
        "TTS first chunk",
        "transport",
        "answered from a draft begun at the caller's pause",
        "how the tail grows with load",
    ] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    let levels = report["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2, "concurrency 1 and 2: {report:#}");
    for level in levels {
        assert_eq!(level["failed_calls"], 0, "{level:#}");
        assert_eq!(level["turns"], 4, "{level:#}");
        assert_eq!(level["unanswered_turns"], 0, "{level:#}");
        assert!(
            level["read_ahead_turns"]
                .as_u64()
                .is_some_and(|n| n <= level["turns"].as_u64().unwrap()),
            "{level:#}"
        );
        let v2v = &level["voice_to_voice"];
        let (p50, p95, max) = (
            v2v["p50"].as_f64().unwrap(),
            v2v["p95"].as_f64().unwrap(),
            v2v["max"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p95 && p95 <= max && max < 30.0, "{v2v}");
        assert!(level["parts"]["stt"]["p50"].as_f64().is_some(), "{level:#}");
        assert!(
            level["cpu_cores_busy"].as_f64().is_some_and(|c| c > 0.0),
            "{level:#}"
        );
    }
}

/// The end of a turn from what was said: with the full silence set long (2 s), a finished sentence
/// ("Something is terribly wrong, weasels have eaten our phone system.") or a goodbye may end after the
/// short cue silence as soon as it is transcribed, while a short opening ("Hello.", which callers often
/// go on from) and the turn that ends in the digits of a telephone number (which may go on) wait out
/// the whole silence; the number is answered meanwhile on a draft that becomes the answer.
#[test]
fn finished_sentences_end_the_turn_before_the_full_silence() {
    if !speech_corpus_installed() {
        return;
    }
    let Some(models) = provisioned_models() else {
        return;
    };
    let (_, report) = bench_latency(
        &models,
        &[
            ("VAD_MIN_SILENCE_MS", "2000"),
            ("VAD_CUE_SILENCE_MS", "160"),
        ],
        &["--calls", "1"],
    );
    let turns = report["levels"][0]["reports"][0]["turns"]
        .as_array()
        .unwrap();
    let waited = |audio: &str| -> f64 {
        let turn = turns
            .iter()
            .find(|t| t["audio"] == audio)
            .unwrap_or_else(|| panic!("no {audio} turn: {turns:#?}"));
        turn["server"]["end_of_turn"]
            .as_f64()
            .unwrap_or_else(|| panic!("{audio} unanswered: {turn:#}"))
    };
    // A finished turn has been seen to wait the full silence now and then (cause not yet found; see
    // issue 23's note): one of the two ending early shows the cue at work.
    let waits: Vec<f64> = [
        "something is terribly wrong, weasels have eaten our phone system",
        "goodbye",
    ]
    .into_iter()
    .map(waited)
    .collect();
    assert!(
        waits.iter().all(|&wait| wait >= 0.16),
        "no turn ends before the cue silence: {waits:?}"
    );
    assert!(
        waits.iter().any(|&wait| wait < 1.9),
        "a finished sentence ends before the full silence: {waits:?}"
    );
    let wait = waited("hello");
    assert!(wait >= 1.99, "a caller may go on after a hello: {wait} s");
    let wait = waited("telephone number 415 555 0100");
    assert!(wait >= 1.99, "the number may go on: {wait} s");
    // While it waits, the number is answered on a draft (LLM_READ_AHEAD, from 160 ms of quiet): the
    // answer spoken is the draft's, and the claim has the number all the same.
    let number = turns
        .iter()
        .find(|t| t["audio"] == "telephone number 415 555 0100")
        .unwrap();
    assert_eq!(number["server"]["read_ahead"], true, "{number:#}");
    // The server says which answers needed the model: the complaint given where a name was asked is
    // read by it; a hello is not, and no answer of this call is written by it.
    let server = |audio: &str| &turns.iter().find(|t| t["audio"] == audio).unwrap()["server"];
    let complaint = server("something is terribly wrong, weasels have eaten our phone system");
    assert!(
        complaint["model_wait"].as_f64().is_some_and(|w| w > 0.0),
        "{complaint:#}"
    );
    assert_eq!(server("hello")["model_wait"], 0.0, "{turns:#?}");
    assert!(
        turns.iter().all(|t| t["server"]["generated"] == false),
        "{turns:#?}"
    );
    let report = &report["levels"][0]["reports"][0];
    assert_eq!(
        report["claim"]["callback_phone"], "+14155550100",
        "{report:#}"
    );
}

/// Runs `switchboard bench latency` with `args` and `env`; its printed table and its JSON report.
fn bench_latency(models: &Path, env: &[(&str, &str)], args: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("latency.json");
    let out = switchboard(dir.path())
        .env("MODELS_DIR", models)
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .args(["bench", "latency"])
        .args(args)
        .arg("--json")
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    (stdout, report)
}

/// `switchboard bench capacity` ramps levels of calls at once on a claim call spoken by a voice, prints
/// each level and the summary table, and names the capacity. Here on a node with the sample policy as its
/// documents, the first two lines of the script at 1 and then 2 calls at once, with a p95 target no level
/// can miss. The first line asks about the cover, which only the model answers from the documents; the
/// second needs the model or not depending on what the agent asked before it, so the turns with the model
/// are checked against what the server said of each turn.
#[test]
fn bench_capacity_ramps_levels_and_names_the_largest_that_holds() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kb");
    let out = switchboard(dir.path())
        .env("MODELS_DIR", &models)
        .args(["kb", "add"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json_path = dir.path().join("capacity.json");
    let out = switchboard(dir.path())
        .env("MODELS_DIR", &models)
        .env("LOG_LEVEL", "warn")
        .args(["bench", "capacity", "--levels", "1,2", "--turns", "2"])
        .args(["--voice", "espeak", "--p95-target-ms", "60000", "--json"])
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "documents: 1, questions are answered from them",
        "capacity by level (voice-to-voice):",
        "turns with the model",
        "memory per added call:",
        "capacity: 2 calls at once with every turn answered and voice-to-voice p95 ≤ 60000 ms",
    ] {
        assert!(stdout.contains(line), "{line} missing:\n{stdout}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(report["capacity"], 2, "{report:#}");
    let levels = report["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2, "{report:#}");
    for (level, calls) in levels.iter().zip([1, 2]) {
        assert_eq!(level["calls"], calls, "{level:#}");
        assert_eq!(level["failed_calls"], 0, "{level:#}");
        assert_eq!(level["turns"], 2 * calls, "{level:#}");
        assert_eq!(level["unanswered_turns"], 0, "{level:#}");
        let mut with_model = 0;
        for call in level["reports"].as_array().unwrap() {
            let turns = call["turns"].as_array().unwrap();
            let needed = |turn: &Value| {
                turn["server"]["model_wait"].as_f64().unwrap_or(0.0) > 0.0
                    || turn["server"]["generated"] == true
            };
            // The embedded agent answers the question about the cover in the policy's words, without
            // the model; the second line, given where the name was asked, may need it for the words of
            // the name (it has none). The count the bench prints is the turns' own.
            with_model += turns.iter().filter(|t| needed(t)).count();
        }
        assert_eq!(level["turns_with_model"], with_model, "{level:#}");
        assert!(
            level["peak_rss_bytes"]
                .as_u64()
                .is_some_and(|b| b > 50_000_000),
            "{level:#}"
        );
    }
    assert!(
        report["rss_per_added_call_bytes"].as_u64().is_some(),
        "{report:#}"
    );
    // An answer about the cover is made from the policy, and its turn says so, whether the question came
    // alone or in the same breath as "I have a car accident." (the model labels that a claim; the
    // question is then searched alone). Seen: 3 of 3 calls, twice; an answer the caller's next line
    // cut before it was heard is not in the record, so one call may lack it.
    let calls: Vec<Vec<switchboard_store::TurnRecord>> =
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let db = switchboard_store::Database::connect(
                &switchboard_core::config::DatabaseTarget::Sqlite {
                    path: dir.path().join("switchboard.db"),
                },
            )
            .await
            .unwrap();
            let filter = switchboard_store::CallFilter {
                limit: 50,
                ..Default::default()
            };
            let mut calls = Vec::new();
            for call in db.list_calls(&filter).await.unwrap() {
                calls.push(db.turns(call.id).await.unwrap());
            }
            calls
        });
    assert_eq!(calls.len(), 3);
    let mut cited = 0;
    for turns in &calls {
        cited += usize::from(turns.iter().any(|t| !t.sources.is_empty()));
        let Some(asked) = turns
            .iter()
            .position(|t| t.speaker == Speaker::Caller && t.text.contains("Does my policy"))
        else {
            continue;
        };
        // The answer (it speaks of the rental car) names its source; a claim question or "One moment
        // please." does not, and an answer cut before it was heard is not in the record.
        for turn in turns[asked + 1..]
            .iter()
            .take_while(|t| t.speaker == Speaker::Agent)
            .filter(|t| t.text.to_lowercase().contains("rental"))
        {
            assert!(
                !turn.sources.is_empty()
                    && turn.sources.iter().all(|s| s.document == "motor-policy.md"),
                "{turns:#?}"
            );
        }
    }
    println!("calls with an answer from the documents: {cited} of 3");
    assert!(cited >= 2, "{calls:#?}");
}
