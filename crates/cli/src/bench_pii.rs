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
    /// Write every figure, and each miss, as JSON here too.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

pub(crate) fn run(args: &PiiArgs) -> anyhow::Result<ExitCode> {
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
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
