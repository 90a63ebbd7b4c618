//! Owned halves on async-std: one task reads while another writes, 64 MiB
//! each way through an echo whose server also runs on owned halves.
#![cfg(feature = "async-std")]

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use hawser_async_std::{Config, Listener, Session};
use hawser_conformance::interop::link::Pattern;

const EACH_WAY: u64 = 64 * 1024 * 1024;

async fn pair() -> (Session, Session) {
    let listener = Listener::bind("127.0.0.1:0", Config::default()).await.unwrap();
    let client = Session::connect(listener.local_addr().unwrap(), Config::default())
        .await
        .unwrap();
    let (server, _peer) = listener.accept().await.unwrap();
    (client, server)
}

#[async_std::test]
async fn halves_in_two_tasks_carry_64_mib_each_way() {
    async_std::future::timeout(Duration::from_secs(120), async {
        let (client, server) = pair().await;
        async_std::task::spawn(async move {
            while let Some(stream) = server.accept().await {
                let (from, mut to) = stream.into_split();
                async_std::task::spawn(async move {
                    futures::io::copy(from, &mut to).await.unwrap();
                    to.close().await.unwrap();
                });
            }
        });
        let (mut reader, mut writer) = client.open_stream().await.unwrap().into_split();
        let writing = async_std::task::spawn(async move {
            let mut pattern = Pattern::new(12);
            while pattern.position() < EACH_WAY {
                writer.write_all(&pattern.take(64 * 1024)).await.unwrap();
            }
            writer.close().await.unwrap();
        });
        let reading = async_std::task::spawn(async move {
            let mut check = Pattern::new(12);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    return check.position();
                }
                check.check(&buf[..n]).unwrap();
            }
        });
        writing.await;
        assert_eq!(reading.await, EACH_WAY, "every byte came back, in order");
    })
    .await
    .expect("the transfer finished in time");
}

/// `write_bytes` and `read_chunk` on async-std: an echo made of them carries
/// 8 MiB intact and in order, and the end of the stream is `None`.
#[async_std::test]
async fn chunks_handed_over_whole_arrive_in_order() {
    async_std::future::timeout(Duration::from_secs(120), async {
        let (client, server) = pair().await;
        async_std::task::spawn(async move {
            while let Some(stream) = server.accept().await {
                let (mut from, mut to) = stream.into_split();
                async_std::task::spawn(async move {
                    while let Some(chunk) = from.read_chunk(64 * 1024).await.unwrap() {
                        to.write_bytes(chunk).await.unwrap();
                    }
                    to.close().await.unwrap();
                });
            }
        });
        let (mut reader, mut writer) = client.open_stream().await.unwrap().into_split();
        let total = 8u64 << 20;
        let writing = async_std::task::spawn(async move {
            let mut pattern = Pattern::new(9);
            while pattern.position() < total {
                writer.write_bytes(pattern.take(256 * 1024).into()).await.unwrap();
            }
            writer.close().await.unwrap();
        });
        let mut check = Pattern::new(9);
        while let Some(chunk) = reader.read_chunk(64 * 1024).await.unwrap() {
            check.check(&chunk).unwrap();
        }
        writing.await;
        assert_eq!(check.position(), total, "every byte came back, in order");
    })
    .await
    .expect("the transfer finished in time");
}
