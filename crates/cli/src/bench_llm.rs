//! `switchboard bench llm`: time to the first token and generation speed of each language engine on the
//! agent's own prompt, cold (whole prompt evaluated) and warm (the previous turn's prefix reused, as on
//! every turn after the first of a call).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use switchboard_agent::prompt::{AskTurn, Instruction, reply_system_prompt};
use switchboard_agent::{AgentConfig, Claim};
use switchboard_core::Config;
use switchboard_core::config::LlmModel;
use switchboard_llm::{ChatEvent, ChatModel, ChatRequest, Message};

use crate::cmd_bench::LlmArgs;

/// Caller lines of the benchmark conversation, one per run.
const CALLER_LINES: &[&str] = &[
    "Hi, I need to report a car accident that happened yesterday.",
    "My name is Ana Lopez and my policy number is AB-48213.",
    "It was on Main Street in Springfield, someone rear-ended me at a red light.",
    "No, nobody was hurt, but the bumper of my Honda Civic is smashed.",
    "You can call me back on 415 555 0134.",
    "Do I need to get a police report for this?",
];

/// An engine to measure, or why it cannot be.
type Engine = Result<Arc<dyn ChatModel>, String>;

struct Measured {
    engine: String,
    cold_first_ms: f64,
    warm_first_ms: Vec<f64>,
    tokens_per_second: Vec<f64>,
    prompt_tokens: Option<u32>,
}

pub(crate) fn run(args: &LlmArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let agent = AgentConfig::from_config(config)?;
    let mut engines: Vec<(String, Engine)> = Vec::new();
    for model in [LlmModel::Smollm2_135m, LlmModel::Gemma3_270m] {
        let path = config.paths.models_dir.join(model.file());
        if !path.is_file() {
            engines.push((
                format!("embedded:{model}"),
                Err(format!(
                    "not fetched: run `switchboard models fetch {model}`"
                )),
            ));
            continue;
        }
        engines.push((format!("embedded:{model}"), load(&path, config)));
    }
    if let Some(path) = &config.llm.model_path {
        engines.push((format!("embedded:{}", path.display()), load(path, config)));
    }
    engines.push((
        format!("ollama {}", config.llm.ollama_host),
        switchboard_llm::ollama_chat(config)
            .map(|e| Arc::new(e) as Arc<dyn ChatModel>)
            .map_err(|e| e.to_string()),
    ));
    engines.push((
        format!("openai {}", config.llm.openai_base_url),
        switchboard_llm::openai_chat(config)
            .map(|e| Arc::new(e) as Arc<dyn ChatModel>)
            .map_err(|e| e.to_string()),
    ));

    println!(
        "language engines on the agent's reply prompt; {} turns of one call, {} tokens max per answer, greedy",
        args.turns, args.max_tokens
    );
    println!(
        "{:<44} {:>9} {:>14} {:>14} {:>12}",
        "engine", "prompt tk", "first tk cold", "first tk warm", "tokens/s"
    );
    for (label, engine) in engines {
        let measured = match engine {
            Ok(engine) => runtime.block_on(measure(engine.as_ref(), &agent, args)),
            Err(reason) => Err(reason),
        };
        match measured {
            Ok(m) => println!(
                "{:<44} {:>9} {:>11.0} ms {:>11.0} ms {:>12.1}",
                m.engine,
                m.prompt_tokens.map_or("?".into(), |t| t.to_string()),
                m.cold_first_ms,
                median(&m.warm_first_ms),
                median(&m.tokens_per_second),
            ),
            Err(reason) => println!("{label:<44} not measured: {reason}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &std::path::Path, config: &Config) -> Engine {
    switchboard_llm::load_gguf(path, config, None)
        .map(|e| Arc::new(e) as Arc<dyn ChatModel>)
        .map_err(|e| e.to_string())
}

async fn measure(
    engine: &dyn ChatModel,
    agent: &AgentConfig,
    args: &LlmArgs,
) -> Result<Measured, String> {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default();
    let system = reply_system_prompt(
        agent,
        "en",
        today,
        &Claim::default(),
        "",
        &[],
        &Instruction::Ask {
            field: "caller_name".into(),
            description: "Full name of the caller".into(),
            turn: AskTurn::First,
        },
    );
    let mut messages = vec![Message::system(system)];
    let mut measured = Measured {
        engine: engine.name().to_owned(),
        cold_first_ms: 0.0,
        warm_first_ms: Vec::new(),
        tokens_per_second: Vec::new(),
        prompt_tokens: None,
    };
    for turn in 0..args.turns {
        messages.push(Message::user(CALLER_LINES[turn % CALLER_LINES.len()]));
        let request = ChatRequest {
            messages: messages.clone(),
            max_tokens: Some(args.max_tokens),
            ..ChatRequest::default()
        };
        let started = Instant::now();
        let mut stream = engine.chat(&request).await.map_err(|e| e.to_string())?;
        let mut first = None;
        let mut answer = String::new();
        let mut tokens = None;
        while let Some(event) = stream.next().await {
            match event.map_err(|e| e.to_string())? {
                ChatEvent::Text(delta) => {
                    first.get_or_insert_with(|| started.elapsed());
                    answer.push_str(&delta);
                }
                ChatEvent::ToolCall(_) => {}
                ChatEvent::Done(usage) => {
                    tokens = usage.completion_tokens;
                    if turn == 0 {
                        measured.prompt_tokens = usage.prompt_tokens;
                    }
                }
            }
        }
        let total = started.elapsed();
        let first = first.unwrap_or(total);
        let first_ms = first.as_secs_f64() * 1000.0;
        if turn == 0 {
            measured.cold_first_ms = first_ms;
        } else {
            measured.warm_first_ms.push(first_ms);
        }
        let generated = tokens.unwrap_or(0);
        let generating = (total - first).as_secs_f64();
        if generated > 1 && generating > 0.0 {
            measured
                .tokens_per_second
                .push(f64::from(generated - 1) / generating);
        }
        messages.push(Message::assistant(answer));
    }
    Ok(measured)
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
