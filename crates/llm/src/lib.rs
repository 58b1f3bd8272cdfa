//! Language models for the agent.
//!
//! One trait, [`ChatModel`], streams an answer as text deltas and tool calls, whatever serves the model:
//! a GGUF run in-process by llama.cpp ([`EmbeddedLlama`], the default, with the prompt prefix kept in its
//! KV cache and output constrained by a grammar), an Ollama server ([`OllamaChat`], `/api/chat`), any
//! OpenAI-compatible server ([`OpenAiChat`], `/v1/chat/completions` with server-sent events).
//! [`chat_model`] builds what the configuration asks for. [`Resilient`] wraps an engine with a first-event
//! timeout, retries with backoff and a circuit breaker; [`FallbackChain`] moves to the next engine when one
//! fails before it has said anything, logging and counting the switch. Tool-call arguments that small
//! models get slightly wrong are repaired by [`lenient`].

mod embedded;
mod embedder;
mod engines;
mod error;
pub mod grammar;
mod http;
pub mod lenient;
mod message;
mod ollama;
mod openai;
mod resilience;
mod sse;

pub use embedded::{EmbeddedLlama, EmbeddedOptions};
pub use embedder::{BertEmbedder, Embedder, cosine};
pub use engines::{
    chat_model, embedded_model_path, load_embedded, load_gguf, model_is_remote, ollama_chat,
    openai_chat, uses_native_tools,
};
pub use error::LlmError;
pub use message::{ChatEvent, ChatRequest, Message, Role, ToolCall, ToolSpec, Usage};
pub use ollama::OllamaChat;
pub use openai::OpenAiChat;
pub use resilience::{
    BreakerState, CircuitBreaker, FallbackChain, Resilient, RetryPolicy, total_fallbacks,
};

use std::pin::Pin;

use futures_util::Stream;
use futures_util::future::BoxFuture;

/// The events of one answer, in order; the stream ends after [`ChatEvent::Done`] or an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, LlmError>> + Send>>;

/// A chat model that streams its answer.
pub trait ChatModel: Send + Sync {
    /// Which engine and model, for logs and metrics (`ollama:llama3.2:3b`).
    fn name(&self) -> &str;

    /// Starts an answer. The future resolves once the engine accepted the request (an HTTP status of
    /// 200, a loaded model); an error then is a failure to start, which a [`FallbackChain`] may route
    /// around. Errors after that arrive in the stream.
    fn chat<'a>(&'a self, request: &'a ChatRequest)
    -> BoxFuture<'a, Result<EventStream, LlmError>>;
}
