//! The binary as an operator meets it: bad settings, redacted output, serve / health / ready / SIGTERM, migrate.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A command with a clean configuration environment rooted in `data_dir`.
fn switchboard(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if switchboard_core::config::settings::ALL
            .iter()
            .any(|s| s.env == key)
            || key == "CONFIG_FILE"
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("DATA_DIR", data_dir)
        .current_dir(data_dir)
        .stdin(Stdio::null());
    cmd
}

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

/// A running `switchboard serve` and the address it listens on (read from its JSON log).
struct Server {
    child: Child,
    address: String,
    log: std::sync::mpsc::Receiver<String>,
}

fn start_server(data_dir: &Path, models_dir: &Path) -> Server {
    let mut child = switchboard(data_dir)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("MODELS_DIR", models_dir)
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
        if event["message"] == "listening" {
            let address = event["address"].as_str().unwrap().to_owned();
            return Server {
                child,
                address,
                log: rx,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not report its address");
}

fn http_get(address: &str, path: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (code, serde_json::from_str(body).unwrap())
}

fn stop(mut server: Server) {
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines: Vec<String> = server.log.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("\"signal\":\"SIGTERM\"")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"message\":\"stopped\"")),
        "{lines:?}"
    );
}

/// Whether Debian's recorded prompts are installed; outside CI a missing corpus skips, under CI=true it fails.
fn speech_corpus_installed() -> bool {
    let installed =
        std::path::Path::new("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
            .is_file()
            && std::path::Path::new("/usr/share/asterisk/sounds/en/auth-incorrect.wav").is_file();
    if !installed {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true and the asterisk prompts are missing"
        );
        eprintln!("SKIPPED: asterisk prompts not installed (make setup)");
    }
    installed
}

/// The models `make test` provisions once into MODELS_DIR (the configured one, stable across clones).
fn provisioned_models() -> Option<PathBuf> {
    let out = Command::new(BIN)
        .args(["models", "list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = PathBuf::from(list["models_dir"].as_str().unwrap());
    let ok = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["required"] == true)
        .all(|m| m["status"] == "present");
    if ok {
        Some(dir)
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CI=true and the default models are not provisioned in {}: run `make models`",
            dir.display()
        );
    } else {
        eprintln!(
            "SKIPPED: default models not provisioned in {}; run `make models`",
            dir.display()
        );
        None
    }
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

    // With the provisioned models: ready.
    let Some(models) = provisioned_models() else {
        return;
    };
    let server = start_server(dir.path(), &models);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = http_get(&server.address, "/ready");
        if code == 200 {
            assert_eq!(body["status"], "ready");
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
fn agent_test_fills_at_least_80_percent_of_the_claim_fields_on_the_default_model() {
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
        .args(["--min-accuracy", "0.8", "--json"])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "below 80 %: {stdout}");
    assert!(stdout.contains("field accuracy: "), "{stdout}");
    let reports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 12);
    let transfer = reports
        .iter()
        .find(|r| r["name"].as_str().unwrap().contains("human"))
        .unwrap();
    assert!(
        transfer["tools_called"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "transfer_to_human"),
        "{transfer}"
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
