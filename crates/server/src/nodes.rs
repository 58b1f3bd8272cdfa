//! Several nodes behind one load balancer: any node answers the API, but a call's audio stays on the node
//! that carries it. Commands for such a call travel through Redis to that node, and its live events are
//! read back from the shared events stream. Each node holds a lease in Redis; when a node's lease lapses
//! (it was killed, or lost its host), the others end the calls it was carrying with reason `node_lost`.

use std::time::{Duration, SystemTime};

use switchboard_core::CallId;
use switchboard_store::{CallCommand, Database, LiveState, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::CallRegistry;

/// Pause before subscribing again after Redis dropped the subscription.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// Subscribes this node to its command channel and carries out the commands for its calls until `stop`.
///
/// Returns once the first subscription is in place, so a node never announces calls it cannot be
/// reached for; a subscription lost later is renewed in the background.
pub async fn listen_for_commands(
    shared: LiveState,
    calls: CallRegistry,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, StoreError> {
    let mut listener = shared.listen().await?;
    Ok(tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => return,
                received = listener.next() => received,
            };
            match received {
                Some((CallCommand::Hangup, call_id)) => match calls.get(call_id) {
                    Some(live) => {
                        tracing::info!(%call_id, "hanging up at another node's request");
                        live.hangup.cancel();
                    }
                    None => {
                        tracing::warn!(%call_id, "hang-up request for a call this node does not carry")
                    }
                },
                None => {
                    tracing::warn!("call command subscription lost; subscribing again");
                    metrics::counter!("switchboard_errors_total", "kind" => "redis").increment(1);
                    listener = loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
                        }
                        match shared.listen().await {
                            Ok(listener) => break listener,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot subscribe to call commands yet")
                            }
                        }
                    };
                }
            }
        }
    }))
}

/// The end reason of a call whose node died while carrying it.
pub const NODE_LOST: &str = "node_lost";

/// Keeps this node's lease in Redis (renewed every third of `lease`) and settles the calls of nodes whose
/// lease lapsed, until `stop`; then gives the lease up. Registrations this node left from an earlier run
/// (it was killed and restarted under the same name) are settled at once.
pub fn keep_lease(
    shared: LiveState,
    database: Database,
    calls: CallRegistry,
    lease: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut first = true;
        let mut every = tokio::time::interval(lease / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = every.tick() => {}
            }
            if let Err(e) = shared.renew_lease(lease).await {
                metrics::counter!("switchboard_errors_total", "kind" => "redis").increment(1);
                tracing::warn!(error = %e, "cannot renew this node's lease; other nodes may take it for dead");
                continue;
            }
            if let Err(e) = settle_lost_calls(&shared, &database, &calls, first).await {
                tracing::warn!(error = %e, "cannot look for the calls of lost nodes");
            }
            first = false;
        }
        if let Err(e) = shared.release_lease().await {
            tracing::warn!(error = %e, "cannot release this node's lease; it lapses by itself");
        }
    })
}

/// Ends the calls registered to nodes without a lease (and, with `own`, this node's registrations of
/// calls it does not carry: left from before a restart). Each call is settled by one node only.
async fn settle_lost_calls(
    shared: &LiveState,
    database: &Database,
    calls: &CallRegistry,
    own: bool,
) -> Result<(), StoreError> {
    let registered = shared.live_calls().await?;
    let mut alive: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    for (call, node) in registered {
        let lost = if node == shared.node() {
            own && calls.get(call).is_none()
        } else {
            match alive.get(&node) {
                Some(held) => !held,
                None => {
                    let held = shared.holds_lease(&node).await?;
                    alive.insert(node.clone(), held);
                    !held
                }
            }
        };
        if lost && shared.forget_if_carried_by(call, &node).await? {
            settle(shared, database, call, &node).await;
        }
    }
    Ok(())
}

/// Records the end of a call whose node is gone and tells its live viewers.
async fn settle(shared: &LiveState, database: &Database, call: CallId, node: &str) {
    metrics::counter!("switchboard_calls_lost_total").increment(1);
    match database.end_call(call, SystemTime::now(), NODE_LOST).await {
        Ok(_) => {
            tracing::warn!(%call, node, "the node carrying this call is gone; the call is ended as node_lost")
        }
        Err(e) => {
            tracing::error!(%call, node, error = %e, "cannot record the end of a lost node's call")
        }
    }
    let event = serde_json::json!({"event": "hangup", "reason": NODE_LOST}).to_string();
    if let Err(e) = shared.publish(call, &event).await {
        tracing::warn!(%call, error = %e, "cannot tell live viewers that the call was lost");
    }
}
