//! Calls and their turns. A turn is committed before anyone is told about it, so an acknowledged
//! transcript line survives a crash.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_core::{CallDirection, CallId, Speaker};

use crate::{Database, StoreError};

/// A call about to be recorded.
#[derive(Debug, Clone)]
pub struct NewCall {
    /// Its id.
    pub id: CallId,
    /// Inbound or outbound.
    pub direction: CallDirection,
    /// Caller's number, E.164 when known.
    pub from_number: Option<String>,
    /// Called number.
    pub to_number: Option<String>,
    /// When the call began.
    pub started_at: SystemTime,
    /// `pending` (placed, not yet connected) or `active`.
    pub status: &'static str,
    /// What the call is about, as given to the API (JSON text).
    pub context: Option<String>,
}

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Its id.
    pub id: CallId,
    /// Inbound or outbound.
    pub direction: CallDirection,
    /// Lifecycle word (`active`, `ended`).
    pub status: String,
    /// Caller's number.
    pub from_number: Option<String>,
    /// Called number.
    pub to_number: Option<String>,
    /// Start, to the millisecond.
    pub started_at: SystemTime,
    /// End, once ended.
    pub ended_at: Option<SystemTime>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// What the call is about (JSON text).
    pub context: Option<String>,
    /// Who answered a call the agent placed (`human`, `machine`, `unknown`), when AMD screened it.
    pub answered_by: Option<String>,
}

/// Which calls a listing wants; every criterion is optional.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this direction.
    pub direction: Option<CallDirection>,
    /// Only calls from or to this number.
    pub number: Option<String>,
    /// Only calls started at or after.
    pub since: Option<SystemTime>,
    /// At most this many (newest first).
    pub limit: u32,
}

/// One stored turn of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnRecord {
    /// 1-based position in the call.
    pub seq: i64,
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said (for the agent: what the caller actually heard).
    pub text: String,
    /// Start of speech.
    pub started_at: SystemTime,
    /// End of speech.
    pub ended_at: SystemTime,
    /// For an agent's answer from the company's documents: the passages it was made from.
    pub sources: Vec<TurnSource>,
}

/// A passage of a document an answer was made from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TurnSource {
    /// The document (its file name or title, as `kb add` indexed it).
    pub document: String,
    /// The passage's position in it, from 0.
    pub passage: usize,
}

impl Database {
    /// Records a new, active call.
    pub async fn insert_call(&self, call: &NewCall) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO calls (id, direction, status, from_number, to_number, started_at, context) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(call.id.to_string())
        .bind(call.direction.as_str())
        .bind(call.status)
        .bind(self.seal_number(call.from_number.as_deref()))
        .bind(self.seal_number(call.to_number.as_deref()))
        .bind(millis(call.started_at))
        .bind(
            call.context
                .as_deref()
                .map(|c| self.seal_value(c, &crate::sealed::context_of(&call.id.to_string())))
                .transpose()?,
        )
        .execute(self.pool())
        .await
        .map_err(StoreError::query("inserting a call"))?;
        Ok(())
    }

    /// Moves a call that has not ended to `status` (`pending` -> `active` when its audio connects).
    pub async fn set_call_status(&self, id: CallId, status: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE calls SET status = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(status.to_owned())
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(StoreError::query("updating a call's status"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records who answered a call the agent placed (answering-machine detection's verdict).
    pub async fn set_answered_by(&self, id: CallId, by: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE calls SET answered_by = $1 WHERE id = $2")
            .bind(by.to_owned())
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(StoreError::query("recording who answered a call"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Calls matching `filter`, newest first.
    pub async fn list_calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        // Placeholders are numbered in the order the criteria are present; values are always bound.
        let mut sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(status) = &filter.status {
            binds.push(status.clone());
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        if let Some(direction) = filter.direction {
            binds.push(direction.as_str().to_owned());
            sql.push_str(&format!(" AND direction = ${}", binds.len()));
        }
        if let Some(number) = &filter.number {
            // Stored plain, or sealed under any of the keys: each form is a value to match.
            let first = binds.len() + 1;
            binds.extend(self.number_forms(number));
            let list = (first..=binds.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            sql.push_str(&format!(
                " AND (from_number IN ({list}) OR to_number IN ({list}))"
            ));
        }
        let since_index = binds.len() + 1;
        if filter.since.is_some() {
            sql.push_str(&format!(" AND started_at >= ${since_index}"));
        }
        let limit_index = since_index + usize::from(filter.since.is_some());
        sql.push_str(&format!(
            " ORDER BY started_at DESC, id DESC LIMIT ${limit_index}"
        ));
        let rows = self
            .on_replica(|pool| {
                let mut query = sqlx::query(&sql);
                for value in &binds {
                    query = query.bind(value.clone());
                }
                if let Some(since) = filter.since {
                    query = query.bind(millis(since));
                }
                let query = query.bind(i64::from(filter.limit.clamp(1, 1_000)));
                async move { query.fetch_all(&pool).await }
            })
            .await
            .map_err(StoreError::query("listing calls"))?;
        rows.iter().map(|r| self.call_from_row(r)).collect()
    }

    /// Marks a call ended; ending an ended call keeps the first end.
    pub async fn end_call(
        &self,
        id: CallId,
        at: SystemTime,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET status = 'ended', ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(millis(at))
        .bind(reason.to_owned())
        .bind(id.to_string())
        .execute(self.pool())
        .await
        .map_err(StoreError::query("ending a call"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The call with this id, if recorded.
    pub async fn call(&self, id: CallId) -> Result<Option<CallRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::query("reading a call"))?;
        row.map(|r| self.call_from_row(&r)).transpose()
    }

    /// Writes turn `seq` of a call; returns once the row is committed. Idempotent: writing a turn that is
    /// already stored (a retry after a write whose answer was lost) changes nothing and returns false.
    /// The call's session numbers its turns, so a retried write can never become a second turn.
    pub async fn store_turn(
        &self,
        call_id: CallId,
        seq: i64,
        speaker: Speaker,
        text: &str,
        started_at: SystemTime,
        ended_at: SystemTime,
    ) -> Result<bool, StoreError> {
        self.store_turn_from(call_id, seq, speaker, text, (started_at, ended_at), &[])
            .await
    }

    /// [`Database::store_turn`] for an answer made from documents: `sources` are its passages.
    pub async fn store_turn_from(
        &self,
        call_id: CallId,
        seq: i64,
        speaker: Speaker,
        text: &str,
        (started_at, ended_at): (SystemTime, SystemTime),
        sources: &[TurnSource],
    ) -> Result<bool, StoreError> {
        let sources = (!sources.is_empty())
            .then(|| serde_json::to_string(sources))
            .transpose()
            .map_err(|e| corrupt("turn sources", e))?;
        let done = sqlx::query(
            "INSERT INTO turns (call_id, seq, speaker, text, started_at, ended_at, sources) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (call_id, seq) DO NOTHING",
        )
        .bind(call_id.to_string())
        .bind(seq)
        .bind(speaker.as_str())
        .bind(text.to_owned())
        .bind(millis(started_at))
        .bind(millis(ended_at))
        .bind(sources)
        .execute(self.pool())
        .await
        .map_err(StoreError::query("storing a turn"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Every turn of a call, in order.
    pub async fn turns(&self, call_id: CallId) -> Result<Vec<TurnRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, speaker, text, started_at, ended_at, sources FROM turns WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("reading turns"))?;
        const READING: &str = "reading turns";
        rows.iter()
            .map(|r| {
                Ok(TurnRecord {
                    seq: column(r, 0, READING)?,
                    speaker: column::<String>(r, 1, READING)?
                        .parse()
                        .map_err(|e: switchboard_core::call::UnknownWord| corrupt("speaker", e))?,
                    text: column(r, 2, READING)?,
                    started_at: time(column(r, 3, READING)?),
                    ended_at: time(column(r, 4, READING)?),
                    sources: column::<Option<String>>(r, 5, READING)?
                        .map(|json| serde_json::from_str(&json))
                        .transpose()
                        .map_err(|e| corrupt("turn sources", e))?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}

const CALL_COLUMNS: &str = "id, direction, status, from_number, to_number, started_at, ended_at, end_reason, context, answered_by";

impl Database {
    fn call_from_row(&self, r: &AnyRow) -> Result<CallRecord, StoreError> {
        const READING: &str = "reading a call";
        let id: String = column(r, 0, READING)?;
        let number = |index| -> Result<Option<String>, StoreError> {
            column::<Option<String>>(r, index, READING)?
                .map(|n| self.open_value("call number", &n, crate::sealed::NUMBER))
                .transpose()
        };
        let context = column::<Option<String>>(r, 8, READING)?
            .map(|c| self.open_value("call context", &c, &crate::sealed::context_of(&id)))
            .transpose()?;
        let mut record = call_record(r, &id)?;
        record.from_number = number(3)?;
        record.to_number = number(4)?;
        record.context = context;
        Ok(record)
    }
}

fn call_record(r: &AnyRow, id: &str) -> Result<CallRecord, StoreError> {
    const READING: &str = "reading a call";
    let direction: String = column(r, 1, READING)?;
    Ok(CallRecord {
        id: id
            .parse()
            .map_err(|e: switchboard_core::ids::InvalidCallId| corrupt("call id", e))?,
        direction: direction
            .parse()
            .map_err(|e: switchboard_core::call::UnknownWord| corrupt("call direction", e))?,
        status: column(r, 2, READING)?,
        from_number: None,
        to_number: None,
        started_at: time(column(r, 5, READING)?),
        ended_at: column::<Option<i64>>(r, 6, READING)?.map(time),
        end_reason: column(r, 7, READING)?,
        context: None,
        answered_by: column(r, 9, READING)?,
    })
}

pub(crate) fn column<'r, T>(
    r: &'r AnyRow,
    index: usize,
    operation: &'static str,
) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    r.try_get(index).map_err(StoreError::query(operation))
}

pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}
