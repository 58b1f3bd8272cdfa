//! The SDP offer/answer of a voice call (RFC 3264): G.711 (PCMU or PCMA) at 8 kHz, 20 ms packets, and
//! RFC 4733 telephone events. Offers are read with ezk's SDP parser; what we send is written here.

use std::net::{IpAddr, SocketAddr};

use ezk_sdp_types::{Direction, MediaType, SessionDescription, TaggedAddress, TransportProtocol};

/// The payload type we offer for telephone events.
pub const OFFERED_DTMF_PAYLOAD_TYPE: u8 = 101;

/// The two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// RFC 3551's static payload type.
    pub fn static_payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// The encoding name of `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Pcmu, Self::Pcma]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

/// What an offer/answer settled on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Negotiated {
    /// The voice codec and its payload type.
    pub codec: Codec,
    /// The payload type of the voice codec in this session.
    pub payload_type: u8,
    /// The telephone-event payload type, when both sides take key presses as RFC 4733 events.
    pub dtmf_payload_type: Option<u8>,
    /// Where to send RTP; `None` while the peer has put the call on hold with the 0.0.0.0 address.
    pub remote: Option<SocketAddr>,
    /// Our direction: `SendRecv`, or `RecvOnly`/`Inactive` while the peer holds the call.
    pub direction: Direction,
}

impl Negotiated {
    /// Whether we should send audio now.
    pub fn sending(&self) -> bool {
        self.remote.is_some() && matches!(self.direction, Direction::SendRecv | Direction::SendOnly)
    }
}

/// Why an offer or answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No RTP/AVP audio stream with a port.
    #[error("the SDP has no RTP/AVP audio stream")]
    NoAudio,
    /// Neither PCMU nor PCMA at 8 kHz was offered.
    #[error("no common codec: PCMU or PCMA at 8000 Hz is needed (offered: {0})")]
    NoCommonCodec(String),
    /// A connection address we cannot send to.
    #[error("the SDP's connection address is {0}, not an IP address")]
    Address(String),
}

/// Reads the peer's offer and picks what we answer: the first G.711 codec in the peer's order, its
/// telephone events if offered, and the peer's address and port.
pub fn negotiate(offer: &SessionDescription) -> Result<Negotiated, SdpError> {
    let media = offer
        .media_descriptions
        .iter()
        .find(|m| {
            m.media.media_type == MediaType::Audio
                && m.media.proto == TransportProtocol::RtpAvp
                && m.media.port != 0
        })
        .ok_or(SdpError::NoAudio)?;
    let encoding_of = |pt: u8| {
        media
            .rtpmap
            .iter()
            .find(|map| map.payload == pt)
            .map(|map| (map.encoding.to_string(), map.clock_rate))
    };
    let mut offered = Vec::new();
    let mut voice = None;
    let mut dtmf = None;
    for &pt in &media.media.fmts {
        let (name, rate) = match (encoding_of(pt), pt) {
            (Some(found), _) => found,
            // Static payload types may come without an rtpmap.
            (None, 0) => ("PCMU".to_owned(), 8_000),
            (None, 8) => ("PCMA".to_owned(), 8_000),
            (None, other) => (other.to_string(), 0),
        };
        offered.push(name.clone());
        if rate != 8_000 {
            continue;
        }
        if let (None, Some(codec)) = (voice, Codec::from_name(&name)) {
            voice = Some((codec, pt));
        } else if dtmf.is_none() && name.eq_ignore_ascii_case("telephone-event") {
            dtmf = Some(pt);
        }
    }
    let (codec, payload_type) = voice.ok_or_else(|| SdpError::NoCommonCodec(offered.join(" ")))?;
    let connection = media
        .connection
        .as_ref()
        .or(offer.connection.as_ref())
        .ok_or(SdpError::NoAudio)?;
    let ip = match &connection.address {
        TaggedAddress::IP4(ip) => IpAddr::V4(*ip),
        TaggedAddress::IP6(ip) => IpAddr::V6(*ip),
        TaggedAddress::IP4FQDN(name) | TaggedAddress::IP6FQDN(name) => {
            return Err(SdpError::Address(name.to_string()));
        }
    };
    // A media-level direction overrides the session's; both default to sendrecv.
    let theirs = if media.direction != Direction::SendRecv {
        media.direction
    } else {
        offer.direction
    };
    Ok(Negotiated {
        codec,
        payload_type,
        dtmf_payload_type: dtmf,
        remote: (!ip.is_unspecified()).then(|| SocketAddr::new(ip, media.media.port)),
        direction: theirs.flipped(),
    })
}

/// Our SDP: an answer naming what was negotiated, at `address:port`. `version` goes up by one with every
/// new description in the same session (RFC 3264 §8).
pub fn answer(
    address: IpAddr,
    port: u16,
    negotiated: &Negotiated,
    session: u64,
    version: u64,
) -> String {
    let mut formats = vec![(negotiated.payload_type, negotiated.codec.name())];
    if let Some(pt) = negotiated.dtmf_payload_type {
        formats.push((pt, "telephone-event"));
    }
    describe(
        address,
        port,
        &formats,
        negotiated.direction,
        session,
        version,
    )
}

/// Our offer for a call we place: PCMU, PCMA and telephone events.
pub fn offer(address: IpAddr, port: u16, session: u64, version: u64) -> String {
    describe(
        address,
        port,
        &[
            (Codec::Pcmu.static_payload_type(), Codec::Pcmu.name()),
            (Codec::Pcma.static_payload_type(), Codec::Pcma.name()),
            (OFFERED_DTMF_PAYLOAD_TYPE, "telephone-event"),
        ],
        Direction::SendRecv,
        session,
        version,
    )
}

fn describe(
    address: IpAddr,
    port: u16,
    formats: &[(u8, &str)],
    direction: Direction,
    session: u64,
    version: u64,
) -> String {
    let family = if address.is_ipv4() { "IP4" } else { "IP6" };
    let pts: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut sdp = format!(
        "v=0\r\no=switchboard {session} {version} IN {family} {address}\r\ns=switchboard\r\n\
         c=IN {family} {address}\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n",
        pts.join(" ")
    );
    for (pt, name) in formats {
        sdp.push_str(&format!("a=rtpmap:{pt} {name}/8000\r\n"));
        if *name == "telephone-event" {
            sdp.push_str(&format!("a=fmtp:{pt} 0-15\r\n"));
        }
    }
    sdp.push_str(&format!("a=ptime:20\r\na={}\r\n", direction.as_str()));
    sdp
}

/// Parses SDP text (a body of a SIP message).
pub fn parse(text: &str) -> Result<SessionDescription, String> {
    SessionDescription::parse(&text.to_owned().into()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer as a softphone sends it: Opus first, then A-law, µ-law and telephone events.
    const SOFTPHONE_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
        t=0 0\r\nm=audio 40000 RTP/AVP 111 8 0 101\r\na=rtpmap:111 opus/48000/2\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\na=sendrecv\r\n";

    #[test]
    fn the_first_g711_codec_in_the_peers_order_is_chosen_with_its_events() {
        let negotiated = negotiate(&parse(SOFTPHONE_OFFER).unwrap()).unwrap();
        assert_eq!(
            negotiated,
            Negotiated {
                codec: Codec::Pcma,
                payload_type: 8,
                dtmf_payload_type: Some(101),
                remote: Some("192.0.2.10:40000".parse().unwrap()),
                direction: Direction::SendRecv,
            }
        );
        assert!(negotiated.sending());
    }

    #[test]
    fn static_payload_types_need_no_rtpmap() {
        // sipp's built-in scenario offers `m=audio 6000 RTP/AVP 0` with only an rtpmap for it, or none.
        let offer = "v=0\r\no=u 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 6000 RTP/AVP 0\r\n";
        let negotiated = negotiate(&parse(offer).unwrap()).unwrap();
        assert_eq!(
            (negotiated.codec, negotiated.payload_type),
            (Codec::Pcmu, 0)
        );
        assert_eq!(negotiated.dtmf_payload_type, None);
    }

    #[test]
    fn an_offer_without_g711_is_refused_naming_what_was_offered() {
        let offer = SOFTPHONE_OFFER
            .replace("RTP/AVP 111 8 0 101", "RTP/AVP 111 101")
            .replace("a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n", "");
        let err = negotiate(&parse(&offer).unwrap()).unwrap_err();
        assert_eq!(err, SdpError::NoCommonCodec("opus telephone-event".into()));
        let video = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                     m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        assert_eq!(negotiate(&parse(video).unwrap()), Err(SdpError::NoAudio));
    }

    #[test]
    fn a_hold_offer_stops_our_sending() {
        let sendonly = SOFTPHONE_OFFER.replace("a=sendrecv", "a=sendonly");
        let held = negotiate(&parse(&sendonly).unwrap()).unwrap();
        assert_eq!(held.direction, Direction::RecvOnly);
        assert!(!held.sending());
        let zero = SOFTPHONE_OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let held = negotiate(&parse(&zero).unwrap()).unwrap();
        assert_eq!(held.remote, None);
        assert!(!held.sending());
    }

    #[test]
    fn our_answer_reads_back_as_what_was_negotiated() {
        let negotiated = negotiate(&parse(SOFTPHONE_OFFER).unwrap()).unwrap();
        let text = answer("203.0.113.5".parse().unwrap(), 10_002, &negotiated, 77, 1);
        assert!(text.contains("m=audio 10002 RTP/AVP 8 101\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:8 PCMA/8000\r\n"));
        assert!(text.contains("a=fmtp:101 0-15\r\n"));
        let back = negotiate(&parse(&text).unwrap()).unwrap();
        assert_eq!(back.codec, Codec::Pcma);
        assert_eq!(back.dtmf_payload_type, Some(101));
        assert_eq!(back.remote, Some("203.0.113.5:10002".parse().unwrap()));
        let ours = offer("203.0.113.5".parse().unwrap(), 10_004, 77, 1);
        let read = negotiate(&parse(&ours).unwrap()).unwrap();
        assert_eq!(
            (read.codec, read.dtmf_payload_type),
            (Codec::Pcmu, Some(101))
        );
    }
}
