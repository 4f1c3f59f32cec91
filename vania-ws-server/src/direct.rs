//! Direct writes: frames queued for an idle client, written to its socket by the task that
//! queued them, as uWebSockets' publish writes to every subscriber from its one loop.
//!
//! A broadcast to a room would otherwise wake every member's connection task, and each would
//! be scheduled and polled only to write one or a few frames; at a thousand members that is
//! most of a delivery's cost in user space (BENCHMARKS.md). Instead, a connection dispatching
//! the frames it read runs under a cork (`vania_ws_core::corked`): a push that finds a
//! member's queue empty notes it, and when the cork ends, [`Direct::write`] takes that
//! member's queue and writes it with one non-blocking system call, from the sender's task.
//! Every broadcast the sender read in that wake-up goes out in that one write.
//!
//! A connection allows this only while it is parked with nothing of its own to write (no
//! bytes pending in its transport, no control frame owed, no close under way): then a direct
//! write is the only writer, frames stay whole, and they keep their order. The connection
//! stops direct writes at the start of each wake-up ([`Direct::enter`]) and allows them again,
//! if it may, at the end ([`Direct::park`]). Whatever the socket does not take is left over,
//! in order, for the connection, which is woken and writes it before anything else: the
//! bound on what a client holds covers those bytes until the socket takes them.
//!
//! Only TCP streams are shared this way ([`SharedTcp`]); any other transport (a hyper-upgraded
//! stream, whose type hyper keeps private) is written by its own task, woken as before.

use bytes::Bytes;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use vania_ws_core::{DirectWrite, Outgoing, Queued};

use crate::transport::{BINARY, TEXT, header, with_cork};

/// A TCP stream that its connection reads and writes, and that other tasks can write to
/// without waiting (see [`Direct`]).
pub(crate) struct SharedTcp(Arc<TcpStream>);

impl SharedTcp {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self(Arc::new(stream))
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The readiness was stale: `try_read` cleared it, so the next poll registers.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(data) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(slices) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

/// One connection's permission for direct writes, and what they left over; see the module
/// docs.
#[derive(Debug)]
pub(crate) struct Direct {
    side: Mutex<Side>,
}

#[derive(Debug)]
struct Side {
    /// `None` once the connection has ended: a client handle kept elsewhere must not keep
    /// its socket open.
    socket: Option<Arc<TcpStream>>,
    /// The connection is parked with nothing of its own to write.
    open: bool,
    /// What the socket did not take, in order, for the connection to write first.
    leftover: Vec<Bytes>,
}

impl Direct {
    pub(crate) fn new(stream: &SharedTcp) -> Arc<Self> {
        Arc::new(Self {
            side: Mutex::new(Side {
                socket: Some(stream.0.clone()),
                open: false,
                leftover: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Side> {
        // Nothing panics while holding this lock; recover from poisoning all the same.
        self.side
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection starts a wake-up: no direct write until [`park`](Self::park). Hands
    /// `adopt` what the last direct write left over, in order, and returns its length.
    pub(crate) fn enter(&self, mut adopt: impl FnMut(Bytes)) -> usize {
        let mut side = self.lock();
        side.open = false;
        if side.leftover.is_empty() {
            return 0;
        }
        let mut bytes = 0;
        for rest in side.leftover.drain(..) {
            bytes += rest.len();
            adopt(rest);
        }
        side.leftover = Vec::new();
        bytes
    }

    /// The connection parks: direct writes may go if `open` (it has nothing of its own to
    /// write).
    pub(crate) fn park(&self, open: bool) {
        self.lock().open = open;
    }

    /// The connection has ended: no more direct writes, and the socket is let go.
    pub(crate) fn end(&self) {
        let mut side = self.lock();
        side.open = false;
        side.socket = None;
    }
}

impl DirectWrite for Direct {
    /// Copies the queued frames, header and payload, into this thread's cork buffer (as many
    /// as fit: a frame too large for it is left to the connection) and writes them with one
    /// non-blocking system call, under the queue's lock.
    fn write(&self, queue: &mut Queued<'_>) -> (u64, bool) {
        // Held by the connection entering or parking (on another thread): it will look at its
        // queue itself once woken.
        let Ok(mut side) = self.side.try_lock() else {
            return (0, false);
        };
        let Side {
            socket,
            open,
            leftover,
        } = &mut *side;
        let (Some(socket), true) = (socket.as_ref(), *open) else {
            return (0, false);
        };
        let mut failed = false;
        let (written, empty) = with_cork(|buf| {
            queue.write(|frames| {
                let mut corked = 0;
                let mut count = 0;
                for frame in frames {
                    let (opcode, payload) = match frame {
                        Outgoing::Frame(frame) => (TEXT, frame.as_str().as_bytes()),
                        Outgoing::Binary(data) => (BINARY, &data[..]),
                        Outgoing::Close(..) => break,
                    };
                    let mut head = [0u8; 10];
                    let head_len = header(opcode, payload.len(), &mut head);
                    let end = corked + head_len + payload.len();
                    if end > buf.len() {
                        break;
                    }
                    buf[corked..corked + head_len].copy_from_slice(&head[..head_len]);
                    buf[corked + head_len..end].copy_from_slice(payload);
                    corked = end;
                    count += 1;
                }
                if count == 0 {
                    return (0, 0);
                }
                match socket.try_write(&buf[..corked]) {
                    Ok(n) => {
                        if n < corked {
                            leftover.push(Bytes::copy_from_slice(&buf[n..corked]));
                        }
                        (count, corked - n)
                    }
                    // Full already: the frames stay queued for the connection, which waits
                    // for the socket to drain.
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => (0, 0),
                    // The connection meets the same error on its next read or write.
                    Err(_) => {
                        failed = true;
                        (0, 0)
                    }
                }
            })
        });
        if failed || written == 0 || !leftover.is_empty() {
            // The connection takes over: it writes what is left, waiting for the socket.
            *open = false;
            return (written as u64, false);
        }
        (written as u64, empty)
    }
}
