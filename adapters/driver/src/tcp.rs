//! How the helpers tune the TCP sockets they dial and accept.

use std::io;

/// The most unsent bytes the kernel keeps queued on a tuned socket (Linux
/// and Android): the rest of a batch waits in the session, where pings,
/// acknowledgements and window updates go ahead of data. Without a bound the
/// kernel's queue can grow to its send buffer's limit (4 MiB by default), and
/// a ping written behind it waits for all of it.
///
/// Why 2 MiB, measured with `hawser-bench --workload wan` on a 100 ms,
/// 500 Mbit/s emulated path (`HAWSER_BENCH_TCP` picks the bound): one stream
/// moved 177 Mbit/s under a 128 KiB bound, 191 under 512 KiB, 225 under
/// 2 MiB and 232 with no bound, and eight streams 195, 224, 277 and 282. A
/// small bound leaves the kernel a few milliseconds of data to send, and a
/// writer that is late by more than that idles a long path. The round trips
/// of a ninth stream under that load did not get shorter with a smaller bound
/// (p99 207, 376, 206 and 176 ms), nor on loopback (`rr-under-load`).
pub const NOTSENT_LOWAT: u32 = 2 * 1024 * 1024;

/// Tunes a TCP socket for a session: `TCP_NODELAY` (frames are already
/// batched; Nagle would hold back small ones for a delayed ACK), and on
/// Linux and Android `TCP_NOTSENT_LOWAT` of [`NOTSENT_LOWAT`]. The dials and
/// accepts of every adapter's helpers call it; call it on a socket you dial
/// yourself for a session.
#[cfg(unix)]
pub fn tune_tcp(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    socket.set_tcp_nodelay(true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_notsent_lowat(NOTSENT_LOWAT)?;
    Ok(())
}

/// Tunes a TCP socket for a session: `TCP_NODELAY` (frames are already
/// batched; Nagle would hold back small ones for a delayed ACK).
#[cfg(windows)]
pub fn tune_tcp(socket: &impl std::os::windows::io::AsSocket) -> io::Result<()> {
    socket2::SockRef::from(socket).set_tcp_nodelay(true)
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    #[test]
    fn a_tuned_socket_has_nodelay_and_a_small_unsent_queue() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let dialled = std::net::TcpStream::connect(listener.local_addr().expect("bound")).expect("dial");
        let before = socket2::SockRef::from(&dialled)
            .tcp_notsent_lowat()
            .expect("readable option");
        tune_tcp(&dialled).expect("tunable");
        let socket = socket2::SockRef::from(&dialled);
        assert!(socket.tcp_nodelay().expect("readable option"));
        assert_eq!(socket.tcp_notsent_lowat().expect("readable option"), NOTSENT_LOWAT);
        assert_ne!(before, NOTSENT_LOWAT, "the kernel's default is no bound");
    }
}
