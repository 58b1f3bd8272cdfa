//! The SIP user agent: ezk's transport, transaction and dialog layers on UDP and TCP (and TLS when a
//! certificate is given), with one layer of
//! ours that answers OPTIONS (a PBX's keep-alive) and hands every new INVITE the [`InboundPolicy`] lets
//! in to the server as an [`IncomingInvite`]; the rest are refused here (403, or 401 with a digest
//! challenge) and never reach the server. What becomes of a call (accepted with our media, declined 486
//! or 503) is the server's decision; ezk keeps the transactions right (retransmissions, ACK, CANCEL, BYE).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytesstr::BytesStr;
use ezk_sip_auth::{DigestAuthenticator, DigestCredentials};
use ezk_sip_core::{Endpoint, EndpointBuilder, IncomingRequest, Layer, MayTake};
use ezk_sip_types::Name;
use ezk_sip_types::header::typed::{AuthResponse, Contact, Username};
use ezk_sip_types::msg::StatusLine;
use ezk_sip_types::uri::SipUriUserPart;
use ezk_sip_types::uri::{NameAddr, SipUri};
use ezk_sip_types::{Method, StatusCode};
use ezk_sip_ua::dialog::DialogLayer;
use ezk_sip_ua::invite::InviteLayer;
use ezk_sip_ua::{
    Call, InboundCall, MakeCallCompletionError, MakeCallError, NoMedia, OutboundCall,
};

use super::inbound::{DigestAnswer, InboundPolicy, Verdict};
use super::media::RtpMedia;
use super::register::Account;
use super::sdp::{SrtpPolicy, SrtpUse};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Where the user agent listens, what it advertises, and what its calls' media must be.
#[derive(Clone)]
pub struct AgentSettings {
    /// UDP and TCP (the same port; port 0 picks one for both).
    pub bind: SocketAddr,
    /// The address written into Contact headers and SDP.
    pub address: IpAddr,
    /// SIP over TLS on this port of `bind`'s address, with the server certificate `TlsAcceptor` holds.
    pub tls: Option<(u16, TlsAcceptor)>,
    /// How we open TLS connections ourselves: to a `transport=tls` trunk, or to a TLS caller's Contact
    /// for the requests of its dialog (our BYE). `None`: such requests fail.
    pub tls_client: Option<TlsConnector>,
    /// Whether calls' audio may, or must, be SRTP.
    pub srtp: SrtpPolicy,
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSettings")
            .field("bind", &self.bind)
            .field("address", &self.address)
            .field("tls_port", &self.tls.as_ref().map(|(port, _)| port))
            .field("tls_client", &self.tls_client.is_some())
            .field("srtp", &self.srtp)
            .finish()
    }
}

impl AgentSettings {
    /// UDP and TCP on `bind`, no TLS, SRTP when a caller offers it.
    pub fn plain(bind: SocketAddr, address: IpAddr) -> Self {
        Self {
            bind,
            address,
            tls: None,
            tls_client: None,
            srtp: SrtpPolicy::Optional,
        }
    }
}

/// A new call offered to us, not yet answered beyond 100 Trying.
pub struct IncomingInvite {
    /// The call, to accept with our media or to decline.
    pub call: InboundCall<NoMedia>,
    /// The caller's user part (usually their number), from the From header.
    pub from: Option<String>,
    /// The called user part, from the To header.
    pub to: Option<String>,
    /// The SIP Call-ID, for the logs.
    pub sip_call_id: String,
    /// Where the INVITE came from.
    pub peer: SocketAddr,
    /// Whether the caller proved the inbound credentials (else it came from a trusted source).
    pub authenticated: bool,
}

impl std::fmt::Debug for IncomingInvite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingInvite")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("sip_call_id", &self.sip_call_id)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Why the user agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The SIP port could not be bound.
    #[error(
        "cannot listen for SIP on {address} ({transport}); is another SIP server running there? Set SIP_PORT"
    )]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// udp or tcp.
        transport: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The contact address did not make a SIP URI.
    #[error("cannot make a SIP contact for {0}")]
    Contact(String),
    /// The SIP-TLS port could not be bound.
    #[error(
        "cannot listen for SIP over TLS on {address}; is another SIP server running there? Set SIP_TLS_PORT"
    )]
    BindTls {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Why a call we placed did not connect.
#[derive(Debug, thiserror::Error)]
#[error("the call to {target} did not connect: {reason}")]
pub struct CallFailed {
    target: String,
    reason: String,
    status: Option<u16>,
}

impl CallFailed {
    /// The SIP status that ended the attempt (486 busy, 408 no answer, ...), when there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }
}

/// The running user agent.
#[derive(Clone)]
pub struct UserAgent {
    endpoint: Endpoint,
    contact: Contact,
    address: IpAddr,
    port: u16,
    tls_port: Option<u16>,
    srtp: SrtpPolicy,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("address", &self.address)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// INVITEs waiting for the server; beyond this, new calls are answered 503 at once.
const PENDING_INVITES: usize = 64;

impl UserAgent {
    /// Listens as `settings` say (UDP and TCP, TLS too with a certificate) and advertises their address
    /// in Contact headers; INVITEs are let in as `policy` says. Returns the agent and the stream of new
    /// calls.
    pub async fn start(
        settings: AgentSettings,
        policy: Arc<InboundPolicy>,
    ) -> Result<(Self, mpsc::Receiver<IncomingInvite>), AgentError> {
        let AgentSettings {
            bind,
            address,
            tls,
            tls_client,
            srtp,
        } = settings;
        let (mut builder, port) = bind_both(bind).await?;
        if let Some(connector) = tls_client {
            builder.use_rustls_connector(connector);
        }
        let host = super::uri_host(address);
        let tls_contact = match tls {
            Some((tls_port, acceptor)) => {
                let at = SocketAddr::new(bind.ip(), tls_port);
                builder
                    .listen_rustls(at, acceptor)
                    .await
                    .map_err(|source| AgentError::BindTls {
                        address: at,
                        source,
                    })?;
                let uri: SipUri = format!("sip:switchboard@{host}:{tls_port};transport=tls")
                    .parse()
                    .map_err(|_| AgentError::Contact(host.clone()))?;
                Some((tls_port, Contact::new(NameAddr::uri(uri))))
            }
            None => None,
        };
        let tls_port = tls_contact.as_ref().map(|(port, _)| *port);
        let (invites_tx, invites_rx) = mpsc::channel(PENDING_INVITES);
        builder.user_agent("Switchboard");
        // The INVITE layer adds INVITE, ACK, BYE, CANCEL, UPDATE and PRACK itself.
        for method in [Method::OPTIONS, Method::NOTIFY] {
            builder.add_allow(method);
        }
        let uri: SipUri = format!("sip:switchboard@{host}:{port}")
            .parse()
            .map_err(|_| AgentError::Contact(host.clone()))?;
        let contact = Contact::new(NameAddr::uri(uri));
        builder.add_layer(DialogLayer::default());
        builder.add_layer(InviteLayer::default());
        builder.add_layer(Answering {
            invites: invites_tx,
            contact: contact.clone(),
            tls_contact,
            srtp,
            policy,
            last_refusal_logged: AtomicU64::new(0),
        });
        let endpoint = builder.build();
        Ok((
            Self {
                endpoint,
                contact,
                address,
                port,
                tls_port,
                srtp,
            },
            invites_rx,
        ))
    }

    /// The SIP port (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The SIP-over-TLS port, when TLS is on.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// Whether calls' audio may, or must, be SRTP.
    pub fn srtp(&self) -> SrtpPolicy {
        self.srtp
    }

    /// The address written into Contact and SDP.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The ezk endpoint, for calls and requests.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Our Contact header.
    pub fn contact(&self) -> &Contact {
        &self.contact
    }

    /// Calls `target` with our media's offer and returns once the call is answered and acknowledged. A
    /// failure response, no answer within `ring`, or a challenge we cannot answer is an error. With an
    /// `account` (a registered PBX line), the call comes from the account's address of record with
    /// `caller_id` as the display name, and the PBX's digest challenge is answered; without, it comes from
    /// `sip:{caller_id}@` our address.
    pub async fn call(
        &self,
        target: &str,
        caller_id: &str,
        account: Option<&Account>,
        media: RtpMedia,
        ring: Duration,
    ) -> Result<Call<RtpMedia>, CallFailed> {
        let failed = |reason: String, status: Option<u16>| CallFailed {
            target: target.to_owned(),
            reason,
            status,
        };
        let uri: SipUri = target
            .parse()
            .map_err(|_| failed("not a SIP URI".to_owned(), None))?;
        let (id, authenticator) = match account {
            Some(account) => (
                NameAddr::new(caller_id.to_owned(), account.address_of_record()),
                account.authenticator(),
            ),
            None => {
                let id: SipUri = format!("sip:{caller_id}@{}", super::uri_host(self.address))
                    .parse()
                    .map_err(|_| failed(format!("{caller_id} is not a SIP user"), None))?;
                // No credentials: a peer that asks for them refuses the call.
                (
                    NameAddr::uri(id),
                    DigestAuthenticator::new(DigestCredentials::new()),
                )
            }
        };
        let mut outbound = OutboundCall::make(
            self.endpoint.clone(),
            authenticator,
            id,
            self.contact.clone(),
            uri,
            media,
        )
        .await
        .map_err(|e| match e {
            MakeCallError::Failed(line) => failed(describe(&line), Some(line.code.into_u16())),
            MakeCallError::Auth(_) => failed(
                "the PBX refused our credentials (check SIP_USERNAME and SIP_PASSWORD)".to_owned(),
                Some(401),
            ),
            MakeCallError::Core(ezk_sip_core::Error::RequestTimedOut) => {
                failed("no answer to the INVITE".to_owned(), Some(408))
            }
            other => failed(other.to_string(), None),
        })?;
        let answered = match tokio::time::timeout(ring, outbound.wait_for_completion()).await {
            Ok(answered) => answered.map_err(|e| match e {
                MakeCallCompletionError::Failed(line) => {
                    failed(describe(&line), Some(line.code.into_u16()))
                }
                other => failed(other.to_string(), None),
            })?,
            Err(_) => {
                if let Err(e) = outbound.cancel().await {
                    tracing::debug!(error = %e, "cannot CANCEL an unanswered call");
                }
                return Err(failed(
                    format!("not answered within {} s", ring.as_secs()),
                    Some(408),
                ));
            }
        };
        answered
            .finish()
            .await
            .map_err(|e| failed(e.to_string(), None))
    }
}

/// A failure response as a reason: its code and phrase.
fn describe(line: &StatusLine) -> String {
    format!(
        "{} {}",
        line.code.into_u16(),
        line.reason.as_ref().map_or("", |r| r.as_str())
    )
    .trim_end()
    .to_owned()
}

/// Tries for a free port held by both UDP and TCP when `bind` asks for port 0.
const FREE_PORT_TRIES: usize = 20;

/// An endpoint builder listening on UDP and TCP at one port: `bind`'s, or with port 0 a free one that is
/// free for both (a UDP port's TCP twin may be taken, so another is tried).
async fn bind_both(bind: SocketAddr) -> Result<(EndpointBuilder, u16), AgentError> {
    let tries = if bind.port() == 0 { FREE_PORT_TRIES } else { 1 };
    let mut attempt = 1;
    loop {
        let mut builder = Endpoint::builder();
        let udp = builder
            .bind_udp(bind)
            .await
            .map_err(|source| AgentError::Bind {
                address: bind,
                transport: "udp",
                source,
            })?;
        let port = udp.bound().port();
        let tcp = SocketAddr::new(bind.ip(), port);
        match builder.listen_tcp(tcp).await {
            Ok(()) => return Ok((builder, port)),
            Err(_) if attempt < tries => attempt += 1,
            Err(source) => {
                return Err(AgentError::Bind {
                    address: tcp,
                    transport: "tcp",
                    source,
                });
            }
        }
    }
}

/// The user part of a SIP URI: the number or name of who calls or is called.
fn user_of(uri: &SipUri) -> Option<String> {
    match &uri.user_part {
        SipUriUserPart::User(user) => Some(user.to_string()),
        SipUriUserPart::UserPw(pw) => Some(pw.user.to_string()),
        SipUriUserPart::Empty => None,
    }
}

/// Our layer: OPTIONS answered, new INVITEs let in by the policy handed over.
struct Answering {
    invites: mpsc::Sender<IncomingInvite>,
    contact: Contact,
    /// The port SIP over TLS arrives on, and the Contact a dialog begun over it gets (so the caller's
    /// later requests, its BYE among them, come back over TLS).
    tls_contact: Option<(u16, Contact)>,
    srtp: SrtpPolicy,
    policy: Arc<InboundPolicy>,
    /// The second in which a refusal was last logged: a flood of strangers logs one line a second.
    last_refusal_logged: AtomicU64,
}

impl Answering {
    /// Counts a refused INVITE and logs it (at most once a second).
    fn refused(&self, peer: SocketAddr, why: &'static str) {
        metrics::counter!("switchboard_sip_refused_total", "reason" => why).increment(1);
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last_refusal_logged.swap(second, Ordering::Relaxed) != second {
            tracing::warn!(peer = %peer.ip(), reason = why, "refused an INVITE (403 Forbidden); see SIP_TRUSTED_SOURCES");
        }
    }
}

/// The caller's `Authorization: Digest` header, when it has one we can read.
fn digest_answer(request: &IncomingRequest) -> Option<DigestAnswer> {
    let AuthResponse::Digest(digest) = request
        .headers
        .try_get::<AuthResponse>(Name::AUTHORIZATION)?
        .ok()?
    else {
        return None;
    };
    let username = match &digest.username {
        Username::Username(name) | Username::UsernameNonASCII(name) => name.to_string(),
    };
    Some(DigestAnswer {
        username,
        realm: digest.realm.to_string(),
        nonce: digest.nonce.to_string(),
        uri: digest.uri.to_string(),
        response: digest.response.to_string(),
        algorithm: digest.algorithm.to_string(),
        qop: digest
            .qop_response
            .as_ref()
            .map(|q| (q.qop.to_string(), q.cnonce.to_string(), q.nc)),
    })
}

#[async_trait::async_trait]
impl Layer for Answering {
    fn name(&self) -> &'static str {
        "switchboard-answering"
    }

    async fn receive(&self, endpoint: &Endpoint, request: MayTake<'_, IncomingRequest>) {
        match request.line.method {
            Method::OPTIONS => {
                let mut options = request.take();
                let response = endpoint.create_response(&options, StatusCode::OK, None);
                let tsx = endpoint.create_server_tsx(&mut options);
                if let Err(e) = tsx.respond(response).await {
                    tracing::debug!(error = %e, "cannot answer OPTIONS");
                }
            }
            Method::INVITE => {
                let invite = request.take();
                let peer = invite.tp_info.source;
                let answer = digest_answer(&invite);
                let authenticated = match self.policy.check("INVITE", peer.ip(), answer.as_ref()) {
                    Verdict::Trusted => false,
                    Verdict::Authenticated => true,
                    Verdict::Challenge(challenges) => {
                        metrics::counter!("switchboard_sip_challenged_total").increment(1);
                        let mut response =
                            endpoint.create_response(&invite, StatusCode::UNAUTHORIZED, None);
                        for challenge in challenges {
                            response
                                .msg
                                .headers
                                .insert(Name::WWW_AUTHENTICATE, challenge);
                        }
                        respond_failure(endpoint, invite, response).await;
                        return;
                    }
                    Verdict::Forbidden(why) => {
                        self.refused(peer, why);
                        refuse(endpoint, invite, StatusCode::FORBIDDEN).await;
                        return;
                    }
                };
                let from = user_of(&invite.base_headers.from.uri.uri);
                let to = user_of(&invite.base_headers.to.uri.uri);
                let sip_call_id = invite.base_headers.call_id.0.to_string();
                // An offer we cannot answer is refused here with 488, before a dialog exists.
                if !invite.body.is_empty() {
                    let offer = std::str::from_utf8(&invite.body)
                        .map_err(|e| e.to_string())
                        .and_then(super::sdp::parse)
                        .and_then(|offer| {
                            super::sdp::negotiate(&offer, &SrtpUse::new(self.srtp))
                                .map_err(|e| e.to_string())
                        });
                    if let Err(reason) = offer {
                        tracing::warn!(%peer, %reason, "refusing an INVITE whose offer we cannot answer");
                        refuse(endpoint, invite, StatusCode::NOT_ACCEPTABLE_HERE).await;
                        return;
                    }
                }
                let slot = match self.invites.try_reserve() {
                    Ok(permit) => permit,
                    Err(_) => {
                        refuse(endpoint, invite, StatusCode::SERVICE_UNAVAILABLE).await;
                        return;
                    }
                };
                // A dialog begun over TLS goes on over TLS.
                let contact = match &self.tls_contact {
                    Some((port, tls)) if invite.tp_info.transport.bound().port() == *port => {
                        tls.clone()
                    }
                    _ => self.contact.clone(),
                };
                match InboundCall::from_invite(endpoint.clone(), invite, contact) {
                    Ok(call) => slot.send(IncomingInvite {
                        call,
                        from,
                        to,
                        sip_call_id,
                        peer,
                        authenticated,
                    }),
                    Err(failed) => {
                        let (invite, reason) = *failed;
                        tracing::warn!(%peer, error = %reason, "refusing a malformed INVITE");
                        refuse(endpoint, invite, StatusCode::BAD_REQUEST).await;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Answers an INVITE with a final failure before any dialog exists.
async fn refuse(endpoint: &Endpoint, invite: IncomingRequest, code: StatusCode) {
    let response = endpoint.create_response(&invite, code, None::<BytesStr>);
    respond_failure(endpoint, invite, response).await;
}

/// Sends `response`, a final failure, to an INVITE before any dialog exists.
async fn respond_failure(
    endpoint: &Endpoint,
    mut invite: IncomingRequest,
    response: ezk_sip_core::transport::OutgoingResponse,
) {
    let tsx = endpoint.create_server_inv_tsx(&mut invite);
    if let Err(e) = tsx.respond_failure(response).await {
        tracing::debug!(error = %e, "cannot refuse an INVITE");
    }
}

/// Lets go of a call the peer has ended. ezk's `Call` sends BYE when dropped inside the runtime even
/// after the peer's BYE closed the dialog (a stray request the peer answers 481); dropped on a thread
/// outside the runtime, it only releases the dialog.
pub fn release_ended(call: Call<RtpMedia>) {
    let spawned = std::thread::Builder::new()
        .name("sip-ended".into())
        .spawn(move || drop(call));
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cannot release an ended SIP call off the runtime");
    }
}
