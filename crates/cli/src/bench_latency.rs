//! `switchboard bench latency`: voice-to-voice latency of whole calls through the real transport.
//!
//! Each call is scripted from real recorded speech (Debian's Asterisk prompts): a hello, a complaint in
//! free words where the agent asked for a name (the turn that needs the language model), a callback
//! number, a goodbye. The caller plays each turn in real time over `/ws/audio`, so the server hears it as
//! it would hear a phone; the end of the caller's speech is read off the audio itself, and the turn's
//! latency runs from there to the first agent audio frame received. The server's own breakdown of each
//! turn (end-of-turn wait, final transcription, first sentence of the answer, first audio chunk,
//! transport) comes back on the call's `latency` events. A call counts as done once its record (claim
//! and post-call synthesis) is stored, so each slot's next call does not start beside its predecessor's
//! synthesis. With `--concurrency K` the same calls run at 1, 2, 4 … K at once, to show how the tail
//! grows with load.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Args;
use serde_json::{Value, json};
use switchboard_audio::corpus::{DEFAULT_SOUNDS_DIR, read_wav_16k};
use switchboard_core::Config;

use crate::call_server::LocalServer;
use crate::caller::{Script, place_call};
use crate::wire::{Transport, TransportKind};

#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    /// Calls per concurrency level (four caller turns each).
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Most calls at once; levels 1, 2, 4 … up to this are measured in turn.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// How caller audio reaches the agent: /ws/audio, Twilio Media Streams framing, Asterisk's
    /// AudioSocket, or SIP and RTP.
    #[arg(long, value_enum, default_value_t = TransportKind::Websocket)]
    transport: TransportKind,
    /// The server's AudioSocket listener (host:port) for --transport audiosocket with --server.
    #[arg(long, value_name = "HOST:PORT")]
    audiosocket: Option<String>,
    /// Also write every figure and every turn as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
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
    /// Directory of the recorded prompts the caller speaks.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SOUNDS_DIR)]
    sounds_dir: PathBuf,
}

/// Longest wait for one answer.
const TURN_TIMEOUT: Duration = Duration::from_secs(60);
/// Quiet between joined words of one utterance: shorter than any end-of-turn silence.
const WORD_GAP_MS: usize = 100;

/// The stages of a turn, as the server names them in its `latency` events.
const PARTS: [(&str, &str); 5] = [
    ("end_of_turn", "end-of-turn wait"),
    ("stt", "STT final"),
    ("llm_first_sentence", "LLM first sentence"),
    ("tts_first_chunk", "TTS first chunk"),
    ("transport", "transport"),
];

pub(crate) fn run(args: &LatencyArgs, config: &Config) -> anyhow::Result<ExitCode> {
    if args.calls == 0 || args.concurrency == 0 {
        anyhow::bail!("--calls and --concurrency must be at least 1");
    }
    let turns = scripted_turns(&args.sounds_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    crate::client_tls::init(args.ca_file.as_deref())?;
    runtime.block_on(async {
        let (base, token, local) =
            LocalServer::given_or_started(args.server.as_deref(), args.token.as_deref(), config)
                .await?;
        let result = match Transport::resolve(
            args.transport,
            local.as_ref().map_or(config, |l| l.config()),
            &base,
            args.audiosocket.as_deref(),
        ) {
            Ok(transport) => {
                measure(args, &base, &token, &transport, &turns, local.is_some()).await
            }
            Err(e) => Err(e),
        };
        if let Some(local) = local {
            local.stop().await;
        }
        let report = result?;
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn measure(
    args: &LatencyArgs,
    base: &str,
    token: &str,
    transport: &Transport,
    turns: &[(String, Vec<i16>)],
    in_process: bool,
) -> anyhow::Result<Value> {
    let levels = concurrency_levels(args.concurrency);
    println!(
        "voice-to-voice latency: {} calls × {} caller turns per level, transport {}, {} build, {} CPU cores ({})",
        args.calls,
        turns.len(),
        transport.name(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
    );
    let mut results = Vec::new();
    for &concurrency in &levels {
        eprintln!("running {} calls, {concurrency} at a time...", args.calls);
        let cpu_before = process_cpu_seconds();
        let started = Instant::now();
        let calls = run_level(base, token, transport, turns, args.calls, concurrency).await;
        let wall = started.elapsed().as_secs_f64();
        let cpu = match (in_process, cpu_before, process_cpu_seconds()) {
            (true, Some(before), Some(after)) => Some((after - before) / wall),
            _ => None,
        };
        let level = Level::from_calls(concurrency, &calls, cpu);
        level.print();
        results.push(level.to_json(&calls));
    }
    if levels.len() > 1 {
        println!("\nhow the tail grows with load (voice-to-voice):");
        println!(
            "{:>11} {:>9} {:>9} {:>9}",
            "concurrency", "p50", "p95", "max"
        );
        for level in &results {
            let v = &level["voice_to_voice"];
            println!(
                "{:>11} {:>9} {:>9} {:>9}",
                level["concurrency"],
                ms(v["p50"].as_f64()),
                ms(v["p95"].as_f64()),
                ms(v["max"].as_f64())
            );
        }
    }
    Ok(json!({
        "calls_per_level": args.calls,
        "turns_per_call": turns.len(),
        "transport": transport.name(),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cpu_cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": cpu_model(),
        "levels": results,
    }))
}

/// 1, 2, 4 … below `max`, then `max`.
fn concurrency_levels(max: usize) -> Vec<usize> {
    let mut levels: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n < max)
        .collect();
    levels.push(max);
    levels
}

/// Runs `calls` calls, `concurrency` at a time; each call's report, or why it failed.
async fn run_level(
    base: &str,
    token: &str,
    transport: &Transport,
    turns: &[(String, Vec<i16>)],
    calls: usize,
    concurrency: usize,
) -> Vec<Result<Value, String>> {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(calls);
    for index in 0..calls {
        let slots = slots.clone();
        let script = Script {
            // A number per call, so calls do not see each other as the caller's previous calls.
            from: format!("+1415555{:04}", index % 10_000),
            source: "switchboard bench latency",
            turns: turns.to_vec(),
            turn_timeout: TURN_TIMEOUT,
            // A call is done when its record is: its post-call synthesis runs on the same model and
            // cores, and the next call of this slot starts only after it (other slots' calls overlap it).
            fetch_record: true,
            transport: transport.clone(),
            echo_return: None,
        };
        let (base, token) = (base.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.map_err(|e| e.to_string())?;
            place_call(&base, &token, &script)
                .await
                .map(|call| call.report)
                .map_err(|e| format!("{e:#}"))
        }));
    }
    let mut reports = Vec::with_capacity(calls);
    for task in tasks {
        reports.push(task.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    reports
}

/// Figures of one concurrency level.
struct Level {
    concurrency: usize,
    calls: usize,
    failed_calls: usize,
    turns: usize,
    unanswered: usize,
    /// Answered turns answered from a draft begun at the caller's pause (LLM_READ_AHEAD).
    read_ahead: usize,
    voice_to_voice: Vec<f64>,
    parts: Vec<(&'static str, &'static str, Vec<f64>)>,
    cpu_cores_busy: Option<f64>,
}

impl Level {
    fn from_calls(concurrency: usize, calls: &[Result<Value, String>], cpu: Option<f64>) -> Self {
        let mut level = Self {
            concurrency,
            calls: calls.len(),
            failed_calls: 0,
            turns: 0,
            unanswered: 0,
            read_ahead: 0,
            voice_to_voice: Vec::new(),
            parts: PARTS.iter().map(|&(k, n)| (k, n, Vec::new())).collect(),
            cpu_cores_busy: cpu,
        };
        for call in calls {
            let report = match call {
                Ok(report) => report,
                Err(reason) => {
                    eprintln!("a call failed: {reason}");
                    level.failed_calls += 1;
                    continue;
                }
            };
            for turn in report["turns"].as_array().into_iter().flatten() {
                level.turns += 1;
                match turn["voice_to_voice_s"].as_f64() {
                    Some(v) if turn["answered"] == true => level.voice_to_voice.push(v),
                    _ => level.unanswered += 1,
                }
                for (key, _, values) in &mut level.parts {
                    if let Some(v) = turn["server"][*key].as_f64() {
                        values.push(v);
                    }
                }
                if turn["server"]["read_ahead"] == true {
                    level.read_ahead += 1;
                }
            }
        }
        level
    }

    fn print(&self) {
        println!(
            "\nconcurrency {}: {} calls ({} failed), {} turns ({} unanswered)",
            self.concurrency, self.calls, self.failed_calls, self.turns, self.unanswered
        );
        println!("{:<22} {:>9} {:>9} {:>9}", "", "p50", "p95", "max");
        let row = |name: &str, values: &[f64]| {
            let s = Summary::of(values);
            println!(
                "{name:<22} {:>9} {:>9} {:>9}",
                ms(s.p50),
                ms(s.p95),
                ms(s.max)
            );
        };
        row("voice-to-voice", &self.voice_to_voice);
        for (_, name, values) in &self.parts {
            row(&format!("  {name}"), values);
        }
        println!(
            "turns answered from a draft begun at the caller's pause: {} of {}",
            self.read_ahead,
            self.voice_to_voice.len()
        );
        match self.cpu_cores_busy {
            Some(busy) => println!(
                "CPU: {busy:.2} cores busy on average ({:.0} % of {})",
                100.0 * busy / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            None => println!("CPU: not measured (the server runs in another process)"),
        }
    }

    fn to_json(&self, calls: &[Result<Value, String>]) -> Value {
        let mut parts = serde_json::Map::new();
        for (key, _, values) in &self.parts {
            parts.insert((*key).to_owned(), Summary::of(values).to_json());
        }
        json!({
            "concurrency": self.concurrency,
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "turns": self.turns,
            "unanswered_turns": self.unanswered,
            "read_ahead_turns": self.read_ahead,
            "voice_to_voice": Summary::of(&self.voice_to_voice).to_json(),
            "parts": parts,
            "cpu_cores_busy": self.cpu_cores_busy,
            "reports": calls.iter().map(|c| match c {
                Ok(report) => report.clone(),
                Err(reason) => json!({ "error": reason }),
            }).collect::<Vec<_>>(),
        })
    }
}

/// Percentiles of a sample, in seconds (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    p50: Option<f64>,
    p95: Option<f64>,
    max: Option<f64>,
}

impl Summary {
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| -> Option<f64> {
            let n = sorted.len();
            (n > 0).then(|| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        Self {
            p50: rank(0.50),
            p95: rank(0.95),
            max: sorted.last().copied(),
        }
    }

    fn to_json(self) -> Value {
        json!({ "p50": self.p50, "p95": self.p95, "max": self.max })
    }
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or("-".into(), |s| format!("{:.0} ms", s * 1e3))
}

/// The caller's turns, each joined from recorded words.
fn scripted_turns(sounds: &Path) -> anyhow::Result<Vec<(String, Vec<i16>)>> {
    let mut number = vec!["telephone-number"];
    number.extend([
        "digits/4", "digits/1", "digits/5", "digits/5", "digits/5", "digits/5", "digits/0",
        "digits/1", "digits/0", "digits/0",
    ]);
    // The second turn answers the agent's question (the caller's name) with a complaint in free words:
    // the parsers find nothing in it, so the model is asked to extract the answer, the one turn of the
    // script that waits on the language model.
    let script: [(&str, Vec<&str>); 4] = [
        ("hello", vec!["hello"]),
        (
            "something is terribly wrong, weasels have eaten our phone system",
            vec!["tt-somethingwrong", "tt-weasels"],
        ),
        ("telephone number 415 555 0100", number),
        ("goodbye", vec!["goodbye"]),
    ];
    script
        .into_iter()
        .map(|(label, words)| Ok((label.to_owned(), utterance(sounds, &words)?)))
        .collect()
}

/// Words from `sounds` joined into one utterance, 16 kHz, with a short silence around it.
fn utterance(sounds: &Path, words: &[&str]) -> anyhow::Result<Vec<i16>> {
    let gap = vec![0i16; WORD_GAP_MS * 16];
    let mut audio = gap.clone();
    for (i, word) in words.iter().enumerate() {
        let path = sounds.join(format!("{word}.wav"));
        let samples = read_wav_16k(&path).map_err(|e| {
            anyhow!(
                "cannot read the recorded prompt {}: {e} (install asterisk-core-sounds-en-wav, or pass --sounds-dir)",
                path.display()
            )
        })?;
        if i > 0 {
            audio.extend(&gap);
        }
        audio.extend(trim_silence(&samples));
    }
    audio.extend(&gap);
    Ok(audio)
}

/// `samples` without the silence before the first and after the last loud sample (10 ms kept).
fn trim_silence(samples: &[i16]) -> &[i16] {
    let loud = |s: &i16| s.unsigned_abs() > 600;
    let Some(start) = samples.iter().position(loud) else {
        return &[];
    };
    let end = samples
        .iter()
        .rposition(loud)
        .map_or(samples.len(), |i| i + 1);
    &samples[start.saturating_sub(160)..(end + 160).min(samples.len())]
}

/// CPU seconds this process has used (user + system), from /proc.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15, in USER_HZ (100 per second on Linux).
    Some((ticks(14)? + ticks(15)?) / 100.0)
}

fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, name)| name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Summary::of(&values);
        assert_eq!((s.p50, s.p95, s.max), (Some(10.0), Some(19.0), Some(20.0)));
        assert_eq!(Summary::of(&[0.7]).p95, Some(0.7));
        assert_eq!(Summary::of(&[]).p50, None);
    }

    #[test]
    fn levels_double_up_to_the_maximum() {
        assert_eq!(concurrency_levels(1), vec![1]);
        assert_eq!(concurrency_levels(4), vec![1, 2, 4]);
        assert_eq!(concurrency_levels(6), vec![1, 2, 4, 6]);
    }

    #[test]
    fn this_process_cpu_time_is_read() {
        let before = process_cpu_seconds().unwrap();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let used = process_cpu_seconds().unwrap() - before;
        assert!(used >= 0.1, "{used} s for 300 ms of spinning ({x})");
    }

    #[test]
    fn silence_is_trimmed_and_quiet_input_is_empty() {
        let mut samples = vec![0i16; 1_000];
        samples.extend(vec![5_000i16; 400]);
        samples.extend(vec![0i16; 1_000]);
        assert_eq!(trim_silence(&samples).len(), 400 + 2 * 160);
        assert!(trim_silence(&[10; 500]).is_empty());
    }
}
