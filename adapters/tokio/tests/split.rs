//! Owned halves: one task reads while another writes, 64 MiB each way through
//! an echo whose server also runs on owned halves; dropping the write half
//! finishes the stream while the read half keeps reading; a reset through the
//! write half fails the read half.

use std::time::Duration;

use hawser_conformance::interop::link::Pattern;
use hawser_tokio::{Config, Listener, ResetCode, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EACH_WAY: u64 = 64 * 1024 * 1024;

async fn pair() -> (Session, Session) {
    let listener = Listener::bind("127.0.0.1:0", Config::default()).await.unwrap();
    let client = Session::connect(listener.local_addr().unwrap(), Config::default())
        .await
        .unwrap();
    let (server, _peer) = listener.accept().await.unwrap();
    (client, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_in_two_tasks_carry_64_mib_each_way() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let (client, server) = pair().await;
        tokio::spawn(async move {
            while let Some(stream) = server.accept().await {
                let (mut from, mut to) = stream.into_split();
                tokio::spawn(async move {
                    tokio::io::copy(&mut from, &mut to).await.unwrap();
                    to.shutdown().await.unwrap();
                });
            }
        });
        let (mut reader, mut writer) = client.open_stream().await.unwrap().into_split();
        let writing = tokio::spawn(async move {
            let mut pattern = Pattern::new(11);
            while pattern.position() < EACH_WAY {
                writer.write_all(&pattern.take(64 * 1024)).await.unwrap();
            }
            writer.shutdown().await.unwrap();
        });
        let reading = tokio::spawn(async move {
            let mut check = Pattern::new(11);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    return check.position();
                }
                check.check(&buf[..n]).unwrap();
            }
        });
        writing.await.unwrap();
        assert_eq!(reading.await.unwrap(), EACH_WAY, "every byte came back, in order");
    })
    .await
    .expect("the transfer finished in time");
}

#[tokio::test]
async fn dropping_the_write_half_finishes_and_the_read_half_reads_on() {
    let (client, server) = pair().await;
    let (mut reader, mut writer) = client.open_stream().await.unwrap().into_split();
    writer.write_all(b"question").await.unwrap();
    drop(writer);
    let mut inbound = server.accept().await.unwrap();
    let mut asked = Vec::new();
    inbound.read_to_end(&mut asked).await.unwrap();
    assert_eq!(asked, b"question", "the peer read the data, then end-of-stream");
    inbound.write_all(b"answer").await.unwrap();
    inbound.shutdown().await.unwrap();
    let mut answer = Vec::new();
    reader.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"answer");
}

#[tokio::test]
async fn a_reset_through_the_write_half_fails_the_read_half() {
    let (client, server) = pair().await;
    let (mut reader, mut writer) = client.open_stream().await.unwrap().into_split();
    writer.write_all(b"x").await.unwrap();
    let _inbound = server.accept().await.unwrap();
    let id = writer.id();
    assert_eq!(reader.id(), id);
    writer.reset(ResetCode::CANCEL);
    let err = reader.read(&mut [0u8; 8]).await.unwrap_err();
    assert_eq!(hawser_tokio::reset_code(&err), Some(ResetCode::CANCEL), "{err}");
}

/// `write_bytes` and `read_chunk`, the forwarding pair that hands buffers
/// over instead of copying them: an echo made of them carries 16 MiB each
/// way intact and in order (one `write_bytes` of 4 MiB, more than the send
/// buffers hold, goes whole), and the end of the stream is `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_handed_over_whole_arrive_in_order() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let (client, server) = pair().await;
        tokio::spawn(async move {
            while let Some(stream) = server.accept().await {
                let (mut from, mut to) = stream.into_split();
                tokio::spawn(async move {
                    while let Some(chunk) = from.read_chunk(64 * 1024).await.unwrap() {
                        assert!(!chunk.is_empty() && chunk.len() <= 64 * 1024);
                        to.write_bytes(chunk).await.unwrap();
                    }
                    to.shutdown().await.unwrap();
                });
            }
        });
        let mut stream = client.open_stream().await.unwrap();
        let total = 16u64 << 20;
        let mut pattern = Pattern::new(5);
        stream.write_bytes(bytes::Bytes::new()).await.unwrap();
        let sent = bytes::Bytes::from(pattern.take(4 << 20));
        let (mut reader, mut writer) = stream.into_split();
        let writing = tokio::spawn(async move {
            writer.write_bytes(sent).await.unwrap();
            while pattern.position() < total {
                writer.write_bytes(pattern.take(64 * 1024).into()).await.unwrap();
            }
            writer.shutdown().await.unwrap();
        });
        let mut check = Pattern::new(5);
        while let Some(chunk) = reader.read_chunk(1 << 20).await.unwrap() {
            check.check(&chunk).unwrap();
        }
        writing.await.unwrap();
        assert_eq!(check.position(), total, "every byte came back, in order");
        assert_eq!(reader.read_chunk(1).await.unwrap(), None, "the end stays the end");
    })
    .await
    .expect("the transfer finished in time");
}
