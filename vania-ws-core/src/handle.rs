//! Sending from outside any handler: background tasks, HTTP endpoints, timers.

use serde::Serialize;
use std::sync::Arc;

use crate::adapter::{AdapterError, Command, Outcome, Target};
use crate::client::Client;
use crate::close::CloseCode;
use crate::errors::{CloseError, JoinError, RemoteError, SendError, UnknownRoute};
use crate::hub::Hub;

/// A cheap, cloneable handle on the server's clients and rooms.
///
/// Rooms belong to a route, so room sends go through [`route`](Self::route), which checks the
/// path once and then takes the same arguments, in the same order, as [`Client::to_room`]:
///
/// ```
/// # use vania_ws_core::{Handle, Hub, HubConfig};
/// # let handle = Handle::new(Hub::new(["/ws"], HubConfig::default()));
/// let ws = handle.route("/ws")?;
/// ws.to_room("room-message", "lobby", &"hello")?;
/// assert!(handle.route("/wss").is_err()); // a typo is an error, not a silent no-op
/// # Ok::<(), vania_ws_core::SendError>(())
/// ```
///
/// [`Client::to_room`]: crate::Client::to_room
#[derive(Debug, Clone)]
pub struct Handle {
    hub: Arc<Hub>,
}

impl Handle {
    /// A handle on `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }

    /// Sends to one client, on whichever route (or node) it is connected; returns how many
    /// clients of this process received it (0 or 1).
    pub fn to<T: Serialize + ?Sized>(
        &self,
        client_id: &str,
        event: &str,
        payload: &T,
    ) -> Result<usize, SendError> {
        self.hub
            .send_event(Target::Client(client_id), event, payload)
    }

    /// The client with this id, if it is connected to this process: everything a handler can
    /// do with a client (send, join, leave, close, read its data) from outside any handler.
    pub fn client(&self, client_id: &str) -> Option<Client> {
        self.hub.client(client_id)
    }

    /// Joins the client `client_id` to `room` of its route; returns whether it was not a
    /// member before. An error when no such client is connected here.
    pub fn join(&self, client_id: &str, room: &str) -> Result<bool, JoinError> {
        self.connected(client_id)?.join(room)
    }

    /// Takes the client `client_id` out of `room`; returns whether it was a member.
    pub fn leave(&self, client_id: &str, room: &str) -> Result<bool, JoinError> {
        self.connected(client_id)?.leave(room)
    }

    /// Closes the client `client_id`'s connection with `code` and `reason`, after what is
    /// already queued for it; returns whether such a client was connected here.
    pub fn disconnect(
        &self,
        client_id: &str,
        code: CloseCode,
        reason: impl Into<Box<str>>,
    ) -> Result<bool, CloseError> {
        match self.hub.client(client_id) {
            Some(client) => client.close(code, reason).map(|()| true),
            None => Ok(false),
        }
    }

    fn connected(&self, client_id: &str) -> Result<Client, JoinError> {
        self.hub
            .client(client_id)
            .ok_or_else(|| JoinError::NotConnected(client_id.to_owned()))
    }

    /// The rooms of the route at `path`; an error naming the served paths when there is none.
    pub fn route(&self, path: &str) -> Result<RouteHandle, UnknownRoute> {
        Ok(RouteHandle {
            path: self.hub.route_key(path)?,
            hub: self.hub.clone(),
        })
    }

    /// Sends to every connected client on every enveloped route; returns how many clients of
    /// this process received it.
    pub fn broadcast<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<usize, SendError> {
        self.hub
            .send_event(Target::All { except: None }, event, payload)
    }

    /// The server's counters: connections, rooms, messages, errors by code, slow consumers,
    /// rate-limit hits, pings timed out.
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        self.hub.metrics_snapshot()
    }

    /// The hub behind this handle, for counts and adapters.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The same operations on a client as [`join`](Self::join), [`leave`](Self::leave) and
    /// [`disconnect`](Self::disconnect), for a client connected to any node of the cluster
    /// (through the adapter), awaited until they took effect there.
    pub fn cluster(&self) -> ClusterHandle {
        ClusterHandle {
            hub: self.hub.clone(),
        }
    }
}

/// Operations on a client wherever it is connected, from [`Handle::cluster`].
///
/// A client of this process is served at once; one of another node through the adapter,
/// which carries the request to the node that holds it and its answer back (over Redis: one
/// round trip, failing after twice the subscribe timeout, 4 s by default). With the default
/// adapter, a client not connected here is connected nowhere.
///
/// A request keeps its place among this node's sends: a room message sent after
/// `cluster().join(…).await` reaches the client, from any node.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    hub: Arc<Hub>,
}

impl ClusterHandle {
    /// Whether the client `client_id` is connected to any node.
    pub async fn is_connected(&self, client_id: &str) -> Result<bool, AdapterError> {
        let outcome = self.hub.command(client_id, Command::Ping).await?;
        Ok(matches!(outcome, Some(Outcome::Done(true))))
    }

    /// Joins the client `client_id` to `room` of its route, on the node that holds it, and
    /// returns once that node receives the room's messages; whether it was not a member.
    pub async fn join(&self, client_id: &str, room: &str) -> Result<bool, RemoteError> {
        let command = Command::Join {
            room: room.to_owned(),
        };
        self.run(client_id, command).await
    }

    /// Takes the client `client_id` out of `room`; whether it was a member.
    pub async fn leave(&self, client_id: &str, room: &str) -> Result<bool, RemoteError> {
        let command = Command::Leave {
            room: room.to_owned(),
        };
        self.run(client_id, command).await
    }

    /// Closes the client `client_id`'s connection with `code` and `reason`, after what is
    /// already queued for it; `false` when it is connected to no node. A reason that does not
    /// fit a close frame is refused before anything is sent.
    pub async fn disconnect(
        &self,
        client_id: &str,
        code: CloseCode,
        reason: &str,
    ) -> Result<bool, RemoteError> {
        if reason.len() > crate::close::MAX_REASON_BYTES {
            return Err(RemoteError::Refused(
                CloseError::ReasonTooLong(reason.len()).to_string(),
            ));
        }
        let command = Command::Disconnect {
            code: code.get(),
            reason: reason.to_owned(),
        };
        match self.run(client_id, command).await {
            Err(RemoteError::NotConnected(_)) => Ok(false),
            other => other,
        }
    }

    async fn run(&self, client_id: &str, command: Command) -> Result<bool, RemoteError> {
        match self.hub.command(client_id, command).await? {
            Some(Outcome::Done(done)) => Ok(done),
            Some(Outcome::Refused(message)) => Err(RemoteError::Refused(message)),
            None => Err(RemoteError::NotConnected(client_id.to_owned())),
        }
    }
}

/// One route's rooms, from [`Handle::route`]: the path was checked when it was made, so its
/// sends cannot miss a route by a typo. Cheap to clone and to keep (in axum state, say).
#[derive(Debug, Clone)]
pub struct RouteHandle {
    hub: Arc<Hub>,
    path: Arc<str>,
}

impl RouteHandle {
    /// The route's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sends to every member of `room`, in the order of [`Client::to_room`]; returns how many
    /// clients of this process received it.
    ///
    /// [`Client::to_room`]: crate::Client::to_room
    pub fn to_room<T: Serialize + ?Sized>(
        &self,
        event: &str,
        room: &str,
        payload: &T,
    ) -> Result<usize, SendError> {
        let target = Target::Room {
            route: &self.path,
            room,
        };
        self.hub.send_event(target, event, payload)
    }

    /// Like [`to_room`](Self::to_room), skipping the clients whose ids are in `except`.
    pub fn to_room_except<T: Serialize + ?Sized>(
        &self,
        event: &str,
        room: &str,
        except: &[&str],
        payload: &T,
    ) -> Result<usize, SendError> {
        let target = Target::RoomExcept {
            route: &self.path,
            room,
            except,
        };
        self.hub.send_event(target, event, payload)
    }

    /// How many of this process's clients are in `room`.
    pub fn room_members(&self, room: &str) -> usize {
        self.hub.room_members(&self.path, room)
    }

    /// The ids of this process's clients in `room`, sorted.
    pub fn room_member_ids(&self, room: &str) -> Vec<String> {
        self.hub.room_member_ids(&self.path, room)
    }

    /// The ids of `room`'s members on every node of the cluster, sorted (with the default
    /// adapter, this process's). An error when the adapter cannot answer (Redis unreachable,
    /// or no answer in time).
    pub async fn presence(&self, room: &str) -> Result<Vec<String>, AdapterError> {
        self.hub.presence(&self.path, room).await
    }
}
