//! Forgetting callers: erasing one call's data on request, and removing what is older than the retention
//! period. Each change runs in one transaction, so a call is never left half erased.

use std::time::SystemTime;

use sqlx::Row;
use switchboard_core::CallId;

use crate::calls::millis;
use crate::{Database, StoreError};

/// What an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Erased {
    /// Transcript lines.
    pub turns: u64,
    /// Whether a claim and synthesis were removed.
    pub summary: bool,
    /// Chunks of the call's recording.
    pub recording_chunks: u64,
}

impl Database {
    /// Erases what `id` kept of its callers: the transcript, the claim and synthesis, the recording, the
    /// numbers and the context. The call's row stays (id, direction, status, times, end reason), so counts and the
    /// audit trail still add up. `None` when there is no such call.
    pub async fn erase_call_data(&self, id: CallId) -> Result<Option<Erased>, StoreError> {
        const OP: &str = "erasing a call's data";
        let mut tx = self.pool().begin().await.map_err(StoreError::query(OP))?;
        let call = id.to_string();
        let updated = sqlx::query(
            "UPDATE calls SET from_number = NULL, to_number = NULL, context = NULL WHERE id = $1",
        )
        .bind(call.clone())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        let turns = sqlx::query("DELETE FROM turns WHERE call_id = $1")
            .bind(call.clone())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?
            .rows_affected();
        let summaries = sqlx::query("DELETE FROM call_summaries WHERE call_id = $1")
            .bind(call.clone())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?
            .rows_affected();
        let recording_chunks = sqlx::query("DELETE FROM recording_chunks WHERE call_id = $1")
            .bind(call)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?
            .rows_affected();
        tx.commit().await.map_err(StoreError::query(OP))?;
        Ok(Some(Erased {
            turns,
            summary: summaries > 0,
            recording_chunks,
        }))
    }

    /// Calls that ended before `cutoff`, oldest first, at most `limit`.
    pub async fn calls_ended_before(
        &self,
        cutoff: SystemTime,
        limit: u32,
    ) -> Result<Vec<CallId>, StoreError> {
        const OP: &str = "finding calls past retention";
        let rows = sqlx::query(
            "SELECT id FROM calls WHERE ended_at IS NOT NULL AND ended_at < $1 \
             ORDER BY ended_at LIMIT $2",
        )
        .bind(millis(cutoff))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(StoreError::query(OP))?;
                id.parse().map_err(|_| StoreError::Corrupt {
                    what: "call id",
                    detail: format!("{id:?} is not a UUID"),
                })
            })
            .collect()
    }

    /// How many calls ended before `cutoff`.
    pub async fn count_calls_ended_before(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        const OP: &str = "counting calls past retention";
        let row =
            sqlx::query("SELECT COUNT(*) FROM calls WHERE ended_at IS NOT NULL AND ended_at < $1")
                .bind(millis(cutoff))
                .fetch_one(self.pool())
                .await
                .map_err(StoreError::query(OP))?;
        let count: i64 = row.try_get(0).map_err(StoreError::query(OP))?;
        Ok(count.max(0) as u64)
    }

    /// Deletes call `id` with its transcript, claim, synthesis and recording.
    pub async fn delete_call(&self, id: CallId) -> Result<(), StoreError> {
        const OP: &str = "deleting a call";
        let mut tx = self.pool().begin().await.map_err(StoreError::query(OP))?;
        for sql in [
            "DELETE FROM turns WHERE call_id = $1",
            "DELETE FROM call_summaries WHERE call_id = $1",
            "DELETE FROM recording_chunks WHERE call_id = $1",
            "DELETE FROM calls WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(OP))?;
        }
        tx.commit().await.map_err(StoreError::query(OP))
    }

    /// Deletes audit entries written before `cutoff`; returns how many.
    pub async fn purge_audit(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(millis(cutoff))
            .execute(self.pool())
            .await
            .map(|done| done.rows_affected())
            .map_err(StoreError::query("purging the audit log"))
    }

    /// Audit entries written before `cutoff` (what [`Database::purge_audit`] would delete).
    pub async fn audit_before(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE at < $1")
            .bind(millis(cutoff))
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::query("counting old audit entries"))?;
        let count: i64 = row
            .try_get(0)
            .map_err(StoreError::query("counting old audit entries"))?;
        Ok(count.max(0) as u64)
    }
}
