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
//! let (session, mut queue) = Session::open(&hub, table.get("/ws").unwrap().clone())
//!     .await
//!     .unwrap();
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
mod close;
mod controller;
mod dispatch;
mod envelope;
mod errors;
mod extract;
mod guard;
mod handle;
mod handler;
mod hub;
mod json;
mod metrics;
mod outbox;
mod room;
mod router;

pub use adapter::{Adapter, LocalAdapter, Target};
pub use client::Client;
pub use close::CloseCode;
pub use controller::{
    Controller, ControllerRecord, ControllerRoute, DefaultProbe, NoDefault, ViaDefault,
    collected_controllers,
};
pub use dispatch::{Session, Started};
pub use envelope::{Envelope, EnvelopeError, Frame};
pub use errors::{
    CloseError, DispatchError, ErrorCode, JoinError, RouterError, SendError, UnknownRoute,
};
pub use extract::{ClientRef, Extension, FromEvent, State, StateKey};
pub use guard::{ConnectionGuard, Handshake, JoinGuard, Rejection};
pub use handle::{Handle, RouteHandle};
pub use handler::{
    BoxFuture, ErasedHandler, Handler, IntoReply, Json, Outcome, decode_payload, encode_reply,
};
pub use hub::{Hub, HubConfig};
pub use metrics::{Metrics, MetricsSnapshot};
pub use outbox::{Outbox, OutboxReceiver, Outgoing, Pushed};
pub use room::{MAX_ROOM_NAME_BYTES, is_valid_room_name};
pub use router::{
    ANY_PATH, BinaryHandler, CONNECT, DISCONNECT, RESERVED_EVENTS, Route, RouteTable, Router,
    TextHandler, WebSocketEvent,
};

/// Re-exported for handler signatures.
pub use serde_json;

/// Re-exported for guards (`HeaderMap`, `Extensions`).
pub use http;

/// Re-exported for generated controller code.
#[doc(hidden)]
pub use inventory;

/// What `#[ws_controller]`'s generated code refers to, by absolute path. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::{
        BoxFuture, Client, ClientRef, Controller, ControllerRecord, ControllerRoute, DefaultProbe,
        DispatchError, ErasedHandler, FromEvent, IntoReply, NoDefault, Outcome, StateKey,
        ViaDefault,
    };
    pub use inventory;
    pub use serde_json::value::RawValue;
    pub use std::any::TypeId;
    pub use std::assert;
    pub use std::boxed::Box;
    pub use std::future::Future;
    pub use std::marker::PhantomData;
    pub use std::option::Option;
    pub use std::result::Result;
    pub use std::sync::Arc;
    pub use std::vec::Vec;

    /// `TypeId::of` as a plain function, for a `const` record.
    pub fn type_id_of<T: 'static>() -> TypeId {
        TypeId::of::<T>()
    }

    /// A handler's non-`Result` return value as its reply.
    pub fn reply_value<T: serde::Serialize>(value: T, want_reply: bool) -> Outcome {
        crate::encode_reply(&value, want_reply)
    }

    /// A handler's `Result` return value as its reply or `handler_error`.
    pub fn reply_result<T, E>(value: Result<T, E>, want_reply: bool) -> Outcome
    where
        T: serde::Serialize + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        IntoReply::into_reply(value, want_reply)
    }

    /// Tells a `Result` reply from a `Serialize` one when the return type's name does not say
    /// (an alias such as `AppResult<T>`, or a struct named `SearchResult`): autoref
    /// specialization picks [`ReplyViaResult`] for a `Result`, else [`ReplyViaSerialize`].
    pub struct ReplyProbe<T>(pub T);

    /// The `Result` arm of [`ReplyProbe`].
    pub trait ReplyViaResult {
        /// The reply or `handler_error`.
        fn to_outcome(&self, want_reply: bool) -> Outcome;
    }

    impl<T: serde::Serialize, E: std::fmt::Display> ReplyViaResult for ReplyProbe<Result<T, E>> {
        fn to_outcome(&self, want_reply: bool) -> Outcome {
            match &self.0 {
                Ok(value) => crate::encode_reply(value, want_reply),
                Err(err) => Err(DispatchError::new(
                    crate::ErrorCode::HandlerError,
                    err.to_string(),
                )),
            }
        }
    }

    /// The `Serialize` arm of [`ReplyProbe`].
    pub trait ReplyViaSerialize {
        /// The reply.
        fn to_outcome(&self, want_reply: bool) -> Outcome;
    }

    impl<T: serde::Serialize> ReplyViaSerialize for &ReplyProbe<T> {
        fn to_outcome(&self, want_reply: bool) -> Outcome {
            crate::encode_reply(&self.0, want_reply)
        }
    }

    /// Asks for a `Send` future where the handler is declared, so the error points there.
    pub fn require_send<F: Future + Send>(future: F) -> F {
        future
    }
}
