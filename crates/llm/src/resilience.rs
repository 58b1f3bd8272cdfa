//! Keeping a call answered when a model server misbehaves: a timeout on the first event and between
//! events, retries with exponential backoff for failures that may pass, a circuit breaker that stops
//! hammering a server that keeps failing, and a chain that falls back to the next engine.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use crate::{ChatModel, ChatRequest, EventStream, LlmError};

/// How often and how patiently to retry a failure that may pass.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// Wait before the second try; doubled for each one after.
    pub initial_backoff: Duration,
    /// Longest wait between tries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 2,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_backoff)
    }
}

/// Whether an engine is being tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Healthy: every request goes through.
    Closed,
    /// Failing: requests are refused at once until the cool-down ends.
    Open,
    /// Cooled down: one trial request goes through; its outcome closes or reopens the breaker.
    HalfOpen,
}

#[derive(Debug)]
struct BreakerInner {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

/// Opens after `threshold` consecutive failures; after `cooldown` lets one trial through.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<BreakerInner>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(BreakerInner {
                consecutive_failures: 0,
                opened_at: None,
                trial_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerInner> {
        // The state is a few counters, valid after any panic; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() >= self.cooldown => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// May a request go now? `Err(wait)` while open (or while the half-open trial runs).
    pub fn acquire(&self) -> Result<(), Duration> {
        let mut inner = self.lock();
        match inner.opened_at {
            None => Ok(()),
            Some(at) => {
                let elapsed = at.elapsed();
                if elapsed < self.cooldown {
                    Err(self.cooldown - elapsed)
                } else if inner.trial_in_flight {
                    Err(self.cooldown)
                } else {
                    inner.trial_in_flight = true;
                    Ok(())
                }
            }
        }
    }

    /// A request succeeded: close.
    pub fn success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.opened_at = None;
        inner.trial_in_flight = false;
    }

    /// A request failed: open at the threshold, or again after a failed trial.
    pub fn failure(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures += 1;
        if inner.trial_in_flight || inner.consecutive_failures >= self.threshold {
            inner.opened_at = Some(Instant::now());
        }
        inner.trial_in_flight = false;
    }
}

/// An engine with timeouts, retries and a circuit breaker. A request has succeeded once its first event
/// arrived, so a server that accepts the request and then says nothing is a failure like one that
/// refuses it; once an answer has started, it is never retried (the caller may have heard part of it).
pub struct Resilient {
    inner: Arc<dyn ChatModel>,
    /// Time to the first event, and the longest gap between two events after it.
    timeout: Duration,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for Resilient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilient")
            .field("engine", &self.inner.name())
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

impl Resilient {
    /// `inner` guarded by `timeout` (RESPONSE_TIMEOUT_MS), `retry`, and `breaker`.
    pub fn new(
        inner: Arc<dyn ChatModel>,
        timeout: Duration,
        retry: RetryPolicy,
        breaker: CircuitBreaker,
    ) -> Self {
        Self {
            inner,
            timeout,
            retry,
            breaker,
        }
    }

    /// The breaker's state, for health reports.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    async fn attempt(&self, request: &ChatRequest) -> Result<EventStream, LlmError> {
        let name = self.inner.name().to_owned();
        let timeout = self.timeout;
        let started = async {
            let mut stream = self.inner.chat(request).await?;
            match stream.next().await {
                Some(Ok(first)) => Ok((first, stream)),
                Some(Err(e)) => Err(e),
                None => Err(LlmError::Protocol {
                    engine: name.clone(),
                    detail: "the answer was empty".into(),
                }),
            }
        };
        let (first, rest) =
            tokio::time::timeout(timeout, started)
                .await
                .map_err(|_| LlmError::Timeout {
                    engine: name.clone(),
                    after: timeout,
                })??;
        let rest = futures_util::stream::unfold(Some(rest), move |rest| {
            let name = name.clone();
            async move {
                let mut rest = rest?;
                match tokio::time::timeout(timeout, rest.next()).await {
                    Ok(Some(item)) => Some((item, Some(rest))),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(LlmError::Timeout {
                            engine: name,
                            after: timeout,
                        }),
                        None,
                    )),
                }
            }
        });
        Ok(Box::pin(
            futures_util::stream::once(async move { Ok(first) }).chain(rest),
        ))
    }
}

impl ChatModel for Resilient {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, LlmError>> {
        Box::pin(async move {
            let mut tries = 0;
            loop {
                if let Err(retry_in) = self.breaker.acquire() {
                    return Err(LlmError::CircuitOpen {
                        engine: self.inner.name().to_owned(),
                        retry_in,
                    });
                }
                tries += 1;
                match self.attempt(request).await {
                    Ok(stream) => {
                        self.breaker.success();
                        return Ok(stream);
                    }
                    Err(e) => {
                        self.breaker.failure();
                        if !e.is_transient() || tries >= self.retry.attempts {
                            return Err(e);
                        }
                        let wait = self.retry.backoff(tries - 1);
                        tracing::warn!(engine = self.inner.name(), error = %e, retry_in_ms = wait.as_millis() as u64, "language model failed; retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        })
    }
}

static ALL_FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// Requests any [`FallbackChain`] of this process sent to a later engine, for metrics.
pub fn total_fallbacks() -> u64 {
    ALL_FALLBACKS.load(Ordering::Relaxed)
}

/// Engines in order of preference: a request goes to the first that starts an answer. Each switch is
/// logged with the reason and counted.
pub struct FallbackChain {
    engines: Vec<Arc<dyn ChatModel>>,
    name: String,
    fallbacks: AtomicU64,
}

impl std::fmt::Debug for FallbackChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackChain")
            .field("engines", &self.name)
            .field("fallbacks", &self.fallbacks())
            .finish()
    }
}

impl FallbackChain {
    /// `engines`, the preferred first. Wrap each in [`Resilient`] so a silent server counts as failed.
    pub fn new(engines: Vec<Arc<dyn ChatModel>>) -> Self {
        let name = engines
            .iter()
            .map(|e| e.name())
            .collect::<Vec<_>>()
            .join(" → ");
        Self {
            engines,
            name,
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Requests that went to a later engine because an earlier one failed.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }
}

impl ChatModel for FallbackChain {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, LlmError>> {
        Box::pin(async move {
            let mut errors = Vec::new();
            for (i, engine) in self.engines.iter().enumerate() {
                match engine.chat(request).await {
                    Ok(stream) => {
                        if i > 0 {
                            self.fallbacks.fetch_add(1, Ordering::Relaxed);
                            ALL_FALLBACKS.fetch_add(1, Ordering::Relaxed);
                        }
                        return Ok(stream);
                    }
                    Err(e) => {
                        if let Some(next) = self.engines.get(i + 1) {
                            tracing::warn!(from = engine.name(), to = next.name(), error = %e, "language model failed; falling back");
                        }
                        errors.push(e);
                    }
                }
            }
            Err(LlmError::AllFailed(errors))
        })
    }
}
