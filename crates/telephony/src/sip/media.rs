//! The media side of a SIP call for ezk's user agent: the SDP offer/answer over our RTP socket. The
//! negotiated codec, address and direction are published on a watch channel for the task that moves
//! the RTP packets, so a re-INVITE (hold, a new address) reaches it at once.

use std::convert::Infallible;
use std::net::IpAddr;

use ezk_sdp_types::SessionDescription;
use ezk_sip_ua::MediaBackend;
use tokio::sync::watch;

use super::sdp::{self, Negotiated, SdpError, SrtpPolicy, SrtpUse};

/// Why the media session could not be negotiated; the SIP layer answers 488 or 500.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The peer's SDP offers nothing we can use.
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// Our own SDP did not parse (a bug, reported rather than panicking).
    #[error("our SDP did not parse: {0}")]
    Ours(String),
}

/// Our RTP endpoint as SDP describes it.
#[derive(Debug)]
pub struct RtpMedia {
    address: IpAddr,
    port: u16,
    session: u64,
    version: u64,
    /// The policy, and the key we send with when the audio is SRTP (one per call).
    srtp: SrtpUse,
    negotiated: watch::Sender<Option<Negotiated>>,
}

impl RtpMedia {
    /// Media at `address:port` (the address peers can reach), `session` the SDP session id, SRTP as
    /// `srtp` says (with a fresh key); the receiver sees every negotiation's outcome.
    pub fn new(
        address: IpAddr,
        port: u16,
        session: u64,
        srtp: SrtpPolicy,
    ) -> (Self, watch::Receiver<Option<Negotiated>>) {
        let (negotiated, rx) = watch::channel(None);
        (
            Self {
                address,
                port,
                session,
                version: 0,
                srtp: SrtpUse::new(srtp),
                negotiated,
            },
            rx,
        )
    }

    fn ours(text: &str) -> Result<SessionDescription, MediaError> {
        sdp::parse(text).map_err(MediaError::Ours)
    }
}

impl MediaBackend for RtpMedia {
    type Error = MediaError;
    type Event = Infallible;

    fn has_media(&self) -> bool {
        true
    }

    async fn create_sdp_offer(&mut self) -> Result<SessionDescription, MediaError> {
        self.version += 1;
        Self::ours(&sdp::offer(
            self.address,
            self.port,
            self.session,
            self.version,
            &self.srtp,
        ))
    }

    async fn receive_sdp_answer(&mut self, answer: SessionDescription) -> Result<(), MediaError> {
        let negotiated = sdp::negotiate(&answer, &self.srtp)?;
        self.negotiated.send_replace(Some(negotiated));
        Ok(())
    }

    async fn receive_sdp_offer(
        &mut self,
        offer: SessionDescription,
    ) -> Result<SessionDescription, MediaError> {
        let negotiated = sdp::negotiate(&offer, &self.srtp)?;
        self.negotiated.send_replace(Some(negotiated));
        self.version += 1;
        Self::ours(&sdp::answer(
            self.address,
            self.port,
            &negotiated,
            self.session,
            self.version,
        ))
    }

    /// RTP moves on its own task; this side has no events of its own.
    async fn run(&mut self) -> Result<Infallible, MediaError> {
        std::future::pending().await
    }
}
