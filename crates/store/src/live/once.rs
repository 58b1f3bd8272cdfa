//! Values that may be taken once, cluster-wide: a WebSocket ticket issued on one node is redeemed on
//! whichever node the client's connection reaches, and only there.

use std::time::Duration;

use super::LiveState;
use crate::StoreError;

fn key(name: &str) -> String {
    format!("switchboard:once:{name}")
}

impl LiveState {
    /// Keeps `value` under `name` for `ttl`, to be taken once with [`LiveState::take_once`].
    pub async fn put_once(&self, name: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.connection();
        self.bounded(
            "storing a single-use value",
            redis::cmd("SET")
                .arg(key(name))
                .arg(value)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<()>(&mut c),
        )
        .await
    }

    /// The value under `name`, removed in the same step (GETDEL), so that of two nodes asking at once
    /// only one gets it; `None` when it was never there, was taken or lapsed.
    pub async fn take_once(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.connection();
        self.bounded(
            "taking a single-use value",
            redis::cmd("GETDEL").arg(key(name)).query_async(&mut c),
        )
        .await
    }
}
