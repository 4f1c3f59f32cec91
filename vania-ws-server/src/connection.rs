//! One connection: the handshake, then a reader that dispatches frames in order and a writer
//! that drains the client's queue to the socket. The reader also keeps the heartbeat, the rate
//! limit and the shutdown phases.

use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::Instrument;
use vania_ws_core::{Client, Hub, Metrics, OutboxReceiver, Outgoing, Session, close_code};

use crate::handshake;
use crate::server::Shared;

/// How many queued frames the writer batches before one flush.
const WRITE_BATCH: usize = 64;
/// Larger outgoing messages are sent as fragments of this size: tungstenite's write buffer
/// never shrinks, so this bounds what a burst of large messages leaves behind per connection.
const FRAGMENT_BYTES: usize = 16 * 1024;

type Sink = futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>;

pub(crate) async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let Ok(peer) = stream.peer_addr() else { return };
    let _ = stream.set_nodelay(true);
    let upgraded = tokio::select! {
        upgraded = tokio::time::timeout(
            shared.config.handshake_timeout,
            handshake::upgrade(&mut stream, peer, &shared),
        ) => upgraded,
        () = shared.force.cancelled() => return,
    };
    let upgrade = match upgraded {
        Ok(Some(upgrade)) => upgrade,
        Ok(None) => return,
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };
    // The drain phase waits for this token: held while the connection may still dispatch.
    // (The handshake refuses upgrades once the drain has begun.)
    let dispatching = shared.drain_tracker.token();
    let ws = WebSocketStream::from_partially_read(
        stream,
        upgrade.leftover,
        Role::Server,
        Some(shared.ws_config),
    )
    .await;
    let (session, queue) = Session::new(&shared.hub, upgrade.route.clone(), upgrade.extensions);
    let span = tracing::info_span!(
        "ws",
        client = session.client().id(),
        route = upgrade.route.path()
    );
    let connection = Connection {
        shared,
        session,
        dispatching: Some(dispatching),
    };
    connection.run(ws, queue).instrument(span).await;
    drop(upgrade.slot);
}

struct Connection {
    shared: Arc<Shared>,
    session: Session,
    dispatching: Option<tokio_util::task::task_tracker::TaskTrackerToken>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading and dispatching.
    Open,
    /// Shutting down: no new frame is dispatched; waiting for the close phase.
    Draining,
    /// A close frame is on its way (or the socket failed): waiting for the peer, until then.
    Closing(Instant),
}

impl Connection {
    async fn run(mut self, ws: WebSocketStream<TcpStream>, queue: OutboxReceiver) {
        let (sink, mut stream) = ws.split();
        let writer_done = Arc::new(Notify::new());
        let writer = tokio::spawn(
            write_loop(sink, queue, self.shared.hub.clone(), writer_done.clone())
                .instrument(tracing::Span::current()),
        );
        let client = self.session.client().clone();
        let config = &self.shared.config;
        let force = self.shared.force.clone();

        // `connected` is already queued; the writer is running, so a slow `connect` handler
        // delays nothing that was sent before it.
        tokio::select! {
            () = self.session.run_connect() => {}
            () = force.cancelled() => {}
        }

        let mut phase = Phase::Open;
        // A peer that stopped answering gets no close handshake: its TCP connection is dropped.
        let mut dead = false;
        // The closing deadline passed: the peer is not reading, do not wait on the writer.
        let mut unresponsive = false;
        let mut heartbeat = Heartbeat::new(config.ping_interval, config.pong_timeout);
        let mut bucket = TokenBucket::new(config.rate_limit_per_sec, config.rate_limit_burst);
        // Raw routes speak their own protocol: no vania-ws error frames, no rate limit.
        let raw_text = self.session.route().text_handler().is_some();
        let raw_binary = self.session.route().binary_handler().is_some();
        loop {
            let closing_deadline = match phase {
                Phase::Closing(since) => Some(since + config.close_timeout),
                _ => None,
            };
            // No heartbeat while draining (frames are not read then) or closing.
            let beat = (phase == Phase::Open).then(|| heartbeat.next_deadline());
            let reading = phase != Phase::Draining;
            let not_closing = !matches!(phase, Phase::Closing(_));
            let message = tokio::select! {
                biased;
                () = force.cancelled() => break,
                () = self.shared.drain.cancelled(), if phase == Phase::Open => {
                    phase = Phase::Draining;
                    self.dispatching = None;
                    continue;
                }
                () = self.shared.close.cancelled(), if not_closing => {
                    client.close(close_code::GOING_AWAY, "server shutting down");
                    phase = Phase::Closing(Instant::now());
                    self.dispatching = None;
                    continue;
                }
                () = client.outbox().closing(), if not_closing => {
                    phase = Phase::Closing(Instant::now());
                    self.dispatching = None;
                    continue;
                }
                () = writer_done.notified(), if not_closing => {
                    phase = Phase::Closing(Instant::now());
                    self.dispatching = None;
                    continue;
                }
                () = sleep_until(closing_deadline) => {
                    // The peer did not complete the close in time: drop it.
                    unresponsive = true;
                    break;
                }
                message = stream.next(), if reading => message,
                () = sleep_until(beat) => {
                    match heartbeat.tick(Instant::now()) {
                        Beat::Ping => client.outbox().ping(),
                        Beat::Wait => {}
                        Beat::TimedOut => {
                            tracing::debug!("no pong in time: dropping the client");
                            Metrics::bump(&self.shared.hub.metrics().pings_timed_out);
                            dead = true;
                            break;
                        }
                    }
                    continue;
                }
            };
            let message = match message {
                None => break,
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    let (code, reason) = close_for(&err);
                    tracing::debug!(error = %err, ?code, "read failed");
                    if let Some(code) = code {
                        // The read side is unusable; the writer still sends the close frame.
                        client.close(code, reason);
                        let _ = tokio::time::timeout(config.close_timeout, writer_done.notified())
                            .await;
                    }
                    break;
                }
            };
            // The event budget, for the data frames of enveloped routes.
            let limited = match &message {
                Message::Text(text) => (!raw_text).then(|| Some(text.as_str())),
                Message::Binary(_) => (!raw_binary).then_some(None),
                _ => None,
            };
            if let Some(text) = limited
                && phase == Phase::Open
                && !bucket.take(Instant::now())
            {
                self.session.refuse_rate_limited(text);
                if bucket.is_abusive() {
                    client.close(close_code::POLICY, "rate limit exceeded");
                }
                continue;
            }
            match message {
                Message::Text(_) | Message::Binary(_) if phase != Phase::Open => {
                    // Closing: nothing more is dispatched, only the peer's close is awaited.
                }
                Message::Text(text) => {
                    tokio::select! {
                        () = async {
                            if !self.session.handle_raw_text(&text).await {
                                self.session.handle_text(&text).await;
                            }
                        } => {}
                        () = force.cancelled() => break,
                    }
                }
                Message::Binary(data) => {
                    tokio::select! {
                        () = self.session.handle_binary_data(data) => {}
                        () = force.cancelled() => break,
                    }
                }
                Message::Close(_) => {
                    // tungstenite queues the close reply; reading on flushes it and ends the
                    // stream.
                    if not_closing {
                        phase = Phase::Closing(Instant::now());
                        self.dispatching = None;
                    }
                }
                Message::Pong(_) => heartbeat.pong(),
                Message::Ping(_) | Message::Frame(_) => {}
            }
        }
        self.dispatching = None;
        if dead || unresponsive {
            writer.abort();
        }
        self.finish(client, writer).await;
    }

    async fn finish(self, client: Client, writer: tokio::task::JoinHandle<()>) {
        if client.outbox().overflowed() {
            Metrics::bump(&self.shared.hub.metrics().slow_consumers);
            tracing::debug!("closed as a slow consumer");
        }
        let force = self.shared.force.clone();
        // Past the shutdown deadline the `disconnect` handler is skipped, never the cleanup.
        tokio::select! {
            biased;
            () = force.cancelled() => {}
            () = self.session.run_disconnect() => {}
        }
        self.session.unregister();
        client.close(close_code::NORMAL, "");
        if force.is_cancelled() {
            writer.abort();
        }
        let abort = writer.abort_handle();
        if tokio::time::timeout(self.shared.config.close_timeout, writer)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn close_for(err: &WsError) -> (Option<u16>, &'static str) {
    match err {
        WsError::Capacity(_) => (Some(close_code::TOO_BIG), "message too big"),
        WsError::Utf8(_) => (Some(close_code::INVALID_PAYLOAD), "invalid utf-8"),
        WsError::Protocol(_) => (Some(1002), "protocol error"),
        _ => (None, ""),
    }
}

async fn write_loop(mut sink: Sink, mut queue: OutboxReceiver, hub: Arc<Hub>, done: Arc<Notify>) {
    let out = &hub.metrics().messages_out;
    'outer: while let Some(item) = queue.recv().await {
        let mut next = Some(item);
        let mut batched = 0;
        while let Some(item) = next.take() {
            let message = match item {
                Outgoing::Frame(frame) => {
                    out.fetch_add(1, Ordering::Relaxed);
                    let text = frame.into_text();
                    if text.len() <= FRAGMENT_BYTES {
                        Message::Text(text)
                    } else if feed_fragments(&mut sink, text.into(), OpData::Text).await {
                        continue;
                    } else {
                        break 'outer;
                    }
                }
                Outgoing::Binary(data) => {
                    out.fetch_add(1, Ordering::Relaxed);
                    if data.len() <= FRAGMENT_BYTES {
                        Message::Binary(data)
                    } else if feed_fragments(&mut sink, data, OpData::Binary).await {
                        continue;
                    } else {
                        break 'outer;
                    }
                }
                Outgoing::Ping => Message::Ping(Default::default()),
                Outgoing::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break 'outer;
                }
            };
            if sink.feed(message).await.is_err() {
                break 'outer;
            }
            batched += 1;
            if batched < WRITE_BATCH {
                next = queue.try_recv();
            }
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    done.notify_one();
}

/// Feeds one large message as fragments of at most [`FRAGMENT_BYTES`] (slices of the shared
/// buffer, not copies); `false` when the socket failed.
async fn feed_fragments(sink: &mut Sink, data: bytes::Bytes, kind: OpData) -> bool {
    let mut start = 0;
    while start < data.len() {
        let end = (start + FRAGMENT_BYTES).min(data.len());
        let opcode = if start == 0 {
            OpCode::Data(kind)
        } else {
            OpCode::Data(OpData::Continue)
        };
        let fragment = WsFrame::message(data.slice(start..end), opcode, end == data.len());
        if sink.feed(Message::Frame(fragment)).await.is_err() {
            return false;
        }
        start = end;
    }
    true
}

/// What the heartbeat asks for at a tick.
enum Beat {
    Ping,
    Wait,
    TimedOut,
}

/// Server pings every `interval`; a ping unanswered after `timeout` drops the client.
struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    pong_due: Option<Instant>,
}

impl Heartbeat {
    fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            next_ping: Instant::now() + interval,
            pong_due: None,
        }
    }

    fn next_deadline(&self) -> Instant {
        match self.pong_due {
            Some(due) => due.min(self.next_ping),
            None => self.next_ping,
        }
    }

    fn tick(&mut self, now: Instant) -> Beat {
        if self.pong_due.is_some_and(|due| now >= due) {
            return Beat::TimedOut;
        }
        if now >= self.next_ping {
            self.next_ping = now + self.interval;
            self.pong_due.get_or_insert(now + self.timeout);
            return Beat::Ping;
        }
        Beat::Wait
    }

    /// The peer answered.
    fn pong(&mut self) {
        self.pong_due = None;
    }
}

/// The per-connection event budget: `burst` at once, refilled at `rate` per second. Ten times
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

    fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
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
