//! The command line: what each subcommand takes. The options each one builds
//! from it are parsed beside the types they make (`ServerOptions::from_args`,
//! `ClientOptions::from_args`, `Forward::parse`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// `hawser`'s command line.
#[derive(Parser)]
#[command(
    name = "hawser",
    version,
    about = "Forward TCP ports over one encrypted, multiplexed link whose connections survive network drops.",
    after_help = "Example, on the server machine:\n  \
        hawser keygen --cert cert.pem --key key.pem --token token.txt   # prints the fingerprint\n  \
        hawser server --listen 0.0.0.0:7000 --token-file token.txt --cert cert.pem --key key.pem --allow 127.0.0.1:5432\n\
        and on the client machine (token.txt copied over a safe channel):\n  \
        hawser client --connect server.example:7000 --token-file token.txt --fingerprint <FINGERPRINT> -L 5432:127.0.0.1:5432\n\
        Where only HTTPS gets out: the server adds --listen-ws 0.0.0.0:443, the client --connect wss://server.example/tunnel\n\
        (and --proxy http://proxy:3128, or HTTPS_PROXY, for an HTTP proxy). Config files: --config FILE (see README).\n\n\
        Exit status: 0 done, 2 bad usage or files, 3 authentication failed, 4 link failed, 5 forward refused.\n\
        Logs go to stderr; RUST_LOG sets the level (e.g. RUST_LOG=debug)."
)]
pub struct Cli {
    #[command(subcommand)]
    /// What to run.
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Accept tunnel clients and forward what the allow lists permit.
    Server(ServerArgs),
    /// Connect to a server and forward local (-L) and remote (-R) ports.
    Client(ClientArgs),
    /// Make a self-signed certificate and key for a server, and tokens for clients.
    Keygen(KeygenArgs),
    /// Everything on loopback: a target, a server, a client, and a proxy that
    /// kills the link mid-transfer; checks every byte and compares with direct TCP.
    Demo(DemoArgs),
}

/// What the server and the client both take.
#[derive(Args)]
pub struct Common {
    /// A config file (TOML; see the README). Flags given too win over its settings; -L, -R and -D add to its forwards.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// File with the token (hex, at least 128 bits; `hawser keygen --token` makes one).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// No TLS. Only for loopback addresses (tests); refused for anything else.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Log a status line this often (e.g. 5s, 1m; at least 1s).
    #[arg(long, value_name = "DURATION", value_parser = parse_status_interval)]
    pub status: Option<Duration>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100; no authentication, so keep it off public addresses).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// On Ctrl-C or SIGTERM, how long open connections may take to finish before they are reset (a second signal resets them at once) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub drain: Option<Duration>,
}

/// How long a drain may take when neither a flag nor a config file says.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// `hawser server`.
#[derive(Args)]
pub struct ServerArgs {
    /// Address to accept clients on, e.g. 0.0.0.0:7000.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address to accept clients over WebSocket on (`--connect wss://HOST[:PORT]/PATH`; any path), e.g. 0.0.0.0:443: TLS, then the WebSocket upgrade, then the same tunnel. With or without --listen.
    #[arg(long, value_name = "ADDR")]
    pub listen_ws: Option<SocketAddr>,
    /// The server's certificate chain (PEM).
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// What the --token-file client's -L and -D may reach (repeatable; nothing else is reachable): NAME:PORT, *.DOMAIN:PORT, ADDRESS:PORT or NETWORK/PREFIX:PORT, PORT a port or a range LOW-HIGH (e.g. db.internal:5432, 10.0.0.0/8:22, 127.0.0.1:8000-8099). Checked after the target's name is resolved.
    #[arg(long, value_name = "RULE")]
    pub allow: Vec<String>,
    /// An address that the --token-file client's -R may listen on: PORT (on 127.0.0.1) or ADDR:PORT (repeatable).
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub allow_reverse: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)] // a doc comment here would become clap's help text
    pub common: Common,
}

/// `hawser client`.
#[derive(Args)]
pub struct ClientArgs {
    /// The server, as HOST:PORT, or wss://HOST[:PORT]/PATH for its --listen-ws (through proxies and port-443-only networks).
    #[arg(long, value_name = "HOST:PORT|URL")]
    pub connect: Option<String>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (as `hawser keygen` prints).
    #[arg(long, value_name = "SHA256", conflicts_with = "ca")]
    pub fingerprint: Option<String>,
    /// Trust server certificates signed by a CA in this file (PEM).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// The name to check the server's certificate against with --ca (default: the host of --connect).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Listen locally on [BIND:]PORT; the server connects each connection to HOST:PORT (repeatable).
    #[arg(short = 'L', value_name = "[BIND:]PORT:HOST:PORT")]
    pub local: Vec<String>,
    /// The server listens on [BIND:]PORT; this side connects each connection to HOST:PORT (repeatable).
    #[arg(short = 'R', value_name = "[BIND:]PORT:HOST:PORT")]
    pub remote: Vec<String>,
    /// Reach the server through this HTTP proxy's CONNECT: http://[USER:PASSWORD@]HOST:PORT (default: $HTTPS_PROXY).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// A SOCKS5 proxy on [BIND:]PORT (127.0.0.1 if left out; another address needs a username and password in the config file): each connection's target is resolved and checked against the allow rules at the server (repeatable).
    #[arg(short = 'D', value_name = "[BIND:]PORT")]
    pub dynamic: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)] // a doc comment here would become clap's help text
    pub common: Common,
}

/// `hawser keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the certificate (PEM).
    #[arg(long, value_name = "PEM", requires = "key", required_unless_present = "token")]
    pub cert: Option<PathBuf>,
    /// Where to write the private key (PEM; created readable by its owner only).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Names the certificate is for (repeatable; only --ca clients check them).
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub name: Vec<String>,
    /// Also write a new random token (256 bits) to this file (alone, without --cert and --key: only a token, e.g. for one more client).
    #[arg(long, value_name = "FILE")]
    pub token: Option<PathBuf>,
    /// Replace files that exist already (by default keygen refuses: a new key
    /// and token lock out every client configured with the old ones).
    #[arg(long)]
    pub force: bool,
}

/// `hawser demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Megabytes to move each way through the tunnel.
    #[arg(long, default_value_t = 256)]
    pub megabytes: u64,
    /// How many times to kill the link mid-transfer.
    #[arg(long, default_value_t = 5)]
    pub kills: u64,
    /// Connections to spread the transfer over.
    #[arg(long, default_value_t = 4)]
    pub connections: u64,
}

/// `--status`: a duration of at least a second (a shorter one would flood
/// the log, hundreds of lines a second at `0s`).
pub fn parse_status_interval(text: &str) -> Result<Duration, String> {
    let every = parse_duration(text)?;
    if every < Duration::from_secs(1) {
        return Err(format!(
            "{text:?} is too often: a status line at most once a second (e.g. 5s)"
        ));
    }
    Ok(every)
}

/// A duration as `5s`, `500ms`, `2m` or `1h` (seconds without a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
