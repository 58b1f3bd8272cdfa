//! Listening: this node's call commands on its Pub/Sub channel, and one call's events on the shared
//! stream, whichever node publishes them.

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use switchboard_core::CallId;

use super::{CallCommand, EVENTS_STREAM, LiveState, TIMEOUT, command_channel, redis_error};
use crate::StoreError;

/// How long one blocking read of the events stream waits before the follower checks the call is live.
const FOLLOW_BLOCK: Duration = Duration::from_secs(2);

impl LiveState {
    /// Subscribes to this node's command channel. Returns once the subscription is in place, so commands
    /// sent after this returns reach the listener.
    pub async fn listen(&self) -> Result<CommandListener, StoreError> {
        let link = self.master.link();
        let subscribed: Result<_, StoreError> = async {
            let mut pubsub =
                tokio::time::timeout(Duration::from_secs(5), link.client.get_async_pubsub())
                    .await
                    .map_err(|_| StoreError::Redis {
                        operation: "subscribing to call commands",
                        detail: format!("{} did not answer within 5 s", link.display),
                    })?
                    .map_err(redis_error("subscribing to call commands"))?;
            pubsub
                .subscribe(command_channel(&self.node))
                .await
                .map_err(redis_error("subscribing to call commands"))?;
            Ok(pubsub)
        }
        .await;
        let pubsub = subscribed.inspect_err(|_| self.master.command_failed())?;
        Ok(CommandListener {
            messages: Box::pin(pubsub.into_on_message()),
        })
    }

    /// Follows the events of `call` published from now on, by whichever node carries it: each call of
    /// [`EventFollower::next`] waits for the next one. Uses its own connection, since a blocking read
    /// would hold up every other command on the shared one.
    pub async fn follow(&self, call: CallId) -> Result<EventFollower, StoreError> {
        let link = self.master.link();
        let connection =
            tokio::time::timeout(TIMEOUT * 4, link.client.get_multiplexed_async_connection())
                .await
                .map_err(|_| StoreError::Redis {
                    operation: "following call events",
                    detail: format!("{} did not answer within 2 s", link.display),
                })?
                .map_err(redis_error("following call events"))
                .inspect_err(|_| self.master.command_failed())?;
        // "From now on" is the stream's newest entry at this moment, not `$` at the first read (which
        // would miss what is published before the follower is first polled).
        let mut c = self.connection();
        let newest: redis::streams::StreamRangeReply = self
            .bounded(
                "following call events",
                c.xrevrange_count(EVENTS_STREAM, "+", "-", 1),
            )
            .await?;
        let last_id = newest
            .ids
            .first()
            .map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone());
        Ok(EventFollower {
            shared: self.clone(),
            connection,
            call,
            last_id,
            pending: std::collections::VecDeque::new(),
        })
    }
}

/// This node's incoming call commands (see [`LiveState::listen`]).
pub struct CommandListener {
    messages: std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>,
}

impl std::fmt::Debug for CommandListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandListener").finish_non_exhaustive()
    }
}

impl CommandListener {
    /// The next command; `None` when the subscription is lost (Redis went away), so the owner can
    /// subscribe again. Messages that are not commands are skipped with a warning.
    pub async fn next(&mut self) -> Option<(CallCommand, CallId)> {
        loop {
            let message = self.messages.next().await?;
            match message.get_payload::<String>() {
                Ok(text) => match CallCommand::decode(&text) {
                    Some(command) => return Some(command),
                    None => tracing::warn!(
                        message = %text.chars().take(80).collect::<String>(),
                        "ignoring an unknown call command"
                    ),
                },
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable call command"),
            }
        }
    }
}

/// Events of one call read from the shared stream (see [`LiveState::follow`]).
pub struct EventFollower {
    shared: LiveState,
    connection: redis::aio::MultiplexedConnection,
    call: CallId,
    last_id: String,
    pending: std::collections::VecDeque<String>,
}

impl std::fmt::Debug for EventFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFollower")
            .field("call", &self.call)
            .field("last_id", &self.last_id)
            .finish_non_exhaustive()
    }
}

impl EventFollower {
    /// The call's next event (JSON text); `Ok(None)` once the call is no longer live on any node and
    /// every event it published has been read.
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let options = redis::streams::StreamReadOptions::default()
                .block(FOLLOW_BLOCK.as_millis() as usize)
                .count(100);
            let reply: Option<redis::streams::StreamReadReply> = self
                .connection
                .xread_options(&[EVENTS_STREAM], &[self.last_id.as_str()], &options)
                .await
                .map_err(redis_error("following call events"))?;
            let entries = reply
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .collect::<Vec<_>>();
            if entries.is_empty() {
                // Nothing for a while: stop once the call has ended everywhere.
                if self.shared.owner(self.call).await?.is_none() {
                    return Ok(None);
                }
                continue;
            }
            let id = self.call.to_string();
            for entry in entries {
                if entry.get::<String>("call_id").as_deref() == Some(id.as_str())
                    && let Some(event) = entry.get::<String>("event")
                {
                    self.pending.push_back(event);
                }
                self.last_id = entry.id;
            }
        }
    }
}
