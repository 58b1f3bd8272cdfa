//! Runs the HTTP server until told to stop, then drains in-flight requests for at most the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::{Listener, ListenerExt};
use switchboard_core::Config;
use switchboard_store::Database;
use tokio_util::sync::CancellationToken;

use crate::{Authenticator, CallRegistry, Readiness};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Background readiness checks.
    pub readiness: Readiness,
    /// The system of record.
    pub database: Database,
    /// Calls connected to this node.
    pub calls: CallRegistry,
    /// The models calls run on, set once they are loaded (calls are refused until then).
    pub engines: Arc<OnceLock<Arc<switchboard_session::Engines>>>,
    /// Credential checks and the audit log.
    pub auth: Authenticator,
    /// Shared live state in Redis (REDIS_HOST); `None` keeps it in this process.
    pub live: Option<switchboard_store::LiveState>,
    /// Requests per credential per minute.
    pub limiter: crate::ratelimit::RateLimiter,
    /// Requests per source address per minute, counted before credentials are checked.
    pub source_limiter: crate::ratelimit::RateLimiter,
    /// Twilio's REST API for this account (outbound calls, transfers), when configured.
    pub twilio: Option<switchboard_telephony::twilio::rest::Client>,
    /// Asterisk's REST interface, when ARI_URL is set.
    pub ari: Option<Arc<crate::ari::AriLink>>,
    /// The SIP line (user agent, registration, outbound route), once started.
    pub sip: Option<Arc<crate::sip::SipLink>>,
    /// Single-use WebSocket tickets issued here (used when there is no Redis to share them).
    pub tickets: crate::tickets::Tickets,
}

impl AppState {
    /// State for `config`; the engines are set into [`AppState::engines`] once loaded.
    pub fn new(
        config: Arc<Config>,
        readiness: Readiness,
        database: Database,
    ) -> Result<Self, String> {
        let auth = Authenticator::from_config(&config, database.clone())?;
        Ok(Self {
            calls: CallRegistry::new(config.calls.max_concurrent),
            limiter: crate::ratelimit::RateLimiter::new(config.auth.rate_limit_per_minute),
            source_limiter: crate::ratelimit::RateLimiter::per_source(
                config.auth.rate_limit_per_source_per_minute,
            ),
            twilio: crate::twilio::rest_client(&config),
            ari: crate::ari::link(&config),
            sip: None,
            tickets: crate::tickets::Tickets::default(),
            config,
            readiness,
            database,
            engines: Arc::new(OnceLock::new()),
            auth,
            live: None,
        })
    }
}

/// Every route of a node: health, readiness, metrics, the API, the call WebSocket and Twilio's webhooks
/// and Media Streams; every answer within REQUEST_TIMEOUT_MS and with the security headers.
pub fn app(state: AppState) -> Router {
    let mut router = crate::health::router(state.clone()).merge(
        crate::api::routes()
            .route("/ws/audio/{id}", axum::routing::get(crate::ws::audio))
            .route("/", axum::routing::get(crate::console::page))
            .merge(crate::twilio::routes())
            .with_state(state.clone()),
    );
    let observability = &state.config.observability;
    if observability.enable_metrics && observability.metrics_address.is_none() {
        crate::metrics::handle();
        router = router.route("/metrics", axum::routing::get(crate::metrics::render));
    }
    if state.config.server.tls.is_some() {
        // Served over HTTPS: browsers are told to come back only that way for a year.
        router = router.layer(middleware::map_response(
            |mut response: Response| async move {
                response.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=31536000"),
                );
                response
            },
        ));
    }
    router
        .layer(middleware::from_fn_with_state(
            state.config.server.request_timeout,
            time_limit,
        ))
        .layer(middleware::map_response(security_headers))
}

/// `/metrics` alone, for METRICS_ADDRESS: a listener of its own that only Prometheus need reach.
pub fn metrics_app() -> Router {
    crate::metrics::handle();
    Router::new()
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .layer(middleware::map_response(security_headers))
}

/// Answers 503 `request_timeout` for a request not answered within `limit`. A WebSocket or event stream
/// is answered at once (its upgrade or headers), so what flows on it afterwards is not limited.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("switchboard_errors_total", "kind" => "request_timeout").increment(1);
            crate::ApiError::unavailable(
                "request_timeout",
                format!(
                    "the request was not answered within {} ms (REQUEST_TIMEOUT_MS); try again",
                    limit.as_millis()
                ),
            )
            .into_response()
        }
    }
}

/// Headers every answer carries: no sniffing, framing or referrers, nothing cached (answers hold what
/// callers said), and, unless the page set its own, a policy that lets an answer load nothing.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    response
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting connections and waits
/// up to `grace` for requests in flight. Returns `true` when everything drained, `false` when the grace
/// period ran out with work still running.
pub async fn serve<L>(
    listener: L,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<bool>
where
    L: Listener<Addr = SocketAddr>,
{
    let stopping = CancellationToken::new();
    let trigger = stopping.clone();
    // The peer's address goes with each request: the per-source rate limit and the audit need it.
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    // Tapped, so that any listener (plain TCP, or TLS) hands over the peer's address the same way.
    let server = axum::serve(listener.tap_io(|_| {}), service).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "shutting down: draining in-flight requests"
        );
        trigger.cancel();
    });
    let deadline = async {
        stopping.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map(|()| true),
        () = deadline => {
            tracing::warn!("grace period over with requests still in flight; stopping anyway");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_request_not_answered_in_time_gets_503_and_a_quick_one_its_answer() {
        let router = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route("/quick", axum::routing::get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(
                Duration::from_secs(30),
                time_limit,
            ));
        let status = |path: &'static str| {
            let router = router.clone();
            async move {
                router
                    .oneshot(Request::get(path).body(Body::empty()).unwrap_or_default())
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or_default()
            }
        };
        assert_eq!(status("/quick").await, 200);
        assert_eq!(status("/slow").await, 503);
    }
}
