//! vania-ws: real-time WebSocket apps in Rust, the way Vania declares them.
//!
//! Declare routes and their events, answer through the [`Client`] handle, and serve:
//!
//! ```no_run
//! use vania_ws_server::serde_json::Value;
//! use vania_ws_server::{Client, Router, Server, ServerConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let router = Router::new().websocket("/ws", |ev| {
//!         ev.on("message", |client: Client, payload: Value| async move {
//!             client.emit("message", &payload)?; // to the sender
//!             client.broadcast("message", &payload)?; // to everyone else
//!             Ok::<_, vania_ws_server::SendError>(payload) // the reply to `"id"`
//!         });
//!     });
//!     let server = Server::builder(router)
//!         .config(ServerConfig::from_env()?)
//!         .bind()
//!         .await?;
//!     server.run().await; // until Ctrl-C or SIGTERM, then a graceful drain
//!     Ok(())
//! }
//! ```
//!
//! This crate is the one an application depends on: it re-exports the core's types, the
//! controller macros ([`ws_controller`], [`on`]; feature `macros`, on by default) and, with the
//! feature `testing`, a test harness for apps (the `testing` module).

mod config;
mod connection;
mod engine;
mod handshake;
mod pending;
mod policy;
mod server;
mod transport;
mod wake;

mod prometheus;
pub use prometheus::CONTENT_TYPE as METRICS_CONTENT_TYPE;

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "axum")]
pub use axum::axum_client_script;

/// The browser client (`clients/js/vania-ws.js`): a dependency-free ES module, as
/// [`axum_client_script`] serves it at `/vania-ws.js` (feature `axum`). Serve it yourself from
/// any other HTTP server with `Content-Type: text/javascript`.
// `assets/vania-ws.js` is a symbolic link to `clients/js/vania-ws.js`, the npm package's file:
// one source, and `cargo package` copies the file itself into the crate.
pub const CLIENT_SCRIPT: &str = include_str!("../assets/vania-ws.js");

pub use config::{ServerConfig, load_env};
pub use engine::Engine;
pub use server::{Server, ServerBuilder, listen, shutdown_signal};
pub use vania_ws_core::guard::{Handshake, Rejection};
pub use vania_ws_core::{
    Client, CloseCode, ClusterHandle, DisconnectReason, Extension, Handle, Json, RouteHandle,
    Router, SendError, State, WebSocketEvent, serde_json,
};

/// The core crate, for adapters and custom servers.
pub use vania_ws_core as core;

pub use vania_ws_core::{adapter, extract, guard, handler, http, metrics};

/// Scale-out over Redis (feature `redis`): [`RedisAdapter`](redis::RedisAdapter), which
/// `REDIS_URL` turns on by itself.
#[cfg(feature = "redis")]
pub use vania_ws_redis as redis;

/// Every error type: the server's own (settings, serving) and the core's (sends, joins,
/// routes, handlers), with the protocol's error codes.
pub mod error {
    pub use crate::config::ConfigError;
    pub use crate::server::ServeError;
    pub use vania_ws_core::error::*;
}

#[doc(hidden)]
pub use vania_ws_core::__private;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "macros")]
mod macros;
#[cfg(feature = "macros")]
pub use macros::{on, ws_controller};
