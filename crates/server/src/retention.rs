//! Retention: calls that ended more than RETENTION_DAYS ago are deleted with their transcript, claim and
//! synthesis, their events leave the Redis stream, and audit entries older than AUDIT_RETENTION_DAYS go.
//! `switchboard retention run [--dry-run]` does it once; a serving node does it every hour, and with Redis
//! only one node of the fleet at a time (a lock that lapses by itself).

use std::time::{Duration, SystemTime};

use switchboard_core::config::PrivacyConfig;
use switchboard_store::{Database, LiveState, StoreError};
use tokio_util::sync::CancellationToken;

/// How often a serving node purges.
const EVERY: Duration = Duration::from_secs(3_600);
/// Calls deleted per batch (each in its own transaction).
const BATCH: u32 = 500;

/// What a purge removed, or with a dry run would remove.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    /// Calls deleted with their data.
    pub calls: u64,
    /// Events trimmed from the Redis stream.
    pub events: u64,
    /// Audit entries deleted.
    pub audit_entries: u64,
}

fn days_ago(days: u32, now: SystemTime) -> SystemTime {
    now.checked_sub(Duration::from_secs(u64::from(days) * 86_400))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Removes what is past retention as of `now`; with `dry_run`, only counts it (events are not counted:
/// the stream cannot say how many a trim would take without reading it all).
pub async fn purge(
    database: &Database,
    live: Option<&LiveState>,
    privacy: PrivacyConfig,
    now: SystemTime,
    dry_run: bool,
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    if let Some(days) = privacy.retention_days {
        let cutoff = days_ago(days, now);
        if dry_run {
            purged.calls = database.count_calls_ended_before(cutoff).await?;
        } else {
            loop {
                let expired = database.calls_ended_before(cutoff, BATCH).await?;
                if expired.is_empty() {
                    break;
                }
                for call in expired {
                    database.delete_call(call).await?;
                    purged.calls += 1;
                }
            }
            if let Some(live) = live {
                purged.events = live.trim_events_before(cutoff).await?;
            }
        }
    }
    if let Some(days) = privacy.audit_retention_days {
        let cutoff = days_ago(days, now);
        purged.audit_entries = if dry_run {
            database.audit_before(cutoff).await?
        } else {
            database.purge_audit(cutoff).await?
        };
    }
    Ok(purged)
}

/// Purges every hour until `stop`, when a retention period is set. With Redis, a node purges only while
/// it holds the fleet's retention lock.
pub fn spawn(
    database: Database,
    live: Option<LiveState>,
    privacy: PrivacyConfig,
    stop: CancellationToken,
) {
    if privacy.retention_days.is_none() && privacy.audit_retention_days.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Some(live) = &live {
                match live
                    .try_lock("retention", EVERY - Duration::from_secs(60))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "retention skipped: the fleet's lock is out of reach");
                        continue;
                    }
                }
            }
            match purge(&database, live.as_ref(), privacy, SystemTime::now(), false).await {
                Ok(purged) if purged == Purged::default() => {}
                Ok(purged) => tracing::info!(
                    calls = purged.calls,
                    events = purged.events,
                    audit_entries = purged.audit_entries,
                    "retention: removed what was past its period"
                ),
                Err(e) => {
                    metrics::counter!("switchboard_errors_total", "kind" => "retention")
                        .increment(1);
                    tracing::error!(error = %e, "retention purge failed; it is tried again in an hour");
                }
            }
        }
    });
}
