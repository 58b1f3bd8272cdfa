//! `switchboard bench capacity`: how many calls at once this machine carries.
//!
//! Each call is a claim call of twelve caller turns, spoken once by a voice before the run (Piper by
//! default, `--voice espeak` for another) and played in real time through the real transport. Three turns
//! need the language model whatever the node: two questions about the cover, answered from the company's
//! documents (`switchboard kb add examples/kb` indexes a sample policy), and an answer in free words where
//! the agent asked for a name.
//! The server says on each turn's `latency` event whether its answer waited on the model or was written
//! by it, so the split printed is what happened, not what the script meant to happen.
//!
//! Levels ramp (1, 2, 4, 8, 12, 16 calls at once by default); each runs `level × rounds` calls, the first
//! of each slot started a little apart, as a phone line's calls are. Per level: voice-to-voice p50 / p95 /
//! max and its parts, the turns with the model apart, turns unanswered, CPU, the server's peak resident
//! memory and what each added call cost in it. The capacity is the largest level at which no call failed,
//! every turn was answered and p95 stayed within the target (1.5 s); the ramp stops at the first level
//! that misses it unless `--every-level`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use switchboard_core::Config;

use crate::agent_audio::{CallerVoice, caller_voice, speak};
use crate::bench_calls::{
    Level, LevelPlan, RssWatch, Summary, Target, build, cores, cpu_model, ms, on_server,
    process_cpu_seconds, resident_bytes, run_level,
};
use crate::read_aloud::as_a_caller_says_it;
use crate::wire::Transport;

#[derive(Debug, Args)]
pub(crate) struct CapacityArgs {
    /// Calls at once, level by level, in this order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,12,16")]
    levels: Vec<usize>,
    /// Calls per slot at each level: a level of K calls at once places K × rounds calls.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The voice-to-voice p95 a level must hold, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    p95_target_ms: u64,
    /// Only the first N caller lines of the script (a shorter call, for a quick look).
    #[arg(long, value_name = "N", default_value_t = SCRIPT.len())]
    turns: usize,
    /// Measure every level, also after one missed the target.
    #[arg(long)]
    every_level: bool,
    /// The caller's voice.
    #[arg(long, value_enum, default_value_t = CallerVoice::Piper)]
    voice: CallerVoice,
    #[command(flatten)]
    target: Target,
}

/// The caller's lines, in the order the agent asks for the claim's fields. The first and the eleventh ask
/// about the cover, answered from the company's documents when the node has some (the model writes the
/// answer, after labelling the line's intent); the second answers the name question in free words, which
/// only the model can read.
const SCRIPT: [&str; 12] = [
    "Hello, I had a car accident. Does my policy pay for a rental car while mine is repaired?",
    "Sorry, it has been a really stressful morning.",
    "My name is Daniel Okafor.",
    "The policy number is AB447219.",
    "It happened yesterday morning.",
    "In the car park behind the shopping centre.",
    "Another driver reversed into my door while I was parked.",
    "No, nobody was hurt.",
    "My blue Volkswagen Golf.",
    "You can call me back on 415 555 0134.",
    "How long does it usually take before a claim is paid?",
    "No, that's everything, thank you. Goodbye.",
];

/// Longest wait for one answer.
const TURN_TIMEOUT: Duration = Duration::from_secs(60);
/// How far apart the first calls of a level start.
const STAGGER: Duration = Duration::from_millis(1_500);

pub(crate) fn run(args: &CapacityArgs, config: &Config) -> anyhow::Result<ExitCode> {
    if args.levels.is_empty() || args.levels.contains(&0) || args.rounds == 0 {
        anyhow::bail!("--levels must list calls at once of at least 1, and --rounds be at least 1");
    }
    if !(1..=SCRIPT.len()).contains(&args.turns) {
        anyhow::bail!("--turns must be from 1 to {}", SCRIPT.len());
    }
    eprintln!(
        "speaking the caller's {} lines ({:?})...",
        args.turns, args.voice
    );
    let voice = caller_voice(config, args.voice)?;
    let turns = SCRIPT[..args.turns]
        .iter()
        .map(|line| {
            Ok((
                (*line).to_owned(),
                speak(voice.as_ref(), &as_a_caller_says_it(line))?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(voice);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    args.target.trust()?;
    runtime.block_on(async {
        if args.target.server.is_none() {
            let database = crate::cmd_kb::open_database(config).await?;
            let documents = database.documents().await?.len();
            database.close().await;
            match documents {
                0 => println!(
                    "documents: none, so questions are answered without them (`switchboard kb add examples/kb` adds a sample policy)"
                ),
                n => println!(
                    "documents: {n}, questions are answered from them"
                ),
            }
        }
        on_server(
            &args.target,
            config,
            async |base, token, transport, in_process| {
                ramp(args, base, token, transport, &turns, in_process).await
            },
        )
        .await
    })
}

async fn ramp(
    args: &CapacityArgs,
    base: &str,
    token: &str,
    transport: &Transport,
    turns: &[(String, Vec<i16>)],
    in_process: bool,
) -> anyhow::Result<Value> {
    let target = Duration::from_millis(args.p95_target_ms).as_secs_f64();
    println!(
        "capacity: calls of {} caller turns, levels {:?} × {} round(s), p95 target {} ms, transport {}, {} build, {} CPU cores ({})",
        turns.len(),
        args.levels,
        args.rounds,
        args.p95_target_ms,
        transport.name(),
        build(),
        cores(),
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
    );
    let idle_rss = in_process.then(resident_bytes).flatten();
    let mut rows: Vec<Row> = Vec::new();
    let mut levels_json = Vec::new();
    for &concurrency in &args.levels {
        let calls = concurrency * args.rounds;
        eprintln!("running {calls} calls, {concurrency} at a time...");
        let cpu_before = process_cpu_seconds();
        let rss = in_process.then(RssWatch::start);
        let started = Instant::now();
        let reports = run_level(&LevelPlan {
            base,
            token,
            transport,
            turns,
            source: "switchboard bench capacity",
            turn_timeout: TURN_TIMEOUT,
            calls,
            concurrency,
            stagger: STAGGER,
        })
        .await;
        let wall = started.elapsed().as_secs_f64();
        let cpu = match (in_process, cpu_before, process_cpu_seconds()) {
            (true, Some(before), Some(after)) => Some((after - before) / wall),
            _ => None,
        };
        let level = Level::from_calls(concurrency, &reports, cpu, rss.and_then(RssWatch::stop));
        level.print();
        let row = Row::of(&level, target);
        println!(
            "level {concurrency}: {}",
            if row.holds {
                "holds the target".to_owned()
            } else {
                format!("misses the target ({})", row.why())
            }
        );
        levels_json.push(level.to_json(&reports));
        let holds = row.holds;
        rows.push(row);
        if !holds && !args.every_level {
            break;
        }
    }
    let capacity = capacity(&rows);
    let per_call = rss_per_added_call(&rows);
    print_table(&rows, capacity, per_call, idle_rss, args.p95_target_ms);
    Ok(json!({
        "turns_per_call": turns.len(),
        "script": &SCRIPT[..turns.len()],
        "rounds": args.rounds,
        "p95_target_s": target,
        "transport": transport.name(),
        "build": build(),
        "cpu_cores": cores(),
        "cpu_model": cpu_model(),
        "idle_rss_bytes": idle_rss,
        "rss_per_added_call_bytes": per_call,
        "capacity": capacity,
        "levels": levels_json,
    }))
}

/// One level's line of the summary table.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    concurrency: usize,
    failed_calls: usize,
    unanswered: usize,
    turns: usize,
    with_model: usize,
    all: Summary,
    model: Summary,
    cpu: Option<f64>,
    peak_rss: Option<u64>,
    /// No call failed, every turn was answered, and p95 is within the target.
    holds: bool,
    p95_over: bool,
}

impl Row {
    fn of(level: &Level, target: f64) -> Self {
        let all = level.summary();
        let p95_over = all.p95.is_none_or(|p| p > target);
        Self {
            concurrency: level.concurrency,
            failed_calls: level.failed_calls,
            unanswered: level.unanswered,
            turns: level.turns,
            with_model: level.with_model.len(),
            all,
            model: Summary::of(&level.with_model),
            cpu: level.cpu_cores_busy,
            peak_rss: level.peak_rss,
            holds: level.failed_calls == 0 && level.unanswered == 0 && !p95_over,
            p95_over,
        }
    }

    fn why(&self) -> String {
        let mut why = Vec::new();
        if self.failed_calls > 0 {
            why.push(format!("{} calls failed", self.failed_calls));
        }
        if self.unanswered > 0 {
            why.push(format!("{} turns unanswered", self.unanswered));
        }
        if self.p95_over {
            why.push(format!("p95 {}", ms(self.all.p95)));
        }
        why.join(", ")
    }
}

/// The largest level that held the target, when every level below it held it too.
fn capacity(rows: &[Row]) -> Option<usize> {
    rows.iter()
        .take_while(|r| r.holds)
        .map(|r| r.concurrency)
        .max()
}

/// What each call beyond the first added to the peak resident memory: the slope from the first level
/// to the largest one measured.
fn rss_per_added_call(rows: &[Row]) -> Option<u64> {
    let first = rows.first()?;
    let last = rows.iter().rfind(|r| r.concurrency > first.concurrency)?;
    let grew = last.peak_rss?.saturating_sub(first.peak_rss?);
    Some(grew / (last.concurrency - first.concurrency) as u64)
}

fn print_table(
    rows: &[Row],
    capacity: Option<usize>,
    per_call: Option<u64>,
    idle_rss: Option<u64>,
    target_ms: u64,
) {
    println!("\ncapacity by level (voice-to-voice):");
    println!(
        "{:>6} {:>8} {:>8} {:>8} {:>11} {:>11} {:>10} {:>9} {:>9}",
        "calls", "p50", "p95", "max", "model p50", "model p95", "unanswered", "CPU", "peak RSS"
    );
    for r in rows {
        println!(
            "{:>6} {:>8} {:>8} {:>8} {:>11} {:>11} {:>10} {:>9} {:>9}",
            r.concurrency,
            ms(r.all.p50),
            ms(r.all.p95),
            ms(r.all.max),
            ms(r.model.p50),
            ms(r.model.p95),
            format!("{}/{}", r.unanswered, r.turns),
            r.cpu.map_or("-".into(), |c| format!("{c:.2}")),
            r.peak_rss
                .map_or("-".into(), |b| format!("{} MB", b / 1_000_000)),
        );
    }
    let model_turns: usize = rows.iter().map(|r| r.with_model).sum();
    let answered: usize = rows.iter().map(|r| r.turns - r.unanswered).sum();
    println!("turns whose answer needed the model: {model_turns} of {answered} answered");
    if let Some(idle) = idle_rss {
        println!(
            "server memory before the first call: {} MB",
            idle / 1_000_000
        );
    }
    if let Some(bytes) = per_call {
        println!("memory per added call: {:.1} MB", bytes as f64 / 1e6);
    }
    match capacity {
        Some(calls) => println!(
            "capacity: {calls} calls at once with every turn answered and voice-to-voice p95 ≤ {target_ms} ms"
        ),
        None => println!("capacity: not even one call held voice-to-voice p95 ≤ {target_ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(concurrency: usize, holds: bool, rss: u64) -> Row {
        Row {
            concurrency,
            failed_calls: 0,
            unanswered: usize::from(!holds),
            turns: 11,
            with_model: 4,
            all: Summary::of(&[0.5]),
            model: Summary::of(&[0.9]),
            cpu: None,
            peak_rss: Some(rss),
            holds,
            p95_over: false,
        }
    }

    #[test]
    fn capacity_is_the_last_level_of_the_unbroken_run_that_held() {
        let rows = [
            row(1, true, 500),
            row(2, true, 520),
            row(4, false, 560),
            row(8, true, 640),
        ];
        assert_eq!(capacity(&rows), Some(2));
        assert_eq!(capacity(&rows[2..]), None);
        assert_eq!(capacity(&[]), None);
        // From 1 call to 8: 140 bytes over 7 more calls.
        assert_eq!(rss_per_added_call(&rows), Some(20));
        assert_eq!(rss_per_added_call(&rows[..1]), None);
    }

    #[test]
    fn a_level_misses_the_target_on_failures_silence_or_its_tail() {
        let mut calls = vec![Ok(json!({ "turns": [
            { "answered": true, "voice_to_voice_s": 0.4, "server": {} },
            { "answered": true, "voice_to_voice_s": 1.4, "server": { "model_wait": 0.8 } },
        ]}))];
        let level = Level::from_calls(1, &calls, None, None);
        assert!(Row::of(&level, 1.5).holds);
        let slow = Row::of(&level, 1.0);
        assert!(!slow.holds);
        assert_eq!(slow.why(), "p95 1400 ms");
        calls.push(Err("hung up".into()));
        let failed = Row::of(&Level::from_calls(2, &calls, None, None), 1.5);
        assert_eq!(
            (failed.holds, failed.why().as_str()),
            (false, "1 calls failed")
        );
    }
}
