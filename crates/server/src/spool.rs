//! The node's spool drained: what calls could not write to the database before they ended waits in
//! `DATA_DIR/spool` (see `Database::spool_call`), and is written here when the database takes it again,
//! at start-up, every [`EVERY`] while anything waits, and once more at shutdown.

use std::time::Duration;

use switchboard_store::{Database, Drained};
use tokio_util::sync::CancellationToken;

/// How often a node looks for spooled calls to write.
const EVERY: Duration = Duration::from_secs(10);

/// One pass: writes what the database takes, logs what it wrote and what still waits.
pub async fn drain(database: &Database) -> Drained {
    if database.spooled_calls() == 0 {
        metrics::gauge!("switchboard_spooled_calls").set(0.0);
        return Drained::default();
    }
    let drained = match database.drain_spool().await {
        Ok(drained) => drained,
        Err(e) => {
            tracing::error!(error = %e, "the spool could not be read");
            Drained {
                waiting: database.spooled_calls(),
                ..Drained::default()
            }
        }
    };
    if drained.calls > 0 {
        tracing::info!(
            calls = drained.calls,
            lines = drained.lines,
            waiting = drained.waiting,
            "spooled calls written to the database"
        );
    }
    metrics::gauge!("switchboard_spooled_calls").set(drained.waiting as f64);
    drained
}

/// Drains the spool now and every [`EVERY`] until `stop`.
pub fn spawn(database: Database, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            drain(&database).await;
        }
    })
}
