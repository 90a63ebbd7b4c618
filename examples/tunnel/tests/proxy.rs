//! `--proxy` and `HTTPS_PROXY`: the client reaching the server through a
//! real HTTP proxy's CONNECT (tinyproxy, with Basic authentication), and
//! told clearly when the proxy wants other credentials, which never appear
//! in its log.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn client_through(dir: &Path, server: std::net::SocketAddr, fingerprint: &str, proxy_env: &str, spec: &str) -> Process {
    let (_, _, token) = files(dir);
    let mut command = Command::new(HAWSER);
    command
        .args(["client", "--connect", &server.to_string(), "--token-file", &token])
        .args(["--fingerprint", fingerprint, "-L", spec])
        .env("HTTPS_PROXY", proxy_env);
    Process::spawn(command, dir.join(format!("client-{}.log", unique())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reaches_the_server_through_an_http_proxy() {
    let dir = scratch("proxy");
    let fingerprint = keygen(&dir);
    let proxy = Tinyproxy::start(&dir);
    let echo = echo_service().await;
    let allow = echo.to_string();
    let (_server, addr) = server(&dir, &["--allow", &allow]);
    let spec = format!("0:{echo}");

    let url = format!("http://alice:s3cret@127.0.0.1:{}", proxy.port);
    let client = client(&dir, addr, &fingerprint, &["--proxy", &url, "-L", &spec]);
    let local = forwarded(&client);
    let mut tcp = TcpStream::connect(local).await.unwrap();
    tcp.write_all(b"through the proxy").await.unwrap();
    tcp.shutdown().await.unwrap();
    let (got, ended) = read_all(&mut tcp).await;
    assert!(ended.is_ok(), "{ended:?}\n{}", client.stderr());
    assert_eq!(got, b"through the proxy");
    let (links, log) = proxy.tunnels_to(addr);
    assert!(links >= 1, "the link went through the proxy:\n{log}");

    // The proxy dies mid-transfer and comes back: the client redials
    // through it and resumes, and the transfer completes intact.
    let mut proxy = proxy;
    pattern_through(local, 4 << 20, || proxy.restart()).await;
    assert!(client.stderr().contains("resumed"), "{}", client.stderr());
    let (links, log) = proxy.tunnels_to(addr);
    assert!(links >= 2, "the new link went through the restarted proxy too:\n{log}");

    // The same through HTTPS_PROXY, with a wrong password.
    let wrong = format!("http://alice:wr0ng@127.0.0.1:{}", proxy.port);
    let mut refused = client_through(&dir, addr, &fingerprint, &wrong, &spec);
    assert_eq!(refused.exit_code(), 4, "{}", refused.stderr());
    let stderr = refused.stderr();
    assert!(stderr.contains("wants other credentials"), "{stderr}");
    assert!(
        !stderr.contains("wr0ng") && !client.stderr().contains("s3cret"),
        "a password was logged"
    );
}
