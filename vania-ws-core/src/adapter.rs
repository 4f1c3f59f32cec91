//! The seam that carries `to`, `to_room` and `broadcast` beyond this process.
//!
//! The hub delivers every send to this process's clients itself, then hands the same encoded
//! frame, once per send (never once per recipient), to its [`Adapter`]. The default,
//! [`LocalAdapter`], stops there. A scale-out adapter (Redis, say) publishes the frame's bytes
//! to the other nodes, whose adapters hand them to their own hub through the [`LocalNode`]
//! they were given at [`init`](Adapter::init).
//!
//! # The lifecycle
//!
//! An adapter is built before the hub, so it is handed the hub's local half, a [`LocalNode`]
//! (a weak reference: no cycle, no leak), when the server starts: [`Adapter::init`], awaited
//! before the first connection, may fail start-up. [`Adapter::close`] is awaited at the end of
//! the shutdown, once every connection has drained.
//!
//! # What the hub tells the adapter
//!
//! So that a node only receives what it serves, the hub reports, synchronously and in order:
//! - a client of this node connecting and disconnecting ([`client_connected`] and
//!   [`client_disconnected`]), so that a direct message can reach the one node that holds
//!   its recipient;
//! - a room of this node getting its first member and losing its last ([`room_opened`] and
//!   [`room_closed`]), so that a node follows a room only while it has a member there;
//! - every join and leave of a client of this node ([`member_joined`] and [`member_left`]),
//!   for cluster-wide presence ([`presence`]).
//!
//! A client's `join-room` is acknowledged only once [`room_ready`] resolves: a message sent to
//! the room from another node after the acknowledgement reaches the client.
//!
//! # Commands to another node's client
//!
//! The server's `Handle::cluster()` joins, takes out of a room, disconnects, or asks after a
//! client wherever it is connected. For a client of another node, the hub asks the adapter
//! ([`command`]), which carries the [`Command`] to the node that holds the client, whose
//! adapter runs it there ([`LocalNode::run`]) and carries the [`Outcome`] back.
//!
//! # Order
//!
//! PROTOCOL.md section 6: messages from one sender to one recipient arrive in the order they
//! were sent, across nodes too. The hub calls [`publish`] in the order a sender's sends are
//! made, from the sender's own task; an adapter keeps the order if it carries every frame of
//! one node to every other node over one ordered path (one queue and one connection toward
//! the broker, and one connection from it), whatever the target. An adapter that splits its
//! traffic (one connection per room, say) must restore that order itself.
//!
//! [`client_connected`]: Adapter::client_connected
//! [`client_disconnected`]: Adapter::client_disconnected
//! [`room_opened`]: Adapter::room_opened
//! [`room_closed`]: Adapter::room_closed
//! [`room_ready`]: Adapter::room_ready
//! [`member_joined`]: Adapter::member_joined
//! [`member_left`]: Adapter::member_left
//! [`presence`]: Adapter::presence
//! [`publish`]: Adapter::publish
//! [`command`]: Adapter::command

use std::sync::{Arc, Weak};

use crate::hub::Hub;

/// What an adapter carries (an encoded frame, cheap to clone) and returns.
pub use crate::{envelope::Frame, handler::BoxFuture};

/// Who a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target<'a> {
    /// One client, on whichever route (or node) it is connected.
    Client(&'a str),
    /// Every member of `room` on `route`.
    Room {
        /// The route whose room it is.
        route: &'a str,
        /// The room name.
        room: &'a str,
    },
    /// Every member of `room` on `route` but the clients in `except` (ids).
    RoomExcept {
        /// The route whose room it is.
        route: &'a str,
        /// The room name.
        room: &'a str,
        /// The client ids to skip.
        except: &'a [&'a str],
    },
    /// Every connected client on every enveloped route (raw routes speak another protocol),
    /// except `except` (a client id) when given.
    All {
        /// The client id to skip, usually the sender.
        except: Option<&'a str>,
    },
}

/// What one node asks of another node's client ([`Adapter::command`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// Whether it is connected: answered `Done(true)` by the node that holds it.
    Ping,
    /// Join a room of its route ([`Client::join`](crate::Client::join)).
    Join {
        /// The room.
        room: String,
    },
    /// Leave a room ([`Client::leave`](crate::Client::leave)).
    Leave {
        /// The room.
        room: String,
    },
    /// Close its connection ([`Client::close`](crate::Client::close)).
    Disconnect {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// What the node that holds a client answered to a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// It ran: the `bool` of the client's method (joined, was a member, closed, connected).
    Done(bool),
    /// The client's method refused (a room limit, say): its error's message.
    Refused(String),
}

/// Why an adapter could not start, or answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AdapterError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AdapterError {
    /// An error that says `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error that says `message`, caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Why a frame did not leave this node. It was delivered here regardless; the hub counts it
/// in [`MetricsSnapshot::publish_errors`](crate::metrics::MetricsSnapshot::publish_errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The bounded queue toward the other nodes is full (the broker is slower than the sends).
    #[error("the queue toward the other nodes is full")]
    Full,
    /// The adapter has no connection to the other nodes at the moment.
    #[error("the adapter is not connected to the other nodes")]
    Disconnected,
}

/// Carries frames to the other nodes of a cluster, and tells this node what they send.
///
/// Every method but [`init`](Self::init), [`room_ready`](Self::room_ready) and
/// [`close`](Self::close) is called synchronously from the task that sends, joins or
/// disconnects: it must not block (queue the work for a task of the adapter's own).
pub trait Adapter: Send + Sync + 'static {
    /// Starts the adapter with this node's local half, before the first connection is served.
    /// An error fails start-up; an adapter that can run degraded (local delivery only) logs
    /// and answers `Ok` instead.
    fn init(&self, node: LocalNode) -> BoxFuture<Result<(), AdapterError>> {
        drop(node);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Carries `frame` for `target` to the other nodes. The hub has delivered it to this
    /// node's clients already, and does not call this for a client it holds.
    fn publish(&self, target: Target<'_>, frame: &Frame) -> Result<(), PublishError>;

    /// A client connected to this node.
    fn client_connected(&self, client_id: &str) {
        let _ = client_id;
    }

    /// A client of this node disconnected.
    fn client_disconnected(&self, client_id: &str) {
        let _ = client_id;
    }

    /// `room` on `route` got its first member on this node. Called in order with
    /// [`room_closed`](Self::room_closed) for the same room, because both are called under
    /// the room's lock: they must not call back into the hub (no [`LocalNode`] method), or
    /// they deadlock; queue the work instead.
    fn room_opened(&self, route: &str, room: &str) {
        let _ = (route, room);
    }

    /// `room` on `route` lost its last member on this node (under the room's lock, as
    /// [`room_opened`](Self::room_opened)).
    fn room_closed(&self, route: &str, room: &str) {
        let _ = (route, room);
    }

    /// A client of this node joined `room` on `route` (every join, the first or not), for
    /// cluster-wide presence. Called in order with [`member_left`](Self::member_left) for
    /// the same client.
    fn member_joined(&self, route: &str, room: &str, client_id: &str) {
        let _ = (route, room, client_id);
    }

    /// A client of this node left `room` on `route` (or disconnected).
    fn member_left(&self, route: &str, room: &str, client_id: &str) {
        let _ = (route, room, client_id);
    }

    /// The ids of `room`'s members on every node, sorted: cluster-wide presence. `None` when
    /// the adapter knows no more than this node, whose hub then answers.
    fn presence(
        &self,
        route: &str,
        room: &str,
    ) -> Option<BoxFuture<Result<Vec<String>, AdapterError>>> {
        let _ = (route, room);
        None
    }

    /// Resolves once this node receives what other nodes send to the client `client_id`, a
    /// client of this node that just connected; `None` when it already does. A server sends
    /// the client its `connected` frame (its id) only then, so a `to(id)` from another node
    /// can never precede it.
    fn client_ready(&self, client_id: &str) -> Option<BoxFuture<()>> {
        let _ = client_id;
        None
    }

    /// Resolves once this node receives what other nodes send to `room` on `route`; `None`
    /// when it already does. A `join-room` is acknowledged only then.
    fn room_ready(&self, route: &str, room: &str) -> Option<BoxFuture<()>> {
        let _ = (route, room);
        None
    }

    /// Runs `command` on the client `client_id`, which is not connected to this node, on the
    /// node that holds it: `Ok(None)` when no node does, else what it answered. `None` when
    /// the adapter knows no other node (then the client is connected nowhere).
    ///
    /// It must keep the order of [`publish`](Self::publish): a frame this node publishes
    /// after the command reaches the client after the command ran (a room message after a
    /// join, say). And a `Join` is answered once the other node receives what is sent to
    /// the room (its [`room_ready`](Self::room_ready)), as a client's own join is.
    fn command(
        &self,
        client_id: &str,
        command: Command,
    ) -> Option<BoxFuture<Result<Option<Outcome>, AdapterError>>> {
        let _ = (client_id, command);
        None
    }

    /// Stops the adapter, at the end of the server's shutdown.
    fn close(&self) -> BoxFuture<()> {
        Box::pin(std::future::ready(()))
    }
}

/// The in-memory adapter: delivers to this process's clients only.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalAdapter;

impl Adapter for LocalAdapter {
    fn publish(&self, _target: Target<'_>, _frame: &Frame) -> Result<(), PublishError> {
        Ok(())
    }
}

/// This node's half of the hub, handed to its adapter at [`Adapter::init`]: what the adapter
/// needs to deliver what other nodes send, and to restore its subscriptions after a
/// reconnection. It holds the hub weakly, so the hub (which holds the adapter) can be
/// dropped; once it is, every method does nothing.
#[derive(Debug, Clone)]
pub struct LocalNode {
    hub: Weak<Hub>,
}

impl LocalNode {
    pub(crate) fn new(hub: &Arc<Hub>) -> Self {
        Self {
            hub: Arc::downgrade(hub),
        }
    }

    /// Delivers a frame another node sent to this node's clients (only: it is not published
    /// again); returns how many queued it.
    pub fn deliver(&self, target: Target<'_>, frame: &Frame) -> usize {
        self.hub
            .upgrade()
            .map_or(0, |hub| hub.deliver_local(target, frame))
    }

    /// Every `(route, room)` with a member on this node, sorted.
    pub fn rooms(&self) -> Vec<(String, String)> {
        self.hub.upgrade().map_or_else(Vec::new, |hub| hub.rooms())
    }

    /// The ids of this node's members of `room` on `route`, sorted.
    pub fn room_member_ids(&self, route: &str, room: &str) -> Vec<String> {
        self.hub
            .upgrade()
            .map_or_else(Vec::new, |hub| hub.room_member_ids(route, room))
    }

    /// Runs a command another node sent for the client `client_id` of this node: `None` when
    /// no such client is connected here. What it does (a join, a close) is done before it
    /// returns, in order with the frames the adapter delivers; the future only waits for what
    /// comes after it (a join's [`Adapter::room_ready`]) and gives the outcome.
    pub fn run(&self, client_id: &str, command: &Command) -> Option<BoxFuture<Outcome>> {
        self.hub.upgrade()?.run_command(client_id, command)
    }

    /// Whether the hub still exists.
    pub fn is_alive(&self) -> bool {
        self.hub.strong_count() > 0
    }
}
