//! `-D`: the client's SOCKS5 server (RFC 1928, the CONNECT command). It
//! takes no authentication on loopback; with a username and password in the
//! client's config file it asks every client for them (RFC 1929), and only
//! then may it listen on other addresses. Each connection names its
//! target, which travels to the server as it was given (a name is resolved
//! at the server), and the server's allow rules decide, as for `-L`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::{codes, Refusal};

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0x00;
const USERNAME_PASSWORD: u8 = 0x02;
/// RFC 1929's version of its subnegotiation.
const USERNAME_PASSWORD_VERSION: u8 = 1;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_NAME: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// The reply codes of RFC 1928 section 6 that the tunnel sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 0: the connection is made.
    Succeeded = 0,
    /// 1: anything else went wrong (no session to the server, a reset).
    GeneralFailure = 1,
    /// 2: the server's allow rules refuse the target.
    NotAllowed = 2,
    /// 4: the server cannot reach the target.
    HostUnreachable = 4,
    /// 6: the target did not answer in time.
    TimedOut = 6,
    /// 7: only CONNECT is served.
    CommandNotSupported = 7,
    /// 8: an address type RFC 1928 does not define.
    AddressTypeNotSupported = 8,
}

impl Reply {
    /// The reply for the server's refusal.
    pub fn for_refusal(refusal: &Refusal) -> Reply {
        match refusal.code {
            codes::NOT_ALLOWED => Reply::NotAllowed,
            codes::TARGET_UNREACHABLE => Reply::HostUnreachable,
            codes::TARGET_TIMEOUT => Reply::TimedOut,
            _ => Reply::GeneralFailure,
        }
    }
}

/// Why a SOCKS handshake did not produce a target.
#[derive(Debug)]
pub enum HandshakeError {
    /// The connection failed or spoke something else.
    Io(io::Error),
    /// A request the tunnel does not serve; the reply has been sent.
    Unsupported(Reply),
}

impl From<io::Error> for HandshakeError {
    fn from(err: io::Error) -> Self {
        HandshakeError::Io(err)
    }
}

/// The username and password a SOCKS client must give (RFC 1929). Its
/// `Debug` does not show the password.
#[derive(Clone)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Whether `a` and `b` are equal, in a time that does not depend on where
/// they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// RFC 1929: reads the username and password and answers; an error if
/// they are not `expected`.
async fn check_credentials<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    expected: &Credentials,
) -> io::Result<()> {
    let [version, username_len] = read_array(client).await?;
    if version != USERNAME_PASSWORD_VERSION {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not RFC 1929"));
    }
    let mut username = vec![0u8; usize::from(username_len)];
    client.read_exact(&mut username).await?;
    let [password_len] = read_array(client).await?;
    let mut password = vec![0u8; usize::from(password_len)];
    client.read_exact(&mut password).await?;
    // Both compared, whatever the first gives.
    let user_ok = same_bytes(&username, expected.username.as_bytes());
    let password_ok = same_bytes(&password, expected.password.as_bytes());
    let granted = user_ok & password_ok;
    client
        .write_all(&[USERNAME_PASSWORD_VERSION, if granted { 0 } else { 1 }])
        .await?;
    if !granted {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a wrong SOCKS username or password",
        ));
    }
    Ok(())
}

/// Reads the greeting and the request; returns the target as `host:port`
/// (an IPv6 address in brackets). The caller answers with [`reply`]. With
/// `credentials`, the client must give them first.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    credentials: Option<&Credentials>,
) -> Result<String, HandshakeError> {
    let [version, methods] = read_array(client).await?;
    if version != VERSION {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not SOCKS5").into());
    }
    let mut offered = vec![0u8; usize::from(methods)];
    client.read_exact(&mut offered).await?;
    let method = match credentials {
        Some(_) => USERNAME_PASSWORD,
        None => NO_AUTHENTICATION,
    };
    if !offered.contains(&method) {
        client.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        let why = match credentials {
            Some(_) => "the client offers no username and password, which this proxy asks for",
            None => "the client offers no method the tunnel takes",
        };
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, why).into());
    }
    client.write_all(&[VERSION, method]).await?;
    if let Some(expected) = credentials {
        check_credentials(client, expected).await?;
    }
    let [version, command, _reserved, address_type] = read_array(client).await?;
    if version != VERSION {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not SOCKS5").into());
    }
    let host = match address_type {
        ATYP_IPV4 => Ipv4Addr::from(read_array::<4, _>(client).await?).to_string(),
        ATYP_IPV6 => format!("[{}]", Ipv6Addr::from(read_array::<16, _>(client).await?)),
        ATYP_NAME => {
            let [len] = read_array(client).await?;
            let mut name = vec![0u8; usize::from(len)];
            client.read_exact(&mut name).await?;
            String::from_utf8(name)
                .ok()
                .filter(|name| !name.is_empty() && !name.contains(':'))
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a malformed host name"))?
        }
        _ => return Err(refuse(client, Reply::AddressTypeNotSupported).await),
    };
    let port = u16::from_be_bytes(read_array(client).await?);
    if command != CONNECT {
        return Err(refuse(client, Reply::CommandNotSupported).await);
    }
    Ok(format!("{host}:{port}"))
}

async fn refuse<S: AsyncWrite + Unpin>(client: &mut S, reply: Reply) -> HandshakeError {
    match send_reply(client, reply).await {
        Ok(()) => HandshakeError::Unsupported(reply),
        Err(err) => HandshakeError::Io(err),
    }
}

/// Answers the request. The bound address is not meaningful through a
/// tunnel and is sent as 0.0.0.0:0.
pub async fn send_reply<S: AsyncWrite + Unpin>(client: &mut S, reply: Reply) -> io::Result<()> {
    client
        .write_all(&[VERSION, reply as u8, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0])
        .await?;
    client.flush().await
}

async fn read_array<const N: usize, S: AsyncRead + Unpin>(client: &mut S) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    client.read_exact(&mut bytes).await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `handshake` against `sent`; returns its result and what it wrote.
    async fn exchange(sent: &[u8]) -> (Result<String, HandshakeError>, Vec<u8>) {
        let (mut near, mut far) = tokio::io::duplex(1024);
        far.write_all(sent).await.expect("room");
        far.shutdown().await.expect("shut");
        let result = handshake(&mut near, None).await;
        drop(near);
        let mut written = Vec::new();
        far.read_to_end(&mut written).await.expect("read back");
        (result, written)
    }

    #[tokio::test]
    async fn connect_requests_give_their_target_in_every_address_type() {
        let greeting = [5, 1, 0];
        let cases: [(&[u8], &str); 3] = [
            (&[5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90], "127.0.0.1:8080"),
            (
                &[
                    5, 1, 0, 3, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0, 80,
                ],
                "localhost:80",
            ),
            (
                &[5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187],
                "[::1]:443",
            ),
        ];
        for (request, target) in cases {
            let (result, written) = exchange(&[&greeting[..], request].concat()).await;
            assert_eq!(result.expect("a target"), target);
            assert_eq!(written, [5, 0], "no authentication chosen");
        }
    }

    #[tokio::test]
    async fn what_the_tunnel_does_not_serve_is_answered_and_refused() {
        // No acceptable method: only username/password offered.
        let (result, written) = exchange(&[5, 1, 2]).await;
        assert!(matches!(result, Err(HandshakeError::Io(_))));
        assert_eq!(written, [5, 0xff]);
        // BIND is not served.
        let (result, written) = exchange(&[5, 1, 0, 5, 2, 0, 1, 10, 0, 0, 1, 0, 80]).await;
        assert!(matches!(
            result,
            Err(HandshakeError::Unsupported(Reply::CommandNotSupported))
        ));
        assert_eq!(written[2..4], [5, 7]);
        // An unknown address type.
        let (result, _) = exchange(&[5, 1, 0, 5, 1, 0, 9]).await;
        assert!(matches!(
            result,
            Err(HandshakeError::Unsupported(Reply::AddressTypeNotSupported))
        ));
        // SOCKS4 and truncated input are errors, never panics.
        assert!(matches!(exchange(&[4, 1, 0, 80]).await.0, Err(HandshakeError::Io(_))));
        assert!(matches!(
            exchange(&[5, 1, 0, 5, 1, 0, 3, 200]).await.0,
            Err(HandshakeError::Io(_))
        ));
    }

    #[tokio::test]
    async fn with_credentials_only_the_right_username_and_password_pass() {
        let expected = Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let run = |sent: Vec<u8>| {
            let expected = expected.clone();
            async move {
                let (mut near, mut far) = tokio::io::duplex(1024);
                far.write_all(&sent).await.expect("room");
                far.shutdown().await.expect("shut");
                let result = handshake(&mut near, Some(&expected)).await;
                drop(near);
                let mut written = Vec::new();
                far.read_to_end(&mut written).await.expect("read back");
                (result, written)
            }
        };
        let login = |user: &[u8], password: &[u8]| {
            let mut sent = vec![5, 1, 2, 1, user.len() as u8];
            sent.extend_from_slice(user);
            sent.push(password.len() as u8);
            sent.extend_from_slice(password);
            sent.extend_from_slice(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
            sent
        };
        let (result, written) = run(login(b"alice", b"s3cret")).await;
        assert_eq!(result.expect("a target"), "127.0.0.1:80");
        assert_eq!(written, [5, 2, 1, 0], "username/password chosen, then granted");
        let (result, written) = run(login(b"alice", b"s3cre")).await;
        assert!(matches!(result, Err(HandshakeError::Io(_))));
        assert_eq!(written, [5, 2, 1, 1], "refused");
        // A client that offers only "no authentication" is turned away.
        let (result, written) = run(vec![5, 1, 0]).await;
        assert!(matches!(result, Err(HandshakeError::Io(_))));
        assert_eq!(written, [5, 0xff]);
        assert!(!format!("{expected:?}").contains("s3cret"));
    }
}
