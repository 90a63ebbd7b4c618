//! A session's life as a program sees it: a server that has seen its clients
//! come and go holds nothing for them, and a session whose handles are all
//! dropped ends. The live-session count is process-wide, so these tests run one
//! at a time.

use std::sync::Mutex;
use std::time::Duration;

use hawser_tokio::{live_sessions, Config, Session};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Serves sessions the way the echo example does: a task per link that accepts
/// streams until the session ends.
async fn serve(listener: TcpListener, config: Config) {
    while let Ok((tcp, _)) = listener.accept().await {
        let session = Session::server(tcp, config.clone()).expect("valid config");
        tokio::spawn(async move { while session.accept().await.is_some() {} });
    }
}

/// Waits up to 5 s for the live-session count to fall to `expected`; returns
/// the count it saw last.
async fn sessions_fall_to(expected: usize) -> usize {
    for _ in 0..500 {
        if live_sessions() <= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live_sessions()
}

/// Runs `test` on a runtime of its own, one test at a time.
fn serially(test: impl std::future::Future<Output = ()>) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(test);
}

#[test]
fn connections_that_connect_and_close_leave_no_session_behind() {
    serially(connect_and_close());
}

async fn connect_and_close() {
    for config in [Config::yamux(), Config::default()] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, config));
        for _round in 0..3 {
            let mut links = Vec::new();
            for _ in 0..200 {
                links.push(TcpStream::connect(addr).await.unwrap());
            }
            // Let the server make its sessions before the links go.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(live_sessions() > 0, "the server made no sessions");
            drop(links);
            assert_eq!(sessions_fall_to(0).await, 0, "sessions outlived their closed links");
        }
        server.abort();
    }
}

#[test]
fn dropping_every_handle_ends_the_session_after_its_streams_drain() {
    serially(drop_every_handle());
}

async fn drop_every_handle() {
    for config in [Config::yamux(), Config::default()] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let server = Session::server(accepted, config.clone()).unwrap();
        let client = Session::client(tcp, config).unwrap();

        // The last handles to go are a control handle and a stream with data
        // still to deliver: the data arrives, then the session ends.
        let control = client.control();
        drop(client);
        let mut stream = control.open_stream().await.unwrap();
        stream.write_all(&[7u8; 100_000]).await.unwrap();
        drop(control);
        drop(stream);

        let mut inbound = tokio::time::timeout(Duration::from_secs(10), server.accept())
            .await
            .expect("the stream arrives")
            .expect("the session is open");
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut inbound, &mut got)
            .await
            .unwrap();
        assert_eq!(got, vec![7u8; 100_000]);
        let next = tokio::time::timeout(Duration::from_secs(10), server.accept()).await;
        assert!(matches!(next, Ok(None)), "the server saw the client go away");
        drop((inbound, server));
        assert_eq!(sessions_fall_to(0).await, 0, "both ends let go of their sessions");
    }
}

#[test]
fn sessions_that_moved_data_and_went_quiet_give_their_slabs_back() {
    serially(quiet_after_traffic());
}

/// Waits up to 5 s for the process to hold no read or write slab; returns
/// how many it saw last.
async fn slabs_fall_to_zero() -> usize {
    for _ in 0..500 {
        if hawser_driver::slab::slabs_held() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hawser_driver::slab::slabs_held()
}

async fn quiet_after_traffic() {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let server = Session::server(accepted, Config::default()).unwrap();
    let client = Session::client(tcp, Config::default()).unwrap();
    let echo = tokio::spawn(async move {
        while let Some(mut stream) = server.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = tokio::io::split(&mut stream);
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
                let _ = writer.shutdown().await;
            });
        }
    });
    // Four streams echo 1 MiB each: both ends read into slabs and copy the
    // streams' writes into slabs.
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    let mut transfers = Vec::new();
    for _ in 0..4 {
        let mut stream = client.control().open_stream().await.unwrap();
        let payload = payload.clone();
        transfers.push(tokio::spawn(async move {
            let (mut reader, mut writer) = tokio::io::split(&mut stream);
            let writing = async {
                writer.write_all(&payload).await?;
                writer.shutdown().await
            };
            let mut back = Vec::new();
            let (written, read) = tokio::join!(writing, reader.read_to_end(&mut back));
            written.and(read).map(|_| back == payload)
        }));
    }
    for transfer in transfers {
        assert!(transfer.await.unwrap().unwrap(), "an echo came back altered");
    }
    assert!(live_sessions() >= 2, "both ends are still open");
    // Quiet for a second, each end hands its slabs back to the waiting slabs; the
    // sessions stay open and usable.
    assert_eq!(slabs_fall_to_zero().await, 0, "quiet sessions kept their slabs");
    // With everything quiet, only a few slabs wait for the next burst.
    let waiting = hawser_driver::slab::slabs_waiting();
    assert!(waiting <= 4, "{waiting} slabs wait in a quiet process");
    let mut stream = client.control().open_stream().await.unwrap();
    stream.write_all(&payload).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert!(back == payload, "the session works after its buffers went back");
    drop((stream, client));
    echo.await.unwrap();
    assert_eq!(sessions_fall_to(0).await, 0, "both ends let go of their sessions");
}

#[cfg(target_os = "linux")]
#[test]
fn a_session_stuck_on_a_full_socket_does_not_spin() {
    serially(stuck_on_a_full_socket());
}

/// This process's CPU time (user and system) in clock ticks, from /proc.
#[cfg(target_os = "linux")]
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// A peer that accepts the link and never reads it: the client's frames fill
/// the socket and wait in the driver's queue. The link is quiet for good, so
/// the driver looks once a second whether it can give buffers back; it must
/// not look again at once on every turn, which spun a core.
#[cfg(target_os = "linux")]
async fn stuck_on_a_full_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tcp);
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = Session::client(tcp, Config::yamux()).unwrap();
    // 64 streams x the 256 KiB initial window: more than loopback's socket
    // buffers hold, so frames stay queued.
    let mut writers = Vec::new();
    for _ in 0..64 {
        let mut stream = client.control().open_stream().await.unwrap();
        writers.push(tokio::spawn(async move {
            let _ = stream.write_all(&[9u8; 256 * 1024]).await;
            stream
        }));
    }
    // Past the quiet second, and then some.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ticks_before = cpu_ticks();
    let measured = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = (cpu_ticks() - ticks_before) as f64 / 100.0;
    let elapsed = measured.elapsed().as_secs_f64();
    assert!(
        used < elapsed / 4.0,
        "the process used {used:.2} s of CPU in {elapsed:.2} s with nothing to do but wait"
    );
    for writer in writers {
        writer.abort();
    }
    drop(client);
    silent.abort();
}
