//! `hawser`: forward TCP ports over one encrypted hawser session whose
//! connections survive the loss of the link. See `hawser --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hawser_tunnel::auth::Token;
use hawser_tunnel::client::{Client, ClientOptions, Forward, Reverse, StartError};
use hawser_tunnel::link::{check_plaintext, Dialer};
use hawser_tunnel::server::{Server, ServerOptions};
use hawser_tunnel::{tls, EXIT_LINK, EXIT_REFUSED, EXIT_USAGE};

#[derive(Parser)]
#[command(
    name = "hawser",
    version,
    about = "Forward TCP ports over one encrypted, multiplexed link whose connections survive network drops.",
    after_help = "Example, on the server machine:\n  \
        hawser keygen --cert cert.pem --key key.pem --token token.txt   # prints the fingerprint\n  \
        hawser server --listen 0.0.0.0:7000 --token-file token.txt --cert cert.pem --key key.pem --allow 127.0.0.1:5432\n\
        and on the client machine (token.txt copied over a safe channel):\n  \
        hawser client --connect server.example:7000 --token-file token.txt --fingerprint <FINGERPRINT> -L 5432:127.0.0.1:5432\n\n\
        Exit status: 0 done, 2 bad usage or files, 3 authentication failed, 4 link failed, 5 forward refused.\n\
        Logs go to stderr; RUST_LOG sets the level (e.g. RUST_LOG=debug)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Accept tunnel clients and forward what the allow lists permit.
    Server(ServerArgs),
    /// Connect to a server and forward local (-L) and remote (-R) ports.
    Client(ClientArgs),
    /// Make a self-signed certificate and key (and optionally a token) for a server.
    Keygen(KeygenArgs),
    /// Everything on loopback: a target, a server, a client, and a proxy that
    /// kills the link mid-transfer; checks every byte and compares with direct TCP.
    Demo(DemoArgs),
}

#[derive(Args)]
struct Common {
    /// File with the shared token (hex, at least 128 bits; `hawser keygen --token` makes one).
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// No TLS. Only for loopback addresses (tests); refused for anything else.
    #[arg(long)]
    insecure_plaintext: bool,
    /// Log a status line this often (e.g. 5s, 1m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    status: Option<Duration>,
    /// On Ctrl-C, how long open connections may take to finish before they are cut.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    drain: Duration,
}

#[derive(Args)]
struct ServerArgs {
    /// Address to accept clients on, e.g. 0.0.0.0:7000.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The server's certificate chain (PEM).
    #[arg(long, value_name = "PEM", required_unless_present = "insecure_plaintext")]
    cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PEM", required_unless_present = "insecure_plaintext")]
    key: Option<PathBuf>,
    /// A target that -L may reach, as HOST:PORT (repeatable). Nothing else is reachable.
    #[arg(long, value_name = "HOST:PORT")]
    allow: Vec<String>,
    /// An address that -R may listen on: PORT (on 127.0.0.1) or ADDR:PORT (repeatable).
    #[arg(long, value_name = "[ADDR:]PORT")]
    allow_reverse: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct ClientArgs {
    /// The server, as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    connect: String,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (as `hawser keygen` prints).
    #[arg(long, value_name = "SHA256", conflicts_with = "ca")]
    fingerprint: Option<String>,
    /// Trust server certificates signed by a CA in this file (PEM).
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// The name to check the server's certificate against with --ca (default: the host of --connect).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Listen locally on [BIND:]PORT; the server connects each connection to HOST:PORT (repeatable).
    #[arg(short = 'L', value_name = "[BIND:]PORT:HOST:PORT")]
    local: Vec<String>,
    /// The server listens on [BIND:]PORT; this side connects each connection to HOST:PORT (repeatable).
    #[arg(short = 'R', value_name = "[BIND:]PORT:HOST:PORT")]
    remote: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct KeygenArgs {
    /// Where to write the certificate (PEM).
    #[arg(long, value_name = "PEM")]
    cert: PathBuf,
    /// Where to write the private key (PEM; created readable by its owner only).
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// Names the certificate is for (repeatable; only --ca clients check them).
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    name: Vec<String>,
    /// Also write a new random token (256 bits) to this file.
    #[arg(long, value_name = "FILE")]
    token: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Megabytes to move each way through the tunnel.
    #[arg(long, default_value_t = 256)]
    megabytes: u64,
    /// How many times to kill the link mid-transfer.
    #[arg(long, default_value_t = 5)]
    kills: u64,
    /// Connections to spread the transfer over.
    #[arg(long, default_value_t = 4)]
    connections: u64,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 5s, 500ms, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| err.to_string())
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("hawser: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own report; its links are killed on purpose.
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return usage(format!("cannot start the runtime: {err}")),
    };
    runtime.block_on(async {
        match cli.command {
            Command::Server(args) => run_server(args).await,
            Command::Client(args) => run_client(args).await,
            Command::Keygen(args) => keygen(args),
            Command::Demo(args) => hawser_tunnel::demo::run(args.megabytes, args.kills, args.connections).await,
        }
    })
}

fn keygen(args: KeygenArgs) -> ExitCode {
    let (cert, key, fingerprint) = match tls::self_signed(args.name) {
        Ok(made) => made,
        Err(err) => return usage(format!("cannot make a certificate: {err}")),
    };
    if let Err(err) = std::fs::write(&args.cert, cert) {
        return usage(format!("cannot write {}: {err}", args.cert.display()));
    }
    if let Err(err) = write_private(&args.key, key.as_bytes()) {
        return usage(format!("cannot write {}: {err}", args.key.display()));
    }
    if let Some(path) = &args.token {
        let token = match Token::generate() {
            Ok(token) => token,
            Err(err) => return usage(err),
        };
        if let Err(err) = write_private(path, token.as_bytes()) {
            return usage(format!("cannot write {}: {err}", path.display()));
        }
        println!(
            "token written to {} (copy it to the client over a safe channel)",
            path.display()
        );
    }
    println!(
        "certificate written to {}, key to {}",
        args.cert.display(),
        args.key.display()
    );
    println!("fingerprint {fingerprint}");
    ExitCode::SUCCESS
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options.open(path)?.write_all(contents)
}

async fn run_server(args: ServerArgs) -> ExitCode {
    let token = match Token::from_file(&args.common.token_file) {
        Ok(token) => token,
        Err(err) => return usage(err),
    };
    let tls = if args.common.insecure_plaintext {
        if let Err(why) = check_plaintext(args.listen) {
            return usage(why);
        }
        tracing::warn!("plaintext: the link is not encrypted (loopback only)");
        None
    } else {
        let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
            return usage("--cert and --key are needed (or --insecure-plaintext on loopback)");
        };
        let loaded = tls::load_cert(cert, key).and_then(|(chain, key)| {
            let fingerprint = tls::fingerprint(&chain[0]);
            tls::server_config(chain, key).map(|config| (config, fingerprint))
        });
        match loaded {
            Ok((config, fingerprint)) => {
                println!("certificate fingerprint {fingerprint}");
                Some(config)
            }
            Err(err) => return usage(err),
        }
    };
    let mut allow_reverse = Vec::new();
    for entry in &args.allow_reverse {
        let parsed = match entry.parse::<u16>() {
            Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
            Err(_) => entry.parse::<SocketAddr>(),
        };
        match parsed {
            Ok(addr) => allow_reverse.push(addr),
            Err(_) => return usage(format!("--allow-reverse {entry:?} is not PORT or ADDR:PORT")),
        }
    }
    for target in &args.allow {
        if target
            .rsplit_once(':')
            .map_or(true, |(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            return usage(format!("--allow {target:?} is not HOST:PORT"));
        }
    }
    let options = ServerOptions {
        token,
        tls,
        allow: args.allow,
        allow_reverse,
        config: hawser_tunnel::session_config(),
    };
    let server = match Server::new(options) {
        Ok(server) => server,
        Err(err) => return usage(err),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("hawser: cannot listen on {}: {err}", args.listen);
            return ExitCode::from(EXIT_LINK);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(err) => return usage(err),
    }
    let serving = tokio::spawn(server.clone().serve(listener));
    if let Some(every) = args.common.status {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let stats = server.acceptor_stats();
                let counters = &server.counters;
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
        });
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!(drain = ?args.common.drain, "shutting down: going away, then closing");
    serving.abort();
    server.shut_down(args.common.drain).await;
    ExitCode::SUCCESS
}

async fn run_client(args: ClientArgs) -> ExitCode {
    let token = match Token::from_file(&args.common.token_file) {
        Ok(token) => token,
        Err(err) => return usage(err),
    };
    let tls = if args.common.insecure_plaintext {
        // Checked again against the address the name resolves to, on every dial.
        match tokio::net::lookup_host(&args.connect)
            .await
            .map(|mut addrs| addrs.next())
        {
            Ok(Some(addr)) => {
                if let Err(why) = check_plaintext(addr) {
                    return usage(why);
                }
            }
            Ok(None) | Err(_) => return usage(format!("cannot resolve {}", args.connect)),
        }
        tracing::warn!("plaintext: the link is not encrypted (loopback only)");
        None
    } else {
        let trust = match (&args.fingerprint, &args.ca) {
            (Some(fingerprint), _) => match tls::parse_fingerprint(fingerprint) {
                Ok(hex) => tls::Trust::Fingerprint(hex),
                Err(err) => return usage(err),
            },
            (None, Some(ca)) => tls::Trust::Ca(ca.clone()),
            (None, None) => return usage("--fingerprint or --ca is needed (or --insecure-plaintext on loopback)"),
        };
        let config = match tls::client_config(&trust) {
            Ok(config) => config,
            Err(err) => return usage(err),
        };
        let host = args.server_name.clone().unwrap_or_else(|| {
            let host = args
                .connect
                .rsplit_once(':')
                .map_or(args.connect.as_str(), |(host, _)| host);
            host.trim_start_matches('[').trim_end_matches(']').to_string()
        });
        let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
            Ok(name) => name,
            Err(_) => return usage(format!("{host:?} is not a valid server name")),
        };
        Some((config, name))
    };
    let mut forwards = Vec::new();
    for spec in &args.local {
        match Forward::parse(spec) {
            Ok(forward) => forwards.push(forward),
            Err(err) => return usage(format!("-L {err}")),
        }
    }
    let mut reverses = Vec::new();
    for spec in &args.remote {
        match Reverse::parse(spec) {
            Ok(reverse) => reverses.push(reverse),
            Err(err) => return usage(format!("-R {err}")),
        }
    }
    if forwards.is_empty() && reverses.is_empty() {
        return usage("nothing to forward: give -L or -R");
    }
    let options = ClientOptions {
        dialer: Dialer {
            server: args.connect.clone(),
            tls,
            token,
        },
        forwards: forwards.clone(),
        reverses: reverses.clone(),
        config: hawser_tunnel::session_config(),
        retry: hawser_tokio::RetryPolicy::default(),
    };
    let client = match Client::start(options).await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("hawser: {err}");
            return ExitCode::from(match &err {
                StartError::Link(io) => hawser_tunnel::exit_code(io),
                StartError::Refused(_) => EXIT_REFUSED,
                StartError::Local(_) => EXIT_LINK,
            });
        }
    };
    println!("connected to {}", args.connect);
    for (forward, local) in forwards.iter().zip(&client.local_addrs) {
        println!("forwarding {local} -> {}", forward.target);
    }
    for reverse in &reverses {
        println!("reverse {} -> {}", reverse.listen, reverse.target);
    }
    if let Some(every) = args.common.status {
        let client = client.clone();
        tokio::spawn(status_loop(client, every));
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!(drain = ?args.common.drain, "shutting down: going away, then closing");
    client.shut_down(args.common.drain).await;
    ExitCode::SUCCESS
}

async fn status_loop(client: Arc<Client>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let counters = &client.counters;
        let (rtt_ms, reconnects, resumes, replayed) = match client.session() {
            Some(control) => {
                let status = control.status();
                let stats = control.stats();
                (
                    status.rtt_smoothed.map(|rtt| rtt.as_secs_f64() * 1e3),
                    status.reconnects,
                    status.resumes,
                    stats.bytes_replayed,
                )
            }
            None => (None, 0, 0, 0),
        };
        tracing::info!(
            forwards = client.local_addrs.len(),
            connections = counters.open.load(Ordering::Relaxed),
            connections_total = counters.total.load(Ordering::Relaxed),
            bytes_out = counters.sent.load(Ordering::Relaxed),
            bytes_in = counters.received.load(Ordering::Relaxed),
            rtt_ms = ?rtt_ms,
            reconnects,
            resumes,
            bytes_replayed = replayed,
            sessions = client.sessions_built(),
            "status"
        );
    }
}
