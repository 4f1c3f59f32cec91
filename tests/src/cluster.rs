//! An in-process cluster: the adapter seam proven with several hubs in one process, before any
//! broker. Every node's adapter hands its frames to the nodes that asked for them, as a
//! pub/sub broker would:
//!
//! - a direct message only to the node that holds its recipient;
//! - a room's message only to the nodes subscribed to that room (a node subscribes when its
//!   first member joins, and leaves with its last);
//! - a broadcast to every other node.
//!
//! A subscription takes effect only after the subscribing task has run (a broker answers a
//! `SUBSCRIBE` some time later), so a `join-room` acknowledged before the node is subscribed
//! would lose the room's next message: what [`Adapter::room_ready`] prevents.
//!
//! Frames are handed over synchronously, from the sender's `publish`, in the order of the
//! sends: one ordered path per pair of nodes, the rule the adapter docs ask for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use vania_ws::adapter::{
    Adapter, AdapterError, BoxFuture, Command, Frame, LocalNode, Outcome, PublishError, Target,
};

/// How long a client's subscription takes to take effect.
const CLIENT_SUBSCRIBE_DELAY: Duration = Duration::from_millis(30);

/// The cluster's "broker": what each node serves and has received.
#[derive(Debug, Default)]
pub struct MemoryCluster {
    nodes: Mutex<Vec<NodeState>>,
}

#[derive(Debug, Default)]
struct NodeState {
    local: Option<LocalNode>,
    /// The node's clients, each with whether its subscription took effect.
    clients: HashMap<String, watch::Sender<bool>>,
    /// The rooms the node follows, each with whether its subscription took effect.
    rooms: HashMap<(String, String), watch::Sender<bool>>,
    /// Frames handed to this node by the others.
    received: u64,
    closed: bool,
}

impl MemoryCluster {
    /// An empty cluster.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The adapter of one more node.
    pub fn node(self: &Arc<Self>) -> Arc<dyn Adapter> {
        let mut nodes = self.lock();
        nodes.push(NodeState::default());
        Arc::new(NodeAdapter {
            cluster: self.clone(),
            index: nodes.len() - 1,
        })
    }

    /// How many frames node `index` received from the others.
    pub fn received(&self, index: usize) -> u64 {
        self.lock()[index].received
    }

    /// The rooms node `index` follows, sorted, whether or not the subscription took effect.
    pub fn followed_rooms(&self, index: usize) -> Vec<(String, String)> {
        let mut rooms: Vec<_> = self.lock()[index].rooms.keys().cloned().collect();
        rooms.sort();
        rooms
    }

    /// Whether node `index`'s adapter was closed.
    pub fn is_closed(&self, index: usize) -> bool {
        self.lock()[index].closed
    }

    fn lock(&self) -> MutexGuard<'_, Vec<NodeState>> {
        self.nodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct NodeAdapter {
    cluster: Arc<MemoryCluster>,
    index: usize,
}

impl NodeAdapter {
    fn with_node<R>(&self, f: impl FnOnce(&mut NodeState) -> R) -> R {
        f(&mut self.cluster.lock()[self.index])
    }
}

impl Adapter for NodeAdapter {
    fn init(&self, node: LocalNode) -> BoxFuture<Result<(), AdapterError>> {
        let started = self.with_node(|state| match state.local {
            Some(_) => Err(AdapterError::new("this node's adapter was started twice")),
            None => {
                state.local = Some(node);
                Ok(())
            }
        });
        Box::pin(std::future::ready(started))
    }

    fn publish(&self, target: Target<'_>, frame: &Frame) -> Result<(), PublishError> {
        // Who gets it, chosen under the lock; delivered after it (delivery takes the other
        // hubs' own locks).
        let recipients: Vec<LocalNode> = {
            let mut nodes = self.cluster.lock();
            let mut recipients = Vec::new();
            for (index, state) in nodes.iter_mut().enumerate() {
                if index == self.index {
                    continue;
                }
                let wanted = match target {
                    Target::Client(id) => state
                        .clients
                        .get(id)
                        .is_some_and(|subscribed| *subscribed.borrow()),
                    Target::Room { route, room } | Target::RoomExcept { route, room, .. } => state
                        .rooms
                        .get(&(route.to_owned(), room.to_owned()))
                        .is_some_and(|subscribed| *subscribed.borrow()),
                    Target::All { .. } => true,
                    _ => false,
                };
                if let (true, Some(local)) = (wanted, &state.local) {
                    state.received += 1;
                    recipients.push(local.clone());
                }
            }
            recipients
        };
        for node in recipients {
            node.deliver(target, frame);
        }
        Ok(())
    }

    fn client_connected(&self, client_id: &str) {
        let (subscribed, _) = watch::channel(false);
        let id = client_id.to_owned();
        self.with_node(|state| state.clients.insert(id.clone(), subscribed));
        // A client's subscription takes a broker's round trip, here a long one: were its id
        // sent before, a direct message from another node right after it would be lost.
        let cluster = self.cluster.clone();
        let index = self.index;
        tokio::spawn(async move {
            tokio::time::sleep(CLIENT_SUBSCRIBE_DELAY).await;
            if let Some(subscribed) = cluster.lock()[index].clients.get(&id) {
                subscribed.send_replace(true);
            }
        });
    }

    fn client_ready(&self, client_id: &str) -> Option<BoxFuture<()>> {
        let mut subscribed =
            self.with_node(|state| state.clients.get(client_id).map(|s| s.subscribe()))?;
        if *subscribed.borrow() {
            return None;
        }
        Some(Box::pin(async move {
            let _ = subscribed.wait_for(|subscribed| *subscribed).await;
        }))
    }

    fn client_disconnected(&self, client_id: &str) {
        self.with_node(|state| state.clients.remove(client_id));
    }

    fn room_opened(&self, route: &str, room: &str) {
        let (subscribed, _) = watch::channel(false);
        let key = (route.to_owned(), room.to_owned());
        self.with_node(|state| state.rooms.insert(key.clone(), subscribed));
        // The subscription takes effect once this task has run, as a broker's answer would.
        let cluster = self.cluster.clone();
        let index = self.index;
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            if let Some(subscribed) = cluster.lock()[index].rooms.get(&key) {
                subscribed.send_replace(true);
            }
        });
    }

    fn room_closed(&self, route: &str, room: &str) {
        let key = (route.to_owned(), room.to_owned());
        self.with_node(|state| state.rooms.remove(&key));
    }

    fn room_ready(&self, route: &str, room: &str) -> Option<BoxFuture<()>> {
        let key = (route.to_owned(), room.to_owned());
        let mut subscribed =
            self.with_node(|state| state.rooms.get(&key).map(|s| s.subscribe()))?;
        if *subscribed.borrow() {
            return None;
        }
        Some(Box::pin(async move {
            // Closed (the room emptied meanwhile): nothing to wait for.
            let _ = subscribed.wait_for(|subscribed| *subscribed).await;
        }))
    }

    fn command(
        &self,
        client_id: &str,
        command: Command,
    ) -> Option<BoxFuture<Result<Option<Outcome>, AdapterError>>> {
        // Run at once, as a frame is delivered: in order with this node's publishes.
        let holder = self
            .cluster
            .lock()
            .iter()
            .enumerate()
            .find_map(|(index, state)| {
                (index != self.index && state.clients.contains_key(client_id))
                    .then(|| state.local.clone())
                    .flatten()
            });
        let running = holder.and_then(|local| local.run(client_id, &command));
        Some(Box::pin(async move {
            Ok(match running {
                Some(running) => Some(running.await),
                None => None,
            })
        }))
    }

    fn close(&self) -> BoxFuture<()> {
        self.with_node(|state| state.closed = true);
        Box::pin(std::future::ready(()))
    }
}
