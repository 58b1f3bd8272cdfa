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

use anyhow::anyhow;
use clap::Args;
use serde_json::{Value, json};
use switchboard_audio::corpus::{DEFAULT_SOUNDS_DIR, read_wav_16k};
use switchboard_core::Config;

use crate::bench_calls::{
    Level, LevelPlan, Target, build, cores, cpu_model, ms, on_server, process_cpu_seconds,
    run_level,
};
use crate::wire::Transport;

#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    /// Calls per concurrency level (four caller turns each).
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Most calls at once; levels 1, 2, 4 … up to this are measured in turn.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Directory of the recorded prompts the caller speaks.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SOUNDS_DIR)]
    sounds_dir: PathBuf,
    #[command(flatten)]
    target: Target,
}

/// Longest wait for one answer.
const TURN_TIMEOUT: Duration = Duration::from_secs(60);
/// Quiet between joined words of one utterance: shorter than any end-of-turn silence.
const WORD_GAP_MS: usize = 100;

pub(crate) fn run(args: &LatencyArgs, config: &Config) -> anyhow::Result<ExitCode> {
    if args.calls == 0 || args.concurrency == 0 {
        anyhow::bail!("--calls and --concurrency must be at least 1");
    }
    let turns = scripted_turns(&args.sounds_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    args.target.trust()?;
    runtime.block_on(on_server(
        &args.target,
        config,
        async |base, token, transport, in_process| {
            measure(args, base, token, transport, &turns, in_process).await
        },
    ))
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
        build(),
        cores(),
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
    );
    let mut results = Vec::new();
    for &concurrency in &levels {
        eprintln!("running {} calls, {concurrency} at a time...", args.calls);
        let cpu_before = process_cpu_seconds();
        let started = Instant::now();
        let calls = run_level(&LevelPlan {
            base,
            token,
            transport,
            turns,
            source: "switchboard bench latency",
            turn_timeout: TURN_TIMEOUT,
            calls: args.calls,
            concurrency,
            stagger: Duration::ZERO,
        })
        .await;
        let wall = started.elapsed().as_secs_f64();
        let cpu = match (in_process, cpu_before, process_cpu_seconds()) {
            (true, Some(before), Some(after)) => Some((after - before) / wall),
            _ => None,
        };
        let level = Level::from_calls(concurrency, &calls, cpu, None);
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
        "build": build(),
        "cpu_cores": cores(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_double_up_to_the_maximum() {
        assert_eq!(concurrency_levels(1), vec![1]);
        assert_eq!(concurrency_levels(4), vec![1, 2, 4]);
        assert_eq!(concurrency_levels(6), vec![1, 2, 4, 6]);
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
