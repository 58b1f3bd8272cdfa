//! `switchboard bench`: the benchmarks behind the README's figures.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use switchboard_audio::bench::{BenchInputs, run as run_audio};
use switchboard_core::Config;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// The audio front end: cost per 20 ms frame per stage, VAD precision/recall, noise and echo suppression.
    Audio(AudioArgs),
    /// Speech recognition: WER and real-time factor on every transcribed prompt, at 16 kHz and through the
    /// telephone path (8 kHz µ-law and back).
    Stt(SttArgs),
    /// Speech synthesis: time to the first audio chunk and real-time factor per voice, short and long text,
    /// beside the voice's reference runtime where installed (scripts/reference-runtimes.sh).
    Tts(TtsArgs),
    /// Language engines: time to the first token, cold and with the call's prompt prefix reused, and
    /// tokens per second, for each embedded model fetched and each configured server that answers.
    Llm(LlmArgs),
    /// Whole calls of real recorded speech through the real transport: voice-to-voice latency per turn
    /// (p50 / p95 / max) and its parts, CPU use, and how the tail grows with concurrent calls.
    Latency(crate::bench_latency::LatencyArgs),
    /// How many calls this machine carries: calls where every other turn needs the language model,
    /// ramped 1, 2, 4, 8 … at once, with voice-to-voice p50 / p95 / max and its parts per level, CPU,
    /// memory per call, and the largest level that answers every turn within the p95 target.
    Capacity(crate::bench_capacity::CapacityArgs),
    /// Personal data masking: recall on phone, card and e-mail values as callers say them and recognisers
    /// write them, false positives on ordinary call sentences and the recorded prompts' transcripts.
    Pii(crate::bench_pii::PiiArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LlmArgs {
    /// Turns of the benchmark call (the first is cold, the rest reuse the prefix).
    #[arg(long, default_value_t = 6)]
    pub(crate) turns: usize,
    /// Longest answer in tokens.
    #[arg(long, default_value_t = 64)]
    pub(crate) max_tokens: u32,
}

#[derive(Debug, Args)]
pub(crate) struct TtsArgs {
    /// Timed runs per text (the median is printed).
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
    /// Measure only this engine: piper, kokoro or espeak.
    #[arg(long)]
    pub(crate) engine: Option<String>,
    /// Skip the reference runtimes even when installed.
    #[arg(long)]
    pub(crate) no_reference: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SttArgs {
    /// Use only the first N prompts (default: every prompt with a transcript).
    #[arg(long)]
    pub(crate) prompts: Option<usize>,
    /// CPU threads for recognition.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Skip the reference runtime even when installed.
    #[arg(long)]
    pub(crate) no_reference: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AudioArgs {
    /// Prompts of the speech corpus to use.
    #[arg(long, default_value_t = 40)]
    prompts: usize,
    /// Directory of the prompt WAVs.
    #[arg(long, value_name = "DIR")]
    sounds_dir: Option<PathBuf>,
}

pub(crate) fn run(cmd: BenchCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Audio(args) => {
            let mut inputs = BenchInputs::from_config(config);
            inputs.prompts = args.prompts;
            if let Some(dir) = args.sounds_dir {
                inputs.sounds_dir = dir;
            }
            eprintln!(
                "measuring the audio front end on {} prompts (about a minute)...",
                inputs.prompts
            );
            let report = run_audio(&inputs).map_err(|e| anyhow!(e))?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Stt(args) => crate::bench_stt::run(&args, config),
        BenchCommand::Tts(args) => crate::bench_tts::run(&args, config),
        BenchCommand::Llm(args) => crate::bench_llm::run(&args, config),
        BenchCommand::Latency(args) => crate::bench_latency::run(&args, config),
        BenchCommand::Capacity(args) => crate::bench_capacity::run(&args, config),
        BenchCommand::Pii(args) => crate::bench_pii::run(&args, config),
    }
}
