//! HTTPS and WSS on the API's port (`TLS_CERT_FILE`, `TLS_KEY_FILE`, `TLS_MIN_VERSION`).
//!
//! Connections are accepted on one task and each handshake runs on a task of its own with a time limit,
//! so a client that opens a connection and says nothing holds up no one. The certificate is read again
//! when its file changes, so a renewed certificate is served without a restart; a renewal that cannot be
//! read is logged and the one in service stays.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use switchboard_core::config::{TlsConfig, TlsVersion};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate's files are checked for a renewal.
const RELOAD_EVERY: Duration = Duration::from_secs(60);
/// Finished handshakes waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// Why the certificate cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM object of the kind expected.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// `TLS_CERT_FILE` or `TLS_KEY_FILE`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("TLS_CERT_FILE {} holds no certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the key, the pair or the protocol versions.
    #[error("TLS_KEY_FILE {}: {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// rustls refused the client settings.
    #[error("cannot set up TLS for SIP requests: {0}")]
    Client(rustls::Error),
    /// SIP_TLS_CA_FILE holds no usable certificate.
    #[error("SIP_TLS_CA_FILE {} holds no usable CA certificate", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
    },
}

/// Debian's bundle of the CAs the machine trusts (`update-ca-certificates`).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The client side of SIP over TLS (our requests to a PBX or phone that listens for TLS, such as the BYE
/// of a call that came in over TLS): the machine's CAs, and `ca_file`'s (SIP_TLS_CA_FILE) for a PBX
/// with a private CA.
pub fn sip_connector(ca_file: Option<&Path>) -> Result<TlsConnector, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(system) = CertificateDer::pem_file_iter(SYSTEM_BUNDLE) {
        // A malformed entry in the system bundle is skipped, not fatal: the others still count.
        roots.add_parsable_certificates(system.flatten());
    }
    if let Some(path) = ca_file {
        let unusable = || TlsError::CaFile {
            path: path.to_owned(),
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsError::Read {
                what: "SIP_TLS_CA_FILE",
                path: path.to_owned(),
                source,
            })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(unusable());
        }
    }
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Client)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(client)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate and key in `config`'s files, checked to belong together.
fn load(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &Path, source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(&config.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read("TLS_CERT_FILE", &config.cert_file, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: config.cert_file.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| read("TLS_KEY_FILE", &config.key_file, e))?;
    let key_error = |source| TlsError::Key {
        path: config.key_file.clone(),
        source,
    };
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(key_error)?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(key_error)?;
    Ok(certified)
}

/// When the certificate and key files were last changed.
type Stamp = Option<(SystemTime, SystemTime)>;

fn modified(config: &TlsConfig) -> Stamp {
    let at = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Some((at(&config.cert_file)?, at(&config.key_file)?))
}

/// The certificate in service, swapped when its files change.
struct Certificate {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Arc<CertifiedKey>, Stamp)>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("cert_file", &self.config.cert_file)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    fn open(config: &TlsConfig, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamp = modified(config);
        let key = load(config, &provider)?;
        Ok(Self {
            config: config.clone(),
            provider,
            current: RwLock::new((Arc::new(key), stamp)),
        })
    }

    /// Reads the files again when they changed since they were last read. `Ok(true)`: a new
    /// certificate is in service; an error leaves the old one there.
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamp = modified(&self.config);
        let seen = self.current.read().map(|c| c.1).unwrap_or_default();
        if stamp.is_none() || stamp == seen {
            return Ok(false);
        }
        let loaded = load(&self.config, &self.provider);
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A broken renewal is not tried again until the files change once more.
        current.1 = stamp;
        current.0 = Arc::new(loaded?);
        Ok(true)
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }
}

/// The node's TLS: one certificate, re-read when it changes, served to HTTPS and to SIP over TLS.
#[derive(Clone)]
pub struct NodeTls {
    /// HTTP/1.1 (its ALPN), which the WebSockets upgrade over.
    pub https: TlsAcceptor,
    /// SIP over TLS (no ALPN).
    pub sip: TlsAcceptor,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeTls(..)")
    }
}

/// The server side of TLS for `config`: the certificate checked now, re-read when it changes until
/// `stop`.
pub fn acceptor(config: &TlsConfig, stop: CancellationToken) -> Result<NodeTls, TlsError> {
    let provider = provider();
    let certificate = Arc::new(Certificate::open(config, provider.clone())?);
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|source| TlsError::Key {
            path: config.key_file.clone(),
            source,
        })?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    // SIP over TLS names no application protocol; HTTPS is HTTP/1.1 only (the WebSockets upgrade over it).
    let sip = TlsAcceptor::from(Arc::new(server.clone()));
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio::spawn(async move {
        let mut every = tokio::time::interval(RELOAD_EVERY);
        every.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            match certificate.reload_if_changed() {
                Ok(true) => tracing::info!(
                    cert_file = %certificate.config.cert_file.display(),
                    "TLS certificate renewed"
                ),
                Ok(false) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "the renewed TLS certificate cannot be used; still serving the previous one"
                ),
            }
        }
    });
    Ok(NodeTls {
        https: TlsAcceptor::from(Arc::new(server)),
        sip,
    })
}

/// A listener whose connections have finished their TLS handshake.
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and shakes hands with `acceptor`; stops accepting when dropped.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (done, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        tokio::spawn(accept_loop(tcp, acceptor, done));
        Ok(Self { accepted, local })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    done: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = done.closed() => return,
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: give the process a moment to recover.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let done = done.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = done.send((tls, peer)).await;
                }
                Ok(Err(e)) => {
                    metrics::counter!("switchboard_tls_handshake_failures_total", "reason" => "refused")
                        .increment(1);
                    tracing::debug!(%peer, error = %e, "TLS handshake refused");
                }
                Err(_) => {
                    metrics::counter!("switchboard_tls_handshake_failures_total", "reason" => "timeout")
                        .increment(1);
                    tracing::debug!(%peer, "TLS handshake not finished in time");
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accepting task ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, made by openssl as an operator would.
    fn self_signed(dir: &Path, name: &str) -> TlsConfig {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is installed (make setup)");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        TlsConfig {
            cert_file: cert,
            key_file: key,
            min_version: TlsVersion::V1_3,
        }
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let one = self_signed(dir.path(), "one");
        let two = self_signed(dir.path(), "two");
        let mixed = TlsConfig {
            key_file: two.key_file.clone(),
            ..one.clone()
        };
        let err = load(&mixed, &provider())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("two.key"), "{err}");
        let missing = TlsConfig {
            cert_file: dir.path().join("absent.crt"),
            ..one.clone()
        };
        let err = load(&missing, &provider())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("TLS_CERT_FILE") && err.contains("absent.crt"),
            "{err}"
        );
        assert!(load(&one, &provider()).is_ok());
    }

    #[test]
    fn a_renewed_certificate_replaces_the_old_one_and_a_broken_renewal_leaves_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = self_signed(dir.path(), "live");
        let certificate = Certificate::open(&config, provider()).unwrap_or_else(|e| panic!("{e}"));
        let serial = |c: &Certificate| c.current.read().map(|k| k.0.cert[0].clone()).ok();
        let first = serial(&certificate);
        assert!(
            !certificate.reload_if_changed().unwrap_or(true),
            "nothing changed yet"
        );

        // A renewal: new files in place, with a later modification time.
        let renewed = self_signed(dir.path(), "renewed");
        let later = SystemTime::now() + Duration::from_secs(5);
        for (from, to) in [
            (&renewed.cert_file, &config.cert_file),
            (&renewed.key_file, &config.key_file),
        ] {
            std::fs::copy(from, to).unwrap_or_else(|e| panic!("{e}"));
            let file = std::fs::File::options()
                .write(true)
                .open(to)
                .unwrap_or_else(|e| panic!("{e}"));
            file.set_modified(later).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(certificate.reload_if_changed().unwrap_or(false));
        let second = serial(&certificate);
        assert_ne!(first, second);

        // A half-written renewal: the key no longer matches. The renewed certificate stays in service.
        std::fs::copy(&config.key_file, dir.path().join("kept.key"))
            .unwrap_or_else(|e| panic!("{e}"));
        let other = self_signed(dir.path(), "other");
        std::fs::copy(&other.key_file, &config.key_file).unwrap_or_else(|e| panic!("{e}"));
        let file = std::fs::File::options()
            .write(true)
            .open(&config.key_file)
            .unwrap_or_else(|e| panic!("{e}"));
        file.set_modified(later + Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(certificate.reload_if_changed().is_err());
        assert_eq!(serial(&certificate), second);
        assert!(
            !certificate.reload_if_changed().unwrap_or(true),
            "not retried until it changes"
        );
    }
}
