//! State several nodes must share, in Redis when REDIS_HOST is set: which node carries each live call
//! (a hash), and every call's events on a Redis Stream (the seed's message queue), so that any node, a
//! dashboard or a downstream consumer can follow a call carried elsewhere.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use switchboard_core::CallId;
use switchboard_core::config::RedisConfig;

use crate::StoreError;

/// The hash of live calls: call id -> node id.
pub const LIVE_CALLS_KEY: &str = "switchboard:live-calls";
/// The stream of call events: fields `call_id` and `event` (JSON).
pub const EVENTS_STREAM: &str = "switchboard:call-events";
/// Events kept in the stream (approximately; older ones are trimmed).
const STREAM_MAX_LEN: usize = 100_000;
/// Longest wait for Redis on a call's path; a slow Redis must not stall a call.
const TIMEOUT: Duration = Duration::from_millis(500);

/// A connection to the shared state, for one node.
#[derive(Clone)]
pub struct LiveState {
    connection: ConnectionManager,
    node: String,
    display: String,
}

impl std::fmt::Debug for LiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveState")
            .field("redis", &self.display)
            .field("node", &self.node)
            .finish()
    }
}

fn redis_error(operation: &'static str) -> impl Fn(redis::RedisError) -> StoreError {
    move |e| StoreError::Redis {
        operation,
        detail: e.to_string(),
    }
}

impl LiveState {
    /// Connects to the configured Redis as node `node` (the connection reconnects by itself).
    pub async fn connect(config: &RedisConfig, node: &str) -> Result<Self, StoreError> {
        let display = format!("redis://{}:{}", config.host, config.port);
        let info = redis::ConnectionInfo {
            addr: redis::ConnectionAddr::Tcp(config.host.clone(), config.port),
            redis: redis::RedisConnectionInfo {
                password: config.password.as_ref().map(|p| p.expose().to_owned()),
                ..Default::default()
            },
        };
        let client = redis::Client::open(info).map_err(redis_error("connecting to Redis"))?;
        let connection =
            tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
                .await
                .map_err(|_| StoreError::Redis {
                    operation: "connecting to Redis",
                    detail: format!("{display} did not answer within 5 s"),
                })?
                .map_err(redis_error("connecting to Redis"))?;
        Ok(Self {
            connection,
            node: node.to_owned(),
            display,
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        work: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| StoreError::Redis {
                operation,
                detail: format!("no answer within {} ms", TIMEOUT.as_millis()),
            })?
            .map_err(redis_error(operation))
    }

    /// Records that this node carries `call`.
    pub async fn call_started(&self, call: CallId) -> Result<(), StoreError> {
        let mut c = self.connection.clone();
        self.bounded(
            "registering a live call",
            c.hset::<_, _, _, ()>(LIVE_CALLS_KEY, call.to_string(), &self.node),
        )
        .await
    }

    /// Forgets `call` (it ended).
    pub async fn call_ended(&self, call: CallId) -> Result<(), StoreError> {
        let mut c = self.connection.clone();
        self.bounded(
            "unregistering a live call",
            c.hdel::<_, _, ()>(LIVE_CALLS_KEY, call.to_string()),
        )
        .await
    }

    /// The node carrying `call`, if any node does.
    pub async fn owner(&self, call: CallId) -> Result<Option<String>, StoreError> {
        let mut c = self.connection.clone();
        self.bounded(
            "reading a live call",
            c.hget(LIVE_CALLS_KEY, call.to_string()),
        )
        .await
    }

    /// Appends one event (JSON text) of `call` to the events stream; returns the entry id.
    pub async fn publish(&self, call: CallId, event: &str) -> Result<String, StoreError> {
        let mut c = self.connection.clone();
        let fields = [("call_id", call.to_string()), ("event", event.to_owned())];
        self.bounded(
            "publishing a call event",
            c.xadd_maxlen(
                EVENTS_STREAM,
                redis::streams::StreamMaxlen::Approx(STREAM_MAX_LEN),
                "*",
                &fields,
            ),
        )
        .await
    }

    /// Counts one more use of `key` in the current window and returns the count so far (a fixed-window
    /// counter shared by every node; the key expires two windows later).
    pub async fn count(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let mut c = self.connection.clone();
        let slot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() / window.as_secs().max(1))
            .unwrap_or(0);
        let key = format!("switchboard:ratelimit:{key}:{slot}");
        let (count, _): (u64, bool) = self
            .bounded(
                "counting a rate limit",
                redis::pipe()
                    .atomic()
                    .incr(&key, 1u64)
                    .expire(&key, (window.as_secs() * 2) as i64)
                    .query_async(&mut c),
            )
            .await?;
        Ok(count)
    }

    /// The events of `call` in the stream, oldest first (for tests and tools; consumers use XREAD).
    pub async fn events(&self, call: CallId) -> Result<Vec<String>, StoreError> {
        let mut c = self.connection.clone();
        let reply: redis::streams::StreamRangeReply = self
            .bounded("reading call events", c.xrange_all(EVENTS_STREAM))
            .await?;
        let id = call.to_string();
        Ok(reply
            .ids
            .into_iter()
            .filter(|entry| entry.get::<String>("call_id").as_deref() == Some(id.as_str()))
            .filter_map(|entry| entry.get::<String>("event"))
            .collect())
    }
}
