//! SIP calls: every INVITE the user agent hands over becomes an inbound call record, is admitted like any
//! other call (486 Busy Here when this node is full, 503 when it has no models), answered with our SDP,
//! and carried between RTP and the call session. The session hears signed-linear 8 kHz from the jitter
//! buffer on the call's 20 ms clock; its audio goes out as G.711 in the negotiated law. Key presses come
//! in as RFC 4733 events. The peer's BYE ends the call; the agent's end is our BYE, or a REFER to
//! TRANSFER_TARGET when the caller asked for a person.
//!
//! The node's line to its PBX ([`SipLink`]) also keeps the account registered (SIP_REGISTRAR) and places
//! the calls `POST /api/v1/calls` asks for, through SIP_TRUNK or the registrar.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use switchboard_audio::{InputFormat, JitterBuffer, JitterOptions, SampleRate, g711, pcm};
use switchboard_core::CallId;
use switchboard_core::config::SipConfig;
use switchboard_session::{EndReason, Inbound, Outbound};
use switchboard_telephony::sip::agent::{IncomingInvite, UserAgent, release_ended};
use switchboard_telephony::sip::media::RtpMedia;
use switchboard_telephony::sip::ports::{RtpPorts, RtpSockets};
use switchboard_telephony::sip::register::{Account, RegistrationStatus, keep_registered};
use switchboard_telephony::sip::rtp::{self, RtpSender};
use switchboard_telephony::sip::sdp::{Codec, Negotiated};
use switchboard_telephony::sip::{
    Call, CallEvent, InboundCall, NameAddr, NoMedia, SipUri, StatusCode, uri_host,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::carrier::{self, Carried};
use crate::ws::protocol::encode;
use crate::{ApiError, AppState};

/// Samples of one 20 ms frame at 8 kHz.
const FRAME: usize = 160;
/// How often an RTCP sender report goes out (RFC 3550 suggests about 5 s for one sender).
const SENDER_REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long a peer has to answer our BYE or REFER before we stop waiting.
const SIGNALLING_WAIT: Duration = Duration::from_secs(5);
/// A key press we send lasts 100 ms (800 timestamp units at 8 kHz), updated every 20 ms.
const KEY_PRESS: u16 = 800;
const KEY_PRESS_STEP: u16 = FRAME as u16;
/// The pause after each key press: three 20 ms frames.
const KEY_GAP_FRAMES: usize = 3;
/// After a REFER is accepted, how long the transferee has to take the caller away (its BYE) before we
/// hang up ourselves.
const TRANSFER_WAIT: Duration = Duration::from_secs(10);

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

/// Places an outbound call over SIP for a call record just created (`POST /api/v1/calls` with
/// TELEPHONY_PROVIDER=sip): admits it here first (a full node refuses at once), sends the INVITE
/// through the trunk, and carries the call once answered. Returns the URI rung; an unanswered,
/// busy or refused call ends its record as `no_answer`, `busy` or `failed`.
pub(crate) async fn place_call(
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
    let (media, negotiated) = RtpMedia::new(link.agent.address(), sockets.port(), session_id());
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

/// Records a new inbound call for an INVITE.
async fn record(state: &AppState, invite: &IncomingInvite) -> Result<CallId, String> {
    // A call created through the API is rung with its id as the called user (`sip:{call id}@…`).
    if let Some(id) = invite
        .to
        .as_deref()
        .and_then(|user| user.parse::<CallId>().ok())
        && let Ok(Some(call)) = state.database.call(id).await
        && call.ended_at.is_none()
    {
        return Ok(id);
    }
    let call_id = CallId::new();
    let context = json!({ "source": "sip", "sip_call_id": invite.sip_call_id });
    carrier::record_inbound(
        state,
        call_id,
        invite.from.clone(),
        invite.to.clone(),
        context,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(call_id)
}

/// Admits, answers and carries one call; an error says why it was not carried.
async fn answer(
    invite: IncomingInvite,
    agent: &UserAgent,
    ports: &RtpPorts,
    state: AppState,
) -> Result<(), String> {
    let call_id = record(&state, &invite).await?;
    let admission = match carrier::admit(&state, call_id).await {
        Ok(admission) => admission,
        Err(e) => {
            let code = if e.code == "too_many_calls" {
                StatusCode::BUSY_HERE
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return refuse(invite.call, code, &state, call_id, e.message).await;
        }
    };
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
    let (media, negotiated) = RtpMedia::new(agent.address(), sockets.port(), session_id());
    let established = match ringing.with_media(media).accept().await {
        Ok(call) => call,
        Err(e) => {
            carrier::record_end(&state, call_id, "caller_hung_up").await;
            return Err(format!("call {call_id}: not established: {e}"));
        }
    };
    let call = start_session(&state, admission).await;
    tracing::info!(%call_id, peer = %invite.peer, from = ?invite.from, "SIP call connected");
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

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes)
}

/// The audio of one call: where it goes (latched to where the peer's packets come from, for NAT), the
/// outgoing stream's counters, the jitter buffer of what comes in, and the last key press seen.
struct RtpLeg {
    sockets: RtpSockets,
    negotiated: watch::Receiver<Option<Negotiated>>,
    /// The peer's RTP source once it has sent something (symmetric RTP).
    latched: Option<SocketAddr>,
    sender: RtpSender,
    jitter: JitterBuffer,
    started: Instant,
    /// Timestamp of the last key press handed on, so its repeated end packets count once.
    last_key: Option<u32>,
    /// Key presses being sent: the packets due on each coming 20 ms tick.
    keys_out: VecDeque<Vec<Vec<u8>>>,
    /// The agent's audio that came while key presses went out, sent on the ticks after them in order.
    held_audio: VecDeque<Vec<u8>>,
    bad_packets: u64,
}

impl RtpLeg {
    fn current(&self) -> Option<Negotiated> {
        *self.negotiated.borrow()
    }

    /// Where our RTP goes: the latched source, else the SDP's address; `None` on hold.
    fn destination(&self) -> Option<(SocketAddr, Negotiated)> {
        let negotiated = self.current()?;
        if !negotiated.sending() {
            return None;
        }
        Some((self.latched.or(negotiated.remote)?, negotiated))
    }

    /// Schedules `digits` as RFC 4733 key presses, one packet slot per 20 ms tick; false when the peer
    /// took no telephone events.
    fn queue_keys(&mut self, digits: &str) -> bool {
        let Some(payload_type) = self.current().and_then(|n| n.dtmf_payload_type) else {
            return false;
        };
        for event in digits.chars().filter_map(rtp::key_event) {
            let packets = self
                .sender
                .key_press(payload_type, event, KEY_PRESS, KEY_PRESS_STEP);
            // One update per tick; the end packet's three copies go out together on the last one.
            let (updates, ends) = packets.split_at(packets.len().saturating_sub(3));
            self.keys_out
                .extend(updates.iter().map(|packet| vec![packet.clone()]));
            self.keys_out.push_back(ends.to_vec());
            self.sender.skip((KEY_GAP_FRAMES * FRAME) as u32);
            self.keys_out
                .extend(std::iter::repeat_n(Vec::new(), KEY_GAP_FRAMES));
        }
        true
    }

    /// What goes out on this 20 ms tick: the key-press packets due, else the oldest held agent frame.
    async fn send_due(&mut self) {
        if let Some(slot) = self.keys_out.pop_front() {
            if let Some((to, _)) = self.destination() {
                for packet in slot {
                    let _ = self.sockets.rtp.send_to(&packet, to).await;
                }
            }
        } else if let Some(frame) = self.held_audio.pop_front() {
            self.send_frame(&frame).await;
        }
    }

    /// Takes 20 ms of agent audio: sent now, or held behind key presses (and the frames already held) so
    /// that no word is lost.
    async fn send_audio(&mut self, pcm16: Vec<u8>) {
        if self.keys_out.is_empty() && self.held_audio.is_empty() {
            self.send_frame(&pcm16).await;
        } else {
            self.held_audio.push_back(pcm16);
        }
    }

    /// Sends 20 ms of agent audio (PCM16 little-endian) in the negotiated law.
    async fn send_frame(&mut self, pcm16: &[u8]) {
        let Some((to, negotiated)) = self.destination() else {
            self.sender.skip(FRAME as u32);
            return;
        };
        let mut samples = [0i16; FRAME];
        let Ok(count) = pcm::pcm16le_decode_into(pcm16, &mut samples) else {
            return;
        };
        let mut payload = [0u8; FRAME];
        let encoded = match negotiated.codec {
            Codec::Pcmu => g711::ulaw_encode_into(&samples[..count], &mut payload[..count]),
            Codec::Pcma => g711::alaw_encode_into(&samples[..count], &mut payload[..count]),
        };
        if encoded.is_err() {
            return;
        }
        let packet = self
            .sender
            .packet(negotiated.payload_type, &payload[..count], count as u32);
        let _ = self.sockets.rtp.send_to(&packet, to).await;
    }

    /// Takes one datagram from the RTP socket: audio into the jitter buffer, a key press out.
    fn receive(&mut self, datagram: &[u8], from: SocketAddr) -> Option<char> {
        if rtp::is_rtcp(datagram) {
            return None;
        }
        let packet = match rtp::decode(datagram) {
            Ok(packet) => packet,
            Err(e) => {
                self.bad_packets += 1;
                if self.bad_packets == 1 {
                    tracing::warn!(%from, error = %e, "dropping malformed RTP");
                }
                return None;
            }
        };
        let negotiated = self.current()?;
        // Symmetric RTP: our audio goes where the peer's first packet came from (its address behind a
        // NAT). Later packets from elsewhere are dropped, unless they come from the address the SDP
        // named (a re-INVITE that moved the media).
        match self.latched {
            None => self.latched = Some(from),
            Some(latched) if latched == from => {}
            Some(_) if negotiated.remote.is_some_and(|r| r.ip() == from.ip()) => {
                self.latched = Some(from);
            }
            Some(_) => {
                self.bad_packets += 1;
                return None;
            }
        }
        let header = packet.header;
        if Some(header.payload_type) == negotiated.dtmf_payload_type {
            let event = rtp::decode_event(packet.payload).ok()?;
            if !event.end || self.last_key == Some(header.timestamp) {
                return None;
            }
            self.last_key = Some(header.timestamp);
            return rtp::event_key(event.event);
        }
        if header.payload_type != negotiated.payload_type || packet.payload.len() != FRAME {
            return None;
        }
        let mut samples = [0i16; FRAME];
        let decoded = match negotiated.codec {
            Codec::Pcmu => g711::ulaw_decode_into(packet.payload, &mut samples),
            Codec::Pcma => g711::alaw_decode_into(packet.payload, &mut samples),
        };
        if decoded.is_ok() {
            let _ = self.jitter.push(
                header.sequence,
                header.timestamp,
                self.started.elapsed(),
                &samples,
            );
        }
        None
    }

    /// The next 20 ms for the session, PCM16 little-endian.
    fn next_frame(&mut self) -> Vec<u8> {
        let mut samples = [0i16; FRAME];
        let _ = self.jitter.pop(&mut samples);
        let mut bytes = vec![0u8; FRAME * 2];
        let _ = pcm::pcm16le_encode_into(&samples, &mut bytes);
        bytes
    }

    /// An RTCP sender report to the peer's RTCP port (the port above its RTP port).
    async fn send_report(&self) {
        let Some((to, _)) = self.destination() else {
            return;
        };
        if let Some(report) = self.sender.sender_report(SystemTime::now(), 8_000) {
            let rtcp = SocketAddr::new(to.ip(), to.port().wrapping_add(1));
            let _ = self.sockets.rtcp.send_to(&report, rtcp).await;
        }
    }
}

/// Carries an established call until either side ends it.
async fn carry(
    mut call: Carried,
    mut established: Call<RtpMedia>,
    sockets: RtpSockets,
    negotiated: watch::Receiver<Option<Negotiated>>,
    pbx: String,
    state: &AppState,
) {
    let mut leg = RtpLeg {
        sockets,
        negotiated,
        latched: None,
        sender: RtpSender::new(random_u32(), random_u32() as u16, random_u32()),
        jitter: JitterBuffer::new(SampleRate::Hz8000, JitterOptions::default()),
        started: Instant::now(),
        last_key: None,
        keys_out: VecDeque::new(),
        held_audio: VecDeque::new(),
        bad_packets: 0,
    };
    // Key presses from the API, when the peer takes RFC 4733 telephone events.
    let mut key_presses = leg
        .current()
        .and_then(|n| n.dtmf_payload_type)
        .map(|_| call.accept_key_presses());
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reports = tokio::time::interval(SENDER_REPORT_EVERY);
    let mut datagram = [0u8; 1_500];
    let mut rtcp = [0u8; 1_500];
    let ended = loop {
        tokio::select! {
            event = established.run() => match event {
                Ok(CallEvent::Internal(event)) => {
                    if let Err(e) = established.handle_internal_event(event).await {
                        tracing::warn!(error = %e, "SIP call event failed");
                    }
                }
                Ok(CallEvent::Media(never)) => match never {},
                Ok(CallEvent::Terminated) => break Ended::ByPeer,
                Err(e) => {
                    tracing::warn!(error = %e, "the SIP call failed");
                    break Ended::Failed;
                }
            },
            out = call.outbound.recv() => {
                let Some(out) = out else { break Ended::Failed };
                match out {
                    Outbound::Audio(pcm16) => leg.send_audio(pcm16).await,
                    // The caller spoke over the agent: what is held back is not played either.
                    Outbound::Clear => {
                        leg.held_audio.clear();
                        call.publish(&encode(&Outbound::Clear));
                    }
                    Outbound::Hangup { reason } => {
                        call.publish(&encode(&Outbound::Hangup { reason: reason.clone() }));
                        break Ended::ByAgent(reason);
                    }
                    other => call.publish(&encode(&other)),
                }
            }
            received = leg.sockets.rtp.recv_from(&mut datagram) => {
                if let Ok((n, from)) = received
                    && let Some(key) = leg.receive(&datagram[..n], from)
                {
                    call.forward(Inbound::Dtmf(key)).await;
                }
            }
            // RTCP from the peer is read and dropped: we send reports, and have no use for theirs yet.
            _ = leg.sockets.rtcp.recv_from(&mut rtcp) => {}
            Some(digits) = async {
                match key_presses.as_mut() {
                    Some(presses) => presses.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if leg.queue_keys(&digits) {
                    tracing::info!(keys = digits.len(), "sending key presses");
                } else {
                    tracing::warn!("the peer no longer takes telephone events; key presses not sent");
                }
            }
            _ = clock.tick() => {
                leg.send_due().await;
                let frame = leg.next_frame();
                call.forward(Inbound::Audio(frame)).await;
            }
            _ = reports.tick() => leg.send_report().await,
        }
    };
    let stats = leg.jitter.stats();
    tracing::info!(
        received = stats.received,
        late = stats.late,
        duplicates = stats.duplicates,
        sent = leg.sender.packets,
        malformed = leg.bad_packets,
        "SIP call audio"
    );
    match ended {
        Ended::ByPeer => {
            call.forward(Inbound::Hangup).await;
            release_ended(established);
        }
        Ended::Failed => {
            call.forward(Inbound::Hangup).await;
            hang_up(established, false, &pbx, state).await;
        }
        Ended::ByAgent(reason) => {
            let transfer = matches!(reason, EndReason::Transferred(_));
            hang_up(established, transfer, &pbx, state).await;
        }
    }
    call.finish();
}

/// How a carried call ended.
enum Ended {
    /// The peer's BYE (answered by ezk).
    ByPeer,
    /// The session hung up, for this reason.
    ByAgent(EndReason),
    /// The dialog or the session failed.
    Failed,
}

/// Ends the call from our side: a REFER to TRANSFER_TARGET for a transfer, then (or otherwise) BYE.
async fn hang_up(mut established: Call<RtpMedia>, transfer: bool, pbx: &str, state: &AppState) {
    if transfer
        && let Some(target) = state.config.telephony.transfer_target.as_deref()
        && let Some(uri) = transfer_uri(target, pbx)
    {
        match tokio::time::timeout(SIGNALLING_WAIT, established.refer(NameAddr::uri(uri))).await {
            Ok(Ok(_progress)) => {
                tracing::info!(%target, "the peer accepted the transfer");
                // The transferee takes the caller away and says BYE; if it does not, we do.
                let gone = tokio::time::timeout(TRANSFER_WAIT, async {
                    loop {
                        match established.run().await {
                            Ok(CallEvent::Internal(event)) => {
                                let _ = established.handle_internal_event(event).await;
                            }
                            Ok(CallEvent::Media(never)) => match never {},
                            Ok(CallEvent::Terminated) | Err(_) => return,
                        }
                    }
                })
                .await;
                if gone.is_ok() {
                    return;
                }
            }
            Ok(Err(e)) => tracing::warn!(%target, error = %e, "the peer refused the transfer"),
            Err(_) => tracing::warn!(%target, "no answer to the REFER"),
        }
    }
    match tokio::time::timeout(SIGNALLING_WAIT, established.terminate()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "BYE failed"),
        Err(_) => tracing::warn!("no answer to our BYE"),
    }
}

/// TRANSFER_TARGET as a SIP URI: a `sip:` URI as it is; a number at the PBX (`host[:port]`) the call
/// came from or went through, which knows how to reach it.
fn transfer_uri(target: &str, pbx: &str) -> Option<SipUri> {
    if target.starts_with("sip:") {
        target.parse().ok()
    } else {
        format!("sip:{target}@{pbx}").parse().ok()
    }
}
