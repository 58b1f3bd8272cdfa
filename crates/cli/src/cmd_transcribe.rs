//! `switchboard transcribe FILE.wav [--json]`: speech recognition of a recording, with the call's engine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Args;
use switchboard_audio::corpus::read_wav_16k;
use switchboard_core::Config;
use switchboard_speech::whisper::{self, WhisperModel};

#[derive(Debug, Args)]
pub(crate) struct TranscribeArgs {
    /// A mono 16-bit WAV at 8, 16, 22.05, 24 or 48 kHz.
    file: PathBuf,
    /// Print JSON (text, segments with timings and confidence, real-time factor).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &TranscribeArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let samples = read_wav_16k(&args.file)
        .map_err(|e| anyhow!("cannot read {}: {e}", args.file.display()))?;
    let audio: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32_768.0).collect();
    let model = WhisperModel::load(&whisper::model_path(config))?;
    let options = whisper::options_from_config(config);
    let transcript = model
        .transcribe(&audio, &options)
        .with_context(|| format!("transcribing {}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&transcript)?);
    } else {
        println!("{}", transcript.text);
    }
    Ok(ExitCode::SUCCESS)
}
