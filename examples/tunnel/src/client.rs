//! `hawser client`: one resumable session to the server, local listeners for
//! `-L`, reverse listeners at the server for `-R`. When the link drops the
//! session redials and every forwarded connection carries on; when the session
//! cannot be resumed, its connections are reset and a new session is built for
//! new ones.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hawser_core::Config;
use hawser_tokio::{Control, RetryPolicy, Session};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::auth::Token;
use crate::cli::ClientArgs;
use crate::forward::{self, Counters};
use crate::link::{check_plaintext, Dialer, Link};
use crate::metrics::{Family, Kind};
use crate::wire::{self, codes, Refusal, Request};
use crate::{config, socks, tls};

/// `-L`: listen here, and have the server connect to `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The local address to listen on.
    pub bind: SocketAddr,
    /// `host:port`, as the server should dial it.
    pub target: String,
}

/// `-R`: have the server listen on `listen`, and connect here to `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reverse {
    /// The address the server listens on.
    pub listen: SocketAddr,
    /// `host:port`, as this side dials it.
    pub target: String,
}

/// Splits `[BIND:]PORT:HOST:PORT` into its parts, brackets kept around IPv6
/// addresses.
fn split_spec(spec: &str) -> Result<(String, String, String), String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut bracket = false;
    for c in spec.chars() {
        match c {
            '[' => {
                bracket = true;
                current.push(c);
            }
            ']' => {
                bracket = false;
                current.push(c);
            }
            ':' if !bracket => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    let bad = || format!("{spec:?} is not [BIND:]PORT:HOST:PORT (e.g. 8080:db.internal:5432)");
    let (bind, port, host, target_port) = match parts.as_slice() {
        [port, host, target_port] => ("127.0.0.1".to_string(), port, host, target_port),
        [bind, port, host, target_port] => (bind.clone(), port, host, target_port),
        _ => return Err(bad()),
    };
    if port.parse::<u16>().is_err() || target_port.parse::<u16>().is_err() || host.is_empty() {
        return Err(bad());
    }
    let bind = if bind.contains(':') && !bind.starts_with('[') {
        format!("[{bind}]")
    } else {
        bind
    };
    Ok((format!("{bind}:{port}"), host.clone(), target_port.clone()))
}

impl Forward {
    /// Parses `-L [BIND:]PORT:HOST:PORT` (BIND is an IP address, 127.0.0.1 if left out).
    pub fn parse(spec: &str) -> Result<Forward, String> {
        let (bind, host, port) = split_spec(spec)?;
        let bind = bind
            .parse()
            .map_err(|_| format!("{spec:?}: the bind address must be an IP address"))?;
        Ok(Forward {
            bind,
            target: format!("{host}:{port}"),
        })
    }
}

impl Reverse {
    /// Parses `-R [BIND:]PORT:HOST:PORT`: the server listens on BIND:PORT
    /// (127.0.0.1 if left out), this side connects to HOST:PORT.
    pub fn parse(spec: &str) -> Result<Reverse, String> {
        let (listen, host, port) = split_spec(spec)?;
        let listen = listen
            .parse()
            .map_err(|_| format!("{spec:?}: the bind address must be an IP address"))?;
        Ok(Reverse {
            listen,
            target: format!("{host}:{port}"),
        })
    }
}

/// What the client does.
pub struct ClientOptions {
    /// How to reach the server.
    pub dialer: Dialer,
    /// `-L` forwards.
    pub forwards: Vec<Forward>,
    /// `-R` forwards.
    pub reverses: Vec<Reverse>,
    /// `-D`: the SOCKS5 listeners' addresses.
    pub socks: Vec<SocketAddr>,
    /// What the SOCKS5 listeners ask their clients for; `None` for nothing
    /// (then they are on loopback addresses only).
    pub socks_credentials: Option<socks::Credentials>,
    /// The session's configuration (resumption on).
    pub config: Config,
    /// How to redial a lost link.
    pub retry: RetryPolicy,
}

/// `hawser client`'s flags and config file, combined.
pub struct ClientSetup {
    /// The server, as given.
    pub connect: String,
    /// `--status`.
    pub status: Option<Duration>,
    /// `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--drain`.
    pub drain: Duration,
    /// What the client does.
    pub options: ClientOptions,
}

impl ClientSetup {
    /// What `hawser client` runs with: the config file read and the flags
    /// laid over it, the token loaded, the server's trust set up, the
    /// forwards parsed. Plaintext is refused unless the server's name
    /// resolves to a loopback address (and is checked again at every dial).
    pub async fn from_args(args: &ClientArgs) -> Result<ClientSetup, String> {
        let (source, file) = match &args.common.config {
            Some(path) => {
                let source = config::Source::read(path)?;
                let file: config::ClientFile = source.parse()?;
                (Some(source), file)
            }
            None => (None, config::ClientFile::default()),
        };
        let source = source.as_ref();
        let in_file =
            |path: &Option<std::path::PathBuf>| path.as_ref().zip(source).map(|(path, source)| source.path(path));
        let connect = args
            .connect
            .clone()
            .or_else(|| file.connect.clone())
            .ok_or("--connect is needed (or `connect` in the config file)")?;
        let token = match (&args.common.token_file, in_file(&file.token_file), &file.token, source) {
            (Some(path), ..) => Token::from_file(path)?,
            (None, Some(path), ..) => Token::from_file(&path)?,
            (None, None, Some(token), Some(source)) => {
                Token::parse(source.secret(token, "the token")?).map_err(|why| source.error(token, why))?
            }
            _ => return Err("--token-file is needed (or `token_file` in the config file)".into()),
        };
        let proxy = match &args.proxy {
            Some(flag) => crate::proxy::HttpProxy::from_flag_or_env(Some(flag))?,
            None => match config::value(source, &file.proxy, crate::proxy::HttpProxy::parse)? {
                Some(proxy) => Some(proxy),
                None => crate::proxy::HttpProxy::from_flag_or_env(None)?,
            },
        };
        let config::CommonSettings {
            status,
            metrics,
            drain,
            plaintext,
        } = config::CommonSettings::of(
            &args.common,
            source,
            config::CommonKeys {
                status: &file.status,
                metrics: &file.metrics,
                drain: &file.drain,
                insecure_plaintext: file.insecure_plaintext,
            },
        )?;
        // `--connect` as given names the server in messages; `server` is
        // what to dial.
        let (server, websocket) = match crate::websocket::Endpoint::parse(&connect)? {
            Some(endpoint) if endpoint.tls && plaintext => {
                return Err(format!(
                    "{connect} is TLS (wss://): drop --insecure-plaintext, or use ws:// on loopback"
                ))
            }
            Some(endpoint) if !endpoint.tls && !plaintext => {
                return Err(format!(
                    "{connect} is not encrypted (ws://): use wss://, or --insecure-plaintext on loopback"
                ))
            }
            Some(endpoint) => (endpoint.server, Some(endpoint.url)),
            None => (connect.clone(), None),
        };
        if proxy.is_some() && plaintext {
            return Err("--insecure-plaintext is for loopback only, not through a proxy".into());
        }
        let tls = if plaintext {
            match tokio::net::lookup_host(&server).await.map(|mut addrs| addrs.next()) {
                Ok(Some(addr)) => check_plaintext(addr)?,
                Ok(None) | Err(_) => return Err(format!("cannot resolve {server}")),
            }
            tracing::warn!("plaintext: the link is not encrypted (loopback only)");
            None
        } else {
            let trust = match (&args.fingerprint, &args.ca) {
                (Some(fingerprint), _) => Some(tls::Trust::Fingerprint(tls::parse_fingerprint(fingerprint)?)),
                (None, Some(ca)) => Some(tls::Trust::Ca(ca.clone())),
                (None, None) => match (&file.fingerprint, in_file(&file.ca)) {
                    (Some(_), Some(_)) => {
                        return Err("the config file gives both fingerprint and ca: trust one or the other".into())
                    }
                    (Some(_), None) => {
                        config::value(source, &file.fingerprint, tls::parse_fingerprint)?.map(tls::Trust::Fingerprint)
                    }
                    (None, ca) => ca.map(tls::Trust::Ca),
                },
            };
            let trust = trust.ok_or("--fingerprint or --ca is needed (or --insecure-plaintext on loopback)")?;
            let server_name = args.server_name.clone().or_else(|| file.server_name.clone());
            Some(client_tls(&trust, server_name, &server)?)
        };
        // The file's forwards, then the flags'.
        let forwards = parse_specs(source, &file.local, &args.local, "-L", Forward::parse)?;
        let reverses = parse_specs(source, &file.remote, &args.remote, "-R", Reverse::parse)?;
        let socks_credentials = match (&file.socks, source) {
            (Some(entry), Some(source)) => Some(socks_credentials(source, entry)?),
            _ => None,
        };
        let with_login = socks_credentials.is_some();
        let socks = parse_specs(source, &file.dynamic, &args.dynamic, "-D", |spec| {
            parse_socks_bind(spec, with_login)
        })?;
        if forwards.is_empty() && reverses.is_empty() && socks.is_empty() {
            return Err("nothing to forward: give -L, -R or -D".into());
        }
        Ok(ClientSetup {
            connect: connect.clone(),
            status,
            metrics,
            drain,
            options: ClientOptions {
                dialer: Dialer {
                    server,
                    tls,
                    token,
                    proxy,
                    websocket,
                },
                forwards,
                reverses,
                socks,
                socks_credentials,
                config: crate::session_config(),
                retry: crate::retry_policy(),
            },
        })
    }
}

/// Forwards from the config file (an error names the line), then from the
/// flags (an error names the flag).
fn parse_specs<T>(
    source: Option<&config::Source>,
    from_file: &[toml::Spanned<String>],
    flags: &[String],
    flag: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut parsed = Vec::new();
    for spec in from_file {
        parsed.push(parse(spec.get_ref()).map_err(|why| match source {
            Some(source) => source.error(spec, why),
            None => format!("{flag} {why}"),
        })?);
    }
    for spec in flags {
        parsed.push(parse(spec).map_err(|why| format!("{flag} {why}"))?);
    }
    Ok(parsed)
}

/// The config file's `[socks]`: a username and a password, the password
/// from its own file or (in a private config file) written in.
fn socks_credentials(source: &config::Source, entry: &config::SocksEntry) -> Result<socks::Credentials, String> {
    let username = entry.username.get_ref().clone();
    if username.is_empty() || username.len() > 255 {
        return Err(source.error(&entry.username, "the SOCKS username must have 1 to 255 bytes"));
    }
    let password = match (&entry.password, &entry.password_file) {
        (Some(password), None) => source.secret(password, "the SOCKS password")?.to_string(),
        (None, Some(file)) => {
            let path = source.path(file.get_ref());
            let text = std::fs::read_to_string(&path)
                .map_err(|err| source.error(file, format!("cannot read {}: {err}", path.display())))?;
            text.trim_end_matches(['\r', '\n']).to_string()
        }
        _ => return Err(source.error(&entry.username, "[socks] needs one of password and password_file")),
    };
    if password.is_empty() || password.len() > 255 {
        return Err(source.error(&entry.username, "the SOCKS password must have 1 to 255 bytes"));
    }
    Ok(socks::Credentials { username, password })
}

/// `-D [BIND:]PORT` (127.0.0.1 if BIND is left out). Without credentials
/// the SOCKS proxy would serve anyone who reaches it, so it then listens on
/// loopback addresses only.
fn parse_socks_bind(spec: &str, with_credentials: bool) -> Result<SocketAddr, String> {
    let addr = match spec.parse::<u16>() {
        Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => spec
            .parse::<SocketAddr>()
            .map_err(|_| format!("{spec:?} is not [BIND:]PORT"))?,
    };
    if !addr.ip().is_loopback() && !with_credentials {
        return Err(format!(
            "{spec}: without a SOCKS username and password ([socks] in the config file) the proxy listens on loopback addresses only"
        ));
    }
    Ok(addr)
}

/// The client's TLS: whom it trusts and the name it expects (`server_name`,
/// or the host of `connect`).
fn client_tls(
    trust: &tls::Trust,
    server_name: Option<String>,
    connect: &str,
) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), String> {
    let config = tls::client_config(trust)?;
    let host = server_name.unwrap_or_else(|| {
        let host = connect.rsplit_once(':').map_or(connect, |(host, _)| host);
        host.trim_start_matches('[').trim_end_matches(']').to_string()
    });
    let name = ServerName::try_from(host.clone()).map_err(|_| format!("{host:?} is not a valid server name"))?;
    Ok((config, name))
}

/// Why the client could not start.
#[derive(Debug)]
pub enum StartError {
    /// The first link failed (`io::Error` says why: see [`crate::exit_code`]).
    Link(io::Error),
    /// The server refused a forward.
    Refused(Refusal),
    /// A local listener could not be opened.
    Local(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Link(err) => write!(f, "cannot reach the server: {}", crate::describe_link_error(err)),
            StartError::Refused(refusal) => write!(f, "the server refused: {refusal}"),
            StartError::Local(why) => f.write_str(why),
        }
    }
}

/// A running client.
pub struct Client {
    options: Arc<ClientOptions>,
    current: watch::Sender<Option<Control>>,
    /// The local addresses of the `-L` listeners, in order.
    pub local_addrs: Vec<SocketAddr>,
    /// The local addresses of the `-D` listeners, in order.
    pub socks_addrs: Vec<SocketAddr>,
    /// Forwarded connections.
    pub counters: Arc<Counters>,
    /// Sessions built, in all (more than one after a session could not resume).
    sessions_built: Mutex<u64>,
    /// Set by `shut_down`: no new session after this one.
    stopping: std::sync::atomic::AtomicBool,
    /// Set by `shut_down`: the `-R` requests' streams let go, so that the
    /// server closes those listeners and the drain need not wait for them.
    release_reverses: watch::Sender<bool>,
    /// The exit status, once the client cannot go on (the server no longer
    /// accepts its credentials).
    fatal: Arc<watch::Sender<Option<u8>>>,
}

impl Client {
    /// Dials the server, asks for the `-R` listeners and opens the `-L` ones.
    pub async fn start(options: ClientOptions) -> Result<Arc<Client>, StartError> {
        let options = Arc::new(options);
        // The local ports first, as ssh's ExitOnForwardFailure does: a busy
        // port fails before anything is asked of the server.
        let mut listeners = Vec::new();
        for forward in &options.forwards {
            let listener = TcpListener::bind(forward.bind)
                .await
                .map_err(|err| StartError::Local(format!("cannot listen on {}: {err}", forward.bind)))?;
            listeners.push(listener);
        }
        let local_addrs = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let mut socks_listeners = Vec::new();
        for bind in &options.socks {
            let listener = TcpListener::bind(bind)
                .await
                .map_err(|err| StartError::Local(format!("cannot listen on {bind}: {err}")))?;
            socks_listeners.push(listener);
        }
        let socks_addrs = socks_listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let fatal = Arc::new(watch::channel(None).0);
        let session = connect(&options, &fatal).await.map_err(StartError::Link)?;
        let (release_reverses, released) = watch::channel(false);
        request_reverses(&session, &options.reverses, &released).await?;
        let (current, _) = watch::channel(Some(session.control()));
        let client = Arc::new(Client {
            options: options.clone(),
            current,
            local_addrs,
            socks_addrs,
            counters: Arc::default(),
            sessions_built: Mutex::new(1),
            stopping: std::sync::atomic::AtomicBool::new(false),
            release_reverses,
            fatal,
        });
        for (listener, forward) in listeners.into_iter().zip(options.forwards.iter().cloned()) {
            tokio::spawn(client.clone().serve_forward(listener, forward));
        }
        for listener in socks_listeners {
            tokio::spawn(client.clone().serve_socks(listener));
        }
        tokio::spawn(client.clone().supervise(session));
        Ok(client)
    }

    /// The session in use, if there is one now.
    pub fn session(&self) -> Option<Control> {
        self.current.borrow().clone()
    }

    /// Sessions built, in all.
    pub fn sessions_built(&self) -> u64 {
        *self.sessions_built.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs a status line every `every`: connections, bytes, the link's RTT,
    /// whether it is suspect and how often it was, reconnects and resumes.
    pub async fn log_status(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let counters = &self.counters;
            let (rtt_ms, suspect, suspicions, reconnects, resumes, replayed) = match self.session() {
                Some(control) => {
                    let status = control.status();
                    (
                        status.rtt_smoothed.map(|rtt| format!("{:.2}", rtt.as_secs_f64() * 1e3)),
                        status.suspect,
                        status.suspect_episodes,
                        status.reconnects,
                        status.resumes,
                        control.stats().bytes_replayed,
                    )
                }
                None => (None, false, 0, 0, 0, 0),
            };
            tracing::info!(
                forwards = self.local_addrs.len(),
                connections = counters.open.load(Ordering::Relaxed),
                connections_total = counters.total.load(Ordering::Relaxed),
                bytes_out = counters.sent.load(Ordering::Relaxed),
                bytes_in = counters.received.load(Ordering::Relaxed),
                rtt_ms = rtt_ms.as_deref().unwrap_or("-"),
                suspect,
                suspicions,
                reconnects,
                resumes,
                bytes_replayed = replayed,
                sessions = self.sessions_built(),
                "status"
            );
        }
    }

    /// The client's figures for `--metrics`.
    pub fn metrics(&self) -> Vec<Family> {
        let counters = &self.counters;
        let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let session = self.session();
        let status = session.as_ref().map(|control| control.status());
        let replayed = session.as_ref().map_or(0, |control| control.stats().bytes_replayed);
        let of_status = |read: fn(&hawser_tokio::Status) -> f64| status.as_ref().map_or(0.0, read);
        let mut families = counters.families();
        families.extend([
            Family::single(
                "hawser_tunnel_bytes_sent_total",
                "Bytes from local connections into the tunnel.",
                Kind::Counter,
                count(&counters.sent),
            ),
            Family::single(
                "hawser_tunnel_bytes_received_total",
                "Bytes from the tunnel out to local connections.",
                Kind::Counter,
                count(&counters.received),
            ),
            Family::single(
                "hawser_tunnel_sessions_built_total",
                "Sessions built to the server (more than one after a session could not resume).",
                Kind::Counter,
                self.sessions_built() as f64,
            ),
            Family::single(
                "hawser_tunnel_rtt_seconds",
                "The link's smoothed round-trip time.",
                Kind::Gauge,
                crate::metrics::seconds(status.as_ref().and_then(|s| s.rtt_smoothed)),
            ),
            Family::single(
                "hawser_tunnel_link_suspect",
                "1 while the link is suspect (stopped answering).",
                Kind::Gauge,
                of_status(|s| f64::from(u8::from(s.suspect))),
            ),
            Family::single(
                "hawser_tunnel_suspicions",
                "Times this session's link became suspect.",
                Kind::Gauge,
                of_status(|s| s.suspect_episodes as f64),
            ),
            Family::single(
                "hawser_tunnel_redials",
                "Links this session dialled after the first.",
                Kind::Gauge,
                of_status(|s| s.reconnects as f64),
            ),
            Family::single(
                "hawser_tunnel_resumes",
                "Times this session resumed on a new link.",
                Kind::Gauge,
                of_status(|s| s.resumes as f64),
            ),
            Family::single(
                "hawser_tunnel_bytes_replayed",
                "Bytes this session replayed after resumes.",
                Kind::Gauge,
                replayed as f64,
            ),
        ]);
        families
    }

    /// Serves the session's inbound streams (reverse connections) until it
    /// ends; then, for as long as the client runs, builds a new one.
    async fn supervise(self: Arc<Self>, mut session: Session) {
        loop {
            while let Some(stream) = session.accept().await {
                let this = self.clone();
                tokio::spawn(async move { this.serve_reverse(stream).await });
            }
            let ended = session.closed().await;
            if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                self.current.send_replace(None);
                return;
            }
            match ended {
                Ok(()) => tracing::warn!(
                    reason = session.peer_go_away_reason().as_deref().unwrap_or("none given"),
                    "the server ended the session; its connections are reset; reconnecting"
                ),
                Err(err) => tracing::warn!(%err, "the session cannot go on; its connections are reset; reconnecting"),
            }
            self.current.send_replace(None);
            let released = self.release_reverses.subscribe();
            let mut wait = REBUILD_FIRST_WAIT;
            session = loop {
                match connect(&self.options, &self.fatal).await {
                    Ok(session) => match request_reverses(&session, &self.options.reverses, &released).await {
                        Ok(()) => break session,
                        Err(err) => tracing::error!(%err, "the new session's reverse forwards failed"),
                    },
                    Err(err) if crate::credentials_rejected(&err) => {
                        give_up_on_credentials(&self.fatal, &err);
                        return;
                    }
                    Err(err) => tracing::warn!(
                        why = %crate::describe_link_error(&err),
                        retry_in = ?wait,
                        "cannot build a new session; retrying"
                    ),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(REBUILD_LAST_WAIT);
            };
            *self.sessions_built.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            tracing::info!("new session to the server");
            self.current.send_replace(Some(session.control()));
        }
    }

    /// The session to open a stream on: the current one, or (between
    /// sessions, or while an ended one is being replaced) the next, waited for
    /// up to 30 s.
    async fn usable_session(&self) -> Option<Control> {
        let mut current = self.current.subscribe();
        let waiting = async {
            loop {
                let session = current.borrow_and_update().clone();
                if let Some(control) = session.filter(|control| !control.is_closed()) {
                    return Some(control);
                }
                // A change comes when the supervisor has a new session; an
                // ended one is polled for, since ending does not change it.
                let _ = tokio::time::timeout(Duration::from_millis(100), current.changed()).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .ok()
            .flatten()
    }

    /// The next local connection on `listener`, with Nagle off and armed to
    /// reset; accept errors (out of descriptors) are logged and retried.
    async fn accept_local(listener: &TcpListener) -> (TcpStream, SocketAddr) {
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    forward::arm_reset(&tcp);
                    return (tcp, peer);
                }
                Err(err) => {
                    tracing::warn!(%err, "local accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_forward(self: Arc<Self>, listener: TcpListener, forward: Forward) {
        loop {
            let (tcp, peer) = Self::accept_local(&listener).await;
            let this = self.clone();
            let target = forward.target.clone();
            tokio::spawn(async move { this.forward_one(tcp, peer, target).await });
        }
    }

    /// A stream to `target` through the server: a session, a stream, the
    /// request, and the server's answer, each bounded in time.
    async fn open_to(&self, target: &str) -> Result<hawser_tokio::Stream, Unopened> {
        let control = self.usable_session().await.ok_or(Unopened::NoSession)?;
        let mut stream = control.open_stream().await.map_err(Unopened::Stream)?;
        let asked = async {
            Request::Connect(target.to_string()).write(&mut stream).await?;
            wire::read_answer(&mut stream).await
        };
        match tokio::time::timeout(Duration::from_secs(30), asked).await {
            Ok(Ok(Ok(()))) => Ok(stream),
            Ok(Ok(Err(refusal))) => {
                stream.reset(refusal.code);
                Err(Unopened::Refused(refusal))
            }
            Ok(Err(err)) => Err(Unopened::Stream(err)),
            Err(_) => {
                stream.reset(codes::TARGET_TIMEOUT);
                Err(Unopened::Timeout)
            }
        }
    }

    async fn forward_one(&self, tcp: TcpStream, peer: SocketAddr, target: String) {
        let stream = match self.open_to(&target).await {
            Ok(stream) => stream,
            Err(unopened) => {
                unopened.log(peer, &target);
                forward::reset_tcp(tcp);
                return;
            }
        };
        self.splice_logged(tcp, stream, peer).await;
    }

    async fn splice_logged(&self, tcp: TcpStream, stream: hawser_tokio::Stream, peer: SocketAddr) {
        match forward::splice(tcp, stream, &[&self.counters]).await {
            forward::End::Clean => tracing::debug!(%peer, "forwarded connection done"),
            forward::End::Local(err) => tracing::debug!(%peer, %err, "local connection failed; stream reset"),
            forward::End::Remote(err) => {
                tracing::info!(%peer, why = %forward::describe(&err), "connection reset")
            }
        }
    }

    async fn serve_socks(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (tcp, peer) = Self::accept_local(&listener).await;
            let this = self.clone();
            tokio::spawn(async move { this.socks_one(tcp, peer).await });
        }
    }

    /// One SOCKS5 connection: the handshake (bounded in time), the stream
    /// to its target, the reply, then the splice.
    async fn socks_one(&self, mut tcp: TcpStream, peer: SocketAddr) {
        let target = match tokio::time::timeout(
            Duration::from_secs(10),
            socks::handshake(&mut tcp, self.options.socks_credentials.as_ref()),
        )
        .await
        {
            Ok(Ok(target)) => target,
            Ok(Err(socks::HandshakeError::Unsupported(reply))) => {
                tracing::info!(%peer, ?reply, "SOCKS request not served");
                return;
            }
            Ok(Err(socks::HandshakeError::Io(err))) => {
                if err.kind() == io::ErrorKind::PermissionDenied {
                    tracing::warn!(%peer, %err, "SOCKS client refused");
                } else {
                    tracing::debug!(%peer, %err, "SOCKS handshake failed");
                }
                forward::reset_tcp(tcp);
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "SOCKS handshake timed out");
                forward::reset_tcp(tcp);
                return;
            }
        };
        let stream = match self.open_to(&target).await {
            Ok(stream) => stream,
            Err(unopened) => {
                unopened.log(peer, &target);
                let _ = socks::send_reply(&mut tcp, unopened.socks_reply()).await;
                return;
            }
        };
        if socks::send_reply(&mut tcp, socks::Reply::Succeeded).await.is_err() {
            stream.reset(codes::CONNECTION_FAILED);
            forward::reset_tcp(tcp);
            return;
        }
        self.splice_logged(tcp, stream, peer).await;
    }

    async fn serve_reverse(&self, mut stream: hawser_tokio::Stream) {
        let request = match tokio::time::timeout(Duration::from_secs(10), Request::read(&mut stream)).await {
            Ok(Ok(Request::Reverse(address))) => address,
            _ => {
                stream.reset(codes::BAD_REQUEST);
                return;
            }
        };
        let target = self
            .options
            .reverses
            .iter()
            .find(|reverse| reverse.listen.to_string() == request)
            .map(|reverse| reverse.target.clone());
        let Some(target) = target else {
            tracing::warn!(%request, "a reverse connection for a listener this client did not ask for");
            stream.reset(codes::NOT_ALLOWED);
            return;
        };
        let tcp = match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&target)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(err)) => {
                tracing::warn!(%target, %err, "cannot reach the reverse target");
                stream.reset(codes::TARGET_UNREACHABLE);
                return;
            }
            Err(_) => {
                stream.reset(codes::TARGET_TIMEOUT);
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        if let forward::End::Remote(err) = forward::splice(tcp, stream, &[&self.counters]).await {
            tracing::info!(%target, why = %forward::describe(&err), "reverse connection reset");
        }
    }

    /// Asks the session to go away, and waits up to `drain` for it to end:
    /// no new connection is taken, the `-R` listeners are given up, and open
    /// connections may finish. Those still open when the drain runs out are
    /// reset.
    pub async fn shut_down(&self, drain: Duration) {
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        self.release_reverses.send_replace(true);
        let sessions: Vec<Control> = self.session().into_iter().collect();
        crate::shutdown::drain(&sessions, drain, REASON, &self.counters.open).await;
    }

    /// Ends the session at once (a second signal): open connections are
    /// reset at both ends.
    pub async fn close_now(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        let sessions: Vec<Control> = self.session().into_iter().collect();
        crate::shutdown::end_now(&sessions, REASON).await;
    }

    /// Waits until the client cannot go on; returns the exit status.
    pub async fn failed(&self) -> u8 {
        let mut fatal = self.fatal.subscribe();
        let code = match fatal.wait_for(Option::is_some).await {
            Ok(code) => code.unwrap_or(crate::EXIT_LINK),
            // The sender lives as long as the client: never.
            Err(_) => std::future::pending().await,
        };
        code
    }
}

/// The go-away reason the server logs when the client shuts down.
const REASON: &str = "the client is shutting down";

/// Why a stream to a target could not be had.
enum Unopened {
    /// No session to the server, even after waiting.
    NoSession,
    /// The stream failed (the session ended, or the request could not go).
    Stream(io::Error),
    /// The server refused.
    Refused(Refusal),
    /// The server did not answer in time.
    Timeout,
}

impl Unopened {
    fn log(&self, peer: SocketAddr, target: &str) {
        match self {
            Unopened::NoSession => tracing::warn!(%peer, "no session to the server; connection reset"),
            Unopened::Stream(err) => {
                tracing::warn!(%peer, %target, why = %forward::describe(err), "connection reset")
            }
            Unopened::Refused(refusal) => tracing::error!(%peer, %target, "refused: {refusal}"),
            Unopened::Timeout => {
                tracing::warn!(%peer, %target, "the server did not answer in time; connection reset")
            }
        }
    }

    fn socks_reply(&self) -> socks::Reply {
        match self {
            Unopened::Refused(refusal) => socks::Reply::for_refusal(refusal),
            Unopened::Timeout => socks::Reply::TimedOut,
            Unopened::NoSession | Unopened::Stream(_) => socks::Reply::GeneralFailure,
        }
    }
}

/// How long to wait before building a new session again after a failed
/// attempt, doubling up to the last wait.
const REBUILD_FIRST_WAIT: Duration = Duration::from_secs(1);
const REBUILD_LAST_WAIT: Duration = Duration::from_secs(30);

/// Ends the client: the server no longer accepts its credentials. Retrying
/// cannot help, and every failed proof counts against this address at the
/// server, locking out the clients that share it.
fn give_up_on_credentials(fatal: &watch::Sender<Option<u8>>, err: &io::Error) {
    tracing::error!(
        why = %crate::describe_link_error(err),
        "the server no longer accepts this client's credentials; giving up"
    );
    fatal.send_replace(Some(crate::EXIT_AUTH));
}

/// A resumable session over a first link dialled here (so that a wrong token
/// or certificate fails at once instead of being retried), redialling later
/// links under the retry policy; a redial whose credentials are rejected ends
/// the client through `fatal`.
async fn connect(options: &ClientOptions, fatal: &Arc<watch::Sender<Option<u8>>>) -> io::Result<Session> {
    let first = options.dialer.dial().await?;
    let first = Arc::new(Mutex::new(Some(first)));
    let dialer = options.dialer.clone();
    let fatal = fatal.clone();
    let dial = move || {
        let first = first.lock().unwrap_or_else(|p| p.into_inner()).take();
        let dialer = dialer.clone();
        let fatal = fatal.clone();
        async move {
            match first {
                Some(link) => Ok::<Link, io::Error>(link),
                None => {
                    let link = dialer.dial().await;
                    match &link {
                        Err(err) if crate::credentials_rejected(err) => give_up_on_credentials(&fatal, err),
                        Err(err) => tracing::debug!(why = %crate::describe_link_error(err), "redial failed"),
                        Ok(_) => {}
                    }
                    link
                }
            }
        }
    };
    Session::connect_resumable_with(dial, options.config.clone(), options.retry.clone()).await
}

/// Asks for each reverse listener on its own stream, which stays open for as
/// long as the listener should.
async fn request_reverses(
    session: &Session,
    reverses: &[Reverse],
    released: &watch::Receiver<bool>,
) -> Result<(), StartError> {
    for reverse in reverses {
        let mut stream = session.open_stream().await.map_err(StartError::Link)?;
        Request::Listen(reverse.listen.to_string())
            .write(&mut stream)
            .await
            .map_err(StartError::Link)?;
        match wire::read_answer(&mut stream).await.map_err(StartError::Link)? {
            Ok(()) => {
                tracing::info!(listen = %reverse.listen, target = %reverse.target, "reverse forward open");
                // Held open: the server closes the listener when this stream
                // ends, which it does when the server ends it or the client
                // shuts down.
                let mut released = released.clone();
                tokio::spawn(async move {
                    let mut sink = [0u8; 64];
                    loop {
                        tokio::select! {
                            read = tokio::io::AsyncReadExt::read(&mut stream, &mut sink) => {
                                if !matches!(read, Ok(n) if n > 0) {
                                    break;
                                }
                            }
                            _ = released.wait_for(|released| *released) => break,
                        }
                    }
                });
            }
            Err(refusal) => return Err(StartError::Refused(refusal)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_specs_parse_with_and_without_a_bind_address() {
        assert_eq!(
            Forward::parse("8080:db.internal:5432"),
            Ok(Forward {
                bind: "127.0.0.1:8080".parse().expect("address"),
                target: "db.internal:5432".into()
            })
        );
        assert_eq!(
            Forward::parse("[::1]:8080:[2001:db8::1]:22").map(|f| (f.bind.to_string(), f.target)),
            Ok(("[::1]:8080".into(), "[2001:db8::1]:22".into()))
        );
        assert_eq!(
            Reverse::parse("0.0.0.0:9000:localhost:3000").map(|r| (r.listen.to_string(), r.target)),
            Ok(("0.0.0.0:9000".into(), "localhost:3000".into()))
        );
        assert!(Forward::parse("8080:db").is_err());
        assert!(Forward::parse("x:db:1").is_err());
        assert!(
            Forward::parse("name:80:db:1").is_err(),
            "the bind address must be an IP"
        );
    }
}
