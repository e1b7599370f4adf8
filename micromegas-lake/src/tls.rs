//! TLS for the servers: FlightSQL here, and the collector's gRPC and HTTP servers. A server
//! given a certificate chain and its private key (PEM files) accepts only TLS connections.
//! Handshakes run concurrently, each bounded in time, so a slow or broken client delays no
//! other; one that fails is logged (`info`, with the peer's address) and closed.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use micromegas_lake::tls::{ServerTls, ALPN_H2};
//! let tls = ServerTls::load("server.pem".as_ref(), "server.key".as_ref(), &[ALPN_H2])?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! let incoming = tls.incoming(listener); // a stream of TLS connections, for tonic
//! # Ok(()) }
//! ```

use crate::error::{LakeError, Result};
use futures::Stream;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// ALPN protocol of gRPC (HTTP/2); gRPC clients require it.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Longest a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes completed and not yet taken by the server.
const READY: usize = 64;

/// A server's TLS settings: its certificate chain and key, and the protocols it offers.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads `cert` (PEM: the server's certificate, then any intermediate ones) and `key`
    /// (PEM: PKCS#8, PKCS#1 or SEC1); `alpn` lists the application protocols offered, in
    /// order of preference.
    pub fn load(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Self> {
        let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
            LakeError::Config(format!(
                "cannot read the TLS {what} {}: {e}; give a PEM file",
                path.display()
            ))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| bad("certificate", cert, &e))?;
        if chain.is_empty() {
            return Err(bad("certificate", cert, &"it holds no CERTIFICATE block"));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
            .map_err(|e| {
                LakeError::Config(format!(
                    "the TLS certificate {} and key {} do not go together: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The TLS connections made on `listener`, as their handshakes complete.
    pub fn incoming(&self, listener: TcpListener) -> TlsIncoming {
        let local = listener.local_addr().ok();
        let (ready, rx) = tokio::sync::mpsc::channel(READY);
        let acceptor = self.acceptor.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, or similar: wait rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, ready) = (acceptor.clone(), ready.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((TlsConnection(tls), peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsIncoming {
            rx,
            local,
            accepting,
        }
    }
}

/// The TLS connections of a listener, as their handshakes complete (for
/// `tonic::transport::Server::serve_with_incoming`, or an HTTP server's accept loop with
/// [`TlsIncoming::accept`]). Accepting stops when it is dropped.
#[derive(Debug)]
pub struct TlsIncoming {
    rx: tokio::sync::mpsc::Receiver<(TlsConnection, SocketAddr)>,
    local: Option<SocketAddr>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsIncoming {
    /// The next connection and its peer's address.
    pub async fn accept(&mut self) -> Option<(TlsConnection, SocketAddr)> {
        self.rx.recv().await
    }

    /// The address listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local
            .ok_or_else(|| io::Error::other("the listener had no local address"))
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Stream for TlsIncoming {
    type Item = io::Result<TlsConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|(connection, _)| Ok(connection)))
    }
}

/// One TLS connection, its handshake done.
#[derive(Debug)]
pub struct TlsConnection(tokio_rustls::server::TlsStream<TcpStream>);

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

/// Serves a tonic router on `listener` until `shutdown` completes (requests in flight
/// finish): over TLS when `tls` is given (it should offer [`ALPN_H2`], which gRPC clients
/// require), else in plain text, without Nagle's delay.
pub async fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: tokio::net::TcpListener,
    tls: Option<ServerTls>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::result::Result<(), tonic::transport::Error> {
    match tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls.incoming(listener), shutdown)
                .await
        }
        None => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
}
