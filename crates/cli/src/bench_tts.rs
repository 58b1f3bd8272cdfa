//! `switchboard bench tts`: time to the first audio chunk and real-time factor of every voice we can load,
//! on short and long sentences, beside the voice's own reference runtime where it is installed.

use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::json;
use switchboard_core::Config;
use switchboard_core::config::TtsEngine;
use switchboard_speech::tts::{self, TextToSpeech, TtsOptions};

use crate::cmd_bench::TtsArgs;
use crate::reference;

/// What a call says most: short fixed phrases and replies.
const SHORT: &str = "One moment, please.";
/// A long answer: the time to the first chunk is what the caller waits for.
const LONG: &str = "I have opened a claim for the water damage in your kitchen, and an adjuster will call \
you within two business days to arrange a visit. Please keep the receipts for any emergency repairs, and \
take photos of the damage before anything is thrown away.";

const REFERENCE_SCRIPT: &str = include_str!("../../../scripts/reference/tts.py");

/// Median figures of one text on one voice.
#[derive(Debug, Clone, Copy)]
struct Timing {
    first_chunk: Duration,
    total: Duration,
    audio: Duration,
}

impl Timing {
    fn rtf(&self) -> f64 {
        self.total.as_secs_f64() / self.audio.as_secs_f64().max(1e-9)
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Times `text` `runs` times after one warm-up.
fn measure(tts: &dyn TextToSpeech, text: &str, runs: usize) -> anyhow::Result<Timing> {
    let once = || -> anyhow::Result<Timing> {
        let started = Instant::now();
        let mut first = None;
        let mut audio = Duration::ZERO;
        tts.synthesize(text, &mut |chunk| {
            first.get_or_insert_with(|| started.elapsed());
            audio += chunk.duration();
            ControlFlow::Continue(())
        })?;
        Ok(Timing {
            first_chunk: first.unwrap_or_default(),
            total: started.elapsed(),
            audio,
        })
    };
    once()?;
    let timings = (0..runs.max(1))
        .map(|_| once())
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Timing {
        first_chunk: median(timings.iter().map(|t| t.first_chunk).collect()),
        total: median(timings.iter().map(|t| t.total).collect()),
        audio: timings[0].audio,
    })
}

/// The voices to measure: the configured one's engine first, then the others that are provisioned.
fn voices(config: &Config) -> Vec<(TtsOptions, &'static str)> {
    let base = tts::options_from_config(config);
    let with = |engine, voice: &str| TtsOptions {
        engine,
        voice: voice.to_owned(),
        ..base.clone()
    };
    let piper_voice = if base.engine == TtsEngine::Piper {
        base.voice.clone()
    } else {
        "en_US-joe-medium".to_owned()
    };
    let kokoro_voice = if base.engine == TtsEngine::Kokoro {
        base.voice.clone()
    } else {
        "jf_alpha".to_owned()
    };
    vec![
        (with(TtsEngine::Piper, &piper_voice), "piper"),
        (with(TtsEngine::Kokoro, &kokoro_voice), "kokoro"),
        (with(TtsEngine::Espeak, &base.espeak_voice), "espeak"),
    ]
}

/// The reference runtime's request for a voice, when it has one.
fn reference_request(options: &TtsOptions, runs: usize) -> Option<serde_json::Value> {
    let texts = [SHORT, LONG];
    match options.engine {
        TtsEngine::Piper => Some(json!({
            "engine": "piper",
            "model": options.models_dir.join("piper").join(format!("{}.onnx", options.voice)),
            "texts": texts, "runs": runs,
        })),
        TtsEngine::Kokoro => Some(json!({
            "engine": "kokoro",
            "model": options.models_dir.join("kokoro/kokoro-v1.0.int8.onnx"),
            "voices": options.kokoro_voices.clone()
                .unwrap_or_else(|| options.models_dir.join("kokoro/voices_ja.npz")),
            "voice": options.voice, "texts": texts, "runs": runs,
        })),
        TtsEngine::Espeak => None,
    }
}

fn reference_timings(options: &TtsOptions, runs: usize) -> Result<Vec<Timing>, String> {
    let Some(request) = reference_request(options, runs) else {
        return Err("espeak-ng is its own reference".into());
    };
    let reply = match reference::run(REFERENCE_SCRIPT, &request) {
        Ok(Some(reply)) => reply,
        Ok(None) => return Err(reference::INSTALL_HINT.into()),
        Err(e) => return Err(format!("{e:#}")),
    };
    let seconds = |v: &serde_json::Value, key: &str| {
        Duration::from_secs_f64(v[key].as_f64().unwrap_or(0.0).max(0.0))
    };
    Ok(reply["results"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| Timing {
                    first_chunk: seconds(r, "first_chunk_s"),
                    total: seconds(r, "total_s"),
                    audio: seconds(r, "audio_s"),
                })
                .collect()
        })
        .unwrap_or_default())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

pub(crate) fn run(args: &TtsArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut measured = 0;
    for (options, engine) in voices(config) {
        if args.engine.as_deref().is_some_and(|e| e != engine) {
            continue;
        }
        let tts = match tts::load(&options) {
            Ok(tts) => tts,
            Err(e) => {
                notes.push(format!("{engine} {} not measured: {e}", options.voice));
                continue;
            }
        };
        eprintln!("measuring {engine} {}...", options.voice);
        measured += 1;
        let ours = [
            measure(tts.as_ref(), SHORT, args.runs)?,
            measure(tts.as_ref(), LONG, args.runs)?,
        ];
        let theirs = if args.no_reference {
            Err("--no-reference".to_owned())
        } else {
            reference_timings(&options, args.runs)
        };
        if let Err(why) = &theirs {
            notes.push(format!("{engine} reference not measured: {why}"));
        }
        for (i, (label, ours)) in ["short", "long"].iter().zip(ours).enumerate() {
            let mut row = format!(
                "| {engine} {} | {label} ({:.1} s) | {} | {:.3} |",
                options.voice,
                ours.audio.as_secs_f64(),
                ms(ours.first_chunk),
                ours.rtf()
            );
            match theirs.as_ref().ok().and_then(|t| t.get(i)) {
                Some(reference) => row.push_str(&format!(
                    " {} | {:.3} | {:.2}× |",
                    ms(reference.first_chunk),
                    reference.rtf(),
                    reference.first_chunk.as_secs_f64() / ours.first_chunk.as_secs_f64().max(1e-9),
                )),
                None => row.push_str(" – | – | – |"),
            }
            rows.push(row);
        }
    }
    if measured == 0 {
        return Err(anyhow!(
            "no voice could be loaded:\n  {}",
            notes.join("\n  ")
        ));
    }
    println!(
        "Text to speech, median of {} runs after a warm-up, {} threads (short: {SHORT:?}; long: {} words in 2 sentences):\n",
        args.runs.max(1),
        config.tts.threads,
        LONG.split_whitespace().count()
    );
    println!(
        "| voice | text | first chunk | real-time factor | reference first chunk | reference RTF | first chunk speed-up |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    if !notes.is_empty() {
        println!();
        for note in notes {
            println!("- {note}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
