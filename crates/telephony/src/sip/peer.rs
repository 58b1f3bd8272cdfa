//! Whose RTP a call takes. By default only packets from the address the caller's SDP names: a stranger
//! spraying the RTP port range cannot put audio into a call. With symmetric RTP (SIP_SYMMETRIC_RTP, for
//! callers behind NAT, whose packets come from an address their SDP cannot know) the call latches onto
//! the first valid packet's source and keeps to that stream's SSRC; the audio goes back there.

use std::net::SocketAddr;

/// The far end of one call's RTP.
#[derive(Debug, Clone)]
pub struct RtpPeer {
    symmetric: bool,
    /// With symmetric RTP: where the caller's stream comes from, and its SSRC.
    latched: Option<(SocketAddr, u32)>,
    refused: u64,
}

impl RtpPeer {
    /// A call's peer; `symmetric` latches as described above.
    pub fn new(symmetric: bool) -> Self {
        Self {
            symmetric,
            latched: None,
            refused: 0,
        }
    }

    /// Whether a valid packet (well-formed, of a payload type the call negotiated) from `from` with
    /// `ssrc` is the caller's. `named` is where the caller's SDP says its media is, now (a re-INVITE may
    /// move it).
    pub fn accept(&mut self, from: SocketAddr, ssrc: u32, named: Option<SocketAddr>) -> bool {
        let from_named = named.is_some_and(|n| n.ip() == from.ip());
        let accepted = if !self.symmetric {
            from_named
        } else {
            match self.latched {
                None => true,
                // The same stream from a new address: the caller's NAT binding changed.
                Some((_, latched)) if latched == ssrc => true,
                // A new stream from where the SDP says the media is: a re-INVITE moved it.
                Some(_) => from_named,
            }
        };
        if accepted {
            if self.symmetric {
                self.latched = Some((from, ssrc));
            }
        } else {
            self.refused += 1;
        }
        accepted
    }

    /// Where the call's audio goes: the SDP's address, or with symmetric RTP the latched source once
    /// there is one.
    pub fn destination(&self, named: Option<SocketAddr>) -> Option<SocketAddr> {
        match self.latched {
            Some((from, _)) if self.symmetric => Some(from),
            _ => named,
        }
    }

    /// Packets refused so far: from other addresses, or other streams.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn by_default_only_the_address_the_sdp_names_is_heard_and_answered() {
        let named = Some(at("192.0.2.10:4000"));
        let mut peer = RtpPeer::new(false);
        // A stranger first: refused, and our audio still goes to the SDP's address.
        assert!(!peer.accept(at("203.0.113.5:9000"), 7, named));
        assert!(peer.accept(at("192.0.2.10:4000"), 1, named));
        // The caller's host sending from another port (RTCP-mux, or a PBX's media proxy) is the caller.
        assert!(peer.accept(at("192.0.2.10:4002"), 1, named));
        assert!(!peer.accept(at("203.0.113.5:9000"), 1, named));
        assert_eq!(peer.destination(named), named);
        assert_eq!(peer.refused(), 2);
        // A re-INVITE moved the media: the new address is heard, the old one no longer.
        let moved = Some(at("192.0.2.20:5000"));
        assert!(peer.accept(at("192.0.2.20:5000"), 1, moved));
        assert!(!peer.accept(at("192.0.2.10:4000"), 1, moved));
    }

    #[test]
    fn symmetric_rtp_latches_on_the_first_stream_and_keeps_to_its_ssrc() {
        let named = Some(at("10.0.0.5:4000"));
        let mut peer = RtpPeer::new(true);
        assert_eq!(peer.destination(named), named, "nothing heard yet");
        // The caller behind NAT: its packets come from the NAT's public address.
        assert!(peer.accept(at("198.51.100.7:61000"), 0xabc, named));
        assert_eq!(peer.destination(named), Some(at("198.51.100.7:61000")));
        // A stranger with another stream is refused and moves nothing.
        assert!(!peer.accept(at("203.0.113.5:9000"), 0x123, named));
        assert_eq!(peer.destination(named), Some(at("198.51.100.7:61000")));
        // The NAT rebinds the caller's stream to a new port: followed.
        assert!(peer.accept(at("198.51.100.7:61002"), 0xabc, named));
        assert_eq!(peer.destination(named), Some(at("198.51.100.7:61002")));
        assert_eq!(peer.refused(), 1);
    }
}
