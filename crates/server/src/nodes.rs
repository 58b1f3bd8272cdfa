//! Several nodes behind one load balancer: any node answers the API, but a call's audio stays on the node
//! that carries it. Commands for such a call travel through Redis to that node, and its live events are
//! read back from the shared events stream.

use std::time::Duration;

use switchboard_store::{CallCommand, LiveState, StoreError};
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
