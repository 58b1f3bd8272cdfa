//! How the binary's own clients (`switchboard call --server https://…`, `bench latency --server`) reach a
//! server over HTTPS and WSS: the certificates trusted are the system's bundle, the public web's roots,
//! and a private CA given with `--ca-file` / `SWITCHBOARD_CA_FILE`. The REST requests and the call's
//! WebSocket use the same TLS settings.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_tungstenite::Connector;

/// Debian's bundle of the CAs the machine trusts (`update-ca-certificates`).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

static CLIENT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

fn client_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Ok(system) = CertificateDer::pem_file_iter(SYSTEM_BUNDLE) {
        // A malformed entry in the system bundle is skipped, not fatal: the others still count.
        roots.add_parsable_certificates(system.flatten());
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read the CA file {}", path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "the CA file {} holds no certificate",
            path.display()
        );
        for cert in certs {
            roots.add(cert).with_context(|| {
                format!(
                    "the CA file {} holds an unusable certificate",
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Trusts `ca_file` besides the system's CAs for the rest of the process. Called once, before the first
/// request.
pub(crate) fn init(ca_file: Option<&Path>) -> anyhow::Result<()> {
    let config = client_config(ca_file)?;
    let _ = CLIENT.set(Arc::new(config));
    Ok(())
}

fn config() -> Arc<rustls::ClientConfig> {
    CLIENT
        .get_or_init(|| {
            // Without init, the system's and the public roots; those cannot fail to load.
            Arc::new(
                client_config(None)
                    .unwrap_or_else(|e| unreachable!("the built-in roots load: {e}")),
            )
        })
        .clone()
}

/// An HTTP client with these TLS settings.
pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls((*config()).clone())
        .build()
        .unwrap_or_else(|e| unreachable!("a rustls configuration of reqwest's own version: {e}"))
}

/// Opens a WebSocket (`ws://` or `wss://`) with these TLS settings.
pub(crate) async fn websocket(
    url: &str,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(Connector::Rustls(config())),
    )
    .await
}
