//! Carrying one TCP connection over one stream, both ways, with half-close
//! carried through and failures turned into resets, never into a clean end.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use bytes::{BufMut, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::codes;

/// The most bytes one read takes from the session's side: one frame's worth
/// at the session's default frame size.
const SPLICE_BUFFER: usize = 64 * 1024;
/// What a read from the local TCP connection starts with, and returns to
/// once reads come back small: an idle connection waits with this much.
const MIN_LOCAL_READ: usize = 16 * 1024;
/// What reads from the local TCP connection grow to while each one fills
/// its buffer: fewer, larger system calls for a bulk transfer.
const MAX_LOCAL_READ: usize = 256 * 1024;

/// Counters for the status line.
#[derive(Default, Debug)]
pub struct Counters {
    /// Forwarded connections open now.
    pub open: AtomicU64,
    /// Forwarded connections, in all.
    pub total: AtomicU64,
    /// Bytes from local connections into the tunnel.
    pub sent: AtomicU64,
    /// Bytes from the tunnel out to local connections.
    pub received: AtomicU64,
    /// Connections that ended in a reset (either side failed).
    pub reset: AtomicU64,
}

impl Counters {
    /// The metrics both ends report from these counters: connections open,
    /// in all, and ended in a reset. (Bytes are named for each end's side.)
    pub fn families(&self) -> Vec<crate::metrics::Family> {
        use crate::metrics::{Family, Kind};
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        vec![
            Family::single(
                "hawser_tunnel_connections_open",
                "Forwarded connections open now.",
                Kind::Gauge,
                count(&self.open),
            ),
            Family::single(
                "hawser_tunnel_connections_total",
                "Forwarded connections, in all.",
                Kind::Counter,
                count(&self.total),
            ),
            Family::single(
                "hawser_tunnel_connections_reset_total",
                "Forwarded connections that ended in a reset.",
                Kind::Counter,
                count(&self.reset),
            ),
        ]
    }
}

/// How a forwarded connection ended.
#[derive(Debug)]
pub enum End {
    /// Both directions finished.
    Clean,
    /// The local TCP connection failed; the stream was reset.
    Local(io::Error),
    /// The stream failed (reset by the other side, or the session ended); the
    /// local connection was reset.
    Remote(io::Error),
}

enum Failed {
    Local(io::Error),
    Remote(io::Error),
}

/// Read buffers of [`MAX_LOCAL_READ`] bytes that the session has let go of
/// (sent, and acknowledged where it keeps bytes for a resume), kept for the
/// next reads of any connection: a bulk transfer then reuses the same few
/// buffers rather than having the allocator give memory back to the system
/// and fault it in again at every read.
struct Spares(Mutex<Vec<Vec<u8>>>);

/// The process's spare read buffers.
static SPARES: Spares = Spares(Mutex::new(Vec::new()));

impl Spares {
    /// How many are kept (4 MiB, a full replay buffer's worth).
    const MAX: usize = 16;

    /// An empty buffer for a read of `size` bytes: a spare when there is one.
    fn take(&self, size: usize) -> Vec<u8> {
        if size == MAX_LOCAL_READ {
            if let Some(buffer) = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop() {
                return buffer;
            }
        }
        Vec::with_capacity(size)
    }

    /// Keeps `buffer` as a spare if it is a large one and there is room.
    fn give_back(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() != MAX_LOCAL_READ {
            return;
        }
        buffer.clear();
        let mut spares = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if spares.len() < Self::MAX {
            spares.push(buffer);
        }
    }
}

/// A read's bytes on their way through the session; its buffer becomes a
/// spare when the last reference goes.
struct Pooled {
    buffer: Vec<u8>,
    spares: &'static Spares,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.spares.give_back(std::mem::take(&mut self.buffer));
    }
}

/// Resets a TCP connection (RST, not FIN): its reader must not mistake a
/// failure for the end of the data.
pub fn reset_tcp(tcp: TcpStream) {
    arm_reset(&tcp);
    drop(tcp);
}

/// Makes closing `tcp` reset it (`SO_LINGER` 0), however it gets closed:
/// dropped on an error path, or closed by the kernel because the process
/// ended (a signal, a drain that ran out, a fatal error). Every forwarded
/// connection is armed from the moment it is accepted or dialled until it
/// ends cleanly, so a connection cut for any reason is never seen as a
/// complete transfer.
pub fn arm_reset(tcp: &TcpStream) {
    if let Err(err) = tcp.set_zero_linger() {
        tracing::debug!(%err, "cannot set SO_LINGER to reset the connection");
    }
}

/// Undoes [`arm_reset`] once both directions have finished, so that the
/// close is an orderly one and data still in the send buffer is delivered.
fn disarm_reset(tcp: &TcpStream) {
    if let Err(err) = socket2::SockRef::from(tcp).set_linger(None) {
        tracing::debug!(%err, "cannot clear SO_LINGER");
    }
}

/// Copies `tcp` into `stream` and `stream` into `tcp` until both directions
/// have finished. An end of file in one direction is passed on as a half-close;
/// a failure of either side resets the other.
/// Each of `counters` counts the connection (the server's totals and its
/// client's, say).
pub async fn splice(tcp: TcpStream, stream: hawser_tokio::Stream, counters: &[&Counters]) -> End {
    splice_counted(tcp, stream, counters).await.0
}

/// What one forwarded connection moved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Transfer {
    /// Bytes from the TCP connection into the stream.
    pub from_tcp: u64,
    /// Bytes from the stream out to the TCP connection.
    pub to_tcp: u64,
}

/// [`splice`], also saying how many bytes went each way (for the access log).
pub async fn splice_counted(
    mut tcp: TcpStream,
    stream: hawser_tokio::Stream,
    counters: &[&Counters],
) -> (End, Transfer) {
    let add = |counter: fn(&Counters) -> &AtomicU64, n: u64| {
        for counters in counters {
            counter(counters).fetch_add(n, Ordering::Relaxed);
        }
    };
    arm_reset(&tcp);
    let from_tcp = AtomicU64::new(0);
    let to_tcp = AtomicU64::new(0);
    add(|c| &c.open, 1);
    add(|c| &c.total, 1);
    // Chunks pass through whole: what arrives from TCP is handed to the
    // session as it is, and what the session received goes to TCP from its
    // own buffer, a copy less each way than reading into a buffer of ours.
    let (mut stream_in, mut stream_out) = stream.into_split();
    let result = {
        let (mut tcp_in, mut tcp_out) = tcp.split();
        let up = async {
            let mut buf = Vec::new();
            let mut want = MIN_LOCAL_READ;
            loop {
                // Reads that became small give a large buffer back, so that
                // an idle connection waits with a small one.
                if buf.capacity() < want || buf.capacity() > 4 * want {
                    SPARES.give_back(std::mem::replace(&mut buf, SPARES.take(want)));
                }
                let n = tcp_in
                    .read_buf(&mut (&mut buf).limit(want))
                    .await
                    .map_err(Failed::Local)?;
                if n == 0 {
                    stream_out.shutdown().await.map_err(Failed::Remote)?;
                    return Ok(());
                }
                let read_size = want;
                want = if n >= want {
                    (want * 2).min(MAX_LOCAL_READ)
                } else if n < want / 4 {
                    (want / 2).max(MIN_LOCAL_READ)
                } else {
                    want
                };
                // A small read is copied out, so that a chunk waiting in the
                // send buffers never pins a buffer many times its size.
                let chunk = if n >= read_size / 2 {
                    Bytes::from_owner(Pooled {
                        buffer: std::mem::take(&mut buf),
                        spares: &SPARES,
                    })
                } else {
                    let chunk = Bytes::copy_from_slice(&buf);
                    buf.clear();
                    chunk
                };
                stream_out.write_bytes(chunk).await.map_err(Failed::Remote)?;
                add(|c| &c.sent, n as u64);
                from_tcp.fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        let down = async {
            loop {
                let Some(chunk) = stream_in.read_chunk(SPLICE_BUFFER).await.map_err(Failed::Remote)? else {
                    tcp_out.shutdown().await.map_err(Failed::Local)?;
                    return Ok(());
                };
                tcp_out.write_all(&chunk).await.map_err(Failed::Local)?;
                add(|c| &c.received, chunk.len() as u64);
                to_tcp.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        };
        tokio::try_join!(up, down)
    };
    for counters in counters {
        counters.open.fetch_sub(1, Ordering::Relaxed);
    }
    let transfer = Transfer {
        from_tcp: from_tcp.into_inner(),
        to_tcp: to_tcp.into_inner(),
    };
    let end = match result {
        Ok(_) => {
            disarm_reset(&tcp);
            End::Clean
        }
        Err(Failed::Local(err)) => {
            add(|c| &c.reset, 1);
            stream_out.reset(codes::CONNECTION_FAILED);
            End::Local(err)
        }
        Err(Failed::Remote(err)) => {
            add(|c| &c.reset, 1);
            reset_tcp(tcp);
            End::Remote(err)
        }
    };
    (end, transfer)
}

/// Describes a stream error for a log line: a reset's code and what it means.
pub fn describe(err: &io::Error) -> String {
    match crate::wire::reset_of(err) {
        Some(code) => format!("reset with code {:#x} ({})", code.0, codes::describe(code)),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spares() -> &'static Spares {
        Box::leak(Box::new(Spares(Mutex::new(Vec::new()))))
    }

    #[test]
    fn a_chunk_the_session_lets_go_of_lends_its_buffer_to_a_later_read() {
        let spares = spares();
        let mut buffer = spares.take(MAX_LOCAL_READ);
        buffer.extend_from_slice(b"forwarded bytes");
        let at = buffer.as_ptr();
        let chunk = Bytes::from_owner(Pooled { buffer, spares });
        let held = chunk.slice(10..);
        drop(chunk);
        // A slice still holds the bytes: the buffer is not free yet.
        let fresh = spares.take(MAX_LOCAL_READ);
        assert_ne!(fresh.as_ptr(), at);
        assert_eq!(&held[..], b"bytes");
        drop(held);
        let reused = spares.take(MAX_LOCAL_READ);
        assert_eq!(reused.as_ptr(), at, "the released buffer is the next one taken");
        assert!(reused.is_empty());
        assert_eq!(reused.capacity(), MAX_LOCAL_READ);
    }

    #[test]
    fn only_large_buffers_are_kept_and_only_so_many() {
        let spares = spares();
        spares.give_back(Vec::with_capacity(MIN_LOCAL_READ));
        for _ in 0..Spares::MAX + 3 {
            spares.give_back(Vec::with_capacity(MAX_LOCAL_READ));
        }
        let kept = spares.0.lock().expect("no test panics while holding it");
        assert_eq!(kept.len(), Spares::MAX);
        assert!(kept.iter().all(|buffer| buffer.capacity() == MAX_LOCAL_READ));
    }
}
