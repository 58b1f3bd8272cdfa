//! What the whole-call benchmarks (`bench latency`, `bench capacity`) share: placing a level's calls K
//! at a time, and the figures of a level — voice-to-voice per caller turn and its parts, split by whether
//! the answer needed the language model (as the server reports on each turn's `latency` event), CPU and
//! memory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use switchboard_core::Config;

use crate::call_server::LocalServer;
use crate::caller::{Script, place_call};
use crate::wire::{Transport, TransportKind};

/// The stages of a turn, as the server names them in its `latency` events.
const PARTS: [(&str, &str); 5] = [
    ("end_of_turn", "end-of-turn wait"),
    ("stt", "STT final"),
    ("llm_first_sentence", "LLM first sentence"),
    ("tts_first_chunk", "TTS first chunk"),
    ("transport", "transport"),
];

/// The server a whole-call bench calls, how, and where its report goes: the options both benches take.
#[derive(Debug, Args)]
pub(crate) struct Target {
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
    /// in this process (and only then are its CPU and memory measured).
    #[arg(long, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// A PEM CA certificate to trust for an https:// --server, besides the system's CAs.
    #[arg(long, env = "SWITCHBOARD_CA_FILE", value_name = "FILE.pem")]
    ca_file: Option<PathBuf>,
    /// API key or JWT for --server (supervisor or admin).
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Target {
    /// Trusts `--ca-file` for an https:// `--server`.
    pub(crate) fn trust(&self) -> anyhow::Result<()> {
        crate::client_tls::init(self.ca_file.as_deref())
    }
}

/// Runs `measure` against the target (base URL, token, transport, whether the server runs in this
/// process, so that its CPU and memory are this process's), stops a server it started, and writes the
/// report.
pub(crate) async fn on_server(
    target: &Target,
    config: &Config,
    measure: impl AsyncFnOnce(&str, &str, &Transport, bool) -> anyhow::Result<Value>,
) -> anyhow::Result<ExitCode> {
    let (base, token, local) =
        LocalServer::given_or_started(target.server.as_deref(), target.token.as_deref(), config)
            .await?;
    let result = match Transport::resolve(
        target.transport,
        local.as_ref().map_or(config, |l| l.config()),
        &base,
        target.audiosocket.as_deref(),
    ) {
        Ok(transport) => measure(&base, &token, &transport, local.is_some()).await,
        Err(e) => Err(e),
    };
    if let Some(local) = local {
        local.stop().await;
    }
    let report = result?;
    if let Some(path) = &target.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// How a level's calls are placed.
pub(crate) struct LevelPlan<'a> {
    pub(crate) base: &'a str,
    pub(crate) token: &'a str,
    pub(crate) transport: &'a Transport,
    pub(crate) turns: &'a [(String, Vec<i16>)],
    /// Labelled in the calls' context.
    pub(crate) source: &'static str,
    /// Longest wait for one answer.
    pub(crate) turn_timeout: Duration,
    pub(crate) calls: usize,
    pub(crate) concurrency: usize,
    /// The first `concurrency` calls start this far apart, so that calls are not all at the same turn at
    /// the same moment (as a phone line's calls are not); zero starts them together.
    pub(crate) stagger: Duration,
}

/// Runs a level's calls, `concurrency` at a time; each call's report, or why it failed.
pub(crate) async fn run_level(plan: &LevelPlan<'_>) -> Vec<Result<Value, String>> {
    let slots = Arc::new(tokio::sync::Semaphore::new(plan.concurrency));
    let mut tasks = Vec::with_capacity(plan.calls);
    for index in 0..plan.calls {
        let slots = slots.clone();
        let script = Script {
            // A number per call, so calls do not see each other as the caller's previous calls.
            from: format!("+1415555{:04}", index % 10_000),
            source: plan.source,
            turns: plan.turns.to_vec(),
            turn_timeout: plan.turn_timeout,
            // A call is done when its record is: its post-call synthesis runs on the same model and
            // cores, and the next call of this slot starts only after it (other slots' calls overlap it).
            fetch_record: true,
            transport: plan.transport.clone(),
            echo_return: None,
        };
        let delay = if index < plan.concurrency {
            plan.stagger * index as u32
        } else {
            Duration::ZERO
        };
        let (base, token) = (plan.base.to_owned(), plan.token.to_owned());
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.map_err(|e| e.to_string())?;
            tokio::time::sleep(delay).await;
            place_call(&base, &token, &script)
                .await
                .map(|call| call.report)
                .map_err(|e| format!("{e:#}"))
        }));
    }
    let mut reports = Vec::with_capacity(plan.calls);
    for task in tasks {
        reports.push(task.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    reports
}

/// Figures of one concurrency level.
pub(crate) struct Level {
    pub(crate) concurrency: usize,
    pub(crate) calls: usize,
    pub(crate) failed_calls: usize,
    pub(crate) turns: usize,
    pub(crate) unanswered: usize,
    /// Answered turns answered from a draft begun at the caller's pause (LLM_READ_AHEAD).
    read_ahead: usize,
    pub(crate) voice_to_voice: Vec<f64>,
    /// Voice-to-voice of the answered turns whose answer waited on the language model or was written
    /// by it.
    pub(crate) with_model: Vec<f64>,
    /// The longest the reading of a turn waited on the model, seconds.
    model_wait: Vec<f64>,
    parts: Vec<(&'static str, &'static str, Vec<f64>)>,
    pub(crate) cpu_cores_busy: Option<f64>,
    /// The server's resident memory at its highest during the level, bytes (in-process server only).
    pub(crate) peak_rss: Option<u64>,
}

impl Level {
    pub(crate) fn from_calls(
        concurrency: usize,
        calls: &[Result<Value, String>],
        cpu: Option<f64>,
        peak_rss: Option<u64>,
    ) -> Self {
        let mut level = Self {
            concurrency,
            calls: calls.len(),
            failed_calls: 0,
            turns: 0,
            unanswered: 0,
            read_ahead: 0,
            voice_to_voice: Vec::new(),
            with_model: Vec::new(),
            model_wait: Vec::new(),
            parts: PARTS.iter().map(|&(k, n)| (k, n, Vec::new())).collect(),
            cpu_cores_busy: cpu,
            peak_rss,
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
                level.add_turn(turn);
            }
        }
        level
    }

    fn add_turn(&mut self, turn: &Value) {
        self.turns += 1;
        let server = &turn["server"];
        let Some(v) = turn["voice_to_voice_s"]
            .as_f64()
            .filter(|_| turn["answered"] == true)
        else {
            self.unanswered += 1;
            return;
        };
        self.voice_to_voice.push(v);
        let wait = server["model_wait"].as_f64().unwrap_or(0.0);
        if wait > 0.0 || server["generated"] == true {
            self.with_model.push(v);
        }
        if wait > 0.0 {
            self.model_wait.push(wait);
        }
        for (key, _, values) in &mut self.parts {
            if let Some(v) = server[*key].as_f64() {
                values.push(v);
            }
        }
        if server["read_ahead"] == true {
            self.read_ahead += 1;
        }
    }

    /// Voice-to-voice of the answered turns.
    pub(crate) fn summary(&self) -> Summary {
        Summary::of(&self.voice_to_voice)
    }

    pub(crate) fn print(&self) {
        println!(
            "\nconcurrency {}: {} calls ({} failed), {} turns ({} unanswered)",
            self.concurrency, self.calls, self.failed_calls, self.turns, self.unanswered
        );
        println!("{:<30} {:>9} {:>9} {:>9}", "", "p50", "p95", "max");
        let row = |name: &str, values: &[f64]| {
            let s = Summary::of(values);
            println!(
                "{name:<30} {:>9} {:>9} {:>9}",
                ms(s.p50),
                ms(s.p95),
                ms(s.max)
            );
        };
        row("voice-to-voice", &self.voice_to_voice);
        for (_, name, values) in &self.parts {
            row(&format!("  {name}"), values);
        }
        row(
            &format!("turns with the model ({})", self.with_model.len()),
            &self.with_model,
        );
        row("  wait on the model", &self.model_wait);
        println!(
            "turns answered from a draft begun at the caller's pause: {} of {}",
            self.read_ahead,
            self.voice_to_voice.len()
        );
        let cores = cores();
        match self.cpu_cores_busy {
            Some(busy) => println!(
                "CPU: {busy:.2} cores busy on average ({:.0} % of {cores})",
                100.0 * busy / cores.max(1) as f64,
            ),
            None => println!("CPU: not measured (the server runs in another process)"),
        }
        if let Some(rss) = self.peak_rss {
            println!("memory: {} MB resident at most", rss / 1_000_000);
        }
    }

    pub(crate) fn to_json(&self, calls: &[Result<Value, String>]) -> Value {
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
            "voice_to_voice": self.summary().to_json(),
            "turns_with_model": self.with_model.len(),
            "voice_to_voice_with_model": Summary::of(&self.with_model).to_json(),
            "model_wait": Summary::of(&self.model_wait).to_json(),
            "parts": parts,
            "cpu_cores_busy": self.cpu_cores_busy,
            "peak_rss_bytes": self.peak_rss,
            "reports": calls.iter().map(|c| match c {
                Ok(report) => report.clone(),
                Err(reason) => json!({ "error": reason }),
            }).collect::<Vec<_>>(),
        })
    }
}

/// Percentiles of a sample, in seconds (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) p50: Option<f64>,
    pub(crate) p95: Option<f64>,
    pub(crate) max: Option<f64>,
}

impl Summary {
    pub(crate) fn of(values: &[f64]) -> Self {
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

    pub(crate) fn to_json(self) -> Value {
        json!({ "p50": self.p50, "p95": self.p95, "max": self.max })
    }
}

pub(crate) fn ms(seconds: Option<f64>) -> String {
    seconds.map_or("-".into(), |s| format!("{:.0} ms", s * 1e3))
}

/// "debug" or "release": the build these figures come from.
pub(crate) fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// CPU seconds this process has used (user + system), from /proc.
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15, in USER_HZ (100 per second on Linux).
    Some((ticks(14)? + ticks(15)?) / 100.0)
}

/// This process's resident memory, bytes, from /proc.
pub(crate) fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples this process's resident memory every 100 ms until dropped; `peak` is the highest seen.
pub(crate) struct RssWatch {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    pub(crate) fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(resident_bytes().unwrap_or(0)));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if let Some(rss) = resident_bytes() {
                    seen.fetch_max(rss, Ordering::Relaxed);
                }
            }
        });
        Self { peak, task }
    }

    /// The highest resident memory seen since the start.
    pub(crate) fn stop(self) -> Option<u64> {
        self.task.abort();
        Some(self.peak.load(Ordering::Relaxed)).filter(|&b| b > 0)
    }
}

pub(crate) fn cpu_model() -> Option<String> {
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
    use std::time::Instant;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Summary::of(&values);
        assert_eq!((s.p50, s.p95, s.max), (Some(10.0), Some(19.0), Some(20.0)));
        assert_eq!(Summary::of(&[0.7]).p95, Some(0.7));
        assert_eq!(Summary::of(&[]).p50, None);
    }

    #[test]
    fn this_process_cpu_time_and_memory_are_read() {
        let before = process_cpu_seconds().unwrap();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let used = process_cpu_seconds().unwrap() - before;
        assert!(used >= 0.1, "{used} s for 300 ms of spinning ({x})");
        let rss = resident_bytes().unwrap();
        assert!(rss > 1_000_000, "{rss} bytes resident");
    }

    #[test]
    fn turns_are_split_by_whether_the_model_was_needed() {
        let turn = |v: f64, wait: Value, generated: bool| {
            json!({ "answered": true, "voice_to_voice_s": v,
                    "server": { "stt": 0.1, "model_wait": wait, "generated": generated } })
        };
        let report = json!({ "turns": [
            turn(0.4, json!(0.0), false),
            turn(1.2, json!(0.9), false),
            turn(2.0, json!(0.0), true),
            // Cut off before the answer settled: the model's part is not known.
            turn(0.5, Value::Null, false),
            json!({ "answered": false }),
        ]});
        let level = Level::from_calls(1, &[Ok(report), Err("refused".into())], None, None);
        assert_eq!(
            (level.turns, level.unanswered, level.failed_calls),
            (5, 1, 1)
        );
        assert_eq!(level.voice_to_voice, vec![0.4, 1.2, 2.0, 0.5]);
        assert_eq!(level.with_model, vec![1.2, 2.0]);
        assert_eq!(level.model_wait, vec![0.9]);
    }
}
