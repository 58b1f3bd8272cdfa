//! Carrying one call, whatever its transport. A transport (`/ws/audio`, and the telephony adapters) only
//! translates its wire format to [`Inbound`] and from [`Outbound`]; everything else a connected call
//! needs is here, once: the checks before it may connect, its slot on this node, its status, the session
//! task, its events for live viewers and Redis, and the bookkeeping when the transport goes away.

use std::borrow::Cow;
use std::sync::Arc;

use switchboard_agent::{CallContext, PreviousCall, mask_pii};
use switchboard_audio::InputFormat;
use switchboard_core::CallDirection;
use switchboard_core::CallId;
use switchboard_session::{
    CallReport, CallSetup, CallerSender, Engines, Inbound, Outbound, TranscriptLine,
    caller_channel, run_call,
};
use switchboard_store::{Database, NewCall, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::registry::{LiveCall, RegisterError, Registration};
use crate::ws::protocol::encode;
use crate::{ApiError, AppState};

/// Outbound events buffered between the call and the transport.
const OUTBOUND_BUFFER: usize = 512;
/// A call's events waiting to be published to Redis. While the backlog is full (a Redis away for long),
/// new events skip the shared stream (counted: `switchboard_events_dropped_total`); local viewers and
/// the call itself lose nothing.
const SHARED_EVENT_BACKLOG: usize = 1_024;
/// Longest a transport may take to hand one message to its peer. A peer that stops reading (its
/// buffers full) is hung up after this, and its slot freed, rather than holding the call forever.
pub(crate) const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends with [`SEND_TIMEOUT`]; false when the peer is gone or stopped reading (logged).
pub(crate) async fn sent<E>(
    call_id: CallId,
    send: impl std::future::Future<Output = Result<(), E>>,
) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, send).await {
        Ok(result) => result.is_ok(),
        Err(_) => {
            tracing::warn!(%call_id, timeout_s = SEND_TIMEOUT.as_secs(), "the peer stopped reading; hanging up");
            metrics::counter!("switchboard_errors_total", "kind" => "peer_stalled").increment(1);
            false
        }
    }
}

/// Key-press requests a call holds before the API is told to wait.
const KEY_PRESS_BACKLOG: usize = 8;
/// Earlier calls of the same caller given to the agent.
const PREVIOUS_CALLS: i64 = 3;

/// A call allowed to connect here, holding its slot.
#[derive(Debug)]
pub(crate) struct Admission {
    call_id: CallId,
    engines: Arc<Engines>,
    registration: Registration,
    live: LiveCall,
    context: CallContext,
    /// The agent placed the call to a number (AMD screens who answers).
    placed: bool,
}

impl Admission {
    /// The call admitted.
    pub(crate) fn call_id(&self) -> CallId {
        self.call_id
    }
}

/// Checks that `call_id` may connect on this node (it exists, has not ended, models are loaded, a slot is
/// free and it is not connected already) and takes its slot.
pub(crate) async fn admit(state: &AppState, call_id: CallId) -> Result<Admission, ApiError> {
    let call = state.database.call(call_id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no call {call_id}; create it with POST /api/v1/calls"
        ))
    })?;
    if call.ended_at.is_some() {
        return Err(ApiError::conflict(format!("call {call_id} has ended")));
    }
    let slot = take_slot(state, call_id)?;
    let placed = call.direction == CallDirection::Outbound && call.to_number.is_some();
    let mut admission = admitted(state, call_id, slot, call.from_number).await;
    admission.placed = placed;
    Ok(admission)
}

/// A call a phone line brings in that no record names yet.
#[derive(Debug)]
pub(crate) struct NewInbound {
    /// The caller's number or user, as the line gave it.
    pub(crate) from: Option<String>,
    /// The number or user called.
    pub(crate) to: Option<String>,
    /// Where it came from, and the provider's own id of the call.
    pub(crate) context: serde_json::Value,
}

/// Admits a new inbound call as `call_id`: the models and a slot are checked first, and only then is
/// its record written, so a call this node refuses leaves nothing behind.
pub(crate) async fn admit_new(
    state: &AppState,
    call_id: CallId,
    call: NewInbound,
) -> Result<Admission, ApiError> {
    let slot = take_slot(state, call_id)?;
    record_inbound(state, call_id, call.from.clone(), call.to, call.context).await?;
    Ok(admitted(state, call_id, slot, call.from).await)
}

/// The admission of `call_id` holding `slot`, with the agent's context for a caller from `phone`.
async fn admitted(
    state: &AppState,
    call_id: CallId,
    (engines, registration, live): (Arc<Engines>, Registration, LiveCall),
    phone: Option<String>,
) -> Admission {
    let memory = state.config.calls.caller_memory;
    let context = call_context(&state.database, phone, memory).await;
    Admission {
        call_id,
        engines,
        registration,
        live,
        context,
        placed: false,
    }
}

/// The loaded models and a slot for `call_id`.
fn take_slot(
    state: &AppState,
    call_id: CallId,
) -> Result<(Arc<Engines>, Registration, LiveCall), ApiError> {
    let engines = state.engines.get().cloned().ok_or_else(|| {
        ApiError::unavailable(
            "models_not_loaded",
            "this node has no speech and language models loaded; see /ready",
        )
    })?;
    let (registration, live) = state.calls.register(call_id).map_err(|e| match e {
        RegisterError::Full(_) => ApiError::unavailable("too_many_calls", e.to_string()),
        RegisterError::AlreadyConnected(_) => ApiError::conflict(e.to_string()),
    })?;
    Ok((engines, registration, live))
}

/// The agent's context: the caller's number and, with CALLER_MEMORY (`memory`), their earlier calls'
/// summaries. Off, nothing of another call is read: a caller id is easily spoofed.
async fn call_context(db: &Database, phone: Option<String>, memory: bool) -> CallContext {
    let mut previous_calls = Vec::new();
    if let Some(phone) = phone.as_ref().filter(|_| memory) {
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

/// A running call and the channels its transport talks to it through.
#[derive(Debug)]
pub(crate) struct Carried {
    call_id: CallId,
    inbound: CallerSender,
    /// What the call sends: audio, marks, clears, transcript, latency, the hang-up.
    pub(crate) outbound: mpsc::Receiver<Outbound>,
    live: LiveCall,
    shared_events: Option<mpsc::Sender<Arc<str>>>,
    task: JoinHandle<Result<CallReport, switchboard_session::CallError>>,
    registration: Registration,
}

impl Carried {
    /// Marks the call active and starts its session on audio in `format`. `echoes_marks`: the peer
    /// echoes each mark once it has played the audio before it, so the call learns what was heard.
    pub(crate) async fn start(
        state: &AppState,
        admission: Admission,
        format: InputFormat,
        echoes_marks: bool,
    ) -> Self {
        let Admission {
            call_id,
            engines,
            registration,
            live,
            context,
            placed,
        } = admission;
        if let Err(e) = state.database.set_call_status(call_id, "active").await {
            tracing::error!(%call_id, error = %e, "cannot mark the call active");
        }
        let shared_events = spawn_event_publisher(state.live.clone(), call_id);
        // AUDIO_BUFFER_SIZE_MS of 20 ms frames; a call further behind drops its oldest audio.
        let audio_frames = (state.config.audio.buffer_size.as_millis() / 20) as usize;
        let (inbound, inbound_rx) = caller_channel(audio_frames);
        let (out_tx, outbound) = mpsc::channel(OUTBOUND_BUFFER);
        let setup = CallSetup {
            call_id,
            format,
            context,
            echoes_marks,
            placed,
        };
        let task = tokio::spawn(run_call(
            setup,
            engines,
            state.database.clone(),
            inbound_rx,
            out_tx,
            live.hangup.clone(),
        ));
        Self {
            call_id,
            inbound,
            outbound,
            live,
            shared_events,
            task,
            registration,
        }
    }

    /// Sends one of the call's events (anything but audio), in the `/ws/audio` event shape, to live viewers
    /// on this node and, with Redis, to the events stream. What leaves the node for the shared stream
    /// carries no raw phone number, card number, e-mail address or IBAN: transcript text is masked
    /// ([`mask_pii`]). Audio is never published: a transport encodes it for its own wire only.
    pub(crate) fn publish(&self, out: &Outbound) {
        let event: Arc<str> = Arc::from(encode(out));
        if let Some(shared) = &self.shared_events {
            let masked = match out {
                Outbound::Transcript(line) => match mask_pii(&line.text) {
                    Cow::Borrowed(_) => event.clone(),
                    Cow::Owned(text) => Arc::from(encode(&Outbound::Transcript(TranscriptLine {
                        text,
                        ..line.clone()
                    }))),
                },
                _ => event.clone(),
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = shared.try_send(masked) {
                metrics::counter!("switchboard_events_dropped_total").increment(1);
            }
        }
        let _ = self.live.events.send(event);
    }

    /// The call carried.
    pub(crate) fn call_id(&self) -> CallId {
        self.call_id
    }

    /// Lets the API send key presses to the far end of this call: digit strings come out of the returned
    /// receiver, for a transport that can send them.
    pub(crate) fn accept_key_presses(&self) -> mpsc::Receiver<String> {
        let (keys, presses) = mpsc::channel(KEY_PRESS_BACKLOG);
        let _ = self.live.keys.set(keys);
        presses
    }

    /// Hands the transport's message to the call. Audio never waits (a call that fell behind drops its
    /// oldest frames, counted and logged when the transport finishes); a signal (mark, key, hang-up)
    /// waits for room and is never dropped. After the call has ended, there is nobody to tell.
    pub(crate) async fn forward(&mut self, inbound: Inbound) {
        let _ = self.inbound.send(inbound).await;
    }

    /// The transport is gone (the caller hung up, or the call ended): the call finishes its record
    /// (end, synthesis) on its own, and frees its slot when done.
    pub(crate) fn finish(self) {
        let Self {
            call_id,
            inbound,
            task,
            registration,
            ..
        } = self;
        // The transport may already have said so; a second hang-up is harmless. When the signal queue
        // is full, the call sees the transport gone once the queue drains.
        let _ = inbound.try_signal(Inbound::Hangup);
        let dropped = inbound.dropped_audio();
        drop(inbound);
        if dropped > 0 {
            tracing::warn!(%call_id, dropped, "caller messages dropped: the call fell behind");
        }
        tokio::spawn(async move {
            match task.await {
                Ok(Ok(report)) => {
                    tracing::info!(%call_id, turns = report.turns, reason = %report.end_reason, "call finished")
                }
                Ok(Err(e)) => tracing::error!(%call_id, error = %e, "call could not start"),
                Err(e) => tracing::error!(%call_id, error = %e, "call task failed"),
            }
            drop(registration);
        });
    }
}

/// With Redis configured: registers the call as carried by this node and publishes its events to the
/// events stream in order, off the call's path (a slow Redis delays the stream, never the call); the
/// registration is removed when the call's events end.
fn spawn_event_publisher(
    shared: Option<switchboard_store::LiveState>,
    call_id: CallId,
) -> Option<mpsc::Sender<Arc<str>>> {
    let shared = shared?;
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(SHARED_EVENT_BACKLOG);
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

/// Records what a provider said to an outbound call placed for `call_id`: queued with the provider's id
/// of the call, or ended as `provider_refused` with the provider's reason for the API's caller (502).
pub(crate) async fn placed(
    state: &AppState,
    call_id: CallId,
    provider: &str,
    outcome: Result<String, String>,
) -> Result<String, ApiError> {
    match outcome {
        Ok(provider_id) => {
            state.database.set_call_status(call_id, "queued").await?;
            tracing::info!(%call_id, %provider_id, "{provider} is placing the call");
            Ok(provider_id)
        }
        Err(reason) => {
            tracing::error!(%call_id, error = %reason, "{provider} did not place the call");
            state
                .database
                .end_call(call_id, std::time::SystemTime::now(), "provider_refused")
                .await?;
            Err(ApiError::bad_gateway(
                "provider_refused",
                format!("{provider} did not place the call: {reason}"),
            ))
        }
    }
}

/// Records a new inbound call a phone line brought in: who called whom, and `context` (where it came
/// from, the provider's own id of the call).
pub(crate) async fn record_inbound(
    state: &AppState,
    id: CallId,
    from_number: Option<String>,
    to_number: Option<String>,
    context: serde_json::Value,
) -> Result<(), StoreError> {
    let call = NewCall {
        id,
        direction: CallDirection::Inbound,
        from_number,
        to_number,
        started_at: std::time::SystemTime::now(),
        status: "pending",
        context: Some(context.to_string()),
    };
    state.database.insert_call(&call).await
}

/// Records the end of a call that never reached its session (a session records its own end); a failure
/// is logged, since the caller is gone either way.
pub(crate) async fn record_end(state: &AppState, call_id: CallId, reason: &str) {
    if let Err(e) = state
        .database
        .end_call(call_id, std::time::SystemTime::now(), reason)
        .await
    {
        tracing::error!(%call_id, error = %e, "cannot record the end of a call");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::config::DatabaseTarget;
    use switchboard_store::CallSummary;

    #[tokio::test]
    async fn earlier_calls_of_a_number_reach_the_agent_only_with_caller_memory() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&DatabaseTarget::Sqlite {
            path: dir.path().join("calls.db"),
        })
        .await
        .unwrap();
        db.migrate().await.unwrap();
        let earlier = CallId::new();
        db.insert_call(&NewCall {
            id: earlier,
            direction: CallDirection::Inbound,
            from_number: Some("+14155550100".into()),
            to_number: None,
            started_at: std::time::SystemTime::now(),
            status: "completed",
            context: None,
        })
        .await
        .unwrap();
        let summary = CallSummary {
            claim: "{}".into(),
            short_summary: "Reported a burst pipe at 12 Elm Street.".into(),
            long_summary: String::new(),
            satisfaction: 4,
            improvement: String::new(),
            next_action: "follow_up".into(),
        };
        db.save_summary(earlier, &summary).await.unwrap();
        let phone = Some("+14155550100".to_owned());

        let off = call_context(&db, phone.clone(), false).await;
        assert!(
            off.previous_calls.is_empty(),
            "off: nothing of another call"
        );
        assert_eq!(off.caller_phone, phone);
        let on = call_context(&db, phone, true).await;
        assert_eq!(on.previous_calls.len(), 1);
        assert!(on.previous_calls[0].summary.contains("burst pipe"));
        db.close().await;
    }
}
