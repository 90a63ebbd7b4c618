//! The server's `--allow` rules: which targets `-L` (and SOCKS) connections
//! may reach. A rule is `HOST:PORTS`, where HOST is a name (`db.internal`),
//! a wildcard for a domain's subdomains (`*.internal`), an IP address
//! (`127.0.0.1`, `[::1]`) or a network (`10.0.0.0/8`, `[fd00::/8]`), and
//! PORTS a port (`5432`) or a range (`8000-8099`).
//!
//! A target is checked after its name is resolved: a name rule admits what
//! the name resolves to (the operator trusts that name's DNS), an address or
//! network rule admits the resolved addresses inside it, whatever name led
//! there. So `localhost:5432` reaches 127.0.0.1 under the rule
//! `127.0.0.1:5432`, and a name that resolves into a forbidden network does
//! not get there.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

/// One `--allow` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    host: Host,
    ports: RangeInclusive<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    /// A name, lower-cased.
    Name(String),
    /// `*.domain`: any name ending in `.domain` (lower-cased, with the dot).
    Subdomains(String),
    /// An address (prefix of its full length) or a network.
    Network { base: IpAddr, prefix: u8 },
}

impl Rule {
    /// Parses `HOST:PORT` or `HOST:LOW-HIGH` (see the module docs).
    pub fn parse(text: &str) -> Result<Rule, String> {
        let bad = |why: &str| {
            format!(
                "--allow {text:?}: {why} (e.g. db.internal:5432, *.internal:443, 10.0.0.0/8:22, 127.0.0.1:8000-8099)"
            )
        };
        let (host, ports) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let ports = parse_ports(ports).ok_or_else(|| bad("the port must be 1-65535 or a range LOW-HIGH"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let host = if let Some((base, prefix)) = host.split_once('/') {
            let base: IpAddr = base.parse().map_err(|_| bad("a network must be ADDRESS/PREFIX"))?;
            let prefix: u8 = prefix.parse().map_err(|_| bad("a network must be ADDRESS/PREFIX"))?;
            if prefix > full_prefix(base) {
                return Err(bad("the prefix is longer than the address"));
            }
            Host::Network { base, prefix }
        } else if let Ok(address) = host.parse::<IpAddr>() {
            Host::Network {
                base: address,
                prefix: full_prefix(address),
            }
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(bad("a wildcard is *.DOMAIN"));
            }
            Host::Subdomains(format!(".{}", domain.to_ascii_lowercase()))
        } else if host.contains('*') {
            return Err(bad("a wildcard is *.DOMAIN"));
        } else {
            Host::Name(host.to_ascii_lowercase())
        };
        Ok(Rule { host, ports })
    }

    /// Whether the rule admits connecting to `address` for a target named
    /// `name` (as the client gave it).
    fn admits(&self, name: &str, address: SocketAddr) -> bool {
        if !self.ports.contains(&address.port()) {
            return false;
        }
        let name = name.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        match &self.host {
            Host::Name(allowed) => *allowed == name,
            Host::Subdomains(suffix) => name.ends_with(suffix.as_str()),
            Host::Network { base, prefix } => in_network(address.ip(), *base, *prefix),
        }
    }
}

/// The rules together.
#[derive(Clone, Debug, Default)]
pub struct Rules(Vec<Rule>);

impl From<Vec<Rule>> for Rules {
    fn from(rules: Vec<Rule>) -> Rules {
        Rules(rules)
    }
}

impl Rules {
    /// Parses every rule; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Rules, String> {
        rules
            .iter()
            .map(|rule| Rule::parse(rule.as_ref()))
            .collect::<Result<_, _>>()
            .map(Rules)
    }

    /// Of the addresses `name` resolved to, those some rule admits, in order.
    pub fn admitted(&self, name: &str, resolved: &[SocketAddr]) -> Vec<SocketAddr> {
        resolved
            .iter()
            .copied()
            .filter(|address| self.0.iter().any(|rule| rule.admits(name, *address)))
            .collect()
    }

    /// Whether no rule could ever admit a target named `name` on `port`, so
    /// that resolving it is not worth the lookup: no name or wildcard rule
    /// for it, no network rule on that port.
    pub fn refuse_unresolved(&self, name: &str, port: u16) -> bool {
        let name = name.to_ascii_lowercase();
        !self.0.iter().any(|rule| {
            rule.ports.contains(&port)
                && match &rule.host {
                    Host::Name(allowed) => *allowed == name,
                    Host::Subdomains(suffix) => name.ends_with(suffix.as_str()),
                    Host::Network { .. } => true,
                }
        })
    }
}

fn parse_ports(text: &str) -> Option<RangeInclusive<u16>> {
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.parse::<u16>().ok()?, high.parse::<u16>().ok()?),
        None => {
            let port = text.parse::<u16>().ok()?;
            (port, port)
        }
    };
    (low >= 1 && low <= high).then_some(low..=high)
}

fn full_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Whether `address` is in `base/prefix`; an IPv4-mapped IPv6 address
/// counts as its IPv4 address.
fn in_network(address: IpAddr, base: IpAddr, prefix: u8) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    };
    match (address, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Splits a target `HOST:PORT` (brackets around an IPv6 host allowed).
pub fn split_target(target: &str) -> Option<(&str, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|&port| port != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn rules_parse_in_every_form_and_bad_ones_say_why() {
        for good in [
            "db.internal:5432",
            "*.internal:443",
            "10.0.0.0/8:22",
            "127.0.0.1:8000-8099",
            "[::1]:80",
            "[fd00::/8]:443",
        ] {
            assert!(Rule::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "db",
            "db:0",
            "db:99999",
            ":80",
            "10.0.0.0/33:1",
            "a.*.b:1",
            "*.:1",
            "h:9-8",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_address_rule_admits_any_name_that_resolves_to_it() {
        let rules = Rules::parse(&["127.0.0.1:21080"]).expect("valid");
        let resolved = [addr("[::1]:21080"), addr("127.0.0.1:21080")];
        assert_eq!(rules.admitted("localhost", &resolved), [addr("127.0.0.1:21080")]);
        assert!(
            rules.admitted("localhost", &[addr("127.0.0.1:21081")]).is_empty(),
            "another port"
        );
    }

    #[test]
    fn a_name_cannot_smuggle_an_address_outside_a_network_rule() {
        let rules = Rules::parse(&["10.0.0.0/8:22"]).expect("valid");
        assert!(rules.admitted("evil.example", &[addr("192.168.1.1:22")]).is_empty());
        assert_eq!(rules.admitted("box", &[addr("10.1.2.3:22")]), [addr("10.1.2.3:22")]);
        assert_eq!(
            rules.admitted("mapped", &[addr("[::ffff:10.1.2.3]:22")]),
            [addr("[::ffff:10.1.2.3]:22")]
        );
    }

    #[test]
    fn name_and_wildcard_rules_match_without_regard_to_case() {
        let rules = Rules::parse(&["DB.internal:5432", "*.svc.local:8000-8099"]).expect("valid");
        let anywhere = [addr("192.0.2.7:5432")];
        assert_eq!(rules.admitted("db.INTERNAL", &anywhere), anywhere);
        assert!(rules.admitted("other.internal", &anywhere).is_empty());
        let web = [addr("192.0.2.8:8080")];
        assert_eq!(rules.admitted("api.svc.local", &web), web);
        assert!(
            rules.admitted("svc.local", &web).is_empty(),
            "the domain itself is not a subdomain"
        );
        assert!(rules.admitted("api.svc.local", &[addr("192.0.2.8:9000")]).is_empty());
        assert!(rules.refuse_unresolved("example.com", 5432));
        assert!(!rules.refuse_unresolved("db.internal", 5432));
    }

    #[test]
    fn targets_split_into_host_and_port() {
        assert_eq!(split_target("db:5432"), Some(("db", 5432)));
        assert_eq!(split_target("[::1]:80"), Some(("::1", 80)));
        assert_eq!(split_target("db"), None);
        assert_eq!(split_target("db:0"), None);
    }
}
