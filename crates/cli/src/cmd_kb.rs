//! `switchboard kb add|list|search`: the company documents the agent answers from.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use switchboard_agent::{KnowledgeSearch, Passage, VectorIndex, chunk_text, read_document};
use switchboard_core::Config;
use switchboard_llm::{BertEmbedder, Embedder};
use switchboard_store::{Database, NewDocument};

#[derive(Debug, Subcommand)]
pub(crate) enum KbCommand {
    /// Index text, markdown and PDF files (directories are searched recursively). A file already indexed
    /// with the same content is skipped.
    Add {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the indexed documents.
    List,
    /// Show the passages closest to a question, as the agent's search_documents tool would.
    Search {
        /// The question.
        query: String,
        /// Passages to show.
        #[arg(short, default_value_t = 3)]
        k: usize,
    },
}

/// Passages embedded per batch.
const BATCH: usize = 16;

pub(crate) fn run(cmd: KbCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let db = runtime.block_on(open_database(config))?;
    let result = match cmd {
        KbCommand::List => runtime.block_on(list(&db)),
        KbCommand::Add { paths } => {
            let embedder = load_embedder(config)?;
            runtime.block_on(add(&db, embedder.as_ref(), &paths))
        }
        KbCommand::Search { query, k } => {
            let embedder = load_embedder(config)?;
            let index = runtime.block_on(load_index(&db, embedder))?;
            for hit in index.search(&query, k).map_err(anyhow::Error::msg)? {
                println!(
                    "{:.3}  [{} #{}] {}",
                    hit.score, hit.passage.document, hit.passage.index, hit.passage.text
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    runtime.block_on(db.close());
    result
}

pub(crate) async fn open_database(config: &Config) -> anyhow::Result<Database> {
    let db = connect(config).await?;
    if config.database.auto_migrate {
        db.migrate().await?;
    }
    Ok(db)
}

/// The configured database, sealing callers' data with DATA_KEY_FILE's keys when it is set.
pub(crate) async fn connect(config: &Config) -> anyhow::Result<Database> {
    // What a call cannot write before it ends waits on this node's disk until the database is back.
    let mut db = Database::connect_with(&config.database.target, config.database.statement_timeout)
        .await?
        .with_spool(config.paths.data_dir.join("spool"));
    if let Some(read) = &config.database.read_target {
        db = db
            .with_read_replica(read)
            .context("opening the read replica (DATABASE_READ_URL)")?;
    }
    match &config.database.data_key_file {
        Some(path) => {
            let keys = switchboard_store::DataKeys::load(path)
                .context("reading the data keys (DATA_KEY_FILE)")?;
            tracing::info!(key = keys.current(), "callers' data is sealed at rest");
            Ok(db.with_data_keys(Arc::new(keys)))
        }
        None => Ok(db),
    }
}

/// The sentence embedder in MODELS_DIR.
pub(crate) fn load_embedder(config: &Config) -> anyhow::Result<Arc<dyn Embedder>> {
    let dir = config.paths.models_dir.join("all-minilm-l6-v2");
    if !dir.join("model.safetensors").is_file() {
        bail!(
            "the embedding model is not in {}; run `switchboard models fetch all-minilm-l6-v2`",
            dir.display()
        );
    }
    Ok(Arc::new(BertEmbedder::load(&dir)?))
}

/// The knowledge base for live calls: `None` when no document was added (no embedder is loaded then).
pub(crate) async fn knowledge_for_calls(
    config: &Config,
    db: &Database,
) -> anyhow::Result<Option<Arc<dyn KnowledgeSearch>>> {
    if db.documents().await?.is_empty() {
        return Ok(None);
    }
    let embedder = load_embedder(config)?;
    let index = load_index(db, embedder).await?;
    tracing::info!(passages = index.len(), "knowledge base loaded");
    Ok(Some(Arc::new(index)))
}

/// The knowledge base of `db` as an in-memory index for `embedder`.
pub(crate) async fn load_index(
    db: &Database,
    embedder: Arc<dyn Embedder>,
) -> anyhow::Result<VectorIndex> {
    let chunks = db.knowledge_chunks(embedder.name()).await?;
    let mut index = VectorIndex::new(embedder);
    for chunk in chunks {
        let passage = Passage {
            document: chunk.document,
            index: usize::try_from(chunk.seq).unwrap_or(0),
            text: chunk.text,
        };
        index.insert(passage, chunk.embedding)?;
    }
    Ok(index)
}

async fn list(db: &Database) -> anyhow::Result<ExitCode> {
    let documents = db.documents().await?;
    if documents.is_empty() {
        println!("no documents; add some with `switchboard kb add PATH...`");
    }
    for d in documents {
        println!(
            "{:<40} {:>5} passages  {}  {}",
            d.name, d.chunks, d.embedder, d.source
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn add(
    db: &Database,
    embedder: &dyn Embedder,
    paths: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files)?;
    }
    if files.is_empty() {
        bail!("no .txt, .md or .pdf files in {paths:?}");
    }
    let (mut added, mut skipped, mut failed) = (0, 0, 0);
    for file in &files {
        match add_file(db, embedder, file).await {
            Ok(true) => added += 1,
            Ok(false) => skipped += 1,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    println!("{added} added, {skipped} already indexed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Indexes one file; `false` when its content was indexed before.
async fn add_file(db: &Database, embedder: &dyn Embedder, file: &Path) -> anyhow::Result<bool> {
    let text = read_document(file)?;
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    if db.has_document(&sha256, embedder.name()).await? {
        eprintln!("{name}: already indexed");
        return Ok(false);
    }
    let chunks = chunk_text(&text);
    if chunks.is_empty() {
        bail!("{}: no text to index", file.display());
    }
    let bar = progress(&name, chunks.len());
    let mut embedded = Vec::with_capacity(chunks.len());
    for batch in chunks.chunks(BATCH) {
        let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
        let vectors = embedder
            .embed(&texts)
            .with_context(|| format!("embedding {}", file.display()))?;
        embedded.extend(batch.iter().cloned().zip(vectors));
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    let document = NewDocument {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.clone(),
        source: file.display().to_string(),
        sha256,
        embedder: embedder.name().to_owned(),
    };
    db.insert_document(&document, &embedded).await?;
    eprintln!("{name}: {} passages indexed", embedded.len());
    Ok(true)
}

fn progress(name: &str, total: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        eprintln!("{name}: embedding {total} passages...");
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} passages")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(name.to_owned());
    bar
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for entry in entries {
        let indexed = entry.extension().is_some_and(|e| {
            matches!(
                e.to_string_lossy().to_lowercase().as_str(),
                "txt" | "md" | "markdown" | "pdf"
            )
        });
        if entry.is_dir() {
            collect_files(&entry, out)?;
        } else if indexed {
            out.push(entry);
        }
    }
    Ok(())
}
