//! hashicorp/yamux, the Go implementation that Consul, Nomad and go-plugin speak,
//! as a peer: the program in `conformance/hashicorp/` (see its README), built with
//! the Go toolchain and Debian's `golang-github-hashicorp-yamux-dev`, and run as
//! a child process at the far end of a loopback TCP connection.
//!
//! Its `E` command is exactly what Go services write: `io.Copy(stream, stream)`,
//! then `Close()`. [`hashicorp_tests!`](crate::hashicorp_tests) instantiates the
//! scenarios for an adapter as `interop::hashicorp::<hawser role>::<scenario>`.
//!
//! Without `go` or the package the scenarios say so on stderr and pass, so that
//! `cargo test` works with only the Rust toolchain; with
//! `HAWSER_REQUIRE_HASHICORP=1` (which CI sets, after installing both) a missing
//! toolchain fails them instead.

use std::io::{self, BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hawser_core::{Config, GoAwayCode, Role};

use super::{fetch, read_to_end_random, serve_all, sum, within, InteropHarness, Outcome};
use crate::harness::{Harness, HarnessSession, HarnessStream};
use crate::rng::Rng;
use crate::scenarios::fail;

/// Where Debian's Go packages live; `HAWSER_GOPATH` overrides it.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// The built peer program, or why there is none. Built once per process.
fn program() -> &'static Result<Option<PathBuf>, String> {
    static PROGRAM: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let required = std::env::var_os("HAWSER_REQUIRE_HASHICORP").is_some_and(|v| v == "1");
        match build() {
            Ok(path) => Ok(Some(path)),
            Err(why) if required => Err(format!("HAWSER_REQUIRE_HASHICORP=1, but {why}")),
            Err(why) => {
                eprintln!("hashicorp/yamux interop skipped: {why}");
                Ok(None)
            }
        }
    })
}

fn build() -> Result<PathBuf, String> {
    let gopath = std::env::var("HAWSER_GOPATH").unwrap_or_else(|_| DEBIAN_GOPATH.into());
    let package = Path::new(&gopath).join("src/github.com/hashicorp/yamux");
    if !package.is_dir() {
        return Err(format!(
            "{} is missing (apt-get install golang-go golang-github-hashicorp-yamux-dev)",
            package.display()
        ));
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("hashicorp");
    let out_dir = std::env::temp_dir().join("hawser-hashicorp-peer");
    std::fs::create_dir_all(&out_dir).map_err(|err| format!("cannot make {}: {err}", out_dir.display()))?;
    // Built under a name of this process's own, then renamed into place, so that
    // test processes running at once never run a half-written program.
    let building = out_dir.join(format!("hashicorp-peer.{}", std::process::id()));
    let binary = out_dir.join("hashicorp-peer");
    let output = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&building)
        .arg(".")
        .current_dir(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOCACHE", std::env::temp_dir().join("hawser-gocache"))
        .output()
        .map_err(|err| format!("cannot run go ({err})"))?;
    if !output.status.success() {
        return Err(format!(
            "go build failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    std::fs::rename(&building, &binary).map_err(|err| format!("cannot place {}: {err}", binary.display()))?;
    Ok(binary)
}

/// A running peer process; killed when dropped.
struct GoPeer {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl GoPeer {
    fn start(program: &Path, args: &[String]) -> io::Result<GoPeer> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                sink.lock().unwrap_or_else(|p| p.into_inner()).push_str(&text);
            });
        }
        Ok(GoPeer { child, stderr })
    }

    /// The first line the program printed.
    fn first_line(&mut self) -> io::Result<String> {
        let stdout = self.child.stdout.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        Ok(line.trim().to_string())
    }

    /// Waits (checking every 10 ms, for at most `limit`) for the program to exit;
    /// `Ok` with its first stdout line when it exits 0.
    async fn exited<H: Harness>(&mut self, limit: Duration) -> Outcome {
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    // Give the stderr reader a moment to collect the last words.
                    H::sleep(Duration::from_millis(50)).await;
                    return Err(format!("the Go peer exited with {status}: {}", self.stderr()));
                }
                Ok(None) if waited >= limit => {
                    return Err(format!("the Go peer did not exit within {limit:?}: {}", self.stderr()))
                }
                Ok(None) => {}
                Err(err) => return Err(format!("waiting for the Go peer: {err}")),
            }
            H::sleep(step).await;
            waited += step;
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).trim().to_string()
    }
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hashicorp server and a hawser client session connected to it; `None` when
/// the peer cannot be built here and is not required.
async fn hawser_client<H: InteropHarness>() -> Result<Option<(GoPeer, H::Session)>, String> {
    let Some(program) = program().as_ref().map_err(Clone::clone)? else {
        return Ok(None);
    };
    let mut peer = GoPeer::start(program, &["serve".into()]).map_err(fail("start the Go peer"))?;
    let line = peer.first_line().map_err(fail("read the Go peer's address"))?;
    let addr = line
        .strip_prefix("listening ")
        .ok_or_else(|| format!("the Go peer said {line:?}: {}", peer.stderr()))?;
    let link = TcpStream::connect(addr).map_err(fail("connect to the Go peer"))?;
    link.set_nodelay(true).map_err(fail("nodelay"))?;
    let session = H::session_over(link, Role::Client, Config::yamux()).map_err(fail("hawser session"))?;
    Ok(Some((peer, session)))
}

/// Ends hawser's side, then checks that the Go peer saw an orderly end.
async fn finish<H: Harness, S: HarnessSession>(mut peer: GoPeer, session: S) -> Outcome {
    if session.is_closed() {
        return Err(format!("the hawser session ended early: {:?}", session.close_reason()));
    }
    session.close(GoAwayCode::NORMAL);
    peer.exited::<H>(Duration::from_secs(10)).await
}

/// 500 streams are opened and accepted first, so that the Go side's `io.Copy` is
/// already waiting in `Read` on each; then every stream writes its 4 KiB request
/// and finishes at once, so that data and FIN are queued together. hashicorp/yamux
/// applies a FIN before it copies that frame's payload and wakes the waiting
/// reader in between, which then reads a clean end-of-stream and echoes nothing:
/// every echo must come back whole (hawser sends the FIN on a frame of its own in
/// the yamux profile).
pub async fn write_then_finish_at_once<H: InteropHarness>() -> Outcome {
    let Some((peer, session)) = hawser_client::<H>().await? else {
        return Ok(());
    };
    let mut streams = Vec::new();
    for _ in 0..500 {
        streams.push(session.open().await.map_err(fail("open"))?);
    }
    // Time for the peer to accept them all and start reading.
    H::sleep(Duration::from_millis(300)).await;
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let mut tasks = Vec::new();
    for (i, mut stream) in (0u64..).zip(streams) {
        let results = results.clone();
        tasks.push(H::spawn(async move {
            let outcome = async {
                let mut request = vec![super::Command::ECHO];
                request.extend_from_slice(&super::random(7000 + i, 4096));
                stream.write_all(&request).await.map_err(fail("write"))?;
                stream.finish().await.map_err(fail("finish"))?;
                let back = read_to_end_random(&mut stream, &mut Rng::new(i))
                    .await
                    .map_err(fail("read the echo"))?;
                if back[..] != request[1..] {
                    return Err(format!("stream {i}: sent 4096 bytes, {} came back", back.len()));
                }
                Ok(())
            }
            .await;
            results.lock().unwrap_or_else(|p| p.into_inner()).push(outcome);
        }));
    }
    for task in tasks {
        task.await;
    }
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if !failed.is_empty() {
        return Err(format!("{} of 500 streams failed, first: {}", failed.len(), failed[0]));
    }
    finish::<H, _>(peer, session).await
}

/// 64 MiB from hawser to the Go peer (it replies with a digest after the FIN), and
/// 64 MiB back (generated by the peer), on one stream each: the windows must grow
/// and be honoured both ways.
pub async fn sixty_four_mib_each_way<H: InteropHarness>() -> Outcome {
    let Some((peer, session)) = hawser_client::<H>().await? else {
        return Ok(());
    };
    sum(&session, 64 << 20, 21).await?;
    fetch(&session, 64 << 20, 22).await?;
    finish::<H, _>(peer, session).await
}

/// The Go peer dials hawser and echoes through it: `streams` streams of `bytes`
/// each, written, finished and read back at once by the Go side.
async fn go_client_echoes<H: InteropHarness>(streams: usize, bytes: usize) -> Outcome {
    let Some(program) = program().as_ref().map_err(Clone::clone)? else {
        return Ok(());
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(fail("bind"))?;
    let addr = listener.local_addr().map_err(fail("bound"))?;
    let mut peer = GoPeer::start(
        program,
        &["dial".into(), addr.to_string(), streams.to_string(), bytes.to_string()],
    )
    .map_err(fail("start the Go peer"))?;
    let (link, _) = listener.accept().map_err(fail("accept the Go peer"))?;
    link.set_nodelay(true).map_err(fail("nodelay"))?;
    let session = H::session_over(link, Role::Server, Config::yamux()).map_err(fail("hawser session"))?;
    let serving = H::spawn(serve_all::<H>(session.clone()));
    peer.exited::<H>(Duration::from_secs(45)).await?;
    let line = peer.first_line().map_err(fail("read the Go peer's verdict"))?;
    if line != format!("ok {streams}") {
        return Err(format!("the Go peer said {line:?}: {}", peer.stderr()));
    }
    within::<H, _>(Duration::from_secs(10), serving, "hawser's accept loop to end").await
}

/// 100 streams of 64 KiB opened by the Go peer, echoed by hawser.
pub async fn go_opens_a_hundred_streams<H: InteropHarness>() -> Outcome {
    go_client_echoes::<H>(100, 64 * 1024).await
}

/// 4 streams of 4 MiB opened by the Go peer, echoed by hawser.
pub async fn go_echoes_four_mib_streams<H: InteropHarness>() -> Outcome {
    go_client_echoes::<H>(4, 4 << 20).await
}

/// Instantiates the hashicorp/yamux scenarios as `#[test]`s in a module named
/// `hashicorp`, for harness `$harness` (an [`InteropHarness`]), each run by
/// `$run` (an expression that takes a future and blocks on it, with a time limit).
#[macro_export]
macro_rules! hashicorp_tests {
    ($harness:ty, $run:expr) => {
        mod hashicorp {
            use super::*;
            mod hawser_client {
                use super::*;
                $crate::hashicorp_tests!(@each $harness, $run; write_then_finish_at_once, sixty_four_mib_each_way);
            }
            mod hawser_server {
                use super::*;
                $crate::hashicorp_tests!(@each $harness, $run; go_opens_a_hundred_streams, go_echoes_four_mib_streams);
            }
        }
    };
    (@each $harness:ty, $run:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let outcome: Result<(), String> =
                    ($run)($crate::interop::hashicorp::$name::<$harness>());
                if let Err(why) = outcome {
                    panic!("hashicorp/yamux scenario {} failed: {why}", stringify!($name));
                }
            }
        )*
    };
}
