//! State several nodes must share, in Redis when REDIS_HOST (or REDIS_SENTINELS) is set: which node
//! carries each live call (a hash), every call's events on a Redis Stream (the seed's message queue),
//! so that any node, a dashboard or a downstream consumer can follow a call carried elsewhere, and
//! commands for a call (hang up) sent to the node carrying it over that node's Pub/Sub channel.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use switchboard_core::CallId;
use switchboard_core::config::RedisConfig;

use crate::StoreError;

mod follow;
mod lease;
mod master;
mod once;

use master::Master;

pub use follow::{CommandListener, EventFollower};

/// The hash of live calls: call id -> node id.
pub const LIVE_CALLS_KEY: &str = "switchboard:live-calls";
/// The stream of call events: fields `call_id` and `event` (JSON).
pub const EVENTS_STREAM: &str = "switchboard:call-events";
/// Events kept in the stream (approximately; older ones are trimmed).
const STREAM_MAX_LEN: usize = 100_000;
/// Longest wait for Redis on a call's path; a slow Redis must not stall a call.
const TIMEOUT: Duration = Duration::from_millis(500);

/// The Pub/Sub channel on which `node` receives commands for the calls it carries.
pub fn command_channel(node: &str) -> String {
    format!("switchboard:node:{node}:commands")
}

/// A command for a live call, sent to the node that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCommand {
    /// End the call politely (DELETE /api/v1/calls/{id} on another node).
    Hangup,
}

impl CallCommand {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hangup => "hangup",
        }
    }

    /// The wire form: `<command> <call id>`.
    fn encode(self, call: CallId) -> String {
        format!("{} {call}", self.as_str())
    }

    /// Reads the wire form; `None` for anything else (a newer node's command, garbage).
    fn decode(text: &str) -> Option<(Self, CallId)> {
        let (command, call) = text.split_once(' ')?;
        let command = match command {
            "hangup" => Self::Hangup,
            _ => return None,
        };
        Some((command, call.trim().parse().ok()?))
    }
}

/// What became of a command sent to another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The node carrying the call received it.
    Delivered {
        /// That node's id.
        node: String,
    },
    /// The call was registered to `node`, but no such node listens any more (it stopped or crashed):
    /// the registration was stale and has been removed.
    NodeGone {
        /// The node the call was registered to.
        node: String,
    },
    /// No node carries the call.
    NotLive,
}

/// A connection to the shared state, for one node.
#[derive(Clone)]
pub struct LiveState {
    master: Arc<Master>,
    node: String,
}

impl std::fmt::Debug for LiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveState")
            .field("redis", &self.master.describe())
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
    /// Connects to the configured Redis (or the master its Sentinels name) as node `node`. The
    /// connection reconnects by itself, and behind Sentinels follows the master through a failover.
    pub async fn connect(config: &RedisConfig, node: &str) -> Result<Self, StoreError> {
        Ok(Self {
            master: Arc::new(Master::connect(config).await?),
            node: node.to_owned(),
        })
    }

    /// The Redis server in use, for logs (`redis://host:port`, and the Sentinels that named it).
    pub fn describe(&self) -> String {
        self.master.describe()
    }

    /// Behind Sentinels: asks them for the master now and moves to it if it changed (true when it
    /// moved). Commands that fail start such a search by themselves; this is for tests and tools.
    pub async fn find_master(&self) -> Result<bool, StoreError> {
        self.master.search().await
    }

    /// The shared connection to the server in use now.
    fn connection(&self) -> ConnectionManager {
        self.master.link().connection.clone()
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
        let result = match tokio::time::timeout(TIMEOUT, work).await {
            Ok(result) => result.map_err(redis_error(operation)),
            Err(_) => Err(StoreError::Redis {
                operation,
                detail: format!("no answer within {} ms", TIMEOUT.as_millis()),
            }),
        };
        if result.is_err() {
            self.master.command_failed();
        }
        result
    }

    /// Records that this node carries `call`.
    pub async fn call_started(&self, call: CallId) -> Result<(), StoreError> {
        let mut c = self.connection();
        self.bounded(
            "registering a live call",
            c.hset::<_, _, _, ()>(LIVE_CALLS_KEY, call.to_string(), &self.node),
        )
        .await
    }

    /// Forgets `call` (it ended).
    pub async fn call_ended(&self, call: CallId) -> Result<(), StoreError> {
        let mut c = self.connection();
        self.bounded(
            "unregistering a live call",
            c.hdel::<_, _, ()>(LIVE_CALLS_KEY, call.to_string()),
        )
        .await
    }

    /// The node carrying `call`, if any node does.
    pub async fn owner(&self, call: CallId) -> Result<Option<String>, StoreError> {
        let mut c = self.connection();
        self.bounded(
            "reading a live call",
            c.hget(LIVE_CALLS_KEY, call.to_string()),
        )
        .await
    }

    /// Appends one event (JSON text) of `call` to the events stream; returns the entry id.
    pub async fn publish(&self, call: CallId, event: &str) -> Result<String, StoreError> {
        let mut c = self.connection();
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
        let mut c = self.connection();
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

    /// Sends `command` for `call` to the node carrying it. A registration whose node no longer listens is
    /// removed, so the caller can settle the call itself.
    pub async fn send_command(
        &self,
        call: CallId,
        command: CallCommand,
    ) -> Result<Delivery, StoreError> {
        let Some(node) = self.owner(call).await? else {
            return Ok(Delivery::NotLive);
        };
        let mut c = self.connection();
        let receivers: u64 = self
            .bounded(
                "sending a call command",
                c.publish(command_channel(&node), command.encode(call)),
            )
            .await?;
        if receivers > 0 {
            return Ok(Delivery::Delivered { node });
        }
        self.call_ended(call).await?;
        Ok(Delivery::NodeGone { node })
    }

    /// Removes every event of `call` from the events stream; returns how many.
    pub async fn erase_events(&self, call: CallId) -> Result<u64, StoreError> {
        let mut c = self.connection();
        let reply: redis::streams::StreamRangeReply = self
            .bounded("erasing call events", c.xrange_all(EVENTS_STREAM))
            .await?;
        let id = call.to_string();
        let ids: Vec<String> = reply
            .ids
            .into_iter()
            .filter(|entry| entry.get::<String>("call_id").as_deref() == Some(id.as_str()))
            .map(|entry| entry.id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        self.bounded("erasing call events", c.xdel(EVENTS_STREAM, &ids))
            .await
    }

    /// Removes the events published before `cutoff` from the events stream; returns how many.
    pub async fn trim_events_before(
        &self,
        cutoff: std::time::SystemTime,
    ) -> Result<u64, StoreError> {
        let ms = cutoff
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut c = self.connection();
        // Entry ids begin with the time they were added, in milliseconds.
        self.bounded(
            "trimming old call events",
            redis::cmd("XTRIM")
                .arg(EVENTS_STREAM)
                .arg("MINID")
                .arg(format!("{ms}-0"))
                .query_async(&mut c),
        )
        .await
    }

    /// Takes the cluster-wide lock `name` for `ttl` unless another node holds it; true when taken. The
    /// lock lapses by itself, so a node that dies holding it blocks nobody for long.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.connection();
        let taken: Option<String> = self
            .bounded(
                "taking a cluster lock",
                redis::cmd("SET")
                    .arg(format!("switchboard:lock:{name}"))
                    .arg(&self.node)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async(&mut c),
            )
            .await?;
        Ok(taken.is_some())
    }

    /// The events of `call` in the stream, oldest first (for tests and tools; consumers use XREAD).
    pub async fn events(&self, call: CallId) -> Result<Vec<String>, StoreError> {
        let mut c = self.connection();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        let call = CallId::new();
        let text = CallCommand::Hangup.encode(call);
        assert_eq!(
            CallCommand::decode(&text),
            Some((CallCommand::Hangup, call))
        );
        for garbage in ["", "hangup", "hangup not-a-uuid", "reboot 0190", "hangup  "] {
            assert_eq!(CallCommand::decode(garbage), None, "{garbage:?}");
        }
    }
}
