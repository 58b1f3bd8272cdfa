//! SIP: a user agent that PBXs and softphones call directly (and that places calls through them), with
//! RTP audio. Message parsing, transactions and dialogs are ezk's; the SDP offer/answer, RTP and RFC 4733
//! key presses, and the media ports are ours.
//!
//! - [`agent`]: the user agent on UDP and TCP; new INVITEs come out as [`agent::IncomingInvite`].
//! - [`inbound`]: who may call: trusted sources, or digest authentication.
//! - [`leg`]: one call's RTP leg: SRTP, the latch, the jitter buffer, the agent's audio and key presses out, RTCP reports.
//! - [`media`]: the SDP side of a call for ezk ([`media::RtpMedia`]).
//! - [`peer`]: whose RTP a call takes, and where its audio goes.
//! - [`sdp`]: offer/answer for G.711 and telephone events, with SDES keys for SRTP.
//! - [`srtp`]: SRTP and SRTCP (AES-CM with HMAC-SHA1), pure functions of packets.
//! - [`rtp`]: RTP and RTCP packets, pure functions.
//! - [`ports`]: the RTP port range.
//! - [`register`]: staying registered with a PBX or SIP provider.

pub mod agent;
pub mod inbound;
pub mod leg;
pub mod media;
pub mod peer;
pub mod ports;
pub mod register;
pub mod rtp;
pub mod sdp;
pub mod srtp;

/// The parts of ezk's API a carrier of SIP calls works with.
pub use ezk_sip_types::StatusCode;
pub use ezk_sip_types::uri::{NameAddr, SipUri};
pub use ezk_sip_ua::{Call, CallEvent, InboundCall, NoMedia};

/// An IP address as the host of a SIP URI (IPv6 in brackets).
pub fn uri_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    }
}
