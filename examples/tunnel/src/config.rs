//! Config files (TOML) for `hawser server --config` and `hawser client
//! --config`: what the flags say, plus what only a file says well, the
//! server's clients with their own tokens and rights.
//!
//! A server file:
//!
//! ```toml
//! listen = "0.0.0.0:7000"
//! cert = "cert.pem"            # paths are relative to the file
//! key = "key.pem"
//! metrics = "127.0.0.1:9100"
//!
//! [[client]]
//! name = "laptop"
//! token_file = "laptop.token"
//! allow = ["db.internal:5432", "*.internal:443"]
//! allow_reverse = ["8080"]
//!
//! [[client]]
//! name = "ci"
//! token_file = "ci.token"
//! allow = ["10.0.0.0/8:22"]
//! ```
//!
//! A client file:
//!
//! ```toml
//! connect = "server.example:7000"
//! token_file = "token.txt"
//! fingerprint = "3a:…"
//! local = ["5432:db.internal:5432"]
//! dynamic = ["1080"]
//! ```
//!
//! Flags and a file combine as with ssh: a flag given on the command line
//! wins over the file's setting, and forwards (`-L`, `-R`, `-D`) add to the
//! file's. Unknown keys are refused, and every error names the file's line.
//! A token or password written in the file itself needs a file only its
//! owner can read; otherwise the file is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{Common, DEFAULT_DRAIN};
use toml::Spanned;

/// A `[[client]]` of the server's file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// The name logs and metrics give the client.
    pub name: Spanned<String>,
    /// A file holding the client's token.
    pub token_file: Option<Spanned<PathBuf>>,
    /// The token itself (the config file must then be private).
    pub token: Option<Spanned<String>>,
    /// What the client's `-L` and `-D` connections may reach.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Where the client's `-R` may listen.
    #[serde(default)]
    pub allow_reverse: Vec<Spanned<String>>,
}

/// `hawser server --config FILE`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// `--listen`.
    pub listen: Option<Spanned<String>>,
    /// `--listen-ws`.
    pub listen_ws: Option<Spanned<String>>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--insecure-plaintext`.
    pub insecure_plaintext: Option<bool>,
    /// `--status`.
    pub status: Option<Spanned<String>>,
    /// `--metrics`.
    pub metrics: Option<Spanned<String>>,
    /// `--drain`.
    pub drain: Option<Spanned<String>>,
    /// The clients, each with its own token and rights.
    #[serde(default, rename = "client")]
    pub clients: Vec<ClientEntry>,
}

/// The `[socks]` table of the client's file: the username and password a
/// SOCKS client must give (RFC 1929). Needed for a `-D` bound to an
/// address other than loopback.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SocksEntry {
    /// The username.
    pub username: Spanned<String>,
    /// The password (the config file must then be private).
    pub password: Option<Spanned<String>>,
    /// A file holding the password.
    pub password_file: Option<Spanned<PathBuf>>,
}

/// `hawser client --config FILE`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// `--connect`.
    pub connect: Option<String>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// The token itself (the config file must then be private).
    pub token: Option<Spanned<String>>,
    /// `--fingerprint`.
    pub fingerprint: Option<Spanned<String>>,
    /// `--ca`.
    pub ca: Option<PathBuf>,
    /// `--server-name`.
    pub server_name: Option<String>,
    /// `-L`, each `[BIND:]PORT:HOST:PORT`.
    #[serde(default)]
    pub local: Vec<Spanned<String>>,
    /// `-R`, each `[BIND:]PORT:HOST:PORT`.
    #[serde(default)]
    pub remote: Vec<Spanned<String>>,
    /// `-D`, each `[BIND:]PORT`.
    #[serde(default)]
    pub dynamic: Vec<Spanned<String>>,
    /// `--proxy`.
    pub proxy: Option<Spanned<String>>,
    /// `--insecure-plaintext`.
    pub insecure_plaintext: Option<bool>,
    /// `--status`.
    pub status: Option<Spanned<String>>,
    /// `--metrics`.
    pub metrics: Option<Spanned<String>>,
    /// `--drain`.
    pub drain: Option<Spanned<String>>,
    /// SOCKS authentication for `-D`.
    pub socks: Option<SocksEntry>,
}

/// A config file as read: its text (for line numbers), where it is (for
/// relative paths), and whether others may read it.
pub struct Source {
    path: PathBuf,
    text: String,
    private: bool,
}

impl Source {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Source, String> {
        let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        Ok(Source {
            path: path.to_path_buf(),
            text,
            private: owner_only(path),
        })
    }

    /// Parses the file as `T`; an error names the line and says why.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        toml::from_str(&self.text).map_err(|err| match err.span() {
            Some(span) => self.error_at(span.start, err.message()),
            None => format!("{}: {}", self.path.display(), err.message()),
        })
    }

    /// `message` about what starts at byte `offset` of the file, with its line.
    pub fn error_at(&self, offset: usize, message: impl std::fmt::Display) -> String {
        let line = self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        format!("{} line {line}: {message}", self.path.display())
    }

    /// `message` about the value `at`.
    pub fn error<T>(&self, at: &Spanned<T>, message: impl std::fmt::Display) -> String {
        self.error_at(at.span().start, message)
    }

    /// A path the file gives, relative to the file's directory.
    pub fn path(&self, path: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// A secret written in the file itself (`what` at `at`): refused unless
    /// only the file's owner can read the file, as ssh refuses a readable
    /// private key.
    pub fn secret<'a>(&self, at: &'a Spanned<String>, what: &str) -> Result<&'a str, String> {
        if !self.private {
            return Err(self.error(
                at,
                format!(
                    "{what} is written here, but others can read {}: chmod 600 it, or use a file for the secret",
                    self.path.display()
                ),
            ));
        }
        Ok(at.get_ref())
    }
}

/// The value the file gives at `at`, parsed by `parse`; an error names the
/// line. `None` when the file does not give it (or there is no file).
pub fn value<T>(
    source: Option<&Source>,
    at: &Option<Spanned<String>>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match (source, at) {
        (Some(source), Some(at)) => parse(at.get_ref()).map(Some).map_err(|why| source.error(at, why)),
        _ => Ok(None),
    }
}

/// The address a flag gives, or else the file at `at` (`key` names it in
/// an error).
pub fn address(
    flag: Option<SocketAddr>,
    source: Option<&Source>,
    at: &Option<Spanned<String>>,
    key: &str,
) -> Result<Option<SocketAddr>, String> {
    match flag {
        Some(addr) => Ok(Some(addr)),
        None => value(source, at, |text| {
            text.parse().map_err(|_| format!("{key} {text:?} is not ADDR:PORT"))
        }),
    }
}

/// The keys both commands' files have for [`Common`]'s flags.
pub struct CommonKeys<'a> {
    /// `status`.
    pub status: &'a Option<Spanned<String>>,
    /// `metrics`.
    pub metrics: &'a Option<Spanned<String>>,
    /// `drain`.
    pub drain: &'a Option<Spanned<String>>,
    /// `insecure_plaintext`.
    pub insecure_plaintext: Option<bool>,
}

/// What [`Common`]'s flags and the file's keys for them come to, a flag
/// winning over the file.
pub struct CommonSettings {
    /// `--status`.
    pub status: Option<Duration>,
    /// `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--drain`, [`DEFAULT_DRAIN`] when neither says.
    pub drain: Duration,
    /// `--insecure-plaintext`.
    pub plaintext: bool,
}

impl CommonSettings {
    /// Reads `common`'s flags, and `keys` of the file `source` for those not
    /// given.
    pub fn of(common: &Common, source: Option<&Source>, keys: CommonKeys<'_>) -> Result<CommonSettings, String> {
        let status = match common.status {
            Some(status) => Some(status),
            None => value(source, keys.status, crate::cli::parse_status_interval)?,
        };
        let drain = match common.drain {
            Some(drain) => drain,
            None => value(source, keys.drain, crate::cli::parse_duration)?.unwrap_or(DEFAULT_DRAIN),
        };
        Ok(CommonSettings {
            status,
            metrics: address(common.metrics, source, keys.metrics, "metrics")?,
            drain,
            plaintext: common.insecure_plaintext || keys.insecure_plaintext == Some(true),
        })
    }
}

/// Whether only the owner can read `path` (always true off Unix, where
/// modes do not say).
fn owner_only(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str, private: bool) -> Source {
        Source {
            path: PathBuf::from("/etc/hawser/server.toml"),
            text: text.to_string(),
            private,
        }
    }

    #[test]
    fn a_server_file_gives_its_clients() {
        let file: ServerFile = source(
            "listen = \"127.0.0.1:7000\"\n\n[[client]]\nname = \"laptop\"\ntoken_file = \"laptop.token\"\nallow = [\"127.0.0.1:5432\"]\n\n[[client]]\nname = \"ci\"\ntoken = \"00\"\n",
            true,
        )
        .parse()
        .expect("a good file");
        assert_eq!(file.clients.len(), 2);
        assert_eq!(file.clients[0].name.get_ref(), "laptop");
        assert_eq!(file.clients[0].allow[0].get_ref(), "127.0.0.1:5432");
        assert!(file.clients[1].token.is_some());
    }

    #[test]
    fn errors_name_the_line() {
        let err = source(
            "listen = \"127.0.0.1:7000\"\n[[client]]\nname = \"a\"\nalow = []\n",
            true,
        )
        .parse::<ServerFile>()
        .expect_err("a typo");
        assert!(
            err.starts_with("/etc/hawser/server.toml line 4: unknown field `alow`"),
            "{err}"
        );
        let err = source("listen = 7000\n", true)
            .parse::<ServerFile>()
            .expect_err("a number");
        assert!(err.contains("line 1:"), "{err}");
        let err = source("[[client]\n", true).parse::<ServerFile>().expect_err("bad TOML");
        assert!(err.contains("line 1:"), "{err}");
    }

    #[test]
    fn secrets_need_a_private_file_and_paths_are_relative_to_it() {
        let text = "[[client]]\nname = \"a\"\ntoken = \"00112233445566778899aabbccddeeff\"\n";
        let open = source(text, false);
        let file: ServerFile = open.parse().expect("parses");
        let token = file.clients[0].token.as_ref().expect("a token");
        let err = open.secret(token, "a token").expect_err("readable by others");
        assert!(err.contains("line 3:") && err.contains("chmod 600"), "{err}");
        let private = source(text, true);
        assert_eq!(
            private.secret(token, "a token").expect("private"),
            "00112233445566778899aabbccddeeff"
        );
        assert_eq!(
            private.path(Path::new("cert.pem")),
            PathBuf::from("/etc/hawser/cert.pem")
        );
        assert_eq!(private.path(Path::new("/k.pem")), PathBuf::from("/k.pem"));
    }
}
