//! The `tunnel` workload: the same transfers straight to a sink over TCP, and
//! through forwarders, each in processes of its own: two plain relays
//! (`relay-tcp`), the `hawser` command's server and client with TLS, with TLS
//! under a WebSocket (`tunnel-wss`: `--listen-ws`, `--connect wss://`) and
//! with `--insecure-plaintext`, and `ssh -L` where `sshd` is installed. One
//! connection moving `tunnel_one` bytes (1 GiB), and 100 connections moving
//! `tunnel_each` (10 MiB) each; for each, the CPU time the forwarder's processes
//! spent, per GiB moved (`cpu-1`, `cpu-100`, on Linux), a figure that holds
//! where wall-clock throughput cannot judge a three-hop forwarder because
//! sender, forwarders and sink share two cores.
//!
//! `relay-tcp` is the floor for any forwarder with the tunnel's shape: the
//! same three TCP hops (sender to client, client to server, server to sink)
//! through two relays that only copy bytes, with no framing, no
//! multiplexing and no encryption.
//!
//! The `hawser` processes run the command's own code
//! ([`hawser_tunnel::command::main`]) in this binary (`hawser-bench --hawser
//! ARGS`), and the relays are `hawser-bench --relay-to ADDR`.

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

use crate::procs::{self, Process};
use crate::workloads::Figure;
use crate::Sizes;

/// The ways to reach the sink, in the order each round runs them: `ssh-L`
/// too where `sshd` is installed, right after `tunnel-tls`, so that the
/// round's own ratio of the two compares runs made back to back.
pub fn impls() -> Vec<&'static str> {
    let mut impls = vec!["direct-tcp", "relay-tcp", "tunnel-tls"];
    if crate::ssh::sshd().is_some() {
        impls.push("ssh-L");
    }
    impls.extend(["tunnel-wss", "tunnel-plaintext"]);
    impls
}

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
                websocket: None,
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

/// `hawser-bench --relay-to ADDR`: a relay to `ADDR` in this process, until
/// it is killed; prints `relaying on ADDR` once it accepts connections.
pub fn relay_main(mut args: impl Iterator<Item = String>) -> ! {
    let target: SocketAddr = match args.next().and_then(|addr| addr.parse().ok()) {
        Some(target) => target,
        None => {
            eprintln!("--relay-to needs an address");
            std::process::exit(2);
        }
    };
    let runtime = crate::build_runtime(true);
    runtime.block_on(async {
        match relay(target).await {
            Ok(addr) => println!("relaying on {addr}"),
            Err(err) => {
                eprintln!("cannot relay: {err}");
                std::process::exit(1);
            }
        }
        std::future::pending::<()>().await;
    });
    unreachable!("the relay runs until it is killed")
}

/// A forwarder in child processes: where to connect, and what runs.
struct Forwarder {
    entry: SocketAddr,
    pids: Vec<u32>,
    _keep: Box<dyn std::any::Any + Send>,
    /// The token, certificate and logs; removed when dropped (after the
    /// processes, which `_keep` ends first).
    _dir: Option<TempDir>,
}

/// A fresh directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(what: &str) -> io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("hawser-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// Writes a file only its owner can read, as secrets must be.
    fn secret(&self, name: &str, contents: &str) -> io::Result<String> {
        let path = self.file(name);
        std::fs::write(&path, contents)?;
        #[cfg(unix)]
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(path.display().to_string())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This benchmark's own binary, run again as a relay or as `hawser`.
fn this_binary(args: &[&str]) -> io::Result<std::process::Command> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(args);
    Ok(command)
}

/// Starts `which` in front of `target`; blocks until it accepts connections.
fn start(which: &str, target: SocketAddr) -> io::Result<Forwarder> {
    let target_text = target.to_string();
    match which {
        "direct-tcp" => Ok(Forwarder {
            entry: target,
            pids: Vec::new(),
            _keep: Box::new(()),
            _dir: None,
        }),
        "relay-tcp" => {
            let dir = TempDir::new("relay")?;
            let (second, at) = Process::start(
                this_binary(&["--relay-to", &target_text])?,
                "relaying on ",
                dir.file("second.log"),
            )?;
            let (first, entry) = Process::start(
                this_binary(&["--relay-to", &at])?,
                "relaying on ",
                dir.file("first.log"),
            )?;
            Ok(Forwarder {
                entry: entry.parse().map_err(other)?,
                pids: vec![first.id(), second.id()],
                _keep: Box::new((first, second)),
                _dir: Some(dir),
            })
        }
        "tunnel-tls" | "tunnel-wss" | "tunnel-plaintext" => {
            let websocket = which == "tunnel-wss";
            let dir = TempDir::new(which)?;
            let token = dir.secret("token", &format!("{}\n", Token::generate()?))?;
            let mut server_args = vec![
                "--hawser".to_string(),
                "server".into(),
                if websocket { "--listen-ws" } else { "--listen" }.into(),
                "127.0.0.1:0".into(),
                "--token-file".into(),
                token.clone(),
                "--allow".into(),
                target_text.clone(),
            ];
            let mut client_trust = Vec::new();
            if which != "tunnel-plaintext" {
                let (cert, key, fingerprint) = tls::self_signed(vec!["localhost".into()]).map_err(other)?;
                std::fs::write(dir.file("cert.pem"), cert)?;
                let key = dir.secret("key.pem", &key)?;
                server_args.extend([
                    "--cert".into(),
                    dir.file("cert.pem").display().to_string(),
                    "--key".into(),
                    key,
                ]);
                client_trust.extend(["--fingerprint".to_string(), fingerprint]);
            } else {
                server_args.push("--insecure-plaintext".into());
                client_trust.push("--insecure-plaintext".into());
            }
            let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
            let ready = if websocket {
                "listening for WebSocket on "
            } else {
                "listening on "
            };
            let (server, at) = Process::start(this_binary(&server_args)?, ready, dir.file("server.log"))?;
            let at = if websocket { format!("wss://{at}/") } else { at };
            let forward = format!("127.0.0.1:0:{target}");
            let mut client_args = vec![
                "--hawser",
                "client",
                "--connect",
                &at,
                "--token-file",
                &token,
                "-L",
                &forward,
            ];
            client_args.extend(client_trust.iter().map(String::as_str));
            let (client, forwarding) =
                Process::start(this_binary(&client_args)?, "forwarding ", dir.file("client.log"))?;
            // "127.0.0.1:PORT -> TARGET"
            let entry = forwarding.split(" -> ").next().unwrap_or_default();
            Ok(Forwarder {
                entry: entry.parse().map_err(other)?,
                pids: vec![client.id(), server.id()],
                _keep: Box::new((client, server)),
                _dir: Some(dir),
            })
        }
        "ssh-L" => {
            let free = || -> io::Result<SocketAddr> { std::net::TcpListener::bind("127.0.0.1:0")?.local_addr() };
            let (sshd_addr, local) = (free()?, free()?);
            let running = crate::ssh::forward(
                crate::ssh::Placement {
                    server: &|sshd| std::process::Command::new(sshd),
                    client: &|ssh| std::process::Command::new(ssh),
                    wait: &wait_for,
                },
                sshd_addr,
                local,
                target,
            )?;
            Ok(Forwarder {
                entry: local,
                pids: running.pids(),
                _keep: Box::new(running),
                _dir: None,
            })
        }
        _ => Err(other(format!("no such way to the sink: {which}"))),
    }
}

/// Waits until a TCP connection to `addr` succeeds.
fn wait_for(addr: SocketAddr) -> io::Result<()> {
    crate::ssh::wait_for(addr, |addr| {
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).map(drop)
    })
}

/// The CPU seconds per GiB its processes spent on a transfer of `bytes`,
/// from the CPU time they had spent `before` it; `None` with no processes
/// or where `/proc` cannot tell.
fn cpu_per_gib(
    metric: &'static str,
    forwarder: &Forwarder,
    before: Option<std::time::Duration>,
    bytes: usize,
) -> Option<Figure> {
    let spent = procs::cpu_of(&forwarder.pids)?.checked_sub(before?)?;
    Some(Figure {
        metric,
        value: spent.as_secs_f64() / (bytes as f64 / (1u64 << 30) as f64),
        unit: "s/GiB",
    })
}

/// One repetition for `which`.
pub async fn run(which: &'static str, sizes: &Sizes) -> io::Result<Vec<Figure>> {
    let target = sink().await?;
    let forwarder = tokio::task::spawn_blocking(move || start(which, target))
        .await
        .map_err(other)??;
    let cpu = || {
        (!forwarder.pids.is_empty())
            .then(|| procs::cpu_of(&forwarder.pids))
            .flatten()
    };
    let before = cpu();
    let bulk = send(forwarder.entry, 1, sizes.tunnel_one).await?;
    let one = cpu_per_gib("cpu-1", &forwarder, before, sizes.tunnel_one);
    let before = cpu();
    let hundred = send(forwarder.entry, 100, sizes.tunnel_each).await?;
    let many = cpu_per_gib("cpu-100", &forwarder, before, 100 * sizes.tunnel_each);
    // Killing and waiting for the processes blocks.
    tokio::task::spawn_blocking(move || drop(forwarder))
        .await
        .map_err(other)?;
    let mut figures = vec![
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
    ];
    figures.extend(one);
    figures.extend(many);
    Ok(figures)
}
