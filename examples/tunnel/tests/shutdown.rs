//! How the real `hawser` binary ends: SIGTERM and SIGINT both start the
//! drain and a second signal cuts it short; however the process ends, a
//! forwarded connection it cuts is reset, never ended cleanly; an idle `-R`
//! does not hold up the drain; a client whose credentials the server no
//! longer accepts exits with status 3 instead of retrying for ever.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A target that sends without end (and without any length framing), so a
/// reader can only tell a cut from the end by how the connection ends.
async fn endless_source() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let chunk = vec![0x5a; 64 * 1024];
                while tcp.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    addr
}

/// A connection through `-L` that is moving data.
async fn flowing(local: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(local).await.unwrap();
    let mut first = vec![0u8; 1 << 20];
    tcp.read_exact(&mut first).await.unwrap();
    tcp
}

/// Reads on until the connection ends; it must end in a reset, within
/// `limit`.
async fn ends_in_a_reset_within(limit: Duration, mut tcp: TcpStream, what: &str) {
    let (_, ended) = tokio::time::timeout(limit, read_all(&mut tcp))
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection never ended"));
    let err = ended.expect_err(&format!("{what}: a cut connection must be reset, not ended cleanly"));
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{what}: {err}");
}

async fn ends_in_a_reset(tcp: TcpStream, what: &str) {
    ends_in_a_reset_within(Duration::from_secs(60), tcp, what).await
}

/// A server allowing `target`, a client forwarding to it with `client_flags`.
async fn tunnel(name: &str, server_flags: &[&str], client_flags: &[&str]) -> (Process, Process, SocketAddr) {
    let dir = scratch(name);
    let fingerprint = keygen(&dir);
    let target = endless_source().await.to_string();
    let mut flags = vec!["--allow", &target];
    flags.extend_from_slice(server_flags);
    let (server, addr) = server(&dir, &flags);
    let spec = format!("0:{target}");
    let mut flags = vec!["-L", &spec];
    flags.extend_from_slice(client_flags);
    let client = client(&dir, addr, &fingerprint, &flags);
    let local = forwarded(&client);
    (server, client, local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_signal_drains_then_resets_what_is_still_open() {
    for name in ["TERM", "INT"] {
        let (_server, mut client, local) = tunnel("signal", &[], &["--drain", "1s"]).await;
        let tcp = flowing(local).await;
        signal(&client, name);
        ends_in_a_reset(tcp, name).await;
        assert_eq!(client.exit_code(), 0, "{}", client.stderr());
        let log = client.stderr();
        assert!(log.contains(&format!("signal=\"SIG{name}\"")), "{log}");
        assert!(log.contains("the drain ran out"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain_at_once() {
    // A drain longer than `exit_code` waits: only the second signal ends it.
    let (_server, mut client, local) = tunnel("second-signal", &[], &["--drain", "300s"]).await;
    let tcp = flowing(local).await;
    signal(&client, "TERM");
    logged(&client, "shutting down");
    signal(&client, "INT");
    ends_in_a_reset(tcp, "second signal").await;
    assert_eq!(client.exit_code(), 0, "{}", client.stderr());
    assert!(client.stderr().contains("second signal"), "{}", client.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_ending_its_drain_resets_the_clients_connections() {
    let (mut server, client, local) = tunnel("server-drain", &["--drain", "1s"], &[]).await;
    let tcp = flowing(local).await;
    signal(&server, "TERM");
    // Told by the server's resets, not left to the client's own 30 s drain
    // timeout (what happened before the server reset its streams).
    ends_in_a_reset_within(Duration::from_secs(20), tcp, "server drain").await;
    assert_eq!(server.exit_code(), 0, "{}", server.stderr());
    assert!(server.stderr().contains("the drain ran out"), "{}", server.stderr());
    drop(client);
}

#[test]
fn an_idle_reverse_forward_does_not_hold_up_either_drain() {
    let dir = scratch("reverse-drain");
    let fingerprint = keygen(&dir);
    let port = free_port().to_string();
    // Drains longer than `exit_code` waits: each must finish, not run out.
    let (mut server, addr) = server(&dir, &["--allow-reverse", &port, "--drain", "300s"]);
    let spec = format!("{port}:127.0.0.1:9");
    let mut first = client(&dir, addr, &fingerprint, &["-R", &spec, "--drain", "300s"]);
    first.line("reverse ");
    signal(&first, "TERM");
    assert_eq!(first.exit_code(), 0, "{}", first.stderr());
    assert!(first.stderr().contains("drained"), "{}", first.stderr());

    let mut second = client(&dir, addr, &fingerprint, &["-R", &spec, "--drain", "300s"]);
    second.line("reverse ");
    signal(&server, "TERM");
    assert_eq!(server.exit_code(), 0, "{}", server.stderr());
    assert!(server.stderr().contains("drained"), "{}", server.stderr());
    second.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_token_is_no_longer_accepted_exits_with_status_3() {
    let dir = scratch("new-token");
    let fingerprint = keygen(&dir);
    let target = endless_source().await.to_string();
    let (mut server, addr) = server(&dir, &["--allow", &target]);
    let spec = format!("0:{target}");
    let mut client = client(&dir, addr, &fingerprint, &["-L", &spec]);
    let local = forwarded(&client);
    let tcp = flowing(local).await;
    server.kill();
    // The same certificate on the same address, with another token.
    let other = scratch("new-token-server");
    keygen(&other);
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(dir.join(file), other.join(file)).unwrap();
    }
    let listen = addr.to_string();
    let (_server, _) = server_on(&other, &listen, &["--allow", &target]);
    assert_eq!(client.exit_code(), 3, "{}", client.stderr());
    assert!(
        client.stderr().contains("no longer accepts this client's credentials"),
        "{}",
        client.stderr()
    );
    ends_in_a_reset(tcp, "credentials rejected").await;
}
