//! The `tunnel` workload: the same transfer straight to a sink over TCP, and
//! through the hawser tunnel (a server and a client in this process, `-L` to
//! the sink) with TLS and with `--insecure-plaintext`. One connection moving
//! `bulk_one` bytes, and 100 connections moving `bulk_hundred` each.
//!
//! `relay-tcp` is the ceiling for any forwarder with the tunnel's shape: the
//! same three TCP hops (sender to client, client to server, server to sink)
//! through two plain relays that only copy bytes, with no framing, no
//! multiplexing and no encryption.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hawser_tunnel::auth::Token;
use hawser_tunnel::client::{Client, ClientOptions, Forward};
use hawser_tunnel::link::Dialer;
use hawser_tunnel::server::{Server, ServerOptions};
use hawser_tunnel::tls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::workloads::Figure;
use crate::Sizes;

/// The ways to reach the sink.
pub const IMPLS: [&str; 4] = ["direct-tcp", "relay-tcp", "tunnel-tls", "tunnel-plaintext"];

/// A sink: reads each connection to its end, then answers one byte, so that the
/// sender knows everything arrived.
async fn sink() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = tcp.write_all(b"!").await;
            });
        }
    });
    Ok(addr)
}

/// A relay: each connection accepted is copied both ways to a new connection
/// to `target`, with the tunnel's 256 KiB reads; returns its address.
async fn relay(target: SocketAddr) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let _ =
                    tokio::io::copy_bidirectional_with_sizes(&mut inbound, &mut outbound, 256 * 1024, 256 * 1024).await;
            });
        }
    });
    Ok(addr)
}

fn other(err: impl ToString) -> io::Error {
    io::Error::other(err.to_string())
}

/// What a tunnel server and its client share: the token, and TLS (a fresh
/// self-signed certificate the client trusts by fingerprint) or none.
pub struct Keys {
    token: Token,
    server_tls: Option<Arc<rustls::ServerConfig>>,
    client_tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Keys {
    pub fn new(with_tls: bool) -> io::Result<Keys> {
        let token = Token::parse(&Token::generate()?).map_err(other)?;
        let (server_tls, client_tls) = if with_tls {
            let (cert, key, fingerprint) = tls::self_signed(vec!["localhost".into()]).map_err(other)?;
            let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).map_err(other)?];
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(other)?;
            let server = tls::server_config(chain, key).map_err(other)?;
            let client = tls::client_config(&tls::Trust::Fingerprint(fingerprint)).map_err(other)?;
            let name = ServerName::try_from("localhost").map_err(other)?;
            (Some(server), Some((client, name)))
        } else {
            (None, None)
        };
        Ok(Keys {
            token,
            server_tls,
            client_tls,
        })
    }

    /// Serves tunnel clients on `listener`, forwarding to `target` only, in a
    /// task of the current runtime.
    pub fn serve(&self, listener: TcpListener, target: SocketAddr) -> io::Result<()> {
        let server = Server::new(ServerOptions {
            clients: hawser_tunnel::rights::Clients::single(
                self.token.clone(),
                hawser_tunnel::allow::Rules::parse(&[target.to_string()]).map_err(io::Error::other)?,
                Vec::new(),
            ),
            tls: self.server_tls.clone(),
            config: hawser_tunnel::session_config(),
        })?;
        tokio::spawn(server.serve(listener));
        Ok(())
    }

    /// A client of the server at `server`, with one `-L` forward from an
    /// ephemeral loopback port to `target`, redialling under `retry`; returns
    /// the forward's address (and the client, which must live as long as it
    /// is used).
    pub async fn client(
        &self,
        server: SocketAddr,
        target: SocketAddr,
        retry: hawser_tokio::RetryPolicy,
    ) -> io::Result<(SocketAddr, Arc<Client>)> {
        let client = Client::start(ClientOptions {
            dialer: Dialer {
                server: server.to_string(),
                tls: self.client_tls.clone(),
                token: self.token.clone(),
                proxy: None,
            },
            forwards: vec![Forward {
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                target: target.to_string(),
            }],
            reverses: Vec::new(),
            socks: Vec::new(),
            socks_credentials: None,
            config: hawser_tunnel::session_config(),
            retry,
        })
        .await
        .map_err(other)?;
        let local = *client.local_addrs.first().ok_or_else(|| other("no local listener"))?;
        Ok((local, client))
    }
}

/// A tunnel server and client to `target`, both on loopback; returns the
/// client's local address (and the client, which must live as long as it is
/// used).
async fn tunnel(target: SocketAddr, with_tls: bool) -> io::Result<(SocketAddr, Arc<Client>)> {
    let keys = Keys::new(with_tls)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server_addr = listener.local_addr()?;
    keys.serve(listener, target)?;
    keys.client(server_addr, target, hawser_tokio::RetryPolicy::default())
        .await
}

/// Sends `bytes` on each of `connections` connections to `addr`; MB/s in all.
async fn send(addr: SocketAddr, connections: usize, bytes: usize) -> io::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let chunk = vec![0x5au8; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len());
                tcp.write_all(&chunk[..n]).await?;
                left -= n;
            }
            tcp.shutdown().await?;
            let mut done = [0u8; 1];
            tcp.read_exact(&mut done).await?;
            Ok::<_, io::Error>(())
        }));
    }
    for task in tasks {
        task.await.map_err(other)??;
    }
    Ok((connections * bytes) as f64 / 1e6 / started.elapsed().as_secs_f64())
}

/// One repetition for `which`.
pub async fn run(which: &'static str, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    let target = sink().await?;
    let (addr, client) = match which {
        "direct-tcp" => (target, None),
        "relay-tcp" => (relay(relay(target).await?).await?, None),
        "tunnel-tls" => tunnel(target, true).await.map(|(addr, client)| (addr, Some(client)))?,
        _ => tunnel(target, false).await.map(|(addr, client)| (addr, Some(client)))?,
    };
    let bulk = send(addr, 1, sizes.bulk_one).await?;
    let hundred = send(addr, 100, sizes.bulk_hundred).await?;
    if let Some(client) = client {
        client.shut_down(std::time::Duration::from_secs(1)).await;
    }
    Ok(vec![
        Figure {
            metric: "bulk-1",
            value: bulk,
            unit: "MB/s",
        },
        Figure {
            metric: "bulk-100",
            value: hundred,
            unit: "MB/s",
        },
    ])
}
