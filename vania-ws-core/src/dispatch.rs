//! Dispatch: one connection's frames, in arrival order, to its route's handlers.
//!
//! A [`Session`] is what a server keeps per connection. It knows nothing of sockets: the
//! server gives it each incoming text frame and drains the client's queue to the socket.

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::value::RawValue;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::client::Client;
use crate::close::DisconnectReason;
use crate::envelope::{Envelope, Frame};
use crate::errors::{DispatchError, ErrorCode, UnknownRoute};
use crate::handler::{BoxFuture, Outcome};
use crate::hub::Hub;
use crate::outbox::OutboxReceiver;
use crate::router::{Route, RouteEvent};

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
    ///
    /// An error when `hub` does not serve the route: a route of another table.
    pub fn new(
        hub: &Arc<Hub>,
        route: Arc<Route>,
        extensions: http::Extensions,
    ) -> Result<(Session, OutboxReceiver), UnknownRoute> {
        let (client, receiver) = hub.register_in(
            route.path(),
            extensions,
            route.is_enveloped(),
            route.state().clone(),
        )?;
        tracing::debug!(
            client = client.id(),
            route = route.path(),
            "client connected"
        );
        Ok((Session { client, route }, receiver))
    }

    /// Runs the route's `connect` handler, if any.
    pub async fn run_connect(&self) {
        let started = std::future::poll_fn(|cx| Poll::Ready(self.start_connect(cx))).await;
        if let Some(rest) = started {
            rest.await;
        }
    }

    /// [`new`](Self::new) without extensions, then [`run_connect`](Self::run_connect).
    pub async fn open(
        hub: &Arc<Hub>,
        route: Arc<Route>,
    ) -> Result<(Session, OutboxReceiver), UnknownRoute> {
        let (session, receiver) = Self::new(hub, route, http::Extensions::new())?;
        session.run_connect().await;
        Ok((session, receiver))
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
        let started = std::future::poll_fn(|cx| Poll::Ready(self.start_envelope(text, cx))).await;
        if let Some(rest) = started {
            rest.await;
        }
    }

    /// Starts handling one incoming text frame inside the caller's poll, with its context:
    /// parsing, routing and every handler that finishes without waiting (most) complete here,
    /// with no allocation beyond the handler's own. What waits is returned, boxed, to be
    /// polled to the end before the connection's next frame (this keeps events in order).
    ///
    /// The text goes to the route's raw text handler when it has one, else it is an envelope.
    pub fn start_text(&self, text: &tungstenite::Utf8Bytes, cx: &mut Context<'_>) -> Started {
        match self.route.text_handler() {
            Some(handler) => {
                self.count_in();
                let client = self.client.clone();
                let future = catch_unwind(AssertUnwindSafe(|| handler(client, text.clone())));
                self.start_raw(future, cx)
            }
            None => self.start_envelope(text, cx),
        }
    }

    /// Like [`start_text`](Self::start_text), for a binary frame: the route's binary handler,
    /// or `unsupported_frame`.
    pub fn start_binary(&self, data: bytes::Bytes, cx: &mut Context<'_>) -> Started {
        match self.route.binary_handler() {
            Some(handler) => {
                self.count_in();
                let client = self.client.clone();
                let future = catch_unwind(AssertUnwindSafe(|| handler(client, data)));
                self.start_raw(future, cx)
            }
            None => {
                self.handle_binary();
                None
            }
        }
    }

    /// Whether a request from the server waits for this client's answer: while one does and a
    /// handler waits, a server keeps reading, for that answer (see [`try_answer`]).
    ///
    /// [`try_answer`]: Self::try_answer
    pub fn awaits_answer(&self) -> bool {
        self.client.awaits_answer()
    }

    /// The connection ended: requests from the server still waiting for this client's answer
    /// fail now (`AckError::Disconnected`), and so does any made from here on, such as by the
    /// `disconnect` handler. A server calls this as soon as it stops reading.
    pub fn end_requests(&self) {
        self.client.end_requests();
    }

    /// Handles `text` at once if it is a client's `ack` (the answer to a request from the
    /// server), and says whether it was. A connection calls this for the frames it reads while
    /// a handler waits, since that handler may be waiting for this very answer; any other
    /// frame waits its turn.
    pub fn try_answer(&self, text: &str) -> bool {
        if self.route.text_handler().is_some() {
            return false;
        }
        match Envelope::parse(text) {
            Ok(envelope) if envelope.event == "ack" => {
                self.count_in();
                self.answer(&envelope);
                true
            }
            _ => false,
        }
    }

    /// Hands a client's `ack` to the request from the server it answers; one that matches no
    /// pending request is dropped, with no error frame.
    fn answer(&self, envelope: &Envelope<'_>) {
        if let Some(id) = envelope.id {
            self.client.answer_request(id, envelope.payload);
        }
    }

    /// Like [`start_text`](Self::start_text), for the route's `connect` handler.
    pub fn start_connect(&self, cx: &mut Context<'_>) -> Started {
        let event = self.route.connect_event()?;
        self.start_handler(event, None, Answer::Lifecycle, cx)
    }

    fn start_envelope(&self, text: &str, cx: &mut Context<'_>) -> Started {
        self.count_in();
        let envelope = match Envelope::parse(text) {
            Ok(envelope) => envelope,
            Err(refused) => {
                self.send_error(refused.id, &refused.error);
                return None;
            }
        };
        let id = envelope.id;
        match &*envelope.event {
            "join-room" => self.start_join(envelope.room, id),
            "left-room" => {
                let outcome = room_name(envelope.room).and_then(|name| {
                    self.client.leave(&name)?;
                    Ok(Some(room_reply(&name)))
                });
                reply(&self.client, &self.route, id, outcome);
                None
            }
            // A client's answer to a request from the server (PROTOCOL.md section 4): to
            // whoever waits for it; one that matches no pending request is dropped, with no
            // error frame.
            "ack" => {
                self.answer(&envelope);
                None
            }
            event => match self.route.event(event) {
                Some(handler) => {
                    self.start_handler(handler, envelope.payload, Answer::Reply(id), cx)
                }
                None => {
                    let error = DispatchError::new(
                        ErrorCode::UnknownEvent,
                        format!(
                            "no handler for event `{event}` on route `{}`",
                            self.route.path()
                        ),
                    );
                    self.send_error(id, &error);
                    None
                }
            },
        }
    }

    /// Calls a handler and polls it once; a handler that waits continues in a boxed future.
    /// The run is timed from the call until its outcome is known, into the event's histogram,
    /// before the reply is queued: a client that has the reply sees the run counted.
    fn start_handler(
        &self,
        event: &Arc<RouteEvent>,
        payload: Option<&RawValue>,
        answer: Answer,
        cx: &mut Context<'_>,
    ) -> Started {
        let started_at = Instant::now();
        let client = self.client.clone();
        let want_reply = matches!(answer, Answer::Reply(Some(_)));
        let started = catch_unwind(AssertUnwindSafe(|| {
            event.handler.call(client, payload, want_reply)
        }));
        let mut running = match started {
            Ok(Ok(future)) => AssertUnwindSafe(future).catch_unwind(),
            // The handler never ran (its payload or an extractor refused the event): no run
            // to time; the refusal is counted by its error code.
            Ok(Err(refused)) => {
                finish(&self.client, &self.route, answer, event, Ok(Err(refused)));
                return None;
            }
            Err(panic) => {
                event.duration.observe(started_at.elapsed());
                finish(&self.client, &self.route, answer, event, Err(panic));
                return None;
            }
        };
        match Pin::new(&mut running).poll(cx) {
            Poll::Ready(result) => {
                event.duration.observe(started_at.elapsed());
                finish(&self.client, &self.route, answer, event, result);
                None
            }
            Poll::Pending => {
                let client = self.client.clone();
                let route = self.route.clone();
                let event = event.clone();
                Some(Box::pin(async move {
                    let result = running.await;
                    event.duration.observe(started_at.elapsed());
                    finish(&client, &route, answer, &event, result);
                }))
            }
        }
    }

    /// Polls a raw handler's future once; one that waits continues in the returned future. A
    /// panic closes the connection with 1011 (the raw protocol has no error frame).
    fn start_raw(
        &self,
        started: std::thread::Result<BoxFuture<()>>,
        cx: &mut Context<'_>,
    ) -> Started {
        let mut running = match started {
            Ok(future) => AssertUnwindSafe(future).catch_unwind(),
            Err(panic) => {
                raw_handler_panicked(&self.client, &*panic);
                return None;
            }
        };
        match Pin::new(&mut running).poll(cx) {
            Poll::Ready(Ok(())) => None,
            Poll::Ready(Err(panic)) => {
                raw_handler_panicked(&self.client, &*panic);
                None
            }
            Poll::Pending => {
                let client = self.client.clone();
                Some(Box::pin(async move {
                    if let Err(panic) = running.await {
                        raw_handler_panicked(&client, &*panic);
                    }
                }))
            }
        }
    }

    /// `join-room`: done here unless a join guard has to decide (guards are async).
    fn start_join(&self, room: Option<&RawValue>, id: Option<u64>) -> Started {
        let name = match room_name(room) {
            Ok(name) => name,
            Err(error) => {
                self.send_error(id, &error);
                return None;
            }
        };
        if !crate::room::is_valid_room_name(&name) {
            self.send_error(
                id,
                &crate::errors::JoinError::InvalidName(name.len()).into(),
            );
            return None;
        }
        if self.route.join_guards().is_empty() || self.client.in_room(&name) {
            let joined = self.client.join(&name);
            // Across nodes, the join is acknowledged once this node receives the room's
            // messages from the others (the adapter says when).
            let ready = match joined {
                Ok(_) => self.hub().room_ready(self.route.path(), &name),
                Err(_) => None,
            };
            let outcome = joined.map(|_| Some(room_reply(&name))).map_err(Into::into);
            let Some(ready) = ready else {
                reply(&self.client, &self.route, id, outcome);
                return None;
            };
            let client = self.client.clone();
            let route = self.route.clone();
            return Some(Box::pin(async move {
                ready.await;
                reply(&client, &route, id, outcome);
            }));
        }
        let client = self.client.clone();
        let route = self.route.clone();
        let name = name.into_owned();
        Some(Box::pin(async move {
            let outcome = match run_join_guards(&client, &route, &name).await {
                Ok(()) => client
                    .join(&name)
                    .map(|_| Some(room_reply(&name)))
                    .map_err(Into::into),
                Err(error) => Err(error),
            };
            if outcome.is_ok()
                && let Some(ready) = client.hub().room_ready(route.path(), &name)
            {
                ready.await;
            }
            reply(&client, &route, id, outcome);
        }))
    }

    /// Hands a text frame to the route's raw text handler, when it has one; `false` when the
    /// route dispatches envelopes instead.
    pub async fn handle_raw_text(&self, text: &tungstenite::Utf8Bytes) -> bool {
        if self.route.text_handler().is_none() {
            return false;
        }
        let started = std::future::poll_fn(|cx| Poll::Ready(self.start_text(text, cx))).await;
        if let Some(rest) = started {
            rest.await;
        }
        true
    }

    /// Hands a binary frame to the route's binary handler, or answers `unsupported_frame`.
    pub async fn handle_binary_data(&self, data: bytes::Bytes) {
        let mut data = Some(data);
        let started = std::future::poll_fn(|cx| {
            Poll::Ready(self.start_binary(data.take().expect("polled once"), cx))
        })
        .await;
        if let Some(rest) = started {
            rest.await;
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
    /// frame's `id` when it had one); the frame is not dispatched. A client's `ack` is not
    /// refused: it is an answer the server asked for, not an event to run, so it still
    /// reaches its request, and one that matches none is dropped without an error frame, as
    /// PROTOCOL.md section 4 has it (the frame still spent its share of the budget).
    pub fn refuse_rate_limited(&self, text: Option<&str>) {
        self.count_in();
        let envelope = text.map(Envelope::parse);
        if let Some(Ok(envelope)) = &envelope
            && envelope.event == "ack"
        {
            self.answer(envelope);
            return;
        }
        self.hub().metrics().record_rate_limited();
        let id = envelope.and_then(|parsed| match parsed {
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
        self.hub().metrics().record_message_in();
    }

    /// Queues an `error` frame for this client.
    pub fn send_error(&self, id: Option<u64>, error: &DispatchError) {
        send_error(&self.client, &self.route, id, error);
    }

    /// Runs the `disconnect` handler (the client's rooms are still readable and it can still
    /// send), then removes the client from every room and from the hub.
    pub async fn close(self, reason: DisconnectReason) {
        self.run_disconnect(reason).await;
        // `Drop` unregisters.
    }

    /// Records why the connection ended, for [`Client::disconnect_reason`], and runs the
    /// route's `disconnect` handler, if any (the first half of [`close`](Self::close)).
    pub async fn run_disconnect(&self, reason: DisconnectReason) {
        self.client.set_disconnect_reason(reason);
        let started = std::future::poll_fn(|cx| {
            Poll::Ready(
                self.route
                    .disconnect_event()
                    .and_then(|event| self.start_handler(event, None, Answer::Lifecycle, cx)),
            )
        })
        .await;
        if let Some(rest) = started {
            rest.await;
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
}

/// What [`Session::start_text`] and its siblings leave to do: `None` when the frame was
/// handled at once, else the rest, to poll to the end.
pub type Started = Option<BoxFuture<()>>;

/// Where a handler's outcome goes.
#[derive(Clone, Copy)]
enum Answer {
    /// To the client: an `ack` when the frame had an `id`, an `error` on failure.
    Reply(Option<u64>),
    /// To the log: `connect` and `disconnect` have no frame to answer.
    Lifecycle,
}

/// Sends or logs the outcome of a handler's run.
fn finish(
    client: &Client,
    route: &Route,
    answer: Answer,
    event: &RouteEvent,
    result: std::thread::Result<Outcome>,
) {
    let event = &*event.name;
    let outcome = result.unwrap_or_else(|panic| {
        tracing::error!(
            client = client.id(),
            route = route.path(),
            event,
            panic = panic_message(&*panic),
            "handler panicked"
        );
        Err(DispatchError::new(
            ErrorCode::Internal,
            format!("the handler of `{event}` panicked"),
        ))
    });
    let Answer::Reply(id) = answer else {
        if let Err(error) = &outcome {
            tracing::warn!(
                client = client.id(),
                route = route.path(),
                event,
                code = error.code.as_str(),
                message = %error.message,
                "lifecycle handler failed"
            );
        }
        return;
    };
    reply(client, route, id, outcome);
}

/// Queues `ack` (when the frame had an `id`) or `error` for an outcome.
fn reply(client: &Client, route: &Route, id: Option<u64>, outcome: Outcome) {
    match (outcome, id) {
        (Ok(Some(reply)), Some(id)) => {
            client.outbox().push(Frame::ack(id, &reply));
        }
        (Ok(_), _) => {}
        (Err(error), id) => send_error(client, route, id, &error),
    }
}

fn send_error(client: &Client, route: &Route, id: Option<u64>, error: &DispatchError) {
    client.hub().metrics().record_error(error.code);
    tracing::debug!(
        client = client.id(),
        route = route.path(),
        code = error.code.as_str(),
        message = %error.message,
        "request refused"
    );
    client.outbox().push(Frame::error(id, error));
}

/// A raw handler panicked: the raw protocol has no error frame, so the connection is closed
/// with 1011 (internal error); the server keeps running.
fn raw_handler_panicked(client: &Client, panic: &(dyn Any + Send)) {
    tracing::error!(
        client = client.id(),
        route = client.route(),
        panic = panic_message(panic),
        "raw handler panicked: closing the connection with 1011"
    );
    client
        .outbox()
        .close(crate::CloseCode::INTERNAL, "internal error");
}

fn room_name(room: Option<&RawValue>) -> Result<std::borrow::Cow<'_, str>, DispatchError> {
    room.and_then(|raw| serde_json::from_str::<std::borrow::Cow<'_, str>>(raw.get()).ok())
        .ok_or_else(|| DispatchError::new(ErrorCode::InvalidRoom, "`room` must be a string"))
}

fn room_reply(room: &str) -> String {
    #[derive(Serialize)]
    struct RoomReply<'a> {
        room: &'a str,
    }
    crate::json::to_string(&RoomReply { room }).expect("a string always encodes")
}

/// Runs the route's join guards for a room the client is not in yet.
async fn run_join_guards(client: &Client, route: &Route, room: &str) -> Result<(), DispatchError> {
    for guard in route.join_guards() {
        let verdict = catch_unwind(AssertUnwindSafe(|| guard(client.clone(), room.to_owned())));
        let verdict = match verdict {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        match verdict {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(DispatchError::new(ErrorCode::Forbidden, message)),
            Err(panic) => {
                tracing::error!(
                    client = client.id(),
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
    Ok(())
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
