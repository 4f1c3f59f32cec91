//! The core of vania-ws: clients, rooms, routing and dispatch, with no sockets in it.
//!
//! A server (such as `vania-ws-server`) turns each connection into a [`Session`], hands it the
//! text frames it reads, and writes out what the client's queue holds. Everything else, from
//! parsing the envelope to fanning a frame out to a room, lives here and is tested without a
//! network.
//!
//! ```
//! use serde_json::Value;
//! use vania_ws_core::outbox::Outgoing;
//! use vania_ws_core::{Client, Hub, HubConfig, Router, Session};
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

pub mod adapter;
mod client;
mod close;
pub mod controller;
pub mod dispatch;
pub mod envelope;
mod errors;
pub mod extract;
pub mod guard;
mod handle;
pub mod handler;
mod hub;
mod json;
pub mod metrics;
pub mod outbox;
pub mod room;
pub mod router;

pub use client::Client;
pub use close::{CloseCode, DisconnectReason};
pub use dispatch::Session;
pub use envelope::Frame;
pub use errors::SendError;
pub use extract::{Extension, State};
pub use handle::{ClusterHandle, Handle, RouteHandle};
pub use handler::Json;
pub use hub::{Hub, HubConfig};
pub use router::{Router, WebSocketEvent};

/// Every error type, and the protocol's error codes.
pub mod error {
    pub use crate::adapter::{AdapterError, PublishError};
    pub use crate::envelope::EnvelopeError;
    pub use crate::errors::{
        AckError, CloseError, DispatchError, ErrorCode, JoinError, RemoteError, RouterError,
        SendError, UnknownRoute,
    };
}

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
    pub use crate::Client;
    pub use crate::controller::{
        Controller, ControllerParts, ControllerRecord, ControllerRoute, DefaultProbe, NoDefault,
        ViaDefault,
    };
    pub use crate::guard::{ConnectionGuard, Handshake, Rejection};

    /// A guard method as a type-erased connection guard.
    pub fn connection_guard<F, Fut>(guard: F) -> ConnectionGuard
    where
        F: Fn(Handshake) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Handshake, Rejection>> + Send + 'static,
    {
        crate::guard::connection_guard(guard)
    }
    pub use crate::errors::DispatchError;
    pub use crate::extract::{ClientRef, Extraction, FromEvent, StateKey};
    pub use crate::handler::{BoxFuture, ErasedHandler, IntoReply, Outcome};
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

    /// A handler's return value as its reply, decided by its type, not its name: a
    /// `Result` (under any alias, such as `type Reply<T> = Result<T, String>`) replies `T` or
    /// fails with `handler_error`, exactly as [`IntoReply`] does for closures; any other type
    /// is a `Serialize` reply. Autoref specialization picks the kind:
    /// `(&ReplyProbe(&value)).reply_kind()` is a [`ResultReply`] for a `Result` and a
    /// [`SerializeReply`] otherwise. The kinds carry the bounds, so a mistake is reported as
    /// "`T: Serialize` is not satisfied", at the return type.
    pub struct ReplyProbe<'a, T>(pub &'a T);

    /// The `Result` arm of [`ReplyProbe`].
    pub trait ReplyViaResult {
        /// [`ResultReply`].
        fn reply_kind(&self) -> ResultReply {
            ResultReply
        }
    }

    impl<T, E> ReplyViaResult for ReplyProbe<'_, Result<T, E>> {}

    /// The fallback arm of [`ReplyProbe`].
    pub trait ReplyViaSerialize {
        /// [`SerializeReply`].
        fn reply_kind(&self) -> SerializeReply {
            SerializeReply
        }
    }

    impl<T> ReplyViaSerialize for &ReplyProbe<'_, T> {}

    /// Replies with a `Result`'s `Ok` value or fails with its `Err`'s display text.
    pub struct ResultReply;

    impl ResultReply {
        /// The reply or `handler_error`.
        pub fn reply<T, E>(self, value: Result<T, E>, want_reply: bool) -> Outcome
        where
            T: serde::Serialize + Send + 'static,
            E: std::fmt::Display + Send + 'static,
        {
            IntoReply::into_reply(value, want_reply)
        }
    }

    /// Replies with a `Serialize` value.
    pub struct SerializeReply;

    impl SerializeReply {
        /// The reply.
        pub fn reply<T: serde::Serialize>(self, value: T, want_reply: bool) -> Outcome {
            crate::handler::encode_reply(&value, want_reply)
        }
    }

    /// Asks for a `Send` future where the handler is declared, so the error points there.
    pub fn require_send<F: Future + Send>(future: F) -> F {
        future
    }
}
