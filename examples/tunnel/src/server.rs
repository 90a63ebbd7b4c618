//! `hawser server`: accepts links (TLS, then the token proof, then a resumable
//! session), and serves each stream: dials allowed targets for `-L`, listens on
//! allowed ports for `-R`. Nothing else is ever forwarded.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use hawser_core::Config;
use hawser_tokio::{Accepted, Acceptor, Control, Session};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::allow::{self, Rules};
use crate::auth::{Gate, Token};
use crate::cli::ServerArgs;
use crate::cores::Cores;
use crate::forward::{self, Counters};
use crate::link::{check_plaintext, Link, LINK_SETUP_TIMEOUT};
use crate::metrics::{Family, Kind, Refusals};
use crate::rights::{Clients, Rights, FLAGS_CLIENT};
use crate::wire::{self, codes, Refusal, Request};
use crate::{config, tls};

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
    /// The clients, each with its token and rights.
    pub clients: Clients,
    /// TLS; `None` for plaintext (loopback only).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The sessions' configuration (resumption on).
    pub config: Config,
}

/// `hawser server`'s flags and config file, combined.
pub struct ServerSetup {
    /// Where to accept clients.
    pub listen: Option<SocketAddr>,
    /// Where to accept clients over WebSocket.
    pub listen_ws: Option<SocketAddr>,
    /// `--status`.
    pub status: Option<Duration>,
    /// `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--drain`.
    pub drain: Duration,
    /// What the server does.
    pub options: ServerOptions,
}

impl ServerSetup {
    /// What `hawser server` runs with: the config file read, the flags laid
    /// over it, the tokens and certificate loaded, the allow rules checked.
    /// Prints the certificate's fingerprint.
    pub fn from_args(args: &ServerArgs) -> Result<ServerSetup, String> {
        let (source, file) = read_file(args)?;
        let source_ref = source.as_ref();
        let listen = config::address(args.listen, source_ref, &file.listen, "listen")?;
        let listen_ws = config::address(args.listen_ws, source_ref, &file.listen_ws, "listen_ws")?;
        if listen.is_none() && listen_ws.is_none() {
            return Err("--listen or --listen-ws is needed (or `listen` / `listen_ws` in the config file)".into());
        }
        let config::CommonSettings {
            status,
            metrics,
            drain,
            plaintext,
        } = config::CommonSettings::of(
            &args.common,
            source_ref,
            config::CommonKeys {
                status: &file.status,
                metrics: &file.metrics,
                drain: &file.drain,
                insecure_plaintext: file.insecure_plaintext,
            },
        )?;
        let tls = if plaintext {
            for addr in listen.iter().chain(&listen_ws) {
                check_plaintext(*addr)?;
            }
            tracing::warn!("plaintext: the link is not encrypted (loopback only)");
            None
        } else {
            let in_file = |path: &Option<std::path::PathBuf>| {
                path.as_ref()
                    .zip(source.as_ref())
                    .map(|(path, source)| source.path(path))
            };
            let cert = args.cert.clone().or_else(|| in_file(&file.cert));
            let key = args.key.clone().or_else(|| in_file(&file.key));
            let (Some(cert), Some(key)) = (cert, key) else {
                return Err("--cert and --key are needed (or --insecure-plaintext on loopback)".into());
            };
            let (chain, key) = tls::load_cert(&cert, &key)?;
            println!("certificate fingerprint {}", tls::fingerprint(&chain[0]));
            Some(tls::server_config(chain, key)?)
        };
        let clients = clients_of(args, source.as_ref(), file.clients)?;
        Ok(ServerSetup {
            listen,
            listen_ws,
            status,
            metrics,
            drain,
            options: ServerOptions {
                clients,
                tls,
                config: crate::session_config(),
            },
        })
    }
}

/// The clients `args` give, read afresh (for `SIGHUP`): the config file's,
/// and the command line's `--token-file` client.
pub fn load_clients(args: &ServerArgs) -> Result<Clients, String> {
    let (source, file) = read_file(args)?;
    clients_of(args, source.as_ref(), file.clients)
}

fn read_file(args: &ServerArgs) -> Result<(Option<config::Source>, config::ServerFile), String> {
    match &args.common.config {
        Some(path) => {
            let source = config::Source::read(path)?;
            let file = source.parse()?;
            Ok((Some(source), file))
        }
        None => Ok((None, config::ServerFile::default())),
    }
}

fn clients_of(
    args: &ServerArgs,
    source: Option<&config::Source>,
    entries: Vec<config::ClientEntry>,
) -> Result<Clients, String> {
    let mut list = Vec::new();
    if let Some(source) = source {
        for entry in entries {
            list.push(client_entry(source, entry)?);
        }
    }
    match &args.common.token_file {
        Some(token_file) => {
            let allow_reverse = args
                .allow_reverse
                .iter()
                .map(|entry| parse_reverse_bind(entry))
                .collect::<Result<_, _>>()?;
            list.push(Rights {
                name: FLAGS_CLIENT.into(),
                token: Token::from_file(token_file)?,
                allow: Rules::parse(&args.allow)?,
                allow_reverse,
            });
        }
        None if !args.allow.is_empty() || !args.allow_reverse.is_empty() => {
            return Err(
                "--allow and --allow-reverse are the rights of the --token-file client; give --token-file, or each [[client]] of the config file its own allow".into(),
            )
        }
        None if source.is_none() => return Err("--token-file or --config is needed".into()),
        None => {}
    }
    let clients = Clients::new(list)?;
    Ok(clients)
}

/// A `[[client]]` of the config file, its token loaded and rules checked.
fn client_entry(source: &config::Source, entry: config::ClientEntry) -> Result<Rights, String> {
    let name = entry.name.get_ref().trim();
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(source.error(&entry.name, "a client's name must be a non-empty line of text"));
    }
    let token = match (&entry.token_file, &entry.token) {
        (Some(file), None) => Token::from_file(&source.path(file.get_ref())).map_err(|why| source.error(file, why))?,
        (None, Some(token)) => {
            Token::parse(source.secret(token, "a token")?).map_err(|why| source.error(token, why))?
        }
        _ => {
            return Err(source.error(
                &entry.name,
                format!("client {name:?} needs one of token_file and token"),
            ))
        }
    };
    let mut allow = Vec::new();
    for rule in &entry.allow {
        allow.push(crate::allow::Rule::parse(rule.get_ref()).map_err(|why| source.error(rule, why))?);
    }
    let allow_reverse = entry
        .allow_reverse
        .iter()
        .map(|bind| parse_reverse_bind(bind.get_ref()).map_err(|why| source.error(bind, why)))
        .collect::<Result<_, _>>()?;
    Ok(Rights {
        name: name.into(),
        token,
        allow: Rules::from(allow),
        allow_reverse,
    })
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
    tls: Option<Arc<rustls::ServerConfig>>,
    clients: RwLock<Arc<Clients>>,
    acceptor: Acceptor<Link>,
    gate: Gate,
    unauthenticated: Semaphore,
    sessions: Mutex<Vec<LiveSession>>,
    /// Forwarded connections, all clients together.
    pub counters: Arc<Counters>,
    /// Each client's figures, by name; kept after a client is removed, so
    /// that its counters never go back.
    figures: Mutex<HashMap<Arc<str>, Arc<ClientFigures>>>,
    /// Set when shutting down: the reverse listeners close.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Refusals by reason, all clients together and links no client proved.
    pub refusals: Refusals,
    /// Where links are served, when not on the runtime that accepts them.
    cores: OnceLock<Cores>,
}

/// A session and the client it is for.
#[derive(Clone)]
struct LiveSession {
    client: Arc<Rights>,
    control: Control,
}

/// One client's figures, for `--metrics`.
#[derive(Default)]
struct ClientFigures {
    counters: Counters,
    refusals: Refusals,
}

/// Who a session is for: the client's rights when it was let in, and the
/// address its first link came from. Logs name both.
#[derive(Clone)]
struct Peer {
    client: Arc<Rights>,
    addr: SocketAddr,
    figures: Arc<ClientFigures>,
}

impl Server {
    /// A server with `options`.
    pub fn new(options: ServerOptions) -> io::Result<Arc<Server>> {
        let acceptor = Acceptor::new(options.config.clone())?;
        Ok(Arc::new(Server {
            tls: options.tls,
            clients: RwLock::new(Arc::new(options.clients)),
            acceptor,
            gate: Gate::new(AUTH_FAILURES_PER_MINUTE),
            unauthenticated: Semaphore::new(MAX_UNAUTHENTICATED),
            sessions: Mutex::new(Vec::new()),
            counters: Arc::default(),
            figures: Mutex::default(),
            stopping: tokio::sync::watch::channel(false).0,
            refusals: Refusals::default(),
            cores: OnceLock::new(),
        }))
    }

    /// Serves each accepted link on one of `cores`' threads, in turn, instead
    /// of on the runtime that accepted it (see [`crate::cores`]). Set once:
    /// a later call changes nothing.
    pub fn spread_links(&self, cores: Cores) {
        let _ = self.cores.set(cores);
    }

    /// Sessions alive now.
    pub fn live_sessions(&self) -> Vec<Control> {
        self.live().into_iter().map(|live| live.control).collect()
    }

    fn live(&self) -> Vec<LiveSession> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|live| !live.control.is_closed());
        sessions.clone()
    }

    /// The clients now.
    fn clients(&self) -> Arc<Clients> {
        self.clients.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn figures_of(&self, name: &Arc<str>) -> Arc<ClientFigures> {
        let mut figures = self.figures.lock().unwrap_or_else(|p| p.into_inner());
        figures.entry(name.clone()).or_default().clone()
    }

    /// Puts `clients` in place of the server's clients (a `SIGHUP` reload):
    /// new links and new connections follow them at once; the sessions of a
    /// client that was removed or given a new token are ended, with the
    /// reason, and their connections reset.
    pub fn reload(&self, clients: Clients) {
        let clients = Arc::new(clients);
        *self.clients.write().unwrap_or_else(|p| p.into_inner()) = clients.clone();
        let names: Vec<&str> = clients.iter().map(|client| &*client.name).collect();
        tracing::info!(clients = %names.join(", "), "configuration reloaded");
        for live in self.live() {
            if let Some(reason) = clients.revoked(&live.client) {
                tracing::warn!(client = %live.client.name, %reason, "ending the client's session");
                tokio::spawn(async move { crate::shutdown::end_now(&[live.control], &reason).await });
            }
        }
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
        self.serve_links(listener, false).await
    }

    /// Serves `listener` until the task is dropped, each link a WebSocket
    /// (`--listen-ws`): TLS (unless plaintext), the upgrade, then the same
    /// token proof and session as [`serve`](Self::serve).
    pub async fn serve_websocket(self: Arc<Self>, listener: TcpListener) {
        self.serve_links(listener, true).await
    }

    async fn serve_links(self: Arc<Self>, listener: TcpListener, websocket: bool) {
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
            let Some(cores) = self.cores.get() else {
                tokio::spawn(async move { this.serve_link(tcp, peer, websocket).await });
                continue;
            };
            // Registered again on the thread that serves it, so that its
            // readiness wakes that thread and no other.
            match tcp.into_std() {
                Ok(tcp) => cores.spawn(async move {
                    match TcpStream::from_std(tcp) {
                        Ok(tcp) => this.serve_link(tcp, peer, websocket).await,
                        Err(err) => tracing::warn!(%err, %peer, "cannot serve a link"),
                    }
                }),
                Err(err) => tracing::warn!(%err, %peer, "cannot hand a link over"),
            }
        }
    }

    async fn serve_link(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, websocket: bool) {
        let Ok(permit) = self.unauthenticated.try_acquire() else {
            tracing::debug!(%peer, "too many links being set up; dropped");
            return;
        };
        let _ = tcp.set_nodelay(true);
        let (link, client) =
            match tokio::time::timeout(LINK_SETUP_TIMEOUT, self.open_link(tcp, peer.ip(), websocket)).await {
                Ok(Ok(opened)) => opened,
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
        let name = client.name.clone();
        match self.acceptor.accept_from(link, peer.ip()).await {
            Ok(Accepted::New(session)) => {
                let link = if websocket { "websocket" } else { "tcp" };
                tracing::info!(client = %name, from = %peer, link = %link, "new session");
                if let Some(reason) = self.clients().revoked(&client) {
                    // Reloaded while this link was being let in.
                    crate::shutdown::end_now(&[session.control()], &reason).await;
                    return;
                }
                self.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(LiveSession {
                        client: client.clone(),
                        control: session.control(),
                    });
                let figures = self.figures_of(&name);
                self.serve_session(
                    session,
                    Peer {
                        client,
                        addr: peer,
                        figures,
                    },
                )
                .await;
            }
            Ok(Accepted::Resumed) => {
                let link = if websocket { "websocket" } else { "tcp" };
                tracing::debug!(client = %name, from = %peer, link = %link, "link resumed a session")
            }
            Ok(Accepted::Refused(refusal)) => tracing::debug!(client = %name, from = %peer, %refusal, "resume refused"),
            Err(err) => tracing::debug!(client = %name, from = %peer, %err, "link dropped before its session opened"),
        }
    }

    /// TLS, the WebSocket upgrade if `websocket`, then the token proof: the
    /// link and the client whose token it proved.
    async fn open_link(&self, tcp: TcpStream, source: IpAddr, websocket: bool) -> Result<(Link, Arc<Rights>), String> {
        let mut link: Link = match &self.tls {
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
                Box::new(
                    crate::records::accept(config.clone(), tcp)
                        .await
                        .map_err(|err| format!("TLS: {err}"))?,
                )
            }
            None => Box::new(tcp),
        };
        if websocket {
            link = crate::websocket::accept(link)
                .await
                .map_err(|err| format!("WebSocket upgrade: {err}"))?;
        }
        let clients = self.clients();
        match self.gate.check(&mut link, source, clients.tokens()).await {
            // The index is one of `clients.tokens()`.
            Ok(index) => clients
                .at(index)
                .map(|client| (link, client))
                .ok_or_else(|| "no such client".into()),
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

    /// Serves one session of `peer`.
    async fn serve_session(self: &Arc<Self>, session: Session, peer: Peer) {
        let reverse = Arc::new(Semaphore::new(MAX_REVERSE_PER_SESSION));
        while let Some(stream) = session.accept().await {
            let this = self.clone();
            let control = session.control();
            let reverse = reverse.clone();
            let peer = peer.clone();
            tokio::spawn(async move { this.serve_stream(stream, control, reverse, peer).await });
        }
        let (client, from) = (&peer.client.name, peer.addr);
        match session.closed().await {
            Ok(()) => tracing::info!(%client, %from, "session ended"),
            Err(err) => tracing::info!(%client, %from, %err, "session ended"),
        }
    }

    /// `peer`'s rights now (a reload may have changed them); `None` once
    /// the client was removed or re-keyed, when its session is being ended.
    fn rights_of(&self, peer: &Peer) -> Option<Arc<Rights>> {
        self.clients()
            .get(&peer.client.name)
            .filter(|now| now.token.same_secret(&peer.client.token))
    }

    async fn serve_stream(
        self: Arc<Self>,
        mut stream: hawser_tokio::Stream,
        control: Control,
        reverse: Arc<Semaphore>,
        peer: Peer,
    ) {
        let client = &peer.client.name;
        let request = match tokio::time::timeout(REQUEST_TIMEOUT, Request::read(&mut stream)).await {
            Ok(Ok(request)) => request,
            Ok(Err(err)) => {
                tracing::debug!(%client, %err, "bad stream request");
                self.count_refusal(&peer, |refusals| &refusals.bad_request);
                stream.reset(codes::BAD_REQUEST);
                return;
            }
            Err(_) => {
                self.count_refusal(&peer, |refusals| &refusals.bad_request);
                stream.reset(codes::BAD_REQUEST);
                return;
            }
        };
        let Some(rights) = self.rights_of(&peer) else {
            let refusal = Refusal {
                code: codes::NOT_ALLOWED,
                message: format!("client {client} is no longer in the server's configuration"),
            };
            return self.refuse(stream, refusal, &peer).await;
        };
        match request {
            Request::Connect(target) => self.connect(stream, target, &rights, &peer).await,
            Request::Listen(address) => self.listen(stream, address, control, reverse, &rights, &peer).await,
            Request::Reverse(_) => {
                tracing::debug!("a client sent a server's request");
                stream.reset(codes::BAD_REQUEST);
            }
        }
    }

    /// Where `target` may be reached: its addresses that the allow rules
    /// admit, looked up here; or the refusal to send.
    async fn admitted(&self, target: &str, rights: &Rights, peer: &Peer) -> Result<Vec<SocketAddr>, Refusal> {
        let (client, from) = (&rights.name, peer.addr);
        let refused = |message: String| {
            tracing::warn!(%client, %from, %target, "refused: {message}");
            Refusal {
                code: codes::NOT_ALLOWED,
                message,
            }
        };
        let Some((host, port)) = allow::split_target(target) else {
            return Err(refused(format!("{target:?} is not HOST:PORT")));
        };
        let rules = &rights.allow;
        if rules.refuse_unresolved(host, port) {
            return Err(refused(format!(
                "{target} is not on the server's allow list for client {client}"
            )));
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
                "{target} resolves to {}, which the server's allow list for client {client} does not admit",
                resolved.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(admitted)
    }

    async fn connect(&self, mut stream: hawser_tokio::Stream, target: String, rights: &Rights, peer: &Peer) {
        let addresses = match self.admitted(&target, rights, peer).await {
            Ok(addresses) => addresses,
            Err(refusal) => return self.refuse(stream, refusal, peer).await,
        };
        let (client, from) = (&rights.name, peer.addr);
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
                self.refuse(stream, refusal, peer).await;
                return;
            }
            Err(_) => {
                tracing::info!(%client, %target, "the target did not answer in time");
                let refusal = Refusal {
                    code: codes::TARGET_TIMEOUT,
                    message: format!("{target} did not answer within {} s", CONNECT_TIMEOUT.as_secs()),
                };
                self.refuse(stream, refusal, peer).await;
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
        let counters = [&*self.counters, &peer.figures.counters];
        let (end, transfer) = forward::splice_counted(tcp, stream, &counters).await;
        let ended = match &end {
            forward::End::Clean => "closed".to_string(),
            forward::End::Local(err) => format!("the target failed ({err}); stream reset"),
            forward::End::Remote(err) => format!("the client's side failed ({}); target reset", forward::describe(err)),
        };
        // The access log: one line per forwarded connection.
        tracing::info!(
            %client,
            %from,
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
        rights: &Rights,
        peer: &Peer,
    ) {
        let (client, from) = (&rights.name, peer.addr);
        let allowed = address
            .parse::<SocketAddr>()
            .ok()
            .filter(|addr| rights.allow_reverse.contains(addr));
        let Some(addr) = allowed else {
            tracing::warn!(%client, %from, %address, "refused: reverse listener not allowed");
            let refusal = Refusal {
                code: codes::NOT_ALLOWED,
                message: format!(
                    "listening on {address} is not on the server's allow-reverse list for client {client}"
                ),
            };
            self.refuse(stream, refusal, peer).await;
            return;
        };
        let Ok(_slot) = reverse.try_acquire() else {
            let refusal = Refusal {
                code: codes::NOT_ALLOWED,
                message: format!("at most {MAX_REVERSE_PER_SESSION} reverse listeners per session"),
            };
            self.refuse(stream, refusal, peer).await;
            return;
        };
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(err) => {
                let refusal = Refusal {
                    code: codes::TARGET_UNREACHABLE,
                    message: format!("the server cannot listen on {addr}: {err}"),
                };
                self.refuse(stream, refusal, peer).await;
                return;
            }
        };
        if wire::write_answer(&mut stream, &Ok(())).await.is_err() {
            return;
        }
        tracing::info!(%client, %from, %addr, "reverse listener open");
        let mut stopping = self.stopping.subscribe();
        // The listener lives as long as the request's stream: until the client
        // finishes it or the session ends.
        let mut ignored = [0u8; 64];
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, visitor)) = accepted else { continue };
                    let _ = tcp.set_nodelay(true);
                    forward::arm_reset(&tcp);
                    let control = control.clone();
                    let address = address.clone();
                    let counters = self.counters.clone();
                    let figures = peer.figures.clone();
                    tokio::spawn(async move {
                        let mut stream = match control.open_stream().await {
                            Ok(stream) => stream,
                            Err(err) => {
                                tracing::debug!(%visitor, %err, "cannot open a stream for a reverse connection");
                                forward::reset_tcp(tcp);
                                return;
                            }
                        };
                        if Request::Reverse(address).write(&mut stream).await.is_err() {
                            forward::reset_tcp(tcp);
                            return;
                        }
                        let counters = [&*counters, &figures.counters];
                        if let forward::End::Remote(err) = forward::splice(tcp, stream, &counters).await {
                            tracing::debug!(%visitor, why = %forward::describe(&err), "reverse connection reset");
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
        tracing::info!(%client, %addr, "reverse listener closed");
    }

    /// Asks every live session to go away, closes the reverse listeners, and
    /// waits up to `drain` for the sessions to end; the connections still
    /// open then are reset at both ends.
    pub async fn shut_down(&self, drain: Duration) {
        self.stopping.send_replace(true);
        crate::shutdown::drain(&self.live_sessions(), drain, REASON, &self.counters.open).await;
    }

    /// Counts a refusal of `peer`'s, for the server and for the client.
    fn count_refusal(&self, peer: &Peer, reason: fn(&Refusals) -> &std::sync::atomic::AtomicU64) {
        reason(&self.refusals).fetch_add(1, Ordering::Relaxed);
        reason(&peer.figures.refusals).fetch_add(1, Ordering::Relaxed);
    }

    /// Tells the client why, then finishes the stream; counts the refusal.
    async fn refuse(&self, mut stream: hawser_tokio::Stream, refusal: Refusal, peer: &Peer) {
        let reason: fn(&Refusals) -> &std::sync::atomic::AtomicU64 = match refusal.code {
            codes::NOT_ALLOWED => |r| &r.not_allowed,
            codes::TARGET_UNREACHABLE => |r| &r.unreachable,
            codes::TARGET_TIMEOUT => |r| &r.timeout,
            _ => |r| &r.bad_request,
        };
        self.count_refusal(peer, reason);
        if wire::write_answer(&mut stream, &Err(refusal)).await.is_ok() {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        }
    }

    /// The server's figures for `--metrics`.
    pub fn metrics(&self) -> Vec<Family> {
        let stats = self.acceptor_stats();
        let live = self.live();
        let sessions: Vec<Control> = live.iter().map(|session| session.control.clone()).collect();
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
                statuses.iter().map(|s| s.resumes).sum::<u64>() as f64,
            ),
            Family::single(
                "hawser_tunnel_bytes_replayed",
                "Bytes replayed after resumes, by the sessions alive now.",
                Kind::Gauge,
                sessions.iter().map(|c| c.stats().bytes_replayed).sum::<u64>() as f64,
            ),
            Family::single(
                "hawser_tunnel_detached_bytes_held",
                "Bytes the detached sessions hold for their clients.",
                Kind::Gauge,
                stats.detached_held as f64,
            ),
        ]);
        families.extend(self.client_metrics(&live));
        families
    }

    /// The per-client families: each client configured now, and each that
    /// ever had a session, labelled `client`.
    fn client_metrics(&self, live: &[LiveSession]) -> Vec<Family> {
        let mut figures: Vec<(Arc<str>, Arc<ClientFigures>)> = self
            .figures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, figures)| (name.clone(), figures.clone()))
            .collect();
        for client in self.clients().iter() {
            if !figures.iter().any(|(name, _)| *name == client.name) {
                figures.push((client.name.clone(), self.figures_of(&client.name)));
            }
        }
        figures.sort_by(|a, b| a.0.cmp(&b.0));
        let of =
            |name: &str| -> Vec<&LiveSession> { live.iter().filter(|session| &*session.client.name == name).collect() };
        let per_client = |read: &dyn Fn(&str, &ClientFigures) -> f64| {
            figures
                .iter()
                .map(|(name, figures)| (name.to_string(), read(name, figures)))
                .collect::<Vec<_>>()
        };
        let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let family = |name, help, kind, read: &dyn Fn(&str, &ClientFigures) -> f64| {
            Family::labelled(name, help, kind, "client", per_client(read))
        };
        vec![
            family(
                "hawser_tunnel_client_sessions",
                "Sessions alive now, by client.",
                Kind::Gauge,
                &|name, _| of(name).len() as f64,
            ),
            family(
                "hawser_tunnel_client_connections_open",
                "Forwarded connections open now, by client.",
                Kind::Gauge,
                &|_, f| count(&f.counters.open),
            ),
            family(
                "hawser_tunnel_client_connections_total",
                "Forwarded connections, in all, by client.",
                Kind::Counter,
                &|_, f| count(&f.counters.total),
            ),
            family(
                "hawser_tunnel_client_bytes_to_targets_total",
                "Bytes from the client out to targets.",
                Kind::Counter,
                &|_, f| count(&f.counters.received),
            ),
            family(
                "hawser_tunnel_client_bytes_from_targets_total",
                "Bytes from targets back to the client.",
                Kind::Counter,
                &|_, f| count(&f.counters.sent),
            ),
            family(
                "hawser_tunnel_client_resumes",
                "Resumes of the client's sessions alive now.",
                Kind::Gauge,
                &|name, _| of(name).iter().map(|s| s.control.status().resumes).sum::<u64>() as f64,
            ),
            family(
                "hawser_tunnel_client_bytes_replayed",
                "Bytes replayed after resumes by the client's sessions alive now.",
                Kind::Gauge,
                &|name, _| of(name).iter().map(|s| s.control.stats().bytes_replayed).sum::<u64>() as f64,
            ),
            family(
                "hawser_tunnel_client_rtt_seconds",
                "The smoothed round-trip time of the client's link (the longest, if it has several sessions).",
                Kind::Gauge,
                &|name, _| {
                    let rtt = of(name).iter().filter_map(|s| s.control.status().rtt_smoothed).max();
                    crate::metrics::seconds(rtt)
                },
            ),
            Family::multi(
                "hawser_tunnel_client_refusals_total",
                "Connections of the client's refused, by reason.",
                Kind::Counter,
                figures.iter().flat_map(|(name, figures)| {
                    figures
                        .refusals
                        .samples()
                        .into_iter()
                        .filter(|(reason, _)| !matches!(reason.as_str(), "authentication" | "tls_mismatch"))
                        .map(|(reason, value)| (vec![("client", name.to_string()), ("reason", reason)], value))
                }),
            ),
        ]
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
