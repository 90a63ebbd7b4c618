//! Carrying one TCP connection over one stream, both ways, with half-close
//! carried through and failures turned into resets, never into a clean end.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::codes;

/// The most bytes one read takes from the session's side: one frame's worth
/// at the session's default frame size.
const SPLICE_BUFFER: usize = 64 * 1024;
/// The most received chunks one write to the local TCP connection gathers.
const MAX_GATHER: usize = 8;
/// What a read from the local TCP connection starts with, and returns to
/// once reads come back small: an idle connection waits with this much.
const MIN_LOCAL_READ: usize = 16 * 1024;
/// What reads from the local TCP connection grow to while each one fills
/// its buffer: fewer, larger system calls for a bulk transfer. With 100
/// bulk connections 1 MiB took 14% less CPU per GiB than 256 KiB (the
/// client's peak resident memory grew from 27 to 51 MB); one connection
/// alone gained little.
const MAX_LOCAL_READ: usize = 1024 * 1024;

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
            let mut buf = BytesMut::new();
            let mut want = MIN_LOCAL_READ;
            loop {
                buf.reserve(want);
                let n = tcp_in.read_buf(&mut buf).await.map_err(Failed::Local)?;
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
                    buf.split().freeze()
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
            let mut chunks = Vec::with_capacity(MAX_GATHER);
            loop {
                let Some(first) = stream_in.read_chunk(SPLICE_BUFFER).await.map_err(Failed::Remote)? else {
                    tcp_out.shutdown().await.map_err(Failed::Local)?;
                    return Ok(());
                };
                chunks.push(first);
                // What else has arrived goes out in the same system call: a
                // frame cut by the link's reads arrives in pieces. The end of
                // the stream, if it came too, is read again (at once) by the
                // next turn.
                while chunks.len() < MAX_GATHER {
                    match stream_in.read_chunk(SPLICE_BUFFER).now_or_never() {
                        Some(Ok(Some(chunk))) => chunks.push(chunk),
                        Some(Err(err)) => return Err(Failed::Remote(err)),
                        Some(Ok(None)) | None => break,
                    }
                }
                let len: usize = chunks.iter().map(Bytes::len).sum();
                write_all_chunks(&mut tcp_out, &mut chunks)
                    .await
                    .map_err(Failed::Local)?;
                add(|c| &c.received, len as u64);
                to_tcp.fetch_add(len as u64, Ordering::Relaxed);
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

/// Writes all of `chunks` to `out`, as few system calls as the socket
/// allows; leaves `chunks` empty.
async fn write_all_chunks(out: &mut (impl tokio::io::AsyncWrite + Unpin), chunks: &mut Vec<Bytes>) -> io::Result<()> {
    let mut first = 0;
    loop {
        while chunks.get(first).is_some_and(Bytes::is_empty) {
            first += 1;
        }
        if first == chunks.len() {
            break;
        }
        let slices: smallvec::SmallVec<[io::IoSlice<'_>; MAX_GATHER]> =
            chunks[first..].iter().map(|chunk| io::IoSlice::new(chunk)).collect();
        let mut written = out.write_vectored(&slices).await?;
        drop(slices);
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let chunk = &mut chunks[first];
            let step = written.min(chunk.len());
            bytes::Buf::advance(chunk, step);
            written -= step;
            if chunk.is_empty() {
                first += 1;
            }
        }
    }
    chunks.clear();
    Ok(())
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

    #[tokio::test]
    async fn gathered_chunks_arrive_whole_and_in_order_through_short_writes() {
        let pieces: [&[u8]; 5] = [b"first ", b"", b"second, longer ", b"x", b"and the last one"];
        let expected: Vec<u8> = pieces.concat();
        let mut chunks: Vec<Bytes> = pieces.iter().map(|piece| Bytes::copy_from_slice(piece)).collect();
        // A pipe that takes at most 5 bytes at a time: every write is short.
        let (mut writer, mut reader) = tokio::io::duplex(5);
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.expect("reads to the end");
            got
        });
        write_all_chunks(&mut writer, &mut chunks)
            .await
            .expect("all of it is written");
        assert!(chunks.is_empty(), "the chunks are left empty");
        drop(writer);
        assert_eq!(reading.await.expect("the reader ran"), expected);
    }
}
