//! vania-ws: real-time WebSocket apps in Rust, the way Vania declares them.
//!
//! Declare routes and their events, answer through the [`Client`] handle, and serve:
//!
//! ```no_run
//! use vania_ws::serde_json::Value;
//! use vania_ws::{Client, Router, SendError, Server, ServerConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let router = Router::new().websocket("/ws", |ev| {
//!         ev.on("message", |client: Client, payload: Value| async move {
//!             client.emit("message", &payload)?; // to the sender
//!             client.broadcast("message", &payload)?; // to everyone else
//!             Ok::<_, SendError>(payload) // the reply to `"id"`
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
//! This is the crate an application depends on (`vania-ws = "0.1"`). It re-exports
//! `vania-ws-server` whole: the standalone server and, with the feature `axum`, the routes for
//! an axum app; the core's types; the controller macros ([`ws_controller`], [`on`]; feature
//! `macros`, on by default); and, with the feature `testing`, a test harness for apps
//! (`vania_ws::testing`). The component crates stay available for those who build their own
//! server on `vania-ws-core`.

pub use vania_ws_server::*;

/// Makes the `#[on("event")]` methods of an impl block the handlers of a WebSocket route.
///
#[doc = include_str!("../../docs/controllers.md")]
#[cfg(feature = "macros")]
pub use vania_ws_macros::ws_controller;

/// The authentication guide's examples (`docs/auth.md`), compiled as doctests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../docs/auth.md")]
pub struct AuthGuideDoctests;

/// The scaling guide's examples (`docs/scaling.md`), compiled as doctests.
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../../docs/scaling.md")]
pub struct ScalingGuideDoctests;

/// The README's Rust examples, compiled as doctests through this crate so they cannot rot
/// (`cargo test --workspace` turns on both features they use).
#[cfg(all(doctest, feature = "testing", feature = "axum"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
