//! The hub: every connected client of this process, and the rooms of every route.

use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::adapter::{Adapter, AdapterError, Command, LocalAdapter, LocalNode, Outcome, Target};
use crate::client::Client;
use crate::envelope::Frame;
use crate::errors::UnknownRoute;
use crate::extract::StateMap;
use crate::handler::BoxFuture;
use crate::metrics::{ConnectionSlot, Metrics, MetricsSnapshot};
use crate::outbox::{Outbox, OutboxReceiver, Pushed};
use crate::room::RoomRegistry;
use crate::router::RouteTable;

/// Limits the hub applies to each client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubConfig {
    /// Bytes a client's outgoing queue may hold before it is closed as a slow consumer.
    pub send_queue_bytes: usize,
    /// Rooms one client may be in at once.
    pub max_rooms_per_client: usize,
    /// How long [`Client::emit_with_ack`] waits for the client's answer.
    pub ack_timeout: std::time::Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            send_queue_bytes: 1 << 20,
            max_rooms_per_client: 100,
            ack_timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl HubConfig {
    /// Sets the per-client send queue bound, in bytes.
    pub fn send_queue_bytes(mut self, bytes: usize) -> Self {
        self.send_queue_bytes = bytes;
        self
    }

    /// Sets how many rooms one client may be in.
    pub fn max_rooms_per_client(mut self, rooms: usize) -> Self {
        self.max_rooms_per_client = rooms;
        self
    }

    /// Sets how long [`Client::emit_with_ack`] waits for an answer.
    pub fn ack_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }
}

#[derive(Debug)]
struct Member {
    outbox: Outbox,
    /// The client's number in this process ([`Client`]'s key): `broadcast` tells the sender
    /// from the others by it, without reading every member's id string.
    key: u64,
    /// Speaks the envelope protocol: `false` on raw routes, which `broadcast` skips (their
    /// clients speak another protocol, and `{"event":…}` frames would be injected into it).
    enveloped: bool,
    /// The client itself, for what acts on a client by id ([`Handle::join`], say). The
    /// cycle it makes (hub, client, hub) ends when the client is unregistered.
    ///
    /// [`Handle::join`]: crate::Handle::join
    client: Client,
}

/// Every client of this process by id, and the rooms of every route.
pub struct Hub {
    clients: DashMap<Arc<str>, Member>,
    routes: HashMap<Arc<str>, RoomRegistry>,
    adapter: Arc<dyn Adapter>,
    config: HubConfig,
    next_key: AtomicU64,
    metrics: Metrics,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("clients", &self.clients.len())
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for these route paths, with the in-memory adapter.
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a str>, config: HubConfig) -> Arc<Self> {
        Self::with_adapter(routes, config, Arc::new(LocalAdapter))
    }

    /// A hub for these route paths that sends through `adapter`.
    pub fn with_adapter<'a>(
        routes: impl IntoIterator<Item = &'a str>,
        config: HubConfig,
        adapter: Arc<dyn Adapter>,
    ) -> Arc<Self> {
        Arc::new(Self {
            clients: DashMap::new(),
            routes: routes
                .into_iter()
                .map(|path| (Arc::from(path), RoomRegistry::default()))
                .collect(),
            adapter,
            config,
            next_key: AtomicU64::new(1),
            metrics: Metrics::default(),
        })
    }

    /// A hub for the routes of `table`, sending through `adapter`. (The application state
    /// stays with the table's routes: it is not the hub's.)
    pub fn for_table(
        table: &RouteTable,
        config: HubConfig,
        adapter: Arc<dyn Adapter>,
    ) -> Arc<Self> {
        Self::with_adapter(table.paths(), config, adapter)
    }

    /// The limits in force.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Registers a new client on `route` with a fresh `ws:<uuid>` id, queues its `connected`
    /// frame, and returns it with the receiving end of its queue. An error when the hub does
    /// not serve `route`. The hub holds the client until [`unregister`](Self::unregister),
    /// which a server calls when the connection ends (a [`Session`](crate::Session) does it
    /// when dropped).
    pub fn register(
        self: &Arc<Self>,
        route: &str,
    ) -> Result<(Client, OutboxReceiver), UnknownRoute> {
        self.register_with(route, http::Extensions::new(), true)
    }

    /// Like [`register`](Self::register), with the values a connection guard attached;
    /// `enveloped: false` is for raw routes, which speak another protocol: no `connected`
    /// frame, and no `broadcast` reaches them.
    pub fn register_with(
        self: &Arc<Self>,
        route: &str,
        extensions: http::Extensions,
        enveloped: bool,
    ) -> Result<(Client, OutboxReceiver), UnknownRoute> {
        // No table, so no application state: one shared empty map, not one per client.
        static NO_STATE: std::sync::LazyLock<Arc<StateMap>> =
            std::sync::LazyLock::new(Arc::default);
        self.register_in(route, extensions, enveloped, NO_STATE.clone())
    }

    /// Registers a client of a route of the table, with the application's state.
    pub(crate) fn register_in(
        self: &Arc<Self>,
        route: &str,
        extensions: http::Extensions,
        enveloped: bool,
        state: Arc<StateMap>,
    ) -> Result<(Client, OutboxReceiver), UnknownRoute> {
        let route = self.route_key(route)?;
        let id: Arc<str> = Arc::from(format!("ws:{}", uuid::Uuid::new_v4()));
        let (outbox, receiver) = Outbox::for_client(self.config.send_queue_bytes, id.clone());
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        // `connected` is queued before the client can be found, so it is always the first frame.
        if enveloped {
            outbox.push(Frame::connected(&id));
        }
        let client = Client::new(
            id.clone(),
            key,
            route,
            outbox.clone(),
            self.clone(),
            extensions,
            enveloped,
            state,
        );
        self.adapter.client_connected(&id);
        self.clients.insert(
            id,
            Member {
                outbox,
                key,
                enveloped,
                client: client.clone(),
            },
        );
        Ok((client, receiver))
    }

    /// The hub's own copy of the path `route`, or the error that names the paths it serves.
    pub(crate) fn route_key(&self, route: &str) -> Result<Arc<str>, UnknownRoute> {
        match self.routes.get_key_value(route) {
            Some((key, _)) => Ok(key.clone()),
            None => Err(UnknownRoute::new(
                route,
                self.routes.keys().map(|path| &**path),
            )),
        }
    }

    /// Removes a client: it leaves every room and no longer receives anything.
    pub fn unregister(&self, client: &Client) {
        client.leave_all();
        if self.clients.remove(client.id()).is_some() {
            self.adapter.client_disconnected(client.id());
        }
    }

    /// Sends to this process's clients, then through the adapter to the other nodes (a
    /// client held here is not looked for elsewhere); returns how many clients of this
    /// process received the frame. A frame the adapter could not carry is counted in the
    /// metrics (`publish_errors`), and still delivered here.
    pub fn send(&self, target: Target<'_>, frame: &Frame) -> usize {
        let delivered = match target {
            Target::Client(id) => match self.clients.get(id) {
                Some(member) => {
                    return usize::from(member.outbox.push(frame.clone()) == Pushed::Queued);
                }
                None => 0,
            },
            _ => self.deliver_local(target, frame),
        };
        if let Err(error) = self.adapter.publish(target, frame) {
            self.metrics.record_publish_error();
            tracing::debug!(%error, "a frame did not reach the other nodes");
        }
        delivered
    }

    /// The adapter, for the room and client events it follows.
    pub(crate) fn adapter(&self) -> &dyn Adapter {
        &*self.adapter
    }

    /// Starts the adapter with this hub's local half: what a server awaits before it serves
    /// the first connection.
    pub fn start_adapter(self: &Arc<Self>) -> BoxFuture<Result<(), AdapterError>> {
        self.adapter.init(LocalNode::new(self))
    }

    /// Stops the adapter: what a server awaits at the end of its shutdown.
    pub fn close_adapter(&self) -> BoxFuture<()> {
        self.adapter.close()
    }

    /// Resolves once this node receives what other nodes send to the client `client_id`;
    /// `None` when it already does. A server awaits it before the client's first frame.
    pub fn client_ready(&self, client_id: &str) -> Option<BoxFuture<()>> {
        self.adapter.client_ready(client_id)
    }

    /// Resolves once this node receives what other nodes send to `room` on `route`; `None`
    /// when it already does.
    pub fn room_ready(&self, route: &str, room: &str) -> Option<BoxFuture<()>> {
        self.adapter.room_ready(route, room)
    }

    /// The ids of `room`'s members on `route` on every node, sorted: what the adapter
    /// answers when it knows the cluster, or this process's members.
    pub fn presence(
        &self,
        route: &str,
        room: &str,
    ) -> BoxFuture<Result<Vec<String>, AdapterError>> {
        match self.adapter.presence(route, room) {
            Some(cluster) => cluster,
            None => Box::pin(std::future::ready(Ok(self.room_member_ids(route, room)))),
        }
    }

    /// Every `(route, room)` with a member in this process, sorted.
    pub(crate) fn rooms(&self) -> Vec<(String, String)> {
        let mut rooms: Vec<(String, String)> = self
            .routes
            .iter()
            .flat_map(|(route, registry)| {
                registry
                    .names()
                    .into_iter()
                    .map(move |room| (route.to_string(), room))
            })
            .collect();
        rooms.sort_unstable();
        rooms
    }

    /// Encodes `{"event", "payload"}` once and [`send`](Self::send)s it to `target`; returns
    /// how many clients of this process received it.
    pub fn send_event<T: serde::Serialize + ?Sized>(
        &self,
        target: Target<'_>,
        event: &str,
        payload: &T,
    ) -> Result<usize, crate::SendError> {
        Ok(self.send(target, &Frame::event(event, payload)?))
    }

    /// Delivers to this process's clients only; returns how many received the frame, that is
    /// queued it: a client that is closing (a slow consumer whose queue overflowed among
    /// them) drops it and is not counted.
    ///
    /// Adapters call this; applications call [`send`](Self::send) or a [`Client`] method.
    pub fn deliver_local(&self, target: Target<'_>, frame: &Frame) -> usize {
        match target {
            Target::Client(id) => self.clients.get(id).map_or(0, |member| {
                usize::from(member.outbox.push(frame.clone()) == Pushed::Queued)
            }),
            Target::Room { route, room } => self
                .routes
                .get(route)
                .map_or(0, |rooms| rooms.deliver(room, frame)),
            Target::RoomExcept {
                route,
                room,
                except,
            } => self
                .routes
                .get(route)
                .map_or(0, |rooms| rooms.deliver_except(room, except, frame)),
            Target::All { except } => {
                // The sender's number, looked up once; a sender on another process has none
                // here (numbers start at 1).
                let except = except
                    .and_then(|id| self.clients.get(id).map(|member| member.key))
                    .unwrap_or(0);
                let mut count = 0;
                for member in self.clients.iter() {
                    if member.enveloped
                        && member.key != except
                        && member.outbox.push(frame.clone()) == Pushed::Queued
                    {
                        count += 1;
                    }
                }
                count
            }
        }
    }

    pub(crate) fn rooms_of(&self, route: &str) -> Option<&RoomRegistry> {
        self.routes.get(route)
    }

    /// The live counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Counts one more open connection if fewer than `max` are open: the connection cap. The
    /// count goes down when the slot is dropped.
    pub fn open_connection(self: &Arc<Self>, max: u64) -> Option<ConnectionSlot> {
        ConnectionSlot::take(self, max)
    }

    /// A copy of the counters, with the current client and room counts.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let rooms = self.routes.values().map(RoomRegistry::len).sum();
        self.metrics.snapshot(self.clients.len(), rooms)
    }

    /// Bytes queued for a client of this process and not yet written, if it is connected.
    pub fn queued_bytes(&self, client_id: &str) -> Option<usize> {
        self.clients
            .get(client_id)
            .map(|member| member.outbox.queued_bytes())
    }

    /// How many clients are connected to this process.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// How many rooms exist on `route` in this process.
    pub fn room_count(&self, route: &str) -> usize {
        self.routes.get(route).map_or(0, RoomRegistry::len)
    }

    /// How many of this process's clients are in `room` on `route`.
    pub fn room_members(&self, route: &str, room: &str) -> usize {
        self.routes
            .get(route)
            .map_or(0, |rooms| rooms.members(room))
    }

    /// Runs `command` on the client `client_id` of this process (`None` when it is not
    /// connected here): what [`LocalNode::run`] does for the other nodes.
    pub(crate) fn run_command(
        &self,
        client_id: &str,
        command: &Command,
    ) -> Option<BoxFuture<Outcome>> {
        let client = self.client(client_id)?;
        let done = |result: Result<bool, String>| -> Option<BoxFuture<Outcome>> {
            let outcome = result.map_or_else(Outcome::Refused, Outcome::Done);
            Some(Box::pin(std::future::ready(outcome)))
        };
        match command {
            Command::Ping => done(Ok(true)),
            Command::Join { room } => match client.join(room) {
                Ok(joined) => {
                    let ready = self.room_ready(client.route(), room);
                    Some(Box::pin(async move {
                        if let Some(ready) = ready {
                            ready.await;
                        }
                        Outcome::Done(joined)
                    }))
                }
                Err(err) => done(Err(err.to_string())),
            },
            Command::Leave { room } => done(client.leave(room).map_err(|err| err.to_string())),
            Command::Disconnect { code, reason } => done(
                crate::CloseCode::try_from(*code)
                    .and_then(|code| client.close(code, reason.as_str()))
                    .map(|()| true)
                    .map_err(|err| err.to_string()),
            ),
        }
    }

    /// Runs `command` on the client `client_id` wherever it is connected: here, or through
    /// the adapter on the node that holds it. `Ok(None)` when no node does.
    pub(crate) async fn command(
        &self,
        client_id: &str,
        command: Command,
    ) -> Result<Option<Outcome>, AdapterError> {
        if let Some(here) = self.run_command(client_id, &command) {
            return Ok(Some(here.await));
        }
        match self.adapter.command(client_id, command) {
            Some(remote) => remote.await,
            None => Ok(None),
        }
    }

    /// The client with this id, if it is connected to this process.
    pub fn client(&self, client_id: &str) -> Option<Client> {
        self.clients
            .get(client_id)
            .map(|member| member.client.clone())
    }

    /// The ids of this process's clients in `room` on `route`, sorted.
    pub fn room_member_ids(&self, route: &str, room: &str) -> Vec<String> {
        self.routes
            .get(route)
            .map_or_else(Vec::new, |rooms| rooms.member_ids(room))
    }

    /// Whether a client with this id is connected to this process.
    pub fn is_connected(&self, client_id: &str) -> bool {
        self.clients.contains_key(client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Outgoing;

    /// The frames waiting in a queue, `connected` left out.
    fn events(queue: &mut OutboxReceiver) -> Vec<String> {
        std::iter::from_fn(|| queue.try_recv())
            .filter_map(|item| match item {
                Outgoing::Frame(frame) => Some(frame.as_str().to_owned()),
                _ => None,
            })
            .filter(|text| !text.starts_with(r#"{"event":"connected""#))
            .collect()
    }

    #[test]
    fn broadcast_skips_exactly_the_sender_and_raw_routes() {
        let hub = Hub::new(["/ws", "/raw"], HubConfig::default());
        let (a, mut qa) = hub.register("/ws").unwrap();
        let (b, mut qb) = hub.register("/ws").unwrap();
        let (_raw, mut qraw) = hub
            .register_with("/raw", http::Extensions::new(), false)
            .unwrap();
        let frame = Frame::event("e", &1).unwrap();
        let expected = vec![frame.as_str().to_owned()];

        // From `a`: `b` only.
        let except = Some(a.id());
        assert_eq!(hub.deliver_local(Target::All { except }, &frame), 1);
        assert!(events(&mut qa).is_empty());
        assert_eq!(events(&mut qb), expected);

        // From a client of another process (unknown here), or from the server: everyone.
        for except in [Some("ws:not-here"), None] {
            assert_eq!(hub.deliver_local(Target::All { except }, &frame), 2);
            assert_eq!(events(&mut qa), expected);
            assert_eq!(events(&mut qb), expected);
        }

        // A sender that has left is no longer anyone's number: the rest still get it.
        let b_id = b.id().to_owned();
        hub.unregister(&b);
        let except = Some(b_id.as_str());
        assert_eq!(hub.deliver_local(Target::All { except }, &frame), 1);
        assert_eq!(events(&mut qa), expected);
        assert!(events(&mut qraw).is_empty());
    }
}
