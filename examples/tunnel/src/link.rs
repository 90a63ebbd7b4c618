//! The link under the session: TCP (perhaps through an HTTP proxy), then TLS
//! (unless plaintext was asked for on loopback), then perhaps a WebSocket
//! (`wss://`), then the token proof.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::auth::{self, Token};
use crate::proxy::HttpProxy;

/// A byte link the session can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An authenticated link.
pub type Link = Box<dyn Io>;

/// How long dialling, TLS and the token proof may take together.
pub const LINK_SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Refuses plaintext for anything but loopback: the token proof and the
/// session (and its resume tokens) would travel in the clear.
pub fn check_plaintext(addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "--insecure-plaintext is only for loopback addresses, not {addr}: use TLS (`hawser keygen`)"
        ))
    }
}

/// Whether a TLS handshake failed because the server's bytes were no TLS.
fn is_not_tls(err: &io::Error) -> bool {
    let tls = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    matches!(tls, Some(rustls::Error::InvalidMessage(_)))
}

/// The client's way to a new link: where, with what trust, with what token.
#[derive(Clone)]
pub struct Dialer {
    /// The server's address, as given (host:port).
    pub server: String,
    /// TLS configuration and the name to ask for; `None` for plaintext.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// The shared secret.
    pub token: Token,
    /// An HTTP proxy to reach the server through (`CONNECT`).
    pub proxy: Option<HttpProxy>,
    /// The `ws://` or `wss://` URL to upgrade to, for a server's
    /// `--listen-ws`; `None` for the raw link.
    pub websocket: Option<String>,
}

impl Dialer {
    /// Dials, sets up TLS and proves the token, within [`LINK_SETUP_TIMEOUT`].
    /// An authentication failure is `PermissionDenied` (see
    /// [`AuthError::of`](auth::AuthError::of)); a TLS failure (a certificate
    /// that is not the trusted one) is `InvalidData`.
    pub async fn dial(&self) -> io::Result<Link> {
        match tokio::time::timeout(LINK_SETUP_TIMEOUT, self.dial_now()).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "setting up the link took too long",
            )),
        }
    }

    async fn dial_now(&self) -> io::Result<Link> {
        let tcp = match &self.proxy {
            Some(proxy) => proxy.connect(&self.server).await?,
            None => TcpStream::connect(&self.server).await?,
        };
        tcp.set_nodelay(true)?;
        if self.tls.is_none() {
            check_plaintext(tcp.peer_addr()?).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        }
        let mut link: Link = match &self.tls {
            Some((config, name)) => {
                match crate::records::connect(config.clone(), name.clone(), tcp).await {
                    Ok(tls) => Box::new(tls),
                    // What a plaintext server sends first (its challenge, or a
                    // status byte) is no TLS record.
                    Err(err) if is_not_tls(&err) => return Err(auth::AuthError::TlsUnexpected.into_io()),
                    Err(err) => return Err(err),
                }
            }
            None => Box::new(tcp),
        };
        if let Some(url) = &self.websocket {
            link = crate::websocket::connect(link, url).await?;
        }
        auth::prove(&mut link, &self.token).await?;
        Ok(link)
    }
}
