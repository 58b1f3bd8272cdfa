//! Telephony settings: the providers' accounts, the AudioSocket listener, ARI, and the SIP user agent with
//! who may call it.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use url::Url;

use super::{ConfigError, Reader, Sources, SrtpPolicy, TelephonyProvider, is_host, settings};
use crate::secret::Secret;

/// Telephony settings.
#[derive(Debug, Clone)]
pub struct TelephonyConfig {
    /// Adapter for outbound calls.
    pub provider: TelephonyProvider,
    /// Twilio credentials, when used.
    pub twilio: TwilioConfig,
    /// Where a caller asking for a person is sent: an E.164 number or a `sip:` URI.
    pub transfer_target: Option<String>,
    /// Port of the AudioSocket listener; `None`: no listener.
    pub audiosocket_port: Option<u16>,
    /// Where the AudioSocket listener binds (AUDIOSOCKET_HOST); `None`: SERVER_HOST.
    pub audiosocket_host: Option<String>,
    /// Who may connect to the AudioSocket listener; `None`: loopback and ARI_URL's host.
    pub audiosocket_trusted: Option<Sources>,
    /// Asterisk's REST interface, when ARI_URL is set.
    pub ari: Option<AriConfig>,
    /// The SIP user agent, with TELEPHONY_PROVIDER=sip or SIP_PORT set.
    pub sip: Option<SipConfig>,
}

/// SIP user agent settings.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// UDP and TCP port on SERVER_HOST (0: a free one).
    pub port: u16,
    /// The address written into Contact and SDP; `None`: found at start-up.
    pub address: Option<IpAddr>,
    /// UDP ports for RTP and RTCP.
    pub rtp_ports: RangeInclusive<u16>,
    /// The registrar to stay registered with, as a `sip:` URI.
    pub registrar: Option<String>,
    /// Where calls placed through the API go (`sip:` URI); `None`: the registrar.
    pub trunk: Option<String>,
    /// The account at the registrar and trunk.
    pub username: String,
    /// The account's digest password.
    pub password: Option<Secret>,
    /// The registration lifetime asked for.
    pub register_expires: Duration,
    /// How long an outbound call may ring.
    pub ring_timeout: Duration,
    /// How long an incoming call rings before it is answered.
    pub answer_after: Duration,
    /// Who may call without credentials; `None`: loopback and the registrar's and trunk's addresses.
    pub trusted_sources: Option<Sources>,
    /// The credentials a caller from anywhere else must answer a digest challenge with.
    pub inbound_auth: Option<InboundAuth>,
    /// Latch RTP onto where the caller's first packet came from (callers behind NAT) rather than
    /// taking it only from the address their SDP names.
    pub symmetric_rtp: bool,
    /// SIP over TLS on this port, with the server's certificate.
    pub tls_port: Option<u16>,
    /// CAs trusted besides the machine's when we open SIP over TLS ourselves.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Whether calls' audio may, or must, be SRTP.
    pub srtp: SrtpPolicy,
}

/// The user name and password a caller outside the trusted sources proves with SIP digest
/// authentication (SIP_INBOUND_USERNAME / SIP_INBOUND_PASSWORD).
#[derive(Debug, Clone)]
pub struct InboundAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

impl SipConfig {
    /// SIP on `port` with no registrar, trunk or password, RTP on `rtp_ports`: what a test or the
    /// in-process server of `switchboard call` runs.
    pub fn local(port: u16, address: Option<IpAddr>, rtp_ports: RangeInclusive<u16>) -> Self {
        Self {
            port,
            address,
            rtp_ports,
            registrar: None,
            trunk: None,
            username: "switchboard".to_owned(),
            password: None,
            register_expires: Duration::from_secs(300),
            ring_timeout: Duration::from_secs(45),
            answer_after: Duration::ZERO,
            trusted_sources: None,
            inbound_auth: None,
            symmetric_rtp: false,
            tls_port: None,
            tls_ca_file: None,
            srtp: SrtpPolicy::Optional,
        }
    }

    /// Where outbound calls go: SIP_TRUNK, else SIP_REGISTRAR.
    pub fn outbound_route(&self) -> Option<&str> {
        self.trunk.as_deref().or(self.registrar.as_deref())
    }
}

/// Asterisk ARI settings.
#[derive(Debug, Clone)]
pub struct AriConfig {
    /// Asterisk's HTTP server (`/ari` is appended).
    pub url: Url,
    /// ARI user.
    pub user: String,
    /// ARI password.
    pub password: Secret,
    /// The Stasis application.
    pub app: String,
    /// Dial string with `{number}`.
    pub endpoint: String,
    /// Where Asterisk reaches our AudioSocket listener (`host:port`).
    pub media_address: String,
}

/// Twilio account settings.
#[derive(Debug, Clone, Default)]
pub struct TwilioConfig {
    /// Account SID.
    pub account_sid: Option<String>,
    /// Auth token.
    pub auth_token: Option<Secret>,
    /// Caller id for outbound calls.
    pub phone_number: Option<String>,
    /// REST API base (Twilio's own unless testing against a stand-in).
    pub api_url: Option<Url>,
}

/// The telephony section.
pub(super) fn telephony_config(r: &Reader<'_>) -> Result<TelephonyConfig, ConfigError> {
    use settings::*;
    let provider: TelephonyProvider = r.choice(&TELEPHONY_PROVIDER)?;
    Ok(TelephonyConfig {
        provider,
        twilio: TwilioConfig {
            account_sid: r.checked(&TWILIO_ACCOUNT_SID, is_twilio_sid)?,
            auth_token: r.text(&TWILIO_AUTH_TOKEN).map(Secret::new),
            phone_number: r.checked(&TWILIO_PHONE_NUMBER, is_e164)?,
            api_url: r.url(&TWILIO_API_URL)?,
        },
        transfer_target: r.checked(&TRANSFER_TARGET, is_transfer_target)?,
        audiosocket_port: match r.text(&AUDIOSOCKET_PORT) {
            Some(_) => Some(r.int(&AUDIOSOCKET_PORT, 0..=65_535)? as u16),
            None => (provider == TelephonyProvider::Asterisk).then_some(DEFAULT_AUDIOSOCKET_PORT),
        },
        audiosocket_host: r.host_opt(&AUDIOSOCKET_HOST)?,
        audiosocket_trusted: r.sources(&AUDIOSOCKET_TRUSTED_SOURCES)?,
        ari: ari_config(r)?,
        sip: sip_config(r, provider)?,
    })
}

/// SIP_INBOUND_USERNAME and SIP_INBOUND_PASSWORD: both or neither.
fn inbound_auth(r: &Reader<'_>) -> Result<Option<InboundAuth>, ConfigError> {
    use settings::*;
    match (
        r.checked(&SIP_INBOUND_USERNAME, is_sip_user)?,
        r.text(&SIP_INBOUND_PASSWORD),
    ) {
        (Some(username), Some(password)) => Ok(Some(InboundAuth {
            username,
            password: Secret::new(password),
        })),
        (None, None) => Ok(None),
        _ => Err(ConfigError::Inconsistent(
            "SIP_INBOUND_USERNAME and SIP_INBOUND_PASSWORD go together: set both for callers to \
             authenticate, or neither"
                .to_owned(),
        )),
    }
}

/// ARI, when ARI_URL is set: then its user, password and media address are needed too.
fn ari_config(r: &Reader<'_>) -> Result<Option<AriConfig>, ConfigError> {
    use settings::*;
    let Some(url) = r.url(&ARI_URL)? else {
        return Ok(None);
    };
    let needed = |s: &'static Setting| {
        r.text(s).ok_or_else(|| {
            ConfigError::Inconsistent(format!(
                "ARI_URL is set, so {} is needed too ({})",
                s.env, s.allowed
            ))
        })
    };
    let endpoint_ok: fn(&str) -> bool =
        |e| e.contains("{number}") && !e.contains(char::is_whitespace);
    Ok(Some(AriConfig {
        url,
        user: needed(&ARI_USER)?,
        password: Secret::new(needed(&ARI_PASSWORD)?),
        app: r
            .checked(&ARI_APP, is_app_name)?
            .ok_or_else(|| r.invalid(&ARI_APP))?,
        endpoint: r
            .checked(&ARI_ENDPOINT, endpoint_ok)?
            .ok_or_else(|| r.invalid(&ARI_ENDPOINT))?,
        media_address: match r.checked(&ARI_MEDIA_ADDRESS, is_host_port)? {
            Some(address) => address,
            None => needed(&ARI_MEDIA_ADDRESS)?,
        },
    }))
}

/// The SIP user agent's settings: present with TELEPHONY_PROVIDER=sip or an explicit SIP_PORT.
fn sip_config(
    r: &Reader<'_>,
    provider: TelephonyProvider,
) -> Result<Option<SipConfig>, ConfigError> {
    use settings::*;
    let port = match r.text(&SIP_PORT) {
        Some(_) => r.int(&SIP_PORT, 0..=65_535)? as u16,
        None if provider == TelephonyProvider::Sip => DEFAULT_SIP_PORT,
        None => return Ok(None),
    };
    let address = match r.text(&SIP_ADDRESS) {
        Some(text) => Some(
            text.parse::<IpAddr>()
                .map_err(|_| r.invalid(&SIP_ADDRESS))?,
        ),
        None => None,
    };
    let min = r.int(&RTP_PORT_MIN, 1_024..=65_534)? as u16;
    let max = r.int(&RTP_PORT_MAX, 1_025..=65_535)? as u16;
    if max <= min {
        return Err(ConfigError::Inconsistent(format!(
            "RTP_PORT_MAX ({max}) must be above RTP_PORT_MIN ({min})"
        )));
    }
    let username = r
        .checked(&SIP_USERNAME, is_sip_user)?
        .ok_or_else(|| r.invalid(&SIP_USERNAME))?;
    let tls_port = match r.text(&SIP_TLS_PORT) {
        Some(_) => Some(r.int(&SIP_TLS_PORT, 1..=65_535)? as u16),
        None => None,
    };
    if let Some(tls_port) = tls_port {
        if tls_port == port {
            return Err(ConfigError::Inconsistent(format!(
                "SIP_TLS_PORT ({tls_port}) must differ from SIP_PORT: TCP on that port is plain SIP"
            )));
        }
        if r.text(&TLS_CERT_FILE).is_none() {
            return Err(ConfigError::Inconsistent(
                "SIP_TLS_PORT needs the node's certificate: set TLS_CERT_FILE and TLS_KEY_FILE"
                    .into(),
            ));
        }
    }
    Ok(Some(SipConfig {
        port,
        address,
        rtp_ports: min..=max,
        registrar: r.checked(&SIP_REGISTRAR, is_sip_uri)?,
        trunk: r.checked(&SIP_TRUNK, is_sip_uri)?,
        username,
        password: r.text(&SIP_PASSWORD).map(Secret::new),
        register_expires: Duration::from_secs(r.int(&SIP_REGISTER_EXPIRES_S, 20..=86_400)? as u64),
        ring_timeout: Duration::from_secs(r.int(&SIP_RING_TIMEOUT_S, 5..=300)? as u64),
        answer_after: Duration::from_millis(r.int(&SIP_ANSWER_AFTER_MS, 0..=60_000)? as u64),
        trusted_sources: r.sources(&SIP_TRUSTED_SOURCES)?,
        inbound_auth: inbound_auth(r)?,
        symmetric_rtp: r.bool(&SIP_SYMMETRIC_RTP)?,
        tls_port,
        tls_ca_file: r.text(&SIP_TLS_CA_FILE).map(std::path::PathBuf::from),
        srtp: r.choice(&SIP_SRTP)?,
    }))
}

/// A SIP user part we send: a number or an account name.
fn is_sip_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_+".contains(c))
}

/// A `sip:` URI naming a host, with an optional user and port: nothing that could break a SIP header.
fn is_sip_uri(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sip:") else {
        return false;
    };
    let host_port = match rest.rsplit_once('@') {
        Some((user, host)) if is_sip_user(user) => host,
        Some(_) => return false,
        None => rest,
    };
    let host_port = host_port.split(';').next().unwrap_or(host_port);
    if host_port.ends_with(']') {
        // A bracketed IPv6 address without a port.
        return host_port
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    }
    if host_port.contains(':') {
        is_host_port(host_port)
    } else {
        is_host(host_port)
    }
}

/// A Stasis application name.
fn is_app_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `host:port`.
fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(host, port)| {
        is_host(host.trim_start_matches('[').trim_end_matches(']'))
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

fn is_twilio_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("AC") && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// The AudioSocket port Asterisk examples use, taken when TELEPHONY_PROVIDER=asterisk sets none.
pub const DEFAULT_AUDIOSOCKET_PORT: u16 = 9092;

/// The SIP port with TELEPHONY_PROVIDER=sip and no SIP_PORT.
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// A number to dial or a SIP address (`sip:queue@pbx.example.com`); nothing that could break TwiML or SIP.
fn is_transfer_target(s: &str) -> bool {
    match s.strip_prefix("sip:") {
        Some(uri) => {
            !uri.is_empty()
                && uri.len() <= 200
                && uri
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@.:;=_-+%".contains(c))
        }
        None => is_e164(s),
    }
}

fn is_e164(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}
