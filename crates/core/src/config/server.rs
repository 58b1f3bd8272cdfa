//! The HTTP server's settings: where it listens, how long it waits, and the certificate it serves.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::{ConfigError, Reader, TlsVersion, settings};

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Bind address.
    pub host: String,
    /// Bind port; 0 picks a free one.
    pub port: u16,
    /// Base URL that providers call back.
    pub public_url: Option<Url>,
    /// Longest wait for in-flight work at shutdown.
    pub shutdown_grace: Duration,
    /// How long `/ready` says 503 at shutdown before connections are refused.
    pub shutdown_drain: Duration,
    /// Longest an HTTP request may take to be answered.
    pub request_timeout: Duration,
    /// How long a node's lease in Redis lasts unrenewed before its calls count as lost.
    pub node_lease: Duration,
    /// The certificate served; `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// HTTPS and WSS on the API's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key_file: PathBuf,
    /// Oldest protocol version accepted.
    pub min_version: TlsVersion,
}

pub(super) fn server_config(r: &Reader<'_>) -> Result<ServerConfig, ConfigError> {
    use settings::*;
    let tls = match (r.text(&TLS_CERT_FILE), r.text(&TLS_KEY_FILE)) {
        (Some(cert), Some(key)) => Some(TlsConfig {
            cert_file: PathBuf::from(cert),
            key_file: PathBuf::from(key),
            min_version: r.choice(&TLS_MIN_VERSION)?,
        }),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(ConfigError::Inconsistent(
                "TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither"
                    .into(),
            ));
        }
    };
    Ok(ServerConfig {
        host: r.host(&SERVER_HOST)?,
        port: r.int(&SERVER_PORT, 0..=65_535)? as u16,
        public_url: r.url(&PUBLIC_URL)?,
        shutdown_grace: Duration::from_millis(r.int(&SHUTDOWN_GRACE_MS, 0..=600_000)? as u64),
        shutdown_drain: Duration::from_millis(r.int(&SHUTDOWN_DRAIN_MS, 0..=600_000)? as u64),
        request_timeout: Duration::from_millis(r.int(&REQUEST_TIMEOUT_MS, 1_000..=600_000)? as u64),
        node_lease: Duration::from_millis(r.int(&NODE_LEASE_MS, 3_000..=300_000)? as u64),
        tls,
    })
}
