//! RTP ports: an even port for RTP and the odd one above it for RTCP (RFC 3550 §11), taken from the
//! configured range in turn so that a port just released is not reused at once (a late packet of the
//! last call would land in the next).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Mutex;

use tokio::net::UdpSocket;

/// The two sockets of one call's audio.
#[derive(Debug)]
pub struct RtpSockets {
    /// RTP, on the even port.
    pub rtp: UdpSocket,
    /// RTCP, on the port above.
    pub rtcp: UdpSocket,
}

impl RtpSockets {
    /// The RTP port.
    pub fn port(&self) -> u16 {
        self.rtp.local_addr().map_or(0, |a| a.port())
    }
}

/// Why no ports could be had.
#[derive(Debug, thiserror::Error)]
#[error("no free pair of RTP ports in {min}-{max} on {ip}; widen RTP_PORT_MIN/RTP_PORT_MAX")]
pub struct PortsExhausted {
    ip: IpAddr,
    min: u16,
    max: u16,
}

/// The range calls take their RTP ports from.
#[derive(Debug)]
pub struct RtpPorts {
    ip: IpAddr,
    first: u16,
    last: u16,
    next: Mutex<u16>,
}

impl RtpPorts {
    /// Ports of `range` on `ip` (the address the sockets bind).
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Self {
        // RTP goes on even ports: an odd start moves up one.
        let first = range.start().saturating_add(range.start() % 2);
        Self {
            ip,
            first,
            last: *range.end(),
            next: Mutex::new(first),
        }
    }

    /// Binds the next free even/odd pair, trying each pair of the range at most once.
    pub async fn bind(&self) -> Result<RtpSockets, PortsExhausted> {
        let pairs = usize::from(self.last.saturating_sub(self.first) / 2) + 1;
        for _ in 0..pairs {
            let port = {
                let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
                let port = *next;
                *next = if port.saturating_add(3) > self.last {
                    self.first
                } else {
                    port + 2
                };
                port
            };
            if port.saturating_add(1) > self.last {
                continue;
            }
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(self.ip, port)).await else {
                continue;
            };
            if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(self.ip, port + 1)).await {
                return Ok(RtpSockets { rtp, rtcp });
            }
        }
        Err(PortsExhausted {
            ip: self.ip,
            min: self.first,
            max: self.last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pairs_are_even_and_odd_and_taken_in_turn_around_ports_in_use() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // An odd start is rounded up to the next even port.
        let ports = RtpPorts::new(ip, 41_001..=41_007);
        let a = ports.bind().await.unwrap();
        assert_eq!(a.port(), 41_002);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), 41_003);
        // Someone else holds 41004: it is skipped.
        let _other = std::net::UdpSocket::bind((ip, 41_004)).unwrap();
        let b = ports.bind().await.unwrap();
        assert_eq!(b.port(), 41_006);
        // Every pair is taken now.
        let err = ports.bind().await.unwrap_err().to_string();
        assert!(err.contains("RTP_PORT_MIN"), "{err}");
        drop(a);
        assert_eq!(ports.bind().await.unwrap().port(), 41_002);
    }
}
