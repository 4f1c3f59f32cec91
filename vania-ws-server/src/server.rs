//! The server: binds, accepts, routes each handshake by path, and drains on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vania_ws_core::{
    Adapter, Handle, Hub, HubConfig, LocalAdapter, RouteTable, Router, RouterError,
};

use crate::config::{ConfigError, ServerConfig};
use crate::connection;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The routes are invalid (duplicate handler, bad path, …).
    #[error("invalid routes: {0}")]
    Router(#[from] RouterError),
    /// The settings are invalid.
    #[error("invalid settings: {0}")]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) routes: RouteTable,
    pub(crate) hub: Arc<Hub>,
    pub(crate) ws_config: WebSocketConfig,
    /// Shutdown, phase 1: stop dispatching new frames.
    pub(crate) drain: CancellationToken,
    /// Tokens held by connections that may still dispatch; phase 1 waits for them.
    pub(crate) drain_tracker: TaskTracker,
    /// Shutdown, phase 2: close every connection with 1001 after its queued frames.
    pub(crate) close: CancellationToken,
    /// Past the shutdown deadline: drop every connection now.
    pub(crate) force: CancellationToken,
}

/// Builds a [`Server`] from a [`Router`] and settings.
pub struct ServerBuilder {
    router: Router,
    config: ServerConfig,
    adapter: Arc<dyn Adapter>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("router", &self.router)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Replaces the settings.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the address to listen on.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.config.host = host.into();
        self
    }

    /// Sets the port to listen on (`0` picks a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// Sends `to`, `to_room` and `broadcast` through `adapter` (the default delivers in this
    /// process only).
    pub fn adapter(mut self, adapter: Arc<dyn Adapter>) -> Self {
        self.adapter = adapter;
        self
    }

    /// Checks the routes and binds the listening socket.
    pub async fn bind(self) -> Result<Server, ServeError> {
        self.config.validate()?;
        let routes = self.router.build()?;
        let config = self.config;
        let hub = Hub::for_table(
            &routes,
            HubConfig::default()
                .send_queue_bytes(config.send_queue_bytes)
                .max_rooms_per_client(config.max_rooms_per_client),
            self.adapter,
        );
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(16 * 1024)
            .max_message_size(Some(config.max_message_bytes))
            .max_frame_size(Some(config.max_message_bytes));
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                routes,
                hub,
                ws_config,
                drain: CancellationToken::new(),
                drain_tracker: TaskTracker::new(),
                close: CancellationToken::new(),
                force: CancellationToken::new(),
            }),
        })
    }
}

/// A bound vania-ws server. Run it with [`run`](Self::run) (until Ctrl-C or SIGTERM) or
/// [`run_until`](Self::run_until) (until a future completes).
///
/// ```no_run
/// use vania_ws_server::{Client, Router, Server, ServerConfig};
/// use vania_ws_server::serde_json::Value;
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let router = Router::new().websocket("/ws", |ev| {
///         ev.on("message", |client: Client, payload: Value| async move {
///             client.emit("message", &payload)
///         });
///     });
///     Server::builder(router)
///         .config(ServerConfig::from_env()?)
///         .bind()
///         .await?
///         .run()
///         .await;
///     Ok(())
/// }
/// ```
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .field("routes", &self.shared.routes.paths())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A builder for a server of `router`'s routes, with default settings.
    pub fn builder(router: Router) -> ServerBuilder {
        ServerBuilder {
            router,
            config: ServerConfig::default(),
            adapter: Arc::new(LocalAdapter),
        }
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle for sending from outside any handler.
    pub fn handle(&self) -> Handle {
        Handle::new(self.shared.hub.clone())
    }

    /// Serves until Ctrl-C or SIGTERM, then drains (see [`run_until`](Self::run_until)).
    pub async fn run(self) {
        self.run_until(shutdown_signal()).await;
    }

    /// Serves until `signal` completes, then drains: stops accepting at once, lets handlers in
    /// flight finish, sends every client what was queued for it and a close 1001, and returns
    /// when every connection has ended or the shutdown timeout has passed.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        let shared = self.shared;
        let addr = self
            .listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |addr| addr.to_string());
        if shared.config.websocket {
            tracing::info!(routes = ?shared.routes.paths(), "vania-ws listening on ws://{addr}");
        } else {
            tracing::warn!(
                "vania-ws listening on {addr}, but APP_WEBSOCKET is false: no websocket route is served, every path answers 404"
            );
        }
        let tracker = TaskTracker::new();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        tracker.spawn(connection::serve(stream, shared.clone()));
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        // Out of file descriptors and the like: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(self.listener);
        let deadline = tokio::time::Instant::now() + shared.config.shutdown_timeout;
        tracing::info!(
            clients = shared.hub.client_count(),
            "shutting down: draining connections"
        );
        // Phase 1: no new frame is dispatched; handlers in flight finish and may still send.
        shared.drain.cancel();
        shared.drain_tracker.close();
        // Handlers in flight get at most half the deadline; the close phase keeps the rest.
        let drain_deadline = tokio::time::Instant::now() + shared.config.shutdown_timeout / 2;
        let drained = tokio::time::timeout_at(drain_deadline, shared.drain_tracker.wait()).await;
        // Phase 2: every client gets what is queued for it, then close 1001.
        shared.close.cancel();
        tracker.close();
        let closed = tokio::time::timeout_at(deadline, tracker.wait()).await;
        if drained.is_err() {
            tracing::warn!("handlers still running at half the shutdown timeout: closing anyway");
        }
        if closed.is_err() {
            tracing::warn!(
                clients = shared.hub.client_count(),
                "shutdown timeout passed with connections still open: dropping them"
            );
            shared.force.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
        }
        tracing::info!("vania-ws stopped");
    }
}

/// Completes on Ctrl-C, or on SIGTERM on Unix.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
