//! The SIP user agent against real SIP peers on loopback, calling `switchboard serve` with
//! TELEPHONY_PROVIDER=sip. sipp (Debian's sip-tester): its built-in `uac` scenario (INVITE with an SDP
//! offer, ACK, BYE) runs 200 calls one after the other and 20 at once; scenarios of ours check 486 Busy
//! Here on a full node, 488 for an offer without G.711, OPTIONS after a flood of malformed datagrams, and
//! a transfer: a caller (real speech played from a pcap) asks for a person and gets a REFER to the target.
//! baresip, a softphone, calls over SIP-TLS with SRTP required, a recording of real speech as its
//! microphone, and records what it hears: the stored transcript holds the caller's words and the
//! recording holds the agent's answer.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{http_get, provisioned_models, speech_corpus_installed, switchboard};
use switchboard_audio::g711::ulaw_encode;
use switchboard_core::Speaker;
use switchboard_core::config::DatabaseTarget;
use switchboard_store::{CallFilter, CallRecord, Database, TurnRecord};
use switchboard_telephony::sip::rtp::{self, RtpHeader};

/// A `switchboard serve` taking SIP calls, the ports it took, and its log so far.
struct SipNode {
    child: Child,
    sip_port: u16,
    http: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for SipNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SipNode {
    /// Serves on a free SIP port with the provisioned models, `env` on top; returns once it takes calls.
    fn start(models: &Path, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = switchboard(dir.path())
            .env("MODELS_DIR", models)
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("TELEPHONY_PROVIDER", "sip")
            .env("SIP_PORT", "0")
            .env("SIP_ADDRESS", "127.0.0.1")
            .env("LOG_LEVEL", "info")
            .envs(env.iter().copied())
            .arg("serve")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        // The whole log is kept (and the pipe drained, so the server never blocks on it).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut sip_port, mut http, mut loaded) = (None, None, false);
        while Instant::now() < deadline && !(sip_port.is_some() && http.is_some() && loaded) {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            match event["message"].as_str() {
                Some("SIP listening on UDP and TCP") => {
                    sip_port = event["port"].as_u64().map(|p| p as u16);
                }
                Some("listening") => http = event["address"].as_str().map(str::to_owned),
                Some("models loaded; taking calls") => loaded = true,
                _ => {}
            }
        }
        let sip_port = sip_port.expect("the server reports its SIP port");
        let http = http.expect("the server reports its HTTP address");
        assert!(loaded, "the models load within two minutes");
        Self {
            child,
            sip_port,
            http,
            log,
            _dir: dir,
        }
    }

    /// Every log line so far.
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to `within` for a log line containing `needle`.
    fn wait_for_log(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return Some(line);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Stops the server as an operator does (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        common::terminate(&mut self.child, Duration::from_secs(20));
    }

    /// A new supervisor API key for this node's database.
    fn api_key(&self) -> String {
        let out = switchboard(self.data_dir())
            .args(["keys", "create", "--role", "supervisor"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the server is still running"
        );
    }
}

/// The provisioned models, when Asterisk's recorded speech is installed too (tests whose caller speaks).
fn models_and_speech() -> Option<PathBuf> {
    if !speech_corpus_installed() {
        return None;
    }
    provisioned_models()
}

/// A free UDP port on loopback (sipp's own SIP and media ports, so tests can run side by side).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a sipp run reported.
struct SippRun {
    exit: Option<i32>,
    successful: u64,
    failed: u64,
    errors: String,
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// Runs sipp against `target` with `args` (a scenario and call counts) and reads its final statistics.
fn sipp(target: &str, args: &[&str]) -> SippRun {
    sipp_on(Some(target), free_udp_port(), args)
}

/// Runs sipp on SIP port `port`: a caller of `target`, or with no target a server (registrar, callee)
/// waiting for the node.
fn sipp_on(target: Option<&str>, port: u16, args: &[&str]) -> SippRun {
    sipp_at("127.0.0.1", target, port, args)
}

/// Runs sipp from loopback address `local` (127.0.0.2 is another machine to a node that trusts only
/// 127.0.0.1).
fn sipp_at(local: &str, target: Option<&str>, port: u16, args: &[&str]) -> SippRun {
    // A media port found free can be taken by a test running beside this one before sipp binds it (sipp
    // then stops at once, having sent nothing): such a run is tried again on other ports.
    let mut run = sipp_once(local, target, port, args);
    for _ in 0..2 {
        if !run.errors.contains("Address already in use") {
            break;
        }
        run = sipp_once(local, target, port, args);
    }
    run
}

fn sipp_once(local: &str, target: Option<&str>, port: u16, args: &[&str]) -> SippRun {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.csv");
    let errors = dir.path().join("errors.log");
    let status = Command::new("sipp")
        .args(target)
        .args(args)
        // Generous: a call whose answers come from the models is slower on a loaded machine.
        .args(["-i", local, "-nostdin", "-timeout", "150s"])
        .args(["-p", &port.to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-trace_stat", "-stf"])
        .arg(&stats)
        .args(["-trace_err", "-error_file"])
        .arg(&errors)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp runs (package sip-tester; `make test` installs it)");
    let text = std::fs::read_to_string(&stats).unwrap_or_default();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(';').collect())
        .collect();
    let value = |name: &str| -> u64 {
        let (Some(header), Some(last)) = (rows.first(), rows.last()) else {
            return 0;
        };
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    SippRun {
        exit: status.code(),
        successful: value("SuccessfulCall(C)"),
        failed: value("FailedCall(C)"),
        errors: std::fs::read_to_string(&errors).unwrap_or_default(),
    }
}

fn assert_all_succeeded(run: &SippRun, calls: u64) {
    assert_eq!(
        (run.exit, run.successful, run.failed),
        (Some(0), calls, 0),
        "{}",
        run.errors
    );
}

#[test]
fn sipp_calls_one_after_another_and_twenty_at_once_all_complete() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let mut node = SipNode::start(&models, &[("MAX_CONCURRENT_CALLS", "25")]);
    let target = node.target();
    // 200 calls in sequence: INVITE, 200 with our SDP answer, ACK, BYE at once, 200.
    let sequential = sipp(
        &target,
        &["-sn", "uac", "-m", "200", "-l", "1", "-r", "50", "-d", "0"],
    );
    assert_all_succeeded(&sequential, 200);
    // 20 at once, each held for 2 s while the agent greets the caller over RTP.
    let concurrent = sipp(
        &target,
        &[
            "-sn", "uac", "-m", "20", "-l", "20", "-r", "20", "-d", "2000",
        ],
    );
    assert_all_succeeded(&concurrent, 20);
    node.assert_running();
}

#[test]
fn a_full_node_answers_486_a_bad_offer_488_and_malformed_sip_leaves_it_answering() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let mut node = SipNode::start(&models, &[("MAX_CONCURRENT_CALLS", "1")]);
    let target = node.target();

    // One call holds the only slot for 6 s; a second caller hears 486 Busy Here.
    let holder = {
        let target = target.clone();
        std::thread::spawn(move || sipp(&target, &["-sn", "uac", "-m", "1", "-d", "6000"]))
    };
    std::thread::sleep(Duration::from_secs(2));
    let busy = scenario("busy.xml");
    assert_all_succeeded(
        &sipp(&target, &["-sf", busy.to_str().unwrap(), "-m", "1"]),
        1,
    );
    assert_all_succeeded(&holder.join().unwrap(), 1);

    // An offer of Opus alone: 488 Not Acceptable Here, before any dialog.
    let opus = scenario("no_common_codec.xml");
    assert_all_succeeded(
        &sipp(&target, &["-sf", opus.to_str().unwrap(), "-m", "1"]),
        1,
    );

    // A flood of malformed SIP over UDP and TCP.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut garbage = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let shapes: [&[u8]; 6] = [
        b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP",
        b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\nContent-Length: 999999\r\n\r\nv=0",
        b"BYE sip:x SIP/2.0\r\nCall-ID\r\nCSeq: banana BYE\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKnobody\r\n\r\n",
        b"OPTIONS sip:agent SIP/2.0\r\nFrom: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        b"\0\0\0\0",
    ];
    for i in 0..2_000 {
        let datagram = match i % 4 {
            0 => garbage(1 + i % 1_400),
            1 => shapes[i % shapes.len()].to_vec(),
            2 => {
                let mut bytes = shapes[0].to_vec();
                bytes.extend(garbage(i % 300));
                bytes
            }
            _ => garbage(60_000),
        };
        let _ = socket.send_to(&datagram, &target);
    }
    if let Ok(mut stream) = TcpStream::connect(&target) {
        for _ in 0..50 {
            let _ = stream.write_all(&garbage(2_000));
        }
        let _ = stream.write_all(b"INVITE sip:agent SIP/2.0\r\nContent-Length: 70000\r\n\r\n");
    }
    std::thread::sleep(Duration::from_millis(500));
    node.assert_running();
    let options = scenario("options.xml");
    assert_all_succeeded(
        &sipp(&target, &["-sf", options.to_str().unwrap(), "-m", "1"]),
        1,
    );
    assert_all_succeeded(
        &sipp(&target, &["-sn", "uac", "-m", "3", "-l", "1", "-d", "500"]),
        3,
    );
    node.assert_running();
}

#[test]
fn a_caller_from_outside_the_trusted_sources_must_prove_the_password_and_a_refused_one_leaves_no_record()
 {
    let Some(models) = provisioned_models() else {
        return;
    };
    let mut node = SipNode::start(
        &models,
        &[
            ("SIP_TRUSTED_SOURCES", "127.0.0.1"),
            ("SIP_INBOUND_USERNAME", "caller"),
            ("SIP_INBOUND_PASSWORD", "s3cret"),
        ],
    );
    let target = node.target();
    // From the trusted address: no challenge.
    assert_all_succeeded(&sipp(&target, &["-sn", "uac", "-m", "1", "-d", "500"]), 1);
    let stranger = |scenario_file: &str, password: &str| {
        let file = scenario(scenario_file);
        sipp_at(
            "127.0.0.2",
            Some(&target),
            free_udp_port(),
            &[
                "-sf",
                file.to_str().unwrap(),
                "-m",
                "1",
                "-au",
                "caller",
                "-ap",
                password,
            ],
        )
    };
    // From elsewhere with a wrong password: challenged, then 403 Forbidden.
    assert_all_succeeded(&stranger("digest_refused.xml", "guess"), 1);
    // Without answering the challenge, the built-in caller gets no call either.
    let unanswered = sipp_at(
        "127.0.0.2",
        Some(&target),
        free_udp_port(),
        &["-sn", "uac", "-m", "1"],
    );
    assert_eq!(unanswered.successful, 0, "{}", unanswered.errors);
    // With the password: the call is answered and carried.
    assert_all_succeeded(&stranger("digest_caller.xml", "s3cret"), 1);

    // Two calls were let in, and only those two were recorded; the authenticated one says so.
    let calls = stored_calls(&node);
    assert_eq!(
        calls.len(),
        2,
        "{:?}",
        calls.iter().map(|(c, _)| &c.context).collect::<Vec<_>>()
    );
    let authenticated = calls
        .iter()
        .filter(|(call, _)| {
            call.context
                .as_deref()
                .is_some_and(|c| c.contains("\"authenticated\":true"))
        })
        .count();
    assert_eq!(authenticated, 1);
    // The refusal was logged with the stranger's address and never a caller's number.
    let log = node.log();
    assert!(
        log.iter()
            .any(|l| l.contains("refused an INVITE") && l.contains("127.0.0.2")),
        "the refusal is logged"
    );
    assert!(
        !log.iter().any(|l| l.contains("14155550123")),
        "no caller number in the log"
    );
    node.assert_running();
}

/// Writes `caller.wav`: 1 s of line silence, Asterisk's recorded "Hello.", then 12 s of silence while the
/// agent answers (8 kHz mono, as a phone line).
fn caller_recording(dir: &Path) -> PathBuf {
    let mut samples = vec![0i16; 8_000];
    samples.extend(prompt("hello"));
    samples.extend(vec![0i16; 8_000 * 12]);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let path = dir.join("caller.wav");
    let mut out = hound::WavWriter::create(&path, spec).unwrap();
    for sample in samples {
        out.write_sample(sample).unwrap();
    }
    out.finalize().unwrap();
    path
}

/// A phone that calls over SIP-TLS with SRTP required, as a call center that encrypts its lines does.
#[test]
fn baresip_calls_over_tls_with_srtp_and_real_speech_and_hears_the_agent_answer() {
    let Some(models) = models_and_speech() else {
        return;
    };
    let phone = tempfile::tempdir().unwrap();
    // The node's certificate, from a private CA the phone trusts (and the node trusts for its own TLS
    // connections back to the phone).
    let (ca, cert, key) = common::private_ca_certificate(phone.path());
    let tls_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    // baresip writes its machine's own network address into its SDP but, calling a loopback address,
    // sends from 127.0.0.1: to the node it looks like a caller behind NAT, which symmetric RTP serves.
    let node = SipNode::start(
        &models,
        &[
            ("RTP_PORT_MIN", "31000"),
            ("RTP_PORT_MAX", "31999"),
            ("SIP_SYMMETRIC_RTP", "true"),
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
            ("SIP_TLS_PORT", &tls_port),
            ("SIP_TLS_CA_FILE", ca.to_str().unwrap()),
            ("SIP_SRTP", "required"),
        ],
    );
    // A stranger that opens a TLS connection and never says a word holds up no one else's handshake.
    let _silent = TcpStream::connect(("127.0.0.1", tls_port.parse::<u16>().unwrap())).unwrap();
    let phone_cert = phone.path().join("phone.pem");
    std::fs::write(
        &phone_cert,
        [std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()].concat(),
    )
    .unwrap();
    let caller = caller_recording(phone.path());
    let heard_dir = phone.path().join("heard");
    std::fs::create_dir(&heard_dir).unwrap();
    let conf = phone.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    // baresip plays the recording as its microphone (aufile) and writes what it sends and receives to WAV
    // files (sndfile); it hangs up when the recording ends.
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip}\nsip_certificate {phone_cert}\n\
             sip_cafile {ca}\naudio_player aufile,{discard}\naudio_source aufile,{caller}\naudio_alert aufile,{discard}\n\
             ausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\n\
             rtp_ports 32000-32099\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\n\
             module aufile.so\nmodule sndfile.so\nmodule srtp.so\nmodule_app account.so\n\
             module_app menu.so\n\
             module_app rtcpsummary.so\n\
             snd_path {heard}\n",
            sip = free_udp_port(),
            phone_cert = phone_cert.display(),
            ca = ca.display(),
            discard = phone.path().join("played.wav").display(),
            caller = caller.display(),
            heard = heard_dir.display(),
        ),
    )
    .unwrap();
    // The account's transport and mediaenc make baresip call over TLS and refuse plain RTP.
    std::fs::write(
        conf.join("accounts"),
        "<sip:caller@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand\n",
    )
    .unwrap();
    let phone_call = Command::new("baresip")
        .arg("-f")
        .arg(&conf)
        .args([
            "-e",
            &format!("/dial sip:agent@127.0.0.1:{tls_port};transport=tls"),
        ])
        .args(["-t", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("baresip runs (package baresip-core; `make test` installs it)");
    // While the call is up, a supervisor sends key presses to the phone through the API.
    let key = node.api_key();
    let deadline = Instant::now() + Duration::from_secs(20);
    let call_id = loop {
        if let Some((call, _)) = stored_calls(&node)
            .into_iter()
            .find(|(c, _)| c.status == "active")
        {
            break call.id;
        }
        assert!(Instant::now() < deadline, "the call becomes active");
        std::thread::sleep(Duration::from_millis(200));
    };
    // The node's API is HTTPS with the same certificate.
    let post = |digits: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .args(["-w", "\n%{http_code}", "-X", "POST"])
            .args(["-H", &format!("Authorization: Bearer {key}")])
            .args(["-H", "Content-Type: application/json"])
            .args([
                "--data",
                &serde_json::json!({ "digits": digits }).to_string(),
            ])
            .arg(format!("https://{}/api/v1/calls/{call_id}/dtmf", node.http))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse::<u16>().unwrap_or(0), body.to_owned())
    };
    let (code, sent) = post("7#");
    assert_eq!(code, 202, "{sent}");
    let (code, refused) = post("7; DROP");
    assert_eq!(code, 400, "{refused}");
    let out = phone_call.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("Call established"), "{log}");
    assert!(
        log.contains("SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)"),
        "{log}"
    );
    // baresip decoded our RFC 4733 packets as the two keys.
    assert!(log.contains("received event: '7' (end=1)"), "{log}");
    assert!(log.contains("received event: '#' (end=1)"), "{log}");
    // Its RTCP summary at hang-up: our sender reports reached it.
    let summary = log
        .lines()
        .find(|l| l.contains("EX=BareSip;"))
        .unwrap_or_else(|| panic!("baresip printed its RTCP summary: {log}"));
    assert!(!summary.contains("ERROR"), "{summary}");

    // What baresip received from the agent, as its sndfile module recorded it.
    let heard = std::fs::read_dir(&heard_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("baresip recorded what it heard: {log}"));
    let transcribed = switchboard(phone.path())
        .env("MODELS_DIR", &models)
        .env("LOG_LEVEL", "warn")
        .arg("transcribe")
        .arg(&heard)
        .output()
        .unwrap();
    let agent_words = String::from_utf8_lossy(&transcribed.stdout).to_lowercase();
    // The node latched onto baresip's stream and took every packet of it.
    let audio = node
        .wait_for_log("SIP call audio", Duration::from_secs(10))
        .expect("the node logs the call's audio counts");
    let audio: serde_json::Value = serde_json::from_str(&audio).unwrap();
    assert!(audio["received"].as_u64().unwrap() > 100, "{audio}");
    assert_eq!(audio["refused"].as_u64(), Some(0), "{audio}");
    // Every packet it took was SRTP that authenticated (and baresip's RTCP summary above says it
    // authenticated and decrypted our SRTCP reports).
    assert_eq!(audio["srtp"], true, "{audio}");
    assert_eq!(audio["unauthenticated"].as_u64(), Some(0), "{audio}");
    assert!(
        agent_words.contains("thank you for calling"),
        "the greeting reached the phone: {agent_words}"
    );
    assert!(
        agent_words.contains("name"),
        "the answer to \"Hello.\" (asking for the caller's name) reached the phone: {agent_words}"
    );

    // The stored transcript holds the caller's words.
    let stored = stored_calls(&node);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (call, turns) = &stored[0];
    assert_eq!(call.from_number.as_deref(), Some("caller"));
    let caller_said: Vec<String> = turns
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.to_lowercase())
        .collect();
    assert!(caller_said.iter().any(|t| t.contains("hello")), "{turns:?}");
}

/// Every call the node stored, newest first, with its turns.
fn stored_calls(node: &SipNode) -> Vec<(CallRecord, Vec<TurnRecord>)> {
    let path = node.data_dir().join("switchboard.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = Database::connect(&DatabaseTarget::Sqlite { path })
            .await
            .unwrap();
        let calls = db
            .list_calls(&CallFilter {
                limit: 50,
                ..CallFilter::default()
            })
            .await
            .unwrap();
        let mut stored = Vec::new();
        for call in calls {
            let turns = db.turns(call.id).await.unwrap();
            stored.push((call, turns));
        }
        db.close().await;
        stored
    })
}

/// The samples of one of Asterisk's recorded prompts (8 kHz mono).
fn prompt(name: &str) -> Vec<i16> {
    let mut wav =
        hound::WavReader::open(format!("/usr/share/asterisk/sounds/en/{name}.wav")).unwrap();
    assert_eq!(wav.spec().sample_rate, 8_000);
    wav.samples::<i16>().map(Result::unwrap).collect()
}

/// The one's-complement checksum of an IPv4 header.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One side of a call as a pcap of RTP (PCMU, 20 ms packets) for sipp's `play_pcap_audio`: 6 s of
/// silence while the agent greets, then each of Asterisk's `prompts` with 7 s of silence after it while
/// the agent answers, and 12 s after the last.
fn speech_pcap(dir: &Path, prompts: &[&str]) -> PathBuf {
    let mut samples = vec![0i16; 8_000 * 6];
    for (i, name) in prompts.iter().enumerate() {
        samples.extend(prompt(name));
        let pause = if i + 1 == prompts.len() { 12 } else { 7 };
        samples.extend(vec![0i16; 8_000 * pause]);
    }
    pcap_of(dir, &samples)
}

/// `samples` (8 kHz) as the RTP stream of a pcap file for sipp's `play_pcap_audio`, in PCMU.
fn pcap_of(dir: &Path, samples: &[i16]) -> PathBuf {
    // Global header: pcap 2.4, microsecond timestamps, Ethernet frames.
    let mut pcap = Vec::new();
    for field in [0xa1b2_c3d4_u32, 0x0004_0002, 0, 0, 65_535, 1] {
        pcap.extend_from_slice(&field.to_le_bytes());
    }
    for (i, frame) in samples.chunks(160).enumerate() {
        let mut payload: Vec<u8> = frame.iter().map(|&s| ulaw_encode(s)).collect();
        payload.resize(160, 0xff);
        let header = RtpHeader {
            marker: i == 0,
            payload_type: 0,
            sequence: i as u16,
            timestamp: i as u32 * 160,
            ssrc: 0x5151_5151,
        };
        let rtp = rtp::encode(&header, &payload);
        let udp_len = 8 + rtp.len();
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&(i as u16).to_be_bytes());
        ip.extend_from_slice(&[0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let checksum = ipv4_checksum(&ip);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        let mut packet = vec![0u8; 12];
        packet.extend_from_slice(&[0x08, 0x00]);
        packet.extend_from_slice(&ip);
        for field in [6_000u16, 6_002, udp_len as u16, 0] {
            packet.extend_from_slice(&field.to_be_bytes());
        }
        packet.extend_from_slice(&rtp);
        let micros = i as u64 * 20_000;
        for field in [
            (micros / 1_000_000) as u32,
            (micros % 1_000_000) as u32,
            packet.len() as u32,
            packet.len() as u32,
        ] {
            pcap.extend_from_slice(&field.to_le_bytes());
        }
        pcap.extend_from_slice(&packet);
    }
    let path = dir.join("caller.pcap");
    std::fs::write(&path, pcap).unwrap();
    path
}

#[test]
fn a_caller_who_asks_for_a_person_is_transferred_by_refer_to_the_target() {
    let Some(models) = models_and_speech() else {
        return;
    };
    let node = SipNode::start(
        &models,
        &[
            ("TRANSFER_TARGET", "+14155550111"),
            ("RTP_PORT_MIN", "33000"),
            ("RTP_PORT_MAX", "33999"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    // "Hello.", then "Waiting to speak with a representative."
    let pcap = speech_pcap(dir.path(), &["hello", "queue-callswaiting"]);
    let scenario_text = std::fs::read_to_string(scenario("transfer.xml"))
        .unwrap()
        .replace("PCAP_FILE", pcap.to_str().unwrap());
    let transfer = dir.path().join("transfer.xml");
    std::fs::write(&transfer, scenario_text).unwrap();
    // sipp checks the REFER's Refer-To (the target at this peer), accepts it and leaves with BYE.
    assert_all_succeeded(
        &sipp(
            &node.target(),
            &["-sf", transfer.to_str().unwrap(), "-m", "1"],
        ),
        1,
    );
    let stored = stored_calls(&node);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (call, turns) = &stored[0];
    assert_eq!(call.end_reason.as_deref(), Some("transferred"), "{turns:?}");
    assert!(
        turns
            .iter()
            .any(|t| t.speaker == Speaker::Caller
                && t.text.to_lowercase().contains("representative")),
        "{turns:?}"
    );
}

/// A sipp server (registrar or callee) on a free port, running `scenario_file` for one call.
/// sipp as the far end of a call the node places (`callee.xml`), answering with `pcap` as its speech; its
/// port and run.
fn callee_playing(dir: &Path, pcap: &Path) -> (u16, std::thread::JoinHandle<SippRun>) {
    let callee_file = dir.join("callee.xml");
    std::fs::write(
        &callee_file,
        std::fs::read_to_string(scenario("callee.xml"))
            .unwrap()
            .replace("PCAP_FILE", pcap.to_str().unwrap()),
    )
    .unwrap();
    sipp_server(&callee_file)
}

/// A node whose trunk is sipp on `port` (digest user 1001), with `settings` besides, placing a call to
/// +14155550123 through the API; the node and the API's answer.
fn call_through_trunk(
    models: &Path,
    port: u16,
    settings: &[(&str, &str)],
) -> (SipNode, serde_json::Value) {
    let trunk = format!("sip:127.0.0.1:{port}");
    let mut all = vec![
        ("SIP_TRUNK", trunk.as_str()),
        ("SIP_USERNAME", "1001"),
        ("SIP_PASSWORD", "s3cret"),
    ];
    all.extend_from_slice(settings);
    let node = SipNode::start(models, &all);
    let key = node.api_key();
    let (code, created) = common::http_post_json(
        &node.http,
        "/api/v1/calls",
        &key,
        &serde_json::json!({ "to_number": "+14155550123", "from_number": "+14155550100" }),
    );
    assert_eq!(code, 201, "{created}");
    (node, created)
}

/// The node's first call to end, once its record ends (its synthesis written), with its turns.
fn first_ended_call(node: &SipNode) -> (CallRecord, Vec<TurnRecord>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stored = stored_calls(node);
        if let Some(ended) = stored.into_iter().find(|(c, _)| c.ended_at.is_some()) {
            return ended;
        }
        assert!(Instant::now() < deadline, "the call's record ends");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn sipp_server(scenario_file: &Path) -> (u16, std::thread::JoinHandle<SippRun>) {
    let port = free_udp_port();
    let file = scenario_file.to_owned();
    let run = std::thread::spawn(move || {
        sipp_on(None, port, &["-sf", file.to_str().unwrap(), "-m", "1"])
    });
    // sipp binds its port before reading anything; give it the moment it takes to start.
    std::thread::sleep(Duration::from_millis(500));
    (port, run)
}

#[test]
fn the_node_registers_with_digest_auth_refreshes_and_unregisters_and_reports_a_refused_password() {
    let Some(models) = provisioned_models() else {
        return;
    };
    // A wrong password: the registrar refuses the digest, and the node says so.
    let (port, registrar) = sipp_server(&scenario("registrar.xml"));
    let uri = format!("sip:127.0.0.1:{port}");
    let refused = SipNode::start(
        &models,
        &[
            ("SIP_REGISTRAR", uri.as_str()),
            ("SIP_USERNAME", "1001"),
            ("SIP_PASSWORD", "not-the-password"),
        ],
    );
    let failure = refused
        .wait_for_log("SIP registration failed", Duration::from_secs(20))
        .expect("the node reports the refused registration");
    assert!(failure.contains("403"), "{failure}");
    let (_, ready) = http_get(&refused.http, "/ready");
    let check = &ready["checks"]["sip_registration"];
    assert_eq!(check["status"], "failed", "{ready}");
    assert!(
        check["problem"].as_str().unwrap().contains("SIP_PASSWORD"),
        "the problem says what to check: {check}"
    );
    assert_all_succeeded(&registrar.join().unwrap(), 1);
    drop(refused);

    // The right password: challenged, registered for the 20 s granted, refreshed before it lapses, and
    // removed on shutdown; sipp's scenario checks each step and the digest of each REGISTER.
    let (port, registrar) = sipp_server(&scenario("registrar.xml"));
    let uri = format!("sip:127.0.0.1:{port}");
    let mut node = SipNode::start(
        &models,
        &[
            ("SIP_REGISTRAR", uri.as_str()),
            ("SIP_USERNAME", "1001"),
            ("SIP_PASSWORD", "s3cret"),
            ("SIP_REGISTER_EXPIRES_S", "20"),
        ],
    );
    let registered = node
        .wait_for_log("registered with the SIP registrar", Duration::from_secs(20))
        .expect("the node registers");
    let registered: serde_json::Value = serde_json::from_str(&registered).unwrap();
    assert_eq!(registered["expires_s"], 20, "{registered}");
    let (_, ready) = http_get(&node.http, "/ready");
    assert_eq!(
        ready["checks"]["sip_registration"]["status"], "registered",
        "{ready}"
    );
    // The refresh falls due 10 s after the registration.
    std::thread::sleep(Duration::from_secs(13));
    node.stop();
    assert_all_succeeded(&registrar.join().unwrap(), 1);
    let log = node.log();
    assert!(
        log.iter().any(|l| l.contains("SIP registration removed")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("s3cret")),
        "the password never reaches the log"
    );
}

#[test]
fn a_call_placed_through_the_api_goes_out_by_the_trunk_answers_its_challenge_and_hangs_up_on_goodbye()
 {
    let Some(models) = models_and_speech() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The person who answers says "Hello.", then "Goodbye."
    let pcap = speech_pcap(dir.path(), &["hello", "goodbye"]);
    let (port, callee) = callee_playing(dir.path(), &pcap);
    let (node, created) = call_through_trunk(
        &models,
        port,
        &[("RTP_PORT_MIN", "34000"), ("RTP_PORT_MAX", "34999")],
    );
    assert_eq!(
        created["provider_call_id"],
        format!("sip:+14155550123@127.0.0.1:{port}")
    );
    // sipp checks the number rung, verifies the digest, answers, plays the speech and takes our BYE.
    assert_all_succeeded(&callee.join().unwrap(), 1);

    // The call's record ends once its synthesis is written.
    let (call, turns) = first_ended_call(&node);
    assert_eq!(call.direction, switchboard_core::CallDirection::Outbound);
    assert_eq!(call.to_number.as_deref(), Some("+14155550123"));
    let said: Vec<String> = turns
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.to_lowercase())
        .collect();
    assert!(said.iter().any(|t| t.contains("hello")), "{turns:?}");
    assert!(said.iter().any(|t| t.contains("bye")), "{turns:?}");
    assert!(
        turns.iter().any(|t| t.speaker == Speaker::Agent),
        "{turns:?}"
    );
}

/// A call the node places is answered by voicemail at once: with `AMD=leave_message` the agent says
/// nothing to the recorded greeting, leaves its message after the beep and hangs up.
#[test]
fn a_placed_call_answered_by_voicemail_gets_the_message_after_the_beep() {
    let Some(models) = models_and_speech() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 300 ms of line, Asterisk's greeting ("Please leave your message after the tone …", 5.7 s), 400 ms,
    // its beep, then the machine records silence.
    let mut samples = vec![0i16; 2_400];
    samples.extend(prompt("vm-intro"));
    samples.extend(vec![0i16; 3_200]);
    samples.extend(prompt("beep"));
    samples.extend(vec![0i16; 8_000 * 20]);
    let pcap = pcap_of(dir.path(), &samples);
    let (port, callee) = callee_playing(dir.path(), &pcap);
    let (node, _) = call_through_trunk(
        &models,
        port,
        &[
            ("RTP_PORT_MIN", "36000"),
            ("RTP_PORT_MAX", "36999"),
            ("AMD", "leave_message"),
        ],
    );
    // sipp answers, plays the greeting and the beep, and takes our BYE.
    assert_all_succeeded(&callee.join().unwrap(), 1);
    let (call, turns) = first_ended_call(&node);
    assert_eq!(
        call.end_reason.as_deref(),
        Some("answering_machine"),
        "{turns:?}"
    );
    assert_eq!(call.answered_by.as_deref(), Some("machine"));
    let agent: Vec<&str> = turns
        .iter()
        .filter(|t| t.speaker == Speaker::Agent)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(agent.len(), 1, "the message alone, no greeting: {turns:?}");
    assert!(agent[0].contains("call us back"), "{agent:?}");
    let log = node.log();
    for line in log
        .iter()
        .filter(|l| l.contains("tone ended") || l.contains("who answered"))
    {
        println!("{line}");
    }
    // The beep was heard (the message did not wait for the quiet after it).
    assert!(
        log.iter().any(|l| l.contains("a tone ended on the line")),
        "{log:?}"
    );
}

#[test]
fn a_caller_may_hang_up_while_it_rings_and_hold_and_resume_by_reinvite() {
    let Some(models) = provisioned_models() else {
        return;
    };
    // The node lets each call ring for 2 s before answering.
    let node = SipNode::start(&models, &[("SIP_ANSWER_AFTER_MS", "2000")]);
    let target = node.target();
    // 180 Ringing, then the caller's CANCEL: 200 for it and 487 for the INVITE.
    let cancel = scenario("cancel.xml");
    assert_all_succeeded(
        &sipp(&target, &["-sf", cancel.to_str().unwrap(), "-m", "1"]),
        1,
    );
    // Answered after the ring; hold (sendonly offered, recvonly answered), resume, BYE.
    let hold = scenario("hold.xml");
    assert_all_succeeded(
        &sipp(&target, &["-sf", hold.to_str().unwrap(), "-m", "1"]),
        1,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = stored_calls(&node);
        if stored.len() == 2 && stored.iter().all(|(c, _)| c.ended_at.is_some()) {
            break stored;
        }
        assert!(Instant::now() < deadline, "both calls end: {stored:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // Newest first: the held call, then the one cancelled while it rang (never connected, no turns).
    let (cancelled, turns) = &stored[1];
    assert_eq!(cancelled.end_reason.as_deref(), Some("caller_hung_up"));
    assert!(turns.is_empty(), "{turns:?}");
    let (held, _) = &stored[0];
    assert_eq!(
        held.end_reason.as_deref(),
        Some("caller_hung_up"),
        "{held:?}"
    );
    let log = node.log();
    assert!(
        log.iter()
            .any(|l| l.contains("the caller hung up while the call rang")),
        "{log:?}"
    );
}
