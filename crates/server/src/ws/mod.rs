//! `WS /ws/audio/{call_id}`: a caller's audio in, the agent's audio and the transcript out. The call must
//! exist (POST /api/v1/calls) and not have ended; the client authenticates with `?token=` (browsers cannot
//! set headers on a WebSocket) or the usual header, with at least the supervisor role.

pub mod protocol;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use switchboard_agent::{CallContext, PreviousCall};
use switchboard_audio::{InputFormat, SampleRate};
use switchboard_core::CallId;
use switchboard_session::{CallSetup, Engines, Inbound, Outbound, run_call};
use switchboard_store::Database;
use tokio::sync::mpsc;

use crate::auth::{Principal, Role, credentials};
use crate::registry::{LiveCall, Registration};
use crate::{ApiError, AppState};
use protocol::{ClientMessage, decode, encode, error_event, format_words};

/// How long the client has to send its first message before the default format is assumed.
const START_WAIT: Duration = Duration::from_secs(2);
/// Inbound messages buffered between the socket and the call.
const INBOUND_BUFFER: usize = 256;
/// Outbound events buffered between the call and the socket.
const OUTBOUND_BUFFER: usize = 512;
/// Earlier calls of the same caller given to the agent.
const PREVIOUS_CALLS: i64 = 3;

#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

/// Checks everything that can be refused with an HTTP status, then upgrades.
pub(crate) async fn audio(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    // Taken as a result so credentials and the call are checked first, whatever the request looks like.
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = query
        .token
        .or_else(|| credentials(&headers))
        .ok_or_else(|| ApiError::unauthorized("credentials required: ?token=<API key or JWT>"))?;
    let principal = state.auth.authenticate(&token).await?;
    principal.require(Role::Supervisor)?;
    let call_id: CallId = call_id
        .parse()
        .map_err(|e: switchboard_core::ids::InvalidCallId| ApiError::bad_request(e.to_string()))?;
    let call = state.database.call(call_id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no call {call_id}; create it with POST /api/v1/calls"
        ))
    })?;
    if call.ended_at.is_some() {
        return Err(ApiError::conflict(format!("call {call_id} has ended")));
    }
    let engines = state.engines.get().cloned().ok_or_else(|| {
        ApiError::unavailable(
            "models_not_loaded",
            "this node has no speech and language models loaded; see /ready",
        )
    })?;
    let upgrade = upgrade.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (registration, live) = state.calls.register(call_id).map_err(|e| match e {
        crate::registry::RegisterError::Full(_) => {
            ApiError::unavailable("too_many_calls", e.to_string())
        }
        crate::registry::RegisterError::AlreadyConnected(_) => ApiError::conflict(e.to_string()),
    })?;
    let context = call_context(&state.database, call.from_number.clone()).await;
    state
        .auth
        .audit(&principal, "call.connect", Some(call_id.to_string()), None)
        .await;
    let database = state.database.clone();
    let shared = state.live.clone();
    Ok(upgrade
        .max_message_size(protocol::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            let events = spawn_event_publisher(shared, call_id);
            carry(
                socket,
                call_id,
                context,
                engines,
                database,
                live,
                registration,
                principal,
                events,
            )
        }))
}

/// The agent's context: the caller's number and their earlier calls' summaries.
async fn call_context(db: &Database, phone: Option<String>) -> CallContext {
    let mut previous_calls = Vec::new();
    if let Some(phone) = &phone {
        match db.previous_calls(phone, PREVIOUS_CALLS).await {
            Ok(past) => {
                previous_calls = past
                    .into_iter()
                    .map(|p| PreviousCall {
                        date: chrono_date(p.started_at),
                        summary: p.summary.short_summary,
                    })
                    .collect();
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the caller's previous calls"),
        }
    }
    CallContext {
        today: None,
        caller_phone: phone,
        previous_calls,
    }
}

fn chrono_date(at: std::time::SystemTime) -> String {
    let days = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    chrono::DateTime::from_timestamp((days * 86_400) as i64, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Carries one connected call: socket messages to the call, call output to the socket and live viewers.
#[allow(clippy::too_many_arguments)]
async fn carry(
    mut socket: WebSocket,
    call_id: CallId,
    context: CallContext,
    engines: Arc<Engines>,
    database: Database,
    live: LiveCall,
    registration: Registration,
    principal: Principal,
    shared_events: Option<mpsc::UnboundedSender<Arc<str>>>,
) {
    // The first message may set the format; audio before any `start` is 16 kHz PCM16.
    let mut format = InputFormat::Pcm16(SampleRate::Hz16000);
    let mut early = None;
    if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(START_WAIT, socket.recv()).await
    {
        match decode(text.as_str()) {
            Ok(ClientMessage::Start(f)) => format = f,
            Ok(other) => early = Some(other),
            Err(e) => {
                let _ = socket
                    .send(Message::Text(
                        error_event("bad_message", &e.to_string()).into(),
                    ))
                    .await;
            }
        }
    }
    if let Err(e) = database.set_call_status(call_id, "active").await {
        tracing::error!(%call_id, error = %e, "cannot mark the call active");
    }
    let (words, rate) = format_words(format);
    let connected = serde_json::json!({
        "event": "connected", "call_id": call_id, "encoding": words, "sample_rate": rate
    });
    if socket
        .send(Message::Text(connected.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_BUFFER);
    let (out_tx, mut out_rx) = mpsc::channel(OUTBOUND_BUFFER);
    let setup = CallSetup {
        call_id,
        format,
        context,
    };
    let call = tokio::spawn(run_call(
        setup,
        engines,
        database,
        inbound_rx,
        out_tx,
        live.hangup.clone(),
    ));
    if let Some(message) = early {
        forward(message, &inbound_tx);
    }
    tracing::info!(%call_id, actor = %principal.actor, "websocket call connected");
    let mut dropped = 0u64;
    loop {
        tokio::select! {
            out = out_rx.recv() => {
                let Some(out) = out else { break };
                let text = encode(&out);
                if !matches!(out, Outbound::Audio(_)) {
                    let event: Arc<str> = Arc::from(text.as_str());
                    if let Some(shared) = &shared_events {
                        let _ = shared.send(event.clone());
                    }
                    let _ = live.events.send(event);
                }
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
                if matches!(out, Outbound::Hangup { .. }) {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 1000, reason: "call ended".into() })))
                        .await;
                    break;
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => match decode(text.as_str()) {
                    Ok(message) => {
                        if !forward(message, &inbound_tx) {
                            dropped += 1;
                        }
                    }
                    Err(e) => {
                        metrics::counter!("switchboard_errors_total", "kind" => "bad_message").increment(1);
                        let _ = socket
                            .send(Message::Text(error_event("bad_message", &e.to_string()).into()))
                            .await;
                    }
                },
                Some(Ok(Message::Binary(_))) => {
                    let _ = socket
                        .send(Message::Text(error_event("bad_message", "binary frames are not accepted; send JSON media events").into()))
                        .await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = inbound_tx.try_send(Inbound::Hangup);
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    drop(inbound_tx);
    if dropped > 0 {
        tracing::warn!(%call_id, dropped, "caller messages dropped: the call fell behind");
    }
    // The socket is done; the call finishes its record (end, synthesis) on its own.
    tokio::spawn(async move {
        match call.await {
            Ok(Ok(report)) => {
                tracing::info!(%call_id, turns = report.turns, reason = %report.end_reason, "call finished")
            }
            Ok(Err(e)) => tracing::error!(%call_id, error = %e, "call could not start"),
            Err(e) => tracing::error!(%call_id, error = %e, "call task failed"),
        }
        drop(registration);
    });
}

/// With Redis configured: registers the call as carried by this node and publishes its events to the
/// events stream in order, off the call's path (a slow Redis delays the stream, never the call); the
/// registration is removed when the call's events end.
fn spawn_event_publisher(
    shared: Option<switchboard_store::LiveState>,
    call_id: CallId,
) -> Option<mpsc::UnboundedSender<Arc<str>>> {
    let shared = shared?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<str>>();
    tokio::spawn(async move {
        if let Err(e) = shared.call_started(call_id).await {
            tracing::warn!(%call_id, error = %e, "cannot register the call in Redis");
        }
        while let Some(event) = rx.recv().await {
            if let Err(e) = shared.publish(call_id, &event).await {
                tracing::warn!(%call_id, error = %e, "cannot publish a call event to Redis");
                metrics::counter!("switchboard_errors_total", "kind" => "redis").increment(1);
            }
        }
        if let Err(e) = shared.call_ended(call_id).await {
            tracing::warn!(%call_id, error = %e, "cannot unregister the call in Redis");
        }
    });
    Some(tx)
}

/// Hands a client message to the call; false when it had to be dropped because the call is behind.
fn forward(message: ClientMessage, inbound_tx: &mpsc::Sender<Inbound>) -> bool {
    let inbound = match message {
        ClientMessage::Media(bytes) => Inbound::Audio(bytes),
        ClientMessage::Dtmf(digit) => Inbound::Dtmf(digit),
        ClientMessage::Stop => Inbound::Hangup,
        ClientMessage::Mark(name) => {
            tracing::debug!(%name, "client played up to a mark");
            return true;
        }
        ClientMessage::Start(_) => {
            tracing::debug!("a second start is ignored: the format is fixed once the call runs");
            return true;
        }
    };
    match inbound_tx.try_send(inbound) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => false,
        // The call has ended (the agent hung up) and the client is still sending: nothing is lost.
        Err(mpsc::error::TrySendError::Closed(_)) => true,
    }
}
