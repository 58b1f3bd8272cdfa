//! `/api/v1`: calls (place, list, read, end), their transcript, claim and synthesis, live events, API keys
//! and the audit log. Every route needs credentials; reading needs viewer, changing a call supervisor,
//! keys and the audit log admin. Every change is written to the audit log.

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{CallDirection, CallId};
use switchboard_store::{CallCommand, CallFilter, CallRecord, Delivery, NewCall};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use crate::auth::{Principal, Role};
use crate::{ApiError, AppState};

/// The `/api/v1` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/calls", get(list_calls).post(create_call))
        .route("/api/v1/calls/{id}", get(get_call).delete(end_call))
        .route("/api/v1/calls/{id}/dtmf", axum::routing::post(send_keys))
        .route(
            "/api/v1/calls/{id}/ticket",
            axum::routing::post(crate::tickets::issue),
        )
        .route(
            "/api/v1/calls/{id}/data",
            delete(crate::erasure::erase_call_data),
        )
        .route("/api/v1/calls/{id}/transcript", get(transcript))
        .route("/api/v1/calls/{id}/summary", get(summary))
        .route(
            "/api/v1/calls/{id}/recording",
            get(crate::recordings::recording),
        )
        .route("/api/v1/calls/{id}/events", get(events))
        .route(
            "/api/v1/keys",
            axum::routing::post(crate::admin::create_key),
        )
        .route("/api/v1/keys/{id}", delete(crate::admin::revoke_key))
        .route("/api/v1/audit", get(crate::admin::audit_log))
        .route("/api/v1/openapi.json", get(openapi))
}

pub(crate) fn parse_id(id: &str) -> Result<CallId, ApiError> {
    id.parse()
        .map_err(|e: switchboard_core::ids::InvalidCallId| ApiError::bad_request(e.to_string()))
}

pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a viewer may see of callers' data (a number, a claim, a line): personal values (numbers, cards,
/// e-mail addresses, IBANs) masked to their kind and last four digits wherever they are in `value`. Supervisors and admins see
/// them as the caller gave them.
pub(crate) fn for_reader(who: &Principal, mut value: Value) -> Value {
    fn mask(value: &mut Value) {
        match value {
            Value::String(text) => {
                if let std::borrow::Cow::Owned(masked) = switchboard_agent::mask_pii(text) {
                    *text = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(mask),
            Value::Object(fields) => fields.values_mut().for_each(mask),
            _ => {}
        }
    }
    if who.role < Role::Supervisor {
        mask(&mut value);
    }
    value
}

fn call_json(call: &CallRecord, live: bool, who: &Principal) -> Value {
    json!({
        "id": call.id,
        "direction": call.direction,
        "status": call.status,
        "from_number": for_reader(who, json!(call.from_number)),
        "to_number": for_reader(who, json!(call.to_number)),
        "started_at_ms": epoch_ms(call.started_at),
        "ended_at_ms": call.ended_at.map(epoch_ms),
        "end_reason": call.end_reason,
        "answered_by": call.answered_by,
        "context": for_reader(
            who,
            call.context.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()).into(),
        ),
        "live": live,
    })
}

async fn load_call(state: &AppState, id: &str) -> Result<CallRecord, ApiError> {
    let id = parse_id(id)?;
    state
        .database
        .call(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no call {id}")))
}

#[derive(Debug, Deserialize)]
struct CreateCall {
    to_number: Option<String>,
    from_number: Option<String>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    direction: Option<CallDirection>,
}

/// Longest phone number accepted (E.164 is at most 15 digits plus `+`; room for formatting).
const MAX_NUMBER_CHARS: usize = 32;
/// Largest `context` accepted, as JSON text.
const MAX_CONTEXT_BYTES: usize = 16 * 1024;

async fn create_call(
    State(state): State<AppState>,
    who: Principal,
    body: Result<Json<CreateCall>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    who.require(Role::Supervisor)?;
    let Json(body) = body?;
    for (name, number) in [
        ("to_number", &body.to_number),
        ("from_number", &body.from_number),
    ] {
        if let Some(n) = number
            && (n.len() > MAX_NUMBER_CHARS
                || !n.chars().all(|c| c.is_ascii_digit() || "+-() ".contains(c)))
        {
            return Err(ApiError::bad_request(format!(
                "{name} must be a phone number such as +14155550100"
            )));
        }
    }
    let context = body.context.map(|c| c.to_string());
    if context
        .as_ref()
        .is_some_and(|c| c.len() > MAX_CONTEXT_BYTES)
    {
        return Err(ApiError::bad_request(format!(
            "context is over {MAX_CONTEXT_BYTES} bytes"
        )));
    }
    let call = NewCall {
        id: CallId::new(),
        direction: body.direction.unwrap_or(CallDirection::Outbound),
        from_number: body.from_number,
        to_number: body.to_number,
        started_at: SystemTime::now(),
        status: "pending",
        context,
    };
    state.database.insert_call(&call).await?;
    state
        .auth
        .audit(&who, "call.create", Some(call.id.to_string()), None)
        .await;
    let record = state
        .database
        .call(call.id)
        .await?
        .ok_or_else(|| ApiError::internal("a created call vanished"))?;
    // An outbound call with a number to ring goes out through the configured phone network; otherwise
    // the client connects the call's audio itself over /ws/audio.
    let provider_call_id = match (
        &call.direction,
        &call.to_number,
        crate::control::network(&state),
    ) {
        (CallDirection::Outbound, Some(to), Some(network)) => Some(
            network
                .place(&state, call.id, to, call.from_number.as_deref())
                .await?,
        ),
        _ => None,
    };
    let record = match provider_call_id {
        Some(_) => state.database.call(call.id).await?.unwrap_or(record),
        None => record,
    };
    let mut body = call_json(&record, false, &who);
    body["audio_url"] = json!(format!("/ws/audio/{}", call.id));
    if let Some(sid) = provider_call_id {
        body["provider_call_id"] = json!(sid);
    }
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    direction: Option<CallDirection>,
    number: Option<String>,
    since_ms: Option<u64>,
    limit: Option<u32>,
}

async fn list_calls(
    State(state): State<AppState>,
    who: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Viewer)?;
    let Query(query) = query?;
    let filter = CallFilter {
        status: query.status,
        direction: query.direction,
        number: query.number,
        since: query
            .since_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
        limit: query.limit.unwrap_or(50).clamp(1, 500),
    };
    let calls = state.database.list_calls(&filter).await?;
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| call_json(c, state.calls.get(c.id).is_some(), &who))
        .collect();
    Ok(Json(json!({ "calls": calls })))
}

async fn get_call(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Viewer)?;
    let call = load_call(&state, &id).await?;
    Ok(Json(call_json(
        &call,
        state.calls.get(call.id).is_some(),
        &who,
    )))
}

async fn end_call(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Supervisor)?;
    let call = load_call(&state, &id).await?;
    if call.ended_at.is_some() {
        return Err(ApiError::conflict(format!(
            "call {} has already ended",
            call.id
        )));
    }
    let mut carried_by = None;
    match state.calls.get(call.id) {
        // A connected call ends through its session, which records the end itself.
        Some(live) => live.hangup.cancel(),
        None => {
            if let Some(shared) = &state.live {
                match shared.send_command(call.id, CallCommand::Hangup).await {
                    Ok(Delivery::Delivered { node }) => carried_by = Some(node),
                    Ok(Delivery::NodeGone { node }) => {
                        tracing::warn!(call_id = %call.id, %node, "the node that carried the call is gone; ending its record here")
                    }
                    Ok(Delivery::NotLive) => {}
                    Err(e) => {
                        return Err(ApiError::unavailable(
                            "shared_state_unavailable",
                            format!(
                                "cannot reach the node carrying call {}: {e}; try again",
                                call.id
                            ),
                        ));
                    }
                }
            }
            if carried_by.is_none() {
                state
                    .database
                    .end_call(call.id, SystemTime::now(), "ended_by_api")
                    .await?;
            }
        }
    }
    state
        .auth
        .audit(&who, "call.end", Some(call.id.to_string()), None)
        .await;
    let mut answer = json!({ "id": call.id, "status": "ending" });
    if let Some(node) = carried_by {
        answer["node"] = json!(node);
    }
    Ok(Json(answer))
}

/// Longest run of key presses one request sends.
const MAX_KEYS: usize = 32;

#[derive(Debug, Deserialize)]
struct SendKeys {
    digits: String,
}

/// Sends key presses to the far end of a connected call (RFC 4733 on SIP, ARI's channel DTMF on Asterisk):
/// to work an IVR on a call the agent placed, or to dial an extension. The digits themselves are never logged or audited (they may be a PIN).
async fn send_keys(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    body: Result<Json<SendKeys>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    who.require(Role::Supervisor)?;
    let Json(body) = body?;
    if body.digits.is_empty()
        || body.digits.len() > MAX_KEYS
        || !body
            .digits
            .chars()
            .all(|c| c.is_ascii_digit() || "*#ABCD".contains(c))
    {
        return Err(ApiError::bad_request(format!(
            "digits must be 1 to {MAX_KEYS} of 0-9, *, #, A-D"
        )));
    }
    let call = load_call(&state, &id).await?;
    let Some(live) = state.calls.get(call.id) else {
        return Err(ApiError::conflict(format!(
            "call {} is not connected to this node",
            call.id
        )));
    };
    let Some(keys) = live.keys.get() else {
        return Err(ApiError::conflict(format!(
            "call {} cannot send key presses: SIP calls whose far end takes RFC 4733 telephone events and Asterisk calls joined through ARI can; Twilio media streams and WebSocket calls cannot",
            call.id
        )));
    };
    keys.try_send(body.digits.clone()).map_err(|_| {
        ApiError::unavailable(
            "keys_busy",
            "earlier key presses are still being sent; try again",
        )
    })?;
    state
        .auth
        .audit(&who, "call.dtmf", Some(call.id.to_string()), None)
        .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": call.id, "keys": body.digits.len() })),
    ))
}

async fn transcript(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Viewer)?;
    let call = load_call(&state, &id).await?;
    let turns = state.database.turns(call.id).await?;
    // Who read what callers said is kept.
    state
        .auth
        .audit(
            &who,
            "call.transcript.read",
            Some(call.id.to_string()),
            None,
        )
        .await;
    let turns: Vec<Value> = turns
        .iter()
        .map(|t| {
            json!({
                "seq": t.seq,
                "speaker": t.speaker,
                "text": for_reader(&who, Value::String(t.text.clone())),
                "started_at_ms": epoch_ms(t.started_at),
                "ended_at_ms": epoch_ms(t.ended_at),
                "sources": t.sources,
            })
        })
        .collect();
    Ok(Json(json!({ "call_id": call.id, "turns": turns })))
}

async fn summary(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Viewer)?;
    let call = load_call(&state, &id).await?;
    let summary = state.database.summary(call.id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "call {} has no synthesis yet (it is written when the call ends)",
            call.id
        ))
    })?;
    state
        .auth
        .audit(&who, "call.summary.read", Some(call.id.to_string()), None)
        .await;
    Ok(Json(json!({
        "call_id": call.id,
        "claim": for_reader(&who, serde_json::from_str::<Value>(&summary.claim).unwrap_or(Value::Null)),
        "synthesis": for_reader(&who, json!({
            "short_summary": summary.short_summary,
            "long_summary": summary.long_summary,
            "satisfaction": summary.satisfaction,
            "improvement": summary.improvement,
            "next_action": summary.next_action,
        })),
    })))
}

/// A live view's events, whichever node the call is on.
type EventStream = futures_util::stream::BoxStream<'static, Result<SseEvent, Infallible>>;

/// Server-sent events of a live call: transcript lines, latencies, hang-up. A call carried by another
/// node is followed on the shared events stream (REDIS_HOST).
async fn events(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Sse<axum::response::sse::KeepAliveStream<EventStream>>, ApiError> {
    who.require(Role::Viewer)?;
    let call = load_call(&state, &id).await?;
    let not_live = || {
        ApiError::not_found(format!(
            "call {} is not live; its transcript is at /api/v1/calls/{}/transcript",
            call.id, call.id
        ))
    };
    if let Some(live) = state.calls.get(call.id) {
        let stream =
            BroadcastStream::new(live.events.subscribe()).filter_map(|event| match event {
                Ok(text) => Some(Ok(SseEvent::default().data(text.as_ref()))),
                // A viewer too slow for the call skips what it missed.
                Err(_) => None,
            });
        return Ok(Sse::new(Box::pin(stream) as EventStream).keep_alive(KeepAlive::default()));
    }
    let Some(shared) = &state.live else {
        return Err(not_live());
    };
    let unavailable = |e: switchboard_store::StoreError| {
        ApiError::unavailable(
            "shared_state_unavailable",
            format!("cannot follow call {}: {e}", call.id),
        )
    };
    if shared.owner(call.id).await.map_err(unavailable)?.is_none() {
        return Err(not_live());
    }
    let follower = shared.follow(call.id).await.map_err(unavailable)?;
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        match follower.next().await {
            Ok(Some(text)) => Some((Ok(SseEvent::default().data(text)), follower)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "lost the shared events stream; ending the live view");
                None
            }
        }
    });
    Ok(Sse::new(Box::pin(stream) as EventStream).keep_alive(KeepAlive::default()))
}

async fn openapi(who: Principal) -> Result<Json<Value>, ApiError> {
    who.require(Role::Viewer)?;
    Ok(Json(crate::openapi::document()))
}
