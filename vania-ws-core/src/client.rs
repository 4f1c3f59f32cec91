//! The client handle given to handlers: who sent the event, and how to answer.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;

use crate::adapter::{AdapterError, Target};
use crate::close::{CloseCode, DisconnectReason};
use crate::envelope::Frame;
use crate::errors::{AckError, CloseError, JoinError, SendError};
use crate::extract::StateMap;
use crate::handle::Handle;
use crate::hub::Hub;
use crate::outbox::{Outbox, Pushed};
use crate::room::{MAX_ROOM_NAME_BYTES, is_valid_room_name};

/// One connected client. Cheap to clone; every clone is the same client.
///
/// The methods mirror Vania's `WebSocketClient`: [`emit`](Self::emit) answers the sender,
/// [`to`](Self::to) one client, [`to_room`](Self::to_room) a room of this route and
/// [`broadcast`](Self::broadcast) everyone else. Each encodes its payload once, whatever the
/// number of recipients, and never waits for a recipient.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    key: u64,
    route: Arc<str>,
    outbox: Outbox,
    hub: Arc<Hub>,
    own: Mutex<Own>,
    extensions: http::Extensions,
    /// The application's state (`Router::state`), shared with every client of the table.
    state: Arc<StateMap>,
}

/// What the client's handlers change, under one lock: its rooms, its data, and why it left.
#[derive(Default)]
struct Own {
    /// The client's rooms, sorted. A sorted `Vec` rather than a `BTreeSet`: a client is in few
    /// rooms (at most `max_rooms_per_client`), and one room then costs 16 bytes, not a
    /// 192-byte tree node.
    names: Vec<Arc<str>>,
    /// Set once the client left the hub, after which it joins nothing.
    gone: bool,
    /// Why the connection ended, once it has (read by the `disconnect` handler).
    disconnect: Option<DisconnectReason>,
    /// What handlers stored with [`Client::set_data`]; allocates nothing until then.
    data: http::Extensions,
    /// Requests from the server awaiting the client's `ack`; allocates nothing until the
    /// first [`Client::emit_with_ack`].
    requests: Option<Box<Requests>>,
    /// The connection ended: no answer can come, so requests fail at once.
    requests_ended: bool,
    /// The client is on a raw route: it does not speak the envelope, so it cannot answer a
    /// request.
    raw: bool,
}

/// A request waiting for its answer; dropping it takes the request off the client's list.
struct Pending {
    client: Client,
    id: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.client.forget_request(self.id);
    }
}

/// The server's requests to one client: ids from the server's own counter, and who waits.
#[derive(Default)]
struct Requests {
    last_id: u64,
    waiting: Vec<(u64, oneshot::Sender<Box<RawValue>>)>,
}

impl Own {
    fn find(&self, room: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|name| (**name).cmp(room))
    }

    fn contains(&self, room: &str) -> bool {
        self.find(room).is_ok()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.inner.id)
            .field("route", &self.inner.route)
            .finish_non_exhaustive()
    }
}

impl Client {
    // One caller (`Hub::register_in`), which has every part at hand: a parts struct would
    // only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: Arc<str>,
        key: u64,
        route: Arc<str>,
        outbox: Outbox,
        hub: Arc<Hub>,
        extensions: http::Extensions,
        enveloped: bool,
        state: Arc<StateMap>,
    ) -> Self {
        let own = Own {
            raw: !enveloped,
            ..Own::default()
        };
        Self {
            inner: Arc::new(Inner {
                id,
                key,
                route,
                outbox,
                hub,
                own: Mutex::new(own),
                extensions,
                state,
            }),
        }
    }

    /// The client id (Vania's `clientId`): `ws:` followed by a UUID, unique across a cluster.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The route path the client connected to, e.g. `/ws`.
    pub fn route(&self) -> &str {
        &self.inner.route
    }

    /// Sends `{"event": event, "payload": payload}` to this client.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), SendError> {
        self.inner.outbox.push(Frame::event(event, payload)?);
        Ok(())
    }

    /// Sends a raw text frame to this client (not an envelope: for raw routes).
    pub fn send_text(&self, text: impl Into<tungstenite::Utf8Bytes>) {
        self.inner.outbox.push(Frame::raw(text.into()));
    }

    /// Sends a binary frame to this client.
    pub fn send_binary(&self, data: impl Into<bytes::Bytes>) {
        self.inner.outbox.push_binary(data.into());
    }

    /// Sends to one client, on whichever route (or node) it is connected.
    /// Sending to a client that is not connected does nothing.
    pub fn to<T: Serialize + ?Sized>(
        &self,
        client_id: &str,
        event: &str,
        payload: &T,
    ) -> Result<(), SendError> {
        self.inner
            .hub
            .send_event(Target::Client(client_id), event, payload)
            .map(drop)
    }

    /// Sends to every member of `room` on this client's route, this client included if it is a
    /// member.
    pub fn to_room<T: Serialize + ?Sized>(
        &self,
        event: &str,
        room: &str,
        payload: &T,
    ) -> Result<(), SendError> {
        let route = &self.inner.route;
        self.inner
            .hub
            .send_event(Target::Room { route, room }, event, payload)
            .map(drop)
    }

    /// Sends to every connected client on every route, except this one.
    pub fn broadcast<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<(), SendError> {
        let except = Some(&*self.inner.id);
        self.inner
            .hub
            .send_event(Target::All { except }, event, payload)
            .map(drop)
    }

    /// Joins a room of this client's route. Joining a room twice is one membership; returns
    /// whether the client was not a member before.
    pub fn join(&self, room: &str) -> Result<bool, JoinError> {
        if !is_valid_room_name(room) {
            return Err(JoinError::InvalidName(room.len()));
        }
        let Some(registry) = self.inner.hub.rooms_of(&self.inner.route) else {
            return Ok(false);
        };
        let mut rooms = self.lock();
        let at = match rooms.find(room) {
            _ if rooms.gone => return Ok(false),
            Ok(_) => return Ok(false),
            Err(at) => at,
        };
        let max = self.inner.hub.config().max_rooms_per_client;
        if rooms.names.len() >= max {
            return Err(JoinError::RoomLimit(max));
        }
        let adapter = self.inner.hub.adapter();
        let route = &*self.inner.route;
        let name = registry.join(room, self.inner.key, &self.inner.outbox, || {
            adapter.room_opened(route, room)
        });
        rooms.names.insert(at, name);
        // Under the client's lock: its joins and leaves reach the adapter in order.
        adapter.member_joined(route, room, &self.inner.id);
        Ok(true)
    }

    /// Leaves a room; leaving a room the client is not in is not an error. Returns whether it
    /// was a member.
    pub fn leave(&self, room: &str) -> Result<bool, JoinError> {
        if !is_valid_room_name(room) {
            return Err(JoinError::InvalidName(room.len()));
        }
        let mut rooms = self.lock();
        let Ok(at) = rooms.find(room) else {
            return Ok(false);
        };
        rooms.names.remove(at);
        if let Some(registry) = self.inner.hub.rooms_of(&self.inner.route) {
            let adapter = self.inner.hub.adapter();
            let route = &*self.inner.route;
            adapter.member_left(route, room, &self.inner.id);
            registry.leave(room, self.inner.key, || adapter.room_closed(route, room));
        }
        Ok(true)
    }

    /// Leaves every room for good: later joins (from a clone kept by a task) do nothing.
    pub(crate) fn leave_all(&self) {
        let mut rooms = self.lock();
        rooms.gone = true;
        // Whoever waits for an answer now learns that none will come.
        rooms.requests = None;
        rooms.requests_ended = true;
        // What handlers stored goes with the connection (a value holding a `Client` would
        // otherwise keep this one alive).
        rooms.data.clear();
        if let Some(registry) = self.inner.hub.rooms_of(&self.inner.route) {
            for room in std::mem::take(&mut rooms.names) {
                let adapter = self.inner.hub.adapter();
                let route = &*self.inner.route;
                adapter.member_left(route, &room, &self.inner.id);
                registry.leave(&room, self.inner.key, || adapter.room_closed(route, &room));
            }
        }
    }

    /// The ids of `room`'s members on this client's route, on every node of the cluster,
    /// sorted (with the default adapter, this process's). An error when the adapter cannot
    /// answer.
    pub async fn presence(&self, room: &str) -> Result<Vec<String>, AdapterError> {
        self.inner.hub.presence(&self.inner.route, room).await
    }

    /// The rooms this client is in, sorted.
    pub fn rooms(&self) -> Vec<String> {
        self.lock()
            .names
            .iter()
            .map(|room| room.to_string())
            .collect()
    }

    /// Whether this client is in `room`.
    pub fn in_room(&self, room: &str) -> bool {
        room.len() <= MAX_ROOM_NAME_BYTES && self.lock().contains(room)
    }

    /// What the connection guards attached at the handshake (an identity, say).
    pub fn extensions(&self) -> &http::Extensions {
        &self.inner.extensions
    }

    /// The application state of type `T` registered with `Router::state`, if any.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.inner.state.get::<T>()
    }

    /// A handle for sending from outside any handler (a background task, say).
    pub fn handle(&self) -> Handle {
        Handle::new(self.inner.hub.clone())
    }

    /// Closes this client's connection with `code` and `reason` once what is already queued
    /// has been sent: `client.close(CloseCode::POLICY, "banned")?`. A reason over 123 bytes
    /// (all a close frame holds) is an error, and nothing is closed.
    pub fn close(&self, code: CloseCode, reason: impl Into<Box<str>>) -> Result<(), CloseError> {
        let reason = reason.into();
        if reason.len() > crate::close::MAX_REASON_BYTES {
            return Err(CloseError::ReasonTooLong(reason.len()));
        }
        self.inner.outbox.close(code, reason);
        Ok(())
    }

    /// Sends `event` with `payload` as a request (PROTOCOL.md section 4) and waits for the
    /// client's answer, `{"event":"ack","id":…,"payload":…}`, decoded as `R`; fails after the
    /// hub's `ack_timeout` (10 s by default), or when the client leaves first. The request is
    /// queued at once, in order with this client's other frames; only the answer is awaited.
    ///
    /// ```no_run
    /// # use vania_ws_core::Client;
    /// # async fn f(client: Client) -> Result<(), vania_ws_core::error::AckError> {
    /// let confirmed: bool = client.emit_with_ack("confirm-order", &42).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// A handler may await its own client's answer: the connection keeps reading `ack`
    /// frames while a handler waits (other frames still wait their turn).
    pub fn emit_with_ack<T, R>(
        &self,
        event: &str,
        payload: &T,
    ) -> impl Future<Output = Result<R, AckError>> + Send + 'static
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let timeout = self.inner.hub.config().ack_timeout;
        self.emit_with_ack_timeout(event, payload, timeout)
    }

    /// [`emit_with_ack`](Self::emit_with_ack) with a timeout of its own.
    pub fn emit_with_ack_timeout<T, R>(
        &self,
        event: &str,
        payload: &T,
        timeout: Duration,
    ) -> impl Future<Output = Result<R, AckError>> + Send + 'static
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        // The time counts from the send, not from the first poll.
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = self.send_request(event, payload).map(|(id, answer)| {
            let pending = Pending {
                client: self.clone(),
                id,
            };
            (pending, answer)
        });
        async move {
            // Dropped with the future (answered, timed out, or abandoned by a `select!`), it
            // takes the request off the client's list.
            let (_pending, answer) = sent?;
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(raw)) => crate::handler::decode_payload::<R>(Some(&raw))
                    .map_err(|err| AckError::Decode(err.message)),
                Ok(Err(_)) => Err(AckError::Disconnected),
                Err(_) => Err(AckError::Timeout(timeout)),
            }
        }
    }

    /// Whether a request from the server waits for this client's answer.
    pub(crate) fn awaits_answer(&self) -> bool {
        self.lock()
            .requests
            .as_ref()
            .is_some_and(|requests| !requests.waiting.is_empty())
    }

    /// The connection ended: requests waiting for an answer fail, and later ones fail at once.
    pub(crate) fn end_requests(&self) {
        let mut own = self.lock();
        own.requests = None;
        own.requests_ended = true;
    }

    /// Queues a request and registers who waits for its answer.
    fn send_request<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<(u64, oneshot::Receiver<Box<RawValue>>), AckError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut own = self.lock();
            if own.raw {
                return Err(AckError::RawRoute);
            }
            if own.gone || own.requests_ended {
                return Err(AckError::Disconnected);
            }
            let requests = own.requests.get_or_insert_with(Box::default);
            requests.last_id += 1;
            requests.waiting.push((requests.last_id, tx));
            requests.last_id
        };
        let frame = match Frame::request(event, id, payload) {
            Ok(frame) => frame,
            Err(err) => {
                self.forget_request(id);
                return Err(AckError::Send(SendError::Encode(err)));
            }
        };
        if self.inner.outbox.push(frame) != Pushed::Queued {
            self.forget_request(id);
            return Err(AckError::Disconnected);
        }
        Ok((id, rx))
    }

    fn forget_request(&self, id: u64) {
        if let Some(requests) = self.lock().requests.as_mut() {
            requests.waiting.retain(|(waiting, _)| *waiting != id);
        }
    }

    /// Hands the client's `ack` to the request `id`; `false` when none waits for it (never
    /// sent, timed out, or answered already), and the answer is dropped.
    pub(crate) fn answer_request(&self, id: u64, payload: Option<&RawValue>) -> bool {
        let waiter = {
            let mut own = self.lock();
            let Some(requests) = own.requests.as_mut() else {
                return false;
            };
            let Some(at) = requests
                .waiting
                .iter()
                .position(|(waiting, _)| *waiting == id)
            else {
                return false;
            };
            requests.waiting.swap_remove(at).1
        };
        let payload = payload.map_or_else(
            || RawValue::from_string("null".to_owned()).expect("`null` is json"),
            RawValue::to_owned,
        );
        waiter.send(payload).is_ok()
    }

    /// Stores `value` for this connection's later handlers (a user name after a login, say),
    /// one value per type; returns the value of that type it replaces. The data lives as long
    /// as the connection, and no other client sees it.
    pub fn set_data<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock().data.insert(value)
    }

    /// A copy of the value of type `T` stored with [`set_data`](Self::set_data), if any.
    pub fn data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().data.get::<T>().cloned()
    }

    /// Removes and returns the value of type `T` stored with [`set_data`](Self::set_data).
    pub fn remove_data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().data.remove::<T>()
    }

    /// Why the connection ended: `None` while it is open, set before the `disconnect`
    /// handler runs.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.lock().disconnect
    }

    pub(crate) fn set_disconnect_reason(&self, reason: DisconnectReason) {
        self.lock().disconnect.get_or_insert(reason);
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// The client's outgoing queue.
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    fn lock(&self) -> MutexGuard<'_, Own> {
        // A panic while holding this lock cannot leave the set half-updated: recover it.
        self.inner
            .own
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
