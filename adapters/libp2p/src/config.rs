//! The muxer's configuration, and the connection upgrades that start a
//! session with it.

use std::{io, iter};

use futures::future;
use futures::io::{AsyncRead, AsyncWrite};
use hawser_core::{ConfigError, Profile, Role};
use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

use crate::muxer::Muxer;

/// The protocol name negotiated for the muxer, the same as `libp2p-yamux`'s.
pub const PROTOCOL_NAME: &str = "/yamux/1.0.0";

/// How a hawser muxer behaves: a hawser session configuration in the yamux
/// profile. It is the connection upgrade too, so a swarm builder takes
/// `hawser_libp2p::Config::default` where it took `libp2p::yamux::Config::default`.
///
/// The default is [`hawser_core::Config::yamux`]: auto-tuned windows up to
/// 16 MiB per stream within a 256 MiB session budget, 512 streams, a backlog
/// of 256 unaccepted inbound streams (a peer that opens more before they are
/// accepted has the extra ones refused, never the connection closed),
/// keepalive pings every 30 s.
///
/// ```
/// use std::time::Duration;
///
/// let config = hawser_libp2p::Config::new(hawser_core::Config {
///     max_streams: 2048,
///     keepalive_interval: Some(Duration::from_secs(10)),
///     ..hawser_core::Config::yamux()
/// })
/// .expect("a yamux-profile configuration");
/// assert_eq!(config.session().max_streams, 2048);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    session: hawser_core::Config,
}

impl Config {
    /// A muxer configuration from a session configuration, which must be in
    /// the yamux profile (libp2p peers speak `/yamux/1.0.0`) and valid.
    pub fn new(session: hawser_core::Config) -> Result<Config, ConfigError> {
        if session.profile != Profile::Yamux {
            return Err(ConfigError {
                field: "profile",
                problem: "must be Profile::Yamux: libp2p peers speak /yamux/1.0.0",
            });
        }
        session.validate()?;
        Ok(Config { session })
    }

    /// The session configuration every connection's session starts with.
    pub fn session(&self) -> &hawser_core::Config {
        &self.session
    }

    fn start<C>(self, io: C, role: Role) -> future::Ready<io::Result<Muxer<C>>>
    where
        C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        future::ready(Muxer::new(io, self.session, role))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            session: hawser_core::Config::yamux(),
        }
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = iter::Once<&'static str>;

    fn protocol_info(&self) -> Self::InfoIter {
        iter::once(PROTOCOL_NAME)
    }
}

/// The listening side of a connection is the yamux server (even stream ids),
/// as with `libp2p-yamux`.
impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<io::Result<Muxer<C>>>;

    fn upgrade_inbound(self, io: C, _: &'static str) -> Self::Future {
        self.start(io, Role::Server)
    }
}

/// The dialling side of a connection is the yamux client (odd stream ids).
impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<io::Result<Muxer<C>>>;

    fn upgrade_outbound(self, io: C, _: &'static str) -> Self::Future {
        self.start(io, Role::Client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_profile_is_refused() {
        let err = Config::new(hawser_core::Config::default()).expect_err("native profile");
        assert_eq!(err.field, "profile");
    }

    #[test]
    fn an_invalid_session_configuration_is_refused() {
        let err = Config::new(hawser_core::Config {
            max_streams: 0,
            ..hawser_core::Config::yamux()
        })
        .expect_err("no streams");
        assert_eq!(err.field, "max_streams");
    }

    #[test]
    fn it_negotiates_the_yamux_protocol() {
        let names: Vec<_> = Config::default().protocol_info().collect();
        assert_eq!(names, [PROTOCOL_NAME]);
        assert_eq!(Config::new(hawser_core::Config::yamux()), Ok(Config::default()));
    }
}
