//! The standalone server: binds with the configured backlog, accepts, and hands each
//! connection to the engine; drains on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use vania_ws_core::adapter::{Adapter, LocalAdapter};
use vania_ws_core::error::RouterError;
use vania_ws_core::{Handle, Router};

use crate::config::{ConfigError, ServerConfig};
use crate::connection;
use crate::engine::{Engine, Shared};

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
    /// The adapter could not start (a broker it requires is unreachable, say).
    #[error("the adapter could not start: {0}")]
    Adapter(#[from] vania_ws_core::adapter::AdapterError),
    /// [`ServerBuilder::build`] was used with an adapter that starts asynchronously (it
    /// connects to a broker): use [`ServerBuilder::start`], which awaits it.
    #[error(
        "this adapter starts asynchronously (it connects to the other nodes): build the engine with `ServerBuilder::start().await` instead of `build()`"
    )]
    AdapterStartsAsync,
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds a [`Server`] (or an [`Engine`] for another front end) from a [`Router`] and settings.
pub struct ServerBuilder {
    router: Router,
    pub(crate) config: ServerConfig,
    /// `None`: the default, [`LocalAdapter`], or the Redis adapter when `REDIS_URL` is set.
    adapter: Option<Arc<dyn Adapter>>,
    on_start: Vec<Box<dyn FnOnce(Handle) + Send>>,
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

    /// Sends `to`, `to_room` and `broadcast` through `adapter`. The default delivers in this
    /// process only, or, with the `redis` feature and `REDIS_URL` in the settings
    /// ([`ServerConfig::from_env`]), across every process that shares the Redis.
    pub fn adapter(mut self, adapter: Arc<dyn Adapter>) -> Self {
        self.adapter = Some(adapter);
        self
    }

    /// Runs `hook` with the server's [`Handle`] as soon as the engine is built, before any
    /// connection is served: the place to start a background task that sends (a clock, a
    /// feed), with no handle to thread through by hand. Hooks run in the order added, once the
    /// adapter has started, in [`build`](Self::build), [`start`](Self::start) or
    /// [`bind`](Self::bind); to do async work, spawn it.
    ///
    /// ```no_run
    /// # use vania_ws_server::{Router, Server};
    /// # use vania_ws_server::serde_json::json;
    /// # async fn run(router: Router) -> Result<(), vania_ws_server::error::ServeError> {
    /// let server = Server::builder(router)
    ///     .on_start(|handle| {
    ///         tokio::spawn(async move {
    ///             let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    ///             loop {
    ///                 tick.tick().await;
    ///                 let _ = handle.broadcast("tick", &json!({}));
    ///             }
    ///         });
    ///     })
    ///     .bind()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn on_start(mut self, hook: impl FnOnce(Handle) + Send + 'static) -> Self {
        self.on_start.push(Box::new(hook));
        self
    }

    /// Checks the settings and the routes and builds the engine, without listening: for a
    /// front end of your own, such as an axum app ([`Engine::axum_routes`], feature `axum`).
    /// Runs the [`on_start`](Self::on_start) hooks.
    ///
    /// The adapter must start at once, as the default one does; one that connects to other
    /// nodes fails this with [`ServeError::AdapterStartsAsync`]: use [`start`](Self::start).
    pub fn build(self) -> Result<Engine, ServeError> {
        use futures_util::FutureExt;
        let (engine, hooks) = self.engine()?;
        match engine.shared.hub.start_adapter().now_or_never() {
            Some(started) => started?,
            None => return Err(ServeError::AdapterStartsAsync),
        }
        Ok(Self::run_hooks(engine, hooks))
    }

    /// Like [`build`](Self::build), and awaits the adapter's start: a scale-out adapter
    /// connects to the other nodes here, and a broker it requires that is unreachable fails
    /// start-up.
    pub async fn start(self) -> Result<Engine, ServeError> {
        let (engine, hooks) = self.engine()?;
        engine.shared.hub.start_adapter().await?;
        Ok(Self::run_hooks(engine, hooks))
    }

    #[allow(clippy::type_complexity)]
    fn engine(self) -> Result<(Engine, Vec<Box<dyn FnOnce(Handle) + Send>>), ServeError> {
        let adapter = match self.adapter {
            Some(adapter) => adapter,
            None => default_adapter(&self.config)?,
        };
        let engine = Engine::build(self.router, self.config, adapter)?;
        Ok((engine, self.on_start))
    }

    fn run_hooks(engine: Engine, hooks: Vec<Box<dyn FnOnce(Handle) + Send>>) -> Engine {
        for hook in hooks {
            hook(engine.handle());
        }
        engine
    }

    /// Checks the settings and the routes and binds the listening socket, with the
    /// configured backlog; logs where it listens (connections queue from here on, and are
    /// served once [`Server::run`] starts).
    pub async fn bind(self) -> Result<Server, ServeError> {
        // The socket first: a port in use fails start-up before the adapter connects.
        self.config.validate()?;
        let listener = listen(&self.config).await?;
        let metrics = match self.config.metrics_addr {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| ServeError::Bind {
                            addr: format!("{addr} (WS_METRICS_ADDR)"),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let engine = self.start().await?;
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |addr| addr.to_string());
        if engine.config().websocket {
            tracing::info!(routes = ?engine.shared.routes.paths(), "vania-ws listening on ws://{addr}");
        } else {
            tracing::warn!(
                "vania-ws listening on {addr}, but APP_WEBSOCKET is false: no websocket route is served, every path answers 404"
            );
        }
        if let Some(metrics) = &metrics {
            let addr = metrics
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |addr| addr.to_string());
            tracing::info!("metrics on http://{addr}/metrics");
        }
        Ok(Server {
            listener,
            metrics,
            engine,
        })
    }
}

/// The adapter when none was given: Redis when the settings name one, else this process only.
fn default_adapter(config: &ServerConfig) -> Result<Arc<dyn Adapter>, ServeError> {
    #[cfg(feature = "redis")]
    if let Some(redis) = &config.redis {
        let adapter =
            vania_ws_redis::RedisAdapter::new(redis.clone()).map_err(ConfigError::from)?;
        return Ok(adapter);
    }
    let _ = config;
    Ok(Arc::new(LocalAdapter))
}

/// Binds a TCP listener on `APP_HOST:APP_PORT` with the backlog of `WS_LISTEN_BACKLOG`: for
/// front ends that take a listener, such as `axum::serve`.
pub async fn listen(config: &ServerConfig) -> Result<TcpListener, ServeError> {
    let addr = format!("{}:{}", config.host, config.port);
    let bind = |source| ServeError::Bind {
        addr: addr.clone(),
        source,
    };
    let resolved = tokio::net::lookup_host(&addr)
        .await
        .map_err(bind)?
        .next()
        .ok_or_else(|| bind(std::io::Error::other("the host resolves to no address")))?;
    let socket = if resolved.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(bind)?;
    socket.set_reuseaddr(true).map_err(bind)?;
    socket.bind(resolved).map_err(bind)?;
    socket.listen(config.listen_backlog).map_err(bind)
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
    /// `WS_METRICS_ADDR`'s listener.
    metrics: Option<TcpListener>,
    engine: Engine,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .field("engine", &self.engine)
            .finish()
    }
}

impl Server {
    /// A builder for a server of `router`'s routes, with default settings.
    pub fn builder(router: Router) -> ServerBuilder {
        ServerBuilder {
            router,
            config: ServerConfig::default(),
            adapter: None,
            on_start: Vec::new(),
        }
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the metrics listener (`WS_METRICS_ADDR`), if there is one: the port
    /// it got when the setting asked for port 0.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref()?.local_addr().ok()
    }

    /// A handle for sending from outside any handler.
    pub fn handle(&self) -> Handle {
        self.engine.handle()
    }

    /// The engine behind this server.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until Ctrl-C or SIGTERM, then drains (see [`run_until`](Self::run_until)).
    pub async fn run(self) {
        self.run_until(shutdown_signal()).await;
    }

    /// Serves until `signal` completes, then drains ([`Engine::shutdown`]): stops accepting at
    /// once, lets handlers in flight finish, sends every client what was queued for it and a
    /// close 1001, and returns when every connection has ended or the shutdown timeout has
    /// passed.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        let Server {
            listener,
            metrics,
            engine,
        } = self;
        let shared = engine.shared.clone();
        // The accept loop runs as a task of its own, on a worker thread: a connection's task
        // then starts on the thread that accepted it, instead of being handed over from the
        // thread that runs `main`.
        let stop = CancellationToken::new();
        // Metrics stay up through the drain, when an operator watches them most.
        let stop_metrics = CancellationToken::new();
        let scraping = metrics.map(|metrics| {
            tokio::spawn(crate::prometheus::serve(
                metrics,
                shared.clone(),
                stop_metrics.clone(),
            ))
        });
        let accepting = tokio::spawn(accept_loop(listener, shared, stop.clone()));
        signal.await;
        stop.cancel();
        let _ = accepting.await;
        engine.shutdown().await;
        stop_metrics.cancel();
        if let Some(scraping) = scraping {
            let _ = scraping.await;
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    accept_until(listener, stop, |stream, peer| {
        shared.spawn_connection(connection::accept(stream, peer, shared.clone()));
    })
    .await;
}

/// Accepts connections on `listener` and hands each to `serve`, until `stop`: the standalone
/// server's WebSocket listener and its metrics listener.
pub(crate) async fn accept_until(
    listener: TcpListener,
    stop: CancellationToken,
    mut serve: impl FnMut(tokio::net::TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => serve(stream, peer),
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
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
