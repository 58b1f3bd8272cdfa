//! Runs the HTTP server until told to stop, then drains in-flight requests for at most the grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use switchboard_core::Config;
use switchboard_store::Database;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Readiness;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Background readiness checks.
    pub readiness: Readiness,
    /// The system of record.
    pub database: Database,
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
