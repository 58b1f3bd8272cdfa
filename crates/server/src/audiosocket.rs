//! Asterisk's AudioSocket: a TCP listener (AUDIOSOCKET_PORT) that carries calls Asterisk hands over with
//! `AudioSocket(uuid,host:port)` in a dialplan or a `Dial(AudioSocket/host:port/uuid)`. The first message
//! names the call by UUID: a call created through the API with that id, or a new inbound call. Audio is
//! signed-linear PCM16 at the rate of Asterisk's first audio message, both ways; the carrier does the rest,
//! as for `/ws/audio`.
//!
//! AudioSocket has no authentication: a connection from outside AUDIOSOCKET_TRUSTED_SOURCES (by default
//! this machine and ARI_URL's host) is closed at once, before it is read, and leaves no call record; bind
//! the listener (AUDIOSOCKET_HOST) to the network Asterisk reaches it on. A new call's record is written
//! only once it has a slot here. A call ARI joined to this listener is handed back to ARI when it ends
//! (transfer or hang-up).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use switchboard_audio::InputFormat;
use switchboard_core::CallId;
use switchboard_core::config::Sources;
use switchboard_session::{EndReason, Inbound, Outbound};
use switchboard_telephony::audiosocket::{self, AudioRate, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::carrier::{self, Carried};
use crate::{ApiError, AppState};

/// How long Asterisk has to name the call, and then to send its first audio.
const OPENING_WAIT: Duration = Duration::from_secs(5);
/// How long, after our side is closed, Asterisk has to close its side.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Accepts AudioSocket connections from `trusted` sources on `listener` until `stop` is cancelled; each
/// is carried on its own task, and one connection's failure never touches another.
pub async fn serve_audiosocket(
    listener: TcpListener,
    trusted: Sources,
    state: AppState,
    stop: CancellationToken,
) {
    let last_refusal_logged = AtomicU64::new(0);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) if !trusted.contains(peer.ip()) => {
                drop(stream);
                metrics::counter!("switchboard_audiosocket_refused_total").increment(1);
                let second = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // A flood of strangers logs one line a second.
                if last_refusal_logged.swap(second, Ordering::Relaxed) != second {
                    tracing::warn!(peer = %peer.ip(), "refused an AudioSocket connection from outside AUDIOSOCKET_TRUSTED_SOURCES");
                }
            }
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(reason) = carry(stream, state).await {
                        metrics::counter!("switchboard_errors_total", "kind" => "audiosocket")
                            .increment(1);
                        tracing::warn!(%peer, %reason, "an AudioSocket connection was refused");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept an AudioSocket connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads whole AudioSocket messages off one connection, skipping malformed ones.
struct FrameReader {
    socket: tokio::net::tcp::OwnedReadHalf,
    buffer: Vec<u8>,
}

impl FrameReader {
    /// The next well-formed message; `None` when the connection closed.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = audiosocket::decode(&self.buffer) {
                self.buffer.drain(..used);
                match frame {
                    Ok(frame) => return Some(frame),
                    Err(e) => {
                        metrics::counter!("switchboard_errors_total", "kind" => "bad_message")
                            .increment(1);
                        tracing::warn!(error = %e, "a malformed AudioSocket message was skipped");
                        continue;
                    }
                }
            }
            let mut chunk = [0u8; READ_CHUNK];
            // Cancel-safe: a read interrupted by the other branch of a select loses no bytes.
            match self.socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Admits the call a UUID names: the API's call of that id, or a new inbound call Asterisk is handing
/// over, whose record is written only once it has a slot here. The error carries the call's id when a
/// record of it exists.
async fn admit_uuid(
    state: &AppState,
    uuid: uuid::Uuid,
) -> Result<carrier::Admission, (ApiError, bool)> {
    let call_id = CallId::from(uuid);
    let known = state
        .database
        .call(call_id)
        .await
        .map_err(|e| (ApiError::from(e), false))?;
    if known.is_some() {
        return carrier::admit(state, call_id).await.map_err(|e| (e, true));
    }
    let call = carrier::NewInbound {
        from: None,
        to: None,
        context: json!({ "source": "asterisk" }),
    };
    carrier::admit_new(state, call_id, call)
        .await
        .map_err(|e| (e, false))
}

async fn send(writer: &mut OwnedWriteHalf, frame: &Frame) -> std::io::Result<()> {
    writer.write_all(&audiosocket::encode(frame)).await
}

/// Carries one AudioSocket connection; an error is why it was refused before the call started.
/// Why an AudioSocket connection carried no call.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// Asterisk named no call in time.
    #[error("no UUID message within {} s", OPENING_WAIT.as_secs())]
    NoUuid,
    /// The connection closed before naming its call.
    #[error("the connection closed before naming its call")]
    ClosedFirst,
    /// The call may not connect here.
    #[error("call {call_id}: {reason}")]
    NotAdmitted {
        /// The call named.
        call_id: CallId,
        /// Why (the API's message).
        reason: String,
    },
    /// The caller hung up before any audio.
    #[error("call {0}: hung up before any audio")]
    HungUpFirst(CallId),
}

async fn carry(stream: TcpStream, state: AppState) -> Result<(), Refused> {
    let (read_half, mut writer) = stream.into_split();
    let mut reader = FrameReader {
        socket: read_half,
        buffer: Vec::new(),
    };
    let uuid = tokio::time::timeout(OPENING_WAIT, async {
        loop {
            match reader.next().await {
                Some(Frame::Uuid(uuid)) => return Some(uuid),
                Some(Frame::Hangup) | None => return None,
                Some(_) => {}
            }
        }
    })
    .await
    .map_err(|_| Refused::NoUuid)?
    .ok_or(Refused::ClosedFirst)?;
    let call_id = CallId::from(uuid);
    let admission = match admit_uuid(&state, uuid).await {
        Ok(admission) => admission,
        Err((e, recorded)) => {
            let _ = send(&mut writer, &Frame::Hangup).await;
            metrics::counter!("switchboard_calls_refused_total", "reason" => e.code).increment(1);
            if recorded {
                crate::ari::finish(&state, call_id, None).await;
            }
            return Err(Refused::NotAdmitted {
                call_id,
                reason: e.message,
            });
        }
    };
    // The rate of Asterisk's audio decides the call's format; 8 kHz is what AudioSocket() sends.
    let opening = tokio::time::timeout(OPENING_WAIT, async {
        loop {
            match reader.next().await {
                Some(Frame::Audio { rate, pcm }) => return Some((rate, pcm)),
                Some(Frame::Hangup) | None => return None,
                Some(_) => {}
            }
        }
    })
    .await
    .unwrap_or(Some((AudioRate::Hz8000, Vec::new())));
    let Some((rate, first)) = opening else {
        carrier::record_end(&state, call_id, "caller_hung_up").await;
        crate::ari::finish(&state, call_id, None).await;
        return Err(Refused::HungUpFirst(call_id));
    };
    let mut call = Carried::start(
        &state,
        admission,
        InputFormat::Pcm16(rate.sample_rate()),
        false,
    )
    .await;
    tracing::info!(%call_id, rate = ?rate, "AudioSocket call connected");
    // Key presses from the API go to the caller's channel through ARI, when ARI joined the call.
    if crate::ari::joined(&state, call_id) {
        let mut presses = call.accept_key_presses();
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(digits) = presses.recv().await {
                crate::ari::send_keys(&state, call_id, &digits).await;
            }
        });
    }
    if !first.is_empty() {
        call.forward(Inbound::Audio(first)).await;
    }
    let mut end_reason = EndReason::CallerHungUp;
    loop {
        tokio::select! {
            out = call.outbound.recv() => {
                let Some(out) = out else { break };
                if let Outbound::Audio(pcm) = out {
                    if !crate::carrier::sent(call_id, send(&mut writer, &Frame::Audio { rate, pcm })).await {
                        break;
                    }
                    continue;
                }
                call.publish(&out);
                if let Outbound::Hangup { reason } = &out {
                    if matches!(reason, EndReason::Transferred(_)) && state.ari.is_none() {
                        tracing::warn!(%call_id, "AudioSocket alone cannot transfer a call; the dialplan goes on after AudioSocket() (or set up ARI)");
                    }
                    end_reason = reason.clone();
                    let _ = send(&mut writer, &Frame::Hangup).await;
                    break;
                }
            }
            frame = reader.next() => match frame {
                Some(Frame::Audio { rate: got, pcm }) if got == rate => call.forward(Inbound::Audio(pcm)).await,
                Some(Frame::Audio { rate: got, .. }) => {
                    tracing::warn!(%call_id, ?got, ?rate, "AudioSocket audio changed rate mid-call; skipped");
                }
                Some(Frame::Dtmf(digit)) => call.forward(Inbound::Dtmf(digit)).await,
                Some(Frame::Error(code)) => tracing::warn!(%call_id, ?code, "Asterisk reported an AudioSocket error"),
                Some(Frame::Uuid(_)) => tracing::warn!(%call_id, "a second UUID message is ignored"),
                Some(Frame::Hangup) | None => {
                    call.forward(Inbound::Hangup).await;
                    break;
                }
            },
        }
    }
    let _ = writer.shutdown().await;
    call.finish();
    crate::ari::finish(&state, call_id, Some(&end_reason)).await;
    // Read what Asterisk still sends until it closes too, rather than closing with its audio unread (see
    // `ws::close`: the WebSocket lost its last events that way).
    let _ =
        tokio::time::timeout(CLOSE_WAIT, async { while reader.next().await.is_some() {} }).await;
    Ok(())
}
