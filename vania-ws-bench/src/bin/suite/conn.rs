//! One client connection of the load generator: a raw `TcpStream`, the hand-written upgrade,
//! and two ways to read: frame by frame with payloads (setup: greetings, joins, acks) and in
//! bulk, counting frames by their headers (the measured phases).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::wire::{self, Event, FrameParser};

thread_local! {
    /// One read buffer for every connection of the (single-threaded) load generator, so that
    /// 19,000 connections do not each hold one: the parser keeps the little state it needs.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 256 * 1024]);
}

/// A complete server frame, payload included (truncated to [`wire::CAPTURE_LIMIT`]).
pub(crate) struct OwnedFrame {
    pub(crate) opcode: u8,
    pub(crate) fin: bool,
    pub(crate) len: u64,
    pub(crate) payload: Vec<u8>,
}

impl OwnedFrame {
    /// The payload as text, for matching and for error messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// A connected, upgraded client.
pub(crate) struct Conn {
    /// Shared so that a sender task can write while the reader task reads (both only need
    /// `&TcpStream` through tokio's `try_read` / `try_write`).
    pub(crate) stream: Rc<TcpStream>,
    parser: FrameParser,
    /// Frames already parsed but not yet taken by `next_frame`.
    pending: VecDeque<OwnedFrame>,
    /// How other clients address this one in a direct message (set by the greeting; empty
    /// when the dialect has none).
    pub(crate) id: String,
}

impl Conn {
    /// Connects to `127.0.0.1:port` and upgrades on `path`.
    pub(crate) async fn open(port: u16, path: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        Conn::upgrade(stream, port, path).await
    }

    /// [`Conn::open`] with the socket's receive buffer set to `bytes` before the connect (the
    /// kernel's autotuning would otherwise let it hold megabytes that a client never reads).
    pub(crate) async fn open_with_receive_buffer(
        port: u16,
        path: &str,
        bytes: u32,
    ) -> io::Result<Conn> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(bytes)?;
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await?;
        Conn::upgrade(stream, port, path).await
    }

    async fn upgrade(stream: TcpStream, port: u16, path: &str) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        write_all(&stream, &wire::handshake_request(path, port)).await?;
        let mut head = Vec::with_capacity(512);
        let rest = loop {
            stream.readable().await?;
            let mut buf = [0u8; 4096];
            match stream.try_read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
            if let Some(end) = wire::head_end(&head) {
                break head.split_off(end);
            }
            if head.len() > 16 * 1024 {
                return Err(io::Error::other("response head over 16 KiB"));
            }
        };
        wire::check_handshake_response(&head)?;
        let mut conn = Conn {
            stream: Rc::new(stream),
            parser: FrameParser::default(),
            pending: VecDeque::new(),
            id: String::new(),
        };
        // The server may have sent its first frame in the same segment as the 101.
        conn.feed_pending(&rest)?;
        Ok(conn)
    }

    fn feed_pending(&mut self, data: &[u8]) -> io::Result<()> {
        let pending = &mut self.pending;
        self.parser.feed(data, |event| {
            if let Event::Other {
                opcode,
                fin,
                len,
                payload,
            } = event
            {
                pending.push_back(OwnedFrame {
                    opcode,
                    fin,
                    len,
                    payload: payload.to_vec(),
                });
            }
        })
    }

    /// Writes all of `bytes`.
    pub(crate) async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        write_all(&self.stream, bytes).await
    }

    /// The next frame with its payload (setup only: the parser must expect no length).
    /// Server Pings are answered on the way.
    pub(crate) async fn next_frame(&mut self, timeout: Duration) -> io::Result<OwnedFrame> {
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(frame) = self.pending.pop_front() {
                    match frame.opcode {
                        wire::PING => {
                            self.send(&wire::masked_frame(wire::PONG, &frame.payload))
                                .await?
                        }
                        wire::PONG => {}
                        wire::CLOSE => return Err(closed_error(&frame)),
                        _ => return Ok(frame),
                    }
                    continue;
                }
                self.stream.readable().await?;
                let mut buf = [0u8; 4096];
                match self.stream.try_read(&mut buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => self.feed_pending(&buf[..n])?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no frame in time"))?
    }

    /// Switches to counting: text frames of these lengths are reported as `Event::Expected`
    /// without their payload being read. Frames left over from the setup are returned.
    pub(crate) fn start_counting(&mut self, lengths: &[u64]) -> Vec<OwnedFrame> {
        self.parser.expect(lengths);
        self.pending.drain(..).collect()
    }

    /// [`Conn::start_counting`] for every text frame, each reported with the head of its
    /// payload.
    pub(crate) fn start_counting_any_text(&mut self) -> Vec<OwnedFrame> {
        self.parser.expect_any_text();
        self.pending.drain(..).collect()
    }

    /// Waits for data, reads what is there in one `read`, and reports each completed frame.
    /// An end of stream is an error: no server closes on its own during a run.
    pub(crate) async fn read_some(
        &mut self,
        mut on_event: impl FnMut(Event<'_>),
    ) -> io::Result<()> {
        loop {
            self.stream.readable().await?;
            let result = SCRATCH.with_borrow_mut(|buf| {
                let mut fed = None;
                let read = self.stream.try_io(Interest::READABLE, || {
                    let n = self.stream.try_read(buf)?;
                    fed = Some(match n {
                        0 => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                        n => self.parser.feed(&buf[..n], &mut on_event),
                    });
                    // A short read drained the socket: saying so clears tokio's readiness
                    // now, which saves the `read` that would only return `WouldBlock`
                    // (tokio keeps any event that arrived meanwhile).
                    if n > 0 && n < buf.len() {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(())
                    }
                });
                match (fed, read) {
                    (Some(fed), _) => fed.map(|()| true),
                    (None, Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                    (None, Err(e)) => Err(e),
                    (None, Ok(())) => Ok(false),
                }
            });
            if result? {
                return Ok(());
            }
        }
    }
}

fn closed_error(frame: &OwnedFrame) -> io::Error {
    let code = frame
        .payload
        .get(..2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .unwrap_or(1005);
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!(
            "the server closed the connection ({code} {})",
            String::from_utf8_lossy(frame.payload.get(2..).unwrap_or_default())
        ),
    )
}

/// Writes all of `bytes` with non-blocking writes, waiting for writability only when the
/// socket buffer is full.
pub(crate) async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
