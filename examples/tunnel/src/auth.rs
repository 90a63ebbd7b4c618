//! The shared secret and the proof of it that opens every link.
//!
//! Right after TLS (and before anything of hawser), the server sends a fresh
//! 32-byte challenge; the client answers with HMAC-SHA256 of it under the token;
//! the server checks that in constant time and answers with one status byte. The
//! token itself never crosses the link, and an answer is good for one challenge
//! only. A link that fails this is closed before a session, let alone one that
//! can be resumed, exists for it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What the challenge starts with: the protocol and its revision.
const MAGIC: &[u8; 5] = b"HWTN\x01";
const CHALLENGE_LEN: usize = 32;
/// Binds the proof to this use of the token.
const CONTEXT: &[u8] = b"hawser-tunnel link auth v1";
/// The fewest bytes a token may have: 128 bits.
pub const MIN_TOKEN_BYTES: usize = 16;

const STATUS_OK: u8 = 0;
const STATUS_BAD_TOKEN: u8 = 1;
const STATUS_RATE_LIMITED: u8 = 2;
/// Sent in the clear by a TLS server to a client that sent nothing (a TLS
/// client speaks first; a plaintext client waits for the challenge).
pub const STATUS_TLS_REQUIRED: u8 = 3;

/// A client's secret. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token {
    key: hmac::Key,
    /// SHA-256 of the secret, to tell two tokens apart (a client re-keyed
    /// at a reload, two clients given the same token) without keeping it.
    digest: [u8; 32],
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from its text: hex digits (whitespace around them is ignored),
    /// at least 32 of them (128 bits).
    pub fn parse(text: &str) -> Result<Token, String> {
        let hex = text.trim();
        if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the token must be hex digits (e.g. from `hawser keygen --token FILE`)".into());
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect();
        if bytes.len() < MIN_TOKEN_BYTES {
            return Err(format!(
                "the token has {} bits; it needs at least {}",
                bytes.len() * 8,
                MIN_TOKEN_BYTES * 8
            ));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
        Ok(Token {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            digest,
        })
    }

    /// Whether `other` is the same secret.
    pub fn same_secret(&self, other: &Token) -> bool {
        self.digest == other.digest
    }

    /// Reads a token file (see [`Token::parse`]). On Unix, a file that others
    /// can read is accepted with a warning.
    pub fn from_file(path: &Path) -> Result<Token, String> {
        let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(file = %path.display(), "the token file can be read by other users; chmod 600 it");
                }
            }
        }
        Token::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
    }

    /// A new random token, as the hex text a token file holds.
    pub fn generate() -> io::Result<String> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| io::Error::other("no entropy"))?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
    }

    fn proof(&self, challenge: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, &proof_input(challenge))
    }

    /// Whether `proof` answers `challenge`; `hmac::verify` compares in constant time.
    fn verify(&self, challenge: &[u8], proof: &[u8]) -> bool {
        hmac::verify(&self.key, &proof_input(challenge), proof).is_ok()
    }
}

/// What the proof signs: the context, then the challenge.
fn proof_input(challenge: &[u8]) -> Vec<u8> {
    [CONTEXT, challenge].concat()
}

/// Why a link was not let in (or, on the client, why it was not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The client does not have the server's token.
    BadToken,
    /// Too many failed attempts from this address lately.
    RateLimited,
    /// The peer does not speak this protocol.
    NotATunnel,
    /// The client dialled without TLS; the server wants TLS.
    TlsRequired,
    /// The client dialled with TLS; the server runs without it.
    TlsUnexpected,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::BadToken => "authentication failed: the server does not accept this token",
            AuthError::RateLimited => {
                "authentication refused: too many failed attempts from this address; wait a minute"
            }
            AuthError::NotATunnel => "the peer is not a hawser tunnel server (or speaks another revision)",
            AuthError::TlsRequired => "the server speaks TLS: drop --insecure-plaintext and give --fingerprint or --ca",
            AuthError::TlsUnexpected => {
                "TLS was asked for, but the server runs without it (--insecure-plaintext on both sides, loopback only)"
            }
        })
    }
}

impl std::error::Error for AuthError {}

impl AuthError {
    /// As an `io::Error` that [`AuthError::of`] finds again: of kind
    /// `PermissionDenied`, or `InvalidInput` for a TLS mismatch (a usage
    /// error, exit status 2).
    pub fn into_io(self) -> io::Error {
        let kind = match self {
            AuthError::TlsRequired | AuthError::TlsUnexpected => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, self)
    }

    /// The authentication error inside `err`, if that is what it is.
    pub fn of(err: &io::Error) -> Option<AuthError> {
        err.get_ref()?.downcast_ref::<AuthError>().copied()
    }
}

/// Client: proves the token over a fresh link.
pub async fn prove<L: AsyncRead + AsyncWrite + Unpin>(link: &mut L, token: &Token) -> io::Result<()> {
    let mut challenge = [0u8; MAGIC.len() + CHALLENGE_LEN];
    link.read_exact(&mut challenge[..1]).await?;
    match challenge[0] {
        STATUS_RATE_LIMITED => return Err(AuthError::RateLimited.into_io()),
        STATUS_TLS_REQUIRED => return Err(AuthError::TlsRequired.into_io()),
        _ => {}
    }
    link.read_exact(&mut challenge[1..]).await?;
    if &challenge[..MAGIC.len()] != MAGIC {
        return Err(AuthError::NotATunnel.into_io());
    }
    let proof = token.proof(&challenge[MAGIC.len()..]);
    link.write_all(proof.as_ref()).await?;
    link.flush().await?;
    let mut status = [0u8; 1];
    link.read_exact(&mut status).await?;
    match status[0] {
        STATUS_OK => Ok(()),
        STATUS_RATE_LIMITED => Err(AuthError::RateLimited.into_io()),
        _ => Err(AuthError::BadToken.into_io()),
    }
}

/// Server: failed attempts per source address, so that a token cannot be
/// guessed at the speed of the network. (The token's 128 bits or more make
/// guessing hopeless anyway; this keeps the log and the CPU quiet.)
pub struct Gate {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    per_minute: u32,
}

/// Remembered addresses at most; beyond it, old windows are forgotten first.
const MAX_REMEMBERED: usize = 4096;

impl Gate {
    /// A gate allowing `per_minute` failed attempts per source address.
    pub fn new(per_minute: u32) -> Gate {
        Gate {
            failures: Mutex::new(HashMap::new()),
            per_minute,
        }
    }

    fn limited(&self, source: IpAddr) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&source)
            .is_some_and(|(since, count)| since.elapsed() < Duration::from_secs(60) && *count >= self.per_minute)
    }

    fn failed(&self, source: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_REMEMBERED && !failures.contains_key(&source) {
            failures.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(60));
            if failures.len() >= MAX_REMEMBERED {
                failures.clear();
            }
        }
        let entry = failures.entry(source).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Server: challenges a fresh link from `source` and checks the proof
    /// against each of `tokens`; returns the index of the one it proves.
    /// Every token is tried, so the time taken does not say which matched.
    pub async fn check<'t, L: AsyncRead + AsyncWrite + Unpin>(
        &self,
        link: &mut L,
        source: IpAddr,
        tokens: impl IntoIterator<Item = &'t Token>,
    ) -> Result<usize, AuthError> {
        if self.limited(source) {
            let _ = link.write_all(&[STATUS_RATE_LIMITED]).await;
            let _ = link.shutdown().await;
            return Err(AuthError::RateLimited);
        }
        let mut challenge = [0u8; MAGIC.len() + CHALLENGE_LEN];
        challenge[..MAGIC.len()].copy_from_slice(MAGIC);
        SystemRandom::new()
            .fill(&mut challenge[MAGIC.len()..])
            .map_err(|_| AuthError::NotATunnel)?;
        let io = async {
            link.write_all(&challenge).await?;
            link.flush().await?;
            let mut proof = [0u8; 32];
            link.read_exact(&mut proof).await?;
            Ok::<_, io::Error>(proof)
        };
        let proof = io.await.map_err(|_| AuthError::NotATunnel)?;
        if looks_like_tls(&proof) {
            // A TLS client on a plaintext server: not a guess at the token.
            let _ = link.shutdown().await;
            return Err(AuthError::TlsUnexpected);
        }
        let mut proven = None;
        for (index, token) in tokens.into_iter().enumerate() {
            if token.verify(&challenge[MAGIC.len()..], &proof) && proven.is_none() {
                proven = Some(index);
            }
        }
        let Some(proven) = proven else {
            self.failed(source);
            let _ = link.write_all(&[STATUS_BAD_TOKEN]).await;
            let _ = link.shutdown().await;
            return Err(AuthError::BadToken);
        };
        link.write_all(&[STATUS_OK]).await.map_err(|_| AuthError::NotATunnel)?;
        Ok(proven)
    }
}

/// Whether `bytes` start like a TLS handshake record (a ClientHello): type
/// 22, version 3.x.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x16, 0x03, 0x00..=0x04, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_long_hex_and_never_print() {
        assert!(Token::parse("abcd").is_err(), "too short");
        assert!(Token::parse("zz00112233445566778899aabbccddeeff").is_err(), "not hex");
        let token = Token::parse("  00112233445566778899aabbccddeeff\n").expect("128 bits");
        assert_eq!(format!("{token:?}"), "Token(..)");
        let generated = Token::generate().expect("entropy");
        assert!(Token::parse(&generated).is_ok());
    }

    #[tokio::test]
    async fn the_right_token_passes_and_a_wrong_one_is_refused_then_rate_limited() {
        let right = Token::parse("00112233445566778899aabbccddeeff").expect("token");
        let wrong = Token::parse("ffeeddccbbaa99887766554433221100").expect("token");
        let gate = std::sync::Arc::new(Gate::new(2));
        let source: IpAddr = [127, 0, 0, 1].into();
        let other = Token::parse("0123456789abcdef0123456789abcdef").expect("token");
        let attempt = |client_token: Token| {
            let gate = gate.clone();
            let right = right.clone();
            let other = other.clone();
            async move {
                let (mut client, mut server) = tokio::io::duplex(1024);
                let server = tokio::spawn(async move { gate.check(&mut server, source, [&other, &right]).await });
                let client = prove(&mut client, &client_token)
                    .await
                    .map_err(|err| AuthError::of(&err));
                (client, server.await.expect("no panic"))
            }
        };
        assert_eq!(
            attempt(right.clone()).await,
            (Ok(()), Ok(1)),
            "the second token is proven"
        );
        let bad = (Err(Some(AuthError::BadToken)), Err(AuthError::BadToken));
        assert_eq!(attempt(wrong.clone()).await, bad);
        assert_eq!(attempt(wrong.clone()).await, bad);
        let limited = (Err(Some(AuthError::RateLimited)), Err(AuthError::RateLimited));
        assert_eq!(attempt(wrong).await, limited);
        assert_eq!(
            attempt(right.clone()).await,
            limited,
            "even the right token waits out the minute"
        );
    }
}
