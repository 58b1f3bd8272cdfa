//! The SDP offer/answer of a voice call (RFC 3264): G.711 (PCMU or PCMA) at 8 kHz, 20 ms packets,
//! RFC 4733 telephone events, and SRTP keyed by SDES (`RTP/SAVP` with `a=crypto`, RFC 4568). Offers are
//! read with ezk's SDP parser; what we send is written here.

use std::net::{IpAddr, SocketAddr};

use ezk_sdp_types::{
    Direction, MediaDescription, MediaType, SessionDescription, TaggedAddress, TransportProtocol,
};

use super::srtp::{MasterKey, Suite};

pub use switchboard_core::config::SrtpPolicy;

/// What a call's SDP needs to speak SRTP: the policy, and the key we send with.
#[derive(Debug, Clone, Copy)]
pub struct SrtpUse {
    /// Optional or required.
    pub policy: SrtpPolicy,
    /// Our master key for this call (written in our `a=crypto`).
    pub ours: MasterKey,
}

impl SrtpUse {
    /// A fresh key under `policy`.
    pub fn new(policy: SrtpPolicy) -> Self {
        Self {
            policy,
            ours: MasterKey::random(),
        }
    }
}

/// The SRTP of a negotiated call: the suite, the `a=crypto` tag chosen, and each side's sending key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SrtpKeys {
    /// The crypto suite both sides use.
    pub suite: Suite,
    /// The tag of the `a=crypto` line chosen.
    pub tag: u32,
    /// What we send with.
    pub ours: MasterKey,
    /// What the peer sends with.
    pub theirs: MasterKey,
}

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
    /// The keys when the audio is SRTP; `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
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
    /// No RTP/AVP or RTP/SAVP audio stream with a port.
    #[error("the SDP has no RTP/AVP or RTP/SAVP audio stream")]
    NoAudio,
    /// Only plain RTP offered where SIP_SRTP=required.
    #[error("the audio must be SRTP (SIP_SRTP=required) and the offer is plain RTP")]
    SrtpRequired,
    /// SRTP offered with no suite or key we take.
    #[error(
        "no SRTP crypto suite we take: AES_CM_128_HMAC_SHA1_80 or _32 with one inline key is needed (offered: {0})"
    )]
    NoCommonCrypto(String),
    /// Neither PCMU nor PCMA at 8 kHz was offered.
    #[error("no common codec: PCMU or PCMA at 8000 Hz is needed (offered: {0})")]
    NoCommonCodec(String),
    /// A connection address we cannot send to.
    #[error("the SDP's connection address is {0}, not an IP address")]
    Address(String),
}

/// The first `a=crypto` of `media` we take, with the peer's key.
fn crypto_of(media: &MediaDescription) -> Result<(Suite, u32, MasterKey), SdpError> {
    media
        .crypto
        .iter()
        .find_map(|c| {
            let suite = Suite::from_name(c.suite.as_str())?;
            // One key, no MKI (what SIP phones send); the lifetime is far beyond a call's packets.
            let [key] = c.keys.as_slice() else {
                return None;
            };
            if key.mki.is_some() {
                return None;
            }
            let key = MasterKey::from_inline(&key.key_and_salt).ok()?;
            Some((suite, c.tag, key))
        })
        .ok_or_else(|| {
            let offered: Vec<&str> = media.crypto.iter().map(|c| c.suite.as_str()).collect();
            SdpError::NoCommonCrypto(offered.join(" "))
        })
}

/// Reads the peer's SDP (an offer, or the answer to ours) and picks what we use: the first G.711 codec
/// in the peer's order, its telephone events if offered, the peer's address and port, and SRTP when the
/// stream is `RTP/SAVP` (the first suite we take) or `srtp` requires it.
pub fn negotiate(offer: &SessionDescription, srtp: &SrtpUse) -> Result<Negotiated, SdpError> {
    let audio = |proto: TransportProtocol| {
        offer.media_descriptions.iter().find(|m| {
            m.media.media_type == MediaType::Audio && m.media.proto == proto && m.media.port != 0
        })
    };
    let (media, keys) = match (audio(TransportProtocol::RtpSavp), srtp.policy) {
        (Some(secure), _) => {
            let (suite, tag, theirs) = crypto_of(secure)?;
            let keys = SrtpKeys {
                suite,
                tag,
                ours: srtp.ours,
                theirs,
            };
            (secure, Some(keys))
        }
        (None, SrtpPolicy::Required) if audio(TransportProtocol::RtpAvp).is_some() => {
            return Err(SdpError::SrtpRequired);
        }
        (None, _) => (
            audio(TransportProtocol::RtpAvp).ok_or(SdpError::NoAudio)?,
            None,
        ),
    };
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
        srtp: keys,
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
    let crypto: Vec<(u32, Suite, MasterKey)> = negotiated
        .srtp
        .iter()
        .map(|k| (k.tag, k.suite, k.ours))
        .collect();
    describe(
        Origin {
            address,
            port,
            session,
            version,
        },
        &formats,
        negotiated.direction,
        &crypto,
    )
}

/// Our offer for a call we place: PCMU, PCMA and telephone events; SRTP alone (both suites, our key)
/// when `srtp` requires it.
pub fn offer(address: IpAddr, port: u16, session: u64, version: u64, srtp: &SrtpUse) -> String {
    let crypto: Vec<(u32, Suite, MasterKey)> = match srtp.policy {
        SrtpPolicy::Optional => Vec::new(),
        SrtpPolicy::Required => (1..)
            .zip(Suite::ALL)
            .map(|(tag, suite)| (tag, suite, srtp.ours))
            .collect(),
    };
    describe(
        Origin {
            address,
            port,
            session,
            version,
        },
        &[
            (Codec::Pcmu.static_payload_type(), Codec::Pcmu.name()),
            (Codec::Pcma.static_payload_type(), Codec::Pcma.name()),
            (OFFERED_DTMF_PAYLOAD_TYPE, "telephone-event"),
        ],
        Direction::SendRecv,
        &crypto,
    )
}

/// Where our media is, and which description of the session this is.
struct Origin {
    address: IpAddr,
    port: u16,
    session: u64,
    version: u64,
}

/// An SDP of one audio stream: `RTP/SAVP` with an `a=crypto` line each when `crypto` holds any.
fn describe(
    origin: Origin,
    formats: &[(u8, &str)],
    direction: Direction,
    crypto: &[(u32, Suite, MasterKey)],
) -> String {
    let Origin {
        address,
        port,
        session,
        version,
    } = origin;
    let family = if address.is_ipv4() { "IP4" } else { "IP6" };
    let pts: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
    let proto = if crypto.is_empty() {
        "RTP/AVP"
    } else {
        "RTP/SAVP"
    };
    let mut sdp = format!(
        "v=0\r\no=switchboard {session} {version} IN {family} {address}\r\ns=switchboard\r\n\
         c=IN {family} {address}\r\nt=0 0\r\nm=audio {port} {proto} {}\r\n",
        pts.join(" ")
    );
    for (tag, suite, key) in crypto {
        sdp.push_str(&format!(
            "a=crypto:{tag} {} inline:{}\r\n",
            suite.name(),
            key.to_inline()
        ));
    }
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

    fn plain() -> SrtpUse {
        SrtpUse::new(SrtpPolicy::Optional)
    }

    /// An offer as a softphone sends it: Opus first, then A-law, µ-law and telephone events.
    const SOFTPHONE_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
        t=0 0\r\nm=audio 40000 RTP/AVP 111 8 0 101\r\na=rtpmap:111 opus/48000/2\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\na=sendrecv\r\n";

    #[test]
    fn the_first_g711_codec_in_the_peers_order_is_chosen_with_its_events() {
        let negotiated = negotiate(&parse(SOFTPHONE_OFFER).unwrap(), &plain()).unwrap();
        assert_eq!(
            negotiated,
            Negotiated {
                codec: Codec::Pcma,
                payload_type: 8,
                dtmf_payload_type: Some(101),
                remote: Some("192.0.2.10:40000".parse().unwrap()),
                direction: Direction::SendRecv,
                srtp: None,
            }
        );
        assert!(negotiated.sending());
    }

    #[test]
    fn static_payload_types_need_no_rtpmap() {
        // sipp's built-in scenario offers `m=audio 6000 RTP/AVP 0` with only an rtpmap for it, or none.
        let offer = "v=0\r\no=u 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 6000 RTP/AVP 0\r\n";
        let negotiated = negotiate(&parse(offer).unwrap(), &plain()).unwrap();
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
        let err = negotiate(&parse(&offer).unwrap(), &plain()).unwrap_err();
        assert_eq!(err, SdpError::NoCommonCodec("opus telephone-event".into()));
        let video = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                     m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        assert_eq!(
            negotiate(&parse(video).unwrap(), &plain()),
            Err(SdpError::NoAudio)
        );
    }

    #[test]
    fn a_hold_offer_stops_our_sending() {
        let sendonly = SOFTPHONE_OFFER.replace("a=sendrecv", "a=sendonly");
        let held = negotiate(&parse(&sendonly).unwrap(), &plain()).unwrap();
        assert_eq!(held.direction, Direction::RecvOnly);
        assert!(!held.sending());
        let zero = SOFTPHONE_OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let held = negotiate(&parse(&zero).unwrap(), &plain()).unwrap();
        assert_eq!(held.remote, None);
        assert!(!held.sending());
    }

    #[test]
    fn our_answer_reads_back_as_what_was_negotiated() {
        let negotiated = negotiate(&parse(SOFTPHONE_OFFER).unwrap(), &plain()).unwrap();
        let text = answer("203.0.113.5".parse().unwrap(), 10_002, &negotiated, 77, 1);
        assert!(text.contains("m=audio 10002 RTP/AVP 8 101\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:8 PCMA/8000\r\n"));
        assert!(text.contains("a=fmtp:101 0-15\r\n"));
        let back = negotiate(&parse(&text).unwrap(), &plain()).unwrap();
        assert_eq!(back.codec, Codec::Pcma);
        assert_eq!(back.dtmf_payload_type, Some(101));
        assert_eq!(back.remote, Some("203.0.113.5:10002".parse().unwrap()));
        let ours = offer("203.0.113.5".parse().unwrap(), 10_004, 77, 1, &plain());
        let read = negotiate(&parse(&ours).unwrap(), &plain()).unwrap();
        assert_eq!(
            (read.codec, read.dtmf_payload_type),
            (Codec::Pcmu, Some(101))
        );
    }

    /// An offer as baresip makes it with `mediaenc=srtp-mand`: two suites, each with its own key.
    fn secure_offer(theirs: &MasterKey) -> String {
        SOFTPHONE_OFFER.replace("RTP/AVP", "RTP/SAVP").replace(
            "a=sendrecv\r\n",
            &format!(
                "a=sendrecv\r\na=crypto:1 AEAD_AES_256_GCM inline:{}\r\n\
                 a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n\
                 a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
                theirs.to_inline(),
                theirs.to_inline(),
                theirs.to_inline()
            ),
        )
    }

    #[test]
    fn an_srtp_offer_is_answered_with_the_first_suite_we_take_and_our_own_key() {
        let theirs = MasterKey::random();
        let srtp = plain();
        let negotiated = negotiate(&parse(&secure_offer(&theirs)).unwrap(), &srtp).unwrap();
        let keys = negotiated.srtp.unwrap();
        assert_eq!(
            (keys.suite, keys.tag, keys.theirs, keys.ours),
            (Suite::AesCm128HmacSha1_32, 2, theirs, srtp.ours)
        );
        let text = answer("203.0.113.5".parse().unwrap(), 10_002, &negotiated, 77, 1);
        assert!(text.contains("m=audio 10002 RTP/SAVP 8 101\r\n"), "{text}");
        let line = format!(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
            srtp.ours.to_inline()
        );
        assert!(text.contains(&line), "{text}");
        // Read as the peer reads it: our key is what we send with.
        let peer = SrtpUse::new(SrtpPolicy::Required);
        let back = negotiate(&parse(&text).unwrap(), &peer).unwrap();
        assert_eq!(back.srtp.unwrap().theirs, srtp.ours);
        // The keys never reach a log through Debug.
        assert!(!format!("{negotiated:?}").contains(&srtp.ours.to_inline()));
    }

    #[test]
    fn required_srtp_refuses_plain_offers_and_offers_srtp_alone() {
        let required = SrtpUse::new(SrtpPolicy::Required);
        assert_eq!(
            negotiate(&parse(SOFTPHONE_OFFER).unwrap(), &required),
            Err(SdpError::SrtpRequired)
        );
        let ours = offer("203.0.113.5".parse().unwrap(), 10_004, 77, 1, &required);
        assert!(
            ours.contains("m=audio 10004 RTP/SAVP 0 8 101\r\n"),
            "{ours}"
        );
        assert!(
            ours.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
            "{ours}"
        );
        assert!(
            ours.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"),
            "{ours}"
        );
        // Suites we do not take are refused, named.
        let gcm_only = secure_offer(&MasterKey::random())
            .lines()
            .filter(|l| !l.contains("AES_CM_128"))
            .collect::<Vec<_>>()
            .join("\r\n")
            + "\r\n";
        assert_eq!(
            negotiate(&parse(&gcm_only).unwrap(), &plain()),
            Err(SdpError::NoCommonCrypto("AEAD_AES_256_GCM".into()))
        );
    }
}
