//! `-D`: the client's SOCKS5 proxy, driven by a real client (curl, with
//! `--socks5-hostname`, so the name travels to the server and is resolved
//! there) against a local HTTP server, allowed and refused by the server's
//! rules.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BODY: &str = "hello through socks";

/// An HTTP server that answers every request with `BODY`.
async fn http_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                    BODY.len()
                );
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

fn curl_through(socks: &str, url: &str) -> std::process::Output {
    Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--socks5-hostname",
            socks,
            url,
        ])
        .output()
        .expect("curl is installed (CI installs it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_allowed_targets_by_name_and_is_refused_the_rest() {
    let dir = scratch("socks");
    let fingerprint = keygen(&dir);
    let http = http_service().await;
    let allowed = format!("127.0.0.1:{}", http.port());
    let (server, addr) = server(&dir, &["--allow", &allowed]);
    let client = client(&dir, addr, &fingerprint, &["-D", "0"]);
    let socks = client.line("socks5 on ");

    let url = format!("http://localhost:{}/", http.port());
    let out = tokio::task::spawn_blocking({
        let socks = socks.clone();
        move || curl_through(&socks, &url)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", client.stderr());
    assert_eq!(String::from_utf8_lossy(&out.stdout), BODY);

    let refused = format!("http://localhost:{}/", free_port());
    let out = tokio::task::spawn_blocking(move || curl_through(&socks, &refused))
        .await
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let log = server.stderr();
    assert!(
        log.contains("not on the server's allow list for client default")
            && log.contains("client=default from=127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn a_socks_proxy_off_loopback_is_refused() {
    let dir = scratch("socks-bind");
    let fingerprint = keygen(&dir);
    let (_server, addr) = server(&dir, &["--allow", "127.0.0.1:9"]);
    let mut client = client(&dir, addr, &fingerprint, &["-D", "0.0.0.0:0"]);
    assert_eq!(client.exit_code(), 2, "{}", client.stderr());
    assert!(
        client.stderr().contains("loopback addresses only"),
        "{}",
        client.stderr()
    );
}

/// With `[socks]` in the client's config file the proxy asks for a username
/// and password (RFC 1929): curl with the right ones gets through, with a
/// wrong password or none it does not, and the refusal is logged without
/// the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_credentials_in_the_config_only_the_right_login_gets_through() {
    let dir = scratch("socks-login");
    let fingerprint = keygen(&dir);
    let http = http_service().await;
    let allowed = format!("127.0.0.1:{}", http.port());
    let (_server, addr) = server(&dir, &["--allow", &allowed]);
    write_private(&dir.join("socks.pass"), "correct horse\n");
    let config = dir.join("client.toml");
    std::fs::write(
        &config,
        format!(
            "connect = \"{addr}\"\ntoken_file = \"token\"\nfingerprint = \"{fingerprint}\"\ndynamic = [\"127.0.0.1:0\"]\n\n[socks]\nusername = \"alice\"\npassword_file = \"socks.pass\"\n"
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let client = Process::start(&["client", "--config", &config], dir.join("client.log"));
    let socks = client.line("socks5 on ");
    let url = format!("http://localhost:{}/", http.port());
    let through = |login: Option<&'static str>| {
        let proxy = match login {
            Some(login) => format!("socks5h://{login}@{socks}"),
            None => format!("socks5h://{socks}"),
        };
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args(["--silent", "--show-error", "--max-time", "20", "--proxy", &proxy, &url])
                .output()
                .expect("curl is installed (CI installs it)")
        })
    };
    let out = through(Some("alice:correct%20horse")).await.unwrap();
    assert!(out.status.success(), "{out:?}\n{}", client.stderr());
    assert_eq!(String::from_utf8_lossy(&out.stdout), BODY);
    for login in [Some("alice:hunter2"), None] {
        let out = through(login).await.unwrap();
        assert!(!out.status.success() && out.stdout.is_empty(), "{login:?}: {out:?}");
    }
    let log = logged(&client, "SOCKS client refused");
    assert!(!log.contains("correct horse") && !log.contains("hunter2"), "{log}");
}
