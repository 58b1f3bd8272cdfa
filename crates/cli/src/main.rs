//! `switchboard`: the one binary operators run. Subcommands stay thin; the work lives in the library crates.

// A command-line tool's output is its interface.
#![allow(clippy::print_stdout)]

mod agent_audio;
mod bench_calls;
mod bench_capacity;
mod bench_latency;
mod bench_llm;
mod bench_pii;
mod bench_stt;
mod bench_tts;
mod call_server;
mod caller;
mod client_tls;
mod cmd_agent_test;
mod cmd_bench;
mod cmd_call;
mod cmd_config;
mod cmd_kb;
mod cmd_keys;
mod cmd_migrate;
mod cmd_models;
mod cmd_retention;
mod cmd_say;
mod cmd_serve;
mod cmd_transcribe;
mod logging;
mod progress;
mod read_aloud;
mod reference;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard_core::{Config, ConfigError};

/// Switchboard: a local AI phone agent for call centers.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    /// Configuration file (default: $CONFIG_FILE, else ./config.yaml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API, WebSockets and console.
    Serve,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(cmd_config::ConfigCommand),
    /// Provision and check model files.
    #[command(subcommand)]
    Models(cmd_models::ModelsCommand),
    /// Apply database migrations.
    Migrate(cmd_migrate::MigrateArgs),
    /// Remove callers' data past its retention period (RETENTION_DAYS, AUDIT_RETENTION_DAYS).
    #[command(subcommand)]
    Retention(cmd_retention::RetentionCommand),
    /// Transcribe a WAV recording.
    Transcribe(cmd_transcribe::TranscribeArgs),
    /// Speak text into a WAV file with the configured voice.
    Say(cmd_say::SayArgs),
    /// Measure speed and quality; prints tables for the README.
    #[command(subcommand)]
    Bench(cmd_bench::BenchCommand),
    /// Run scripted calls (caller lines in, claim and tool calls out) through the configured language
    /// model and print the claim field accuracy.
    AgentTest(cmd_agent_test::AgentTestArgs),
    /// The knowledge base the agent searches: add documents, list them, try a search.
    #[command(subcommand)]
    Kb(cmd_kb::KbCommand),
    /// API keys for the REST API, the call WebSocket and the console.
    #[command(subcommand)]
    Keys(cmd_keys::KeysCommand),
    /// Call the agent over /ws/audio with recorded caller turns; writes transcript, agent audio and a
    /// latency report.
    Call(cmd_call::CallArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The example generator documents settings; it must work even when the current configuration is broken.
    if let Command::Config(cmd_config::ConfigCommand::Example(args)) = &cli.command {
        return cmd_config::example(args);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return config_error(&e),
    };
    let result = match cli.command {
        Command::Serve => cmd_serve::run(config),
        Command::Config(cmd) => cmd_config::run(cmd, &config),
        Command::Models(cmd) => cmd_models::run(cmd, &config),
        Command::Migrate(args) => cmd_migrate::run(args, config),
        Command::Retention(cmd) => cmd_retention::run(cmd, &config),
        Command::Bench(cmd @ cmd_bench::BenchCommand::Latency(_)) => {
            // Whole calls run in this process: their logs and traces are wanted like a server's.
            match crate::logging::init(config.log, &config.observability) {
                Ok(_telemetry) => cmd_bench::run(cmd, &config),
                Err(e) => Err(e),
            }
        }
        Command::Bench(cmd) => cmd_bench::run(cmd, &config),
        Command::Transcribe(args) => cmd_transcribe::run(&args, &config),
        Command::Say(args) => cmd_say::run(&args, &config),
        Command::AgentTest(args) => cmd_agent_test::run(&args, &config),
        Command::Kb(cmd) => cmd_kb::run(cmd, &config),
        Command::Keys(cmd) => cmd_keys::run(cmd, &config),
        Command::Call(args) => match crate::logging::init(config.log, &config.observability) {
            Ok(_telemetry) => cmd_call::run(&args, &config),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Configuration errors exit with 2 (the convention for "you asked for something invalid").
fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!("hint: `switchboard config example` prints every setting with what it allows");
    ExitCode::from(2)
}
