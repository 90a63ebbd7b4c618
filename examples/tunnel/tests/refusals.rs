//! The real `hawser` binary refusing what it must, each time with a clear
//! message and its own exit status; and a server restart resetting the
//! connections it cut, never ending them cleanly.

mod common;

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
    let local: std::net::SocketAddr = client
        .line("forwarding ")
        .split(" -> ")
        .next()
        .unwrap()
        .parse()
        .unwrap();
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
        client.stderr().contains("not on the server's --allow list"),
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
    assert!(client.stderr().contains("--allow-reverse list"), "{}", client.stderr());
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
    let local: std::net::SocketAddr = client
        .line("forwarding ")
        .split(" -> ")
        .next()
        .unwrap()
        .parse()
        .unwrap();

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
