use super::{StreamingListener, StreamingTransport};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsStream};

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond this, new connections are closed at once.
const MAX_HANDSHAKES: usize = 256;

/// Switchboard's patch: the upstream listener ran each TLS handshake inline in its accept loop, so one
/// client that connected and sent nothing stopped every later connection from being accepted. Here
/// handshakes run on their own tasks, each bounded by `HANDSHAKE_TIMEOUT`, and finished connections
/// are handed to the accept loop in the order they complete.
pub(super) struct TlsAcceptStream {
    established: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsAcceptStream {
    pub(super) fn new(acceptor: TlsAcceptor, listener: TcpListener) -> Self {
        let (tx, established) = mpsc::channel(MAX_HANDSHAKES);
        tokio::spawn(handshakes(acceptor, listener, tx));
        Self { established }
    }
}

async fn handshakes(
    acceptor: TlsAcceptor,
    listener: TcpListener,
    established: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let pending = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                log::warn!("Error accepting a TLS connection, {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if established.is_closed() {
            return;
        }
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            log::warn!("Too many TLS handshakes in progress; closing the connection from {remote}");
            continue;
        };
        let acceptor = acceptor.clone();
        let established = established.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = established.send((TlsStream::Server(stream), remote)).await;
                }
                Ok(Err(e)) => log::debug!("TLS handshake with {remote} failed, {e}"),
                Err(_) => log::debug!("TLS handshake with {remote} timed out"),
            }
        });
    }
}

#[async_trait::async_trait]
impl StreamingListener for TlsAcceptStream {
    type Transport = TlsStream<TcpStream>;

    async fn accept(&mut self) -> io::Result<(Self::Transport, SocketAddr)> {
        match self.established.recv().await {
            Some(established) => Ok(established),
            // The handshake task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }
}

impl StreamingTransport for TlsStream<TcpStream> {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.local_addr()
    }
}
