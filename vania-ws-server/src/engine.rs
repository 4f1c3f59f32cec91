//! The engine every front end shares: the routes, the hub, the limits, the connections and
//! their shutdown. The standalone [`Server`](crate::Server) and the axum integration only
//! differ in how the HTTP upgrade reaches it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;
use vania_ws_core::adapter::Adapter;
use vania_ws_core::router::RouteTable;
use vania_ws_core::{Handle, Hub, HubConfig, Router};

use crate::config::ServerConfig;
use crate::connection::CODEC_WRITE_LIMIT;
use crate::pending::PendingHandshakes;
use crate::server::ServeError;

/// Where the server is in its life. Only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Serving.
    Running = 0,
    /// Shutdown, phase 1: no new frame is dispatched; handlers in flight finish.
    Draining = 1,
    /// Shutdown, phase 2: every connection closes with 1001 after its queued frames.
    Closing = 2,
    /// Past the shutdown deadline: every connection is dropped now.
    Forced = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Phase::Running,
            1 => Phase::Draining,
            2 => Phase::Closing,
            _ => Phase::Forced,
        }
    }
}

pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) routes: RouteTable,
    pub(crate) hub: Arc<Hub>,
    pub(crate) ws_config: WebSocketConfig,
    pub(crate) pending: PendingHandshakes,
    phase: AtomicU8,
    phase_changed: Notify,
    /// Tokens held by connections that may still dispatch; phase 1 waits for them.
    dispatching: TaskTracker,
    /// Every connection task; phase 2 waits for them.
    connections: TaskTracker,
}

impl Shared {
    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub(crate) fn advance(&self, phase: Phase) {
        self.phase.fetch_max(phase as u8, Ordering::AcqRel);
        self.phase_changed.notify_waiters();
    }

    /// A token that holds phase 1 of a shutdown open; `None` once the drain has begun.
    pub(crate) fn dispatch_token(&self) -> Option<TaskTrackerToken> {
        let token = self.dispatching.token();
        // Taken after the check it would race with: a token taken as the drain begins is
        // dropped by the connection on its first look at the phase.
        (self.phase() == Phase::Running).then_some(token)
    }

    /// Runs a connection's task, tracked for the shutdown.
    pub(crate) fn spawn_connection<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.connections.spawn(task);
    }
}

/// Follows the server's phase from one connection: one `Notified` for the connection's
/// lifetime, re-armed on the (at most three) changes.
///
/// Polling a waiting `Notified` takes its `Notify`'s lock, shared by every connection, so it
/// is polled once to register the caller's waker and then only after the phase changed (an
/// atomic load per look). A caller whose waker changes says so with
/// [`reregister`](Self::reregister); a connection looks only on the wake-ups its read waker
/// marks (see `wake.rs`), and registers that waker.
pub(crate) struct PhaseWatch<'a> {
    shared: &'a Shared,
    notified: Pin<Box<Notified<'a>>>,
    registered: bool,
    seen: Phase,
}

impl<'a> PhaseWatch<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        let mut notified = Box::pin(shared.phase_changed.notified());
        // Registered before the phase is read: a change in between is not missed.
        notified.as_mut().enable();
        Self {
            shared,
            notified,
            registered: false,
            seen: shared.phase(),
        }
    }

    /// The phase now.
    pub(crate) fn phase(&self) -> Phase {
        self.seen
    }

    /// Registers the waker of the next [`poll_changed`](Self::poll_changed) even if the phase
    /// has not changed: for a caller whose waker changed.
    pub(crate) fn reregister(&mut self) {
        self.registered = false;
    }

    /// `Ready` with the new phase when it changed since the last look.
    pub(crate) fn poll_changed(&mut self, cx: &mut Context<'_>) -> Poll<Phase> {
        if self.registered && self.shared.phase() == self.seen {
            return Poll::Pending;
        }
        self.registered = true;
        while self.notified.as_mut().poll(cx).is_ready() {
            self.notified.set(self.shared.phase_changed.notified());
            self.notified.as_mut().enable();
        }
        let now = self.shared.phase();
        if now != self.seen {
            self.seen = now;
            return Poll::Ready(now);
        }
        Poll::Pending
    }
}

/// The routes, the hub and the limits of a vania-ws app, ready to serve connections from any
/// front end: the standalone [`Server`](crate::Server), or an axum app (feature `axum`, see
/// [`Engine::axum_routes`]). Cheap to clone.
///
/// ```no_run
/// use vania_ws_server::{Router, Server, ServerConfig};
/// # async fn run(router: Router) -> Result<(), vania_ws_server::error::ServeError> {
/// let engine = Server::builder(router).config(ServerConfig::from_env()?).build()?;
/// let handle = engine.handle(); // send from anywhere: REST handlers, timers
/// # let _ = handle;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("routes", &self.shared.routes.paths())
            .field("phase", &self.shared.phase())
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn build(
        router: Router,
        config: ServerConfig,
        adapter: Arc<dyn Adapter>,
    ) -> Result<Self, ServeError> {
        config.validate()?;
        let routes = router.build()?;
        let hub = Hub::for_table(
            &routes,
            HubConfig::default()
                .send_queue_bytes(config.send_queue_bytes)
                .max_rooms_per_client(config.max_rooms_per_client)
                .ack_timeout(config.ack_timeout),
            adapter,
        );
        let ws_config = WebSocketConfig::default()
            // An idle connection holds this much, so it is small. Socket reads go through a
            // per-thread buffer (`transport.rs`), so a small codec buffer costs copies, not
            // system calls; a large message grows it to the message's length.
            .read_buffer_size(READ_BUFFER_BYTES)
            // The codec writes only control frames (data frames bypass it, `transport.rs`):
            // straight through, and never more than a few of them; pongs beyond the cap are
            // coalesced into one by the codec.
            .write_buffer_size(0)
            .max_write_buffer_size(CODEC_WRITE_LIMIT)
            .max_message_size(Some(config.max_message_bytes))
            .max_frame_size(Some(config.max_message_bytes));
        let pending = PendingHandshakes::new(config.max_pending_handshakes);
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                routes,
                hub,
                ws_config,
                pending,
                phase: AtomicU8::new(Phase::Running as u8),
                phase_changed: Notify::new(),
                dispatching: TaskTracker::new(),
                connections: TaskTracker::new(),
            }),
        })
    }

    /// A handle for sending from outside any handler.
    pub fn handle(&self) -> Handle {
        Handle::new(self.shared.hub.clone())
    }

    /// The settings in force.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Drains every connection: no new connection is accepted (503) and no new frame is
    /// dispatched; handlers in flight finish (for at most half the shutdown timeout); every
    /// client then gets what was queued for it and a close 1001. Returns when every
    /// connection has ended, or past the shutdown timeout, when the rest are dropped.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        if shared.phase() != Phase::Running {
            return;
        }
        let timeout = shared.config.shutdown_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        tracing::info!(
            clients = shared.hub.client_count(),
            "shutting down: draining connections"
        );
        shared.advance(Phase::Draining);
        shared.dispatching.close();
        let drained = tokio::time::timeout(timeout / 2, shared.dispatching.wait()).await;
        if drained.is_err() {
            tracing::warn!("handlers still running at half the shutdown timeout: closing anyway");
        }
        shared.advance(Phase::Closing);
        shared.connections.close();
        if tokio::time::timeout_at(deadline, shared.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                clients = shared.hub.client_count(),
                "shutdown timeout passed with connections still open: dropping them"
            );
            shared.advance(Phase::Forced);
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.connections.wait()).await;
        }
        shared.hub.close_adapter().await;
        tracing::info!("vania-ws stopped");
    }

    /// Waits for `signal`, then [`shutdown`](Self::shutdown)s: for
    /// `axum::serve(…).with_graceful_shutdown(engine.shutdown_after(shutdown_signal()))`,
    /// which then stops the HTTP side once the WebSocket side has drained.
    pub async fn shutdown_after(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

/// The codec's read buffer per connection.
const READ_BUFFER_BYTES: usize = 256;
