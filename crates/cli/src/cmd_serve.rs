//! `switchboard serve`: open the database, start readiness checks, serve until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_core::Config;
use switchboard_models::required_models;
use switchboard_server::{AppState, Readiness, router, serve};
use switchboard_store::{Database, MigrationState};
use tokio_util::sync::CancellationToken;

/// How often an unready node re-verifies its models.
const MODEL_RECHECK: Duration = Duration::from_secs(15);

pub(crate) fn run(config: Config) -> anyhow::Result<ExitCode> {
    crate::logging::init(config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switchboard")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run_async(config));
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "switchboard stopped on an error");
    }
    result
}

async fn run_async(config: Config) -> anyhow::Result<ExitCode> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        environment = %config.environment,
        database = %config.database.target.display_url(),
        models_dir = %config.paths.models_dir.display(),
        llm_provider = %config.llm.provider,
        "starting switchboard"
    );
    let database = Database::connect(&config.database.target)
        .await
        .context("opening the database (check DATABASE_URL / POSTGRES_* settings)")?;
    if config.database.auto_migrate {
        database
            .migrate()
            .await
            .context("applying database migrations")?;
    } else if let MigrationState::Pending(versions) = database.migration_state().await? {
        tracing::warn!(
            ?versions,
            "database migrations pending; /ready stays 503 until `switchboard migrate`"
        );
    }

    let address = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address} (SERVER_HOST / SERVER_PORT)"))?;
    let local = listener.local_addr().context("reading the bound address")?;

    let stop = CancellationToken::new();
    let readiness = Readiness::default();
    let checker = readiness.spawn_model_check(
        config.paths.models_dir.clone(),
        required_models(&config),
        MODEL_RECHECK,
        stop.clone(),
    );
    let grace = config.server.shutdown_grace;
    let state = AppState {
        config: Arc::new(config),
        readiness,
        database: database.clone(),
    };
    tracing::info!(address = %local, "listening");
    let drained = serve(listener, router(state), shutdown_signal(), grace)
        .await
        .context("serving HTTP")?;
    stop.cancel();
    let _ = checker.await;
    database.close().await;
    tracing::info!(drained, "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}
