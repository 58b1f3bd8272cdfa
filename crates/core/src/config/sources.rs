//! Who may reach a telephony edge: a list of addresses and networks (`SIP_TRUSTED_SOURCES`,
//! `AUDIOSOCKET_TRUSTED_SOURCES`).

use std::net::IpAddr;

use ipnet::IpNet;

/// A set of trusted source addresses: single addresses and CIDR networks, IPv4 and IPv6.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    networks: Vec<IpNet>,
}

/// Why a list of sources could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is neither an IP address nor a network such as 10.0.0.0/8")]
pub struct SourcesError {
    /// The entry that is neither.
    pub entry: String,
}

impl Sources {
    /// Nobody.
    pub fn none() -> Self {
        Self::default()
    }

    /// The loopback addresses (127.0.0.0/8 and ::1): processes on this machine.
    pub fn loopback() -> Self {
        Self {
            networks: vec![
                IpNet::new_assert(IpAddr::from([127, 0, 0, 0]), 8),
                IpNet::new_assert(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
            ],
        }
    }

    /// Reads a comma- or space-separated list of addresses and networks; `none` (or nothing) is nobody.
    pub fn parse(text: &str) -> Result<Self, SourcesError> {
        let mut networks = Vec::new();
        for entry in text
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry.eq_ignore_ascii_case("none") {
                continue;
            }
            let network = match entry.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(address) => IpNet::from(address),
                    Err(_) => {
                        return Err(SourcesError {
                            entry: entry.to_owned(),
                        });
                    }
                },
            };
            networks.push(network);
        }
        Ok(Self { networks })
    }

    /// Adds one address.
    pub fn add(&mut self, address: IpAddr) {
        if !self.contains(address) {
            self.networks.push(IpNet::from(address));
        }
    }

    /// Whether `address` is in the set. An IPv4 address seen as IPv6 (`::ffff:10.0.0.5`, from a socket
    /// bound to `::`) is checked as the IPv4 address it is.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        self.networks.iter().any(|n| n.contains(&address))
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }
}

impl std::fmt::Display for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.networks.is_empty() {
            return f.write_str("none");
        }
        for (i, network) in self.networks.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{network}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("{text} is an address"))
    }

    #[test]
    fn addresses_and_networks_of_both_families_are_read_and_matched() {
        let sources = Sources::parse("10.1.0.0/16, 192.0.2.7 2001:db8::/32").expect("valid");
        assert!(sources.contains(ip("10.1.200.3")));
        assert!(!sources.contains(ip("10.2.0.1")));
        assert!(sources.contains(ip("192.0.2.7")));
        assert!(!sources.contains(ip("192.0.2.8")));
        assert!(sources.contains(ip("2001:db8::5")));
        assert!(!sources.contains(ip("2001:db9::5")));
        // An IPv4 peer on a dual-stack socket.
        assert!(sources.contains(ip("::ffff:10.1.2.3")));
        assert_eq!(
            sources.to_string(),
            "10.1.0.0/16,192.0.2.7/32,2001:db8::/32"
        );
    }

    #[test]
    fn none_trusts_nobody_and_loopback_only_this_machine() {
        let none = Sources::parse("none").expect("valid");
        assert!(none.is_empty());
        assert!(!none.contains(ip("127.0.0.1")));
        let local = Sources::loopback();
        assert!(local.contains(ip("127.0.0.2")));
        assert!(local.contains(ip("::1")));
        assert!(!local.contains(ip("10.0.0.1")));
    }

    #[test]
    fn a_network_written_with_host_bits_covers_its_whole_network_and_junk_is_named() {
        let sources = Sources::parse("10.0.0.9/8").expect("valid");
        assert!(sources.contains(ip("10.200.0.1")));
        let err = Sources::parse("10.0.0.1, pbx.example.com").expect_err("a host name");
        assert_eq!(err.entry, "pbx.example.com");
        assert!(Sources::parse("10.0.0.0/33").is_err());
    }
}
