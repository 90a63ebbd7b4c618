//! `ssh -L` across the emulated path, for comparison: OpenSSH's `sshd` in the
//! server's namespace (its own host key, config and authorised key, all in a
//! fresh directory) and `ssh -N -L` in the client's, keepalive every 5 s with
//! 3 misses allowed, as people run it for a tunnel that should notice a dead
//! path. Only when `sshd` is installed.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawser_conformance::path::Side;
use tokio::net::TcpListener;

use super::{Across, Ends};
use crate::mux::{self, Client, TokioImpl};

/// The port `ssh -L` listens on inside the client's namespace.
const LOCAL_PORT: u16 = 7100;
const SSHD_PORT: u16 = 2222;

/// Where OpenSSH's server is, if it is installed.
pub fn sshd() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

/// The processes and their directory, gone when dropped.
struct Running {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keygen(path: &Path) -> io::Result<()> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other("ssh-keygen failed"))
    }
}

pub fn set_up(ends: &Ends, streams: usize) -> io::Result<Across> {
    let sshd = sshd().ok_or_else(|| io::Error::other("sshd is not installed"))?;
    let dir = std::env::temp_dir().join(format!("hawser-bench-ssh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut running = Running {
        children: Vec::new(),
        dir: dir.clone(),
    };
    // sshd's privilege separation directory, which its service would make.
    std::fs::create_dir_all("/run/sshd")?;
    keygen(&dir.join("host"))?;
    keygen(&dir.join("user"))?;
    std::fs::copy(dir.join("user.pub"), dir.join("authorized_keys"))?;
    let server_ip = ends.path.server_ip();
    let config = format!(
        "Port {SSHD_PORT}\nListenAddress {server_ip}\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
         PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nAllowTcpForwarding yes\n",
        host = dir.join("host").display(),
        keys = dir.join("authorized_keys").display(),
    );
    std::fs::write(dir.join("sshd_config"), config)?;
    let target = ends.on_server(async move {
        let target = TcpListener::bind("127.0.0.1:0").await?;
        let addr = target.local_addr()?;
        mux::serve_on(TokioImpl::RawTcp, target, streams);
        Ok::<_, io::Error>(addr)
    })??;
    let mut server = ends.path.command_in(Side::Server, &sshd);
    server
        .arg("-D")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log"))?);
    running.children.push(server.spawn()?);
    // sshd is listening once a connection to it succeeds.
    let sshd_addr = SocketAddr::from((server_ip, SSHD_PORT));
    wait_for(ends, Side::Client, sshd_addr)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut client = ends.path.command_in(Side::Client, "ssh");
    client
        .args(["-N", "-p", &SSHD_PORT.to_string(), "-i"])
        .arg(dir.join("user"))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-L",
            &format!("127.0.0.1:{LOCAL_PORT}:{target}"),
            &format!("{user}@{server_ip}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("ssh.log"))?);
    running.children.push(client.spawn()?);
    let local = SocketAddr::from(([127, 0, 0, 1], LOCAL_PORT));
    wait_for(ends, Side::Client, local).map_err(|e| {
        let log = std::fs::read_to_string(dir.join("ssh.log")).unwrap_or_default();
        io::Error::other(format!("{e}; ssh said: {log}"))
    })?;
    Ok(Across {
        client: Arc::new(Client::Raw(local)),
        _keep: Box::new(running),
        status: Box::new(|| None),
    })
}

/// Waits (at most 10 s) until a TCP connection from `side` to `addr` succeeds.
fn wait_for(ends: &Ends, side: Side, addr: SocketAddr) -> io::Result<()> {
    let started = Instant::now();
    loop {
        match ends.path.connect(side, addr, Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(10) => {
                return Err(io::Error::other(format!("nothing listens on {addr}: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
