//! Which Redis a node talks to: the one REDIS_HOST names, or the master the Sentinels of
//! REDIS_SENTINELS name. Behind Sentinels, a failed or timed-out command makes the node ask them again
//! (at most every [`SEARCH_EVERY`]); when they name another master, the node's connection moves to it.
//! The command that failed is not retried here: its caller already treats Redis as fallible, so a
//! failover costs the commands sent while it runs and nothing after.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use switchboard_core::config::{RedisConfig, SentinelConfig};

use super::redis_error;
use crate::StoreError;

/// Longest wait for a first connection, or for the Sentinels' answer and the new master's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest time between two questions to the Sentinels (a failover takes seconds; every failing
/// command asking again would only load them).
const SEARCH_EVERY: Duration = Duration::from_millis(500);

/// How the connection comes back after Redis went away: a try every second (three, then again on the next
/// command), each given a second to connect. The crate's default backs off by a factor of 100 up to a
/// minute between tries, so a Redis back after a few seconds stayed unused for a minute and more.
fn reconnection() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_factor(2)
        .set_max_delay(1_000)
        .set_number_of_retries(3)
        .set_connection_timeout(Duration::from_secs(1))
}

/// One Redis server and the node's shared connection to it.
pub(super) struct Link {
    /// Opens further connections (Pub/Sub, blocking reads) to the same server.
    pub(super) client: redis::Client,
    /// The connection every short command uses (it reconnects by itself).
    pub(super) connection: ConnectionManager,
    /// `redis://host:port`, for logs and errors (no password).
    pub(super) display: String,
}

impl Link {
    async fn open(client: redis::Client) -> Result<Self, StoreError> {
        let display = display(&client);
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client.clone(), reconnection()),
        )
        .await
        .map_err(|_| StoreError::Redis {
            operation: "connecting to Redis",
            detail: format!("{display} did not answer within 5 s"),
        })?
        .map_err(redis_error("connecting to Redis"))?;
        Ok(Self {
            client,
            connection,
            display,
        })
    }
}

fn display(client: &redis::Client) -> String {
    match &client.get_connection_info().addr {
        redis::ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}"),
        other => other.to_string(),
    }
}

/// The Sentinels and when they were last asked.
struct Sentinels {
    client: tokio::sync::Mutex<SentinelClient>,
    master: String,
    list: String,
    last_search: Mutex<Option<Instant>>,
}

/// The server the node talks to now, and how to find the next one.
pub(super) struct Master {
    current: RwLock<Arc<Link>>,
    sentinels: Option<Sentinels>,
}

impl Master {
    /// Connects to the configured Redis, or to the master the Sentinels name.
    pub(super) async fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let certificates = certificates(config)?;
        let (client, sentinels) = match &config.sentinel {
            None => (direct(config, certificates)?, None),
            Some(sentinel) => {
                let mut client = sentinel_client(config, sentinel, certificates)?;
                let list = sentinel
                    .sentinels
                    .iter()
                    .map(|(host, port)| format!("{host}:{port}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let master = ask(&mut client, &sentinel.master, &list).await?;
                (
                    master,
                    Some(Sentinels {
                        client: tokio::sync::Mutex::new(client),
                        master: sentinel.master.clone(),
                        list,
                        last_search: Mutex::new(None),
                    }),
                )
            }
        };
        Ok(Self {
            current: RwLock::new(Arc::new(Link::open(client).await?)),
            sentinels,
        })
    }

    /// The server in use now.
    pub(super) fn link(&self) -> Arc<Link> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// What the node is connected to, for logs: the server, and the Sentinels that named it.
    pub(super) fn describe(&self) -> String {
        let link = self.link();
        match &self.sentinels {
            None => link.display.clone(),
            Some(s) => format!(
                "{} (master {:?} named by Sentinels {})",
                link.display, s.master, s.list
            ),
        }
    }

    /// A command on the current server failed or timed out: behind Sentinels, ask them which server is
    /// the master now and move there if it is another one. Returns at once; the search runs in the
    /// background, at most one at a time and not more often than every [`SEARCH_EVERY`].
    pub(super) fn command_failed(self: &Arc<Self>) {
        let Some(sentinels) = &self.sentinels else {
            return;
        };
        {
            let mut last = sentinels
                .last_search
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < SEARCH_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.search().await {
                tracing::debug!(error = %e, "the Redis Sentinels named no reachable master yet");
            }
        });
    }

    /// Asks the Sentinels for the master now; moves the node's connection when it changed. True when
    /// it moved.
    pub(super) async fn search(&self) -> Result<bool, StoreError> {
        let Some(sentinels) = &self.sentinels else {
            return Ok(false);
        };
        let Ok(mut client) = sentinels.client.try_lock() else {
            return Ok(false); // another search is under way
        };
        let found = ask(&mut client, &sentinels.master, &sentinels.list).await?;
        drop(client);
        let before = self.link();
        if found.get_connection_info().addr == before.client.get_connection_info().addr {
            return Ok(false);
        }
        let link = Link::open(found).await?;
        tracing::warn!(
            from = %before.display,
            to = %link.display,
            master = %sentinels.master,
            "the Redis master moved (Sentinel failover); using the new one"
        );
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(link);
        Ok(true)
    }
}

/// The master the Sentinels name now, checked to call itself master.
async fn ask(
    client: &mut SentinelClient,
    master: &str,
    list: &str,
) -> Result<redis::Client, StoreError> {
    tokio::time::timeout(CONNECT_TIMEOUT, client.async_get_client())
        .await
        .map_err(|_| StoreError::Redis {
            operation: "asking the Redis Sentinels for the master",
            detail: format!("Sentinels {list} named no master {master:?} within 5 s"),
        })?
        .map_err(|e| StoreError::Redis {
            operation: "asking the Redis Sentinels for the master",
            detail: format!("Sentinels {list}, master {master:?}: {e}"),
        })
}

fn certificates(config: &RedisConfig) -> Result<Option<redis::TlsCertificates>, StoreError> {
    match (&config.ca_file, config.tls) {
        (Some(path), true) => {
            let root = std::fs::read(path).map_err(|e| StoreError::Redis {
                operation: "reading REDIS_CA_FILE",
                detail: format!("{}: {e}", path.display()),
            })?;
            Ok(Some(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root),
            }))
        }
        _ => Ok(None),
    }
}

fn direct(
    config: &RedisConfig,
    certificates: Option<redis::TlsCertificates>,
) -> Result<redis::Client, StoreError> {
    let addr = if config.tls {
        redis::ConnectionAddr::TcpTls {
            host: config.host.clone(),
            port: config.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        redis::ConnectionAddr::Tcp(config.host.clone(), config.port)
    };
    let info = redis::ConnectionInfo {
        addr,
        redis: redis::RedisConnectionInfo {
            password: config.password.as_ref().map(|p| p.expose().to_owned()),
            ..Default::default()
        },
    };
    match certificates {
        Some(certificates) => redis::Client::build_with_tls(info, certificates),
        None => redis::Client::open(info),
    }
    .map_err(redis_error("connecting to Redis"))
}

fn sentinel_client(
    config: &RedisConfig,
    sentinel: &SentinelConfig,
    certificates: Option<redis::TlsCertificates>,
) -> Result<SentinelClient, StoreError> {
    let addrs = sentinel
        .sentinels
        .iter()
        .map(|(host, port)| redis::ConnectionAddr::Tcp(host.clone(), *port));
    let mut builder =
        SentinelClientBuilder::new(addrs, sentinel.master.clone(), SentinelServerType::Master)
            .map_err(redis_error("connecting to the Redis Sentinels"))?;
    if let Some(password) = &config.password {
        builder = builder.set_client_to_redis_password(password.expose().to_owned());
    }
    if let Some(password) = &sentinel.password {
        builder = builder.set_client_to_sentinel_password(password.expose().to_owned());
    }
    if config.tls {
        builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
    }
    if let Some(certificates) = certificates {
        builder = builder.set_client_to_redis_certificates(certificates);
    }
    builder
        .build()
        .map_err(redis_error("connecting to the Redis Sentinels"))
}
