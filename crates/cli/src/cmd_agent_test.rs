//! `switchboard agent-test SCENARIOS.json`: scripted calls at the text level through the configured language
//! model; prints each scenario's claim accuracy and tool calls, and the total field accuracy. With
//! `--audio`, the lines are spoken and played through real calls instead (see [`crate::agent_audio`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use switchboard_agent::scenario::FieldResult;
use switchboard_agent::{AgentConfig, Scenario, ScenarioReport, run_scenario};
use switchboard_core::Config;
use switchboard_llm::ChatModel;

use crate::agent_audio::AudioArgs;

#[derive(Debug, Args)]
pub(crate) struct AgentTestArgs {
    /// A JSON array of scenarios (see crates/agent/scenarios/claims.json).
    scenarios: PathBuf,
    /// Run only scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Exit with failure when the field accuracy is below this fraction (0.8 = 80 %).
    #[arg(long, value_name = "FRACTION")]
    min_accuracy: Option<f64>,
    /// Write every report (turns, answers, fields) to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print each exchange.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    spoken: AudioArgs,
}

pub(crate) fn run(args: &AgentTestArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.scenarios)
        .with_context(|| format!("cannot read {}", args.scenarios.display()))?;
    let mut scenarios: Vec<Scenario> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a list of scenarios", args.scenarios.display()))?;
    if let Some(only) = &args.only {
        scenarios.retain(|s| s.name.contains(only.as_str()));
    }
    if scenarios.is_empty() {
        bail!("no scenarios to run");
    }
    if args.spoken.audio {
        return crate::agent_audio::run(
            &args.spoken,
            &scenarios,
            config,
            args.min_accuracy,
            args.json.as_ref(),
        );
    }
    let agent = AgentConfig::from_config(config)?;
    let loading = Instant::now();
    let model: Arc<dyn ChatModel> = switchboard_llm::chat_model(config, None)?;
    let native_tools = switchboard_llm::uses_native_tools(config);
    eprintln!(
        "model {} loaded in {} ms; running {} scenarios",
        model.name(),
        loading.elapsed().as_millis(),
        scenarios.len()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let mut reports: Vec<ScenarioReport> = Vec::new();
    for scenario in &scenarios {
        let started = Instant::now();
        let report = runtime.block_on(run_scenario(
            model.clone(),
            None,
            &agent,
            native_tools,
            scenario,
        ));
        print_report(&report, started.elapsed().as_secs_f64(), args.verbose);
        reports.push(report);
    }
    let expected: usize = reports.iter().map(|r| r.fields.len()).sum();
    let correct: usize = reports.iter().map(ScenarioReport::correct).sum();
    let tools_missing: usize = reports.iter().map(|r| r.missing_tools.len()).sum();
    let accuracy = if expected == 0 {
        1.0
    } else {
        correct as f64 / expected as f64
    };
    let turns: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.exchanges.iter().map(|e| e.millis))
        .collect();
    let mean_turn = turns.iter().sum::<u64>() as f64 / turns.len().max(1) as f64;
    let max_model_wait = reports
        .iter()
        .flat_map(|r| r.exchanges.iter().map(|e| e.model_millis))
        .max()
        .unwrap_or(0);
    let reasked: usize = reports.iter().map(|r| r.reasked.len()).sum();
    println!(
        "\nfield accuracy: {correct}/{expected} = {:.1} % on {} ({} scenarios); questions asked again after their answer: {reasked}; expected tool calls missing: {tools_missing}; mean turn {mean_turn:.0} ms, longest wait on the model {max_model_wait} ms",
        accuracy * 100.0,
        model.name(),
        reports.len()
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match args.min_accuracy {
        Some(min) if accuracy < min => {
            eprintln!(
                "error: field accuracy {:.1} % is below the required {:.1} %",
                accuracy * 100.0,
                min * 100.0
            );
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn print_report(report: &ScenarioReport, seconds: f64, verbose: bool) {
    println!(
        "{:<60} fields {}/{}  tools [{}]{}  {seconds:.1} s",
        report.name,
        report.correct(),
        report.fields.len(),
        report.tools_called.join(", "),
        if report.missing_tools.is_empty() {
            String::new()
        } else {
            format!("  MISSING [{}]", report.missing_tools.join(", "))
        }
    );
    print_wrong_fields(&report.fields);
    for (turn, field) in &report.reasked {
        println!("    asked again at turn {turn}: {field}");
    }
    for error in &report.errors {
        println!("    llm error: {error}");
    }
    if verbose {
        for exchange in &report.exchanges {
            println!("    caller: {}", exchange.caller);
            println!(
                "    agent:  {}  [{}{} ms]",
                exchange.agent,
                exchange
                    .intent
                    .as_deref()
                    .map(|i| format!("{i}, "))
                    .unwrap_or_default(),
                exchange.millis
            );
        }
    }
}

/// The expected fields a scenario got wrong, one a line.
pub(crate) fn print_wrong_fields(fields: &[FieldResult]) {
    for field in fields.iter().filter(|f| !f.correct) {
        println!(
            "    {:<22} expected {}  got {}",
            field.field, field.expected, field.got
        );
    }
}
