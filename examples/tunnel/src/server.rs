//! `hawser server`: accepts links (TLS, then the token proof, then a resumable
//! session), and serves each stream: dials allowed targets for `-L`, listens on
//! allowed ports for `-R`. Nothing else is ever forwarded.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hawser_core::Config;
use hawser_tokio::{Accepted, Acceptor, Control, Session};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::allow::{self, Rules};
use crate::auth::{Gate, Token};
use crate::cli::ServerArgs;
use crate::forward::{self, Counters};
use crate::link::{check_plaintext, Link, LINK_SETUP_TIMEOUT};
use crate::metrics::{Family, Kind, Refusals};
use crate::tls;
use crate::wire::{self, codes, Refusal, Request};

/// Links that may be between TCP accept and a proven token at once; more wait
/// in the listen backlog. Each costs a TLS handshake's state and no session.
const MAX_UNAUTHENTICATED: usize = 256;
/// Failed token proofs allowed per source address and minute.
const AUTH_FAILURES_PER_MINUTE: u32 = 10;
/// How long a stream may take to say what it is for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dialling a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reverse listeners one session may hold.
const MAX_REVERSE_PER_SESSION: usize = 16;

/// What the server does.
pub struct ServerOptions {
    /// The shared secret clients must prove.
    pub token: Token,
    /// TLS; `None` for plaintext (loopback only).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What `-L` connections may reach (see [`crate::allow`]).
    pub allow: Rules,
    /// Addresses `-R` may listen on.
    pub allow_reverse: Vec<SocketAddr>,
    /// The sessions' configuration (resumption on).
    pub config: Config,
}

impl ServerOptions {
    /// The options `hawser server` runs with: the token and certificate
    /// loaded, the allow lists checked. Prints the certificate's fingerprint.
    pub fn from_args(args: &ServerArgs) -> Result<ServerOptions, String> {
        let token = Token::from_file(&args.common.token_file)?;
        let tls = if args.common.insecure_plaintext {
            check_plaintext(args.listen)?;
            tracing::warn!("plaintext: the link is not encrypted (loopback only)");
            None
        } else {
            let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
                return Err("--cert and --key are needed (or --insecure-plaintext on loopback)".into());
            };
            let (chain, key) = tls::load_cert(cert, key)?;
            println!("certificate fingerprint {}", tls::fingerprint(&chain[0]));
            Some(tls::server_config(chain, key)?)
        };
        let allow_reverse = args
            .allow_reverse
            .iter()
            .map(|entry| parse_reverse_bind(entry))
            .collect::<Result<_, _>>()?;
        let allow = Rules::parse(&args.allow)?;
        Ok(ServerOptions {
            token,
            tls,
            allow,
            allow_reverse,
            config: crate::session_config(),
        })
    }
}

/// An `--allow-reverse` entry: `PORT` (on 127.0.0.1) or `ADDR:PORT`.
fn parse_reverse_bind(entry: &str) -> Result<SocketAddr, String> {
    match entry.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => entry
            .parse::<SocketAddr>()
            .map_err(|_| format!("--allow-reverse {entry:?} is not PORT or ADDR:PORT")),
    }
}

/// A running server: what it has, for the status line and for shutting down.
pub struct Server {
    options: Arc<ServerOptions>,
    acceptor: Acceptor<Link>,
    gate: Gate,
    unauthenticated: Semaphore,
    sessions: Mutex<Vec<Control>>,
    /// Forwarded connections.
    pub counters: Arc<Counters>,
    /// Set when shutting down: the reverse listeners close.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Refusals by reason, for `--metrics`.
    pub refusals: Refusals,
}

impl Server {
    /// A server with `options`.
    pub fn new(options: ServerOptions) -> io::Result<Arc<Server>> {
        let acceptor = Acceptor::new(options.config.clone())?;
        Ok(Arc::new(Server {
            options: Arc::new(options),
            acceptor,
            gate: Gate::new(AUTH_FAILURES_PER_MINUTE),
            unauthenticated: Semaphore::new(MAX_UNAUTHENTICATED),
            sessions: Mutex::new(Vec::new()),
            counters: Arc::default(),
            stopping: tokio::sync::watch::channel(false).0,
            refusals: Refusals::default(),
        }))
    }

    /// Sessions alive now.
    pub fn live_sessions(&self) -> Vec<Control> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|control| !control.is_closed());
        sessions.clone()
    }

    /// What the acceptor holds (sessions, detached ones) and what its budgets did.
    pub fn acceptor_stats(&self) -> hawser_tokio::AcceptorStats {
        self.acceptor.stats()
    }

    /// Logs a status line every `every`: sessions, connections and bytes.
    pub async fn log_status(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let stats = self.acceptor_stats();
            let counters = &self.counters;
            tracing::info!(
                sessions = stats.sessions,
                detached = stats.detached,
                connections = counters.open.load(Ordering::Relaxed),
                connections_total = counters.total.load(Ordering::Relaxed),
                bytes_in = counters.received.load(Ordering::Relaxed),
                bytes_out = counters.sent.load(Ordering::Relaxed),
                "status"
            );
        }
    }

    /// Serves `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let this = self.clone();
            tokio::spawn(async move { this.serve_link(tcp, peer).await });
        }
    }

    async fn serve_link(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let Ok(permit) = self.unauthenticated.try_acquire() else {
            tracing::debug!(%peer, "too many links being set up; dropped");
            return;
        };
        let _ = tcp.set_nodelay(true);
        let link = match tokio::time::timeout(LINK_SETUP_TIMEOUT, self.open_link(tcp, peer.ip())).await {
            Ok(Ok(link)) => link,
            Ok(Err(why)) => {
                tracing::debug!(%peer, %why, "link refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "link setup timed out");
                return;
            }
        };
        drop(permit);
        match self.acceptor.accept_from(link, peer.ip()).await {
            Ok(Accepted::New(session)) => {
                tracing::info!(%peer, "new session");
                self.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(session.control());
                self.serve_session(session, peer).await;
            }
            Ok(Accepted::Resumed) => tracing::debug!(%peer, "link resumed a session"),
            Ok(Accepted::Refused(refusal)) => tracing::debug!(%peer, %refusal, "resume refused"),
            Err(err) => tracing::debug!(%peer, %err, "link dropped before its session opened"),
        }
    }

    async fn open_link(&self, tcp: TcpStream, source: IpAddr) -> Result<Link, String> {
        let mut link: Link = match &self.options.tls {
            Some(config) => {
                if !speaks_first(&tcp).await {
                    // A TLS client sends its hello at once; a plaintext one
                    // waits for the challenge. Tell it, in the clear.
                    self.refusals.tls_mismatch.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%source, "a client without TLS reached this TLS server; refused");
                    let mut tcp = tcp;
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, &[crate::auth::STATUS_TLS_REQUIRED]).await;
                    return Err("the client does not speak TLS".into());
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
                Box::new(acceptor.accept(tcp).await.map_err(|err| format!("TLS: {err}"))?)
            }
            None => Box::new(tcp),
        };
        match self.gate.check(&mut link, source, &self.options.token).await {
            Ok(()) => Ok(link),
            Err(crate::auth::AuthError::TlsUnexpected) => {
                self.refusals.tls_mismatch.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%source, "a TLS client reached this plaintext server; refused");
                Err(crate::auth::AuthError::TlsUnexpected.to_string())
            }
            Err(err) => {
                if err != crate::auth::AuthError::NotATunnel {
                    self.refusals.authentication.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%source, %err, "link refused");
                }
                Err(err.to_string())
            }
        }
    }

    /// Serves one session; `client` is the address its first link came from,
    /// which names the client in the access log and in refusals.
    async fn serve_session(self: &Arc<Self>, session: Session, client: SocketAddr) {
        let reverse = Arc::new(Semaphore::new(MAX_REVERSE_PER_SESSION));
        while let Some(stream) = session.accept().await {
            let this = self.clone();
            let control = session.control();
            let reverse = reverse.clone();
            tokio::spawn(async move { this.serve_stream(stream, control, reverse, client).await });
        }
        match session.closed().await {
            Ok(()) => tracing::info!(%client, "session ended"),
            Err(err) => tracing::info!(%client, %err, "session ended"),
        }
    }

    async fn serve_stream(
        self: Arc<Self>,
        mut stream: hawser_tokio::Stream,
        control: Control,
        reverse: Arc<Semaphore>,
        client: SocketAddr,
    ) {
        let request = match tokio::time::timeout(REQUEST_TIMEOUT, Request::read(&mut stream)).await {
            Ok(Ok(request)) => request,
            Ok(Err(err)) => {
                tracing::debug!(%client, %err, "bad stream request");
                self.refusals.bad_request.fetch_add(1, Ordering::Relaxed);
                stream.reset(codes::BAD_REQUEST);
                return;
            }
            Err(_) => {
                self.refusals.bad_request.fetch_add(1, Ordering::Relaxed);
                stream.reset(codes::BAD_REQUEST);
                return;
            }
        };
        match request {
            Request::Connect(target) => self.connect(stream, target, client).await,
            Request::Listen(address) => self.listen(stream, address, control, reverse, client).await,
            Request::Reverse(_) => {
                tracing::debug!("a client sent a server's request");
                stream.reset(codes::BAD_REQUEST);
            }
        }
    }

    /// Where `target` may be reached: its addresses that the allow rules
    /// admit, looked up here; or the refusal to send.
    async fn admitted(&self, target: &str, client: SocketAddr) -> Result<Vec<SocketAddr>, Refusal> {
        let refused = |message: String| {
            tracing::warn!(%client, %target, "refused: {message}");
            Refusal {
                code: codes::NOT_ALLOWED,
                message,
            }
        };
        let Some((host, port)) = allow::split_target(target) else {
            return Err(refused(format!("{target:?} is not HOST:PORT")));
        };
        let rules = &self.options.allow;
        if rules.refuse_unresolved(host, port) {
            return Err(refused(format!("{target} is not on the server's --allow list")));
        }
        let resolved: Vec<SocketAddr> =
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(addresses)) => addresses.collect(),
                Ok(Err(err)) => {
                    tracing::info!(%client, %target, %err, "cannot resolve the target");
                    return Err(Refusal {
                        code: codes::TARGET_UNREACHABLE,
                        message: format!("the server cannot resolve {host}: {err}"),
                    });
                }
                Err(_) => {
                    return Err(Refusal {
                        code: codes::TARGET_TIMEOUT,
                        message: format!("resolving {host} took more than {} s", CONNECT_TIMEOUT.as_secs()),
                    })
                }
            };
        let admitted = rules.admitted(host, &resolved);
        if admitted.is_empty() {
            return Err(refused(format!(
                "{target} resolves to {}, which the server's --allow list does not admit",
                resolved.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(admitted)
    }

    async fn connect(&self, mut stream: hawser_tokio::Stream, target: String, client: SocketAddr) {
        let addresses = match self.admitted(&target, client).await {
            Ok(addresses) => addresses,
            Err(refusal) => return self.refuse(stream, refusal).await,
        };
        let dial = async {
            let mut last = None;
            for address in &addresses {
                match TcpStream::connect(address).await {
                    Ok(tcp) => return Ok((tcp, *address)),
                    Err(err) => last = Some(err),
                }
            }
            Err(last.unwrap_or_else(|| io::Error::other("no address")))
        };
        let (tcp, address) = match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(err)) => {
                tracing::info!(%client, %target, %err, "cannot reach the target");
                let refusal = Refusal {
                    code: codes::TARGET_UNREACHABLE,
                    message: format!("the server cannot connect to {target}: {err}"),
                };
                self.refuse(stream, refusal).await;
                return;
            }
            Err(_) => {
                tracing::info!(%client, %target, "the target did not answer in time");
                let refusal = Refusal {
                    code: codes::TARGET_TIMEOUT,
                    message: format!("{target} did not answer within {} s", CONNECT_TIMEOUT.as_secs()),
                };
                self.refuse(stream, refusal).await;
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        forward::arm_reset(&tcp);
        if wire::write_answer(&mut stream, &Ok(())).await.is_err() {
            forward::reset_tcp(tcp);
            return;
        }
        let started = std::time::Instant::now();
        let (end, transfer) = forward::splice_counted(tcp, stream, &self.counters).await;
        let ended = match &end {
            forward::End::Clean => "closed".to_string(),
            forward::End::Local(err) => format!("the target failed ({err}); stream reset"),
            forward::End::Remote(err) => format!("the client's side failed ({}); target reset", forward::describe(err)),
        };
        // The access log: one line per forwarded connection.
        tracing::info!(
            %client,
            %target,
            %address,
            bytes_to_target = transfer.to_tcp,
            bytes_from_target = transfer.from_tcp,
            seconds = format_args!("{:.3}", started.elapsed().as_secs_f64()),
            ended,
            "connection"
        );
    }

    async fn listen(
        &self,
        mut stream: hawser_tokio::Stream,
        address: String,
        control: Control,
        reverse: Arc<Semaphore>,
        client: SocketAddr,
    ) {
        let allowed = address
            .parse::<SocketAddr>()
            .ok()
            .filter(|addr| self.options.allow_reverse.contains(addr));
        let Some(addr) = allowed else {
            tracing::warn!(%client, %address, "refused: reverse listener not allowed");
            let refusal = Refusal {
                code: codes::NOT_ALLOWED,
                message: format!("listening on {address} is not on the server's --allow-reverse list"),
            };
            self.refuse(stream, refusal).await;
            return;
        };
        let Ok(_slot) = reverse.try_acquire() else {
            let refusal = Refusal {
                code: codes::NOT_ALLOWED,
                message: format!("at most {MAX_REVERSE_PER_SESSION} reverse listeners per session"),
            };
            self.refuse(stream, refusal).await;
            return;
        };
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(err) => {
                let refusal = Refusal {
                    code: codes::TARGET_UNREACHABLE,
                    message: format!("the server cannot listen on {addr}: {err}"),
                };
                self.refuse(stream, refusal).await;
                return;
            }
        };
        if wire::write_answer(&mut stream, &Ok(())).await.is_err() {
            return;
        }
        tracing::info!(%client, %addr, "reverse listener open");
        let mut stopping = self.stopping.subscribe();
        // The listener lives as long as the request's stream: until the client
        // finishes it or the session ends.
        let mut ignored = [0u8; 64];
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, peer)) = accepted else { continue };
                    let _ = tcp.set_nodelay(true);
                    forward::arm_reset(&tcp);
                    let control = control.clone();
                    let address = address.clone();
                    let counters = self.counters.clone();
                    tokio::spawn(async move {
                        let mut stream = match control.open_stream().await {
                            Ok(stream) => stream,
                            Err(err) => {
                                tracing::debug!(%peer, %err, "cannot open a stream for a reverse connection");
                                forward::reset_tcp(tcp);
                                return;
                            }
                        };
                        if Request::Reverse(address).write(&mut stream).await.is_err() {
                            forward::reset_tcp(tcp);
                            return;
                        }
                        if let forward::End::Remote(err) = forward::splice(tcp, stream, &counters).await {
                            tracing::debug!(%peer, why = %forward::describe(&err), "reverse connection reset");
                        }
                    });
                }
                read = stream.read(&mut ignored) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        break;
                    }
                }
                // Shutting down: the listener closes, and ending the
                // request's stream lets the drain finish without it.
                _ = stopping.wait_for(|stopping| *stopping) => break,
            }
        }
        tracing::info!(%addr, "reverse listener closed");
    }

    /// Asks every live session to go away, closes the reverse listeners, and
    /// waits up to `drain` for the sessions to end; the connections still
    /// open then are reset at both ends.
    pub async fn shut_down(&self, drain: Duration) {
        self.stopping.send_replace(true);
        crate::shutdown::drain(&self.live_sessions(), drain, REASON, &self.counters.open).await;
    }

    /// Tells the client why, then finishes the stream; counts the refusal.
    async fn refuse(&self, mut stream: hawser_tokio::Stream, refusal: Refusal) {
        let counter = match refusal.code {
            codes::NOT_ALLOWED => &self.refusals.not_allowed,
            codes::TARGET_UNREACHABLE => &self.refusals.unreachable,
            codes::TARGET_TIMEOUT => &self.refusals.timeout,
            _ => &self.refusals.bad_request,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if wire::write_answer(&mut stream, &Err(refusal)).await.is_ok() {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        }
    }

    /// The server's figures for `--metrics`.
    pub fn metrics(&self) -> Vec<Family> {
        let stats = self.acceptor_stats();
        let sessions = self.live_sessions();
        let statuses: Vec<_> = sessions.iter().map(|control| control.status()).collect();
        let counters = &self.counters;
        let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let mut families = counters.families();
        families.extend([
            Family::single(
                "hawser_tunnel_sessions",
                "Client sessions alive, attached or detached.",
                Kind::Gauge,
                stats.sessions as f64,
            ),
            Family::single(
                "hawser_tunnel_sessions_detached",
                "Sessions waiting for their client to come back.",
                Kind::Gauge,
                stats.detached as f64,
            ),
            Family::single(
                "hawser_tunnel_bytes_to_targets_total",
                "Bytes from clients out to targets.",
                Kind::Counter,
                count(&counters.received),
            ),
            Family::single(
                "hawser_tunnel_bytes_from_targets_total",
                "Bytes from targets back to clients.",
                Kind::Counter,
                count(&counters.sent),
            ),
            Family::labelled(
                "hawser_tunnel_refusals_total",
                "Links and connections refused, by reason.",
                Kind::Counter,
                "reason",
                self.refusals.samples(),
            ),
            Family::single(
                "hawser_tunnel_resumes",
                "Resumes of the sessions alive now.",
                Kind::Gauge,
                statuses.iter().map(|s| s.resumes as f64).sum(),
            ),
            Family::single(
                "hawser_tunnel_bytes_replayed",
                "Bytes replayed after resumes, by the sessions alive now.",
                Kind::Gauge,
                sessions.iter().map(|c| c.stats().bytes_replayed as f64).sum(),
            ),
            Family::single(
                "hawser_tunnel_detached_bytes_held",
                "Bytes the detached sessions hold for their clients.",
                Kind::Gauge,
                stats.detached_held as f64,
            ),
        ]);
        families
    }

    /// Ends every session at once (a second signal): open connections are
    /// reset at both ends.
    pub async fn close_now(&self) {
        self.stopping.send_replace(true);
        crate::shutdown::end_now(&self.live_sessions(), REASON).await;
    }
}

/// Whether the client sends something within 3 s of connecting, as a
/// TLS client does (its hello); a plaintext tunnel client sends nothing
/// until it has the challenge.
async fn speaks_first(tcp: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(3), tcp.peek(&mut first)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// The go-away reason clients log when the server shuts down.
const REASON: &str = "the server is shutting down";
