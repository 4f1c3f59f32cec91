//! Dispatch: one connection's frames, in arrival order, to its route's handlers.
//!
//! A [`Session`] is what a server keeps per connection. It knows nothing of sockets: the
//! server gives it each incoming text frame and drains the client's queue to the socket.

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::value::RawValue;
use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::client::Client;
use crate::envelope::{Envelope, Frame};
use crate::errors::{DispatchError, ErrorCode};
use crate::handler::{ErasedHandler, Outcome};
use crate::hub::Hub;
use crate::outbox::OutboxReceiver;
use crate::router::Route;

/// One connection's state: its client and its route.
#[derive(Debug)]
pub struct Session {
    client: Client,
    route: Arc<Route>,
}

impl Session {
    /// Registers a new client on `route` with the values its connection guards attached; its
    /// `connected` frame is queued first (unless the route takes raw text). Run
    /// [`run_connect`](Self::run_connect) next, once the queue is being drained.
    pub fn new(
        hub: &Arc<Hub>,
        route: Arc<Route>,
        extensions: http::Extensions,
    ) -> (Session, OutboxReceiver) {
        let (client, receiver) = hub
            .register_with(route.path(), extensions, route.is_enveloped())
            .expect("the hub serves every route of the table it was built from");
        tracing::debug!(
            client = client.id(),
            route = route.path(),
            "client connected"
        );
        (Session { client, route }, receiver)
    }

    /// Runs the route's `connect` handler, if any.
    pub async fn run_connect(&self) {
        if let Some(handler) = self.route.connect_handler() {
            self.run_lifecycle(handler, "connect").await;
        }
    }

    /// [`new`](Self::new) without extensions, then [`run_connect`](Self::run_connect).
    pub async fn open(hub: &Arc<Hub>, route: Arc<Route>) -> (Session, OutboxReceiver) {
        let (session, receiver) = Self::new(hub, route, http::Extensions::new());
        session.run_connect().await;
        (session, receiver)
    }

    /// The connection's route.
    pub fn route(&self) -> &Arc<Route> {
        &self.route
    }

    /// The connection's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Handles one incoming text frame: parses it, runs its handler to the end, and queues the
    /// reply (`ack`) or the `error` frame.
    pub async fn handle_text(&self, text: &str) {
        self.count_in();
        let envelope = match Envelope::parse(text) {
            Ok(envelope) => envelope,
            Err(refused) => return self.send_error(refused.id, &refused.error),
        };
        let id = envelope.id;
        let outcome = match &*envelope.event {
            "join-room" => self.join_or_leave(envelope.room, true).await,
            "left-room" => self.join_or_leave(envelope.room, false).await,
            // A client's answer to a request from the server (PROTOCOL.md section 4). This
            // server sends none yet, so no id can match a pending one: dropped, no error frame.
            "ack" => return,
            event => self.call(event, envelope.payload, id.is_some()).await,
        };
        match (outcome, id) {
            (Ok(Some(reply)), Some(id)) => {
                self.client.outbox().push(Frame::ack(id, &reply));
            }
            (Ok(_), _) => {}
            (Err(error), id) => self.send_error(id, &error),
        }
    }

    /// Hands a text frame to the route's raw text handler, when it has one; `false` when the
    /// route dispatches envelopes instead.
    pub async fn handle_raw_text(&self, text: &tungstenite::Utf8Bytes) -> bool {
        let Some(handler) = self.route.text_handler() else {
            return false;
        };
        self.count_in();
        let run = AssertUnwindSafe(handler(self.client.clone(), text.clone())).catch_unwind();
        if let Err(panic) = run.await {
            self.raw_handler_panicked(&*panic);
        }
        true
    }

    /// A raw handler panicked: the raw protocol has no error frame, so the connection is
    /// closed with 1011 (internal error); the server keeps running.
    fn raw_handler_panicked(&self, panic: &(dyn Any + Send)) {
        tracing::error!(
            client = self.client.id(),
            route = self.route.path(),
            panic = panic_message(panic),
            "raw handler panicked: closing the connection with 1011"
        );
        self.client
            .close(crate::close_code::INTERNAL, "internal error");
    }

    /// Hands a binary frame to the route's binary handler, or answers `unsupported_frame`.
    pub async fn handle_binary_data(&self, data: bytes::Bytes) {
        match self.route.binary_handler() {
            Some(handler) => {
                self.count_in();
                let run = AssertUnwindSafe(handler(self.client.clone(), data)).catch_unwind();
                if let Err(panic) = run.await {
                    self.raw_handler_panicked(&*panic);
                }
            }
            None => self.handle_binary(),
        }
    }

    /// Answers a binary frame: this route takes none.
    pub fn handle_binary(&self) {
        self.count_in();
        self.send_error(
            None,
            &DispatchError::new(
                ErrorCode::UnsupportedFrame,
                "binary frames are not accepted; send json text frames",
            ),
        );
    }

    /// Refuses a frame over the connection's rate limit with `rate_limited` (carrying the
    /// frame's `id` when it had one); the frame is not dispatched.
    pub fn refuse_rate_limited(&self, text: Option<&str>) {
        self.count_in();
        crate::Metrics::bump(&self.hub().metrics().rate_limited);
        let id = text.and_then(|text| match Envelope::parse(text) {
            Ok(envelope) => envelope.id,
            Err(refused) => refused.id,
        });
        self.send_error(
            id,
            &DispatchError::new(
                ErrorCode::RateLimited,
                "too many events: slow down (this event was not handled)",
            ),
        );
    }

    fn hub(&self) -> &Arc<Hub> {
        self.client.hub()
    }

    fn count_in(&self) {
        crate::Metrics::bump(&self.hub().metrics().messages_in);
    }

    /// Queues an `error` frame for this client.
    pub fn send_error(&self, id: Option<u64>, error: &DispatchError) {
        self.hub().metrics().error(error.code);
        tracing::debug!(
            client = self.client.id(),
            route = self.route.path(),
            code = error.code.as_str(),
            message = %error.message,
            "request refused"
        );
        self.client.outbox().push(Frame::error(id, error));
    }

    /// Runs the `disconnect` handler (the client's rooms are still readable and it can still
    /// send), then removes the client from every room and from the hub.
    pub async fn close(self) {
        self.run_disconnect().await;
        // `Drop` unregisters.
    }

    /// Runs the route's `disconnect` handler, if any (the first half of
    /// [`close`](Self::close)).
    pub async fn run_disconnect(&self) {
        if let Some(handler) = self.route.disconnect_handler() {
            self.run_lifecycle(handler, "disconnect").await;
        }
    }

    /// Removes the client from every room and from the hub (the second half of
    /// [`close`](Self::close); alone, when the `disconnect` handler must be skipped).
    pub fn unregister(&self) {
        self.hub().unregister(&self.client);
        tracing::debug!(
            client = self.client.id(),
            route = self.route.path(),
            "client disconnected"
        );
    }

    async fn call(&self, event: &str, payload: Option<&RawValue>, want_reply: bool) -> Outcome {
        let Some(handler) = self.route.handler(event) else {
            return Err(DispatchError::new(
                ErrorCode::UnknownEvent,
                format!(
                    "no handler for event `{event}` on route `{}`",
                    self.route.path()
                ),
            ));
        };
        self.run(handler, payload, want_reply, event).await
    }

    async fn run(
        &self,
        handler: &Arc<dyn ErasedHandler>,
        payload: Option<&RawValue>,
        want_reply: bool,
        event: &str,
    ) -> Outcome {
        let client = self.client.clone();
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            handler.call(client, payload, want_reply)
        }));
        let outcome = match started {
            Ok(Ok(future)) => AssertUnwindSafe(future).catch_unwind().await,
            Ok(Err(refused)) => return Err(refused),
            Err(panic) => Err(panic),
        };
        outcome.unwrap_or_else(|panic| {
            tracing::error!(
                client = self.client.id(),
                route = self.route.path(),
                event,
                panic = panic_message(&*panic),
                "handler panicked"
            );
            Err(DispatchError::new(
                ErrorCode::Internal,
                format!("the handler of `{event}` panicked"),
            ))
        })
    }

    async fn run_lifecycle(&self, handler: &Arc<dyn ErasedHandler>, event: &str) {
        if let Err(error) = self.run(handler, None, false, event).await {
            tracing::warn!(
                client = self.client.id(),
                route = self.route.path(),
                event,
                code = error.code.as_str(),
                message = %error.message,
                "lifecycle handler failed"
            );
        }
    }

    async fn join_or_leave(&self, room: Option<&RawValue>, join: bool) -> Outcome {
        let name = room
            .and_then(|raw| serde_json::from_str::<std::borrow::Cow<'_, str>>(raw.get()).ok())
            .ok_or_else(|| DispatchError::new(ErrorCode::InvalidRoom, "`room` must be a string"))?;
        if join {
            if !crate::room::is_valid_room_name(&name) {
                return Err(crate::errors::JoinError::InvalidName(name.len()).into());
            }
            if !self.client.in_room(&name) {
                for guard in self.route.join_guards() {
                    let client = self.client.clone();
                    let room = name.to_string();
                    let verdict =
                        std::panic::catch_unwind(AssertUnwindSafe(|| guard(client, room)));
                    let verdict = match verdict {
                        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                        Err(panic) => Err(panic),
                    };
                    match verdict {
                        Ok(Ok(())) => {}
                        Ok(Err(message)) => {
                            return Err(DispatchError::new(ErrorCode::Forbidden, message));
                        }
                        Err(panic) => {
                            tracing::error!(
                                client = self.client.id(),
                                panic = panic_message(&*panic),
                                "join guard panicked"
                            );
                            return Err(DispatchError::new(
                                ErrorCode::Internal,
                                "the join guard panicked",
                            ));
                        }
                    }
                }
            }
            self.client.join(&name)?;
        } else {
            self.client.leave(&name)?;
        }
        #[derive(Serialize)]
        struct RoomReply<'a> {
            room: &'a str,
        }
        Ok(Some(
            serde_json::to_string(&RoomReply { room: &name }).expect("a string always encodes"),
        ))
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl Drop for Session {
    /// However the connection ends (a panic included), its client leaves the hub and its rooms.
    fn drop(&mut self) {
        if self.client.hub().is_connected(self.client.id()) {
            self.unregister();
        }
    }
}
