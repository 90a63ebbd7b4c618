//! `ssh -L`, for comparison: OpenSSH's `sshd` with its own host key, config
//! and authorised key (all in a fresh directory) and `ssh -N -L` to it,
//! keepalive every 5 s with 3 misses allowed, as people run it for a tunnel
//! that should notice a dead path. Only where `sshd` is installed. The `wan`
//! workload runs the two ends in the emulated path's namespaces, the `tunnel`
//! workload on loopback.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Waits (at most 10 s) until `connect` to `addr` succeeds.
pub fn wait_for(addr: SocketAddr, connect: impl Fn(SocketAddr) -> io::Result<()>) -> io::Result<()> {
    let started = std::time::Instant::now();
    loop {
        match connect(addr) {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() > std::time::Duration::from_secs(10) => {
                return Err(io::Error::other(format!("nothing listens on {addr}: {e}")))
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// Where OpenSSH's server is, if it is installed.
pub fn sshd() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

/// `sshd` and `ssh -L` running, and their directory; all gone when dropped.
pub struct Forwarder {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Forwarder {
    /// The process ids of `sshd` and `ssh` (`sshd`'s per-connection
    /// processes are its children).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Forwarder {
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

/// Where the two ends run and how to tell they are up.
pub struct Placement<'a> {
    /// Makes the command that runs `sshd` (the path given) where the server is.
    pub server: &'a dyn Fn(&Path) -> Command,
    /// Makes the command that runs `ssh` where the client is.
    pub client: &'a dyn Fn(&str) -> Command,
    /// Returns once a connection from the client's side to the address
    /// succeeds, or fails after a while.
    pub wait: &'a dyn Fn(SocketAddr) -> io::Result<()>,
}

/// Starts `sshd` listening on `sshd_addr` and `ssh -N -L local:target`
/// through it; returns once the forward accepts connections.
pub fn forward(
    placement: Placement<'_>,
    sshd_addr: SocketAddr,
    local: SocketAddr,
    target: SocketAddr,
) -> io::Result<Forwarder> {
    let sshd = sshd().ok_or_else(|| io::Error::other("sshd is not installed"))?;
    let dir = std::env::temp_dir().join(format!("hawser-bench-ssh-{}-{}", std::process::id(), local.port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut running = Forwarder {
        children: Vec::new(),
        dir: dir.clone(),
    };
    // sshd's privilege separation directory, which its service would make.
    std::fs::create_dir_all("/run/sshd")?;
    keygen(&dir.join("host"))?;
    keygen(&dir.join("user"))?;
    std::fs::copy(dir.join("user.pub"), dir.join("authorized_keys"))?;
    let config = format!(
        "Port {port}\nListenAddress {ip}\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
         PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nAllowTcpForwarding yes\n",
        port = sshd_addr.port(),
        ip = sshd_addr.ip(),
        host = dir.join("host").display(),
        keys = dir.join("authorized_keys").display(),
    );
    std::fs::write(dir.join("sshd_config"), config)?;
    let mut server = (placement.server)(&sshd);
    server
        .arg("-D")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log"))?);
    running.children.push(server.spawn()?);
    (placement.wait)(sshd_addr)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut client = (placement.client)("ssh");
    client
        .args(["-N", "-p", &sshd_addr.port().to_string(), "-i"])
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
            &format!("{local}:{target}"),
            &format!("{user}@{}", sshd_addr.ip()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("ssh.log"))?);
    running.children.push(client.spawn()?);
    (placement.wait)(local).map_err(|e| {
        let log = std::fs::read_to_string(dir.join("ssh.log")).unwrap_or_default();
        io::Error::other(format!("{e}; ssh said: {log}"))
    })?;
    Ok(running)
}
