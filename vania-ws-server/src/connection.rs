//! One task per open connection, over any transport (a `TcpStream`, a hyper-upgraded
//! stream); the handshake runs in a task of its own before it.
//!
//! Each wake-up of the task does, in order: follow the server's shutdown phase; poll the
//! handler in flight, if any; read and dispatch the frames that arrived (while no handler is in
//! flight, which keeps a connection's events in order; while one waits for its client's answer
//! to a request from the server, only to find that answer, holding the other frames for
//! after it); then cork: write everything queued for
//! the client, in batches of one system call each (small frames corked, large ones from their
//! shared payloads, see `transport.rs`), and flush once if the socket did not take it all;
//! then the timer. The phase, the read side and the timer are looked at only on a wake-up
//! they may have caused, or after a read returned a frame (see `wake.rs`): a wake-up for a
//! broadcast only writes. A handler that finishes without waiting (most do) runs inside that
//! same wake-up, so a burst of pipelined requests is read, answered and written back
//! together. Outgoing frames keep flowing while a handler waits.
//!
//! The task's future is flat: once upgraded, a connection gets a task of its own (the
//! handshake's task ends), whose future awaits one hand-written [`Driver`] and nothing else
//! while the connection is open. The driver's fields are laid out in the order a wake-up
//! reads them, so that one that only writes (a broadcast, once per member) reads about two
//! cache lines of the task instead of the state tags and fields of five nested async layers.
//! With 10,000 members, those lines are cache misses (BENCHMARKS.md, "misses the cache").
//!
//! What lives as long as the connection (the timer, the phase watch) is created once, not
//! rebuilt per frame; a handler that waits is kept in a 16-byte slot, boxed only then.
//!
//! Liveness and abuse: the server pings every interval with an unpredictable payload, and only
//! a pong carrying it keeps the client alive; control frames count against the rate limit;
//! every byte the server holds for the client (queued frames, frames written but not yet
//! taken by the socket, pongs and pings) counts against the send-queue bound.

use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;
use vania_ws_core::dispatch::Started;
use vania_ws_core::outbox::{OutboxReceiver, Outgoing};
use vania_ws_core::{CloseCode, DisconnectReason, Session};

use crate::config::ServerConfig;
use crate::engine::{Phase, PhaseWatch, Shared};
use crate::handshake;
use crate::policy::{Admission, Slot};
use crate::transport::{BATCH_FRAMES, BINARY, DataFrame, TEXT, Transport};
use crate::wake::ReadWaker;

/// Bytes of data frames written and not yet taken by the socket, at most (plus one message).
const FEED_BYTES: usize = 64 * 1024;
/// The largest control frame the server writes: 125 bytes of payload and a 2-byte header.
const MAX_CONTROL_FRAME: usize = 127;
/// The codec's write buffer cap. Data frames bypass the codec (see `transport.rs`); it only
/// writes control frames. A pong that does not fit waits in the codec, which answers every
/// ping that arrives meanwhile with that one pong.
pub(crate) const CODEC_WRITE_LIMIT: usize = 8 * MAX_CONTROL_FRAME;
thread_local! {
    /// The data frames of one write, reused by every connection of the thread.
    static BATCH: std::cell::RefCell<Vec<DataFrame>> =
        std::cell::RefCell::new(Vec::with_capacity(BATCH_FRAMES));
}

/// Frames read per wake-up before the task yields to others.
const READ_BUDGET: usize = 64;

/// The standalone server's handshake task: the HTTP upgrade, after which the connection runs
/// in a task of its own ([`serve`]) and this one ends, its state (1.2 KB, the header array
/// included) freed with it.
pub(crate) async fn accept(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    if let Some((stream, upgraded)) = upgrade(stream, peer, &shared).await {
        serve(stream, upgraded.leftover, upgraded.admission, shared);
    }
}

async fn upgrade(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<(TcpStream, handshake::Upgraded)> {
    let _ = stream.set_nodelay(true);
    let mut ticket = shared.pending.enter(shared.hub.metrics());
    let handshake = tokio::time::timeout(
        shared.config.handshake_timeout,
        handshake::upgrade(&mut stream, peer, shared),
    );
    let upgraded = tokio::select! {
        biased;
        _ = &mut ticket.shed => {
            tracing::debug!(%peer, "pending handshake shed");
            return None;
        }
        () = closing(shared) => return None,
        upgraded = handshake => upgraded,
    };
    match upgraded {
        Ok(Some(upgraded)) => Some((stream, upgraded)),
        Ok(None) => None,
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            None
        }
    }
}

/// Completes once the shutdown reaches its close phase: handshakes still pending then end.
async fn closing(shared: &Shared) {
    let mut watch = PhaseWatch::new(shared);
    std::future::poll_fn(|cx| {
        while watch.phase() < Phase::Closing {
            std::task::ready!(watch.poll_changed(cx));
        }
        Poll::Ready(())
    })
    .await;
}

/// Serves an upgraded connection, in a task of its own, until it ends: registers its client
/// (now), then runs `connect`, the frames and `disconnect`, and frees the client's rooms and
/// slot. `leftover` is what was read past the request head (a client may send its first frame
/// at once).
pub(crate) fn serve<S>(stream: S, leftover: Vec<u8>, admission: Admission, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Admission {
        route,
        extensions,
        slot,
        ..
    } = admission;
    let (session, queue) = Session::new(&shared.hub, route, extensions)
        .expect("the policy admits only routes of the table the hub was built from");
    let span = tracing::debug_span!(
        "ws",
        client = session.client().id(),
        route = session.route().path()
    );
    let task = run(stream, leftover, session, queue, slot, shared.clone());
    // Without a subscriber for debug spans, no `Instrumented` layer: every wake-up would
    // otherwise read the disabled span, one more cache line of the task per delivery.
    if span.is_disabled() {
        shared.spawn_connection(task);
    } else {
        shared.spawn_connection(task.instrument(span));
    }
}

/// A connection's task. While the connection is open it awaits its [`Driver`] and nothing
/// else, so a wake-up goes from the task straight to the driver's fields.
async fn run<S>(
    stream: S,
    leftover: Vec<u8>,
    session: Session,
    queue: OutboxReceiver,
    slot: Slot,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // With a scale-out adapter, the client's id reaches it (`connected`) only once other
    // nodes can reach the client by it. (First, while the task holds the least: a wait
    // later would widen the task of every connection.)
    if let Some(ready) = shared.hub.client_ready(session.client().id()) {
        ready.await;
    }
    let ws = WebSocketStream::from_partially_read(
        Transport::new(stream),
        leftover,
        Role::Server,
        Some(shared.ws_config),
    )
    .await;
    // The driver owns the socket: it is closed as the driver ends, before the `disconnect`
    // handler runs, so a peer that vanished is not kept waiting on a handler.
    let Ended {
        end,
        peer_closed,
        step,
        held,
        shutdown_closed,
    } = Driver::new(&shared, &session, queue, ws).await;
    // The client can answer no more: what waits for its answer fails now, rather than at its
    // timeout, and so does any request made from here on (by `disconnect`, say).
    session.end_requests();
    let metrics = shared.hub.metrics();
    let outbox = session.client().outbox();
    let reason = if outbox.overflowed() {
        DisconnectReason::SlowConsumer
    } else if end == End::TimedOut {
        DisconnectReason::PingTimeout
    } else if end == End::Forced {
        DisconnectReason::ServerShutdown
    } else if let Some(code) = peer_closed {
        DisconnectReason::ClientClosed { code }
    } else if shutdown_closed {
        DisconnectReason::ServerShutdown
    } else if let Some(code) = outbox.close_code() {
        DisconnectReason::ServerClosed { code }
    } else {
        DisconnectReason::TransportClosed
    };
    match end {
        End::TimedOut => {
            tracing::debug!("no pong in time: dropping the client");
            metrics.record_ping_timeout();
        }
        End::Unresponsive => tracing::debug!("the peer did not complete the close in time"),
        End::Closed | End::Gone | End::Forced => {}
    }
    if reason == DisconnectReason::SlowConsumer {
        metrics.record_slow_consumer();
        tracing::debug!("closed as a slow consumer");
    }
    if end != End::Forced {
        let mut watch = PhaseWatch::new(&shared);
        let session = &session;
        let disconnect = pin!(async move {
            if let Some(step) = step {
                step.await;
            }
            for data in held.frames {
                let mut data = Some(data);
                let started = std::future::poll_fn(|cx| {
                    Poll::Ready(data.take().and_then(|data| data.start(session, cx)))
                })
                .await;
                if let Some(rest) = started {
                    rest.await;
                }
            }
            session.run_disconnect(reason).await;
        });
        // Past the shutdown deadline the `disconnect` handler is skipped, never the cleanup.
        let forced = std::future::poll_fn(|cx| {
            while watch.phase() < Phase::Forced {
                std::task::ready!(watch.poll_changed(cx));
            }
            Poll::Ready(())
        });
        tokio::select! {
            biased;
            () = forced => {}
            () = disconnect => {}
        }
    }
    session.unregister();
    drop(slot);
}

/// What a [`Driver`] leaves when the connection ends.
struct Ended {
    end: End,
    /// The close code of a close the client started (`Some` only then; `Some(None)` for a
    /// close frame without a code).
    peer_closed: Option<Option<u16>>,
    /// A handler still waiting, and the frames read behind it. The connection read ahead for
    /// an answer to a request from the server and saw its end first; they still run, as they
    /// would have had it read nothing more.
    step: Started,
    held: Held,
    /// The close the client got was the shutdown's (an app may close with 1001 too).
    shutdown_closed: bool,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The close handshake completed.
    Closed,
    /// The transport ended or failed (no close frame possible).
    Gone,
    /// No pong to the server's ping in time.
    TimedOut,
    /// A close was sent but not completed in time.
    Unresponsive,
    /// Past the shutdown deadline.
    Forced,
}

/// A data frame to dispatch.
enum Data {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// A frame over the rate limit (its text, for the request's id): refused in its turn, so
    /// that while a handler waits its `rate_limited` error does not overtake the replies to
    /// the frames held before it.
    Refused(Option<Utf8Bytes>),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::Text(text) | Data::Refused(Some(text)) => text.len(),
            Data::Binary(data) => data.len(),
            Data::Refused(None) => 0,
        }
    }

    /// Starts the frame's handler on `session`, or refuses it; the handler when it waits.
    fn start(self, session: &Session, cx: &mut Context<'_>) -> Started {
        match self {
            Data::Text(text) => session.start_text(&text, cx),
            Data::Binary(data) => session.start_binary(data, cx),
            Data::Refused(text) => {
                session.refuse_rate_limited(text.as_ref().map(Utf8Bytes::as_str));
                None
            }
        }
    }
}

/// At most this many frames are held while a handler waits (see [`Driver::held`]).
const HELD_FRAMES: usize = 32;

/// The frames read while a handler waits, and their bytes.
#[derive(Default)]
struct Held {
    frames: VecDeque<Data>,
    bytes: usize,
}

impl Held {
    fn push(&mut self, data: Data) {
        self.bytes += data.len();
        self.frames.push_back(data);
    }

    fn pop(&mut self) -> Option<Data> {
        let data = self.frames.pop_front()?;
        self.bytes -= data.len();
        if self.frames.is_empty() {
            // A burst leaves nothing allocated behind.
            self.frames = VecDeque::new();
        }
        Some(data)
    }

    /// Whether reading must pause: as many frames, or as many bytes as the largest message,
    /// are held.
    fn is_full(&self, max_bytes: usize) -> bool {
        self.frames.len() >= HELD_FRAMES || self.bytes >= max_bytes
    }
}

/// What the connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading and dispatching.
    Open,
    /// Shutting down: no new frame is read; waiting for the close phase.
    Draining,
    /// A close frame was sent or received: waiting for the close to complete, until `since`
    /// plus the close timeout.
    Closing { since: Instant },
}

/// The future of an open connection: what every wake-up of its task polls.
///
/// `repr(C)` keeps the fields in the order written, which is the order a wake-up reads them:
/// the read waker's mark, the handler in flight, then the connection's write state. A
/// wake-up that only writes reads these and the socket, and leaves the rest alone.
#[repr(C)]
struct Driver<'a, S> {
    /// Made at the first poll, from the task's waker.
    reads: Option<ReadWaker>,
    /// The handler in flight, when one waits: most finish inside the wake-up that read their
    /// frame and never get here.
    step: Started,
    conn: Connection<'a>,
    ws: WebSocketStream<Transport<S>>,
    timer: Pin<Box<Sleep>>,
    /// Frames read while a handler waited, dispatched in order once it finishes. While a
    /// handler waits the connection reads on for the client's `ack`s (the handler may be
    /// awaiting one: `emit_with_ack`) and holds the other frames here, so that events still
    /// run one at a time, in order. It stops reading once it holds [`HELD_FRAMES`] frames or
    /// a largest message's worth of bytes: what a client sends beyond that waits in its
    /// socket. Empty, it allocates nothing; last, since only a wake-up that reads looks at it.
    held: Held,
    /// The connection read while the handler in flight waited (for its client's answer):
    /// it may then have seen the connection's end before the handler finished.
    read_ahead: bool,
}

impl<'a, S> Driver<'a, S> {
    fn new(
        shared: &'a Shared,
        session: &'a Session,
        queue: OutboxReceiver,
        ws: WebSocketStream<Transport<S>>,
    ) -> Self {
        let mut conn = Connection::new(shared, session, queue);
        conn.armed = conn.deadline();
        Self {
            reads: None,
            step: None,
            held: Held::default(),
            read_ahead: false,
            timer: Box::pin(tokio::time::sleep_until(conn.armed)),
            conn,
            ws,
        }
    }
}

impl<S> Future for Driver<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Output = Ended;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let end = std::task::ready!(self.as_mut().poll_end(cx));
        let this = self.get_mut();
        // A handler that waited while the connection read ahead finishes, with the frames
        // read behind it (and so does one started from those frames): without the read-ahead,
        // it would have finished before the end was seen. Any other handler in flight ends
        // with the connection, as it always has.
        let (step, held) = if this.read_ahead || !this.held.frames.is_empty() {
            (this.step.take(), std::mem::take(&mut this.held))
        } else {
            (None, Held::default())
        };
        Poll::Ready(Ended {
            end,
            peer_closed: this.conn.peer_closed,
            step,
            held,
            shutdown_closed: this.conn.shutdown_closed,
        })
    }
}

impl<S> Driver<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_end(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<End> {
        let Driver {
            reads,
            step,
            held,
            read_ahead,
            conn,
            ws,
            timer,
        } = self.get_mut();
        let reads = reads.get_or_insert_with(|| ReadWaker::new(cx.waker()));
        if reads.follow(cx.waker()) {
            conn.phase.reregister();
        }
        // The read side, the timer and the shutdown phase all wake the task through the read
        // waker (see `wake.rs`). An unmarked wake-up (frames queued, a handler done, the
        // socket writable again) leaves the three alone, their memory included. Once reading
        // is over the mark stays set, and every wake-up looks.
        let marked = reads.take();
        let mut marked_cx = Context::from_waker(reads.waker());
        if conn.connecting {
            conn.connecting = false;
            // A connection admitted just before a shutdown began starts in its phase: the
            // watch reports only the changes that come after this task first ran.
            match conn.phase.phase() {
                Phase::Running => {}
                Phase::Draining => conn.enter_phase(Phase::Draining),
                Phase::Closing => {
                    conn.enter_phase(Phase::Draining);
                    conn.enter_phase(Phase::Closing);
                }
                Phase::Forced => return Poll::Ready(End::Forced),
            }
            // Past the open state, the drain does not wait for this connection.
            conn.step_done();
            conn.queue.quiet();
            *step = conn.session.start_connect(cx);
        }
        if marked && let Poll::Ready(phase) = conn.phase.poll_changed(&mut marked_cx) {
            if phase == Phase::Forced {
                return Poll::Ready(End::Forced);
            }
            conn.enter_phase(phase);
            if step.is_none() {
                conn.step_done();
            }
        }
        if let Some(running) = step {
            conn.queue.quiet();
            if running.as_mut().poll(cx).is_ready() {
                *step = None;
                *read_ahead = false;
                // The frames read while it waited go first.
                while step.is_none()
                    && let Some(data) = held.pop()
                {
                    *step = conn.start(data, cx);
                }
                if step.is_none() {
                    conn.step_done();
                    conn.pause_pong_wait(false);
                }
            }
        }
        // A wake-up that only has frames to write (a broadcast) skips the read side. While a
        // handler waits, the connection reads only if the client owes an answer.
        let mut answering = step.is_some() && conn.session.awaits_answer();
        if marked
            && (step.is_none() || answering)
            && conn.can_read(answering)
            && !held.is_full(conn.config.max_message_bytes)
        {
            *read_ahead |= answering;
            let read_cx = &mut marked_cx;
            let mut budget = READ_BUDGET;
            loop {
                if budget == 0 {
                    // Let other connections run; come back after writing (the last read
                    // returned a frame, so the read side is still marked).
                    cx.waker().wake_by_ref();
                    break;
                }
                budget -= 1;
                let read = match ws.poll_next_unpin(read_cx) {
                    Poll::Pending => break,
                    Poll::Ready(read) => {
                        reads.set();
                        read
                    }
                };
                match conn.on_read(read) {
                    Ok(None) => {}
                    Ok(Some(data)) if step.is_some() => {
                        // A handler waits for an answer: that answer goes to it now; any
                        // other frame waits its turn, and reading with it. Draining, a frame
                        // that is not an answer is dropped, as one left unread would be.
                        let answered = matches!(
                            &data,
                            Data::Text(text) | Data::Refused(Some(text))
                                if conn.session.try_answer(text)
                        );
                        if !answered && conn.state == State::Open {
                            held.push(data);
                            if held.is_full(conn.config.max_message_bytes) {
                                break;
                            }
                        }
                    }
                    Ok(Some(data)) => *step = conn.start(data, cx),
                    Err(end) => return Poll::Ready(end),
                }
                answering = step.is_some() && conn.session.awaits_answer();
                *read_ahead |= answering;
                if (step.is_some() && !answering) || !conn.can_read(answering) {
                    break;
                }
            }
        } else if marked {
            // Not read now (a handler in flight, or no more reading): the mark stays for the
            // wake-up that may read.
            reads.set();
        }
        if step.is_some() {
            let reading =
                conn.session.awaits_answer() && !held.is_full(conn.config.max_message_bytes);
            conn.pause_pong_wait(!reading);
        }
        // A close asked for (by a handler, an overflow, the rate limit) starts the close
        // deadline now, even when the socket is too full to take the close frame yet.
        if conn.queue.is_closing() {
            conn.closing();
        }
        if let Err(end) = conn.poll_write(cx, ws) {
            return Poll::Ready(end);
        }
        // After writing, which may have changed the deadline (a close was sent).
        if let Err(end) = conn.poll_timer(&mut marked_cx, timer.as_mut(), marked) {
            return Poll::Ready(end);
        }
        if conn.ping.is_some() {
            if let Err(end) = conn.poll_write(cx, ws) {
                return Poll::Ready(end);
            }
            // The write may have started the close deadline: arm the timer for it.
            if let Err(end) = conn.poll_timer(&mut marked_cx, timer.as_mut(), false) {
                return Poll::Ready(end);
            }
        }
        if conn.unflushed {
            // The socket did not take everything. A transport may need to read before it can
            // write (TLS renegotiation), and its write then waits on readability with this
            // task's waker, not the read side's: read on the next wake-up anyway.
            reads.set();
        }
        if conn.finished() {
            Poll::Ready(End::Closed)
        } else {
            Poll::Pending
        }
    }
}

/// A connection's state, beside its socket in the [`Driver`]. `repr(C)`: what a wake-up that
/// only writes reads comes first (see the driver).
#[repr(C)]
struct Connection<'a> {
    queue: OutboxReceiver,
    /// Bytes of data frames written and not yet all taken by the socket; released from the
    /// send-queue bound as soon as the socket has taken them. Releasing only at a flush would
    /// let a reader that keeps up be closed as a slow consumer: while frames keep arriving,
    /// one write pass can hand the socket a whole bound's worth before its flush.
    fed: usize,
    /// Frames written and not yet counted in `messages_out`.
    fed_frames: u64,
    /// Control frames the codec owes (pongs, a ping), released when a flush completes.
    charged: usize,
    shared: &'a Shared,
    state: State,
    ping: Option<[u8; 8]>,
    /// The `connect` handler is still to start (at the first poll).
    connecting: bool,
    /// The read side is done: a read error or the peer's close was seen.
    read_done: bool,
    close_sent: bool,
    unflushed: bool,
    /// The close code of a close the client started, if it did.
    peer_closed: Option<Option<u16>>,
    /// The timer's deadline may have moved on a wake-up the read waker did not mark (a close
    /// began). Every other change of the deadline happens on a marked wake-up, which looks
    /// at the timer anyway (see `poll_timer`).
    rearm: bool,
    // From here on, what the read side, the timer and the phase use.
    /// Whether text frames are enveloped (not raw): rate-limited, with `error` frames.
    limited_text: bool,
    limited_binary: bool,
    /// The shutdown's close (1001) is the one the client gets, not an app's earlier close
    /// with any code, 1001 included: what `disconnect` reads as the reason. (In the slack
    /// before `armed`: the struct keeps its size.)
    shutdown_closed: bool,
    /// The timer's deadline, kept here so that a wake-up need not read the timer to know it.
    armed: Instant,
    heartbeat: Heartbeat,
    bucket: TokenBucket,
    config: &'a ServerConfig,
    session: &'a Session,
    phase: PhaseWatch<'a>,
    /// Held while the connection may dispatch: phase 1 of a shutdown waits for it.
    dispatching: Option<TaskTrackerToken>,
    /// A deadline that never comes, for an idle timer (fixed, so the timer is not re-armed).
    never: Instant,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Shared, session: &'a Session, queue: OutboxReceiver) -> Self {
        let config = &shared.config;
        let route = session.route();
        let enveloped = route.is_enveloped();
        let never = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        Self {
            queue,
            fed: 0,
            fed_frames: 0,
            charged: 0,
            shared,
            state: State::Open,
            ping: None,
            connecting: true,
            read_done: false,
            close_sent: false,
            unflushed: false,
            peer_closed: None,
            rearm: false,
            limited_text: enveloped,
            limited_binary: route.binary_handler().is_none(),
            shutdown_closed: false,
            armed: never,
            heartbeat: Heartbeat::new(config.ping_interval, config.pong_timeout, Instant::now()),
            bucket: TokenBucket::new(config.rate_limit_per_sec, config.rate_limit_burst),
            config,
            session,
            phase: PhaseWatch::new(shared),
            dispatching: shared.dispatch_token(),
            never,
        }
    }

    fn reads(&self) -> bool {
        !self.read_done && self.state != State::Draining
    }

    /// Whether to read: while open, or, `answering` (a handler waits for its client's answer
    /// to a request), while draining too, for that answer only.
    fn can_read(&self, answering: bool) -> bool {
        self.reads() || (answering && !self.read_done && self.state == State::Draining)
    }

    /// The close is complete: our close frame is flushed and the peer's was seen.
    fn finished(&self) -> bool {
        self.close_sent && self.read_done && !self.unflushed
    }

    fn enter_phase(&mut self, phase: Phase) {
        match phase {
            Phase::Running | Phase::Forced => {}
            Phase::Draining => {
                if self.state == State::Open {
                    self.state = State::Draining;
                }
            }
            Phase::Closing => {
                self.shutdown_closed = self
                    .session
                    .client()
                    .outbox()
                    .close(CloseCode::GOING_AWAY, "server shutting down");
                self.dispatching = None;
            }
        }
    }

    /// A handler finished: past the open state, nothing more is dispatched, so the drain no
    /// longer waits for this connection.
    fn step_done(&mut self) {
        if self.state != State::Open {
            self.dispatching = None;
        }
    }

    /// While a handler runs, the connection reads only for the answer the handler may await,
    /// and only until it holds [`HELD_FRAMES`]: otherwise what the client sends, its pongs
    /// included, waits in the socket. A live client must not be dropped for a pong the server
    /// has not read, so the pong wait does not count then (see [`Heartbeat::pause`]). The
    /// price: a client that dies while a handler runs is noticed once the handler is done
    /// (or when a write fails); memory stays bounded by the send queue all along.
    fn pause_pong_wait(&mut self, paused: bool) {
        if self.heartbeat.paused() != paused {
            self.heartbeat.pause(paused, Instant::now());
            // The deadline moved, maybe on a wake-up the read waker did not mark.
            self.rearm = true;
        }
    }

    fn closing(&mut self) {
        if !matches!(self.state, State::Closing { .. }) {
            self.state = State::Closing {
                since: Instant::now(),
            };
            self.rearm = true;
        }
        self.dispatching = None;
    }

    /// Dispatches one frame and polls its handler once; what is left (a handler that waits)
    /// is returned, to be polled with this task's context, so that it wakes this task (a join
    /// guard, say, has not run at all yet).
    fn start(&mut self, data: Data, cx: &mut Context<'_>) -> Started {
        self.queue.quiet();
        let mut step = data.start(self.session, cx);
        if let Some(running) = &mut step
            && running.as_mut().poll(cx).is_ready()
        {
            step = None;
        }
        step
    }

    /// Handles one read: `Ok(Some(data))` for a frame to dispatch.
    fn on_read(&mut self, read: Option<Result<Message, WsError>>) -> Result<Option<Data>, End> {
        let message = match read {
            None => {
                // The codec ends the stream once a close handshake completed, or on EOF.
                self.read_done = true;
                return if self.close_sent || matches!(self.state, State::Closing { .. }) {
                    Ok(None)
                } else {
                    Err(End::Gone)
                };
            }
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                self.read_done = true;
                let (code, reason) = match &err {
                    // The peer closed the TCP connection without a close frame: it is gone,
                    // and there is nobody to send a 1002 to.
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                        return Err(End::Gone);
                    }
                    WsError::Capacity(_) => (CloseCode::TOO_BIG, "message too big"),
                    WsError::Utf8(_) => (CloseCode::INVALID_PAYLOAD, "invalid utf-8"),
                    WsError::Protocol(_) => (CloseCode::PROTOCOL, "protocol error"),
                    _ => {
                        tracing::debug!(error = %err, "read failed");
                        return Err(End::Gone);
                    }
                };
                tracing::debug!(error = %err, code = code.get(), "closing on a bad frame");
                // The read side is unusable; the write side still sends the close frame.
                self.session.client().outbox().close(code, reason);
                self.closing();
                return Ok(None);
            }
        };
        let open = self.state == State::Open;
        let limited = match &message {
            Message::Text(_) => self.limited_text,
            Message::Binary(_) => self.limited_binary,
            // Control frames cost the server work (a pong to write) whatever the route.
            Message::Ping(_) | Message::Pong(_) => true,
            Message::Close(_) | Message::Frame(_) => false,
        };
        if limited && !self.bucket.take() {
            if self.bucket.is_abusive() {
                // A flood: refused at once, then closed (its frames still held will have
                // their replies dropped by the close anyway).
                if let (true, Message::Text(text)) = (open, &message) {
                    self.session.refuse_rate_limited(Some(text.as_str()));
                } else if let (true, Message::Binary(_)) = (open, &message) {
                    self.session.refuse_rate_limited(None);
                }
                self.session
                    .client()
                    .outbox()
                    .close(CloseCode::POLICY, "rate limit exceeded");
            } else {
                match message {
                    // Refused where it would have been dispatched: at once, or after the
                    // frames held before it.
                    Message::Text(text) if open => return Ok(Some(Data::Refused(Some(text)))),
                    Message::Binary(_) if open => return Ok(Some(Data::Refused(None))),
                    _ => {}
                }
            }
            // A ping over the limit is still answered (coalesced).
            if !matches!(message, Message::Ping(_)) {
                return Ok(None);
            }
        }
        match message {
            // Draining, a text frame is read only to find an answer (see `can_read`).
            Message::Text(text) if open || self.state == State::Draining => {
                Ok(Some(Data::Text(text)))
            }
            Message::Binary(data) if open => Ok(Some(Data::Binary(data))),
            // Closing: nothing more is dispatched, only the peer's close is awaited.
            Message::Text(_) | Message::Binary(_) => Ok(None),
            Message::Ping(payload) => {
                // The codec queued the pong; it is written with the next flush and held
                // against the bound until then.
                let pong = payload.len() + 2;
                self.queue.charge(pong);
                self.charged += pong;
                self.unflushed = true;
                Ok(None)
            }
            Message::Pong(payload) => {
                self.heartbeat.pong(&payload);
                Ok(None)
            }
            Message::Close(frame) => {
                // A close the client started (not its answer to one of ours): it says why
                // the client left.
                if !matches!(self.state, State::Closing { .. }) && !self.queue.is_closing() {
                    self.peer_closed = Some(frame.map(|frame| u16::from(frame.code)));
                }
                // The codec queued the close reply; the next flush sends it and the stream
                // then ends.
                self.closing();
                self.close_sent = true;
                self.unflushed = true;
                Ok(None)
            }
            Message::Frame(_) => Ok(None),
        }
    }

    /// The earliest of the heartbeat's and the close's deadlines.
    fn deadline(&self) -> Instant {
        let close = match self.state {
            State::Closing { since } => Some(since + self.config.close_timeout),
            _ => None,
        };
        let beat =
            (self.state == State::Open && !self.read_done).then(|| self.heartbeat.next_deadline());
        match (close, beat) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            // Nothing due: the timer is re-armed when a deadline appears.
            (None, None) => self.never,
        }
    }

    /// Arms the timer for [`deadline`](Self::deadline) and acts on what is due. `cx` is the
    /// read waker's, so that the timer marks the wake-up it causes; the timer is polled when
    /// `marked` (it may have fired) or when its deadline moved, and left alone otherwise.
    /// On an unmarked wake-up the deadline is not even computed unless a close began
    /// (`rearm`): nothing else moves it there, and the heartbeat's fields stay untouched.
    fn poll_timer(
        &mut self,
        cx: &mut Context<'_>,
        mut timer: Pin<&mut Sleep>,
        marked: bool,
    ) -> Result<(), End> {
        let rearm = std::mem::take(&mut self.rearm);
        if !marked && !rearm {
            debug_assert!(
                self.deadline() == self.armed,
                "the deadline moved on an unmarked wake-up without `rearm`"
            );
            return Ok(());
        }
        let mut poll = marked;
        loop {
            let deadline = self.deadline();
            if self.armed != deadline {
                timer.as_mut().reset(deadline);
                self.armed = deadline;
                poll = true;
            }
            if !poll || timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            let now = Instant::now();
            if let State::Closing { since } = self.state
                && now >= since + self.config.close_timeout
            {
                return Err(End::Unresponsive);
            }
            if self.state == State::Open {
                match self.heartbeat.tick(now) {
                    Beat::Ping(payload) => {
                        self.ping = Some(payload);
                        self.charged += MAX_CONTROL_FRAME;
                        if !self.queue.charge(MAX_CONTROL_FRAME) {
                            // The ping overflowed the bound: closing as a slow consumer, from
                            // now (nothing else would wake a client that reads nothing).
                            self.closing();
                        }
                    }
                    Beat::Wait => {}
                    Beat::TimedOut => return Err(End::TimedOut),
                }
            }
        }
    }

    /// Releases the data frames written so far, and `charged` control-frame bytes, from the
    /// send-queue bound, and counts the frames as sent.
    fn release(&mut self, charged: usize) {
        self.queue.written(std::mem::take(&mut self.fed) + charged);
        let frames = std::mem::take(&mut self.fed_frames);
        self.shared.hub.metrics().record_messages_out(frames);
    }

    /// Writes what is queued, up to [`FEED_BYTES`] beyond what the socket takes, as batches of
    /// data frames taken under one lock and written with one system call each (see
    /// `Transport::write_frames`), then flushes once if the socket left something or the
    /// codec wrote; repeats while flushes complete and more is queued.
    /// Control frames (a due ping, the close) go through the codec.
    fn poll_write<S>(
        &mut self,
        cx: &mut Context<'_>,
        ws: &mut WebSocketStream<Transport<S>>,
    ) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            if let Some(payload) = self.ping.take() {
                if let Err(err) =
                    ws.start_send_unpin(Message::Ping(Bytes::copy_from_slice(&payload)))
                {
                    tracing::debug!(error = %err, "write failed");
                    return Err(End::Gone);
                }
                self.unflushed = true;
            }
            let mut close = None;
            while self.fed < FEED_BYTES && !self.close_sent && close.is_none() {
                // The batch is this thread's, reused: nothing to build per wake-up.
                let written = BATCH.with_borrow_mut(|batch| {
                    let mut fed = 0;
                    let taken =
                        self.queue
                            .poll_take(cx, BATCH_FRAMES, FEED_BYTES - self.fed, |item| {
                                let (opcode, payload) = match item {
                                    Outgoing::Frame(frame) => {
                                        (TEXT, Bytes::from(frame.into_text()))
                                    }
                                    Outgoing::Binary(data) => (BINARY, data),
                                    Outgoing::Close(code, reason) => {
                                        close = Some((code, reason));
                                        return;
                                    }
                                };
                                fed += payload.len();
                                batch.push(DataFrame { opcode, payload });
                            });
                    let Poll::Ready(drained) = taken else {
                        return None;
                    };
                    self.fed += fed;
                    let count = batch.len();
                    let written = if count == 0 {
                        Ok(())
                    } else {
                        ws.get_mut().write_frames(cx, batch)
                    };
                    batch.clear();
                    Some((written.map(|()| count), drained))
                });
                let Some((written, drained)) = written else {
                    break;
                };
                match written {
                    Ok(0) => {}
                    Ok(count) => {
                        self.fed_frames += count as u64;
                        if ws.get_ref().is_drained() {
                            // The socket took the whole batch: nothing of it is held.
                            self.release(0);
                        } else {
                            self.unflushed = true;
                        }
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "write failed");
                        return Err(End::Gone);
                    }
                }
                if drained {
                    // Nothing more queued, and the next push wakes the task: no need to look.
                    break;
                }
            }
            if self.fed >= FEED_BYTES && !self.close_sent && self.queue.watch_close(cx) {
                // Not taking from the queue until the socket drains, but a close asked for
                // meanwhile starts its deadline all the same.
                self.closing();
            }
            if let Some((code, reason)) = close {
                // After every data frame queued before it, and the last thing written.
                self.close_sent = true;
                self.closing();
                let frame = CloseFrame {
                    code: WireCloseCode::from(code.get()),
                    reason: String::from(reason).into(),
                };
                if let Err(err) = ws.start_send_unpin(Message::Close(Some(frame))) {
                    tracing::debug!(error = %err, "write failed");
                    return Err(End::Gone);
                }
                self.unflushed = true;
            }
            if !self.unflushed {
                return Ok(());
            }
            match ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    let charged = std::mem::take(&mut self.charged);
                    self.release(charged);
                    self.unflushed = false;
                }
                // The codec ends the connection once the close handshake is done.
                Poll::Ready(Err(_)) if self.close_sent => {
                    self.unflushed = false;
                    return Ok(());
                }
                Poll::Ready(Err(err)) => {
                    tracing::debug!(error = %err, "flush failed");
                    return Err(End::Gone);
                }
                // The socket is full: the transport wakes the task when it drains.
                Poll::Pending => return Ok(()),
            }
        }
    }
}

/// What the heartbeat asks for at a tick.
enum Beat {
    Ping([u8; 8]),
    Wait,
    TimedOut,
}

/// The server pings every `interval`; a ping unanswered after `timeout` drops the client. A
/// ping carries an unpredictable payload and only a pong echoing it counts, so a client that
/// never reads cannot stay alive on blind pongs.
struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    /// The payload of the ping awaiting its pong, and when it is due.
    awaiting: Option<([u8; 8], Instant)>,
    pings: u64,
    /// Since when the connection has not been reading (a handler runs, see
    /// [`Connection::pause_pong_wait`]): a pong would sit unread in the socket, so that time
    /// does not count against the wait for one.
    paused_since: Option<Instant>,
}

impl Heartbeat {
    fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Self {
            interval,
            timeout,
            next_ping: now + interval,
            awaiting: None,
            pings: 0,
            paused_since: None,
        }
    }

    fn next_deadline(&self) -> Instant {
        match self.awaiting {
            Some((_, due)) if self.paused_since.is_none() => due.min(self.next_ping),
            _ => self.next_ping,
        }
    }

    fn tick(&mut self, now: Instant) -> Beat {
        if self.paused_since.is_none() && self.awaiting.is_some_and(|(_, due)| now >= due) {
            return Beat::TimedOut;
        }
        if now < self.next_ping {
            return Beat::Wait;
        }
        self.next_ping = now + self.interval;
        // A ping still unanswered is sent again with the same payload: any of them may be
        // the one answered.
        let (payload, _) = *self.awaiting.get_or_insert_with(|| {
            self.pings += 1;
            (unpredictable(self.pings), now + self.timeout)
        });
        Beat::Ping(payload)
    }

    fn paused(&self) -> bool {
        self.paused_since.is_some()
    }

    /// Stops or resumes counting the wait for a pong. Resumed, the pong still awaited is due
    /// later by the time the wait was paused (from the pause, or from the ping if it was sent
    /// during the pause): only time spent reading counts, so a client that died while a
    /// handler ran is dropped once the connection has read for a whole `timeout`, however
    /// often handlers pause it.
    fn pause(&mut self, paused: bool, now: Instant) {
        if paused {
            self.paused_since.get_or_insert(now);
            return;
        }
        let Some(since) = self.paused_since.take() else {
            return;
        };
        if let Some((_, due)) = &mut self.awaiting {
            // When the wait began, as `due` counts it (credits of earlier pauses included).
            let waiting_since = due.checked_sub(self.timeout).unwrap_or(since);
            *due += now.saturating_duration_since(since.max(waiting_since));
        }
    }

    /// The peer sent a pong: it counts only if it answers the ping awaiting one.
    fn pong(&mut self, payload: &[u8]) {
        if self
            .awaiting
            .is_some_and(|(expected, _)| payload == expected.as_slice())
        {
            self.awaiting = None;
        }
    }
}

/// Eight bytes a peer cannot guess without reading them: `RandomState` is seeded from the
/// operating system's randomness, once per thread, and mixed with a counter and the clock.
fn unpredictable(counter: u64) -> [u8; 8] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    std::collections::hash_map::RandomState::new()
        .hash_one((counter, nanos))
        .to_le_bytes()
}

/// The per-connection frame budget: `burst` at once, refilled at `rate` per second. Ten times
/// the burst refused, with the bucket never refilling to full in between, marks the client as
/// abusive (a flood); a client that pauses long enough to refill starts with a clean slate.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    refused: u64,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
            refused: 0,
        }
    }

    fn take(&mut self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= self.burst {
            self.refused = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    fn is_abusive(&self) -> bool {
        self.refused as f64 >= 10.0 * self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pong_to_the_ping_keeps_a_client_alive() {
        let start = Instant::now();
        let mut beat = Heartbeat::new(Duration::from_secs(1), Duration::from_secs(2), start);
        assert!(matches!(beat.tick(start), Beat::Wait));
        let Beat::Ping(payload) = beat.tick(start + Duration::from_secs(1)) else {
            panic!("a ping is due")
        };
        beat.pong(b"guessed!");
        beat.pong(&[]);
        assert!(beat.awaiting.is_some(), "blind pongs do not count");
        let Beat::Ping(again) = beat.tick(start + Duration::from_secs(2)) else {
            panic!("a ping is due")
        };
        assert_eq!(payload, again, "an unanswered ping is repeated");
        assert!(matches!(
            beat.tick(start + Duration::from_secs(3)),
            Beat::TimedOut
        ));
        beat.pong(&payload);
        assert!(beat.awaiting.is_none());
    }

    #[test]
    fn only_time_spent_reading_counts_against_the_pong_wait() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut beat = Heartbeat::new(Duration::from_secs(1), Duration::from_secs(2), start);
        assert!(matches!(beat.tick(ms(1000)), Beat::Ping(_)));
        assert_eq!(beat.next_deadline(), ms(2000), "the next ping");
        // 0.5 s of the 2 s wait pass while reading, then a pause of 3 s.
        beat.pause(true, ms(1500));
        beat.pause(true, ms(1700)); // still the same pause
        // Past the pong's due time (3 s): pings go on, no timeout, and the deadline is the
        // next ping's alone.
        assert!(matches!(beat.tick(ms(4000)), Beat::Ping(_)));
        assert!(matches!(beat.tick(ms(4000)), Beat::Wait));
        assert_eq!(beat.next_deadline(), ms(5000));
        beat.pause(false, ms(4500));
        // 1.5 s of reading left: due at 6 s.
        assert!(matches!(beat.tick(ms(5999)), Beat::Ping(_)));
        assert!(matches!(beat.tick(ms(6000)), Beat::TimedOut));
        // A ping sent during a pause is waited for from the ping, not from the pause.
        let mut beat = Heartbeat::new(Duration::from_secs(1), Duration::from_secs(2), start);
        beat.pause(true, ms(500));
        assert!(matches!(beat.tick(ms(1000)), Beat::Ping(_)));
        beat.pause(false, ms(1800));
        assert!(matches!(beat.tick(ms(3799)), Beat::Ping(_)));
        assert!(matches!(beat.tick(ms(3800)), Beat::TimedOut));
        // Pauses add up to no more than they lasted: with repeated pauses, a client that
        // never answers is still dropped after 2 s of reading.
        let mut beat = Heartbeat::new(Duration::from_secs(10), Duration::from_secs(2), start);
        assert!(matches!(beat.tick(ms(10_000)), Beat::Ping(_)));
        for i in 0..3 {
            beat.pause(true, ms(10_000 + i * 1000 + 500));
            beat.pause(false, ms(10_000 + i * 1000 + 1000));
        }
        // 1.5 s paused in all: due at 13.5 s.
        assert!(matches!(beat.tick(ms(13_499)), Beat::Wait));
        assert!(matches!(beat.tick(ms(13_500)), Beat::TimedOut));
    }

    #[test]
    fn ping_payloads_differ() {
        assert_ne!(unpredictable(1), unpredictable(1));
    }
}
/// What the tests below share: an engine serving `/ws`, and a TCP connection to it admitted
/// by the handshake policy, ready for `run` or `serve`.
#[cfg(test)]
mod admitted {
    use std::sync::Arc;
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue};

    use crate::engine::Shared;
    use crate::policy::Admission;

    pub(super) struct Admitted {
        pub(super) shared: Arc<Shared>,
        pub(super) client: TcpStream,
        pub(super) server: TcpStream,
        pub(super) admission: Admission,
    }

    pub(super) async fn connection() -> Admitted {
        let engine = crate::Server::builder(vania_ws_core::Router::new().websocket("/ws", |_| {}))
            .build()
            .unwrap();
        let shared = engine.shared.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let admission = crate::policy::admit(&shared, "GET", "/ws", headers, peer)
            .await
            .unwrap_or_else(|refusal| panic!("refused: {refusal:?}"));
        Admitted {
            shared,
            client,
            server,
            admission,
        }
    }
}
#[cfg(test)]
mod task_size {
    /// An idle connection is mostly its task: keep the task small. The future of the
    /// connection's task (`run::<TcpStream>`; the handshake's task is another, freed once
    /// upgraded) measured 864 bytes with rustc 1.95 (848 in release), to which tokio adds
    /// its task header; the bound leaves room for small changes, not for a state (such as
    /// the handshake's, 1.2 KB) kept for the connection's whole life.
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let super::admitted::Admitted {
            shared,
            server,
            admission,
            ..
        } = super::admitted::connection().await;
        let (session, queue) =
            vania_ws_core::Session::new(&shared.hub, admission.route, admission.extensions)
                .unwrap();
        let task = super::run(
            server,
            Vec::new(),
            session,
            queue,
            admission.slot,
            shared.clone(),
        );
        let size = std::mem::size_of_val(&task);
        assert!(
            size <= 1280,
            "a connection's task is {size} bytes (bound 1280)"
        );
    }
}
#[cfg(test)]
mod late_start {
    use futures_util::StreamExt;
    use std::time::Duration;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use crate::engine::Phase;

    /// A connection admitted just before a shutdown, whose task first runs once the shutdown
    /// is in its close phase, is closed with 1001 at once. Its phase watch alone reports only
    /// the changes after that first run, so the connection would stay open until forced.
    #[tokio::test]
    async fn a_connection_that_starts_in_the_close_phase_is_closed_with_1001() {
        let super::admitted::Admitted {
            shared,
            client,
            server,
            admission,
        } = super::admitted::connection().await;
        shared.advance(Phase::Draining);
        shared.advance(Phase::Closing);
        super::serve(server, Vec::new(), admission, shared.clone());
        let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let code = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|frame| frame.code),
                    // `connected`, queued as the client registered.
                    Some(Ok(Message::Text(_))) => {}
                    other => panic!("no close frame: {other:?}"),
                }
            }
        })
        .await
        .expect("closed at once, not left open until the shutdown is forced");
        assert_eq!(code, Some(CloseCode::Away));
    }
}
