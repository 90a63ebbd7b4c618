//! hawser-blocking, yamux profile, against the `yamux` crate, `tokio-yamux`
//! and hashicorp/yamux (Go).

mod common;

use std::io;
use std::sync::Arc;

use common::*;
use hawser_blocking::{Config, Role};
use hawser_conformance::interop::InteropHarness;

impl InteropHarness for Blocking {
    fn session_over(link: std::net::TcpStream, role: Role, config: Config) -> io::Result<Session> {
        Ok(Session(Arc::new(hawser_blocking::Session::new(link, config, role)?)))
    }
}

hawser_conformance::interop_tests!(Blocking, run);
hawser_conformance::hashicorp_tests!(Blocking, run);
