//! The SIP user agent against real SIP peers on loopback, calling `switchboard serve` with
//! TELEPHONY_PROVIDER=sip. sipp (Debian's sip-tester): its built-in `uac` scenario (INVITE with an SDP
//! offer, ACK, BYE) runs 200 calls one after the other and 20 at once; scenarios of ours check 486 Busy
//! Here on a full node, 488 for an offer without G.711, OPTIONS after a flood of malformed datagrams, and
//! a transfer: a caller (real speech played from a pcap) asks for a person and gets a REFER to the target.
//! baresip, a softphone, calls with a recording of real speech as its microphone and records what it
//! hears: the stored transcript holds the caller's words and the recording holds the agent's answer.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{provisioned_models, speech_corpus_installed, switchboard};
use switchboard_audio::g711::ulaw_encode;
use switchboard_core::Speaker;
use switchboard_core::config::DatabaseTarget;
use switchboard_store::{CallFilter, CallRecord, Database, TurnRecord};
use switchboard_telephony::sip::rtp::{self, RtpHeader};

/// A `switchboard serve` taking SIP calls, and the port it took.
struct SipNode {
    child: Child,
    sip_port: u16,
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
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut sip_port, mut loaded) = (None, false);
        while Instant::now() < deadline && !(sip_port.is_some() && loaded) {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            match event["message"].as_str() {
                Some("SIP listening on UDP and TCP") => {
                    sip_port = event["port"].as_u64().map(|p| p as u16);
                }
                Some("models loaded; taking calls") => loaded = true,
                _ => {}
            }
        }
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        let sip_port = sip_port.expect("the server reports its SIP port");
        assert!(loaded, "the models load within two minutes");
        Self {
            child,
            sip_port,
            _dir: dir,
        }
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
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.csv");
    let errors = dir.path().join("errors.log");
    let status = Command::new("sipp")
        .arg(target)
        .args(args)
        // Generous: a call whose answers come from the models is slower on a loaded machine.
        .args(["-i", "127.0.0.1", "-nostdin", "-timeout", "150s"])
        .args(["-p", &free_udp_port().to_string()])
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

#[test]
fn baresip_calls_with_real_speech_and_hears_the_agent_answer() {
    if !speech_corpus_installed() {
        return;
    }
    let Some(models) = provisioned_models() else {
        return;
    };
    let node = SipNode::start(
        &models,
        &[("RTP_PORT_MIN", "31000"), ("RTP_PORT_MAX", "31999")],
    );
    let phone = tempfile::tempdir().unwrap();
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
            "poll_method epoll\nsip_listen 127.0.0.1:{sip}\nsip_transports udp\n\
             audio_player aufile,{discard}\naudio_source aufile,{caller}\naudio_alert aufile,{discard}\n\
             ausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\n\
             rtp_ports 32000-32099\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\n\
             module aufile.so\nmodule sndfile.so\nmodule_app account.so\nmodule_app menu.so\n\
             snd_path {heard}\n",
            sip = free_udp_port(),
            discard = phone.path().join("played.wav").display(),
            caller = caller.display(),
            heard = heard_dir.display(),
        ),
    )
    .unwrap();
    std::fs::write(conf.join("accounts"), "<sip:caller@127.0.0.1>;regint=0\n").unwrap();
    let out = Command::new("baresip")
        .arg("-f")
        .arg(&conf)
        .args(["-e", &format!("/dial sip:agent@{}", node.target())])
        .args(["-t", "30"])
        .stdin(Stdio::null())
        .output()
        .expect("baresip runs (package baresip-core; `make test` installs it)");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("Call established"), "{log}");

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

/// The caller's side of a call as a pcap of RTP (PCMU, 20 ms packets) for sipp's `play_pcap_audio`:
/// silence while the agent greets, "Hello.", silence while it answers, then "Waiting to speak with a
/// representative." and silence.
fn caller_pcap(dir: &Path) -> PathBuf {
    let mut samples = vec![0i16; 8_000 * 6];
    samples.extend(prompt("hello"));
    samples.extend(vec![0i16; 8_000 * 7]);
    samples.extend(prompt("queue-callswaiting"));
    samples.extend(vec![0i16; 8_000 * 12]);
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
    if !speech_corpus_installed() {
        return;
    }
    let Some(models) = provisioned_models() else {
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
    let pcap = caller_pcap(dir.path());
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
