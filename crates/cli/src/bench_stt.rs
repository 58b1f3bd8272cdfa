//! `switchboard bench stt`: word error rate and speed of the recogniser on real recorded speech.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::anyhow;
use switchboard_audio::SampleRate;
use switchboard_audio::corpus::{
    DEFAULT_SOUNDS_DIR, DEFAULT_TRANSCRIPTS, load_prompts, resample_all,
};
use switchboard_audio::g711::{ulaw_decode, ulaw_encode};
use switchboard_core::Config;
use switchboard_speech::wer::{normalize, word_errors};
use switchboard_speech::whisper::{TranscribeOptions, WhisperModel};

use crate::cmd_bench::SttArgs;

/// One row of the table.
struct PathScore {
    name: &'static str,
    words: usize,
    errors: usize,
    audio_seconds: f64,
    elapsed_seconds: f64,
}

/// The telephone path: 16 kHz down to 8 kHz, µ-law and back, up to 16 kHz again.
fn through_the_phone(samples: &[i16]) -> anyhow::Result<Vec<i16>> {
    let narrow = resample_all(samples, SampleRate::Hz16000, SampleRate::Hz8000)?;
    let coded: Vec<i16> = narrow
        .iter()
        .map(|&s| ulaw_decode(ulaw_encode(s)))
        .collect();
    Ok(resample_all(
        &coded,
        SampleRate::Hz8000,
        SampleRate::Hz16000,
    )?)
}

pub(crate) fn run(args: &SttArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let prompts = load_prompts(
        Path::new(DEFAULT_SOUNDS_DIR),
        Path::new(DEFAULT_TRANSCRIPTS),
        args.prompts.unwrap_or(usize::MAX),
    )
    .map_err(|e| anyhow!(e))?;
    if prompts.is_empty() {
        return Err(anyhow!(
            "no prompts with transcripts found in {DEFAULT_SOUNDS_DIR}"
        ));
    }
    let model = WhisperModel::load(&config.paths.models_dir.join("whisper-tiny/ggml-model.bin"))?;
    let options = TranscribeOptions {
        threads: args.threads,
        ..TranscribeOptions::default()
    };
    let mut rows = [
        PathScore {
            name: "16 kHz PCM",
            words: 0,
            errors: 0,
            audio_seconds: 0.0,
            elapsed_seconds: 0.0,
        },
        PathScore {
            name: "telephone: 8 kHz µ-law and back",
            words: 0,
            errors: 0,
            audio_seconds: 0.0,
            elapsed_seconds: 0.0,
        },
    ];
    let started = Instant::now();
    for (i, prompt) in prompts.iter().enumerate() {
        let reference = normalize(&prompt.text);
        let phone = through_the_phone(&prompt.samples)?;
        for (row, samples) in rows.iter_mut().zip([&prompt.samples, &phone]) {
            let audio: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32_768.0).collect();
            let t = model.transcribe(&audio, &options)?;
            row.words += reference.len();
            row.errors += word_errors(&reference, &normalize(&t.text));
            row.audio_seconds += t.audio_seconds;
            row.elapsed_seconds += t.elapsed.as_secs_f64();
        }
        if (i + 1) % 25 == 0 {
            eprintln!(
                "{} of {} prompts ({:.0} s)",
                i + 1,
                prompts.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "Whisper tiny.en (converted, whisper.cpp, greedy, {} threads) on {} prompts of asterisk-core-sounds-en ({:.0} s of speech):\n",
        args.threads,
        prompts.len(),
        rows[0].audio_seconds
    );
    println!("| path | words | WER | real-time factor |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} % | {:.3} |",
            r.name,
            r.words,
            100.0 * r.errors as f64 / r.words.max(1) as f64,
            r.elapsed_seconds / r.audio_seconds.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}
