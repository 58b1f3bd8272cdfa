//! Requests per credential per minute (RATE_LIMIT_PER_MINUTE), and per source address before credentials
//! are checked (RATE_LIMIT_PER_SOURCE_PER_MINUTE). With Redis the counters are shared, so the
//! limit holds across nodes behind a load balancer; without it each node counts for itself. If Redis
//! fails, the request is let through and the failure counted: an outage of the shared state must not
//! lock operators out of the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_store::LiveState;

use crate::ApiError;

const WINDOW: Duration = Duration::from_secs(60);

/// The limiter of one node.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_minute: u32,
    /// What is counted and the setting that limits it, for the refusal's message.
    counted: (&'static str, &'static str),
    local: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
}

impl RateLimiter {
    /// `per_minute` requests per credential; 0 is unlimited.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            counted: ("these credentials", "RATE_LIMIT_PER_MINUTE"),
            local: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// `per_minute` requests per source address; 0 is unlimited.
    pub fn per_source(per_minute: u32) -> Self {
        Self {
            counted: ("this address", "RATE_LIMIT_PER_SOURCE_PER_MINUTE"),
            ..Self::new(per_minute)
        }
    }

    /// Counts a request of `actor`; 429 once it is over the limit.
    pub async fn check(&self, actor: &str, shared: Option<&LiveState>) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let count = match shared {
            Some(live) => match live.count(actor, WINDOW).await {
                Ok(count) => count,
                Err(e) => {
                    tracing::warn!(error = %e, "rate limit not checked: Redis failed");
                    metrics::counter!("switchboard_errors_total", "kind" => "redis").increment(1);
                    return Ok(());
                }
            },
            None => self.count_locally(actor),
        };
        if count > u64::from(self.per_minute) {
            metrics::counter!("switchboard_rate_limited_total").increment(1);
            let (what, setting) = self.counted;
            return Err(ApiError::too_many_requests(format!(
                "over {} requests a minute for {what} ({setting}); try again in a minute",
                self.per_minute
            )));
        }
        Ok(())
    }

    fn count_locally(&self, actor: &str) -> u64 {
        let mut map = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = map.entry(actor.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        u64::from(entry.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limit_is_per_credential_and_zero_is_off() {
        let limiter = RateLimiter::new(2);
        assert!(limiter.check("a", None).await.is_ok());
        assert!(limiter.check("a", None).await.is_ok());
        assert_eq!(limiter.check("a", None).await.unwrap_err().status, 429);
        assert!(limiter.check("b", None).await.is_ok());
        let off = RateLimiter::new(0);
        for _ in 0..100 {
            assert!(off.check("a", None).await.is_ok());
        }
    }
}
