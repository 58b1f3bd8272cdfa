//! Runs the HTTP server until told to stop, then drains in-flight requests for at most the grace period.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use switchboard_core::Config;
use switchboard_store::Database;
use tokio::net::TcpListener;
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
    /// Twilio's REST API for this account (outbound calls, transfers), when configured.
    pub twilio: Option<switchboard_telephony::twilio::rest::Client>,
    /// Asterisk's REST interface, when ARI_URL is set.
    pub ari: Option<Arc<crate::ari::AriLink>>,
    /// The SIP line (user agent, registration, outbound route), once started.
    pub sip: Option<Arc<crate::sip::SipLink>>,
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
            twilio: crate::twilio::rest_client(&config),
            ari: crate::ari::link(&config),
            sip: None,
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
/// and Media Streams.
pub fn app(state: AppState) -> Router {
    let mut router = crate::health::router(state.clone()).merge(
        crate::api::routes()
            .route("/ws/audio/{id}", axum::routing::get(crate::ws::audio))
            .route("/", axum::routing::get(crate::console::page))
            .merge(crate::twilio::routes())
            .with_state(state.clone()),
    );
    if state.config.observability.enable_metrics {
        crate::metrics::handle();
        router = router.route("/metrics", axum::routing::get(crate::metrics::render));
    }
    router
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting connections and waits
/// up to `grace` for requests in flight. Returns `true` when everything drained, `false` when the grace
/// period ran out with work still running.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<bool> {
    let stopping = CancellationToken::new();
    let trigger = stopping.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
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
