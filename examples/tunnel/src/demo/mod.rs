//! `hawser demo`: the whole tunnel on loopback, in one process. An echo service
//! is the target; a TLS server with a fresh self-signed certificate and token
//! allows just it; a client forwards a local port to it through a proxy that
//! kills the link several times mid-transfer. Every byte that comes back is
//! checked, and the same transfer straight to the echo service gives the
//! baseline.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::auth::Token;
use crate::client::{Client, ClientOptions, Forward};
use crate::link::Dialer;
use crate::server::{Server, ServerOptions};
use crate::tls;
use cutter::{LinkCutter, Pattern};

mod cutter;

const CHUNK: usize = 64 * 1024;

/// An echo service: what each connection sends comes back.
async fn echo_service() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let (mut from, mut to) = tcp.into_split();
                if tokio::io::copy(&mut from, &mut to).await.is_ok() {
                    let _ = to.shutdown().await;
                }
            });
        }
    });
    Ok(addr)
}

/// Sends `bytes` of a pattern on each of `connections` connections to `addr`
/// and checks every byte of the echo; `progress` counts bytes checked.
async fn transfer(
    addr: SocketAddr,
    connections: u64,
    bytes: u64,
    progress: Arc<AtomicU64>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for seed in 0..connections {
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.map_err(|err| err.to_string())?;
            tcp.set_nodelay(true).map_err(|err| err.to_string())?;
            let (mut from, mut to) = tcp.into_split();
            let writing = async move {
                let mut pattern = Pattern::new(seed);
                while pattern.position() < bytes {
                    let len = CHUNK.min((bytes - pattern.position()) as usize);
                    to.write_all(&pattern.take(len))
                        .await
                        .map_err(|err| format!("write: {err}"))?;
                }
                // Half-close: the echo's end must still come back.
                to.shutdown().await.map_err(|err| format!("shutdown: {err}"))
            };
            let reading = async move {
                let mut pattern = Pattern::new(seed);
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = from.read(&mut buf).await.map_err(|err| format!("read: {err}"))?;
                    if n == 0 {
                        break;
                    }
                    pattern.check(&buf[..n])?;
                    progress.fetch_add(n as u64, Ordering::Relaxed);
                }
                if pattern.position() == bytes {
                    Ok(())
                } else {
                    Err(format!(
                        "connection {seed}: {} of {bytes} bytes came back",
                        pattern.position()
                    ))
                }
            };
            tokio::try_join!(writing, reading).map(|_| ())
        }));
    }
    for task in tasks {
        task.await.map_err(|err| err.to_string())??;
    }
    Ok(started.elapsed())
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

/// Runs the demo; the exit status says whether every byte came back.
pub async fn run(megabytes: u64, kills: u64, connections: u64) -> ExitCode {
    match demo(megabytes, kills, connections.max(1)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(megabytes: u64, kills: u64, connections: u64) -> Result<(), String> {
    let per_connection = megabytes * 1_000_000 / connections;
    let total = per_connection * connections;
    let target = echo_service().await.map_err(|err| err.to_string())?;

    let (cert_pem, key_pem, fingerprint) = tls::self_signed(vec!["localhost".into()])?;
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|err| err.to_string())?];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|err| err.to_string())?;
    let token = Token::parse(&Token::generate().map_err(|err| err.to_string())?)?;
    let server = Server::new(ServerOptions {
        clients: crate::rights::Clients::single(
            token.clone(),
            crate::allow::Rules::parse(&[target.to_string()])?,
            Vec::new(),
        ),
        tls: Some(tls::server_config(chain, key)?),
        config: crate::session_config(),
    })
    .map_err(|err| err.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|err| err.to_string())?;
    let server_addr = listener.local_addr().map_err(|err| err.to_string())?;
    tokio::spawn(server.clone().serve(listener));
    let proxy = Arc::new(LinkCutter::start(server_addr).await.map_err(|err| err.to_string())?);

    let client_tls = tls::client_config(&tls::Trust::Fingerprint(fingerprint.clone()))?;
    let name = ServerName::try_from("localhost").map_err(|err| err.to_string())?;
    let client = Client::start(ClientOptions {
        dialer: Dialer {
            server: proxy.addr().to_string(),
            tls: Some((client_tls, name)),
            token,
            proxy: None,
            websocket: None,
        },
        forwards: vec![Forward {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            target: target.to_string(),
        }],
        reverses: Vec::new(),
        socks: Vec::new(),
        socks_credentials: None,
        config: crate::session_config(),
        retry: hawser_tokio::RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
            ..hawser_tokio::RetryPolicy::default()
        },
    })
    .await
    .map_err(|err| err.to_string())?;
    let local = *client.local_addrs.first().ok_or("no local listener")?;
    println!("hawser demo: echo service at {target}; TLS server at {server_addr} (fingerprint {fingerprint});");
    println!(
        "  client forwarding {local} -> {target} through a proxy at {} that kills the link {kills} times",
        proxy.addr()
    );

    let direct = transfer(target, connections, per_connection, Arc::default()).await?;
    println!(
        "  direct TCP:  {} MB each way over {connections} connections in {:.2} s ({:.0} MB/s)",
        total / 1_000_000,
        direct.as_secs_f64(),
        mb_per_s(total, direct)
    );

    // The killer cuts the link each time another share of the data is back.
    let progress = Arc::new(AtomicU64::new(0));
    let killer = {
        let (proxy, progress) = (proxy.clone(), progress.clone());
        tokio::spawn(async move {
            for kill in 1..=kills {
                let at = total * kill / (kills + 1);
                while progress.load(Ordering::Relaxed) < at {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                proxy.cut();
            }
        })
    };
    let tunnel = transfer(local, connections, per_connection, progress).await?;
    let _ = killer.await;
    let control = client.session().ok_or("the client has no session")?;
    let stats = control.stats();
    println!(
        "  tunnel:      {} MB each way in {:.2} s ({:.0} MB/s), {:.2}x direct TCP; every byte checked",
        total / 1_000_000,
        tunnel.as_secs_f64(),
        mb_per_s(total, tunnel),
        direct.as_secs_f64() / tunnel.as_secs_f64()
    );
    println!(
        "  link killed {} times: {} resumes, {} reconnect attempts, {} bytes replayed, {} session(s); nothing lost or repeated",
        proxy.cuts(),
        stats.resumes,
        control.reconnects(),
        stats.bytes_replayed,
        client.sessions_built()
    );
    if client.sessions_built() != 1 {
        return Err("the session had to be rebuilt: connections were lost".into());
    }
    client.shut_down(Duration::from_secs(5)).await;
    Ok(())
}
