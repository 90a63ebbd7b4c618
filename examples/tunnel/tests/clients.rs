//! Clients with their own secrets and rights: the server's config file names
//! them, a link is told apart by the token it proves, logs and metrics carry
//! the name, and `SIGHUP` reloads the file. The client's config file stands
//! in for its command line. All with the real binary.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "a11ce0000000000000000000000000000000000000000000000000000000a11c";
const BOB: &str = "b0b0000000000000000000000000000000000000000000000000000000000b0b";
const CAROL: &str = "ca401000000000000000000000000000000000000000000000000000000ca401";
const CAROL_NEW: &str = "ca402000000000000000000000000000000000000000000000000000000ca402";

/// A `[[client]]` entry of a server file.
fn entry(name: &str, allow: &[SocketAddr]) -> String {
    let allow: Vec<String> = allow.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "\n[[client]]\nname = \"{name}\"\ntoken_file = \"{name}.token\"\nallow = [{}]\n",
        allow.join(", ")
    )
}

/// A server file in `dir` (certificate and key from `keygen`, relative to
/// the file) with `clients`.
fn server_file(dir: &Path, extra: &str, clients: &str) -> String {
    let path = dir.join("server.toml");
    std::fs::write(
        &path,
        format!("listen = \"127.0.0.1:0\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n{extra}{clients}"),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// `hawser client --config` with a file for `name` (its token file, the
/// server's fingerprint, `-L` to each of `targets`), plus `flags`.
fn client_of(
    dir: &Path,
    name: &str,
    connect: &str,
    fingerprint: &str,
    targets: &[SocketAddr],
    flags: &[&str],
) -> Process {
    let local: Vec<String> = targets.iter().map(|t| format!("\"0:{t}\"")).collect();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "connect = \"{connect}\"\ntoken_file = \"{name}.token\"\nfingerprint = \"{fingerprint}\"\nlocal = [{}]\n",
            local.join(", ")
        ),
    )
    .unwrap();
    let path = path.to_string_lossy().into_owned();
    let mut args = vec!["client", "--config", &path];
    args.extend_from_slice(flags);
    Process::start(&args, dir.join(format!("{name}-{}.log", unique())))
}

fn start_server(dir: &Path, config: &str, flags: &[&str]) -> (Process, SocketAddr) {
    let mut args = vec!["server", "--config", config];
    args.extend_from_slice(flags);
    let server = Process::start(&args, dir.join(format!("server-{}.log", unique())));
    let addr = server.line("listening on ").parse().unwrap();
    (server, addr)
}

fn tokens(dir: &Path) {
    for (name, token) in [("alice", ALICE), ("bob", BOB), ("carol", CAROL)] {
        write_private(&dir.join(format!("{name}.token")), token);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_proves_its_own_token_and_reaches_only_what_it_may() {
    let dir = scratch("clients");
    let fingerprint = keygen(&dir);
    tokens(&dir);
    let (a, b) = (echo_service().await, echo_service().await);
    let clients = entry("alice", &[a]) + &entry("bob", &[b]);
    let config = server_file(&dir, "metrics = \"127.0.0.1:0\"\n", &clients);
    // The command line's client ("default") beside the file's.
    let token = dir.join("token").to_string_lossy().into_owned();
    let allow_b = b.to_string();
    let (server, addr) = start_server(&dir, &config, &["--token-file", &token, "--allow", &allow_b]);
    let metrics = server.line("metrics on ");

    // Alice's file names a server that is not there; --connect wins, and
    // -L from the command line adds to the file's.
    let connect = addr.to_string();
    let extra_b = format!("0:{b}");
    let alice = client_of(
        &dir,
        "alice",
        "127.0.0.1:1",
        &fingerprint,
        &[a],
        &["--connect", &connect, "-L", &extra_b],
    );
    let (alice_a, alice_b) = (forwarded(&alice), forwarded(&alice));
    let bob = client_of(&dir, "bob", &connect, &fingerprint, &[a, b], &[]);
    let (bob_a, bob_b) = (forwarded(&bob), forwarded(&bob));
    let spec = format!("0:{b}");
    let default = client(&dir, addr, &fingerprint, &["-L", &spec]);
    let default_b = forwarded(&default);

    assert_eq!(echo_through(alice_a).await.expect("alice may reach a"), b"hello");
    assert_eq!(echo_through(bob_b).await.expect("bob may reach b"), b"hello");
    assert_eq!(echo_through(default_b).await.expect("default may reach b"), b"hello");
    for refused in [alice_b, bob_a] {
        let err = echo_through(refused).await.expect_err("not theirs");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    }

    let log = logged(&server, "not on the server's allow list for client bob");
    assert!(log.contains("not on the server's allow list for client alice"), "{log}");
    for name in ["alice", "bob", "default"] {
        assert!(log.contains(&format!("client={name} from=127.0.0.1:")), "{name}: {log}");
    }
    assert!(!log.contains(ALICE) && !log.contains(BOB), "a token was logged: {log}");

    let samples = tokio::task::spawn_blocking(move || {
        scrape_until(
            &metrics,
            "hawser_tunnel_client_refusals_total{client=\"bob\",reason=\"not_allowed\"}",
            1.0,
        )
    })
    .await
    .unwrap();
    for (name, value) in [
        ("hawser_tunnel_client_sessions{client=\"alice\"}", 1.0),
        ("hawser_tunnel_client_connections_total{client=\"alice\"}", 1.0),
        ("hawser_tunnel_client_connections_total{client=\"bob\"}", 1.0),
        ("hawser_tunnel_client_connections_total{client=\"default\"}", 1.0),
        ("hawser_tunnel_client_bytes_to_targets_total{client=\"alice\"}", 5.0),
        ("hawser_tunnel_client_bytes_from_targets_total{client=\"bob\"}", 5.0),
        (
            "hawser_tunnel_client_refusals_total{client=\"alice\",reason=\"not_allowed\"}",
            1.0,
        ),
        (
            "hawser_tunnel_client_refusals_total{client=\"default\",reason=\"not_allowed\"}",
            0.0,
        ),
        ("hawser_tunnel_connections_total", 3.0),
        ("hawser_tunnel_refusals_total{reason=\"not_allowed\"}", 2.0),
    ] {
        assert_eq!(samples.get(name), Some(&value), "{name}: {samples:?}");
    }
    assert!(samples.contains_key("hawser_tunnel_client_rtt_seconds{client=\"alice\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_new_rights_and_ends_removed_and_rekeyed_clients() {
    let dir = scratch("reload");
    let fingerprint = keygen(&dir);
    tokens(&dir);
    let (a, b) = (echo_service().await, echo_service().await);
    let clients = entry("alice", &[a]) + &entry("bob", &[b]) + &entry("carol", &[a]);
    let config = server_file(&dir, "", &clients);
    let (server, addr) = start_server(&dir, &config, &[]);
    let connect = addr.to_string();
    let alice = client_of(&dir, "alice", &connect, &fingerprint, &[a, b], &[]);
    let (alice_a, alice_b) = (forwarded(&alice), forwarded(&alice));
    let mut bob = client_of(&dir, "bob", &connect, &fingerprint, &[b], &[]);
    let bob_b = forwarded(&bob);
    let mut carol = client_of(&dir, "carol", &connect, &fingerprint, &[a], &[]);
    let carol_a = forwarded(&carol);
    assert!(echo_through(alice_a).await.is_ok());
    assert!(echo_through(alice_b).await.is_err(), "not alice's yet");
    assert!(echo_through(bob_b).await.is_ok());
    assert!(echo_through(carol_a).await.is_ok());
    // A connection open across the reload.
    let mut held = TcpStream::connect(alice_a).await.unwrap();
    held.write_all(b"before").await.unwrap();
    let mut buf = [0u8; 6];
    held.read_exact(&mut buf).await.unwrap();

    // Alice now reaches b instead of a; bob is removed; carol has a new token.
    write_private(&dir.join("carol.token"), CAROL_NEW);
    server_file(&dir, "", &(entry("alice", &[b]) + &entry("carol", &[a])));
    signal(&server, "HUP");
    logged(&server, "configuration reloaded");

    held.write_all(b"after").await.unwrap();
    held.shutdown().await.unwrap();
    let (rest, ended) = read_all(&mut held).await;
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(rest, b"after", "an open connection of a client that stays goes on");
    assert!(echo_through(alice_a).await.is_err(), "a is no longer alice's");
    assert_eq!(echo_through(alice_b).await.expect("b is alice's now"), b"hello");

    // The removed and the re-keyed client are told why, then cannot come back.
    assert_eq!(bob.exit_code(), 3, "{}", bob.stderr());
    assert!(
        bob.stderr()
            .contains("client bob was removed from the server's configuration"),
        "{}",
        bob.stderr()
    );
    assert_eq!(carol.exit_code(), 3, "{}", carol.stderr());
    assert!(
        carol
            .stderr()
            .contains("client carol's token was changed at the server"),
        "{}",
        carol.stderr()
    );

    // A file with an error is refused at SIGHUP, and the server goes on as it was.
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[[client]]\nname = \"alice\"\nalow = []\n",
    )
    .unwrap();
    signal(&server, "HUP");
    let log = logged(&server, "reload refused");
    assert!(log.contains("server.toml line 4: unknown field `alow`"), "{log}");
    assert_eq!(echo_through(alice_b).await.expect("alice's rights stay"), b"hello");
}

/// Runs `hawser` with `args` and expects it to stop with status 2 and an
/// error that contains `message`.
fn refused(dir: &Path, args: &[&str], message: &str) {
    let mut process = Process::start(args, dir.join(format!("refused-{}.log", unique())));
    assert_eq!(process.exit_code(), 2, "{args:?}: {}", process.stderr());
    assert!(process.stderr().contains(message), "{args:?}: {}", process.stderr());
}

#[test]
fn bad_config_files_are_refused_with_their_line_and_reason() {
    let dir = scratch("bad-config");
    keygen(&dir);
    tokens(&dir);
    let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let good = entry("alice", &[a]);

    let config = server_file(&dir, "", &(good.clone() + "alow = [\"127.0.0.1:9\"]\n"));
    refused(
        &dir,
        &["server", "--config", &config],
        "server.toml line 9: unknown field `alow`",
    );

    let config = server_file(&dir, "", &good.replace("127.0.0.1:9", "127.0.0.1:99999"));
    refused(
        &dir,
        &["server", "--config", &config],
        "server.toml line 8: --allow \"127.0.0.1:99999\"",
    );

    let config = server_file(&dir, "", &(good.clone() + &good.replace("alice\"\n", "eve\"\n")));
    refused(
        &dir,
        &["server", "--config", &config],
        "clients \"alice\" and \"eve\" have the same token",
    );

    // A token written in a file that others can read.
    let inline = format!("\n[[client]]\nname = \"dave\"\ntoken = \"{ALICE}\"\n");
    let config = server_file(&dir, "", &inline);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        refused(
            &dir,
            &["server", "--config", &config],
            "line 7: a token is written here, but others can read",
        );
    }

    // --allow belongs to --token-file's client.
    let config = server_file(&dir, "", &good);
    refused(
        &dir,
        &["server", "--config", &config, "--allow", "127.0.0.1:9"],
        "give --token-file",
    );

    // The client's file too.
    let path = dir.join("client.toml");
    std::fs::write(
        &path,
        "connect = \"127.0.0.1:1\"\ntoken_file = \"alice.token\"\nlocal = [\"0:nowhere\"]\n",
    )
    .unwrap();
    let path = path.to_string_lossy().into_owned();
    refused(
        &dir,
        &["client", "--config", &path, "--insecure-plaintext"],
        "client.toml line 3: ",
    );
}

#[test]
fn a_reload_leaves_the_sessions_of_unchanged_clients_alone() {
    // A reload that changes nothing for a client leaves its session alone:
    // same name, same token.
    let dir = scratch("reload-same");
    let fingerprint = keygen(&dir);
    tokens(&dir);
    let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let config = server_file(&dir, "", &entry("alice", &[a]));
    let (server, addr) = start_server(&dir, &config, &[]);
    let alice = client_of(&dir, "alice", &addr.to_string(), &fingerprint, &[a], &[]);
    forwarded(&alice);
    signal(&server, "HUP");
    logged(&server, "configuration reloaded");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !server.stderr().contains("ending the client's session"),
        "{}",
        server.stderr()
    );
    assert!(
        !alice.stderr().contains("the server ended the session"),
        "{}",
        alice.stderr()
    );
}
