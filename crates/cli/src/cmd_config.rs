//! `switchboard config`: what the process will run with, and where each value came from.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use switchboard_core::Config;
use switchboard_core::config::{example_env, example_yaml};

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration with secrets redacted.
    Show(ShowArgs),
    /// Validate the configuration and exit 0 when it is usable.
    Check,
    /// Print a documented example of every setting (config.yaml, or .env with --env).
    Example(ExampleArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
    format: ShowFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShowFormat {
    /// key, value, environment variable and source, one setting per line.
    Table,
    /// A JSON object keyed by environment variable.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ExampleArgs {
    /// Print .env.example instead of config.example.yaml.
    #[arg(long)]
    env: bool,
}

pub(crate) fn run(cmd: ConfigCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Show(args) => show(config, args.format),
        ConfigCommand::Check => println!("configuration is valid"),
        ConfigCommand::Example(args) => return Ok(example(&args)),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn example(args: &ExampleArgs) -> ExitCode {
    print!(
        "{}",
        if args.env {
            example_env()
        } else {
            example_yaml()
        }
    );
    ExitCode::SUCCESS
}

fn show(config: &Config, format: ShowFormat) {
    let rows = config.effective();
    match format {
        ShowFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = rows
                .iter()
                .map(|(s, value, source)| {
                    let entry = serde_json::json!({
                        "key": s.key,
                        "value": value,
                        "source": source.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "derived".into()),
                    });
                    (s.env.to_owned(), entry)
                })
                .collect();
            println!("{}", serde_json::Value::Object(map));
        }
        ShowFormat::Table => {
            let key_width = rows.iter().map(|(s, _, _)| s.key.len()).max().unwrap_or(0);
            let value_width = rows
                .iter()
                .map(|(_, v, _)| v.as_deref().map_or(5, str::len))
                .max()
                .unwrap_or(0)
                .min(48);
            for (s, value, source) in rows {
                let source = match source {
                    Some(source) => source.to_string(),
                    None if value.is_some() => "derived".into(),
                    None => "unset".into(),
                };
                println!(
                    "{:key_width$}  {:value_width$}  {:28}  {source}",
                    s.key,
                    value.as_deref().unwrap_or("-"),
                    s.env
                );
            }
        }
    }
}
