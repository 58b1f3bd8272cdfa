//! `switchboard say "text" -o out.wav [--voice V]`: speech synthesis with the call's voice.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use switchboard_core::Config;
use switchboard_core::config::TtsEngine;
use switchboard_speech::tts;

#[derive(Debug, Args)]
pub(crate) struct SayArgs {
    /// What to say.
    text: String,
    /// Where to write the speech (16-bit mono WAV at the voice's own rate).
    #[arg(short, long, value_name = "FILE.wav")]
    output: PathBuf,
    /// Voice (default TTS_VOICE).
    #[arg(long)]
    voice: Option<String>,
    /// Engine (default TTS_MODEL): piper, kokoro or espeak.
    #[arg(long)]
    engine: Option<String>,
}

pub(crate) fn run(args: &SayArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let mut options = tts::options_from_config(config);
    if let Some(engine) = &args.engine {
        options.engine = match engine.to_ascii_lowercase().as_str() {
            "piper" => TtsEngine::Piper,
            "kokoro" => TtsEngine::Kokoro,
            "espeak" => TtsEngine::Espeak,
            other => bail!("unknown engine {other:?}: expected piper, kokoro or espeak"),
        };
    }
    if let Some(voice) = &args.voice {
        options.voice = voice.clone();
    }
    let voice = tts::load(&options)?;
    let info = voice.info().clone();
    let started = Instant::now();
    let mut first_chunk = None;
    let mut audio = Vec::new();
    voice.synthesize(&args.text, &mut |chunk| {
        first_chunk.get_or_insert_with(|| started.elapsed());
        audio.push(chunk);
        ControlFlow::Continue(())
    })?;
    let elapsed = started.elapsed();
    if audio.is_empty() {
        bail!("nothing to say: the text has no words");
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: info.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let write = || -> Result<f64, hound::Error> {
        let mut writer = hound::WavWriter::create(&args.output, spec)?;
        let mut seconds = 0.0;
        for chunk in &audio {
            let samples = if chunk.sample_rate == info.sample_rate {
                chunk.samples.clone()
            } else {
                // A piece the voice failed on, spoken by espeak-ng at its own rate.
                tts::resample_for_file(&chunk.samples, chunk.sample_rate, info.sample_rate)
            };
            seconds += samples.len() as f64 / f64::from(info.sample_rate);
            for s in samples {
                writer.write_sample((s.clamp(-1.0, 1.0) * 32_767.0).round() as i16)?;
            }
        }
        writer.finalize()?;
        Ok(seconds)
    };
    let seconds = write().with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "{} voice {}: {:.2} s of speech in {} chunk(s), first after {} ms, real-time factor {:.3} -> {}",
        info.engine,
        info.voice,
        seconds,
        audio.len(),
        first_chunk.unwrap_or(elapsed).as_millis(),
        elapsed.as_secs_f64() / seconds.max(1e-9),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
