//! The claim and post-call synthesis stored with each call, and a caller's earlier calls by phone number
//! (the agent's context when they call again).

use std::time::SystemTime;

use switchboard_core::CallId;

use crate::calls::{column, millis, time};
use crate::{Database, StoreError};

/// A call's claim and synthesis.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallSummary {
    /// The claim's values as JSON text.
    pub claim: String,
    /// One sentence.
    pub short_summary: String,
    /// A paragraph.
    pub long_summary: String,
    /// 1 to 5.
    pub satisfaction: i64,
    /// What could be done better.
    pub improvement: String,
    /// `case_closed`, `follow_up`, `human_callback` or `commercial_offer`.
    pub next_action: String,
}

/// An earlier call of a caller, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct PastCall {
    /// Which call.
    pub call_id: String,
    /// When it started.
    pub started_at: SystemTime,
    /// Its summary.
    pub summary: CallSummary,
}

impl Database {
    /// Stores (or replaces) a call's claim and synthesis.
    pub async fn save_summary(
        &self,
        call_id: CallId,
        summary: &CallSummary,
    ) -> Result<(), StoreError> {
        const OP: &str = "storing a call summary";
        sqlx::query("DELETE FROM call_summaries WHERE call_id = $1")
            .bind(call_id.to_string())
            .execute(self.pool())
            .await
            .map_err(StoreError::query(OP))?;
        sqlx::query(
            "INSERT INTO call_summaries (call_id, claim, short_summary, long_summary, satisfaction, \
             improvement, next_action, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(call_id.to_string())
        .bind(self.seal_value(&summary.claim, &crate::sealed::claim_of(&call_id.to_string()))?)
        .bind(summary.short_summary.clone())
        .bind(summary.long_summary.clone())
        .bind(summary.satisfaction)
        .bind(summary.improvement.clone())
        .bind(summary.next_action.clone())
        .bind(millis(SystemTime::now()))
        .execute(self.pool())
        .await
        .map_err(StoreError::query(OP))?;
        Ok(())
    }

    /// The summarised calls from `phone`, newest first, at most `limit`.
    pub async fn previous_calls(
        &self,
        phone: &str,
        limit: i64,
    ) -> Result<Vec<PastCall>, StoreError> {
        const OP: &str = "reading a caller's previous calls";
        // The number as stored: plain, or sealed under any of the keys.
        let forms = self.number_forms(phone);
        let list = (1..=forms.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT c.id, c.started_at, s.claim, s.short_summary, s.long_summary, s.satisfaction, \
             s.improvement, s.next_action FROM calls c JOIN call_summaries s ON s.call_id = c.id \
             WHERE c.from_number IN ({list}) ORDER BY c.started_at DESC LIMIT ${}",
            forms.len() + 1
        );
        let mut query = sqlx::query(&sql);
        for form in forms {
            query = query.bind(form);
        }
        let rows = query
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|r| {
                let call_id: String = column(r, 0, OP)?;
                let claim: String = column(r, 2, OP)?;
                Ok(PastCall {
                    started_at: time(column(r, 1, OP)?),
                    summary: CallSummary {
                        claim: self.open_value(
                            "claim",
                            &claim,
                            &crate::sealed::claim_of(&call_id),
                        )?,
                        short_summary: column(r, 3, OP)?,
                        long_summary: column(r, 4, OP)?,
                        satisfaction: column(r, 5, OP)?,
                        improvement: column(r, 6, OP)?,
                        next_action: column(r, 7, OP)?,
                    },
                    call_id,
                })
            })
            .collect()
    }

    /// The claim and synthesis of one call, once written.
    pub async fn summary(&self, call_id: CallId) -> Result<Option<CallSummary>, StoreError> {
        const OP: &str = "reading a call summary";
        let row = sqlx::query(
            "SELECT claim, short_summary, long_summary, satisfaction, improvement, next_action \
             FROM call_summaries WHERE call_id = $1",
        )
        .bind(call_id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::query(OP))?;
        row.map(|r| {
            let claim: String = column(&r, 0, OP)?;
            Ok(CallSummary {
                claim: self.open_value(
                    "claim",
                    &claim,
                    &crate::sealed::claim_of(&call_id.to_string()),
                )?,
                short_summary: column(&r, 1, OP)?,
                long_summary: column(&r, 2, OP)?,
                satisfaction: column(&r, 3, OP)?,
                improvement: column(&r, 4, OP)?,
                next_action: column(&r, 5, OP)?,
            })
        })
        .transpose()
    }
}
