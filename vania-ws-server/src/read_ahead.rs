//! Reads a connection's socket through one buffer per thread, as uWebSockets does per event
//! loop: an idle connection then holds no read buffer of its own worth the name.
//!
//! The WebSocket codec reads in small steps (its buffer is sized for idle connections, see
//! `engine.rs`). Each step that finds nothing stashed reads the socket into this thread's
//! 64 KiB buffer, in one system call however small the step, hands the codec what it asked
//! for, and keeps the rest in a stash of the connection's own, freed as soon as the codec has
//! taken it. So a burst costs one read and one short-lived allocation, not a read per step,
//! and a connection between bursts holds nothing here.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The per-thread read buffer's size.
const SCRATCH_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

/// A transport whose reads go through this thread's buffer; writes pass straight through.
pub(crate) struct ReadAhead<S> {
    inner: S,
    /// Bytes read from the socket and not yet taken by the codec; empty (unallocated) between
    /// bursts.
    stash: Vec<u8>,
    taken: usize,
}

impl<S> ReadAhead<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            stash: Vec::new(),
            taken: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.taken < this.stash.len() {
            let n = buf.remaining().min(this.stash.len() - this.taken);
            buf.put_slice(&this.stash[this.taken..this.taken + n]);
            this.taken += n;
            if this.taken == this.stash.len() {
                this.stash = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= SCRATCH_BYTES {
            // A large read (the rest of a large frame): straight into the caller's buffer.
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut read = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let filled = read.filled();
            let n = buf.remaining().min(filled.len());
            buf.put_slice(&filled[..n]);
            if n < filled.len() {
                this.stash.extend_from_slice(&filled[n..]);
            }
            Poll::Ready(Ok(()))
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_are_served_from_one_socket_read_and_the_stash_is_freed() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        client.write_all(&data).await.unwrap();
        drop(client);
        let mut reader = ReadAhead::new(server);
        let mut got = Vec::new();
        let mut step = [0u8; 100];
        loop {
            let n = reader.read(&mut step).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&step[..n]);
            if got.len() == 100 {
                assert_eq!(reader.stash.len(), 9_900, "one read took the whole burst");
            }
        }
        assert_eq!(got, data);
        assert_eq!(reader.stash.capacity(), 0, "nothing held between bursts");
    }
}
