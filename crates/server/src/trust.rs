//! Who may reach the telephony edges, as configured or by default: this machine, and the PBX this node
//! is set up to work with (SIP_REGISTRAR and SIP_TRUNK for SIP, ARI_URL for AudioSocket), by the
//! addresses their names resolve to at start-up.

use std::net::IpAddr;

use switchboard_core::config::{SipConfig, Sources, TelephonyConfig};
use switchboard_telephony::sip::inbound::InboundPolicy;

/// The rules for INVITEs: SIP_TRUSTED_SOURCES (else loopback and the registrar's and trunk's addresses),
/// and SIP_INBOUND_USERNAME / SIP_INBOUND_PASSWORD for callers from anywhere else.
pub async fn sip_policy(sip: &SipConfig) -> InboundPolicy {
    let trusted = match &sip.trusted_sources {
        Some(listed) => listed.clone(),
        None => {
            let mut sources = Sources::loopback();
            for uri in [sip.registrar.as_deref(), sip.trunk.as_deref()]
                .into_iter()
                .flatten()
            {
                if let Some((host, port)) = sip_host(uri) {
                    for address in resolve(&host, port).await {
                        sources.add(address);
                    }
                }
            }
            sources
        }
    };
    let credentials = sip
        .inbound_auth
        .as_ref()
        .map(|auth| (auth.username.clone(), auth.password.expose().to_owned()));
    tracing::info!(
        trusted = %trusted,
        digest = credentials.is_some(),
        "SIP takes calls from these sources{}",
        if credentials.is_some() { ", and from callers who prove SIP_INBOUND_USERNAME" } else { "" }
    );
    InboundPolicy::new(trusted, credentials)
}

/// Who may connect to the AudioSocket listener: AUDIOSOCKET_TRUSTED_SOURCES, else loopback and the
/// address ARI_URL names.
pub async fn audiosocket_sources(telephony: &TelephonyConfig) -> Sources {
    if let Some(listed) = &telephony.audiosocket_trusted {
        return listed.clone();
    }
    let mut sources = Sources::loopback();
    if let Some(ari) = &telephony.ari
        && let Some(host) = ari.url.host_str()
    {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        for address in resolve(host, ari.url.port_or_known_default().unwrap_or(8088)).await {
            sources.add(address);
        }
    }
    sources
}

/// The addresses `host` resolves to now; none (logged) when it does not.
async fn resolve(host: &str, port: u16) -> Vec<IpAddr> {
    match tokio::net::lookup_host((host, port)).await {
        Ok(found) => found.map(|a| a.ip()).collect(),
        Err(e) => {
            tracing::warn!(%host, error = %e, "cannot resolve a PBX's name; it is not trusted until restart");
            Vec::new()
        }
    }
}

/// The host and port of a `sip:` URI (`sip:user@host:port;params`); 5060 when it names none.
fn sip_host(uri: &str) -> Option<(String, u16)> {
    let rest = uri.strip_prefix("sip:")?;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host_port = host_port.split(';').next().unwrap_or(host_port);
    if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host.to_owned(), port.unwrap_or(5060)));
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((host_port.to_owned(), 5060)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::config::Config;

    #[test]
    fn a_sip_uri_names_its_host_and_port() {
        assert_eq!(
            sip_host("sip:pbx.example.com"),
            Some(("pbx.example.com".into(), 5060))
        );
        assert_eq!(
            sip_host("sip:agent@10.0.0.5:5080;transport=tcp"),
            Some(("10.0.0.5".into(), 5080))
        );
        assert_eq!(
            sip_host("sip:[2001:db8::1]:5062"),
            Some(("2001:db8::1".into(), 5062))
        );
        assert_eq!(
            sip_host("sip:[2001:db8::1]"),
            Some(("2001:db8::1".into(), 5060))
        );
        assert_eq!(sip_host("tel:+14155550100"), None);
    }

    #[tokio::test]
    async fn by_default_sip_trusts_this_machine_and_the_registrar_and_trunk_it_works_with() {
        let mut sip = SipConfig::local(0, None, 10_000..=10_010);
        sip.registrar = Some("sip:agent@192.0.2.10:5060".into());
        sip.trunk = Some("sip:localhost".into());
        let policy = sip_policy(&sip).await;
        let trusted = policy.trusted();
        assert!(trusted.contains("192.0.2.10".parse().unwrap()));
        assert!(trusted.contains("127.0.0.1".parse().unwrap()));
        assert!(!trusted.contains("192.0.2.11".parse().unwrap()));
        // A list given replaces the default entirely.
        sip.trusted_sources = Some(Sources::parse("198.51.100.0/24").unwrap());
        let listed = sip_policy(&sip).await;
        assert!(!listed.trusted().contains("127.0.0.1".parse().unwrap()));
        assert!(listed.trusted().contains("198.51.100.9".parse().unwrap()));
    }

    #[tokio::test]
    async fn by_default_audiosocket_trusts_this_machine_and_the_asterisk_ari_names() {
        let env = |name: &str| {
            match name {
                "ARI_URL" => Some("http://192.0.2.20:8088"),
                "ARI_USER" => Some("switchboard"),
                "ARI_PASSWORD" => Some("secret"),
                "ARI_MEDIA_ADDRESS" => Some("192.0.2.1:9092"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let config = Config::from_layers(None, &env).unwrap();
        let trusted = audiosocket_sources(&config.telephony).await;
        assert!(trusted.contains("192.0.2.20".parse().unwrap()));
        assert!(trusted.contains("::1".parse().unwrap()));
        assert!(!trusted.contains("192.0.2.21".parse().unwrap()));
    }
}
