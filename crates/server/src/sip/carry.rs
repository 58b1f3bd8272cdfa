//! An established SIP call carried until either side ends it: RTP both ways on the call's 20 ms clock,
//! the session's events published, key presses from the API sent, and the end: the peer's BYE, or ours,
//! or a REFER to TRANSFER_TARGET when the caller asked for a person.

use std::time::Duration;

use switchboard_session::{EndReason, Inbound, Outbound};
use switchboard_telephony::sip::agent::release_ended;
use switchboard_telephony::sip::leg::RtpLeg;
use switchboard_telephony::sip::media::RtpMedia;
use switchboard_telephony::sip::ports::RtpSockets;
use switchboard_telephony::sip::sdp::Negotiated;
use switchboard_telephony::sip::{Call, CallEvent, NameAddr, SipUri};
use tokio::sync::watch;

use crate::AppState;
use crate::carrier::Carried;
use crate::control::{self, CallControl};

/// How often an RTCP sender report goes out (RFC 3550 suggests about 5 s for one sender).
const SENDER_REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long a peer has to answer our BYE or REFER before we stop waiting.
const SIGNALLING_WAIT: Duration = Duration::from_secs(5);
/// After a REFER is accepted, how long the transferee has to take the caller away (its BYE) before we
/// hang up ourselves.
const TRANSFER_WAIT: Duration = Duration::from_secs(10);

/// Carries an established call until either side ends it.
pub(super) async fn carry(
    mut call: Carried,
    mut established: Call<RtpMedia>,
    sockets: RtpSockets,
    negotiated: watch::Receiver<Option<Negotiated>>,
    pbx: String,
    state: &AppState,
) {
    let symmetric_rtp = state
        .config
        .telephony
        .sip
        .as_ref()
        .is_some_and(|sip| sip.symmetric_rtp);
    let mut leg = RtpLeg::new(sockets, negotiated, symmetric_rtp);
    // Key presses from the API, when the peer takes RFC 4733 telephone events.
    let mut key_presses = leg
        .current()
        .and_then(|n| n.dtmf_payload_type)
        .map(|_| call.accept_key_presses());
    // The caller's audio goes to the session one frame per 20 ms of real time, ticks this task missed
    // included: the echo canceller pairs it with the agent's audio by count, and a clock that let ticks
    // go would move the echo's delay each time the machine was busy.
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
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
                        leg.clear_held();
                        call.publish(&Outbound::Clear);
                    }
                    Outbound::Hangup { reason } => {
                        call.publish(&Outbound::Hangup { reason: reason.clone() });
                        break Ended::ByAgent(reason);
                    }
                    other => call.publish(&other),
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
                // What came while this task was busy goes into the jitter buffer before a frame leaves
                // it, so a burst of missed ticks plays the caller's audio rather than concealment.
                while let Ok((n, from)) = leg.sockets.rtp.try_recv_from(&mut datagram) {
                    if let Some(key) = leg.receive(&datagram[..n], from) {
                        call.forward(Inbound::Dtmf(key)).await;
                    }
                }
                let frame = leg.next_frame();
                call.forward(Inbound::Audio(frame)).await;
            }
            _ = reports.tick() => leg.send_report().await,
        }
    };
    let stats = leg.stats();
    tracing::info!(
        received = stats.received.received,
        late = stats.received.late,
        duplicates = stats.received.duplicates,
        sent = stats.sent,
        malformed = stats.malformed,
        srtp = stats.srtp,
        unauthenticated = stats.unauthenticated,
        refused = stats.refused,
        "SIP call audio"
    );
    let line = SipLine {
        established,
        pbx: &pbx,
    };
    match ended {
        Ended::ByPeer => {
            call.forward(Inbound::Hangup).await;
            release_ended(line.established);
        }
        Ended::Failed => {
            call.forward(Inbound::Hangup).await;
            line.hang_up().await;
        }
        Ended::ByAgent(reason) => {
            let target = state.config.telephony.transfer_target.as_deref();
            control::end(line, call.call_id(), &reason, target).await;
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

/// An established SIP dialog, ended from our side: a REFER to TRANSFER_TARGET for a transfer, a BYE
/// otherwise (or after a transfer the transferee did not complete).
struct SipLine<'a> {
    established: Call<RtpMedia>,
    /// The PBX (`host[:port]`) the call came from or went through, which reaches a bare number.
    pbx: &'a str,
}

impl CallControl for SipLine<'_> {
    async fn transfer(mut self, target: &str) -> Result<(), (Self, String)> {
        let Some(uri) = transfer_uri(target, self.pbx) else {
            return Err((self, format!("{target:?} is not a SIP URI or a number")));
        };
        match tokio::time::timeout(SIGNALLING_WAIT, self.established.refer(NameAddr::uri(uri)))
            .await
        {
            Ok(Ok(_progress)) => {
                tracing::info!(%target, "the peer accepted the transfer");
                // The transferee takes the caller away and says BYE; if it does not, we do (the transfer
                // stands: the peer took it).
                let established = &mut self.established;
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
                if gone.is_err() {
                    self.hang_up().await;
                }
                Ok(())
            }
            Ok(Err(e)) => Err((self, format!("the peer refused the REFER: {e}"))),
            Err(_) => Err((self, "no answer to the REFER".into())),
        }
    }

    async fn hang_up(self) {
        match tokio::time::timeout(SIGNALLING_WAIT, self.established.terminate()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "BYE failed"),
            Err(_) => tracing::warn!("no answer to our BYE"),
        }
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
