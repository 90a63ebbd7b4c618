//! The link over WebSocket: `--listen-ws` on the server, `--connect
//! wss://HOST:PORT/PATH` on the client, alone and through a real HTTP proxy
//! (tinyproxy); the token proof, forwarding and resumption as over the raw
//! link, and clear refusals of a URL that does not match the encryption.

mod common;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A TLS server listening for WebSocket links only (no `--listen`); returns it
/// and its WebSocket address.
fn websocket_server(dir: &std::path::Path, extra: &[&str]) -> (Process, std::net::SocketAddr) {
    server_listening(
        dir,
        ("--listen-ws", "127.0.0.1:0"),
        "listening for WebSocket on ",
        extra,
    )
}

/// A client of the WebSocket at `url`.
fn websocket_client(dir: &std::path::Path, url: &str, extra: &[&str]) -> Process {
    let (_, _, token) = files(dir);
    let mut args = vec!["client", "--connect", url, "--token-file", &token];
    args.extend_from_slice(extra);
    Process::start(&args, dir.join(format!("client-{}.log", unique())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_forwards_over_a_websocket_through_a_proxy_and_resumes_when_it_is_cut() {
    let dir = scratch("websocket");
    let fingerprint = keygen(&dir);
    let echo = echo_service().await;
    let allow = echo.to_string();
    let (server, addr) = websocket_server(&dir, &["--allow", &allow]);
    let spec = format!("0:{echo}");
    let mut proxy = Tinyproxy::start(&dir);
    let proxy_url = format!("http://alice:s3cret@127.0.0.1:{}", proxy.port);
    let url = format!("wss://127.0.0.1:{}/tunnel", addr.port());
    let client = websocket_client(
        &dir,
        &url,
        &["--fingerprint", &fingerprint, "--proxy", &proxy_url, "-L", &spec],
    );
    let local = forwarded(&client);

    let mut tcp = TcpStream::connect(local).await.unwrap();
    tcp.write_all(b"over a websocket").await.unwrap();
    tcp.shutdown().await.unwrap();
    let (got, ended) = read_all(&mut tcp).await;
    assert!(ended.is_ok(), "{ended:?}\n{}\n{}", client.stderr(), server.stderr());
    assert_eq!(got, b"over a websocket");
    let (links, log) = proxy.tunnels_to(addr);
    assert!(links >= 1, "through the proxy:\n{log}");

    // The proxy dies under a transfer and comes back: the client redials the
    // WebSocket through it and resumes, and not a byte is lost or repeated.
    pattern_through(local, 4 << 20, || proxy.restart()).await;
    assert!(client.stderr().contains("resumed"), "{}", client.stderr());
    let (links, log) = proxy.tunnels_to(addr);
    assert!(links >= 2, "the new link went through the restarted proxy too:\n{log}");
    assert!(
        server.stderr().contains("link=websocket"),
        "the server logs the kind of link: {}",
        server.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_websocket_links_reach_one_server() {
    let dir = scratch("websocket-both");
    let fingerprint = keygen(&dir);
    let echo = echo_service().await;
    let allow = echo.to_string();
    let (server, raw) = server(&dir, &["--listen-ws", "127.0.0.1:0", "--allow", &allow]);
    let ws = server.line("listening for WebSocket on ");
    let spec = format!("0:{echo}");
    let over_raw = client(&dir, raw, &fingerprint, &["-L", &spec]);
    let over_ws = websocket_client(
        &dir,
        &format!("wss://{ws}/"),
        &["--fingerprint", &fingerprint, "-L", &spec],
    );
    for client in [&over_raw, &over_ws] {
        let got = echo_through(forwarded(client)).await;
        assert_eq!(got.as_deref().ok(), Some(&b"hello"[..]), "{got:?}\n{}", client.stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_must_match_the_encryption() {
    let dir = scratch("websocket-plain");
    keygen(&dir);
    let echo = echo_service().await;
    let spec = format!("0:{echo}");

    // ws:// is unencrypted: only with --insecure-plaintext, on loopback.
    let mut refused = websocket_client(&dir, "ws://127.0.0.1:9/", &["-L", &spec]);
    assert_eq!(refused.exit_code(), 2);
    assert!(refused.stderr().contains("use wss://"), "{}", refused.stderr());
    let mut refused = websocket_client(&dir, "wss://127.0.0.1:9/", &["--insecure-plaintext", "-L", &spec]);
    assert_eq!(refused.exit_code(), 2);
    assert!(refused.stderr().contains("is TLS"), "{}", refused.stderr());

    // Plaintext WebSocket on loopback, both ends agreeing, works.
    let (_, _, token) = files(&dir);
    let allow = echo.to_string();
    let server = Process::start(
        &[
            "server",
            "--listen-ws",
            "127.0.0.1:0",
            "--token-file",
            &token,
            "--insecure-plaintext",
            "--allow",
            &allow,
        ],
        dir.join("server.log"),
    );
    let ws = server.line("listening for WebSocket on ");
    let client = websocket_client(
        &dir,
        &format!("ws://{ws}/plain"),
        &["--insecure-plaintext", "-L", &spec],
    );
    let got = echo_through(forwarded(&client)).await;
    assert_eq!(got.as_deref().ok(), Some(&b"hello"[..]), "{got:?}\n{}", client.stderr());
}
