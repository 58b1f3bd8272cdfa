//! Call recordings: both sides of a call, stored as sealed chunks (`recording_chunks`) so that a
//! recording is never on disk in the clear; read back whole, as PCM, only through [`Database::recording`].

use sqlx::Row;
use switchboard_core::CallId;

use crate::{Database, StoreError};

/// A recording read back: interleaved 16-bit PCM, the caller on the left, the agent on the right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// Samples per second per side.
    pub sample_rate: u32,
    /// Left, right, left, right …
    pub samples: Vec<i16>,
}

fn bound(call: CallId, seq: i64) -> String {
    format!("recording:{call}:{seq}")
}

impl Database {
    /// Stores chunk `seq` of `call`'s recording (interleaved stereo PCM at `sample_rate`), sealed. Without
    /// data keys nothing is stored: a recording is never kept in the clear.
    pub async fn store_recording_chunk(
        &self,
        call: CallId,
        seq: i64,
        sample_rate: u32,
        samples: &[i16],
    ) -> Result<(), StoreError> {
        let keys = self.keys.as_ref().ok_or_else(|| StoreError::Corrupt {
            what: "recording",
            detail: "recordings are stored sealed only: set DATA_KEY_FILE".into(),
        })?;
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let sealed = keys
            .seal_bytes(&bytes, &bound(call, seq))
            .map_err(|e| crate::calls::corrupt("recording", e))?;
        sqlx::query(
            "INSERT INTO recording_chunks (call_id, seq, sample_rate, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (call_id, seq) DO NOTHING",
        )
        .bind(call.to_string())
        .bind(seq)
        .bind(i64::from(sample_rate))
        .bind(sealed)
        .execute(self.pool())
        .await
        .map_err(StoreError::query("storing a recording chunk"))?;
        Ok(())
    }

    /// `call`'s recording, whole; `None` when nothing was recorded (or it was deleted).
    pub async fn recording(&self, call: CallId) -> Result<Option<Recording>, StoreError> {
        const OP: &str = "reading a recording";
        let rows = sqlx::query(
            "SELECT seq, sample_rate, data FROM recording_chunks WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query(OP))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let keys = self.keys.as_ref().ok_or_else(|| StoreError::Corrupt {
            what: "recording",
            detail: "it is sealed and DATA_KEY_FILE is not set".into(),
        })?;
        let sample_rate: i64 = first.try_get(1).map_err(StoreError::query(OP))?;
        let mut samples = Vec::new();
        for row in &rows {
            let seq: i64 = row.try_get(0).map_err(StoreError::query(OP))?;
            let data: Vec<u8> = row.try_get(2).map_err(StoreError::query(OP))?;
            let plain = keys
                .open_bytes(&data, &bound(call, seq))
                .map_err(|e| crate::calls::corrupt("recording", e))?;
            samples.extend(
                plain
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            );
        }
        Ok(Some(Recording {
            sample_rate: u32::try_from(sample_rate).unwrap_or(16_000),
            samples,
        }))
    }

    /// Deletes `call`'s recording; returns how many chunks it had.
    pub async fn delete_recording(&self, call: CallId) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM recording_chunks WHERE call_id = $1")
            .bind(call.to_string())
            .execute(self.pool())
            .await
            .map(|done| done.rows_affected())
            .map_err(StoreError::query("deleting a recording"))
    }
}
