//! The caller's end of each transport, for `switchboard call` and `switchboard bench latency`: how a
//! call is opened, how 20 ms of caller audio is sent, and what comes back, in each wire format.
//!
//! - `websocket`: `/ws/audio`, PCM16 at 16 kHz in JSON; every event comes on the socket.
//! - `twilio`: what Twilio does: the signed voice webhook, then the Media Stream its TwiML names, µ-law
//!   8 kHz, marks echoed back once "played".
//! - `audiosocket`: what Asterisk's `AudioSocket()` does: a TCP connection, the call's UUID, PCM16 8 kHz.
//! - `sip`: what a PBX does: an INVITE to `sip:{call id}@server` with an SDP offer, then RTP in the
//!   answered G.711 law, and BYE to hang up.
//!
//! Over Twilio, AudioSocket and SIP the call's transcript, latency and hang-up events are not on the wire (a
//! phone network does not carry them); the caller follows them on the call's live events
//! (`GET /api/v1/calls/{id}/events`), as a supervisor's screen would.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::ValueEnum;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use switchboard_audio::SampleRate;
use switchboard_audio::g711::{ulaw_decode, ulaw_encode};
use switchboard_telephony::audiosocket::{self, AudioRate, Frame};
use switchboard_telephony::twilio::signature::{SIGNATURE_HEADER, sign};
use switchboard_telephony::twilio::twiml::{CALL_ID_PARAMETER, stream_target};

use switchboard_audio::g711::{alaw_decode, alaw_encode};
use switchboard_core::config::Sources;
use switchboard_telephony::sip::CallEvent;
use switchboard_telephony::sip::agent::{AgentSettings, UserAgent, release_ended};
use switchboard_telephony::sip::inbound::InboundPolicy;
use switchboard_telephony::sip::media::RtpMedia;
use switchboard_telephony::sip::rtp::{self, RtpSender};
use switchboard_telephony::sip::sdp::{Codec, Negotiated};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::UdpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the caller waits for a call it opened to be live before following its events.
const LIVE_WAIT: Duration = Duration::from_secs(10);

/// Which wire format a scripted call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportKind {
    /// `/ws/audio`: PCM16 16 kHz in JSON.
    #[value(alias = "ws")]
    Websocket,
    /// Twilio's voice webhook and Media Streams: µ-law 8 kHz.
    Twilio,
    /// Asterisk's AudioSocket: PCM16 8 kHz over TCP.
    Audiosocket,
    /// SIP and RTP: G.711 at 8 kHz.
    Sip,
}

/// A transport with what it needs to reach the server.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    /// `/ws/audio`.
    WebSocket,
    /// As Twilio would: webhooks signed with `auth_token` for the server's `public_url`.
    Twilio {
        /// The server's TWILIO_AUTH_TOKEN.
        auth_token: String,
        /// The server's PUBLIC_URL (what Twilio signs).
        public_url: String,
    },
    /// As Asterisk would: the AudioSocket listener at `address` (`host:port`).
    AudioSocket {
        /// The server's AUDIOSOCKET_PORT on its host.
        address: String,
    },
    /// As a PBX would: the SIP user agent at `address` (`host:port`).
    Sip {
        /// The server's SIP_PORT on its host.
        address: String,
    },
}

impl Transport {
    /// The transport `kind` to the server at `base` configured by `config`: Twilio needs the server's
    /// TWILIO_AUTH_TOKEN (and signs for its PUBLIC_URL, else `base`); AudioSocket goes to `audiosocket`,
    /// else to AUDIOSOCKET_PORT (9092 by default) on `base`'s host.
    pub(crate) fn resolve(
        kind: TransportKind,
        config: &switchboard_core::Config,
        base: &str,
        audiosocket: Option<&str>,
    ) -> anyhow::Result<Self> {
        Ok(match kind {
            TransportKind::Websocket => Self::WebSocket,
            TransportKind::Twilio => Self::Twilio {
                auth_token: config
                    .telephony
                    .twilio
                    .auth_token
                    .as_ref()
                    .ok_or_else(|| {
                        anyhow!("--transport twilio signs its webhooks with the server's TWILIO_AUTH_TOKEN: set it")
                    })?
                    .expose()
                    .to_owned(),
                public_url: config
                    .server
                    .public_url
                    .as_ref()
                    .map_or(base, |u| u.as_str())
                    .trim_end_matches('/')
                    .to_owned(),
            },
            TransportKind::Audiosocket => Self::AudioSocket {
                address: match audiosocket {
                    Some(address) => address.to_owned(),
                    None => {
                        let url = url::Url::parse(base).context("the server URL")?;
                        let host = url.host_str().unwrap_or("127.0.0.1");
                        let port = config
                            .telephony
                            .audiosocket_port
                            .unwrap_or(switchboard_core::config::DEFAULT_AUDIOSOCKET_PORT);
                        format!("{host}:{port}")
                    }
                },
            },
            TransportKind::Sip => {
                let url = url::Url::parse(base).context("the server URL")?;
                let host = url.host_str().unwrap_or("127.0.0.1");
                let port = config
                    .telephony
                    .sip
                    .as_ref()
                    .map_or(switchboard_core::config::DEFAULT_SIP_PORT, |sip| sip.port);
                Self::Sip {
                    address: format!("{host}:{port}"),
                }
            }
        })
    }

    /// The transport's name in reports.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Twilio { .. } => "twilio",
            Self::AudioSocket { .. } => "audiosocket",
            Self::Sip { .. } => "sip",
        }
    }
}

/// What came back over a transport.
#[derive(Debug)]
pub(crate) enum WireEvent {
    /// Agent audio at the line's rate.
    AgentAudio(Vec<i16>),
    /// The agent finished a speech (its end-of-speech mark, not a sentence's).
    Mark,
    /// Twilio asks for this mark to be echoed once played.
    EchoMark(String),
    /// A turn's latency breakdown.
    Latency(Value),
    /// The call ended, for this reason.
    Hangup(Option<String>),
    /// Anything else (transcript lines, clears), kept for the transcript file.
    Other(Value),
}

/// An open call: its id, its audio rate on the wire, and both directions.
pub(crate) struct Line {
    /// Our call id.
    pub(crate) call_id: String,
    /// The rate of audio both ways.
    pub(crate) rate: SampleRate,
    /// Caller audio out.
    pub(crate) outgoing: Outgoing,
    /// Agent audio (and, on the WebSocket, events) in.
    pub(crate) incoming: Incoming,
    /// Whether the call's events must be followed on the API (they are not on the wire).
    pub(crate) events_on_api: bool,
}

/// Sends the caller's side.
pub(crate) enum Outgoing {
    WebSocket(SplitSink<Socket, Message>),
    Twilio {
        sink: SplitSink<Socket, Message>,
        stream_sid: String,
        sequence: u64,
        chunk: u64,
    },
    AudioSocket(OwnedWriteHalf),
    Sip {
        socket: Arc<UdpSocket>,
        sender: RtpSender,
        to: SocketAddr,
        negotiated: Negotiated,
        hang_up: Option<oneshot::Sender<()>>,
    },
}

/// Receives the agent's side.
pub(crate) enum Incoming {
    WebSocket(SplitStream<Socket>),
    Twilio(SplitStream<Socket>),
    AudioSocket {
        socket: OwnedReadHalf,
        buffer: Vec<u8>,
    },
    Sip {
        socket: Arc<UdpSocket>,
        negotiated: Negotiated,
        ended: oneshot::Receiver<()>,
    },
}

/// Opens a call from `from` over `transport` on the server at `base`.
pub(crate) async fn open(
    base: &str,
    token: &str,
    from: &str,
    source: &str,
    transport: &Transport,
) -> anyhow::Result<Line> {
    match transport {
        Transport::WebSocket => {
            let call_id = create_call(base, token, from, source).await?;
            // The socket opens with a single-use ticket, as the console's does; the key stays out of URLs.
            let ticket = ticket(base, token, &call_id).await?;
            let url = format!(
                "{}/ws/audio/{call_id}?ticket={ticket}",
                base.replacen("http", "ws", 1)
            );
            let (socket, _) = crate::client_tls::websocket(&url)
                .await
                .context("cannot open the call's audio WebSocket")?;
            let (mut sink, stream) = socket.split();
            sink.send(Message::text(
                json!({"event": "start", "start": {"encoding": "pcm16", "sample_rate": 16000}})
                    .to_string(),
            ))
            .await?;
            Ok(Line {
                call_id,
                rate: SampleRate::Hz16000,
                outgoing: Outgoing::WebSocket(sink),
                incoming: Incoming::WebSocket(stream),
                events_on_api: false,
            })
        }
        Transport::Twilio {
            auth_token,
            public_url,
        } => open_twilio(base, from, auth_token, public_url).await,
        Transport::Sip { address } => {
            let call_id = create_call(base, token, from, source).await?;
            open_sip(call_id, from, address).await
        }
        Transport::AudioSocket { address } => {
            let call_id = create_call(base, token, from, source).await?;
            let uuid: uuid::Uuid = call_id
                .parse()
                .context("the server's call id is not a UUID")?;
            let stream = TcpStream::connect(address)
                .await
                .with_context(|| format!("cannot reach the AudioSocket listener at {address}"))?;
            stream.set_nodelay(true)?;
            let (socket, mut writer) = stream.into_split();
            writer
                .write_all(&audiosocket::encode(&Frame::Uuid(uuid)))
                .await?;
            Ok(Line {
                call_id,
                rate: SampleRate::Hz8000,
                outgoing: Outgoing::AudioSocket(writer),
                incoming: Incoming::AudioSocket {
                    socket,
                    buffer: Vec::new(),
                },
                events_on_api: true,
            })
        }
    }
}

/// A single-use ticket for the call's audio WebSocket.
async fn ticket(base: &str, token: &str, call_id: &str) -> anyhow::Result<String> {
    let response = crate::client_tls::http()
        .post(format!("{base}/api/v1/calls/{call_id}/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .context("cannot ask for the call's WebSocket ticket")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    match body["ticket"].as_str() {
        Some(ticket) if status.is_success() => Ok(ticket.to_owned()),
        _ => bail!("the server refused a WebSocket ticket ({status}): {body}"),
    }
}

/// Creates an inbound call record through the API; returns its id.
async fn create_call(base: &str, token: &str, from: &str, source: &str) -> anyhow::Result<String> {
    let created: Value = crate::client_tls::http()
        .post(format!("{base}/api/v1/calls"))
        .bearer_auth(token)
        .json(&json!({
            "from_number": from,
            "direction": "inbound",
            "context": { "source": source }
        }))
        .send()
        .await
        .context("cannot reach the server")?
        .error_for_status()
        .context("the server refused to create the call")?
        .json()
        .await?;
    created["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the server's answer has no call id: {created}"))
}

/// Rings the server as a PBX would: an INVITE to the call's id at the SIP user agent, with an offer
/// for RTP on a loopback port.
async fn open_sip(call_id: String, from: &str, address: &str) -> anyhow::Result<Line> {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    // The caller takes no calls: every INVITE to it is refused.
    let nobody = Arc::new(InboundPolicy::new(Sources::none(), None));
    let (agent, _no_calls_here) = UserAgent::start(
        AgentSettings::plain(SocketAddr::new(loopback, 0), loopback),
        nobody,
    )
    .await
    .context("starting the caller's SIP user agent")?;
    let socket = Arc::new(UdpSocket::bind(SocketAddr::new(loopback, 0)).await?);
    let (media, negotiated) = RtpMedia::new(loopback, socket.local_addr()?.port(), 1, agent.srtp());
    let call = agent
        .call(
            &format!("sip:{call_id}@{address}"),
            from,
            None,
            media,
            Duration::from_secs(30),
        )
        .await?;
    let negotiated = (*negotiated.borrow())
        .ok_or_else(|| anyhow!("the call was answered without an SDP answer"))?;
    let to = negotiated
        .remote
        .ok_or_else(|| anyhow!("the SDP answer has no address to send audio to"))?;
    let (hang_up, hang_up_rx) = oneshot::channel();
    let (ended_tx, ended) = oneshot::channel();
    tokio::spawn(async move {
        // The agent must live as long as the call: it carries the dialog's messages.
        let _agent = agent;
        let mut call = call;
        let mut hang_up_rx = hang_up_rx;
        loop {
            tokio::select! {
                event = call.run() => match event {
                    Ok(CallEvent::Internal(event)) => {
                        let _ = call.handle_internal_event(event).await;
                    }
                    Ok(CallEvent::Media(never)) => match never {},
                    Ok(CallEvent::Terminated) | Err(_) => {
                        release_ended(call);
                        break;
                    }
                },
                _ = &mut hang_up_rx => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), call.terminate()).await;
                    break;
                }
            }
        }
        let _ = ended_tx.send(());
    });
    let mut first = [0u8; 4];
    getrandom::fill(&mut first).map_err(|e| anyhow!("no randomness: {e}"))?;
    Ok(Line {
        call_id,
        rate: SampleRate::Hz8000,
        outgoing: Outgoing::Sip {
            socket: socket.clone(),
            sender: RtpSender::new(
                u32::from_le_bytes(first),
                u16::from_le_bytes([first[0], first[1]]),
                0,
            ),
            to,
            negotiated,
            hang_up: Some(hang_up),
        },
        incoming: Incoming::Sip {
            socket,
            negotiated,
            ended,
        },
        events_on_api: true,
    })
}

/// `n` random hex digits (Twilio's SIDs are two letters and 32 of them).
fn hex_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

/// Rings the server as Twilio does: the signed voice webhook, then the Media Stream of its TwiML.
async fn open_twilio(
    base: &str,
    from: &str,
    auth_token: &str,
    public_url: &str,
) -> anyhow::Result<Line> {
    let public_url = public_url.trim_end_matches('/');
    let account_sid = hex_id("AC");
    let call_sid = hex_id("CA");
    let params: Vec<(String, String)> = [
        ("AccountSid", account_sid.as_str()),
        ("CallSid", call_sid.as_str()),
        ("From", from),
        ("To", "+18005550100"),
        ("Direction", "inbound"),
        ("CallStatus", "ringing"),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signature = sign(auth_token, &format!("{public_url}/twilio/voice"), &params);
    let response = crate::client_tls::http()
        .post(format!("{base}/twilio/voice"))
        .header(SIGNATURE_HEADER, signature)
        .form(&params)
        .send()
        .await
        .context("cannot reach the server's Twilio webhook")?;
    let status = response.status();
    let twiml = response.text().await?;
    if !status.is_success() {
        bail!("the voice webhook answered {status}: {twiml}");
    }
    let target = stream_target(&twiml)
        .ok_or_else(|| anyhow!("the voice webhook's TwiML connects no stream: {twiml}"))?;
    // Twilio dials PUBLIC_URL; this caller reaches the same server at `base`.
    let public_ws = public_url.replacen("http", "ws", 1);
    let url = match target.url.strip_prefix(&public_ws) {
        Some(path) => format!("{}{path}", base.replacen("http", "ws", 1)),
        None => target.url.clone(),
    };
    let call_id = target
        .parameters
        .iter()
        .find(|(name, _)| name == CALL_ID_PARAMETER)
        .map(|(_, value)| value.clone())
        .ok_or_else(|| anyhow!("the stream carries no call id: {twiml}"))?;
    let (socket, _) = crate::client_tls::websocket(&url)
        .await
        .with_context(|| format!("cannot open the Media Stream at {url}"))?;
    let (mut sink, stream) = socket.split();
    let stream_sid = hex_id("MZ");
    let custom: serde_json::Map<String, Value> = target
        .parameters
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    sink.send(Message::text(
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string(),
    ))
    .await?;
    sink.send(Message::text(
        json!({
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": stream_sid,
            "start": {
                "streamSid": stream_sid,
                "accountSid": account_sid,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": custom,
            }
        })
        .to_string(),
    ))
    .await?;
    Ok(Line {
        call_id,
        rate: SampleRate::Hz8000,
        outgoing: Outgoing::Twilio {
            sink,
            stream_sid,
            sequence: 1,
            chunk: 0,
        },
        incoming: Incoming::Twilio(stream),
        events_on_api: true,
    })
}

impl Outgoing {
    /// Sends 20 ms of caller audio at the line's rate.
    pub(crate) async fn frame(&mut self, samples: &[i16]) -> anyhow::Result<()> {
        match self {
            Self::WebSocket(sink) => {
                let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                let message = json!({"event": "media", "media": {"payload": BASE64.encode(bytes)}});
                sink.send(Message::text(message.to_string())).await?;
            }
            Self::Twilio {
                sink,
                stream_sid,
                sequence,
                chunk,
            } => {
                *sequence += 1;
                *chunk += 1;
                let mulaw: Vec<u8> = samples.iter().map(|&s| ulaw_encode(s)).collect();
                let message = json!({
                    "event": "media",
                    "sequenceNumber": sequence.to_string(),
                    "streamSid": stream_sid,
                    "media": {
                        "track": "inbound",
                        "chunk": chunk.to_string(),
                        "timestamp": ((*chunk - 1) * 20).to_string(),
                        "payload": BASE64.encode(mulaw),
                    }
                });
                sink.send(Message::text(message.to_string())).await?;
            }
            Self::Sip {
                socket,
                sender,
                to,
                negotiated,
                ..
            } => {
                let payload: Vec<u8> = match negotiated.codec {
                    Codec::Pcmu => samples.iter().map(|&s| ulaw_encode(s)).collect(),
                    Codec::Pcma => samples.iter().map(|&s| alaw_encode(s)).collect(),
                };
                let packet = sender.packet(negotiated.payload_type, &payload, samples.len() as u32);
                socket.send_to(&packet, *to).await?;
            }
            Self::AudioSocket(writer) => {
                let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                let frame = Frame::Audio {
                    rate: AudioRate::Hz8000,
                    pcm,
                };
                writer.write_all(&audiosocket::encode(&frame)).await?;
            }
        }
        Ok(())
    }

    /// Tells Twilio's peer a mark was played (Twilio echoes each mark once the audio before it is out).
    pub(crate) async fn echo_mark(&mut self, name: &str) -> anyhow::Result<()> {
        if let Self::Twilio {
            sink,
            stream_sid,
            sequence,
            ..
        } = self
        {
            *sequence += 1;
            let message = json!({
                "event": "mark",
                "sequenceNumber": sequence.to_string(),
                "streamSid": stream_sid,
                "mark": {"name": name}
            });
            sink.send(Message::text(message.to_string())).await?;
        }
        Ok(())
    }

    /// The caller hangs up.
    pub(crate) async fn hang_up(&mut self) {
        match self {
            Self::WebSocket(sink) => {
                let _ = sink
                    .send(Message::text(json!({"event": "stop"}).to_string()))
                    .await;
            }
            Self::Twilio {
                sink,
                stream_sid,
                sequence,
                ..
            } => {
                *sequence += 1;
                let stop = json!({
                    "event": "stop",
                    "sequenceNumber": sequence.to_string(),
                    "streamSid": stream_sid,
                    "stop": {}
                });
                let _ = sink.send(Message::text(stop.to_string())).await;
                let _ = sink.close().await;
            }
            Self::AudioSocket(writer) => {
                let _ = writer.write_all(&audiosocket::encode(&Frame::Hangup)).await;
                let _ = writer.shutdown().await;
            }
            Self::Sip { hang_up, .. } => {
                if let Some(bye) = hang_up.take() {
                    let _ = bye.send(());
                }
            }
        }
    }
}

impl Incoming {
    /// The next thing the server sent; `None` once the connection is closed.
    pub(crate) async fn next(&mut self) -> Option<WireEvent> {
        loop {
            match self {
                Self::WebSocket(stream) => return next_json(stream).await.map(websocket_event),
                Self::Twilio(stream) => {
                    if let Some(event) = twilio_event(next_json(stream).await?) {
                        return Some(event);
                    }
                }
                Self::AudioSocket { socket, buffer } => {
                    if let Some((frame, used)) = audiosocket::decode(buffer) {
                        buffer.drain(..used);
                        match frame {
                            Ok(Frame::Audio { pcm, .. }) => {
                                return Some(WireEvent::AgentAudio(
                                    pcm.chunks_exact(2)
                                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                                        .collect(),
                                ));
                            }
                            Ok(Frame::Hangup) => return None,
                            _ => continue,
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                Self::Sip {
                    socket,
                    negotiated,
                    ended,
                } => {
                    let mut datagram = [0u8; 1_500];
                    let n = tokio::select! {
                        received = socket.recv_from(&mut datagram) => match received {
                            Ok((n, _)) => n,
                            Err(_) => return None,
                        },
                        _ = &mut *ended => return None,
                    };
                    let Ok(packet) = rtp::decode(&datagram[..n]) else {
                        continue;
                    };
                    if packet.header.payload_type != negotiated.payload_type {
                        continue;
                    }
                    return Some(WireEvent::AgentAudio(match negotiated.codec {
                        Codec::Pcmu => packet.payload.iter().map(|&c| ulaw_decode(c)).collect(),
                        Codec::Pcma => packet.payload.iter().map(|&c| alaw_decode(c)).collect(),
                    }));
                }
            }
        }
    }
}

/// The next JSON text message; `None` once the socket is closed.
async fn next_json(stream: &mut SplitStream<Socket>) -> Option<Value> {
    loop {
        if let Message::Text(text) = stream.next().await?.ok()?
            && let Ok(event) = serde_json::from_str(text.as_str())
        {
            return Some(event);
        }
    }
}

/// A `/ws/audio` event.
fn websocket_event(event: Value) -> WireEvent {
    match event["event"].as_str() {
        Some("media") => WireEvent::AgentAudio(
            event["media"]["payload"]
                .as_str()
                .and_then(|p| BASE64.decode(p).ok())
                .map(|bytes| {
                    bytes
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => api_event(event),
    }
}

/// A call event in the `/ws/audio` shape, as the live events endpoint also sends them.
pub(crate) fn api_event(event: Value) -> WireEvent {
    match event["event"].as_str() {
        // `speech-N` ends an answer; `speech-N.K` only one of its sentences.
        Some("mark")
            if event["mark"]["name"]
                .as_str()
                .is_some_and(|n| !n.contains('.')) =>
        {
            WireEvent::Mark
        }
        Some("latency") => WireEvent::Latency(event),
        Some("hangup") => WireEvent::Hangup(event["reason"].as_str().map(str::to_owned)),
        _ => WireEvent::Other(event),
    }
}

/// A message from Twilio's side of a Media Stream (as our server sends them).
fn twilio_event(event: Value) -> Option<WireEvent> {
    match event["event"].as_str()? {
        "media" => {
            let mulaw = BASE64.decode(event["media"]["payload"].as_str()?).ok()?;
            Some(WireEvent::AgentAudio(
                mulaw.into_iter().map(ulaw_decode).collect(),
            ))
        }
        "mark" => Some(WireEvent::EchoMark(
            event["mark"]["name"].as_str()?.to_owned(),
        )),
        // Nothing is queued here beyond what was already "played".
        "clear" => None,
        _ => None,
    }
}

/// Follows the call's live events (`text/event-stream`) once it is live, sending each to `events`
/// until the call ends.
pub(crate) async fn follow_events(
    base: &str,
    token: &str,
    call_id: &str,
    events: tokio::sync::mpsc::UnboundedSender<WireEvent>,
) -> anyhow::Result<()> {
    let http = crate::client_tls::http();
    let url = format!("{base}/api/v1/calls/{call_id}/events");
    let deadline = tokio::time::Instant::now() + LIVE_WAIT;
    let mut response = loop {
        let response = http.get(&url).bearer_auth(token).send().await?;
        if response.status().is_success() {
            break response;
        }
        if response.status() != reqwest::StatusCode::NOT_FOUND
            || tokio::time::Instant::now() >= deadline
        {
            bail!(
                "cannot follow call {call_id}'s events: {}",
                response.status()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut pending = String::new();
    while let Some(chunk) = response.chunk().await? {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if let Ok(event) = serde_json::from_str::<Value>(&data)
                && events.send(api_event(event)).is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}
