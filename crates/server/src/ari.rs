//! Asterisk ARI (with ARI_URL): calls in our Stasis application are carried over AudioSocket.
//!
//! - A channel entering the application (`Stasis(switchboard)` in a dialplan, or a call we placed once
//!   answered) gets an external media channel speaking AudioSocket to this node's listener, named by the
//!   call's UUID, and a mixing bridge joining the two. The AudioSocket listener carries the call from there.
//! - `POST /api/v1/calls` with TELEPHONY_PROVIDER=asterisk originates the call into the application.
//! - When the call ends, the caller's channel is redirected to TRANSFER_TARGET (a transfer) or hung up,
//!   and the media channel and bridge go away; when the caller hangs up first, the media channel is hung
//!   up, which ends the AudioSocket call.
//!
//! Every node subscribed to an application receives all its events, so each node has its own ARI_APP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use switchboard_core::CallId;
use switchboard_core::config::AriConfig;
use switchboard_session::EndReason;
use switchboard_telephony::ari::{Channel, Client, Event, decode_event, endpoint_for};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::control::{self, CallControl, PlaceCalls, Placing};
use crate::{ApiError, AppState};

/// Suffix of the external media channel's id after the call id.
const MEDIA_SUFFIX: &str = "-media";
/// Longest pause between attempts to reach the events socket.
const MAX_RECONNECT: Duration = Duration::from_secs(30);

/// The channels of one call carried through ARI.
#[derive(Debug, Clone)]
struct Leg {
    /// The caller's channel.
    phone: String,
}

/// ARI for this node: the client, its settings, and the calls it joined to our AudioSocket.
#[derive(Debug)]
pub struct AriLink {
    client: Client,
    config: AriConfig,
    legs: Mutex<HashMap<CallId, Leg>>,
}

impl AriLink {
    /// The link ARI settings describe.
    pub fn new(config: &AriConfig) -> Self {
        Self {
            client: Client::new(config.url.as_str(), &config.user, config.password.expose()),
            config: config.clone(),
            legs: Mutex::new(HashMap::new()),
        }
    }

    fn legs(&self) -> MutexGuard<'_, HashMap<CallId, Leg>> {
        self.legs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn media_channel(call_id: CallId) -> String {
        format!("{call_id}{MEDIA_SUFFIX}")
    }
}

/// Follows the application's events until `stop`, reconnecting with a growing pause when Asterisk is
/// unreachable (each failure is logged; calls already bridged go on).
pub async fn run_ari_events(state: AppState, stop: CancellationToken) {
    let Some(ari) = state.ari.clone() else {
        return;
    };
    let url = ari.client.events_url(&ari.config.app);
    let mut pause = Duration::from_secs(1);
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = tokio_tungstenite::connect_async(url.as_str()) => connected,
        };
        match connected {
            Ok((mut socket, _)) => {
                tracing::info!(app = %ari.config.app, "following Asterisk's ARI events");
                pause = Duration::from_secs(1);
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = socket.next() => message,
                    };
                    match message {
                        Some(Ok(Message::Text(text))) => match decode_event(text.as_str()) {
                            Ok(event) => {
                                let state = state.clone();
                                tokio::spawn(async move { on_event(&state, event).await });
                            }
                            Err(e) => tracing::warn!(error = %e, "an ARI event was skipped"),
                        },
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "lost Asterisk's ARI events");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(e) => {
                metrics::counter!("switchboard_errors_total", "kind" => "ari").increment(1);
                tracing::warn!(error = %e, retry_s = pause.as_secs(), "cannot reach Asterisk's ARI events (check ARI_URL, ARI_USER, ARI_PASSWORD)");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_RECONNECT);
    }
}

async fn on_event(state: &AppState, event: Event) {
    let Some(ari) = &state.ari else { return };
    match event {
        Event::StasisStart { channel, args } => {
            if channel.id.ends_with(MEDIA_SUFFIX) {
                return;
            }
            if let Err(e) = join_to_audiosocket(state, ari, &channel, &args).await {
                metrics::counter!("switchboard_errors_total", "kind" => "ari").increment(1);
                tracing::error!(channel = %channel.id, error = %e, "cannot bring an Asterisk call to the agent; hanging it up");
                let _ = ari.client.hang_up(&channel.id).await;
            }
        }
        Event::StasisEnd { channel } => {
            let ended = {
                let mut legs = ari.legs();
                let call = legs
                    .iter()
                    .find(|(_, leg)| leg.phone == channel.id)
                    .map(|(id, _)| *id);
                call.inspect(|id| {
                    legs.remove(id);
                })
            };
            if let Some(call_id) = ended {
                tracing::info!(%call_id, "the caller's channel left; ending the call");
                release(ari, call_id).await;
            }
        }
        Event::Other(_) => {}
    }
}

/// The call of a channel entering the application: ours when it carries our call id (a call we placed),
/// else a new inbound call from the channel's caller.
async fn call_for(state: &AppState, channel: &Channel, args: &[String]) -> Result<CallId, String> {
    if let Some(id) = args.first().and_then(|a| a.parse::<CallId>().ok())
        && state
            .database
            .call(id)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
    {
        return Ok(id);
    }
    let number = &channel.caller.number;
    let id = CallId::new();
    let from = (!number.is_empty() && number.len() <= 32).then(|| number.clone());
    let context = json!({ "source": "asterisk-ari", "channel": channel.id });
    crate::carrier::record_inbound(state, id, from, None, context)
        .await
        .map_err(|e| e.to_string())?;
    Ok(id)
}

async fn join_to_audiosocket(
    state: &AppState,
    ari: &AriLink,
    channel: &Channel,
    args: &[String],
) -> Result<(), String> {
    let call_id = call_for(state, channel, args).await?;
    if channel.state != "Up" {
        ari.client
            .answer(&channel.id)
            .await
            .map_err(|e| e.to_string())?;
    }
    ari.legs().insert(
        call_id,
        Leg {
            phone: channel.id.clone(),
        },
    );
    let media = AriLink::media_channel(call_id);
    let uuid = call_id.to_string();
    ari.client
        .external_media(&ari.config.app, &media, &ari.config.media_address, &uuid)
        .await
        .map_err(|e| e.to_string())?;
    ari.client
        .bridge(&uuid, &[&channel.id, &media])
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%call_id, channel = %channel.id, "Asterisk call bridged to the agent over AudioSocket");
    Ok(())
}

/// Hangs up the media channel and removes the bridge of a call.
async fn release(ari: &AriLink, call_id: CallId) {
    if let Err(e) = ari.client.hang_up(&AriLink::media_channel(call_id)).await {
        tracing::warn!(%call_id, error = %e, "cannot hang up the call's media channel");
    }
    if let Err(e) = ari.client.destroy_bridge(&call_id.to_string()).await {
        tracing::warn!(%call_id, error = %e, "cannot remove the call's bridge");
    }
}

/// The end of an AudioSocket call, for ARI (the listener calls it with the call's end reason, `None`
/// for a call that never ran): a transfer redirects the caller's channel to TRANSFER_TARGET; any other end
/// hangs it up. A call ARI did not join is left alone.
pub async fn finish(state: &AppState, call_id: CallId, reason: Option<&EndReason>) {
    let Some(ari) = &state.ari else { return };
    let Some(leg) = ari.legs().remove(&call_id) else {
        return;
    };
    let line = AsteriskLine {
        ari,
        call_id,
        phone: leg.phone,
    };
    match reason {
        Some(reason) => {
            let target = state.config.telephony.transfer_target.as_deref();
            control::end(line, call_id, reason, target).await;
        }
        None => line.hang_up().await,
    }
}

/// The caller's channel of a call ARI joined to our AudioSocket. Ending it, either way, also removes the
/// call's media channel and bridge.
struct AsteriskLine<'a> {
    ari: &'a AriLink,
    call_id: CallId,
    phone: String,
}

impl CallControl for AsteriskLine<'_> {
    async fn transfer(self, target: &str) -> Result<(), (Self, String)> {
        let endpoint = endpoint_for(&self.ari.config.endpoint, target);
        let call_id = self.call_id;
        tracing::info!(%call_id, %endpoint, "transferring the caller");
        match self.ari.client.redirect(&self.phone, &endpoint).await {
            Ok(()) => {
                release(self.ari, call_id).await;
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                Err((self, why))
            }
        }
    }

    async fn hang_up(self) {
        let call_id = self.call_id;
        if let Err(e) = self.ari.client.hang_up(&self.phone).await {
            metrics::counter!("switchboard_errors_total", "kind" => "ari").increment(1);
            tracing::error!(%call_id, error = %e, "cannot hang up the caller's channel");
        }
        release(self.ari, call_id).await;
    }
}

/// Whether ARI joined call `call_id` (its caller's channel can then be sent key presses).
pub(crate) fn joined(state: &AppState, call_id: CallId) -> bool {
    state
        .ari
        .as_ref()
        .is_some_and(|ari| ari.legs().contains_key(&call_id))
}

/// Sends key presses to the caller's channel of a call ARI joined (to work an IVR on a call placed
/// through Asterisk). The digits are never logged.
pub async fn send_keys(state: &AppState, call_id: CallId, digits: &str) {
    let Some(ari) = &state.ari else { return };
    let Some(phone) = ari.legs().get(&call_id).map(|leg| leg.phone.clone()) else {
        tracing::warn!(%call_id, "key presses for a call ARI no longer carries are not sent");
        return;
    };
    match ari.client.send_dtmf(&phone, digits).await {
        Ok(()) => tracing::info!(%call_id, keys = digits.len(), "key presses sent through ARI"),
        Err(e) => {
            metrics::counter!("switchboard_errors_total", "kind" => "ari").increment(1);
            tracing::error!(%call_id, error = %e, "Asterisk refused the key presses");
        }
    }
}

/// Asterisk, through ARI, as the network that rings numbers (TELEPHONY_PROVIDER=asterisk).
pub(crate) struct Network;

impl PlaceCalls for Network {
    fn place<'a>(
        &'a self,
        state: &'a AppState,
        call_id: CallId,
        to: &'a str,
        _from: Option<&'a str>,
    ) -> Placing<'a> {
        Box::pin(place_call(state, call_id, to))
    }
}

/// Places an outbound call through ARI for a call record just created; it reaches the agent once
/// answered (its channel enters the application with our call id).
async fn place_call(state: &AppState, call_id: CallId, to: &str) -> Result<String, ApiError> {
    let Some(ari) = &state.ari else {
        return Err(ApiError::unavailable(
            "ari_not_configured",
            "placing calls through Asterisk needs ARI_URL, ARI_USER, ARI_PASSWORD and ARI_MEDIA_ADDRESS",
        ));
    };
    let id = call_id.to_string();
    let endpoint = endpoint_for(&ari.config.endpoint, to);
    let placed = ari
        .client
        .originate(&endpoint, &ari.config.app, &id, &id, None)
        .await;
    crate::carrier::placed(
        state,
        call_id,
        "Asterisk",
        placed.map(|channel| channel.id).map_err(|e| e.to_string()),
    )
    .await
}

/// The ARI link of a configuration, when ARI is set up.
pub(crate) fn link(config: &switchboard_core::Config) -> Option<Arc<AriLink>> {
    config
        .telephony
        .ari
        .as_ref()
        .map(|c| Arc::new(AriLink::new(c)))
}
