//! The per-stream handle: read, write, finish, reset.

use bytes::Bytes;

use super::{Phase, Session};
use crate::error::{ClosedError, FinishError, ReadError, ResetCode, WriteError};
use crate::stream::{StreamId, StreamState};

/// Operations on one stream; it borrows the session, so get a new one from
/// [`Session::stream`] for each burst of work.
pub struct Stream<'a> {
    session: &'a mut Session,
    id: StreamId,
}

/// How an operation found the stream.
enum Lookup<'s> {
    Live(&'s mut StreamState),
    /// Released when its reset was delivered as an event.
    Reset(ResetCode),
    Unknown,
    SessionClosed,
}

impl<'a> Stream<'a> {
    pub(super) fn new(session: &'a mut Session, id: StreamId) -> Self {
        Stream { session, id }
    }

    fn lookup(&mut self) -> Lookup<'_> {
        if self.session.phase == Phase::Closed {
            return Lookup::SessionClosed;
        }
        let id = self.id.0;
        if !self.session.streams.contains_key(&id) {
            return match self.session.tombstone(id) {
                Some(code) => Lookup::Reset(code),
                None => Lookup::Unknown,
            };
        }
        match self.session.streams.get_mut(&id) {
            // Inbound streams belong to the application only once accepted.
            Some(stream) if stream.accepted => Lookup::Live(stream),
            _ => Lookup::Unknown,
        }
    }

    /// The stream's id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Reads up to `max` bytes (at least one) as a zero-copy slice of what arrived.
    ///
    /// `Ok(None)` is the end of the stream: the peer finished it and every byte has
    /// been read. `Err(ReadError::Blocked)` means nothing is buffered yet; an
    /// [`Event::Readable`](crate::Event::Readable) follows when there is.
    pub fn read(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        let id = self.id.0;
        let stream = match self.lookup() {
            Lookup::Live(stream) => stream,
            Lookup::Reset(code) => return Err(ReadError::Reset(code)),
            Lookup::Unknown => return Err(ReadError::UnknownStream),
            Lookup::SessionClosed => return self.read_after_close(max),
        };
        if let Some(code) = stream.reset {
            stream.reset_observed = true;
            self.session.maybe_release(id);
            return Err(ReadError::Reset(code));
        }
        let max = max.max(1);
        if let Some(chunk) = stream.recv_buf.pop(max) {
            stream.flow.on_consumed(chunk.len());
            let update_due = stream.flow.update_due() && !stream.fin_received;
            if update_due {
                self.session.queue_control(id);
            }
            return Ok(Some(chunk));
        }
        if stream.fin_received {
            stream.eof_read = true;
            self.session.maybe_release(id);
            return Ok(None);
        }
        stream.want_readable = true;
        Err(ReadError::Blocked)
    }

    /// After the session ended, what had already arrived can still be read; then
    /// the stream ends (if the peer had finished it) or reports the closed session.
    fn read_after_close(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        let streams = &mut self.session.streams;
        let Some(stream) = streams.get_mut(&self.id.0) else {
            return Err(ReadError::SessionClosed);
        };
        if let Some(chunk) = stream.recv_buf.pop(max.max(1)) {
            return Ok(Some(chunk));
        }
        let finished = stream.fin_received;
        let window = u64::from(stream.flow.window());
        streams.remove(&self.id.0);
        self.session.window_total -= window;
        if finished {
            Ok(None)
        } else {
            Err(ReadError::SessionClosed)
        }
    }

    /// Reads into `buf`, copying; returns the number of bytes read, 0 at the end of
    /// the stream (or when `buf` is empty).
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.read(buf.len())? {
            Some(chunk) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                Ok(chunk.len())
            }
            None => Ok(0),
        }
    }

    /// Queues as much of `data` as the send buffers allow, without copying, and
    /// returns how much that was. `Err(WriteError::Blocked)` means none fit; an
    /// [`Event::Writable`](crate::Event::Writable) follows when some will.
    pub fn write(&mut self, data: Bytes) -> Result<usize, WriteError> {
        let id = self.id.0;
        let stream_limit = self.session.config.stream_send_buffer;
        let session_room = self
            .session
            .config
            .session_send_buffer
            .saturating_sub(self.session.send_buffered_total);
        let sharing = self.session.send_sharing();
        let stream = match self.lookup() {
            Lookup::Live(stream) => stream,
            Lookup::Reset(code) => return Err(WriteError::Reset(code)),
            Lookup::Unknown => return Err(WriteError::UnknownStream),
            Lookup::SessionClosed => return Err(WriteError::SessionClosed),
        };
        if let Some(code) = stream.reset {
            stream.reset_observed = true;
            self.session.maybe_release(id);
            return Err(WriteError::Reset(code));
        }
        if stream.fin_queued {
            return Err(WriteError::Finished);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let stream_room = stream_limit.saturating_sub(stream.send_buffered);
        let counted = stream.waiting_round == Some(sharing.round);
        let over_share = sharing.over_share(stream);
        let room = if over_share { 0 } else { stream_room.min(session_room) };
        if room == 0 {
            stream.want_writable = true;
            if session_room == 0 || over_share {
                stream.waiting_round = Some(sharing.round);
                let listed = core::mem::replace(&mut stream.in_write_blocked, true);
                if !counted {
                    self.session.write_waiting += 1;
                }
                if !listed {
                    self.session.write_blocked.push(id);
                }
            }
            return Err(WriteError::Blocked);
        }
        stream.waiting_round = None;
        let take = room.min(data.len());
        let chunk = if take == data.len() { data } else { data.slice(..take) };
        stream.send_buf.push_back(chunk);
        stream.send_buffered += take;
        self.session.send_buffered_total += take;
        if counted {
            self.session.write_waiting = self.session.write_waiting.saturating_sub(1);
        }
        self.session.queue_send(id);
        Ok(take)
    }

    /// [`write`](Self::write) for a borrowed slice; copies what fits.
    pub fn write_slice(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        let room = self.writable_bytes();
        let take = data.len().min(room.max(1));
        self.write(Bytes::copy_from_slice(&data[..take]))
    }

    /// How many bytes a write would accept now.
    pub fn writable_bytes(&self) -> usize {
        let Some(stream) = self.session.streams.get(&self.id.0) else {
            return 0;
        };
        if self.session.send_sharing().over_share(stream) {
            return 0;
        }
        let session_room = self
            .session
            .config
            .session_send_buffer
            .saturating_sub(self.session.send_buffered_total);
        self.session
            .config
            .stream_send_buffer
            .saturating_sub(stream.send_buffered)
            .min(session_room)
    }

    /// Finishes this side of the stream: the FIN follows the last written byte.
    pub fn finish(&mut self) -> Result<(), FinishError> {
        let id = self.id.0;
        let stream = match self.lookup() {
            Lookup::Live(stream) => stream,
            Lookup::Reset(code) => return Err(FinishError::Reset(code)),
            Lookup::Unknown => return Err(FinishError::UnknownStream),
            Lookup::SessionClosed => return Err(FinishError::SessionClosed),
        };
        if let Some(code) = stream.reset {
            stream.reset_observed = true;
            self.session.maybe_release(id);
            return Err(FinishError::Reset(code));
        }
        if stream.fin_queued {
            return Err(FinishError::Finished);
        }
        stream.fin_queued = true;
        self.session.queue_send(id);
        Ok(())
    }

    /// Resets the stream in both directions with `code` (carried on the wire in the
    /// native profile only). Buffered data is dropped. Resetting a stream that was
    /// already reset just releases it.
    pub fn reset(&mut self, code: ResetCode) -> Result<(), ClosedError> {
        match self.lookup() {
            Lookup::Live(_) => {}
            // Already reset and released: nothing more to do.
            Lookup::Reset(_) => return Ok(()),
            Lookup::Unknown => return Err(ClosedError::UnknownStream),
            Lookup::SessionClosed => return Err(ClosedError::SessionClosed),
        }
        self.session.reset_stream(self.id.0, code, true);
        Ok(())
    }

    /// [`reset`](Self::reset) with a reason the peer can read (native profile;
    /// up to [`MAX_REASON`](crate::frame::MAX_REASON) bytes, a longer one is cut
    /// at a character boundary; the yamux profile sends neither code nor reason).
    pub fn reset_with_reason(&mut self, code: ResetCode, reason: &str) -> Result<(), ClosedError> {
        if let Lookup::Live(stream) = self.lookup() {
            if stream.reset.is_none() {
                stream.reason = super::fit_reason(reason);
            }
        }
        self.reset(code)
    }

    /// How many more bytes the peer lets this side send before a window update.
    pub fn send_window(&self) -> u64 {
        self.session.streams.get(&self.id.0).map_or(0, |s| s.send_window)
    }

    /// Received bytes waiting to be read.
    pub fn buffered_receive(&self) -> u64 {
        self.session.streams.get(&self.id.0).map_or(0, |s| s.flow.buffered())
    }

    /// Written bytes not yet handed to `poll_transmit`.
    pub fn buffered_send(&self) -> usize {
        self.session.streams.get(&self.id.0).map_or(0, |s| s.send_buffered)
    }

    /// This stream's current receive window (it grows with auto-tuning).
    pub fn receive_window(&self) -> u32 {
        self.session.streams.get(&self.id.0).map_or(0, |s| s.flow.window())
    }

    /// Whether the peer finished its side (all its data has arrived).
    pub fn is_peer_finished(&self) -> bool {
        self.session.streams.get(&self.id.0).is_some_and(|s| s.fin_received)
    }
}
