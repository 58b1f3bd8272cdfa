//! `switchboard bench stt`: word error rate and speed of the recogniser on real recorded speech.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::anyhow;
use switchboard_audio::corpus::{
    DEFAULT_SOUNDS_DIR, DEFAULT_TRANSCRIPTS, load_prompts, through_the_phone,
};
use switchboard_core::Config;
use switchboard_speech::wer::{normalize, word_errors};
use switchboard_speech::whisper::{self, TranscribeOptions, WhisperModel};

use crate::cmd_bench::SttArgs;

/// One row of the table.
struct PathScore {
    name: &'static str,
    words: usize,
    errors: usize,
    audio_seconds: f64,
    elapsed_seconds: f64,
}

const REFERENCE_SCRIPT: &str = include_str!("../../../scripts/reference/stt.py");

/// faster-whisper on the same CT2 model and the same samples: per path, (errors, seconds spent).
fn reference_scores(
    config: &Config,
    threads: usize,
    references: &[Vec<String>],
    paths: &[Vec<Vec<f32>>; 2],
) -> Result<[(usize, f64); 2], String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("samples.f32");
    let mut bytes = Vec::new();
    let mut utterances = Vec::new();
    for path in paths {
        for samples in path {
            utterances.push([bytes.len() / 4, samples.len()]);
            bytes.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
        }
    }
    std::fs::write(&file, &bytes).map_err(|e| e.to_string())?;
    let request = serde_json::json!({
        "model": config.paths.models_dir.join(config.stt.model.as_str()),
        "samples": file,
        "utterances": utterances,
        "threads": threads,
    });
    let reply = match crate::reference::run(REFERENCE_SCRIPT, &request) {
        Ok(Some(reply)) => reply,
        Ok(None) => return Err(crate::reference::INSTALL_HINT.into()),
        Err(e) => return Err(format!("{e:#}")),
    };
    let texts: Vec<&str> = reply["texts"]
        .as_array()
        .map(|t| t.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let seconds: Vec<f64> = reply["seconds"]
        .as_array()
        .map(|t| t.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    if texts.len() != utterances.len() || seconds.len() != utterances.len() {
        return Err("the reference runtime returned the wrong number of transcripts".into());
    }
    let n = references.len();
    let score = |range: std::ops::Range<usize>| {
        let errors = range
            .clone()
            .map(|i| word_errors(&references[i % n], &normalize(texts[i])))
            .sum::<usize>();
        (errors, seconds[range].iter().sum::<f64>())
    };
    Ok([score(0..n), score(n..2 * n)])
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
    // The model and window the server runs (WHISPER_COMPUTE_TYPE, WHISPER_WINDOW_MS); --threads decides.
    let model = WhisperModel::load(&whisper::model_path(config))?;
    let options = TranscribeOptions {
        threads: args.threads,
        language: Some("en".into()),
        ..whisper::options_from_config(config)
    };
    let to_f32 = |samples: &[i16]| -> Vec<f32> {
        samples.iter().map(|&s| f32::from(s) / 32_768.0).collect()
    };
    let references: Vec<Vec<String>> = prompts.iter().map(|p| normalize(&p.text)).collect();
    let mut inputs: [Vec<Vec<f32>>; 2] = [Vec::new(), Vec::new()];
    for prompt in &prompts {
        inputs[0].push(to_f32(&prompt.samples));
        inputs[1].push(to_f32(&through_the_phone(&prompt.samples)?));
    }
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
    for (row, path) in rows.iter_mut().zip(&inputs) {
        for (i, (audio, reference)) in path.iter().zip(&references).enumerate() {
            let t = model.transcribe(audio, &options)?;
            row.words += reference.len();
            row.errors += word_errors(reference, &normalize(&t.text));
            row.audio_seconds += t.audio_seconds;
            row.elapsed_seconds += t.elapsed.as_secs_f64();
            if (i + 1) % 50 == 0 {
                eprintln!(
                    "{}: {} of {} prompts ({:.0} s)",
                    row.name,
                    i + 1,
                    prompts.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    eprintln!("measuring the reference runtime on the same samples...");
    let reference = if args.no_reference {
        Err("--no-reference".to_owned())
    } else {
        reference_scores(config, args.threads, &references, &inputs)
    };
    println!(
        "{} on {} prompts of asterisk-core-sounds-en ({:.0} s of speech), greedy, {} threads; ours: \
         converted to ggml ({:?} weights, {} s window) on whisper.cpp; reference: the shipped CTranslate2 files \
         on faster-whisper:\n",
        config.stt.model,
        prompts.len(),
        rows[0].audio_seconds,
        args.threads,
        whisper::weight_type(config.stt.compute_type),
        options.min_window.map_or(30, |w| w.as_secs()),
    );
    println!(
        "| path | words | WER | real-time factor | reference WER | reference RTF | reference time ÷ ours |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, r) in rows.iter().enumerate() {
        let wer = |errors: usize| 100.0 * errors as f64 / r.words.max(1) as f64;
        let theirs = match &reference {
            Ok(scores) => {
                let (errors, seconds) = scores[i];
                format!(
                    "{:.1} % | {:.3} | {:.2}×",
                    wer(errors),
                    seconds / r.audio_seconds.max(1e-9),
                    seconds / r.elapsed_seconds.max(1e-9)
                )
            }
            Err(_) => "– | – | –".to_owned(),
        };
        println!(
            "| {} | {} | {:.1} % | {:.3} | {theirs} |",
            r.name,
            r.words,
            wer(r.errors),
            r.elapsed_seconds / r.audio_seconds.max(1e-9)
        );
    }
    if let Err(why) = reference {
        println!("\n- reference not measured: {why}");
    }
    Ok(ExitCode::SUCCESS)
}
