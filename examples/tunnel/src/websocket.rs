//! The link over WebSocket, for networks that let only HTTP(S) out: HTTP
//! proxies, CDNs and load balancers that pass WebSocket upgrades, firewalls
//! open on port 443 alone. The client asks for `wss://HOST[:PORT]/PATH`; the
//! server takes it on `--listen-ws`. Under the WebSocket is the tunnel's own
//! TLS (the same certificate and trust as the raw link), over it the token
//! proof and the session, unchanged: each binary message carries a run of
//! the session's bytes, and message boundaries mean nothing.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::link::Link;

/// The most one message carries, each way. Writes are cut to it; a peer's
/// larger message or frame is an error, so that a hostile peer cannot make
/// either end buffer more than this before the token proof.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Where a `ws://` or `wss://` URL leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT` to dial (the port is 443 for `wss` and 80 for `ws` when
    /// the URL has none).
    pub server: String,
    /// The URL as given, for the upgrade request.
    pub url: String,
    /// `wss://` (TLS under the WebSocket) rather than `ws://`.
    pub tls: bool,
}

impl Endpoint {
    /// `Ok(None)` when `text` is no WebSocket URL (a plain `HOST:PORT`).
    pub fn parse(text: &str) -> Result<Option<Endpoint>, String> {
        let (rest, tls, port) = if let Some(rest) = text.strip_prefix("wss://") {
            (rest, true, 443)
        } else if let Some(rest) = text.strip_prefix("ws://") {
            (rest, false, 80)
        } else {
            return Ok(None);
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{text:?}: a WebSocket URL is ws[s]://HOST[:PORT][/PATH]"));
        }
        let has_port = match authority.rsplit_once(':') {
            // An IPv6 address in brackets holds colons of its own.
            Some((_, tail)) => !tail.ends_with(']') && !tail.is_empty(),
            None => false,
        };
        let server = if has_port {
            let port = authority.rsplit_once(':').map(|(_, port)| port).unwrap_or_default();
            if port.parse::<u16>().is_err() {
                return Err(format!("{text:?}: {port:?} is not a port"));
            }
            authority.to_string()
        } else {
            format!("{authority}:{port}")
        };
        // The upgrade request is made from the URL at every dial: a URL it
        // cannot be made from is refused now, not at the first dial.
        tungstenite::client::IntoClientRequest::into_client_request(text)
            .map_err(|err| format!("{text:?} is not a URL a WebSocket can be asked at: {err}"))?;
        Ok(Some(Endpoint {
            server,
            url: text.to_string(),
            tls,
        }))
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        // The session batches its own writes; a message goes out when
        // written, not when 128 KiB have gathered.
        .write_buffer_size(0)
}

fn to_io(err: tungstenite::Error) -> io::Error {
    match err {
        tungstenite::Error::Io(err) => err,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::ConnectionReset, "the WebSocket was closed")
        }
        other => io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {other}")),
    }
}

/// The client's upgrade of `link` (TCP or TLS to the server) to a WebSocket
/// at `url`.
pub async fn connect(link: Link, url: &str) -> io::Result<Link> {
    let (ws, _response) = tokio_tungstenite::client_async_with_config(url, link, Some(config()))
        .await
        .map_err(|err| match err {
            tungstenite::Error::Http(response) => io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "the server did not take the WebSocket at {url}: HTTP {}",
                    response.status()
                ),
            ),
            other => to_io(other),
        })?;
    Ok(Box::new(WebSocketLink::new(ws)))
}

/// The server's side of the upgrade, on `link` as accepted (TCP or TLS). Any
/// path is taken: it is for the proxies and load balancers in front.
pub async fn accept(link: Link) -> io::Result<Link> {
    let ws = tokio_tungstenite::accept_async_with_config(link, Some(config()))
        .await
        .map_err(to_io)?;
    Ok(Box::new(WebSocketLink::new(ws)))
}

/// A WebSocket as a byte stream.
struct WebSocketLink {
    ws: WebSocketStream<Link>,
    /// What is left of the last binary message read.
    reading: Bytes,
}

impl WebSocketLink {
    fn new(ws: WebSocketStream<Link>) -> WebSocketLink {
        WebSocketLink {
            ws,
            reading: Bytes::new(),
        }
    }
}

impl AsyncRead for WebSocketLink {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.reading.is_empty() {
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.reading = data,
                // Answered by tungstenite itself; nothing for the session.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text message on the tunnel's WebSocket",
                    )))
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(err)) => return Poll::Ready(Err(to_io(err))),
            }
        }
        let n = this.reading.len().min(buf.remaining());
        buf.put_slice(&this.reading[..n]);
        this.reading.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl WebSocketLink {
    /// Sends the first [`MAX_MESSAGE`] bytes of `bufs` as one message.
    fn poll_send(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(to_io)?;
        let mut message = Vec::with_capacity(total.min(MAX_MESSAGE));
        for buf in bufs {
            let room = MAX_MESSAGE - message.len();
            message.extend_from_slice(&buf[..buf.len().min(room)]);
            if message.len() == MAX_MESSAGE {
                break;
            }
        }
        let n = message.len();
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(message.into()))
            .map_err(to_io)?;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for WebSocketLink {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_send(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(to_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(err) => Poll::Ready(Err(to_io(err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_server_to_dial() {
        let parsed = |text: &str| Endpoint::parse(text).unwrap().unwrap();
        assert_eq!(parsed("wss://tunnel.example/hawser").server, "tunnel.example:443");
        assert_eq!(
            parsed("wss://tunnel.example:8443/a/b?x=1").server,
            "tunnel.example:8443"
        );
        assert_eq!(parsed("ws://127.0.0.1:9000").server, "127.0.0.1:9000");
        assert_eq!(parsed("ws://[::1]/h").server, "[::1]:80");
        assert_eq!(parsed("wss://[::1]:4443/h").server, "[::1]:4443");
        assert!(parsed("wss://h/p").tls && !parsed("ws://h/p").tls);
        assert_eq!(Endpoint::parse("tunnel.example:7000"), Ok(None));
        assert!(Endpoint::parse("wss:///path").is_err());
        assert!(Endpoint::parse("wss://user:pw@host/").is_err());
        assert!(Endpoint::parse("wss://host:99999/").is_err());
        assert!(Endpoint::parse("wss://host/a path").is_err());
    }

    /// Bytes written on one end arrive whole and in order on the other,
    /// however the writes were cut into messages; closing is an end of file
    /// for the other end. (A WebSocket has no half-close: the session does
    /// not need one from its link.)
    #[tokio::test]
    async fn a_websocket_carries_bytes_both_ways() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sent: Vec<u8> = (0..(MAX_MESSAGE * 2 + 7)).map(|i| (i % 251) as u8).collect();
        let header = [1u8; 12];
        let total = header.len() + sent.len();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut link = accept(Box::new(tcp)).await.unwrap();
            let mut got = vec![0u8; total];
            link.read_exact(&mut got).await.unwrap();
            link.write_all(&got).await.unwrap();
            link.flush().await.unwrap();
            assert_eq!(
                link.read(&mut [0u8; 1]).await.unwrap(),
                0,
                "the client's close ends the stream"
            );
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut link = connect(Box::new(tcp), &format!("ws://{addr}/any/path")).await.unwrap();
        let written = link
            .write_vectored(&[io::IoSlice::new(&header), io::IoSlice::new(&sent)])
            .await
            .unwrap();
        assert_eq!(written, MAX_MESSAGE, "one message is at most MAX_MESSAGE");
        link.write_all(&sent[written - header.len()..]).await.unwrap();
        link.flush().await.unwrap();
        let mut echoed = vec![0u8; total];
        link.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed[..12], &header);
        assert_eq!(&echoed[12..], &sent[..]);
        link.shutdown().await.unwrap();
        server.await.unwrap();
    }
}
