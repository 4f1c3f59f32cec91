//! A connection's socket as uWebSockets handles it: reads through one buffer per thread, and
//! writes corked per batch. An idle connection holds neither a read nor a write buffer worth
//! the name.
//!
//! Reads: the WebSocket codec reads in small steps (its buffer is sized for idle connections,
//! see `engine.rs`). Each step that finds nothing stashed reads the socket into this thread's
//! 64 KiB buffer, in one system call however small the step, hands the codec what it asked
//! for, and keeps the rest in a stash of the connection's own, freed as soon as the codec has
//! taken it.
//!
//! Writes: [`Transport::write_frames`] writes a batch of data frames with one system call.
//! Small frames are copied into this thread's 16 KiB cork buffer and go out as one slice
//! (small frames past 16 KiB, and large payloads, go as slices of their own, the payload
//! straight from the buffer every recipient shares). What
//! the socket does not take waits in `pending` (copies of corked bytes, slices of shared
//! payloads) until `poll_flush`. The codec's own writes (pongs, pings, the close) go through
//! `poll_write`, behind anything pending, so no write ever lands inside another frame and the
//! close stays last.

use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The per-thread read buffer's size.
const SCRATCH_BYTES: usize = 64 * 1024;

/// Frames written per system call, at most.
pub(crate) const BATCH_FRAMES: usize = 32;

/// Past this much pending, the codec's own writes wait (it then answers the pings that arrive
/// meanwhile with one pong): a client that does not read cannot grow this with pings.
const CODEC_PENDING_BYTES: usize = 16 * 1024;

/// The per-thread cork buffer's size: small frames of one batch are copied into it and
/// written as one slice.
const CORK_BYTES: usize = 16 * 1024;

/// Payloads up to this size are corked; larger ones are written from their shared buffer.
const CORK_FRAME_BYTES: usize = 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
    static CORK: RefCell<Cork> = RefCell::new(Cork::new());
}

/// One write's working set, kept per thread: the cork buffer, and the list of what the write
/// hands the kernel. Most writes are of one frame; arrays sized for a whole batch, set up on
/// the stack each time, cost more than copying that frame.
struct Cork {
    bytes: Box<[u8]>,
    /// The write's pieces, in order.
    pieces: Vec<Piece>,
    /// The headers of the frames not corked, and their lengths (`Piece::Head` indexes this).
    heads: Vec<([u8; 10], usize)>,
}

impl Cork {
    fn new() -> Self {
        Self {
            bytes: vec![0; CORK_BYTES].into_boxed_slice(),
            pieces: Vec::with_capacity(2 * BATCH_FRAMES),
            heads: Vec::with_capacity(BATCH_FRAMES),
        }
    }
}

/// A data frame to write: its opcode (text or binary) and payload.
pub(crate) struct DataFrame {
    pub(crate) opcode: u8,
    pub(crate) payload: Bytes,
}

/// Text and binary opcodes, with the FIN bit.
pub(crate) const TEXT: u8 = 0x81;
pub(crate) const BINARY: u8 = 0x82;

/// A connection's transport; see the module docs.
pub(crate) struct Transport<S> {
    inner: S,
    /// Bytes read from the socket and not yet taken by the codec; empty (unallocated) between
    /// bursts.
    read_stash: Vec<u8>,
    read_taken: usize,
    /// Bytes written but not yet taken by the socket, in order; empty between bursts.
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
}

impl<S> Transport<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            read_stash: Vec::new(),
            read_taken: 0,
            pending: VecDeque::new(),
            pending_bytes: 0,
        }
    }

    /// Whether everything written so far has been taken by the socket.
    pub(crate) fn is_drained(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A server frame's header (never masked): at most 10 bytes.
fn header(opcode: u8, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A piece of one write: a range of this thread's cork buffer (small frames, copied
/// whole), or a frame's header (an index in `Cork::heads`) or payload (an index in the
/// frames written: a large frame, written from its shared payload).
#[derive(Clone, Copy)]
enum Piece {
    Cork { start: usize, end: usize },
    Head(usize),
    Payload(usize),
}

impl<S: AsyncWrite + Unpin> Transport<S> {
    /// Writes up to [`BATCH_FRAMES`] data frames with one system call when nothing is pending:
    /// small frames are copied, header and payload, into this thread's cork buffer (as long
    /// as it has room) and go out as one contiguous slice; a large payload goes as a slice of
    /// its own, uncopied. What the socket does not take is kept, in order. Never returns
    /// `Pending`: the caller bounds what it hands over between flushes.
    ///
    /// While something is pending, nothing is written and nothing is corked: headers are
    /// copied and payloads sliced straight into `pending`, with no second copy.
    ///
    /// Why copy: the kernel copies every byte into its socket buffer anyway, and its cost per
    /// slice is far above the cost of copying a hundred bytes here. With two slices per frame
    /// (header, payload), the kernel's `_copy_from_iter` took 5.4% of a broadcasting server's
    /// time, against 0.9% for Bun, which corks the same way (uWebSockets' 16 KiB cork buffer
    /// per event loop); see BENCHMARKS.md.
    pub(crate) fn write_frames(
        &mut self,
        cx: &mut Context<'_>,
        frames: &[DataFrame],
    ) -> io::Result<()> {
        debug_assert!(frames.len() <= BATCH_FRAMES);
        CORK.with_borrow_mut(|cork| {
            let Cork {
                bytes: buf,
                pieces,
                heads,
            } = cork;
            pieces.clear();
            heads.clear();
            let mut corked = 0;
            for (i, frame) in frames.iter().enumerate() {
                let mut head = [0u8; 10];
                let head_len = header(frame.opcode, frame.payload.len(), &mut head);
                let size = head_len + frame.payload.len();
                if self.pending.is_empty()
                    && frame.payload.len() <= CORK_FRAME_BYTES
                    && corked + size <= CORK_BYTES
                {
                    buf[corked..corked + head_len].copy_from_slice(&head[..head_len]);
                    buf[corked + head_len..corked + size].copy_from_slice(&frame.payload);
                    match pieces.last_mut() {
                        // Right after the last corked bytes: one slice grows.
                        Some(Piece::Cork { end, .. }) if *end == corked => *end += size,
                        _ => pieces.push(Piece::Cork {
                            start: corked,
                            end: corked + size,
                        }),
                    }
                    corked += size;
                } else {
                    pieces.push(Piece::Head(heads.len()));
                    heads.push((head, head_len));
                    pieces.push(Piece::Payload(i));
                }
            }
            let pieces = &pieces[..];
            let bytes_of = |piece: Piece| -> &[u8] {
                match piece {
                    Piece::Cork { start, end } => &buf[start..end],
                    Piece::Head(h) => &heads[h].0[..heads[h].1],
                    Piece::Payload(i) => &frames[i].payload,
                }
            };
            let mut written = 0;
            if self.pending.is_empty() {
                let inner = Pin::new(&mut self.inner);
                let result = if let [only] = pieces {
                    // One slice: a plain write, which the kernel takes faster than a writev.
                    inner.poll_write(cx, bytes_of(*only))
                } else {
                    let mut slices = [IoSlice::new(&[]); 2 * BATCH_FRAMES];
                    for (slice, piece) in slices.iter_mut().zip(pieces) {
                        *slice = IoSlice::new(bytes_of(*piece));
                    }
                    inner.poll_write_vectored(cx, &slices[..pieces.len()])
                };
                match result {
                    Poll::Ready(Ok(n)) => written = n,
                    Poll::Ready(Err(err)) if err.kind() != io::ErrorKind::WouldBlock => {
                        return Err(err);
                    }
                    Poll::Ready(Err(_)) | Poll::Pending => {}
                }
            }
            // Keep the rest, in order: corked bytes and headers copied, payloads sliced.
            for &piece in pieces {
                let bytes = bytes_of(piece);
                if written >= bytes.len() {
                    written -= bytes.len();
                    continue;
                }
                let rest = match piece {
                    Piece::Payload(i) => frames[i].payload.slice(written..),
                    Piece::Cork { .. } | Piece::Head(_) => {
                        Bytes::copy_from_slice(&bytes[written..])
                    }
                };
                written = 0;
                self.stash(rest);
            }
            Ok(())
        })
    }

    fn stash(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.pending_bytes += bytes.len();
            self.pending.push_back(bytes);
        }
    }

    /// Writes what is pending; `Ready(Ok)` once nothing is.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let mut slices = [IoSlice::new(&[]); 2 * BATCH_FRAMES];
            let count = self.pending.len().min(slices.len());
            for (slice, bytes) in slices.iter_mut().zip(&self.pending) {
                *slice = IoSlice::new(bytes);
            }
            let mut n =
                ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_bytes -= n;
            while n > 0 {
                let front = self
                    .pending
                    .front_mut()
                    .expect("written bytes were pending");
                if n >= front.len() {
                    n -= front.len();
                    self.pending.pop_front();
                } else {
                    *front = front.slice(n..);
                    n = 0;
                }
            }
        }
        // Nothing left behind by a burst.
        self.pending = VecDeque::new();
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Transport<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read_taken < this.read_stash.len() {
            let n = buf.remaining().min(this.read_stash.len() - this.read_taken);
            buf.put_slice(&this.read_stash[this.read_taken..this.read_taken + n]);
            this.read_taken += n;
            if this.read_taken == this.read_stash.len() {
                this.read_stash = Vec::new();
                this.read_taken = 0;
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
                this.read_stash.extend_from_slice(&filled[n..]);
            }
            Poll::Ready(Ok(()))
        })
    }
}

/// The codec's writes: whole or not at all, behind what is pending.
impl<S: AsyncWrite + Unpin> AsyncWrite for Transport<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            if this.pending_bytes >= CODEC_PENDING_BYTES {
                // Registers for writability; `Pending` unless the socket took it all.
                ready!(this.poll_drain(cx))?;
            }
            this.stash(Bytes::copy_from_slice(data));
            return Poll::Ready(Ok(data.len()));
        }
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                // Taken whole: the rest of a frame must not wait in the codec while data
                // frames are written past it.
                this.stash(Bytes::copy_from_slice(&data[n..]));
                Poll::Ready(Ok(data.len()))
            }
            Poll::Pending => {
                this.stash(Bytes::copy_from_slice(data));
                Poll::Ready(Ok(data.len()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
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
        let mut reader = Transport::new(server);
        let mut got = Vec::new();
        let mut step = [0u8; 100];
        loop {
            let n = reader.read(&mut step).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&step[..n]);
            if got.len() == 100 {
                assert_eq!(
                    reader.read_stash.len(),
                    9_900,
                    "one read took the whole burst"
                );
            }
        }
        assert_eq!(got, data);
        assert_eq!(
            reader.read_stash.capacity(),
            0,
            "nothing held between bursts"
        );
    }

    fn frame(opcode: u8, payload: impl Into<Bytes>) -> DataFrame {
        DataFrame {
            opcode,
            payload: payload.into(),
        }
    }

    /// The frames as they go on the wire.
    fn wire<'a>(frames: impl IntoIterator<Item = &'a DataFrame>) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            let mut head = [0u8; 10];
            let len = header(frame.opcode, frame.payload.len(), &mut head);
            out.extend_from_slice(&head[..len]);
            out.extend_from_slice(&frame.payload);
        }
        out
    }

    /// A transport over a pipe of `capacity` bytes, and everything its reader end receives.
    fn pipe(
        capacity: usize,
    ) -> (
        Transport<tokio::io::DuplexStream>,
        tokio::task::JoinHandle<Vec<u8>>,
    ) {
        let (server, mut client) = tokio::io::duplex(capacity);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        (Transport::new(server), reader)
    }

    #[tokio::test]
    async fn frames_and_codec_writes_keep_their_order_through_a_full_socket() {
        // A 64-byte pipe: almost everything waits in `pending`. Small frames are corked (one
        // of them across the pipe's first 64 bytes), the large one is written from its payload.
        let (mut transport, reader) = pipe(64);
        let frames = [
            frame(TEXT, &b"hello"[..]),
            frame(TEXT, vec![b'm'; 100]),
            frame(BINARY, vec![b'x'; 70_000]),
            frame(TEXT, &b"after"[..]),
        ];
        std::future::poll_fn(|cx| Poll::Ready(transport.write_frames(cx, &frames)))
            .await
            .unwrap();
        assert!(transport.pending_bytes > 60_000, "the pipe took little");
        // More frames while the first ones wait: stashed behind them, not corked.
        let later = [frame(TEXT, &b"later"[..])];
        let stashed = transport.pending.len();
        std::future::poll_fn(|cx| Poll::Ready(transport.write_frames(cx, &later)))
            .await
            .unwrap();
        assert_eq!(
            transport.pending.len(),
            stashed + 2,
            "header copied, payload sliced"
        );
        // A codec write (a pong, say) goes behind them.
        transport.write_all(&[0x8a, 0x00]).await.unwrap();
        transport.flush().await.unwrap();
        assert!(transport.pending.is_empty() && transport.pending.capacity() == 0);
        drop(transport);
        let all = reader.await.unwrap();
        let mut expected = wire(frames.iter().chain(&later));
        expected.extend_from_slice(&[0x8a, 0x00]);
        assert_eq!(all.len(), expected.len());
        assert!(all == expected, "frames in order, none split by another");
    }

    #[tokio::test]
    async fn a_write_that_stops_inside_a_header_keeps_the_rest_of_it() {
        // 64 bytes fit: the corked frame (62) and the first 2 of the large frame's 10-byte
        // header.
        let (mut transport, reader) = pipe(64);
        let frames = [
            frame(TEXT, vec![b's'; 60]),
            frame(BINARY, vec![b'x'; 70_000]),
        ];
        std::future::poll_fn(|cx| Poll::Ready(transport.write_frames(cx, &frames)))
            .await
            .unwrap();
        assert_eq!(
            transport.pending_bytes,
            8 + 70_000,
            "the header's last 8 bytes wait"
        );
        transport.flush().await.unwrap();
        drop(transport);
        assert!(
            reader.await.unwrap() == wire(&frames),
            "every byte, in order"
        );
    }

    /// Counts the writes and the slices they were given.
    struct Counting<S> {
        inner: S,
        writes: usize,
        slices: usize,
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            self.slices += 1;
            Pin::new(&mut self.inner).poll_write(cx, data)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            slices: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            self.slices += slices.len();
            Pin::new(&mut self.inner).poll_write_vectored(cx, slices)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn small_frames_are_corked_into_one_slice_and_large_ones_are_not_copied() {
        let (server, mut client) = tokio::io::duplex(1 << 20);
        let mut transport = Transport::new(Counting {
            inner: server,
            writes: 0,
            slices: 0,
        });
        let text = |i: usize| frame(TEXT, format!("frame {i}"));
        let small: Vec<DataFrame> = (0..BATCH_FRAMES).map(text).collect();
        std::future::poll_fn(|cx| Poll::Ready(transport.write_frames(cx, &small)))
            .await
            .unwrap();
        assert_eq!((transport.inner.writes, transport.inner.slices), (1, 1));
        // A large payload splits the cork: small, large (header and payload), small.
        let mixed = [
            text(0),
            text(1),
            frame(BINARY, vec![b'x'; 2 * CORK_FRAME_BYTES]),
            text(2),
        ];
        std::future::poll_fn(|cx| Poll::Ready(transport.write_frames(cx, &mixed)))
            .await
            .unwrap();
        assert_eq!((transport.inner.writes, transport.inner.slices), (2, 5));
        assert!(transport.is_drained());
        drop(transport);
        let mut all = Vec::new();
        client.read_to_end(&mut all).await.unwrap();
        assert!(
            all == wire(small.iter().chain(&mixed)),
            "every frame, in order"
        );
    }
}
