//! The idle workload, one end per process: a server process and a client
//! process, each measuring its own resident-set growth, so that each figure is
//! one session end's cost per stream and no memory freed by earlier workloads
//! can hide it.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::mux::TokioImpl;
use crate::workloads::{self, Figure};

/// `--idle-server NAME COUNT RUNTIME` or `--idle-client NAME COUNT RUNTIME ADDR`:
/// one end of one idle repetition. Prints the address (server) and the figure on
/// stdout, then keeps its streams open until stdin closes.
pub fn child_main(side: &str, mut rest: impl Iterator<Item = String>) -> ! {
    let name = rest.next().unwrap_or_default();
    let count: usize = rest.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let multi_thread = rest.next().as_deref() != Some("current");
    let addr: Option<SocketAddr> = rest.next().and_then(|a| a.parse().ok());
    let Some(which) = TokioImpl::ALL.into_iter().find(|w| w.name() == name) else {
        fail(format!("unknown implementation {name}"));
    };
    let runtime = crate::build_runtime(multi_thread);
    let outcome = runtime.block_on(async {
        let measuring = async {
            if side == "--idle-server" {
                let figure = workloads::idle_server(which, count, |addr| say(&addr.to_string())).await?;
                say(&figure.to_string());
                stdin_closed().await;
                Ok(())
            } else {
                let addr = addr.ok_or_else(|| io::Error::other("no server address"))?;
                workloads::idle_client(which, addr, count, |figure| say(&figure.to_string()), stdin_closed()).await
            }
        };
        match tokio::time::timeout(crate::LIMIT, measuring).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "idle took over 60 s")),
        }
    });
    match outcome {
        Ok(()) => std::process::exit(0),
        Err(err) => fail(err.to_string()),
    }
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn fail(why: String) -> ! {
    eprintln!("{why}");
    std::process::exit(1);
}

async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while io::stdin().lock().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await;
}

/// One idle repetition: a server process and a client process for `which`.
/// Figures: `client` and `server`, bytes of resident memory per stream at each
/// end (the server's includes the bench's task per stream).
pub fn measure(which: TokioImpl, count: usize, multi_thread: bool) -> io::Result<Vec<Figure>> {
    let exe = std::env::current_exe()?;
    let runtime = if multi_thread { "multi" } else { "current" };
    let spawn = |side: &str, extra: Option<String>| {
        let mut command = Command::new(&exe);
        command.args([side, which.name(), &count.to_string(), runtime]);
        command.args(extra);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn()
    };
    let mut server = spawn("--idle-server", None)?;
    let mut server_out = BufReader::new(server.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?);
    let outcome = (|| {
        let addr = read_line(&mut server_out)?;
        let mut client = spawn("--idle-client", Some(addr))?;
        let mut client_out = BufReader::new(client.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?);
        let figures = read_line(&mut client_out).and_then(|client_figure| {
            let server_figure = read_line(&mut server_out)?;
            Ok(vec![
                figure("client", parse(&client_figure)?),
                figure("server", parse(&server_figure)?),
            ])
        });
        finish(client, figures.is_err())?;
        figures
    })();
    finish(server, outcome.is_err())?;
    outcome
}

fn figure(metric: &'static str, value: f64) -> Figure {
    Figure {
        metric,
        value,
        unit: "bytes/stream",
    }
}

fn read_line(from: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    from.read_line(&mut line)?;
    if line.trim().is_empty() {
        return Err(io::Error::other("an idle process ended without a figure"));
    }
    Ok(line.trim().to_string())
}

fn parse(text: &str) -> io::Result<f64> {
    text.parse()
        .map_err(|_| io::Error::other(format!("unexpected idle output {text:?}")))
}

/// Closes the child's stdin (it then ends) and waits for it; on failure, kills
/// it and reports its error output.
fn finish(mut child: std::process::Child, failed: bool) -> io::Result<()> {
    drop(child.stdin.take());
    if failed {
        let _ = child.kill();
    }
    let output = child.wait_with_output()?;
    if !failed && !output.status.success() {
        return Err(io::Error::other(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}
