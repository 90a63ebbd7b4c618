//! `ssh -L` across the emulated path: `sshd` in the server's namespace,
//! `ssh` in the client's (see [`crate::ssh`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hawser_conformance::path::Side;
use tokio::net::TcpListener;

use super::{Across, Ends};
use crate::mux::{self, Client, TokioImpl};
use crate::ssh::{forward, Placement};

/// The port `ssh -L` listens on inside the client's namespace.
const LOCAL_PORT: u16 = 7100;
const SSHD_PORT: u16 = 2222;

pub fn set_up(ends: &Ends, streams: usize) -> io::Result<Across> {
    let target = ends.on_server(async move {
        let target = TcpListener::bind("127.0.0.1:0").await?;
        let addr = target.local_addr()?;
        mux::serve_on(TokioImpl::RawTcp, target, streams);
        Ok::<_, io::Error>(addr)
    })??;
    let local = SocketAddr::from(([127, 0, 0, 1], LOCAL_PORT));
    let running = forward(
        Placement {
            server: &|sshd| ends.path.command_in(Side::Server, sshd),
            client: &|ssh| ends.path.command_in(Side::Client, ssh),
            wait: &|addr| wait_for(ends, addr),
        },
        SocketAddr::from((ends.path.server_ip(), SSHD_PORT)),
        local,
        target,
    )?;
    Ok(Across {
        client: Arc::new(Client::Raw(local)),
        _keep: Box::new(running),
        status: Box::new(|| None),
    })
}

/// Waits until a TCP connection from the client's side to `addr` succeeds.
fn wait_for(ends: &Ends, addr: SocketAddr) -> io::Result<()> {
    crate::ssh::wait_for(addr, |addr| {
        ends.path.connect(Side::Client, addr, Duration::from_secs(1)).map(drop)
    })
}
