//! Whether this node can take calls: the configuration is valid (it is, or we would not be running),
//! every model the configuration needs is on disk and verified, and the database schema is current.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use switchboard_models::{Manifest, ModelStatus, model_status};
use tokio_util::sync::CancellationToken;

/// State of the model check, refreshed in the background until models are verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ModelsCheck {
    /// Hashing is still running.
    Verifying,
    /// Every required model is present and matches the manifest.
    Ok,
    /// Some model is missing or damaged.
    NotReady {
        /// `name: status` for each model that is not present.
        problems: Vec<String>,
        /// What the operator should run.
        fix: String,
    },
}

/// Whether the engines calls run on are in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnginesCheck {
    /// This node does not load engines (it serves the API only).
    NotUsed,
    /// Loading (whisper, the language model, the voice and its phrase cache).
    Loading,
    /// Loaded: calls are taken.
    Ok,
    /// Loading failed; calls are refused.
    Failed {
        /// Why.
        problem: String,
    },
}

/// Shared readiness facts, written by background checks and read by `/ready`.
#[derive(Debug, Clone)]
pub struct Readiness {
    models: Arc<RwLock<ModelsCheck>>,
    engines: Arc<RwLock<EnginesCheck>>,
    /// Shutdown has begun: `/ready` says 503 so that load balancers send nothing new.
    draining: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            models: Arc::new(RwLock::new(ModelsCheck::Verifying)),
            engines: Arc::new(RwLock::new(EnginesCheck::NotUsed)),
            draining: Arc::default(),
        }
    }
}

impl Readiness {
    /// The latest model check.
    pub fn models(&self) -> ModelsCheck {
        self.models
            .read()
            .map(|m| m.clone())
            .unwrap_or(ModelsCheck::Verifying)
    }

    /// The engines' state.
    pub fn engines(&self) -> EnginesCheck {
        self.engines
            .read()
            .map(|m| m.clone())
            .unwrap_or(EnginesCheck::Loading)
    }

    /// Shutdown has begun: from now on `/ready` answers 503.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records the engines' state (the loader sets it).
    pub fn set_engines(&self, check: EnginesCheck) {
        if let Ok(mut m) = self.engines.write() {
            *m = check;
        }
    }

    fn set_models(&self, check: ModelsCheck) {
        if let Ok(mut m) = self.models.write() {
            *m = check;
        }
    }

    /// Verifies `required` models in MODELS_DIR now (hashing runs on the blocking pool), then again every
    /// `recheck` until they are all verified, so `models fetch` in another terminal makes this node ready
    /// without a restart. Stops when `stop` is cancelled.
    pub fn spawn_model_check(
        &self,
        models_dir: PathBuf,
        required: Vec<String>,
        recheck: Duration,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let readiness = self.clone();
        tokio::spawn(async move {
            loop {
                let dir = models_dir.clone();
                let names = required.clone();
                let check = tokio::task::spawn_blocking(move || check_models(&dir, &names))
                    .await
                    .unwrap_or_else(|e| ModelsCheck::NotReady {
                        problems: vec![format!("model check crashed: {e}")],
                        fix: "see the logs".into(),
                    });
                let done = check == ModelsCheck::Ok;
                match &check {
                    ModelsCheck::Ok => tracing::info!(models = ?required, "models verified"),
                    ModelsCheck::NotReady { problems, .. } => {
                        tracing::warn!(
                            ?problems,
                            "models not ready; run `switchboard models fetch`"
                        )
                    }
                    ModelsCheck::Verifying => {}
                }
                readiness.set_models(check);
                if done {
                    return;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(recheck) => {}
                }
            }
        })
    }
}

fn check_models(models_dir: &std::path::Path, required: &[String]) -> ModelsCheck {
    let manifest = match Manifest::builtin() {
        Ok(m) => m,
        Err(e) => {
            return ModelsCheck::NotReady {
                problems: vec![e.to_string()],
                fix: "this build is broken; reinstall".into(),
            };
        }
    };
    let mut problems = Vec::new();
    for name in required {
        let status = manifest
            .model(name)
            .map_err(|e| e.to_string())
            .and_then(|model| {
                model_status(models_dir, model)
                    .map(|(s, _)| s)
                    .map_err(|e| e.to_string())
            });
        match status {
            Ok(ModelStatus::Present) => {}
            Ok(other) => problems.push(format!("{name}: {other}")),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    if problems.is_empty() {
        ModelsCheck::Ok
    } else {
        ModelsCheck::NotReady {
            fix: format!(
                "run `switchboard models fetch {}` (MODELS_DIR={})",
                required.join(" "),
                models_dir.display()
            ),
            problems,
        }
    }
}
