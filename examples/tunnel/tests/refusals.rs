//! The real `hawser` binary refusing what it must, each time with a clear
//! message and its own exit status; and a server restart resetting the
//! connections it cut, never ending them cleanly.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[test]
fn a_wrong_token_is_refused_on_both_sides() {
    let dir = scratch("token");
    let fingerprint = keygen(&dir);
    let (server, addr) = server(&dir, &["--allow", "127.0.0.1:9"]);
    let other = scratch("token-other");
    keygen(&other);
    std::fs::copy(dir.join("cert.pem"), other.join("cert.pem")).unwrap();
    let mut client = client(&other, addr, &fingerprint, &["-L", "0:127.0.0.1:9"]);
    assert_eq!(client.exit_code(), 3, "{}", client.stderr());
    assert!(client.stderr().contains("authentication failed"), "{}", client.stderr());
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.stderr().contains("authentication failed"), "{}", server.stderr());
    // The token is never logged, on either side.
    let token = std::fs::read_to_string(dir.join("token")).unwrap();
    let other_token = std::fs::read_to_string(other.join("token")).unwrap();
    for log in [server.stderr(), client.stderr()] {
        assert!(!log.contains(token.trim()) && !log.contains(other_token.trim()));
    }
}

#[test]
fn a_wrong_fingerprint_is_refused() {
    let dir = scratch("fingerprint");
    keygen(&dir);
    let (_server, addr) = server(&dir, &["--allow", "127.0.0.1:9"]);
    let wrong = "ab".repeat(32);
    let mut client = client(&dir, addr, &wrong, &["-L", "0:127.0.0.1:9"]);
    assert_eq!(client.exit_code(), 3, "{}", client.stderr());
    assert!(client.stderr().contains("not the pinned"), "{}", client.stderr());
}

#[test]
fn plaintext_is_refused_for_anything_but_loopback() {
    let dir = scratch("plaintext");
    keygen(&dir);
    let (_, _, token) = files(&dir);
    // Refused before anything is sent: 192.0.2.1 is never contacted.
    let mut client = Process::start(
        &[
            "client",
            "--connect",
            "192.0.2.1:7000",
            "--token-file",
            &token,
            "--insecure-plaintext",
            "-L",
            "0:x:1",
        ],
        dir.join("client.log"),
    );
    assert_eq!(client.exit_code(), 2, "{}", client.stderr());
    assert!(client.stderr().contains("only for loopback"), "{}", client.stderr());
    let mut server = Process::start(
        &[
            "server",
            "--listen",
            "0.0.0.0:0",
            "--token-file",
            &token,
            "--insecure-plaintext",
        ],
        dir.join("server.log"),
    );
    assert_eq!(server.exit_code(), 2, "{}", server.stderr());
    assert!(server.stderr().contains("only for loopback"), "{}", server.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_not_allowed_is_reset_with_the_reason_printed() {
    let dir = scratch("allow");
    let fingerprint = keygen(&dir);
    let echo = echo_service().await;
    let (_server, addr) = server(&dir, &["--allow", "127.0.0.1:9"]);
    let spec = format!("0:{echo}");
    let client = client(&dir, addr, &fingerprint, &["-L", &spec]);
    let local = forwarded(&client);
    // The reset can come so fast that it is what the connect itself reports.
    let err = match TcpStream::connect(local).await {
        Ok(mut tcp) => {
            let (got, ended) = read_all(&mut tcp).await;
            assert!(got.is_empty());
            ended.expect_err("a refusal is a reset, never a clean end")
        }
        Err(err) => err,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        client
            .stderr()
            .contains("not on the server's allow list for client default"),
        "{}",
        client.stderr()
    );
}

#[test]
fn a_reverse_port_not_allowed_is_refused() {
    let dir = scratch("reverse");
    let fingerprint = keygen(&dir);
    let (_server, addr) = server(&dir, &["--allow-reverse", "1"]);
    let spec = format!("{}:127.0.0.1:9", free_port());
    let mut client = client(&dir, addr, &fingerprint, &["-R", &spec]);
    assert_eq!(client.exit_code(), 5, "{}", client.stderr());
    assert!(
        client.stderr().contains("allow-reverse list for client default"),
        "{}",
        client.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_resets_cut_connections_and_new_ones_work_again() {
    let dir = scratch("restart");
    let fingerprint = keygen(&dir);
    let echo = echo_service().await;
    let allow = echo.to_string();
    let (mut server, addr) = server(&dir, &["--allow", &allow]);
    let spec = format!("0:{echo}");
    let client = client(&dir, addr, &fingerprint, &["-L", &spec]);
    let local = forwarded(&client);

    let mut tcp = TcpStream::connect(local).await.unwrap();
    tcp.write_all(b"before").await.unwrap();
    let mut buf = [0u8; 6];
    tcp.read_exact(&mut buf).await.unwrap();
    server.kill();
    // Back on the same address, with no memory of the session.
    let listen = addr.to_string();
    let (_server, _) = server_on(&dir, &listen, &["--allow", &allow]);
    let (_, ended) = tokio::time::timeout(Duration::from_secs(60), read_all(&mut tcp))
        .await
        .unwrap();
    let err = ended.expect_err("a cut connection is reset, never ended cleanly");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

    let mut fresh = TcpStream::connect(local).await.unwrap();
    fresh.write_all(b"after").await.unwrap();
    fresh.shutdown().await.unwrap();
    let (got, ended) = tokio::time::timeout(Duration::from_secs(60), read_all(&mut fresh))
        .await
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}\n{}", client.stderr());
    assert_eq!(got, b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_lets_open_connections_finish_then_exits() {
    let dir = scratch("ctrlc");
    let fingerprint = keygen(&dir);
    let echo = echo_service().await;
    let allow = echo.to_string();
    let (mut server, addr) = server(&dir, &["--allow", &allow, "--drain", "20s"]);
    let spec = format!("0:{echo}");
    let client = client(&dir, addr, &fingerprint, &["-L", &spec]);
    let local = forwarded(&client);
    let mut tcp = TcpStream::connect(local).await.unwrap();
    tcp.write_all(b"first half ").await.unwrap();
    let mut buf = [0u8; 11];
    tcp.read_exact(&mut buf).await.unwrap();
    // Ctrl-C to the server, while the connection is open.
    let status = std::process::Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The open connection still works, and finishes cleanly.
    tcp.write_all(b"second half").await.unwrap();
    tcp.shutdown().await.unwrap();
    let (rest, ended) = read_all(&mut tcp).await;
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(rest, b"second half");
    // With nothing left open, the server is done well before the drain deadline.
    let code = tokio::task::spawn_blocking(move || server.exit_code()).await.unwrap();
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_is_trusted_for_the_right_name_only() {
    let dir = scratch("ca");
    keygen(&dir); // for the token; the certificate is replaced by one a CA signed
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["tunnel.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let echo = echo_service().await;
    let allow = echo.to_string();
    let (_server, addr) = server(&dir, &["--allow", &allow]);
    let (_, _, token) = files(&dir);
    let ca_file = dir.join("ca.pem").to_string_lossy().into_owned();
    let (server_addr, spec) = (addr.to_string(), format!("0:{echo}"));
    let start = |name: &str| {
        Process::start(
            &[
                "client",
                "--connect",
                &server_addr,
                "--token-file",
                &token,
                "--ca",
                &ca_file,
                "--server-name",
                name,
                "-L",
                &spec,
            ],
            dir.join(format!("client-{name}.log")),
        )
    };
    let good = start("tunnel.test");
    let local = forwarded(&good);
    let mut tcp = TcpStream::connect(local).await.unwrap();
    tcp.write_all(b"signed").await.unwrap();
    tcp.shutdown().await.unwrap();
    let (got, ended) = read_all(&mut tcp).await;
    assert!(ended.is_ok());
    assert_eq!(got, b"signed");
    let mut wrong = start("other.test");
    assert_eq!(wrong.exit_code(), 3, "{}", wrong.stderr());
    assert!(wrong.stderr().contains("certificate"), "{}", wrong.stderr());
}

#[test]
fn keygen_refuses_to_replace_a_key_without_force() {
    let dir = scratch("keygen-force");
    let fingerprint = keygen(&dir);
    let (cert, key, token) = files(&dir);
    let before = std::fs::read_to_string(&token).unwrap();
    let again = Command::new(HAWSER)
        .args(["keygen", "--cert", &cert, "--key", &key, "--token", &token])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&token).unwrap(), before, "the token was kept");
    let forced = Command::new(HAWSER)
        .args(["keygen", "--cert", &cert, "--key", &key, "--token", &token, "--force"])
        .output()
        .unwrap();
    assert!(forced.status.success(), "{forced:?}");
    assert_ne!(std::fs::read_to_string(&token).unwrap(), before, "a new token");
    assert!(
        !String::from_utf8_lossy(&forced.stdout).contains(&fingerprint),
        "a new key"
    );
}

#[test]
fn a_status_interval_under_a_second_is_refused() {
    let dir = scratch("status-interval");
    keygen(&dir);
    let (cert, key, token) = files(&dir);
    let out = Command::new(HAWSER)
        .args(["server", "--listen", "127.0.0.1:0", "--token-file", &token])
        .args(["--cert", &cert, "--key", &key, "--status", "0s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("too often"), "{out:?}");
}

#[test]
fn a_plaintext_client_is_told_the_server_wants_tls() {
    let dir = scratch("wants-tls");
    keygen(&dir);
    let (server, addr) = server(&dir, &["--allow", "127.0.0.1:9"]);
    let (_, _, token) = files(&dir);
    let server_addr = addr.to_string();
    let mut client = Process::start(
        &[
            "client",
            "--connect",
            &server_addr,
            "--token-file",
            &token,
            "--insecure-plaintext",
            "-L",
            "0:127.0.0.1:9",
        ],
        dir.join("client.log"),
    );
    assert_eq!(client.exit_code(), 2, "{}", client.stderr());
    assert!(client.stderr().contains("the server speaks TLS"), "{}", client.stderr());
    assert!(server.stderr().contains("without TLS"), "{}", server.stderr());
}

#[test]
fn a_tls_client_is_told_the_server_runs_without_tls() {
    let dir = scratch("no-tls");
    let fingerprint = keygen(&dir);
    let (_, _, token) = files(&dir);
    let server = Process::start(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            &token,
            "--insecure-plaintext",
            "--allow",
            "127.0.0.1:9",
        ],
        dir.join("server.log"),
    );
    let addr: std::net::SocketAddr = server.line("listening on ").parse().unwrap();
    let mut client = client(&dir, addr, &fingerprint, &["-L", "0:127.0.0.1:9"]);
    assert_eq!(client.exit_code(), 2, "{}", client.stderr());
    assert!(client.stderr().contains("runs without it"), "{}", client.stderr());
    std::thread::sleep(Duration::from_millis(200));
    let log = server.stderr();
    assert!(log.contains("a TLS client reached this plaintext server"), "{log}");
    assert!(
        !log.contains("authentication failed"),
        "not counted as a wrong token: {log}"
    );
}

/// The allow rules are checked after the target's name is resolved: a name
/// reaches an address rule, the server logs each connection (who, where,
/// bytes each way, how it ended), and a name resolving outside the rules is
/// refused with the client named in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_rules_apply_to_resolved_addresses_and_every_connection_is_logged() {
    let dir = scratch("resolved");
    let fingerprint = keygen(&dir);
    let echo = echo_service().await;
    let port = echo.port();
    let by_address = format!("127.0.0.1:{port}");
    let elsewhere = format!("10.0.0.0/8:{port}");
    let (server, addr) = server(&dir, &["--allow", &by_address]);
    let spec = format!("0:localhost:{port}");
    let client = client(&dir, addr, &fingerprint, &["-L", &spec]);
    let local = forwarded(&client);
    let mut tcp = TcpStream::connect(local).await.unwrap();
    tcp.write_all(b"by name").await.unwrap();
    tcp.shutdown().await.unwrap();
    let (got, ended) = read_all(&mut tcp).await;
    assert!(ended.is_ok(), "{ended:?}\n{}", server.stderr());
    assert_eq!(got, b"by name");
    let mut access = String::new();
    for _ in 0..100 {
        access = server.stderr();
        if access.contains(" connection ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = access
        .lines()
        .find(|line| line.contains(" connection "))
        .unwrap_or_else(|| panic!("{access}"));
    for field in [
        "client=default".to_string(),
        "from=127.0.0.1:".to_string(),
        format!("target=localhost:{port}"),
        format!("address=127.0.0.1:{port}"),
        "bytes_to_target=7".into(),
        "bytes_from_target=7".into(),
        "ended=\"closed\"".into(),
    ] {
        assert!(line.contains(&field), "{field} missing from: {line}");
    }

    let dir = scratch("resolved-outside");
    let fingerprint = keygen(&dir);
    let (strict, addr) = common::server(&dir, &["--allow", &elsewhere]);
    let strict_client = common::client(&dir, addr, &fingerprint, &["-L", &spec]);
    let local = forwarded(&strict_client);
    if let Ok(mut tcp) = TcpStream::connect(local).await {
        let (_, ended) = read_all(&mut tcp).await;
        assert!(ended.is_err(), "a refusal is a reset");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = strict.stderr();
    assert!(
        log.contains("does not admit") && log.contains("client=default from=127.0.0.1:"),
        "{log}"
    );
}

/// A busy `-L` port fails the client before it dials: the error names the
/// port, not the (here unreachable) server, as ssh's ExitOnForwardFailure.
#[test]
fn a_busy_local_port_fails_before_the_server_is_dialled() {
    let dir = scratch("busy-port");
    let fingerprint = keygen(&dir);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = format!("{}:127.0.0.1:9", busy.local_addr().unwrap().port());
    // Nothing listens there: a dial would fail with "cannot reach the server".
    let nowhere: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut client = client(&dir, nowhere, &fingerprint, &["-L", &spec]);
    assert_eq!(client.exit_code(), 4, "{}", client.stderr());
    let stderr = client.stderr();
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!stderr.contains("cannot reach the server"), "{stderr}");
}
