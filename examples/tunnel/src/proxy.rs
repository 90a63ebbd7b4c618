//! `--proxy http://[USER:PASSWORD@]HOST:PORT` (or `HTTPS_PROXY`): the client
//! reaches the server through an HTTP proxy's `CONNECT`, as corporate
//! networks require. TLS and the token proof then run end to end through
//! the proxy's tunnel, so the proxy sees neither; every redial goes the
//! same way. The password is sent only to the proxy (HTTP Basic) and never
//! logged.

use std::fmt;
use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP proxy to dial through.
#[derive(Clone)]
pub struct HttpProxy {
    /// `host:port` of the proxy.
    pub address: String,
    /// `Basic` credentials, encoded, if the URL had any.
    authorization: Option<String>,
}

impl fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpProxy")
            .field("address", &self.address)
            .field("authorization", &self.authorization.as_ref().map(|_| ".."))
            .finish()
    }
}

/// The most a proxy's answer head may take.
const MAX_HEAD: usize = 16 * 1024;

impl HttpProxy {
    /// Parses `http://[USER:PASSWORD@]HOST:PORT[/]` (percent-escapes in the
    /// user and password decoded). Errors never repeat the password.
    pub fn parse(url: &str) -> Result<HttpProxy, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| "the proxy must be an http:// URL (http://[USER:PASSWORD@]HOST:PORT)".to_string())?;
        let rest = rest.trim_end_matches('/');
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        let has_port =
            matches!(address.rsplit_once(':'), Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok());
        if address.contains('/') || !has_port {
            return Err(format!("the proxy's address must be HOST:PORT, not {address:?}"));
        }
        let authorization = match credentials {
            None => None,
            Some(credentials) => {
                let (user, password) = credentials
                    .split_once(':')
                    .ok_or_else(|| "the proxy's credentials must be USER:PASSWORD".to_string())?;
                let plain = format!("{}:{}", percent_decode(user)?, percent_decode(password)?);
                Some(base64(plain.as_bytes()))
            }
        };
        Ok(HttpProxy {
            address: address.to_string(),
            authorization,
        })
    }

    /// `--proxy`, or else `HTTPS_PROXY` / `https_proxy` from the environment.
    pub fn from_flag_or_env(flag: Option<&str>) -> Result<Option<HttpProxy>, String> {
        let url = match flag {
            Some(url) => url.to_string(),
            None => match std::env::var("HTTPS_PROXY").or_else(|_| std::env::var("https_proxy")) {
                Ok(url) if !url.is_empty() => url,
                _ => return Ok(None),
            },
        };
        HttpProxy::parse(&url).map(Some)
    }

    /// A TCP connection to `server` (`host:port`) through the proxy.
    pub async fn connect(&self, server: &str) -> io::Result<TcpStream> {
        let mut tcp = TcpStream::connect(&self.address).await?;
        tcp.set_nodelay(true)?;
        let mut request = format!("CONNECT {server} HTTP/1.1\r\nHost: {server}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: Basic {authorization}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await?;
        // Byte by byte: whatever follows the head is the server's, and a
        // plaintext server speaks first.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_HEAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the proxy's answer is too long",
                ));
            }
            let mut byte = [0u8; 1];
            if tcp.read(&mut byte).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the proxy at {} closed the connection before answering", self.address),
                ));
            }
            head.push(byte[0]);
        }
        let status_line = String::from_utf8_lossy(&head);
        let status_line = status_line.lines().next().unwrap_or_default().trim().to_string();
        let code = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok());
        match code {
            Some(200..=299) => Ok(tcp),
            // 407 is the standard answer; some proxies (tinyproxy) send 401.
            Some(401 | 407) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the proxy at {} wants other credentials: {status_line}", self.address),
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("the proxy at {} refused the tunnel: {status_line}", self.address),
            )),
        }
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or("a bad %-escape in the proxy's credentials")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad %-escape in the proxy's credentials")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the proxy's credentials are not UTF-8".to_string())
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for position in 0..4 {
            if position <= chunk.len() {
                out.push(char::from(ALPHABET[(group >> (18 - 6 * position) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn proxy_urls_parse_and_never_show_the_password() {
        let proxy = HttpProxy::parse("http://alice:s%40cret@proxy.corp:3128/").expect("valid");
        assert_eq!(proxy.address, "proxy.corp:3128");
        assert_eq!(proxy.authorization.as_deref(), Some(base64(b"alice:s@cret").as_str()));
        assert!(!format!("{proxy:?}").contains("cret"));
        assert!(HttpProxy::parse("http://proxy.corp:3128")
            .expect("valid")
            .authorization
            .is_none());
        for bad in [
            "https://p:1",
            "http://p",
            "http://p:x",
            "http://alice@p:1",
            "http://a:%zz@p:1",
        ] {
            let err = HttpProxy::parse(bad).expect_err(bad);
            assert!(!err.contains("zz"), "{err}");
        }
    }
}
