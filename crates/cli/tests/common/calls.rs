//! A whole call placed with `switchboard call` on real recorded speech, and the checks of what it left
//! behind, shared by the call tests and the fault tests.

use std::path::{Path, PathBuf};

use serde_json::Value;
use switchboard_core::config::{DatabaseTarget, RedisConfig};
use switchboard_core::{CallId, Secret, Speaker};
use switchboard_store::{Database, LiveState};

use super::switchboard;

pub(crate) const SOUNDS: &str = "/usr/share/asterisk/sounds/en";

/// A recording's samples with leading and trailing silence cut (for joining words into one utterance).
pub(crate) fn trimmed(name: &str) -> Vec<i16> {
    let mut reader = hound::WavReader::open(Path::new(SOUNDS).join(format!("{name}.wav"))).unwrap();
    assert_eq!(reader.spec().sample_rate, 8_000);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let loud = |s: &&i16| s.unsigned_abs() > 600;
    let start = samples.iter().position(|s| loud(&s)).unwrap_or(0);
    let end = samples
        .iter()
        .rposition(|s| loud(&s))
        .map_or(samples.len(), |i| i + 1);
    samples[start.saturating_sub(160)..(end + 160).min(samples.len())].to_vec()
}

pub(crate) fn write_turn(path: &Path, words: &[&str]) -> PathBuf {
    let gap = vec![0i16; 800]; // 100 ms: shorter than the VAD's end-of-speech silence
    let mut audio = vec![0i16; 1_600];
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            audio.extend(&gap);
        }
        audio.extend(trimmed(word));
    }
    audio.extend(vec![0i16; 1_600]);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for s in audio {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    path.to_owned()
}

/// Three caller turns of real speech: a hello, a callback number, and `last` (a goodbye, or asking for a
/// person).
pub(crate) fn caller_turns(dir: &Path, last: &[&str]) -> Vec<PathBuf> {
    let mut number = vec!["telephone-number"];
    number.extend([
        "digits/4", "digits/1", "digits/5", "digits/5", "digits/5", "digits/5", "digits/0",
        "digits/1", "digits/0", "digits/0",
    ]);
    vec![
        write_turn(&dir.join("t1.wav"), &["hello"]),
        write_turn(&dir.join("t2.wav"), &number),
        write_turn(&dir.join("t3.wav"), last),
    ]
}

/// The number the caller of [`caller_turns`] says (415 555 0100) is in no log line, however the
/// recogniser grouped its digits.
pub(crate) fn assert_no_caller_number(log: &str) {
    for line in log.lines() {
        let mut digits = String::new();
        for c in line.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else if !" -.()".contains(c) {
                assert!(
                    !digits.contains("5550100"),
                    "the caller's number is logged: {line}"
                );
                digits.clear();
            }
        }
        assert!(
            !digits.contains("5550100"),
            "the caller's number is logged: {line}"
        );
    }
}

/// One whole call to place: where it is stored, what else is configured, the transport, and how it ends.
pub(crate) struct Case<'a> {
    pub(crate) database_url: Option<&'a str>,
    pub(crate) redis_host: Option<&'a str>,
    pub(crate) env: &'a [(&'a str, &'a str)],
    pub(crate) transport: &'a str,
    /// The words of the caller's last turn.
    pub(crate) last_turn: &'a [&'a str],
    /// One of these is in the last caller line's transcript.
    pub(crate) last_heard: &'a [&'a str],
    pub(crate) end_reason: &'a str,
    /// `--echo-return DB,MS`: the caller's line sends the agent's audio back.
    pub(crate) echo_return: Option<&'a str>,
}

impl Default for Case<'_> {
    fn default() -> Self {
        Self {
            database_url: None,
            redis_host: None,
            env: &[],
            transport: "websocket",
            last_turn: &["goodbye"],
            last_heard: &["goodbye", "bye"],
            end_reason: "agent_ended",
            echo_return: None,
        }
    }
}

/// Runs `switchboard call` for `case` and checks the files it wrote; returns the report.
pub(crate) fn call_and_check(data_dir: &Path, models: &Path, case: &Case<'_>) -> Value {
    let turns = caller_turns(data_dir, case.last_turn);
    let out_dir = data_dir.join("out");
    let mut cmd = switchboard(data_dir);
    cmd.env("MODELS_DIR", models)
        .env("LOG_LEVEL", "warn")
        .args(["call", "--transport", case.transport]);
    if let Some(url) = case.database_url {
        cmd.env("DATABASE_URL", url);
    }
    if let Some(host) = case.redis_host {
        cmd.env("REDIS_HOST", host);
    }
    cmd.envs(case.env.iter().copied());
    for turn in &turns {
        cmd.arg("--audio").arg(turn);
    }
    if let Some(echo) = case.echo_return {
        cmd.args(["--echo-return", echo]);
    }
    let out = cmd.arg("--out").arg(&out_dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    // Over Twilio every mark is echoed: what the caller heard comes from the echoes, never from the
    // fallback to our clock.
    assert!(!stderr.contains("stopped echoing marks"), "{stderr}");
    assert_no_caller_number(&stderr);

    let report: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    let report_turns = report["turns"].as_array().unwrap();
    assert_eq!(report_turns.len(), 3, "{report:#}");
    for turn in report_turns {
        assert_eq!(turn["answered"], true, "{turn:#}");
        let v2v = turn["voice_to_voice_s"].as_f64().unwrap();
        assert!(v2v > 0.0 && v2v < 30.0, "{turn:#}");
        let server = &turn["server"];
        for part in [
            "end_of_turn",
            "stt",
            "llm_first_sentence",
            "tts_first_chunk",
            "transport",
        ] {
            assert!(
                server[part].as_f64().is_some_and(|s| s >= 0.0),
                "{part}: {turn:#}"
            );
        }
    }
    let heard: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("transcript.json")).unwrap()).unwrap();
    // With the agent's voice returning on the line, whisper-tiny read the run of fives with one five too
    // many in about one call in five (the number then fails its check and the claim goes without it);
    // the echo checks below and the caller's three lines still hold there. Open in issue 23.
    if case.echo_return.is_none() {
        assert_eq!(
            report["claim"]["callback_phone"], "+14155550100",
            "the spoken number reaches the claim: {report:#}\ntranscript: {:#}",
            heard["turns"]
        );
    }
    assert!(
        report["synthesis"]["short_summary"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{report:#}"
    );
    assert_eq!(report["transport"], case.transport, "{report:#}");
    assert_eq!(
        report["end_reason"], case.end_reason,
        "the caller's last turn ends the call: {report:#}"
    );

    let transcript: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("transcript.json")).unwrap()).unwrap();
    let lines = transcript["turns"].as_array().unwrap();
    let said = |speaker: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["speaker"] == speaker)
            .map(|l| l["text"].as_str().unwrap().to_lowercase())
            .collect()
    };
    let caller = said("caller");
    assert_eq!(caller.len(), 3, "{lines:#?}");
    assert!(caller[0].contains("hello"), "{caller:?}");
    assert!(caller[1].contains("number"), "{caller:?}");
    assert!(
        case.last_heard.iter().any(|w| caller[2].contains(w)),
        "{caller:?}"
    );
    let agent = said("agent");
    assert!(agent.len() >= 4, "greeting and three answers: {agent:?}");
    assert!(agent[0].contains("thank you for calling"), "{agent:?}");

    check_echo(case, &report, &transcript);

    let wav = hound::WavReader::open(out_dir.join("agent.wav")).unwrap();
    assert_eq!(wav.spec().sample_rate, 16_000);
    let seconds = wav.len() as f64 / 16_000.0;
    assert!(seconds > 5.0, "agent.wav holds {seconds:.1} s");
    report
}

/// Echo cancellation is on in every call. On a line that returns the agent's audio, the agent never
/// hears itself: the caller's turns hold only the caller's words (three lines, checked above), the agent is
/// never cut off by its own voice (no `clear`), and the canceller removed the echo (ERLE). On a line that
/// returns none, it says so and leaves the caller's audio alone.
pub(crate) fn check_echo(case: &Case<'_>, report: &Value, transcript: &Value) {
    let echo = &report["echo"];
    eprintln!("echo: {echo}");
    assert!(echo.is_object(), "the canceller reports: {report:#}");
    let clears = transcript["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "clear")
        .count();
    match case.echo_return {
        Some(_) => {
            assert_eq!(clears, 0, "the agent barged in on itself: {transcript:#}");
            assert_eq!(echo["no_echo"], false, "{echo}");
            let erle = echo["erle_db"].as_f64().unwrap();
            assert!(erle >= 15.0, "ERLE {erle} dB: {echo}");
        }
        None => assert_eq!(echo["no_echo"], true, "{echo}"),
    }
}

/// `check_stored` on the SQLite database of `data_dir`.
pub(crate) fn check_stored_in_sqlite(data_dir: &Path, report: &Value, end_reason: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(check_stored(
        DatabaseTarget::Sqlite {
            path: data_dir.join("switchboard.db"),
        },
        report,
        end_reason,
    ));
}

/// After the process (and its server) is gone, the database still holds the whole call.
pub(crate) async fn check_stored(target: DatabaseTarget, report: &Value, end_reason: &str) {
    check_stored_in(
        Database::connect(&target).await.unwrap(),
        report,
        end_reason,
    )
    .await;
}

/// `check_stored` on an open database.
pub(crate) async fn check_stored_in(db: Database, report: &Value, end_reason: &str) {
    let id: CallId = report["call_id"].as_str().unwrap().parse().unwrap();
    let call = db.call(id).await.unwrap().expect("the call is stored");
    assert_eq!(call.status, "ended");
    assert_eq!(call.end_reason.as_deref(), Some(end_reason));
    let turns = db.turns(id).await.unwrap();
    assert_eq!(
        turns
            .iter()
            .filter(|t| t.speaker == Speaker::Caller)
            .count(),
        3
    );
    assert!(turns.iter().filter(|t| t.speaker == Speaker::Agent).count() >= 4);
    let summary = db
        .summary(id)
        .await
        .unwrap()
        .expect("the synthesis is stored");
    let stored: Value = serde_json::from_str(&summary.claim).unwrap();
    assert_eq!(
        stored, report["claim"],
        "the stored claim is the one reported"
    );
    db.close().await;
}

/// The test PostgreSQL server's URL (TEST_POSTGRES_URL, else the local one), a connection to it and a
/// new schema named from `prefix` for one test; `None` (skipped, said on stderr) when it is unreachable
/// outside CI.
pub(crate) fn postgres_schema(
    runtime: &tokio::runtime::Runtime,
    prefix: &str,
) -> Option<(String, Database, String)> {
    let base = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match runtime.block_on(Database::connect(&DatabaseTarget::Postgres {
        url: Secret::new(base.clone()),
    })) {
        Ok(db) => {
            let schema = format!("{prefix}{}", uuid::Uuid::now_v7().simple());
            runtime
                .block_on(db.execute_raw(&format!("CREATE SCHEMA {schema}")))
                .unwrap();
            Some((base, db, schema))
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: PostgreSQL at {base} unreachable ({e})");
            None
        }
        Err(e) => panic!("CI=true and PostgreSQL at {base} is unreachable: {e}"),
    }
}

/// The shared live state on the test's Redis at `host`.
pub(crate) async fn live_state(host: String) -> LiveState {
    LiveState::connect(&RedisConfig::plain(host, 6379), "test")
        .await
        .unwrap()
}
