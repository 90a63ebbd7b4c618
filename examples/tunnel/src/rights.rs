//! The server's clients: each has a name, its own token and its own rights
//! (what its `-L` and `-D` connections may reach, where its `-R` may
//! listen). A link is told apart by the token it proves, so one leaked
//! token opens only what its client may reach, and is revoked alone.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::allow::Rules;
use crate::auth::Token;

/// The name the command line's client (`--token-file`, `--allow`,
/// `--allow-reverse`) goes by in logs and metrics.
pub const FLAGS_CLIENT: &str = "default";

/// One client and what it may do.
#[derive(Debug)]
pub struct Rights {
    /// Its name, in logs and metrics labels.
    pub name: Arc<str>,
    /// The token it proves.
    pub token: Token,
    /// What its `-L` and `-D` connections may reach.
    pub allow: Rules,
    /// Where its `-R` may listen.
    pub allow_reverse: Vec<SocketAddr>,
}

/// Every client the server accepts.
#[derive(Debug)]
pub struct Clients(Vec<Arc<Rights>>);

impl Clients {
    /// The clients in `list`: at least one, no two with the same name or
    /// the same token.
    pub fn new(list: Vec<Rights>) -> Result<Clients, String> {
        if list.is_empty() {
            return Err("no clients: give --token-file, or [[client]] entries in the config file".into());
        }
        for (i, client) in list.iter().enumerate() {
            for earlier in &list[..i] {
                if earlier.name == client.name {
                    return Err(format!("two clients are named {:?}", client.name));
                }
                if earlier.token.same_secret(&client.token) {
                    return Err(format!(
                        "clients {:?} and {:?} have the same token: each needs its own",
                        earlier.name, client.name
                    ));
                }
            }
        }
        Ok(Clients(list.into_iter().map(Arc::new).collect()))
    }

    /// One client, named [`FLAGS_CLIENT`].
    pub fn single(token: Token, allow: Rules, allow_reverse: Vec<SocketAddr>) -> Clients {
        Clients(vec![Arc::new(Rights {
            name: FLAGS_CLIENT.into(),
            token,
            allow,
            allow_reverse,
        })])
    }

    /// The tokens, in order (the index of the one a link proves is its
    /// client's, see [`Clients::at`]).
    pub fn tokens(&self) -> impl Iterator<Item = &Token> {
        self.0.iter().map(|client| &client.token)
    }

    /// The client at `index` of [`Clients::tokens`].
    pub fn at(&self, index: usize) -> Option<Arc<Rights>> {
        self.0.get(index).cloned()
    }

    /// The client named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Rights>> {
        self.0.iter().find(|client| &*client.name == name).cloned()
    }

    /// Every client.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Rights>> {
        self.0.iter()
    }

    /// Whether a session of `client` may go on under these clients: one of
    /// that name still exists with the same token. `None` if so, else why not.
    pub fn revoked(&self, client: &Rights) -> Option<String> {
        match self.get(&client.name) {
            None => Some(format!(
                "client {} was removed from the server's configuration",
                client.name
            )),
            Some(now) if !now.token.same_secret(&client.token) => {
                Some(format!("client {}'s token was changed at the server", client.name))
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rights(name: &str, token: &str) -> Rights {
        Rights {
            name: name.into(),
            token: Token::parse(token).expect("a token"),
            allow: Rules::default(),
            allow_reverse: Vec::new(),
        }
    }

    const A: &str = "00112233445566778899aabbccddeeff";
    const B: &str = "ffeeddccbbaa99887766554433221100";

    #[test]
    fn names_and_tokens_are_each_clients_own() {
        assert!(Clients::new(vec![]).is_err());
        let err = Clients::new(vec![rights("a", A), rights("a", B)]).expect_err("same name");
        assert!(err.contains("two clients are named \"a\""), "{err}");
        let err = Clients::new(vec![rights("a", A), rights("b", A)]).expect_err("same token");
        assert!(err.contains("the same token"), "{err}");
        let clients = Clients::new(vec![rights("a", A), rights("b", B)]).expect("fine");
        assert_eq!(&*clients.at(1).expect("two").name, "b");
        assert_eq!(clients.tokens().count(), 2);
    }

    #[test]
    fn a_session_is_revoked_when_its_client_goes_or_is_rekeyed() {
        let before = Clients::new(vec![rights("a", A), rights("b", B)]).expect("fine");
        let a = before.get("a").expect("a");
        let b = before.get("b").expect("b");
        let after = Clients::new(vec![rights("b", A)]).expect("fine");
        assert_eq!(
            after.revoked(&a).as_deref(),
            Some("client a was removed from the server's configuration")
        );
        assert_eq!(
            after.revoked(&b).as_deref(),
            Some("client b's token was changed at the server")
        );
        assert_eq!(before.revoked(&a), None);
    }
}
