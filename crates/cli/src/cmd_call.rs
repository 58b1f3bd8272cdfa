//! `switchboard call --audio T1.wav --audio T2.wav ... [--transport websocket|twilio|audiosocket|sip]
//! [--server URL] --out DIR`: a scripted caller over `/ws/audio`, Twilio Media Streams, Asterisk's
//! AudioSocket or SIP and RTP. It places a call through the API, plays each turn in real time (silence in between, as a
//! phone line would), waits for the agent's answer, and writes transcript.json, agent.wav and report.json
//! (per turn: when the caller stopped speaking, when the agent's first audio came back, and the server's
//! breakdown of that latency; the claim; the synthesis; what the echo canceller did). Without --server it
//! serves in this process. `--echo-return DB,MS` makes the caller's line send the agent's audio back.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use serde_json::Value;
use switchboard_audio::corpus::read_wav_16k;
use switchboard_core::Config;

use crate::call_server::LocalServer;
use crate::caller::{EchoReturn, Script, place_call};
use crate::wire::{Transport, TransportKind};

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// Caller turns in order: mono speech WAVs (8–48 kHz), each played in real time.
    #[arg(long = "audio", required = true, value_name = "FILE.wav")]
    audio: Vec<PathBuf>,
    /// A running Switchboard (http://host:port, or https:// when it serves TLS); without it one is started
    /// in this process.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// A PEM CA certificate to trust for an https:// --server, besides the system's CAs.
    #[arg(long, env = "SWITCHBOARD_CA_FILE", value_name = "FILE.pem")]
    ca_file: Option<PathBuf>,
    /// API key or JWT for --server (supervisor or admin).
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where transcript.json, agent.wav and report.json are written.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The caller's number (the agent looks up their previous calls by it).
    #[arg(long, default_value = "+14155550100")]
    from: String,
    /// How the call reaches the agent: /ws/audio, as Twilio (signed webhook, then a Media Stream of
    /// µ-law 8 kHz), as Asterisk's AudioSocket (PCM16 8 kHz over TCP), or as a PBX over SIP (INVITE to
    /// SIP_PORT on the server's host, RTP in G.711).
    #[arg(long, value_enum, default_value_t = TransportKind::Websocket)]
    transport: TransportKind,
    /// The server's AudioSocket listener (host:port) for --transport audiosocket with --server; default:
    /// AUDIOSOCKET_PORT (9092) on the server's host.
    #[arg(long, value_name = "HOST:PORT")]
    audiosocket: Option<String>,
    /// Longest wait for the agent's answer to one turn, in seconds.
    #[arg(long, default_value_t = 60)]
    turn_timeout: u64,
    /// Makes the caller's line return the agent's audio, LEVEL dB down and DELAY ms late, mixed into what
    /// the caller sends (a speakerphone, a 2-wire hybrid): `-6,120`. report.json then holds what the
    /// server's echo canceller reports (`echo`).
    #[arg(long, value_name = "DB,MS", allow_hyphen_values = true)]
    echo_return: Option<EchoReturn>,
}

pub(crate) fn run(args: &CallArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let turns = args
        .audio
        .iter()
        .map(|path| {
            read_wav_16k(path)
                .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))
                .map(|samples| (path.display().to_string(), samples))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    crate::client_tls::init(args.ca_file.as_deref())?;
    runtime.block_on(async {
        let (base, token, local) =
            LocalServer::given_or_started(args.server.as_deref(), args.token.as_deref(), config)
                .await?;
        let transport = Transport::resolve(
            args.transport,
            local.as_ref().map_or(config, |l| l.config()),
            &base,
            args.audiosocket.as_deref(),
        );
        let result = match transport {
            Ok(transport) => {
                let script = Script {
                    from: args.from.clone(),
                    source: "switchboard call",
                    turns,
                    turn_timeout: Duration::from_secs(args.turn_timeout),
                    fetch_record: true,
                    transport,
                    echo_return: args.echo_return,
                };
                place_call(&base, &token, &script).await
            }
            Err(e) => Err(e),
        };
        if let Some(local) = local {
            local.stop().await;
        }
        let call = result?;
        write_wav(&args.out.join("agent.wav"), &call.agent_audio)?;
        for (name, value) in [
            ("transcript.json", &call.transcript),
            ("report.json", &call.report),
        ] {
            let path = args.out.join(name);
            std::fs::write(&path, serde_json::to_vec_pretty(value)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        print_report(&call.report);
        Ok(ExitCode::SUCCESS)
    })
}

fn write_wav(path: &Path, samples: &[i16]) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)
        .with_context(|| format!("cannot write {}", path.display()))?;
    for &s in samples {
        writer.write_sample(s)?;
    }
    writer.finalize()?;
    Ok(())
}

fn print_report(report: &Value) {
    println!(
        "call {} over {}  ended: {}",
        report["call_id"].as_str().unwrap_or("?"),
        report["transport"].as_str().unwrap_or("?"),
        report["end_reason"]
    );
    println!(
        "{:<5} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "turn", "voice2voice", "end-of-turn", "stt", "llm", "tts", "transport"
    );
    for turn in report["turns"].as_array().into_iter().flatten() {
        let s = &turn["server"];
        let ms = |v: &Value| {
            v.as_f64()
                .map_or("-".to_owned(), |x| format!("{:.0} ms", x * 1_000.0))
        };
        println!(
            "{:<5} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
            turn["turn"],
            ms(&turn["voice_to_voice_s"]),
            ms(&s["end_of_turn"]),
            ms(&s["stt"]),
            ms(&s["llm_first_sentence"]),
            ms(&s["tts_first_chunk"]),
            ms(&s["transport"]),
        );
    }
    if !report["echo"].is_null() {
        let echo = &report["echo"];
        println!(
            "echo cancellation: ERLE {} dB, delay {} ms (longest {} ms, moved {} times), {} ms of echo{}",
            echo["erle_db"],
            echo["delay_ms"],
            echo["longest_delay_ms"],
            echo["delay_moves"],
            echo["echo_ms"],
            if echo["no_echo"] == true {
                " (the line returns none)"
            } else {
                ""
            }
        );
    }
    println!("claim: {}", report["claim"]);
    println!("synthesis: {}", report["synthesis"]["short_summary"]);
}
