use std::time::Duration;

/// Why a model did not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The server could not be reached (refused, DNS, reset before a response).
    #[error("{engine}: cannot reach {url}: {detail}")]
    Unreachable {
        /// Engine name.
        engine: String,
        /// Where it was asked.
        url: String,
        /// The transport's message.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{engine}: HTTP {status}: {detail}")]
    Status {
        /// Engine name.
        engine: String,
        /// HTTP status code.
        status: u16,
        /// The server's error message.
        detail: String,
    },
    /// Nothing arrived in time.
    #[error("{engine}: no answer within {} ms", .after.as_millis())]
    Timeout {
        /// Engine name.
        engine: String,
        /// How long we waited.
        after: Duration,
    },
    /// The server sent something that is not its documented wire format.
    #[error("{engine}: malformed response: {detail}")]
    Protocol {
        /// Engine name.
        engine: String,
        /// What was wrong.
        detail: String,
    },
    /// The circuit breaker is open after repeated failures; the engine is not tried until it cools down.
    #[error("{engine}: circuit open after repeated failures; retrying in {} ms", .retry_in.as_millis())]
    CircuitOpen {
        /// Engine name.
        engine: String,
        /// Until the next trial.
        retry_in: Duration,
    },
    /// Every engine of a fallback chain failed.
    #[error("every language model failed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<LlmError>),
    /// A JSON Schema that cannot be turned into a grammar.
    #[error("response schema: {0}")]
    Grammar(String),
    /// A local engine failed (model file, context, decoding).
    #[error("{engine}: {detail}")]
    Engine {
        /// Engine name.
        engine: String,
        /// What went wrong.
        detail: String,
    },
}

impl LlmError {
    /// Whether trying again may help: transport failures, timeouts, overload and server errors.
    /// A 4xx other than 408/429 (bad request, unknown model, bad key) will fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Unreachable { .. } | LlmError::Timeout { .. } => true,
            LlmError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
