//! A Switchboard server inside this process on a free loopback port, for `switchboard call` (and the
//! latency benchmark) without a separate server: the same state, routes and models as `serve`, with an
//! AudioSocket listener on another free port, a SIP user agent on a third, and Twilio's webhooks
//! enabled, so every transport can be driven against it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_core::Config;
use switchboard_core::Secret;
use switchboard_core::config::{SipConfig, Sources};
use switchboard_server::{
    AppState, Readiness, Role, SipLink, app, generate_api_key, serve, serve_audiosocket, serve_sip,
};
use switchboard_session::Engines;
use switchboard_store::LiveState;
use switchboard_telephony::sip::agent::{AgentSettings, UserAgent};
use switchboard_telephony::sip::inbound::InboundPolicy;
use switchboard_telephony::sip::ports::RtpPorts;
use tokio_util::sync::CancellationToken;

/// A running in-process server.
pub(crate) struct LocalServer {
    /// `https` when TLS_CERT_FILE is set.
    scheme: &'static str,
    address: SocketAddr,
    /// A supervisor key made for this run.
    pub(crate) token: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    state: AppState,
}

impl LocalServer {
    /// Opens the configured database, loads the models, and serves on 127.0.0.1 at a free port. Without
    /// PUBLIC_URL and TWILIO_AUTH_TOKEN, this server's address and a token made for the run stand in, so
    /// the Twilio transport can be driven against it.
    pub(crate) async fn start(mut config: Config) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let audiosocket_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let audiosocket = audiosocket_listener.local_addr()?;
        let scheme = if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        if config.server.public_url.is_none() {
            config.server.public_url = Some(url::Url::parse(&format!("{scheme}://{address}"))?);
        }
        if config.telephony.twilio.auth_token.is_none() {
            let mut token = [0u8; 16];
            getrandom::fill(&mut token).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            config.telephony.twilio.auth_token = Some(Secret::new(hex::encode(token)));
        }
        config.telephony.audiosocket_port = Some(audiosocket.port());
        let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
        // Its caller is this process: only this machine may call it.
        let policy = Arc::new(InboundPolicy::new(Sources::loopback(), None));
        let (sip_agent, invites) = UserAgent::start(
            AgentSettings::plain(SocketAddr::new(loopback, 0), loopback),
            policy,
        )
        .await
        .context("starting the in-process SIP user agent")?;
        let rtp_ports = config
            .telephony
            .sip
            .as_ref()
            .map_or(10_000..=20_000, |sip| sip.rtp_ports.clone());
        config.telephony.sip = Some(SipConfig::local(
            sip_agent.port(),
            Some(loopback),
            rtp_ports.clone(),
        ));
        let database = crate::cmd_kb::open_database(&config)
            .await
            .context("opening the database (check DATABASE_URL / POSTGRES_* settings)")?;
        let config = Arc::new(config);
        let knowledge = crate::cmd_kb::knowledge_for_calls(&config, &database).await?;
        let loading = config.clone();
        let engines = tokio::task::spawn_blocking(move || Engines::load(&loading, knowledge))
            .await
            .context("loading the models")??;
        let mut state = AppState::new(config.clone(), Readiness::default(), database.clone())
            .map_err(anyhow::Error::msg)?;
        if let Some(redis) = &config.redis {
            state.live = Some(
                LiveState::connect(redis, "switchboard-call")
                    .await
                    .context(
                        "connecting to Redis (check REDIS_HOST / REDIS_PORT / REDIS_PASSWORD, or REDIS_SENTINELS / REDIS_SENTINEL_MASTER)",
                    )?,
            );
        }
        let _ = state.engines.set(Arc::new(engines));
        let key =
            generate_api_key("switchboard call", Role::Supervisor).map_err(anyhow::Error::msg)?;
        database.insert_api_key(&key.record).await?;
        let stop = CancellationToken::new();
        let tls = match &config.server.tls {
            Some(tls) => Some(
                switchboard_server::tls::acceptor(tls, stop.clone())
                    .context("setting up HTTPS (TLS_CERT_FILE / TLS_KEY_FILE)")?,
            ),
            None => None,
        };
        tokio::spawn(serve_audiosocket(
            audiosocket_listener,
            Sources::loopback(),
            state.clone(),
            stop.clone(),
        ));
        let sip = config
            .telephony
            .sip
            .as_ref()
            .context("the in-process SIP line has no settings")?;
        let link = Arc::new(
            SipLink::start(
                sip_agent,
                Arc::new(RtpPorts::new(loopback, rtp_ports)),
                sip,
                stop.clone(),
            )
            .map_err(anyhow::Error::msg)?,
        );
        state.sip = Some(link.clone());
        tokio::spawn(serve_sip(link, invites, state.clone(), stop.clone()));
        let router = app(state.clone());
        let stopped = stop.clone();
        let until = async move { stopped.cancelled().await };
        let grace = Duration::from_secs(5);
        let task = match tls {
            Some(node_tls) => {
                let listener = switchboard_server::tls::TlsListener::new(listener, node_tls.https)?;
                tokio::spawn(async move {
                    let _ = serve(listener, router, until, grace).await;
                })
            }
            None => tokio::spawn(async move {
                let _ = serve(listener, router, until, grace).await;
            }),
        };
        Ok(Self {
            scheme,
            address,
            token: key.key,
            stop,
            task,
            state,
        })
    }

    /// The server a caller command talks to: `server` (with its `token`) when given, else one started in
    /// this process. Returns its base URL, a token for it, and the local server to stop afterwards.
    pub(crate) async fn given_or_started(
        server: Option<&str>,
        token: Option<&str>,
        config: &Config,
    ) -> anyhow::Result<(String, String, Option<Self>)> {
        match server {
            Some(url) => {
                let token = token.ok_or_else(|| {
                    anyhow::anyhow!("--server needs --token (or SWITCHBOARD_TOKEN): an API key with the supervisor role")
                })?;
                Ok((url.trim_end_matches('/').to_owned(), token.to_owned(), None))
            }
            None => {
                eprintln!("starting a server in this process (loading models)...");
                let local = Self::start(config.clone()).await?;
                Ok((local.base_url(), local.token.clone(), Some(local)))
            }
        }
    }

    /// The configuration this server runs with (its stand-in PUBLIC_URL, Twilio token, AudioSocket and
    /// SIP ports).
    pub(crate) fn config(&self) -> &Config {
        &self.state.config
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// Stops serving and waits for calls to finish their records.
    pub(crate) async fn stop(self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while self.state.calls.active() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop.cancel();
        let _ = self.task.await;
        // The call may have spooled what the database did not take: written now if it can be, else by
        // the next node that starts on this DATA_DIR.
        let left = switchboard_server::spool::drain(&self.state.database).await;
        if left.waiting > 0 {
            eprintln!(
                "{} call(s) wait in {} for the database; the next `switchboard serve` writes them",
                left.waiting,
                self.state.config.paths.data_dir.join("spool").display()
            );
        }
        self.state.database.close().await;
    }
}
