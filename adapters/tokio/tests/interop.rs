//! hawser-tokio, yamux profile, against the `yamux` crate, `tokio-yamux`
//! and hashicorp/yamux (Go).

mod common;

use std::io;
use std::sync::Arc;

use common::*;
use hawser_conformance::interop::InteropHarness;
use hawser_core::{Config, Role};

impl InteropHarness for Tokio {
    fn session_over(link: std::net::TcpStream, role: Role, config: Config) -> io::Result<Session> {
        link.set_nonblocking(true)?;
        let link = tokio::net::TcpStream::from_std(link)?;
        let session = match role {
            Role::Client => hawser_tokio::Session::client(link, config)?,
            Role::Server => hawser_tokio::Session::server(link, config)?,
        };
        Ok(Session(Arc::new(session)))
    }
}

hawser_conformance::interop_tests!(Tokio, run);
hawser_conformance::hashicorp_tests!(Tokio, run);
