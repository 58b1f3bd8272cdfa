//! `switchboard serve`: open the database, start readiness checks, serve until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_core::Config;
use switchboard_models::required_models;
use switchboard_server::{
    AppState, EnginesCheck, Readiness, SipLink, advertised_address, app, metrics_app,
    run_ari_events, serve, serve_audiosocket, serve_sip, trust,
};
use switchboard_session::Engines;
use switchboard_store::{Database, LiveState, MigrationState};
use switchboard_telephony::sip::agent::{AgentSettings, UserAgent};
use switchboard_telephony::sip::ports::RtpPorts;
use tokio_util::sync::CancellationToken;

/// How often an unready node re-verifies its models.
const MODEL_RECHECK: Duration = Duration::from_secs(15);

pub(crate) fn run(config: Config) -> anyhow::Result<ExitCode> {
    let _telemetry = crate::logging::init(config.log, &config.observability)?;
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
    let database = crate::cmd_kb::connect(&config)
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

    // Whether the connection is encrypted is worth a line: TLS is used when the server offers it.
    if let Ok(Some(encrypted)) = database.connection_encrypted().await {
        if encrypted {
            tracing::info!("the PostgreSQL connection is encrypted (TLS)");
        } else {
            tracing::warn!(
                "the PostgreSQL connection is not encrypted (the server offers no TLS, or DATABASE_URL says sslmode=disable); use sslmode=verify-full with sslrootcert unless it runs on this machine"
            );
        }
    }
    match database.read_replica_in_recovery().await {
        Ok(None) => {}
        Ok(Some(true)) => tracing::info!("lists read from the replica at DATABASE_READ_URL"),
        Ok(Some(false)) => tracing::warn!(
            "DATABASE_READ_URL is not a replica (pg_is_in_recovery() is false); lists are read there all the same"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "the read replica (DATABASE_READ_URL) cannot be reached yet; lists read the primary until it can"
        ),
    }
    let address = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address} (SERVER_HOST / SERVER_PORT)"))?;
    let local = listener.local_addr().context("reading the bound address")?;

    let stop = CancellationToken::new();
    // A certificate that cannot be served stops start-up here, before anything else is opened.
    let tls = match &config.server.tls {
        Some(tls) => Some(switchboard_server::tls::acceptor(tls, stop.clone()).context(
            "setting up HTTPS (check TLS_CERT_FILE / TLS_KEY_FILE, or unset both for plain HTTP)",
        )?),
        None => None,
    };
    let readiness = Readiness::default();
    let checker = readiness.spawn_model_check(
        config.paths.models_dir.clone(),
        required_models(&config),
        MODEL_RECHECK,
        stop.clone(),
    );
    let grace = config.server.shutdown_grace;
    let config = Arc::new(config);
    let mut state = AppState::new(config.clone(), readiness, database.clone())
        .map_err(anyhow::Error::msg)
        .context("setting up authentication (JWT_SECRET / JWT_PUBLIC_KEY_FILE)")?;
    if let Some(redis) = &config.redis {
        let node = format!("{}:{}", hostname(), local.port());
        state.live = Some(
            LiveState::connect(redis, &node)
                .await
                .context("connecting to Redis (check REDIS_HOST / REDIS_PORT / REDIS_PASSWORD, or REDIS_SENTINELS / REDIS_SENTINEL_MASTER)")?,
        );
        tracing::info!(node, redis = %state.live.as_ref().map(LiveState::describe).unwrap_or_default(), "live call state shared through Redis");
    }
    if let Some(shared) = state.live.clone() {
        switchboard_server::nodes::listen_for_commands(
            shared.clone(),
            state.calls.clone(),
            stop.clone(),
        )
        .await
        .context("subscribing to this node's call commands in Redis")?;
        // Held until the calls are over; a node killed without giving it up has its calls settled by
        // the others once it lapses.
        switchboard_server::nodes::keep_lease(
            shared,
            database.clone(),
            state.calls.clone(),
            config.server.node_lease,
            stop.clone(),
        );
    }
    // Calls past RETENTION_DAYS and audit entries past AUDIT_RETENTION_DAYS go every hour.
    switchboard_server::retention::spawn(
        database.clone(),
        state.live.clone(),
        config.privacy,
        stop.clone(),
    );
    // What calls could not write before they ended (here or before a restart) is written when it can be.
    let spool = switchboard_server::spool::spawn(database.clone(), stop.clone());
    // Stops taking new phone calls when shutdown begins.
    let accepting = CancellationToken::new();
    if let Some(port) = config.telephony.audiosocket_port {
        let host = config
            .telephony
            .audiosocket_host
            .as_deref()
            .unwrap_or(&config.server.host);
        let address = format!("{host}:{port}");
        let audiosocket = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for AudioSocket on {address} (AUDIOSOCKET_HOST or SERVER_HOST / AUDIOSOCKET_PORT)"
                )
            })?;
        let trusted = trust::audiosocket_sources(&config.telephony).await;
        tracing::info!(address = %audiosocket.local_addr()?, %trusted, "AudioSocket listening");
        tokio::spawn(serve_audiosocket(
            audiosocket,
            trusted,
            state.clone(),
            accepting.clone(),
        ));
    }
    if config.telephony.ari.is_some() {
        tokio::spawn(run_ari_events(state.clone(), accepting.clone()));
    }
    if let Some(sip) = &config.telephony.sip {
        let bind = tokio::net::lookup_host((config.server.host.as_str(), sip.port))
            .await
            .ok()
            .and_then(|mut found| found.next())
            .with_context(|| format!("cannot resolve SERVER_HOST {}", config.server.host))?;
        let address = advertised_address(sip.address, &config.server.host);
        let policy = Arc::new(trust::sip_policy(sip).await);
        let settings = AgentSettings {
            bind,
            address,
            // SIP_TLS_PORT is refused at configuration without TLS_CERT_FILE.
            tls: sip
                .tls_port
                .zip(tls.as_ref())
                .map(|(port, node_tls)| (port, node_tls.sip.clone())),
            tls_client: Some(
                switchboard_server::tls::sip_connector(sip.tls_ca_file.as_deref())
                    .context("setting up SIP over TLS (SIP_TLS_CA_FILE)")?,
            ),
            srtp: sip.srtp,
        };
        let (agent, invites) = UserAgent::start(settings, policy)
            .await
            .context("starting the SIP user agent (SERVER_HOST / SIP_PORT / SIP_TLS_PORT)")?;
        tracing::info!(
            port = agent.port(),
            tls_port = agent.tls_port(),
            srtp = %agent.srtp(),
            %address,
            "SIP listening on UDP and TCP"
        );
        let ports = Arc::new(RtpPorts::new(bind.ip(), sip.rtp_ports.clone()));
        // The registration lasts until shutdown begins, when the binding is removed so that the PBX
        // stops sending calls here while the calls in progress finish.
        let link = Arc::new(
            SipLink::start(agent, ports, sip, accepting.clone())
                .map_err(anyhow::Error::msg)
                .context("setting up the SIP line (SIP_REGISTRAR / SIP_TRUNK)")?,
        );
        state.sip = Some(link.clone());
        tokio::spawn(serve_sip(link, invites, state.clone(), accepting.clone()));
    }
    if let (true, Some(address)) = (
        config.observability.enable_metrics,
        config.observability.metrics_address,
    ) {
        let metrics = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| {
                format!("cannot listen for /metrics on {address} (METRICS_ADDRESS)")
            })?;
        tracing::info!(address = %metrics.local_addr()?, "metrics listening");
        let stopped = stop.clone();
        tokio::spawn(async move {
            let until = async move { stopped.cancelled().await };
            if let Err(e) = serve(metrics, metrics_app(), until, Duration::from_secs(1)).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let loader = spawn_engine_loader(config, database.clone(), state.clone());
    // Signals are taken from before the node says it listens: one sent as soon as it does is not lost.
    let signal = shutdown_signal();
    tracing::info!(address = %local, tls = tls.is_some(), "listening");
    let calls = state.calls.clone();
    let (draining, drain) = (state.readiness.clone(), state.config.server.shutdown_drain);
    let shutdown = async move {
        signal.await;
        // Load balancers see /ready go 503 and stop sending anything new before the listener closes.
        draining.drain();
        if !drain.is_zero() {
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "shutting down: /ready says 503 while load balancers notice"
            );
            tokio::time::sleep(drain).await;
        }
        accepting.cancel();
        // Calls end politely and record their end; requests then drain.
        calls.hang_up_all();
    };
    let drained = match tls {
        Some(node_tls) => {
            let listener = switchboard_server::tls::TlsListener::new(listener, node_tls.https)
                .context("serving HTTPS")?;
            serve(listener, app(state.clone()), shutdown, grace).await
        }
        None => serve(listener, app(state.clone()), shutdown, grace).await,
    }
    .context("serving HTTP")?;
    if let Some(sip) = state.sip.clone() {
        sip.unregistered().await;
    }
    // Calls were told to hang up; each records its end and synthesis before its models may go away.
    let deadline = tokio::time::Instant::now() + grace;
    while state.calls.active() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if state.calls.active() > 0 {
        tracing::warn!(
            calls = state.calls.active(),
            "calls still running at the end of the grace period"
        );
    }
    loader.abort();
    let _ = loader.await;
    // The models are freed here, on this thread, while nothing uses them (their worker threads are joined).
    drop(state);
    stop.cancel();
    let _ = checker.await;
    let _ = spool.await;
    // The calls that just ended may have spooled what the database did not take.
    let left = switchboard_server::spool::drain(&database).await;
    if left.waiting > 0 {
        tracing::warn!(
            calls = left.waiting,
            "calls wait in the spool for the database; the next start writes them"
        );
    }
    database.close().await;
    tracing::info!(drained, "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Loads the speech and language models in the background so the node answers /health at once; calls
/// are refused with a clear error until the models are in.
fn spawn_engine_loader(
    config: Arc<Config>,
    database: Database,
    state: AppState,
) -> tokio::task::JoinHandle<()> {
    state.readiness.set_engines(EnginesCheck::Loading);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let knowledge = match crate::cmd_kb::knowledge_for_calls(&config, &database).await {
            Ok(knowledge) => knowledge,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the knowledge base is not available to calls");
                None
            }
        };
        let loaded = tokio::task::spawn_blocking(move || Engines::load(&config, knowledge)).await;
        match loaded {
            Ok(Ok(engines)) => {
                tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, engines = ?engines, "models loaded; taking calls");
                let _ = state.engines.set(Arc::new(engines));
                state.readiness.set_engines(EnginesCheck::Ok);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot load the models; calls are refused until this is fixed and the server restarted");
                state.readiness.set_engines(EnginesCheck::Failed {
                    problem: e.to_string(),
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "model loading failed");
                state.readiness.set_engines(EnginesCheck::Failed {
                    problem: e.to_string(),
                });
            }
        }
    })
}

/// This machine's name, to tell nodes apart in the shared state.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered now, not when first polled: a SIGTERM sent right after start-up is not lost.
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
                    _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
                    _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
                },
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM and SIGINT");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "SIGINT", "shutdown requested");
    }
}
