//! What the `hawser` command does, from its arguments to its exit status:
//! `main.rs` calls [`main`]. A library function so that a benchmark can run
//! the very same command in a process of its own.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::cli::{Cli, ClientArgs, Command, ServerArgs};
use crate::client::{Client, ClientSetup, StartError};
use crate::server::{self, Server, ServerSetup};
use crate::{tls, EXIT_LINK, EXIT_REFUSED, EXIT_USAGE};

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("hawser: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// Runs `hawser` with `args` (the program's name first, as in
/// [`std::env::args_os`]) and returns its exit status. Logs go to stderr
/// through `tracing`, unless the process already has a subscriber.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    // The demo prints its own report; its links are killed on purpose.
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    // An error here means a subscriber is in place already, which stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    // A client carries one user's connections over one session: on one
    // thread it spends less CPU per byte than threads handing work to each
    // other (hawser-bench's tunnel workload). A server accepts on one thread
    // and serves each link on one of a thread per core (`cores`).
    let mut builder = if matches!(cli.command, Command::Client(_) | Command::Server(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return usage(format!("cannot start the runtime: {err}")),
    };
    runtime.block_on(async {
        match cli.command {
            Command::Server(args) => run_server(args).await,
            Command::Client(args) => run_client(args).await,
            Command::Keygen(args) => tls::keygen(&args).map_or_else(usage, |()| ExitCode::SUCCESS),
            Command::Demo(args) => crate::demo::run(args.megabytes, args.kills, args.connections).await,
        }
    })
}

async fn run_server(args: ServerArgs) -> ExitCode {
    let setup = match ServerSetup::from_args(&args) {
        Ok(setup) => setup,
        Err(err) => return usage(err),
    };
    let (status, metrics, drain) = (setup.status, setup.metrics, setup.drain);
    let server = match Server::new(setup.options) {
        Ok(server) => server,
        Err(err) => return usage(err),
    };
    match crate::cores::Cores::per_core() {
        Ok(cores) => server.spread_links(cores),
        Err(err) => return usage(format!("cannot start the runtime threads: {err}")),
    }
    // Watched before the first line that says the server is up: a signal
    // sent as soon as that line appears must start the drain, not kill the
    // process with the default action.
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(err) => return usage(format!("cannot watch for signals: {err}")),
    };
    // Both bound before either serves: a busy port fails at once.
    let mut listeners = Vec::new();
    for (addr, websocket) in [(setup.listen, false), (setup.listen_ws, true)] {
        let Some(addr) = addr else { continue };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("hawser: cannot listen on {addr}: {err}");
                return ExitCode::from(EXIT_LINK);
            }
        };
        match listener.local_addr() {
            Ok(addr) if websocket => println!("listening for WebSocket on {addr}"),
            Ok(addr) => println!("listening on {addr}"),
            Err(err) => return usage(err),
        }
        listeners.push((listener, websocket));
    }
    let figures = server.clone();
    if let Err(err) = start_metrics(metrics, move || figures.metrics()).await {
        return usage(err);
    }
    let serving: Vec<_> = listeners
        .into_iter()
        .map(|(listener, websocket)| {
            let server = server.clone();
            tokio::spawn(async move {
                if websocket {
                    server.serve_websocket(listener).await
                } else {
                    server.serve(listener).await
                }
            })
        })
        .collect();
    if let Some(every) = status {
        tokio::spawn(server.clone().log_status(every));
    }
    tokio::spawn(reload_on_hangup(server.clone(), args));
    let signal = signals.next().await;
    tracing::info!(
        signal,
        ?drain,
        "shutting down: going away, then closing; a second signal closes at once"
    );
    for task in &serving {
        task.abort();
    }
    tokio::select! {
        () = server.shut_down(drain) => {}
        signal = signals.next() => {
            tracing::warn!(signal, "second signal: closing now; open connections are reset");
            server.close_now().await;
        }
    }
    ExitCode::SUCCESS
}

/// `SIGHUP`: reads the config file and token files again and puts their
/// clients in place (see [`Server::reload`]). A file with an error is
/// refused, and the server goes on as it was.
async fn reload_on_hangup(server: Arc<Server>, args: ServerArgs) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(err) => {
                tracing::warn!(%err, "cannot watch for SIGHUP; reloading is off");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match server::load_clients(&args) {
                Ok(clients) => server.reload(clients),
                Err(err) => tracing::error!("reload refused, the configuration in use stays: {err}"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (server, args);
}

async fn run_client(args: ClientArgs) -> ExitCode {
    let setup = match ClientSetup::from_args(&args).await {
        Ok(setup) => setup,
        Err(err) => return usage(err),
    };
    let (connect, status, metrics, drain) = (setup.connect, setup.status, setup.metrics, setup.drain);
    let options = setup.options;
    let (forwards, reverses) = (options.forwards.clone(), options.reverses.clone());
    let client = match Client::start(options).await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("hawser: {err}");
            return ExitCode::from(match &err {
                StartError::Link(io) => crate::exit_code(io),
                StartError::Refused(_) => EXIT_REFUSED,
                StartError::Local(_) => EXIT_LINK,
            });
        }
    };
    // Watched before the lines that say the client is up (see `run_server`).
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(err) => return usage(format!("cannot watch for signals: {err}")),
    };
    println!("connected to {connect}");
    for (forward, local) in forwards.iter().zip(&client.local_addrs) {
        println!("forwarding {local} -> {}", forward.target);
    }
    for reverse in &reverses {
        println!("reverse {} -> {}", reverse.listen, reverse.target);
    }
    for socks in &client.socks_addrs {
        println!("socks5 on {socks}");
    }
    let figures = client.clone();
    if let Err(err) = start_metrics(metrics, move || figures.metrics()).await {
        return usage(err);
    }
    if let Some(every) = status {
        tokio::spawn(client.clone().log_status(every));
    }
    let signal = tokio::select! {
        signal = signals.next() => signal,
        code = client.failed() => return ExitCode::from(code),
    };
    tracing::info!(
        signal,
        ?drain,
        "shutting down: going away, then closing; a second signal closes at once"
    );
    tokio::select! {
        () = client.shut_down(drain) => {}
        signal = signals.next() => {
            tracing::warn!(signal, "second signal: closing now; open connections are reset");
            client.close_now().await;
        }
    }
    ExitCode::SUCCESS
}

/// `--metrics ADDR`: serves `figures` there, in a task, and says where.
async fn start_metrics<F>(addr: Option<SocketAddr>, figures: F) -> Result<(), String>
where
    F: Fn() -> Vec<crate::metrics::Family> + Send + Sync + 'static,
{
    let Some(addr) = addr else {
        return Ok(());
    };
    let listener = crate::metrics::bind(addr).await?;
    let bound = listener.local_addr().unwrap_or(addr);
    tokio::spawn(crate::metrics::serve(listener, Arc::new(figures)));
    println!("metrics on http://{bound}/metrics");
    Ok(())
}

/// The signals that end `hawser server` and `hawser client`: SIGINT (Ctrl-C)
/// and SIGTERM (what `systemctl stop`, `docker stop` and `kill` send). The
/// first starts the drain, a second of either ends it at once. Whichever way
/// the process ends, a forwarded connection it cuts is reset, never closed
/// cleanly (see `forward::arm_reset`).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
