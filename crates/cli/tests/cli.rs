//! The binary as an operator meets it: bad settings, redacted output, serve / health / ready / SIGTERM, migrate.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{
    http_get, provisioned_models, speech_corpus_installed, start_server, stop, switchboard,
};

#[test]
fn invalid_settings_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, expect) in [
        ("SERVER_PORT", "abc", "0 to 65535"),
        ("VAD_SENSITIVITY", "7", "0 to 3"),
        ("LOG_LEVEL", "loud", "trace, debug, info, warn, error"),
    ] {
        let out = switchboard(dir.path())
            .env(var, value)
            .arg("serve")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(var) && err.contains(value) && err.contains(expect),
            "{err}"
        );
    }
    std::fs::write(
        dir.path().join("config.yaml"),
        "calls:\n  max_concurent: 3\n",
    )
    .unwrap();
    let out = switchboard(dir.path()).arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("calls.max_concurent") && err.contains("calls.max_concurrent"),
        "{err}"
    );
}

#[test]
fn config_show_redacts_secrets_and_names_sources() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "calls:\n  max_concurrent: 7\n",
    )
    .unwrap();
    let out = switchboard(dir.path())
        .env("TWILIO_AUTH_TOKEN", "tw-supersecret")
        .env("POSTGRES_HOST", "db.internal")
        .env("POSTGRES_PASSWORD", "pg-supersecret")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("supersecret"), "{text}");
    let line = |env: &str| text.lines().find(|l| l.contains(env)).unwrap().to_owned();
    assert!(line("TWILIO_AUTH_TOKEN").contains("<redacted>"));
    assert!(line("MAX_CONCURRENT_CALLS").contains("file config.yaml"));
    assert!(line("POSTGRES_HOST").contains("environment"));
    assert!(line("SERVER_PORT").contains("default"));
}

#[test]
fn migrate_check_then_apply() {
    let dir = tempfile::tempdir().unwrap();
    let check = switchboard(dir.path())
        .args(["migrate", "--check"])
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(
        switchboard(dir.path())
            .arg("migrate")
            .status()
            .unwrap()
            .success()
    );
    let check = switchboard(dir.path())
        .args(["migrate", "--check"])
        .output()
        .unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("current"));
}

#[test]
fn retention_run_removes_only_calls_and_audit_entries_past_their_period() {
    use switchboard_core::config::DatabaseTarget;
    use switchboard_core::{CallDirection, CallId, Speaker};
    use switchboard_store::{AuditEntry, CallFilter, Database, NewCall};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (old, recent) = (CallId::new(), CallId::new());
    let day = Duration::from_secs(86_400);
    let now = std::time::SystemTime::now();
    runtime.block_on(async {
        let db = Database::connect(&DatabaseTarget::Sqlite { path: path.clone() })
            .await
            .unwrap();
        db.migrate().await.unwrap();
        for (id, age) in [(old, day * 40), (recent, day * 5)] {
            let at = now - age;
            db.insert_call(&NewCall {
                id,
                direction: CallDirection::Inbound,
                from_number: Some("+14155550100".into()),
                to_number: None,
                started_at: at,
                status: "active",
                context: None,
            })
            .await
            .unwrap();
            db.store_turn(id, 1, Speaker::Caller, "hello", at, at)
                .await
                .unwrap();
            db.end_call(id, at + Duration::from_secs(60), "agent_ended")
                .await
                .unwrap();
        }
        for age in [day * 400, day] {
            db.audit(&AuditEntry {
                at: now - age,
                actor: "key:test".into(),
                action: "call.create".into(),
                target: None,
                detail: None,
            })
            .await
            .unwrap();
        }
        db.close().await;
    });
    let retention = |args: &[&str], env: &[(&str, &str)]| {
        let out = switchboard(dir.path())
            .envs(env.iter().copied())
            .arg("retention")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let said = retention(&["run"], &[]);
    assert!(said.contains("nothing expires"), "{said}");
    let periods = [("RETENTION_DAYS", "30"), ("AUDIT_RETENTION_DAYS", "365")];
    let said = retention(&["run", "--dry-run"], &periods);
    assert!(said.contains("would remove: 1 calls"), "{said}");
    assert!(said.contains("1 audit entries"), "{said}");
    let said = retention(&["run"], &periods);
    assert!(said.contains("removed: 1 calls"), "{said}");
    let said = retention(&["run"], &periods);
    assert!(
        said.contains("removed: 0 calls"),
        "run again, nothing left: {said}"
    );
    runtime.block_on(async {
        let db = Database::connect(&DatabaseTarget::Sqlite { path })
            .await
            .unwrap();
        let calls = db
            .list_calls(&CallFilter {
                limit: 10,
                ..CallFilter::default()
            })
            .await
            .unwrap();
        let ids: Vec<CallId> = calls.iter().map(|c| c.id).collect();
        assert_eq!(ids, [recent], "the recent call stays, the old one is gone");
        assert!(db.turns(old).await.unwrap().is_empty());
        assert_eq!(db.turns(recent).await.unwrap().len(), 1);
        assert_eq!(db.audit_log(10).await.unwrap().len(), 1);
        // Another call past the period, for the serving node's own purge.
        db.insert_call(&NewCall {
            id: old,
            direction: CallDirection::Inbound,
            from_number: None,
            to_number: None,
            started_at: now - day * 60,
            status: "active",
            context: None,
        })
        .await
        .unwrap();
        db.end_call(old, now - day * 60, "agent_ended")
            .await
            .unwrap();
        db.close().await;
    });
    // A serving node purges at start and then every hour.
    let no_models = tempfile::tempdir().unwrap();
    let server = common::start_server_with(dir.path(), no_models.path(), &periods);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut purged = None;
    while purged.is_none() && Instant::now() < deadline {
        if let Ok(line) = server.log.recv_timeout(Duration::from_millis(200))
            && line.contains("retention: removed")
        {
            purged = Some(line);
        }
    }
    let purged = purged.expect("the node logs its purge");
    assert!(purged.contains("\"calls\":1"), "{purged}");
    stop(server);
}

#[test]
fn metrics_can_be_served_on_an_address_of_their_own_and_then_not_beside_the_api() {
    use std::io::{Read, Write};
    let status = |address: &str, path: &str| {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        (answer[9..12].to_owned(), answer)
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let no_models = tempfile::tempdir().unwrap();
    let server = common::start_server_with(
        dir.path(),
        no_models.path(),
        &[("METRICS_ADDRESS", &metrics)],
    );
    let (code, answer) = status(&metrics, "/metrics");
    assert_eq!(code, "200", "{answer}");
    assert!(answer.contains("switchboard_"), "{answer}");
    assert_eq!(status(&server.address, "/metrics").0, "404");
    assert_eq!(status(&server.address, "/health").0, "200");
    stop(server);
}

#[test]
fn with_a_certificate_the_api_is_https_with_tls_1_3_and_plain_http_or_tls_1_2_get_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::private_ca_certificate(dir.path());
    let no_models = tempfile::tempdir().unwrap();
    let server = common::start_server_with(
        dir.path(),
        no_models.path(),
        &[
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    );
    let url = format!("https://{}/health", server.address);
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .args(["-D", "-"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let answer = curl(&["--tlsv1.3"]);
    let text = String::from_utf8_lossy(&answer.stdout).to_lowercase();
    assert!(
        answer.status.success(),
        "{}",
        String::from_utf8_lossy(&answer.stderr)
    );
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        text.contains("strict-transport-security: max-age=31536000"),
        "{text}"
    );
    assert!(text.contains("\"status\":\"ok\""), "{text}");

    // A client that cannot go past TLS 1.2 is refused in the handshake (curl: 35, SSL connect error).
    let old = curl(&["--tlsv1.2", "--tls-max", "1.2"]);
    assert_eq!(
        old.status.code(),
        Some(35),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );

    // Plain HTTP on the port gets no answer at all: nothing is served unencrypted.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(&server.address).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        plain,
        "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    let _ = plain.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // And the server still serves after all three.
    assert!(curl(&[]).status.success());
    stop(server);
}

#[test]
fn serve_is_live_at_once_ready_with_models_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();

    // Without models: alive, not ready, and the JSON says why.
    let server = start_server(dir.path(), &dir.path().join("no-models"));
    let (code, body) = http_get(&server.address, "/health");
    assert_eq!((code, &body["status"]), (200, &serde_json::json!("ok")));
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (code, body) = http_get(&server.address, "/ready");
        assert_eq!(code, 503);
        if body["checks"]["models"]["status"] != "verifying" || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(body["status"], "not_ready");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("whisper-tiny: missing"),
        "{body}"
    );
    stop(server);

    // With the provisioned models: ready once they are verified and loaded (the phrase cache is warmed
    // on the first start, which synthesises every fixed phrase).
    let Some(models) = provisioned_models() else {
        return;
    };
    let server = start_server(dir.path(), &models);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, body) = http_get(&server.address, "/ready");
        if code == 200 {
            assert_eq!(body["status"], "ready");
            assert_eq!(body["checks"]["engines"]["status"], "ok", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(server);
}

#[test]
fn bench_audio_prints_every_table() {
    let dir = tempfile::tempdir().unwrap();
    if !speech_corpus_installed() {
        return;
    }
    let out = switchboard(dir.path())
        .args(["bench", "audio", "--prompts", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // MODELS_DIR is empty here: Silero is skipped with a note, everything else is measured.
    for heading in [
        "Cost per 20 ms frame",
        "full chain, spectral NS, energy VAD",
        "| energy | 10 dB",
        "Noise suppression",
        "Echo suppression",
        "Silero VAD not measured",
    ] {
        assert!(text.contains(heading), "missing {heading}:\n{text}");
    }
}

#[test]
fn transcribe_prints_what_a_real_recording_says() {
    let wav = std::path::Path::new("/usr/share/asterisk/sounds/en/auth-incorrect.wav");
    if !speech_corpus_installed() {
        return;
    }
    // The configured MODELS_DIR (where `make test` provisions), not the temp DATA_DIR's.
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let transcribe = |args: &[&std::ffi::OsStr]| {
        switchboard(dir.path())
            .env("MODELS_DIR", &models)
            .arg("transcribe")
            .args(args)
            .output()
            .unwrap()
    };
    let out = transcribe(&[wav.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        text.contains("password incorrect") && text.contains("pound key"),
        "{text}"
    );

    let out = transcribe(&["--json".as_ref(), wav.as_os_str()]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["segments"][0]["end"].as_f64().unwrap() > 1.0);
    assert!(json["audio_seconds"].as_f64().unwrap() > 3.0);

    // A file that is not a WAV: a clear error and a failing exit code.
    let not_wav = dir.path().join("notes.wav");
    std::fs::write(&not_wav, b"this is text").unwrap();
    let out = transcribe(&[not_wav.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    // Silence is an empty transcript, not an error or a hallucination.
    let silent = dir.path().join("silence.wav");
    write_wav(&silent, std::iter::repeat_n(0i16, 32_000));
    let out = transcribe(&[silent.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "silence transcribed as {:?}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

/// Writes 16 kHz mono PCM16 `samples` to `path`.
fn write_wav(path: &Path, samples: impl IntoIterator<Item = i16>) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn say_then_transcribe_recovers_the_sentence() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a.wav");
    let out = switchboard(dir.path())
        .env("MODELS_DIR", &models)
        .args(["say", "Your claim number is 4 4 7 2.", "-o"])
        .arg(&wav)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    // The report names the voice and the time to the first chunk.
    assert!(
        report.contains("en_US-joe-medium") && report.contains("first after"),
        "{report}"
    );
    let out = switchboard(dir.path())
        .env("MODELS_DIR", &models)
        .arg("transcribe")
        .arg(&wav)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let heard = String::from_utf8_lossy(&out.stdout);
    let words: String = heard
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    assert_eq!(words, "yourclaimnumberis4472", "heard {heard:?}");

    // A voice that does not exist: a start-up error naming the voices there are, no file written.
    let missing = dir.path().join("b.wav");
    let out = switchboard(dir.path())
        .env("MODELS_DIR", &models)
        .args(["say", "hello", "--voice", "af_nobody", "-o"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("af_nobody") && error.contains("en_US-joe-medium"),
        "{error}"
    );
    assert!(!missing.exists());
}

#[test]
fn transcribe_handles_empty_noisy_and_overlong_audio() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let transcribe = |wav: &Path| {
        switchboard(dir.path())
            .env("MODELS_DIR", &models)
            .args(["transcribe", "--json"])
            .arg(wav)
            .output()
            .unwrap()
    };

    // Zero-length: an empty transcript.
    let empty = dir.path().join("empty.wav");
    write_wav(&empty, []);
    let out = transcribe(&empty);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["text"], "");

    // Five seconds of white noise: no words invented.
    let noise = dir.path().join("noise.wav");
    let mut rng = switchboard_audio::corpus::Rng::new(7);
    write_wav(
        &noise,
        (0..80_000).map(|_| ((rng.next_f64() - 0.5) * 16_000.0) as i16),
    );
    let out = transcribe(&noise);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = json["text"].as_str().unwrap();
    assert!(
        text.split_whitespace().count() <= 2,
        "noise transcribed as {text:?}"
    );

    // Over ten minutes: refused before any decoding, quickly, with the limit in the message.
    let long = dir.path().join("long.wav");
    write_wav(&long, std::iter::repeat_n(0i16, 16_000 * 601));
    let started = Instant::now();
    let out = transcribe(&long);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("600 s"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// The shipped scenarios, through the runner as an operator runs it, on the embedded default model.
#[test]
fn agent_test_fills_at_least_95_percent_of_the_claim_fields_and_asks_nothing_twice() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/scenarios/claims.json");
    let report = dir.path().join("report.json");
    let out = switchboard(dir.path())
        .env("MODELS_DIR", &models)
        .arg("agent-test")
        .arg(&scenarios)
        .args(["--min-accuracy", "0.95", "--json"])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "below 95 %: {stdout}");
    assert!(stdout.contains("field accuracy: "), "{stdout}");
    assert!(
        stdout.contains("questions asked again after their answer: 0;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected tool calls missing: 0;"),
        "{stdout}"
    );
    let reports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let reports = reports.as_array().unwrap();
    assert!(reports.len() >= 40, "{}", reports.len());
    // Transfers are asked for in so many words: none waits on the model's label.
    for transfer in reports.iter().filter(|r| {
        r["tools_called"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "transfer_to_human")
    }) {
        let waits: Vec<u64> = transfer["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["model_millis"].as_u64().unwrap())
            .collect();
        assert!(waits.iter().all(|&ms| ms <= 1_300), "{transfer}");
    }
}

/// A shipped scenario spoken by Piper and played through a real call: the stored claim is scored, and a
/// caller who asks for a person is transferred.
#[test]
fn agent_test_audio_plays_a_scenario_through_a_real_call_and_scores_the_stored_claim() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/scenarios/claims.json");
    let report = dir.path().join("report.json");
    let out = switchboard(dir.path())
        .env("MODELS_DIR", &models)
        .env("LOG_LEVEL", "warn")
        .arg("agent-test")
        .arg(&scenarios)
        .args([
            "--audio",
            "--voice",
            "piper",
            "--only",
            "asks for a representative",
            "--json",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("spoken (Piper): field accuracy "),
        "{stdout}"
    );
    let reports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let score = &reports[0]["score"];
    assert_eq!(score["ended_as_expected"], true, "{score}");
    let right = score["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["correct"] == true)
        .count();
    assert!(right >= 1, "{score}");
    // What the caller said is stored, line by line.
    let transcript = reports[0]["call"]["transcript"].as_array().unwrap();
    assert!(
        transcript
            .iter()
            .filter(|t| t["speaker"] == "caller")
            .count()
            >= 4,
        "{transcript:?}"
    );
}

#[test]
fn agent_test_refuses_a_file_that_is_not_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name": "not a list"}"#).unwrap();
    let out = switchboard(dir.path())
        .arg("agent-test")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a list of scenarios"), "{err}");
}

#[test]
fn kb_add_indexes_documents_once_and_search_finds_the_relevant_passage() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("claims")).unwrap();
    std::fs::write(
        docs.join("cover.md"),
        "# Car cover\n\nGlass breakage, including the windscreen, is covered with no deductible.\n\n\
         # Roadside assistance\n\nTowing up to 50 miles is included after a breakdown or an accident.",
    )
    .unwrap();
    std::fs::write(
        docs.join("claims/deadlines.txt"),
        "Claims must be reported within 30 days of the incident. Late claims need a written explanation.",
    )
    .unwrap();
    std::fs::write(docs.join("ignored.bin"), [0u8, 1, 2]).unwrap();
    let kb = |args: &[&str]| {
        switchboard(dir.path())
            .env("MODELS_DIR", &models)
            .arg("kb")
            .args(args)
            .output()
            .unwrap()
    };
    let out = kb(&["add", docs.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 added, 0 already indexed, 0 failed"),
        "{stdout}"
    );
    let out = kb(&["add", docs.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 added, 2 already indexed"));

    let out = kb(&["search", "is my broken windshield covered?", "-k", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[cover.md") && stdout.contains("windscreen"),
        "{stdout}"
    );
    let out = kb(&["search", "how long do I have to report a claim", "-k", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[deadlines.txt"), "{stdout}");

    let out = kb(&["add", dir.path().join("missing.md").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn bench_llm_prints_first_token_and_speed_per_engine() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = switchboard(dir.path())
        .env("MODELS_DIR", &models)
        .env("OLLAMA_HOST", "http://127.0.0.1:9")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .args(["bench", "llm", "--turns", "3", "--max-tokens", "16"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let smollm = stdout
        .lines()
        .find(|l| l.starts_with("embedded:SmolLM2"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        smollm.contains(" ms") && !smollm.contains("not measured"),
        "{smollm}"
    );
    assert!(
        stdout.contains("ollama http://127.0.0.1:9/") && stdout.contains("not measured"),
        "{stdout}"
    );
}
