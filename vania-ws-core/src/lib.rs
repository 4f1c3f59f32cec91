//! The core of vania-ws: clients, rooms, routing and dispatch, with no sockets in it.
//!
//! A server (such as `vania-ws-server`) turns each connection into a [`Session`], hands it the
//! text frames it reads, and writes out what the client's queue holds. Everything else, from
//! parsing the envelope to fanning a frame out to a room, lives here and is tested without a
//! network.
//!
//! ```
//! use serde_json::Value;
//! use vania_ws_core::{Client, Hub, HubConfig, Outgoing, Router, Session};
//!
//! # tokio_test_block_on(async {
//! let table = Router::new()
//!     .websocket("/ws", |ev| {
//!         ev.on("message", |client: Client, payload: Value| async move {
//!             client.emit("message", &payload)?;
//!             Ok::<_, vania_ws_core::SendError>(payload)
//!         });
//!     })
//!     .build()
//!     .unwrap();
//! let hub = Hub::new(table.paths(), HubConfig::default());
//! let (session, mut queue) = Session::open(&hub, table.get("/ws").unwrap().clone()).await;
//! session.handle_text(r#"{"event":"message","payload":"hi","id":1}"#).await;
//! let mut frames = Vec::new();
//! while let Some(Outgoing::Frame(frame)) = queue.try_recv() {
//!     frames.push(frame.as_str().to_owned());
//! }
//! assert!(frames[0].starts_with(r#"{"event":"connected""#));
//! assert_eq!(frames[1], r#"{"event":"message","payload":"hi"}"#);
//! assert_eq!(frames[2], r#"{"event":"ack","id":1,"payload":"hi"}"#);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod adapter;
mod client;
mod dispatch;
mod envelope;
mod errors;
mod handle;
mod handler;
mod hub;
mod outbox;
mod room;
mod router;

pub use adapter::{Adapter, LocalAdapter, Target};
pub use client::Client;
pub use dispatch::Session;
pub use envelope::{Envelope, EnvelopeError, Frame};
pub use errors::{DispatchError, ErrorCode, JoinError, RouterError, SendError};
pub use handle::Handle;
pub use handler::{
    BoxFuture, ErasedHandler, Handler, IntoReply, Json, Outcome, decode_payload, encode_reply,
};
pub use hub::{Hub, HubConfig};
pub use outbox::{Outbox, OutboxReceiver, Outgoing, Pushed, close_code};
pub use room::{MAX_ROOM_NAME_BYTES, is_valid_room_name};
pub use router::{CONNECT, DISCONNECT, RESERVED_EVENTS, Route, RouteTable, Router, WebSocketEvent};

/// Re-exported for handler signatures.
pub use serde_json;
