//! Running the real `hawser` binary: files in a fresh directory, processes that
//! are killed when dropped, their stdout lines, and loopback services.

#![allow(dead_code)] // Each test binary uses a different part of this.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const HAWSER: &str = env!("CARGO_BIN_EXE_hawser");

/// A fresh directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hawser-tunnel-{name}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Certificate, key and token in `dir` (by `hawser keygen`); returns the fingerprint.
pub fn keygen(dir: &Path) -> String {
    let out = Command::new(HAWSER)
        .args(["keygen", "--cert"])
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .arg("--token")
        .arg(dir.join("token"))
        .output()
        .unwrap();
    assert!(out.status.success(), "keygen failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().find(|l| l.starts_with("fingerprint ")).unwrap();
    line["fingerprint ".len()..].trim().to_string()
}

/// A running `hawser` process, killed when dropped; its stdout lines arrive on
/// a channel, and its stderr is kept in a file.
pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Process {
    pub fn start(args: &[&str], stderr: PathBuf) -> Process {
        let mut command = Command::new(HAWSER);
        command.args(args);
        Process::spawn(command, stderr)
    }

    /// Runs `command` (which runs `hawser`, perhaps inside a namespace).
    pub fn spawn(mut command: Command, stderr: PathBuf) -> Process {
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Process { child, lines, stderr }
    }

    /// The next stdout line that starts with `prefix` (the rest of it).
    pub fn line(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.starts_with(prefix) => return line[prefix.len()..].trim().to_string(),
                Ok(_) => continue,
                Err(_) => panic!("no {prefix:?} line; stderr:\n{}", self.stderr()),
            }
        }
    }

    /// Waits for the process to exit (at most 20 s) and returns its status code.
    pub fn exit_code(&mut self) -> i32 {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the process did not exit; stderr:\n{}", self.stderr());
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server on an ephemeral loopback port; returns it and its address.
pub fn server(dir: &Path, extra: &[&str]) -> (Process, SocketAddr) {
    server_on(dir, "127.0.0.1:0", extra)
}

pub fn server_on(dir: &Path, listen: &str, extra: &[&str]) -> (Process, SocketAddr) {
    server_listening(dir, ("--listen", listen), "listening on ", extra)
}

/// A server with the listen flag `listen` (`--listen` or `--listen-ws`, and
/// the address); returns it and the address from its stdout line `ready`.
pub fn server_listening(dir: &Path, listen: (&str, &str), ready: &str, extra: &[&str]) -> (Process, SocketAddr) {
    let (cert, key, token) = files(dir);
    let mut args = vec![
        "server",
        listen.0,
        listen.1,
        "--token-file",
        &token,
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    args.extend_from_slice(extra);
    let process = Process::start(&args, dir.join(format!("server-{}.log", unique())));
    let addr = process.line(ready).parse().unwrap();
    (process, addr)
}

pub fn unique() -> u64 {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    COUNT.fetch_add(1, Ordering::Relaxed)
}

pub fn files(dir: &Path) -> (String, String, String) {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    (path("cert.pem"), path("key.pem"), path("token"))
}

/// A client to `server` trusting `fingerprint`, with `extra` flags (-L, -R).
pub fn client(dir: &Path, server: SocketAddr, fingerprint: &str, extra: &[&str]) -> Process {
    let (_, _, token) = files(dir);
    let server = server.to_string();
    let mut args = vec![
        "client",
        "--connect",
        &server,
        "--token-file",
        &token,
        "--fingerprint",
        fingerprint,
    ];
    args.extend_from_slice(extra);
    Process::start(&args, dir.join(format!("client-{}.log", unique())))
}

/// The local address of a client's next `-L` forward, from its stdout.
pub fn forwarded(client: &Process) -> SocketAddr {
    let line = client.line("forwarding ");
    line.split(" -> ").next().unwrap().parse().unwrap()
}

/// An echo service on loopback.
pub async fn echo_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut from, mut to) = tcp.into_split();
                if tokio::io::copy(&mut from, &mut to).await.is_ok() {
                    let _ = to.shutdown().await;
                }
            });
        }
    });
    addr
}

/// A free loopback port (bound and let go; another process could take it in
/// between, which on a test machine does not happen in practice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads until end of file or error; returns what came and how it ended.
pub async fn read_all(from: &mut (impl AsyncReadExt + Unpin)) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => return (got, Err(err)),
        }
    }
}

/// Scrapes `url` with curl; every sample line parsed into name (with its
/// labels) and value; every family has its HELP and TYPE lines.
pub fn scrape(url: &str) -> HashMap<String, f64> {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "10", url])
        .output()
        .expect("curl is installed (CI installs it)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let family = name.split('{').next().expect("a name");
        assert!(text.contains(&format!("# TYPE {family} ")), "no TYPE for {family}");
        assert!(text.contains(&format!("# HELP {family} ")), "no HELP for {family}");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        samples.insert(name.to_string(), value);
    }
    samples
}

/// Scrapes until `name` reaches `value` (the figures follow the traffic a
/// moment behind), then returns the samples.
pub fn scrape_until(url: &str, name: &str, value: f64) -> HashMap<String, f64> {
    let mut samples = scrape(url);
    for _ in 0..100 {
        if samples.get(name) == Some(&value) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        samples = scrape(url);
    }
    samples
}

/// Writes `text` to `path`, readable by its owner only (as a file with a
/// secret must be).
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Sends `hello` through `local` and half-closes: what came back, or how
/// it failed (a refused forward is reset).
pub async fn echo_through(local: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut tcp = tokio::net::TcpStream::connect(local).await?;
    tcp.write_all(b"hello").await?;
    tcp.shutdown().await?;
    let (got, ended) = read_all(&mut tcp).await;
    ended.map(|()| got)
}

/// Sends `signal` (e.g. "HUP") to `process` with kill(1).
pub fn signal(process: &Process, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &process.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (at most 20 s) until `process`'s stderr contains `text`.
pub fn logged(process: &Process, text: &str) -> String {
    for _ in 0..400 {
        let log = process.stderr();
        if log.contains(text) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no {text:?} in the log:\n{}", process.stderr());
}

/// tinyproxy on a free loopback port, asking for alice's password; killed
/// when dropped.
pub struct Tinyproxy {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Tinyproxy {
    pub fn start(dir: &Path) -> Tinyproxy {
        Tinyproxy::start_on(dir, free_port())
    }

    pub fn start_on(dir: &Path, port: u16) -> Tinyproxy {
        let config = dir.join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 100\nLogLevel Connect\nLogFile \"{}\"\nBasicAuth alice s3cret\n",
                dir.join("tinyproxy.log").display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy is installed (CI installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Tinyproxy {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Kills the proxy and every connection through it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the proxy and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        *self = Tinyproxy::start_on(&self.dir.clone(), self.port);
    }

    /// How many tunnels to `addr` the proxy has logged (all runs on this
    /// directory), and the log.
    pub fn tunnels_to(&self, addr: SocketAddr) -> (usize, String) {
        let log = std::fs::read_to_string(self.dir.join("tinyproxy.log")).unwrap_or_default();
        (log.matches(&format!("CONNECT {addr}")).count(), log)
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `total` bytes of a pattern through `local` (a `-L` to an echo
/// service) and checks every byte that comes back, in order, none missing
/// and none repeated; `midway` runs once, a quarter of the way through (to
/// cut the link under the transfer). A reset fails the test: nothing may be
/// lost.
pub async fn pattern_through(local: SocketAddr, total: u64, mut midway: impl FnMut()) {
    use hawser_conformance::interop::link::Pattern;
    let tcp = tokio::net::TcpStream::connect(local).await.unwrap();
    let (mut from, mut to) = tcp.into_split();
    let writing = tokio::spawn(async move {
        let mut pattern = Pattern::new(3);
        while pattern.position() < total {
            let len = (64 * 1024).min(total - pattern.position()) as usize;
            to.write_all(&pattern.take(len)).await.unwrap();
        }
        to.shutdown().await.unwrap();
    });
    let mut pattern = Pattern::new(3);
    let mut buf = vec![0u8; 64 * 1024];
    let mut cut = false;
    loop {
        let n = from.read(&mut buf).await.expect("no reset: nothing may be lost");
        if n == 0 {
            break;
        }
        pattern.check(&buf[..n]).unwrap();
        if !cut && pattern.position() >= total / 4 {
            cut = true;
            midway();
        }
    }
    assert_eq!(pattern.position(), total, "every byte came back, and no more");
    writing.await.unwrap();
}
