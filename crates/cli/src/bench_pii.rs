//! `switchboard bench pii`: how well personal data is masked before it is logged, streamed or stored.
//! Recall on sentences holding phone numbers, card numbers and e-mail addresses in the forms callers say
//! them and recognisers write them; false positives on ordinary call sentences and on every line of
//! Debian's recorded prompts (real text with "press one", times and extensions).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use switchboard_agent::pii::corpus::{PiiScore, ordinary_sentences, pii_cases, score};
use switchboard_audio::corpus::{DEFAULT_TRANSCRIPTS, load_transcripts};

#[derive(Debug, Args)]
pub(crate) struct PiiArgs {
    /// Sentences holding personal data (generated, seeded).
    #[arg(long, default_value_t = 300)]
    cases: usize,
    /// Ordinary call sentences (generated, seeded), besides the recorded prompts' transcripts.
    #[arg(long, default_value_t = 300)]
    ordinary: usize,
    /// The recorded prompts' transcripts (gzip), used as ordinary sentences when present.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_TRANSCRIPTS)]
    transcripts: PathBuf,
    /// Also speak the first N sentences with each voice (the configured one and espeak-ng), transcribe
    /// them with the call's recogniser, and mask what it wrote: how often a value the recogniser heard
    /// survives masking.
    #[arg(long, value_name = "N", default_value_t = 0)]
    spoken: usize,
    /// Write every figure, and each miss, as JSON here too.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// What the recogniser made of spoken sentences, through one voice.
#[derive(Debug, Default)]
struct RoundTrip {
    voice: String,
    sentences: usize,
    /// Transcripts that held the value (five digits of it in a row, or the e-mail's surname).
    heard: usize,
    /// Of those, masked transcripts that still held it.
    leaked: Vec<(String, String)>,
}

/// Speaks each case with `voice`, transcribes it, masks the transcript.
fn round_trip(
    voice: &dyn switchboard_speech::tts::TextToSpeech,
    model: &switchboard_speech::whisper::WhisperModel,
    options: &switchboard_speech::whisper::TranscribeOptions,
    cases: &[switchboard_agent::pii::corpus::PiiCase],
) -> anyhow::Result<RoundTrip> {
    use switchboard_agent::pii::corpus::leaks;
    let mut trip = RoundTrip {
        voice: format!("{} {}", voice.info().engine, voice.info().voice),
        ..RoundTrip::default()
    };
    for case in cases {
        let mut audio = Vec::new();
        voice.synthesize(&case.text, &mut |chunk| {
            audio.extend(switchboard_speech::tts::resample_for_file(
                &chunk.samples,
                chunk.sample_rate,
                16_000,
            ));
            std::ops::ControlFlow::Continue(())
        })?;
        let heard = model.transcribe(&audio, options)?.text;
        trip.sentences += 1;
        if leaks(case, &heard) {
            trip.heard += 1;
            let masked = switchboard_agent::mask_pii(&heard);
            if leaks(case, &masked) {
                trip.leaked.push((heard.clone(), masked.into_owned()));
            }
        }
    }
    Ok(trip)
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

pub(crate) fn run(args: &PiiArgs, config: &switchboard_core::Config) -> anyhow::Result<ExitCode> {
    let cases = pii_cases(args.cases);
    let generated = ordinary_sentences(args.ordinary);
    let prompts: Vec<String> = match load_transcripts(Path::new(&args.transcripts)) {
        Ok(lines) => lines.into_iter().map(|(_, said)| said).collect(),
        Err(e) => {
            eprintln!("the recorded prompts' transcripts are left out: {e}");
            Vec::new()
        }
    };
    let started = std::time::Instant::now();
    let on_generated = score(&cases, &generated);
    let on_prompts = score(&[], &prompts);
    let elapsed = started.elapsed();
    let sentences = cases.len() + generated.len() + prompts.len();

    println!("personal data masking (mask_pii), {sentences} sentences\n");
    println!("| kind / style | sentences | masked exactly |");
    println!("|---|---:|---:|");
    let mut styles: Vec<(String, usize, usize)> = Vec::new();
    for case in &cases {
        let key = format!("{:?} / {}", case.kind, case.style).to_lowercase();
        let missed = on_generated
            .missed
            .iter()
            .any(|(_, text, _)| *text == case.text);
        match styles.iter_mut().find(|(k, _, _)| *k == key) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += usize::from(!missed);
            }
            None => styles.push((key, 1, usize::from(!missed))),
        }
    }
    styles.sort();
    for (style, count, caught) in &styles {
        println!(
            "| {style} | {count} | {caught} ({:.1} %) |",
            percent(*caught, *count)
        );
    }
    let recall = on_generated.recall() * 100.0;
    println!(
        "\nrecall: {} of {} ({recall:.1} %; goal ≥ 99 %)",
        on_generated.caught, on_generated.cases
    );
    let row = |name: &str, s: &PiiScore| {
        println!(
            "false positives, {name}: {} of {} ({:.1} %; goal ≤ 1 %)",
            s.false_positives,
            s.ordinary,
            s.false_positive_rate() * 100.0
        );
    };
    row("ordinary call sentences", &on_generated);
    row("recorded prompts", &on_prompts);
    println!(
        "time: {:.1} µs a sentence",
        elapsed.as_secs_f64() * 1e6 / sentences.max(1) as f64
    );
    for (style, text, got) in on_generated.missed.iter().take(10) {
        println!("missed ({style}): {text:?} -> {got:?}");
    }
    for (text, got) in on_generated
        .wrongly_masked
        .iter()
        .chain(&on_prompts.wrongly_masked)
        .take(10)
    {
        println!("wrongly masked: {text:?} -> {got:?}");
    }
    let mut trips = Vec::new();
    if args.spoken > 0 {
        use switchboard_speech::{tts, whisper};
        // Every style: the sentences are spread over them in turn.
        let spoken: Vec<_> = cases.iter().take(args.spoken).cloned().collect();
        let model = whisper::WhisperModel::load(&whisper::model_path(config))?;
        let options = whisper::options_from_config(config);
        let configured = tts::options_from_config(config);
        let mut espeak = configured.clone();
        espeak.engine = switchboard_core::config::TtsEngine::Espeak;
        espeak.voice = "en-us".into();
        for voice_options in [configured, espeak] {
            let voice = tts::load(&voice_options)?;
            eprintln!(
                "speaking {} sentences with {} and transcribing them...",
                spoken.len(),
                voice.info().voice
            );
            trips.push(round_trip(voice.as_ref(), &model, &options, &spoken)?);
        }
        println!("\nspoken, transcribed by the call's recogniser, then masked:\n");
        println!("| voice | sentences | value in the transcript | still readable after masking |");
        println!("|---|---:|---:|---:|");
        for trip in &trips {
            println!(
                "| {} | {} | {} | {} ({:.1} %) |",
                trip.voice,
                trip.sentences,
                trip.heard,
                trip.leaked.len(),
                percent(trip.leaked.len(), trip.heard)
            );
        }
        for trip in &trips {
            for (heard, masked) in trip.leaked.iter().take(5) {
                println!("leaked ({}): {heard:?} -> {masked:?}", trip.voice);
            }
        }
    }
    if let Some(path) = &args.json {
        let report = json!({
            "cases": on_generated.cases,
            "caught": on_generated.caught,
            "recall": on_generated.recall(),
            "ordinary": on_generated.ordinary,
            "ordinary_false_positives": on_generated.false_positives,
            "prompts": on_prompts.ordinary,
            "prompt_false_positives": on_prompts.false_positives,
            "styles": styles.iter().map(|(s, n, c)| json!({"style": s, "sentences": n, "caught": c})).collect::<Vec<_>>(),
            "missed": on_generated.missed.iter().map(|(s, t, g)| json!({"style": s, "text": t, "masked": g})).collect::<Vec<_>>(),
            "wrongly_masked": on_generated.wrongly_masked.iter().chain(&on_prompts.wrongly_masked).map(|(t, g)| json!({"text": t, "masked": g})).collect::<Vec<_>>(),
            "micros_per_sentence": elapsed.as_secs_f64() * 1e6 / sentences.max(1) as f64,
            "spoken": trips.iter().map(|t| json!({
                "voice": t.voice,
                "sentences": t.sentences,
                "heard": t.heard,
                "leaked": t.leaked.iter().map(|(h, m)| json!({"transcript": h, "masked": m})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
