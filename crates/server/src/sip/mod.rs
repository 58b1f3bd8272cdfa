//! SIP calls: every INVITE the user agent lets in (see `switchboard_telephony::sip::inbound`) is admitted
//! like any other call (486 Busy Here when this node is full, 503 when it has no models) before its
//! inbound call record is written, answered with our SDP, and carried between RTP and the call session
//! ([`carry`]). The session hears signed-linear 8 kHz from the jitter
//! buffer on the call's 20 ms clock; its audio goes out as G.711 in the negotiated law. Key presses come
//! in as RFC 4733 events. The peer's BYE ends the call; the agent's end is our BYE, or a REFER to
//! TRANSFER_TARGET when the caller asked for a person.
//!
//! The node's line to its PBX ([`SipLink`]) also keeps the account registered (SIP_REGISTRAR) and places
//! the calls `POST /api/v1/calls` asks for, through SIP_TRUNK or the registrar.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_audio::{InputFormat, SampleRate};
use switchboard_core::CallId;
use switchboard_core::config::SipConfig;
use switchboard_telephony::sip::agent::{IncomingInvite, UserAgent};
use switchboard_telephony::sip::media::RtpMedia;
use switchboard_telephony::sip::ports::RtpPorts;
use switchboard_telephony::sip::register::{Account, RegistrationStatus, keep_registered};
use switchboard_telephony::sip::{InboundCall, NoMedia, StatusCode, uri_host};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::carrier::{self, Carried};
use crate::control::{PlaceCalls, Placing};
use crate::{ApiError, AppState};

mod carry;

use carry::carry;

/// This node's SIP line: the user agent and its RTP ports, the account it registers and places calls
/// with, and where those calls go.
#[derive(Debug)]
pub struct SipLink {
    agent: UserAgent,
    ports: Arc<RtpPorts>,
    /// The account at the registrar (or trunk) whose credentials answer challenges.
    account: Option<Account>,
    /// Where API calls are sent (SIP_TRUNK, else SIP_REGISTRAR).
    route: Option<String>,
    ring: Duration,
    registration: Option<watch::Receiver<RegistrationStatus>>,
    /// The task keeping the registration, until it has removed the binding.
    registration_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SipLink {
    /// The line for `agent` as `config` describes it; with SIP_REGISTRAR, registration starts now and
    /// lasts until `stop` (when the binding is removed: see [`SipLink::unregistered`]).
    pub fn start(
        agent: UserAgent,
        ports: Arc<RtpPorts>,
        config: &SipConfig,
        stop: CancellationToken,
    ) -> Result<Self, String> {
        let account_uri = config
            .registrar
            .as_deref()
            .or(config.password.as_ref().and(config.trunk.as_deref()));
        let account = match account_uri {
            Some(uri) => Some(Account {
                registrar: uri
                    .parse()
                    .map_err(|_| format!("{uri} is not a SIP URI ezk can use"))?,
                username: config.username.clone(),
                password: config.password.as_ref().map(|p| p.expose().to_owned()),
                expires: config.register_expires,
            }),
            None => None,
        };
        let (registration, registration_task) = match (&config.registrar, &account) {
            (Some(_), Some(account)) => {
                let kept =
                    keep_registered(
                        &agent,
                        account.clone(),
                        async move { stop.cancelled().await },
                    );
                spawn_registration_metrics(kept.status.clone());
                (Some(kept.status), Some(kept.task))
            }
            _ => (None, None),
        };
        Ok(Self {
            agent,
            ports,
            account,
            route: config.outbound_route().map(str::to_owned),
            ring: config.ring_timeout,
            registration,
            registration_task: std::sync::Mutex::new(registration_task),
        })
    }

    /// Returns once the registration (if any) has ended after `stop`: the binding removed, or the
    /// registrar given its chance to answer.
    pub async fn unregistered(&self) {
        let task = self
            .registration_task
            .lock()
            .ok()
            .and_then(|mut task| task.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// The user agent.
    pub fn agent(&self) -> &UserAgent {
        &self.agent
    }

    /// The registration's latest state; `None` without SIP_REGISTRAR.
    pub fn registration(&self) -> Option<RegistrationStatus> {
        self.registration.as_ref().map(|r| r.borrow().clone())
    }

    /// The URI that rings `number` through the route: the number as the user part at its host.
    fn target_for(&self, number: &str) -> Option<String> {
        let route = self.route.as_deref()?.strip_prefix("sip:")?;
        let host = route.rsplit_once('@').map_or(route, |(_, host)| host);
        let number: String = number
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        Some(format!("sip:{number}@{host}"))
    }
}

/// Follows a registration into metrics: `switchboard_sip_registered` (1 or 0) and each failure as
/// `switchboard_errors_total{kind="sip_register"}`.
fn spawn_registration_metrics(mut status: watch::Receiver<RegistrationStatus>) {
    tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let now = status.borrow_and_update().clone();
            match now {
                RegistrationStatus::Registered { .. } => {
                    metrics::gauge!("switchboard_sip_registered").set(1.0);
                }
                RegistrationStatus::Failed { .. } => {
                    metrics::gauge!("switchboard_sip_registered").set(0.0);
                    metrics::counter!("switchboard_errors_total", "kind" => "sip_register")
                        .increment(1);
                }
                RegistrationStatus::Registering => {}
            }
        }
    });
}

/// The SIP trunk or registrar as the network that rings numbers (TELEPHONY_PROVIDER=sip).
pub(crate) struct Network;

impl PlaceCalls for Network {
    fn place<'a>(
        &'a self,
        state: &'a AppState,
        call_id: CallId,
        to: &'a str,
        from: Option<&'a str>,
    ) -> Placing<'a> {
        Box::pin(place_call(state, call_id, to, from))
    }
}

/// Places an outbound call over SIP for a call record just created (`POST /api/v1/calls` with
/// TELEPHONY_PROVIDER=sip): admits it here first (a full node refuses at once), sends the INVITE
/// through the trunk, and carries the call once answered. Returns the URI rung; an unanswered,
/// busy or refused call ends its record as `no_answer`, `busy` or `failed`.
async fn place_call(
    state: &AppState,
    call_id: CallId,
    to: &str,
    from: Option<&str>,
) -> Result<String, ApiError> {
    let not_configured = || {
        ApiError::unavailable(
            "sip_not_configured",
            "placing calls over SIP needs SIP_TRUNK or SIP_REGISTRAR (the PBX that rings the number)",
        )
    };
    let link = state.sip.clone().ok_or_else(not_configured)?;
    let target = link.target_for(to).ok_or_else(not_configured)?;
    let admission = match carrier::admit(state, call_id).await {
        Ok(admission) => admission,
        Err(e) => {
            carrier::record_end(state, call_id, "no_capacity").await;
            return Err(e);
        }
    };
    let sockets = match link.ports.bind().await {
        Ok(sockets) => sockets,
        Err(e) => {
            carrier::record_end(state, call_id, "no_capacity").await;
            return Err(ApiError::unavailable(
                "no_rtp_ports",
                format!("no RTP ports free for the call: {e}; widen RTP_PORT_MIN..RTP_PORT_MAX"),
            ));
        }
    };
    state.database.set_call_status(call_id, "queued").await?;
    let caller_id = from
        .map(|f| {
            f.chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect::<String>()
        })
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| {
            link.account
                .as_ref()
                .map_or("switchboard".to_owned(), |a| a.username.clone())
        });
    let (media, negotiated) = RtpMedia::new(
        link.agent.address(),
        sockets.port(),
        session_id(),
        link.agent.srtp(),
    );
    tracing::info!(%call_id, %target, "placing a SIP call");
    let state = state.clone();
    let rung = target.clone();
    tokio::spawn(async move {
        let answered = link
            .agent
            .call(&target, &caller_id, link.account.as_ref(), media, link.ring)
            .await;
        let established = match answered {
            Ok(established) => established,
            Err(failed) => {
                let reason = match failed.status() {
                    Some(486 | 600 | 603) => "busy",
                    Some(408 | 480 | 487) => "no_answer",
                    _ => "failed",
                };
                tracing::warn!(%call_id, error = %failed, "the SIP call was not answered");
                carrier::record_end(&state, call_id, reason).await;
                drop(admission);
                return;
            }
        };
        // A transfer to a number goes to the PBX we rang through.
        let pbx = target
            .rsplit_once('@')
            .map_or("", |(_, host)| host)
            .to_owned();
        let call = start_session(&state, admission).await;
        tracing::info!(%call_id, %target, "SIP call answered");
        carry(call, established, sockets, negotiated, pbx, &state).await;
    });
    Ok(rung)
}

/// Answers SIP calls from `invites` until `stop`; each call runs on its own task.
pub async fn serve_sip(
    link: Arc<SipLink>,
    mut invites: mpsc::Receiver<IncomingInvite>,
    state: AppState,
    stop: CancellationToken,
) {
    loop {
        let invite = tokio::select! {
            () = stop.cancelled() => return,
            invite = invites.recv() => match invite {
                Some(invite) => invite,
                None => return,
            },
        };
        let (link, state) = (link.clone(), state.clone());
        tokio::spawn(async move {
            let peer = invite.peer;
            if let Err(reason) = answer(invite, &link.agent, &link.ports, state).await {
                metrics::counter!("switchboard_errors_total", "kind" => "sip").increment(1);
                tracing::warn!(%peer, %reason, "a SIP call was not carried");
            }
        });
    }
}

/// The address SIP and SDP advertise: SIP_ADDRESS, else SERVER_HOST when it names one address, else
/// the address of the default route (found without sending anything).
pub fn advertised_address(configured: Option<IpAddr>, server_host: &str) -> IpAddr {
    if let Some(address) = configured {
        return address;
    }
    if let Ok(host) = server_host.parse::<IpAddr>()
        && !host.is_unspecified()
    {
        return host;
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.1:9")?;
            socket.local_addr()
        })
        .map(|local| local.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Admits the call an INVITE brings: a call the API created and rang (its id is the called user,
/// `sip:{call id}@…`), or a new inbound call, whose record is written only once it has a slot here.
async fn admit_invite(
    state: &AppState,
    invite: &IncomingInvite,
) -> Result<carrier::Admission, (ApiError, Option<CallId>)> {
    if let Some(id) = invite
        .to
        .as_deref()
        .and_then(|user| user.parse::<CallId>().ok())
        && let Ok(Some(call)) = state.database.call(id).await
        && call.ended_at.is_none()
    {
        return carrier::admit(state, id).await.map_err(|e| (e, Some(id)));
    }
    let context = json!({
        "source": "sip",
        "sip_call_id": invite.sip_call_id,
        "authenticated": invite.authenticated,
    });
    let call = carrier::NewInbound {
        from: invite.from.clone(),
        to: invite.to.clone(),
        context,
    };
    carrier::admit_new(state, CallId::new(), call)
        .await
        .map_err(|e| (e, None))
}

/// Admits, answers and carries one call; an error says why it was not carried.
async fn answer(
    invite: IncomingInvite,
    agent: &UserAgent,
    ports: &RtpPorts,
    state: AppState,
) -> Result<(), String> {
    let admission = match admit_invite(&state, &invite).await {
        Ok(admission) => admission,
        Err((e, existing)) => {
            let code = if e.code == "too_many_calls" {
                StatusCode::BUSY_HERE
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            if let Err(declined) = invite.call.decline(code, None).await {
                tracing::debug!(error = %declined, "cannot decline the INVITE");
            }
            // A call the API created keeps its record, ended; a new one was never written.
            if let Some(call_id) = existing {
                carrier::record_end(&state, call_id, "no_capacity").await;
            }
            metrics::counter!("switchboard_calls_refused_total", "reason" => e.code).increment(1);
            return Err(e.message);
        }
    };
    let call_id = admission.call_id();
    let sockets = match ports.bind().await {
        Ok(sockets) => sockets,
        Err(e) => {
            let why = e.to_string();
            return refuse(
                invite.call,
                StatusCode::SERVICE_UNAVAILABLE,
                &state,
                call_id,
                why,
            )
            .await;
        }
    };
    let mut ringing = invite.call;
    let answer_after = state
        .config
        .telephony
        .sip
        .as_ref()
        .map_or(Duration::ZERO, |sip| sip.answer_after);
    if !answer_after.is_zero() {
        if let Err(e) = ringing.respond_provisional(StatusCode::RINGING).await {
            tracing::debug!(error = %e, "cannot send 180 Ringing");
        }
        let cancelled = tokio::select! {
            () = ringing.cancelled() => true,
            () = tokio::time::sleep(answer_after) => false,
        };
        if cancelled {
            tracing::info!(%call_id, "the caller hung up while the call rang");
            carrier::record_end(&state, call_id, "caller_hung_up").await;
            return Ok(());
        }
    }
    let (media, negotiated) =
        RtpMedia::new(agent.address(), sockets.port(), session_id(), agent.srtp());
    let established = match ringing.with_media(media).accept().await {
        Ok(call) => call,
        Err(e) => {
            carrier::record_end(&state, call_id, "caller_hung_up").await;
            return Err(format!("call {call_id}: not established: {e}"));
        }
    };
    let call = start_session(&state, admission).await;
    tracing::info!(%call_id, peer = %invite.peer.ip(), "SIP call connected");
    let pbx = uri_host(invite.peer.ip());
    carry(call, established, sockets, negotiated, pbx, &state).await;
    Ok(())
}

/// The session of an answered SIP call: it hears signed-linear 8 kHz (the jitter buffer's output); SIP
/// peers echo no marks, so the clock says what was played.
async fn start_session(state: &AppState, admission: carrier::Admission) -> Carried {
    Carried::start(
        state,
        admission,
        InputFormat::Pcm16(SampleRate::Hz8000),
        false,
    )
    .await
}

/// Declines a call this node cannot take, and closes its record.
async fn refuse(
    call: InboundCall<NoMedia>,
    code: StatusCode,
    state: &AppState,
    call_id: CallId,
    why: String,
) -> Result<(), String> {
    if let Err(e) = call.decline(code, None).await {
        tracing::debug!(error = %e, "cannot decline the INVITE");
    }
    carrier::record_end(state, call_id, "no_capacity").await;
    Err(format!("call {call_id}: {why}"))
}

/// A random SDP session id (RFC 4566 suggests an NTP timestamp; any unique number does).
fn session_id() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) >> 2
}
