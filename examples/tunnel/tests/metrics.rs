//! `--metrics`: both ends of the real binary serve the Prometheus text
//! format, scraped here by a real HTTP client (curl) and parsed.

mod common;

use std::process::Command;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_serve_prometheus_metrics_that_follow_the_traffic() {
    let dir = scratch("metrics");
    let fingerprint = keygen(&dir);
    let echo = echo_service().await;
    let allowed = echo.to_string();
    let (server, addr) = server(&dir, &["--allow", &allowed, "--metrics", "127.0.0.1:0"]);
    let server_metrics = server.line("metrics on ");
    let good = format!("0:{echo}");
    let refused = "0:127.0.0.1:9".to_string();
    let client = client(
        &dir,
        addr,
        &fingerprint,
        &["-L", &good, "-L", &refused, "--metrics", "127.0.0.1:0"],
    );
    let local = forwarded(&client);
    let refused_local = forwarded(&client);
    let client_metrics = client.line("metrics on ");

    let mut tcp = TcpStream::connect(local).await.unwrap();
    tcp.write_all(&[7u8; 1000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let (got, ended) = read_all(&mut tcp).await;
    assert!(ended.is_ok() && got.len() == 1000, "{ended:?}");
    if let Ok(mut tcp) = TcpStream::connect(refused_local).await {
        let _ = read_all(&mut tcp).await;
    }

    let url = server_metrics.clone();
    let server_samples = tokio::task::spawn_blocking(move || {
        scrape_until(&url, "hawser_tunnel_refusals_total{reason=\"not_allowed\"}", 1.0)
    })
    .await
    .unwrap();
    for (name, value) in [
        ("hawser_tunnel_sessions", 1.0),
        ("hawser_tunnel_connections_total", 1.0),
        ("hawser_tunnel_connections_open", 0.0),
        ("hawser_tunnel_bytes_to_targets_total", 1000.0),
        ("hawser_tunnel_bytes_from_targets_total", 1000.0),
        ("hawser_tunnel_refusals_total{reason=\"not_allowed\"}", 1.0),
        ("hawser_tunnel_refusals_total{reason=\"authentication\"}", 0.0),
    ] {
        assert_eq!(server_samples.get(name), Some(&value), "{name}: {server_samples:?}");
    }

    let url = client_metrics.clone();
    let client_samples =
        tokio::task::spawn_blocking(move || scrape_until(&url, "hawser_tunnel_connections_total", 1.0))
            .await
            .unwrap();
    for (name, value) in [
        ("hawser_tunnel_connections_total", 1.0),
        ("hawser_tunnel_bytes_sent_total", 1000.0),
        ("hawser_tunnel_bytes_received_total", 1000.0),
        ("hawser_tunnel_sessions_built_total", 1.0),
        ("hawser_tunnel_link_suspect", 0.0),
    ] {
        assert_eq!(client_samples.get(name), Some(&value), "{name}: {client_samples:?}");
    }
    assert!(client_samples.contains_key("hawser_tunnel_rtt_seconds"));

    // Anything but /metrics is not served.
    let other = server_metrics.replace("/metrics", "/other");
    let out = Command::new("curl")
        .args(["--silent", "--fail", &other])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
