//! `DELETE /api/v1/calls/{id}/data` (admin): a caller's right to erasure. The call's transcript, claim,
//! synthesis, numbers and context go, and so do its events in the Redis stream; the call's row stays (its
//! id, times and end), and the erasure itself is audited. A call still in progress must be ended first.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::auth::{Principal, Role};
use crate::{ApiError, AppState};

/// `DELETE /api/v1/calls/{id}/data`.
pub(crate) async fn erase_call_data(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Admin)?;
    let id = crate::api::parse_id(&id)?;
    let call = state
        .database
        .call(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no call {id}")))?;
    if call.ended_at.is_none() || state.calls.get(id).is_some() {
        return Err(ApiError::conflict(format!(
            "call {id} is still in progress: end it first (DELETE /api/v1/calls/{id}), then erase its data"
        )));
    }
    let erased = state
        .database
        .erase_call_data(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no call {id}")))?;
    let events = match &state.live {
        Some(live) => live.erase_events(id).await.map_err(|e| {
            ApiError::unavailable(
                "shared_state_unavailable",
                format!(
                    "the call's data is erased from the database but its events in Redis are not: {e}; \
                     ask again to finish"
                ),
            )
        })?,
        None => 0,
    };
    let detail = format!(
        "turns={} summary={} recording_chunks={} events={events}",
        erased.turns, erased.summary, erased.recording_chunks
    );
    state
        .auth
        .audit(&who, "call.erase", Some(id.to_string()), Some(detail))
        .await;
    Ok(Json(json!({
        "id": id.to_string(),
        "erased": {
            "turns": erased.turns,
            "summary": erased.summary,
            "recording_chunks": erased.recording_chunks,
            "events": events,
        },
    })))
}
