//! Many more opens at once than the peer allows streams: each waits its turn
//! and all complete (the queue of waiting opens hands a freed place to one task
//! at a time, so no wake-up may be lost on the way).

use std::time::Duration;

use hawser_tokio::{Config, Listener, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_opens_beyond_max_streams_all_complete() {
    let server_config = Config {
        max_streams: 16,
        ..Config::default()
    };
    let listener = Listener::bind("127.0.0.1:0", server_config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (session, _) = listener.accept().await.unwrap();
        while let Some(stream) = session.accept().await {
            tokio::spawn(async move {
                let (mut from, mut to) = tokio::io::split(stream);
                tokio::io::copy(&mut from, &mut to).await?;
                to.shutdown().await
            });
        }
    });
    let client = Session::connect(addr, Config::default()).await.unwrap();
    // The server's hello carries its limit; before it, opens beyond the
    // default are refused (PROTOCOL.md 3.3).
    client.ping().unwrap();
    while !matches!(
        client.next_health_event().await,
        Some(hawser_tokio::HealthEvent::Pong { .. })
    ) {}

    let mut tasks = Vec::new();
    for index in 0..5_000u32 {
        let control = client.control();
        tasks.push(tokio::spawn(async move {
            let mut stream = control.open_stream().await?;
            stream.write_all(&index.to_be_bytes()).await?;
            stream.shutdown().await?;
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await?;
            assert_eq!(back, index.to_be_bytes());
            std::io::Result::Ok(())
        }));
    }
    let all = async {
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("every open got its turn");
    assert_eq!(client.stats().streams_opened, 5_000);
}
