//! Twilio: the voice and status webhooks and the Media Streams socket.
//!
//! - `POST /twilio/voice`: Twilio asks what to do with a call (an inbound call to our number, or one we
//!   placed once answered). We answer with TwiML connecting a bidirectional Media Stream to
//!   `wss://PUBLIC_URL/twilio/media`, carrying our call id and a token only that answer holds.
//! - `POST /twilio/status`: Twilio reports a call's progress; the call record follows it.
//! - `GET /twilio/media`: the Media Stream. Twilio's JSON messages are translated to the call session's
//!   messages and back; the carrier does the rest, as for `/ws/audio`.
//!
//! Every webhook must carry a valid `X-Twilio-Signature` (HMAC-SHA1 with TWILIO_AUTH_TOKEN over
//! PUBLIC_URL + path + query and the sorted form parameters); anything else is answered 403.

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use switchboard_audio::InputFormat;
use switchboard_core::CallId;
use switchboard_session::{Inbound, Outbound};
use switchboard_telephony::twilio::rest::{self, PlaceCall};
use switchboard_telephony::twilio::signature::{
    SIGNATURE_HEADER, stream_token, verify, verify_stream_token,
};
use switchboard_telephony::twilio::stream::{self, Event, Order, Sequence};
use switchboard_telephony::twilio::twiml::{self, CALL_ID_PARAMETER};

use crate::carrier::{self, Carried};
use crate::control::{self, CallControl, PlaceCalls, Placing};
use crate::ws::close;
use crate::{ApiError, AppState};

/// The `<Parameter>` carrying the stream's token.
const TOKEN_PARAMETER: &str = "stream_token";
/// How long Twilio has, once the socket is open, to send `start`.
const START_WAIT: Duration = Duration::from_secs(10);
/// Largest Media Streams message: the largest media payload, base64, plus its envelope.
const MAX_MESSAGE_BYTES: usize = stream::MAX_MEDIA_BYTES * 4 / 3 + 4_096;
/// What a caller hears when no agent can take the call.
const BUSY_MESSAGE: &str =
    "Sorry, all our agents are busy right now. Please call again in a few minutes.";

/// The Twilio routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/twilio/voice", post(voice))
        .route("/twilio/status", post(status))
        .route("/twilio/media", get(media))
}

/// Twilio's credentials and our public address, or why Twilio cannot be served.
struct Account<'a> {
    auth_token: &'a str,
    public_url: &'a str,
}

fn account(state: &AppState) -> Result<Account<'_>, ApiError> {
    let twilio = &state.config.telephony.twilio;
    match (&twilio.auth_token, &state.config.server.public_url) {
        (Some(token), Some(url)) => Ok(Account {
            auth_token: token.expose(),
            public_url: url.as_str().trim_end_matches('/'),
        }),
        _ => Err(ApiError::unavailable(
            "twilio_not_configured",
            "Twilio webhooks need TWILIO_AUTH_TOKEN and PUBLIC_URL set on this server",
        )),
    }
}

/// A webhook's form parameters, once its signature is checked against the URL Twilio requested.
fn verified_params(
    account: &Account<'_>,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", account.public_url);
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !verify(account.auth_token, &url, &params, signature) {
        metrics::counter!("switchboard_errors_total", "kind" => "twilio_signature").increment(1);
        tracing::warn!(%url, "a Twilio webhook with a missing or wrong signature was refused");
        return Err(ApiError::forbidden(
            "X-Twilio-Signature does not match this request (check TWILIO_AUTH_TOKEN and that PUBLIC_URL is the address Twilio calls)",
        ));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Our call id from the webhook's query string (`?call_id=`), on calls we placed.
fn query_call_id(uri: &axum::http::Uri) -> Result<Option<CallId>, ApiError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == CALL_ID_PARAMETER)
        .map(|(_, v)| {
            v.parse()
                .map_err(|e: switchboard_core::ids::InvalidCallId| {
                    ApiError::bad_request(e.to_string())
                })
        })
        .transpose()
}

fn twiml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// A phone number from Twilio, kept only if it looks like one (Twilio sends `anonymous`, SIP URIs, ...).
fn phone_number(value: Option<&str>) -> Option<String> {
    value
        .filter(|n| {
            n.len() <= 32 && n.starts_with('+') && n[1..].chars().all(|c| c.is_ascii_digit())
        })
        .map(str::to_owned)
}

/// `POST /twilio/voice`: the TwiML for a call Twilio is carrying.
async fn voice(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = account(&state)?;
    let params = verified_params(&account, &uri, &headers, &body)?;
    let call_sid = param(&params, "CallSid").unwrap_or_default().to_owned();
    let call_id = match query_call_id(&uri)? {
        Some(id) => {
            let call = state
                .database
                .call(id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no call {id}")))?;
            if call.ended_at.is_some() {
                return Ok(twiml_response(twiml::hang_up()));
            }
            id
        }
        None => {
            let id = CallId::new();
            let from = phone_number(param(&params, "From"));
            let to = phone_number(param(&params, "To"));
            let context = json!({ "source": "twilio", "call_sid": call_sid });
            carrier::record_inbound(&state, id, from, to, context).await?;
            id
        }
    };
    if state.engines.get().is_none() || state.calls.is_full() {
        tracing::warn!(%call_id, %call_sid, "no agent free for a Twilio call; the caller is told to call again");
        state
            .database
            .end_call(call_id, SystemTime::now(), "no_capacity")
            .await?;
        return Ok(twiml_response(twiml::say_and_hang_up(BUSY_MESSAGE)));
    }
    let stream_url = format!(
        "{}/twilio/media",
        account.public_url.replacen("http", "ws", 1)
    );
    let id = call_id.to_string();
    let token = stream_token(account.auth_token, &id);
    tracing::info!(%call_id, %call_sid, "Twilio call answered with a media stream");
    Ok(twiml_response(twiml::connect_stream(
        &stream_url,
        &[(CALL_ID_PARAMETER, &id), (TOKEN_PARAMETER, &token)],
    )))
}

/// `POST /twilio/status`: a call's progress. A call still being placed follows Twilio's status; one that
/// never connected (busy, no answer, failed, canceled) is ended with that reason. A connected call ends
/// through its Media Stream, which records how.
async fn status(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let account = account(&state)?;
    let params = verified_params(&account, &uri, &headers, &body)?;
    let Some(call_id) = query_call_id(&uri)? else {
        tracing::debug!("a Twilio status callback without our call id is ignored");
        return Ok(StatusCode::NO_CONTENT);
    };
    let Some(call) = state.database.call(call_id).await? else {
        return Err(ApiError::not_found(format!("no call {call_id}")));
    };
    let twilio_status = param(&params, "CallStatus").unwrap_or_default();
    if call.ended_at.is_some() || state.calls.get(call_id).is_some() {
        return Ok(StatusCode::NO_CONTENT);
    }
    match twilio_status {
        "queued" | "initiated" | "ringing" => {
            let status = if twilio_status == "initiated" {
                "queued"
            } else {
                twilio_status
            };
            state.database.set_call_status(call_id, status).await?;
        }
        "busy" | "no-answer" | "failed" | "canceled" | "completed" => {
            let reason = twilio_status.replace('-', "_");
            state
                .database
                .end_call(call_id, SystemTime::now(), &reason)
                .await?;
            tracing::info!(%call_id, status = twilio_status, "Twilio ended a call before it connected");
        }
        // `in-progress`: answered; the Media Stream marks it active when it connects.
        _ => {}
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Twilio as the network that rings numbers (TELEPHONY_PROVIDER=twilio).
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

/// Places an outbound call through Twilio for a call record just created (`POST /api/v1/calls` with
/// TELEPHONY_PROVIDER=twilio), from TWILIO_PHONE_NUMBER; returns Twilio's call SID.
async fn place_call(state: &AppState, call_id: CallId, to: &str) -> Result<String, ApiError> {
    let account = account(state)?;
    let (Some(client), Some(from)) = (&state.twilio, &state.config.telephony.twilio.phone_number)
    else {
        return Err(ApiError::unavailable(
            "twilio_not_configured",
            "placing Twilio calls needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_PHONE_NUMBER",
        ));
    };
    let answer_url = format!(
        "{}/twilio/voice?{CALL_ID_PARAMETER}={call_id}",
        account.public_url
    );
    let status_url = format!(
        "{}/twilio/status?{CALL_ID_PARAMETER}={call_id}",
        account.public_url
    );
    let placed = client
        .place(&PlaceCall {
            to,
            from,
            answer_url: &answer_url,
            status_url: &status_url,
        })
        .await;
    carrier::placed(
        state,
        call_id,
        "Twilio",
        placed.map(|call| call.sid).map_err(|e| e.to_string()),
    )
    .await
}

/// `GET /twilio/media`: the upgrade. Twilio sends no credentials we could check here; the stream proves
/// itself in `start` with the token of our TwiML answer.
async fn media(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    account(&state)?;
    let upgrade = upgrade.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| carry(socket, state)))
}

/// The stream's identity from its `start`.
struct Started {
    call_id: CallId,
    stream_sid: String,
    call_sid: String,
}

/// Reads up to `start` and checks it names a call of ours with the right token and µ-law 8 kHz audio.
async fn await_start(socket: &mut WebSocket, auth_token: &str) -> Result<Started, String> {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.recv())
            .await
            .map_err(|_| "no start message within 10 s".to_owned())?;
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                return Err("the stream closed before its start".into());
            }
            Some(Ok(_)) => continue,
        };
        let start = match stream::decode(text.as_str()) {
            Ok(stream::Inbound {
                event: Event::Start(start),
                ..
            }) => start,
            Ok(stream::Inbound {
                event: Event::Connected { .. },
                ..
            }) => continue,
            Ok(other) => return Err(format!("expected start, got {:?}", other.event)),
            Err(e) => return Err(e.to_string()),
        };
        let call_id = start
            .custom_parameters
            .get(CALL_ID_PARAMETER)
            .ok_or("the start has no call_id parameter")?;
        let token = start
            .custom_parameters
            .get(TOKEN_PARAMETER)
            .map_or("", String::as_str);
        if !verify_stream_token(auth_token, call_id, token) {
            return Err("the stream's token does not match its call".into());
        }
        if !start.media_format.is_mulaw_8k_mono() {
            return Err(format!(
                "media format {} at {} Hz, {} channel(s): expected audio/x-mulaw, 8000 Hz, mono",
                start.media_format.encoding,
                start.media_format.sample_rate,
                start.media_format.channels
            ));
        }
        return Ok(Started {
            call_id: call_id
                .parse()
                .map_err(|e: switchboard_core::ids::InvalidCallId| e.to_string())?,
            stream_sid: start.stream_sid,
            call_sid: start.call_sid,
        });
    }
}

/// Carries one Media Stream.
async fn carry(mut socket: WebSocket, state: AppState) {
    let Ok(account) = account(&state) else {
        return;
    };
    let started = match await_start(&mut socket, account.auth_token).await {
        Ok(started) => started,
        Err(reason) => {
            metrics::counter!("switchboard_errors_total", "kind" => "twilio_stream").increment(1);
            tracing::warn!(%reason, "a Twilio media stream was refused");
            close(&mut socket, 1008, &reason).await;
            return;
        }
    };
    let Started {
        call_id,
        stream_sid,
        call_sid,
    } = started;
    let admission = match carrier::admit(&state, call_id).await {
        Ok(admission) => admission,
        Err(e) => {
            tracing::warn!(%call_id, %call_sid, error = %e.message, "a Twilio media stream's call cannot connect");
            close(&mut socket, 1011, &e.message).await;
            return;
        }
    };
    let mut call = Carried::start(&state, admission, InputFormat::Ulaw8k, true).await;
    tracing::info!(%call_id, %call_sid, %stream_sid, "Twilio media stream connected");
    let mut sequence = Sequence::default();
    loop {
        tokio::select! {
            out = call.outbound.recv() => {
                let Some(out) = out else { break };
                let text = match &out {
                    Outbound::Audio(mulaw) => stream::media(&stream_sid, mulaw),
                    Outbound::Mark(name) => stream::mark(&stream_sid, name),
                    Outbound::Clear => stream::clear(&stream_sid),
                    Outbound::Transcript(_)
                    | Outbound::Latency(_)
                    | Outbound::Echo(_)
                    | Outbound::Hangup { .. } => String::new(),
                };
                if !matches!(out, Outbound::Audio(_)) {
                    call.publish(&out);
                }
                if let Outbound::Hangup { reason } = &out {
                    let line = TwilioLine { state: &state, call_id, call_sid: &call_sid };
                    control::end(line, call_id, reason, state.config.telephony.transfer_target.as_deref()).await;
                    call.finish();
                    return close(&mut socket, 1000, "call ended").await;
                }
                if !text.is_empty() && !crate::carrier::sent(call_id, socket.send(Message::Text(text.into()))).await {
                    break;
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => match stream::decode(text.as_str()) {
                    Ok(inbound) => {
                        if let Some(number) = inbound.sequence_number {
                            match sequence.observe(number) {
                                Order::InOrder => {}
                                Order::Gap { missing } => tracing::warn!(%call_id, missing, "Twilio stream messages missing"),
                                Order::Stale => tracing::warn!(%call_id, number, "a stale or repeated Twilio stream message"),
                            }
                        }
                        match inbound.event {
                            Event::Media(media) => {
                                // A bidirectional stream carries the caller's track only.
                                if media.track.as_deref().is_none_or(|t| t == "inbound") {
                                    call.forward(Inbound::Audio(media.payload)).await;
                                }
                            }
                            Event::Dtmf { digit } => call.forward(Inbound::Dtmf(digit)).await,
                            Event::Mark { name } => call.forward(Inbound::Mark(name)).await,
                            Event::Stop => {
                                call.forward(Inbound::Hangup).await;
                                break;
                            }
                            Event::Connected { .. } | Event::Start(_) => {
                                tracing::warn!(%call_id, "a second connected or start on a running stream is ignored");
                            }
                        }
                    }
                    Err(e) => {
                        metrics::counter!("switchboard_errors_total", "kind" => "bad_message").increment(1);
                        tracing::warn!(%call_id, error = %e, "a malformed Twilio stream message was skipped");
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    call.finish();
}

/// A Twilio call's line: its REST API ends it. A transfer redirects the live call to a `<Dial>` of
/// TRANSFER_TARGET; a hang-up updates the call to `completed`. Without REST credentials, closing the
/// stream ends the call (our TwiML has nothing after `<Connect>`), and no transfer can be made.
struct TwilioLine<'a> {
    state: &'a AppState,
    call_id: CallId,
    call_sid: &'a str,
}

impl CallControl for TwilioLine<'_> {
    async fn transfer(self, target: &str) -> Result<(), (Self, String)> {
        let Some(client) = &self.state.twilio else {
            return Err((self, "Twilio's REST credentials are not set".into()));
        };
        let caller_id = self.state.config.telephony.twilio.phone_number.as_deref();
        match client
            .redirect(self.call_sid, &twiml::dial(target, caller_id))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let why = e.to_string();
                Err((self, why))
            }
        }
    }

    async fn hang_up(self) {
        let Some(client) = &self.state.twilio else {
            return;
        };
        if let Err(e) = client.hang_up(self.call_sid).await {
            metrics::counter!("switchboard_errors_total", "kind" => "twilio_rest").increment(1);
            let (call_id, call_sid) = (self.call_id, self.call_sid);
            tracing::warn!(%call_id, %call_sid, error = %e, "cannot complete the call through Twilio's API; closing its stream ends it");
        }
    }
}

/// Twilio's REST client, when the account is configured.
pub(crate) fn rest_client(config: &switchboard_core::Config) -> Option<rest::Client> {
    let twilio = &config.telephony.twilio;
    Some(rest::Client::new(
        twilio
            .api_url
            .as_ref()
            .map_or("https://api.twilio.com", |u| u.as_str()),
        twilio.account_sid.as_deref()?,
        twilio.auth_token.as_ref()?.expose(),
    ))
}
