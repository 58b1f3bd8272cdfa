//! A GGUF model run in-process by llama.cpp: the default engine, needing no server.
//!
//! One worker thread owns the model and its context, so generation never blocks the async runtime and
//! the context's KV cache survives between requests: each new prompt is compared with the tokens already
//! in the cache, the common prefix (the system prompt and every earlier turn) is kept, and only the new
//! tail is evaluated. A call's second turn therefore costs its new words, not the whole prompt again.
//! Requests are served one at a time in arrival order, except that background work (a post-call
//! synthesis) gives way: while it runs, a live call's request is served between two of its tokens, its
//! own sequence of the cache kept aside until it goes on. Output is constrained by a GBNF grammar when the
//! request carries a response schema (always a value of the schema) or tools (prose, or one well-formed
//! call of one of the tools). Each step of computation waits for the node's [`ComputeGate`] when one is
//! given, so that the model and the recogniser take the cores in turn.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, OnceLock};
use std::thread;

use futures_util::future::BoxFuture;
use llama_cpp_2::llama_backend::LlamaBackend;
use switchboard_core::compute::ComputeGate;
use tokio::sync::{mpsc, oneshot};

use crate::{ChatEvent, ChatModel, ChatRequest, EventStream, LlmError};

mod worker;

use worker::worker;

/// How an embedded model runs.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Tokens of context (prompt plus answer). Longer prompts are refused; the agent's memory keeps them
    /// shorter.
    pub context_tokens: u32,
    /// CPU threads for generation and prompt evaluation.
    pub threads: u16,
    /// Answer length when the request sets none.
    pub default_max_tokens: u32,
    /// The node's queue for model work, shared with the recogniser: each step (a piece of the prompt,
    /// one token) waits for a slot, so the two never spin against each other on the same cores. `None`:
    /// the model computes whenever it likes (a process with no recogniser).
    pub gate: Option<Arc<ComputeGate>>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            context_tokens: 4096,
            threads: 2,
            default_max_tokens: 256,
            gate: None,
        }
    }
}

/// A GGUF chat model run in-process (see the module docs).
pub struct EmbeddedLlama {
    name: String,
    jobs: Option<std_mpsc::Sender<Job>>,
    worker: Option<thread::JoinHandle<()>>,
}

/// Closing the queue ends the worker, which frees the context and the model; waiting for it keeps the
/// process from exiting (and running llama.cpp's static destructors) while it still computes.
impl Drop for EmbeddedLlama {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::error!(engine = %self.name, "the model's worker thread panicked");
        }
    }
}

impl std::fmt::Debug for EmbeddedLlama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLlama")
            .field("name", &self.name)
            .finish()
    }
}

struct Job {
    request: ChatRequest,
    started: oneshot::Sender<Result<(), LlmError>>,
    events: mpsc::Sender<Result<ChatEvent, LlmError>>,
}

/// llama.cpp's global state: initialised once per process, never torn down.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl EmbeddedLlama {
    /// Loads the GGUF at `path` on a worker thread of its own and waits until it is ready. Blocking: call it
    /// from `spawn_blocking` or at start-up.
    pub fn load(path: &Path, options: EmbeddedOptions) -> Result<Self, LlmError> {
        let file = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("embedded:{file}");
        if !path.is_file() {
            return Err(engine_error(
                &name,
                format!("the model file {} does not exist", path.display()),
            ));
        }
        let (jobs, queue) = std_mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let worker_name = name.clone();
        let path = path.to_path_buf();
        let handle = thread::Builder::new()
            .name("llm-embedded".into())
            .spawn(move || worker(worker_name, path, options, queue, ready_tx))
            .map_err(|e| engine_error(&name, format!("cannot start the worker thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                name,
                jobs: Some(jobs),
                worker: Some(handle),
            }),
            Ok(Err(detail)) => Err(engine_error(&name, detail)),
            Err(_) => Err(engine_error(
                &name,
                "the worker stopped while loading".into(),
            )),
        }
    }
}

impl ChatModel for EmbeddedLlama {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, LlmError>> {
        Box::pin(async move {
            let (started, started_rx) = oneshot::channel();
            let (events, events_rx) = mpsc::channel(64);
            let job = Job {
                request: request.clone(),
                started,
                events,
            };
            self.jobs
                .as_ref()
                .ok_or_else(|| engine_error(&self.name, "the model is shutting down".into()))?
                .send(job)
                .map_err(|_| engine_error(&self.name, "the model's worker has stopped".into()))?;
            started_rx
                .await
                .map_err(|_| engine_error(&self.name, "the model's worker has stopped".into()))??;
            let stream = futures_util::stream::unfold(events_rx, |mut rx| async move {
                rx.recv().await.map(|event| (event, rx))
            });
            Ok(Box::pin(stream) as EventStream)
        })
    }
}

fn engine_error(engine: &str, detail: String) -> LlmError {
    LlmError::Engine {
        engine: engine.to_owned(),
        detail,
    }
}
