//! Node leases: each node renews a key that lapses unless renewed, so the others can tell a node that
//! died (SIGKILL, a lost host) from one that is busy, and settle the calls it was carrying.

use std::time::Duration;

use redis::AsyncCommands;
use switchboard_core::CallId;

use super::{LIVE_CALLS_KEY, LiveState};
use crate::StoreError;

/// Removes a call's registration only while it still names the node given: of two nodes settling the
/// same lost call, one removes it and the other finds it gone.
const FORGET_IF_OWNED: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0";

fn lease_key(node: &str) -> String {
    format!("switchboard:node:{node}:lease")
}

impl LiveState {
    /// Renews this node's lease for `lease`.
    pub async fn renew_lease(&self, lease: Duration) -> Result<(), StoreError> {
        let mut c = self.connection();
        self.bounded(
            "renewing the node's lease",
            redis::cmd("SET")
                .arg(lease_key(&self.node))
                .arg(1)
                .arg("PX")
                .arg(lease.as_millis().max(1) as u64)
                .query_async::<()>(&mut c),
        )
        .await
    }

    /// Gives this node's lease up (a clean shutdown, once its calls are over).
    pub async fn release_lease(&self) -> Result<(), StoreError> {
        let mut c = self.connection();
        self.bounded(
            "releasing the node's lease",
            c.del::<_, ()>(lease_key(&self.node)),
        )
        .await
    }

    /// Whether `node` holds a lease now.
    pub async fn holds_lease(&self, node: &str) -> Result<bool, StoreError> {
        let mut c = self.connection();
        self.bounded("reading a node's lease", c.exists(lease_key(node)))
            .await
    }

    /// Every live call registration: the call and the node carrying it. Entries that are not a call id
    /// are skipped.
    pub async fn live_calls(&self) -> Result<Vec<(CallId, String)>, StoreError> {
        let mut c = self.connection();
        let all: Vec<(String, String)> = self
            .bounded("listing live calls", c.hgetall(LIVE_CALLS_KEY))
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(call, node)| Some((call.parse().ok()?, node)))
            .collect())
    }

    /// Removes `call`'s registration if it still names `node`; true when this removed it.
    pub async fn forget_if_carried_by(&self, call: CallId, node: &str) -> Result<bool, StoreError> {
        let mut c = self.connection();
        let removed: i64 = self
            .bounded(
                "settling a lost call",
                redis::cmd("EVAL")
                    .arg(FORGET_IF_OWNED)
                    .arg(1)
                    .arg(LIVE_CALLS_KEY)
                    .arg(call.to_string())
                    .arg(node)
                    .query_async(&mut c),
            )
            .await?;
        Ok(removed == 1)
    }
}
