//! Scale-out over Redis for vania-ws: several server processes behind a load balancer behave,
//! to every client, as one server. A client's `to`, `to_room` and `broadcast` reach the
//! clients of every process (PROTOCOL.md section 6), through Redis pub/sub.
//!
//! ```no_run
//! # async fn run(router: vania_ws_core::Router) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use vania_ws_redis::{RedisAdapter, RedisConfig};
//! # let builder = |_adapter: Arc<RedisAdapter>| ();
//! let adapter = RedisAdapter::new(RedisConfig::new("redis://127.0.0.1:6379"))?;
//! // Server::builder(router).adapter(adapter)…, or set `REDIS_URL` for the server to do it.
//! # builder(adapter);
//! # Ok(()) }
//! ```
//!
//! # How a frame travels
//!
//! A send is encoded once, delivered to this node's clients, then published once (not once
//! per recipient) with its bytes as they were encoded, behind a one-line header:
//! - to `{PREFIX}:client:ID` for `to(id)`: only the node that holds the client subscribes,
//!   so no other node does any work for it;
//! - to `{PREFIX}:room:N:ROUTE:ROOM` for `to_room`: a node subscribes while it has a member
//!   in the room, so nodes get no traffic for rooms they do not serve;
//! - to `{PREFIX}:all` for `broadcast`, which every node subscribes to.
//!
//! A `join-room` is acknowledged once the node's subscription to the room is confirmed by
//! Redis, so a message sent to the room from another node after the acknowledgement arrives.
//!
//! # Order
//!
//! Each node publishes through one connection, from one task, in the order its sends are
//! made, and receives through one subscribing connection. Redis runs one connection's
//! commands in order and pushes one subscriber's messages in the order it ran the publishes,
//! so messages from one sender to one recipient arrive in the order sent, whatever mix of
//! channels they took.
//!
//! # Redis Cluster
//!
//! With [`RedisConfig::cluster`] (`REDIS_CLUSTER=true`), the adapter reaches a Redis Cluster
//! from one or more of its nodes, and frames travel by sharded pub/sub (`SPUBLISH`,
//! `SSUBSCRIBE`). The braces in `{PREFIX}` are a hash tag: all of one app's channels and keys
//! are in one hash slot, on one shard, so the order above holds there too (one connection to
//! one shard each way), at the cost of one app's pub/sub not spreading over the shards.
//!
//! # Faults
//!
//! Redis pub/sub delivers at most once. While Redis is unreachable, every node keeps serving
//! its own clients; frames for other nodes are dropped and counted
//! ([`RedisMetrics::dropped`]), and the adapter reconnects with capped exponential backoff,
//! then subscribes again to every channel it needs. A Redis unreachable at start is a
//! degraded start (logged), or a failed start with [`RedisConfig::required`].

mod backend;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use vania_ws_core::adapter::{
    Adapter, AdapterError, BoxFuture, Command, Frame, LocalNode, Outcome, PublishError, Target,
};

use crate::backend::{Backend, Connection, Subscriber};
use crate::wire::Channels;

/// How to reach Redis, and how to behave without it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis://[user:password@]host[:port][/db]`; for a Redis Cluster, the
    /// URLs of some of its nodes, separated by commas.
    pub url: String,
    /// `REDIS_CLUSTER`: Redis is a Redis Cluster (7 or later), reached through sharded
    /// pub/sub. Default `false`.
    pub cluster: bool,
    /// `REDIS_PREFIX`: the first part of every channel name, so that several applications can
    /// share one Redis. Default `vania-ws`.
    pub prefix: String,
    /// `REDIS_REQUIRED`: fail start-up when Redis is unreachable, instead of starting
    /// degraded (local delivery only, reconnecting in the background). Default `false`.
    pub required: bool,
    /// Frames waiting to be published, at most; past it a send's frame for other nodes is
    /// dropped and counted. Default 65,536.
    pub publish_queue: usize,
    /// How long connecting may take. Default 2 s.
    pub connect_timeout: Duration,
    /// How long a `join-room` waits for its subscription before it is acknowledged anyway.
    /// Default 2 s.
    pub subscribe_timeout: Duration,
    /// `REDIS_PRESENCE_TTL_MS`: how long a node's room members stay in the cluster-wide
    /// presence without the node refreshing them (it does every third of this): how soon the
    /// members of a node that crashed disappear. Default 15 s.
    pub presence_ttl: Duration,
}

impl RedisConfig {
    /// The settings for the Redis at `url`, with every default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: false,
            prefix: "vania-ws".to_owned(),
            required: false,
            publish_queue: 1 << 16,
            connect_timeout: Duration::from_secs(2),
            subscribe_timeout: Duration::from_secs(2),
            presence_ttl: Duration::from_secs(15),
        }
    }

    /// Sets the channel prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets whether Redis is a Redis Cluster (then `url` may list several of its nodes,
    /// separated by commas).
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Sets whether an unreachable Redis fails start-up.
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// The settings from `REDIS_URL`, `REDIS_CLUSTER`, `REDIS_PREFIX`, `REDIS_REQUIRED` and
    /// `REDIS_PRESENCE_TTL_MS` in `vars`; `None` when `REDIS_URL` is unset or empty.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Option<Self>, ConfigError> {
        let Some(url) = vars.get("REDIS_URL").filter(|url| !url.is_empty()) else {
            return Ok(None);
        };
        let mut config = Self::new(url.clone());
        if let Some(prefix) = vars.get("REDIS_PREFIX") {
            check_prefix(prefix)?;
            config.prefix = prefix.clone();
        }
        if let Some(ttl) = vars.get("REDIS_PRESENCE_TTL_MS") {
            config.presence_ttl = match ttl.parse::<u64>() {
                Ok(ms) if ms >= 100 => Duration::from_millis(ms),
                _ => return Err(ConfigError::PresenceTtl(ttl.clone())),
            };
        }
        if let Some(required) = vars.get("REDIS_REQUIRED") {
            config.required =
                boolean(required).ok_or_else(|| ConfigError::Required(required.clone()))?;
        }
        if let Some(cluster) = vars.get("REDIS_CLUSTER") {
            config.cluster =
                boolean(cluster).ok_or_else(|| ConfigError::Cluster(cluster.clone()))?;
        }
        config.check_urls()?;
        Ok(Some(config))
    }

    /// Several URLs are a cluster's.
    fn check_urls(&self) -> Result<(), ConfigError> {
        if !self.cluster && self.url.contains(',') {
            return Err(ConfigError::SeveralUrls(redact(&self.url)));
        }
        Ok(())
    }
}

/// No `:`: the prefix ends where the first `:` of a channel name is, so that one app's
/// prefix is never another's channel. No braces: the prefix is the names' hash tag
/// (`{PREFIX}`), which a brace would cut short.
fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() || prefix.contains(char::is_whitespace) || prefix.contains([':', '{', '}'])
    {
        return Err(ConfigError::Prefix(prefix.to_owned()));
    }
    Ok(())
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Why the Redis settings are invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `REDIS_URL` is not a Redis URL.
    #[error("`REDIS_URL` is not a Redis URL ({0})")]
    Url(#[source] redis::RedisError),
    /// `REDIS_URL` lists several URLs, but `REDIS_CLUSTER` is not set.
    #[error(
        "`REDIS_URL` lists several URLs (`{0}`): set `REDIS_CLUSTER=true` if they are nodes of a Redis Cluster"
    )]
    SeveralUrls(String),
    /// `REDIS_PREFIX` is empty, or holds white space, a `:` or a brace.
    #[error("`REDIS_PREFIX` must be a non-empty word without `:`, `{{` or `}}`, got `{0}`")]
    Prefix(String),
    /// `REDIS_PRESENCE_TTL_MS` is not a number of milliseconds of at least 100.
    #[error("`REDIS_PRESENCE_TTL_MS` must be a number of milliseconds, at least 100, got `{0}`")]
    PresenceTtl(String),
    /// `REDIS_REQUIRED` is not a boolean.
    #[error("`REDIS_REQUIRED` must be true or false, got `{0}`")]
    Required(String),
    /// `REDIS_CLUSTER` is not a boolean.
    #[error("`REDIS_CLUSTER` must be true or false, got `{0}`")]
    Cluster(String),
}

/// Counters of one node's adapter.
#[derive(Debug, Default)]
pub struct RedisMetrics {
    published: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    publish_errors: AtomicU64,
    reconnects: AtomicU64,
}

impl RedisMetrics {
    /// Frames published to Redis.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Frames for other nodes that were dropped: Redis unreachable, the publish queue full,
    /// or a publish that failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Frames received from other nodes.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Publish commands that failed (each may have carried several frames).
    pub fn publish_errors(&self) -> u64 {
        self.publish_errors.load(Ordering::Relaxed)
    }

    /// Connections made again after one was lost (both the publishing and the subscribing one).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
}

/// The adapter: give it to `ServerBuilder::adapter`, or set `REDIS_URL`.
pub struct RedisAdapter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("node", &self.shared.node_id)
            .field("prefix", &self.shared.config.prefix)
            .finish_non_exhaustive()
    }
}

/// One subscription this node wants, and whether Redis confirmed it.
#[derive(Debug, Default)]
struct Wanted {
    confirmed: bool,
    waiters: Vec<oneshot::Sender<()>>,
}

/// A change of this node's room members, for the cluster-wide presence.
#[derive(Debug)]
enum Member {
    Joined {
        route: String,
        room: String,
        id: String,
    },
    Left {
        route: String,
        room: String,
        id: String,
    },
}

struct Shared {
    config: RedisConfig,
    backend: Backend,
    node_id: String,
    channels: Channels,
    local: OnceLock<LocalNode>,
    /// Every channel this node wants, confirmed or not: what a new connection subscribes to.
    wanted: Mutex<HashMap<String, Wanted>>,
    /// The channels whose wish changed, in the order the hub reported it; what each one is
    /// now is read from `wanted` when the change is applied.
    changes: mpsc::UnboundedSender<String>,
    outgoing: mpsc::Sender<Outgoing>,
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    /// How many times the subscriber has connected: the publisher reconnects when it moves.
    epoch: AtomicU64,
    /// Cancelled by `close`: level-triggered, so no task can miss it between two waits.
    closed: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    receivers: Mutex<Option<Receivers>>,
    members: mpsc::UnboundedSender<Member>,
    /// The presence task's connection, for queries; `None` while Redis is unreachable.
    presence_connection: Mutex<Option<Connection>>,
    /// Tells the presence task to connect again and write every member back: Redis came
    /// back (it may have lost them), or a query found the connection dead.
    presence_stale: Notify,
    pending: Mutex<Pending>,
    next_request: AtomicU64,
    /// Every room whose presence this node has written, for the clean-up at close.
    written: Mutex<std::collections::BTreeSet<(String, String)>>,
    metrics: RedisMetrics,
}

/// One message waiting to be published.
struct Outgoing {
    channel: String,
    message: Vec<u8>,
    /// A command's number: when no one receives it (no node holds the client), its asker is
    /// told at once instead of waiting out the timeout.
    request: Option<u64>,
}

/// The commands this node asked, waiting for their answer.
type Pending = HashMap<u64, oneshot::Sender<Option<Outcome>>>;

/// Takes request `.1` out of the table when dropped.
struct Forget<'a>(&'a Shared, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.pending().remove(&self.1);
    }
}

struct Receivers {
    changes: mpsc::UnboundedReceiver<String>,
    outgoing: mpsc::Receiver<Outgoing>,
    members: mpsc::UnboundedReceiver<Member>,
}

impl RedisAdapter {
    /// An adapter for `config`; it connects when the server starts it. An error when the URL
    /// is not a Redis URL (or, for a cluster, a list of them), or the prefix is not valid.
    pub fn new(config: RedisConfig) -> Result<Arc<Self>, ConfigError> {
        check_prefix(&config.prefix)?;
        config.check_urls()?;
        let backend = Backend::new(&config.url, config.cluster).map_err(ConfigError::Url)?;
        let (changes, changes_rx) = mpsc::unbounded_channel();
        let (outgoing, outgoing_rx) = mpsc::channel(config.publish_queue.max(1));
        let (members, members_rx) = mpsc::unbounded_channel();
        let channels = Channels::new(&config.prefix);
        let node_id = format!("node:{}", uuid::Uuid::new_v4());
        let mut wanted = HashMap::new();
        wanted.insert(channels.all(), Wanted::default());
        wanted.insert(channels.node(&node_id), Wanted::default());
        Ok(Arc::new(Self {
            shared: Arc::new(Shared {
                node_id,
                channels,
                config,
                backend,
                local: OnceLock::new(),
                wanted: Mutex::new(wanted),
                changes,
                outgoing,
                publisher_up: AtomicBool::new(false),
                subscriber_up: AtomicBool::new(false),
                epoch: AtomicU64::new(0),
                closed: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
                receivers: Mutex::new(Some(Receivers {
                    changes: changes_rx,
                    outgoing: outgoing_rx,
                    members: members_rx,
                })),
                members,
                presence_connection: Mutex::new(None),
                presence_stale: Notify::new(),
                written: Mutex::new(Default::default()),
                pending: Mutex::new(HashMap::new()),
                next_request: AtomicU64::new(0),
                metrics: RedisMetrics::default(),
            }),
        }))
    }

    /// This node's id in the cluster (it recognises its own messages by it).
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The adapter's counters.
    pub fn metrics(&self) -> &RedisMetrics {
        &self.shared.metrics
    }

    /// Whether both connections to Redis are up: frames reach the other nodes.
    pub fn is_connected(&self) -> bool {
        self.shared.publisher_up.load(Ordering::Acquire)
            && self.shared.subscriber_up.load(Ordering::Acquire)
    }
}

impl Shared {
    fn wanted(&self) -> MutexGuard<'_, HashMap<String, Wanted>> {
        self.wanted.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn want(&self, channel: String) {
        self.wanted().entry(channel.clone()).or_default();
        let _ = self.changes.send(channel);
    }

    fn unwant(&self, channel: String) {
        if let Some(wanted) = self.wanted().remove(&channel) {
            drop(wanted.waiters);
        }
        let _ = self.changes.send(channel);
    }

    /// Marks `channels` confirmed, if still wanted, and wakes whoever waits for them.
    fn confirmed<'a>(&self, channels: impl IntoIterator<Item = &'a String>) {
        let mut wanted = self.wanted();
        for channel in channels {
            if let Some(state) = wanted.get_mut(channel) {
                state.confirmed = true;
                for waiter in state.waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    fn unconfirm_all(&self) {
        for state in self.wanted().values_mut() {
            state.confirmed = false;
        }
    }

    /// Resolves once Redis confirmed the subscription to `channel` (at most the subscribe
    /// timeout); `None` when it is confirmed, not wanted, or the subscriber is down (then
    /// nothing comes from the other nodes anyway).
    fn ready(&self, channel: String) -> Option<BoxFuture<()>> {
        if !self.subscriber_up.load(Ordering::Acquire) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut wanted = self.wanted();
            let state = wanted.get_mut(&channel)?;
            if state.confirmed {
                return None;
            }
            state.waiters.push(tx);
        }
        let timeout = self.config.subscribe_timeout;
        Some(Box::pin(async move {
            if tokio::time::timeout(timeout, rx).await.is_err() {
                tracing::warn!(%channel, "Redis did not confirm a subscription in time: going on without it");
            }
        }))
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the asker of request `n` that no node holds its client (`Some(None)`), or, with
    /// `None`, that its request was lost.
    fn answer(&self, n: u64, outcome: Option<Option<Outcome>>) {
        let waiter = self.pending().remove(&n);
        if let (Some(waiter), Some(outcome)) = (waiter, outcome) {
            let _ = waiter.send(outcome);
        }
    }

    /// Queues `message` for `channel`; `false` when the queue is full or closed.
    fn enqueue(&self, channel: String, message: Vec<u8>, request: Option<u64>) -> bool {
        let outgoing = Outgoing {
            channel,
            message,
            request,
        };
        self.outgoing.try_send(outgoing).is_ok()
    }

    fn written(&self) -> MutexGuard<'_, std::collections::BTreeSet<(String, String)>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The URL without its password, for logs and errors.
    fn url(&self) -> String {
        redact(&self.config.url)
    }

    fn presence_connection(&self) -> MutexGuard<'_, Option<Connection>> {
        self.presence_connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn is_closing(&self) -> bool {
        self.closed.is_cancelled() || self.local.get().is_some_and(|local| !local.is_alive())
    }

    async fn connect_timeout<T>(
        &self,
        connect: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, AdapterError> {
        match tokio::time::timeout(self.config.connect_timeout, connect).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(AdapterError::with_source(
                format!("cannot connect to Redis at {}", self.url()),
                err,
            )),
            Err(_) => Err(AdapterError::new(format!(
                "cannot connect to Redis at {}: no answer within {:?}",
                self.url(),
                self.config.connect_timeout
            ))),
        }
    }

    /// Connects with `connect`, retrying with backoff (`delay`) until it succeeds; `None` once
    /// the adapter closes. `what` names the connection in the debug log.
    async fn connect_retrying<T, F>(
        &self,
        what: &str,
        delay: &mut Duration,
        connect: impl Fn() -> F,
    ) -> Option<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        while !self.is_closing() {
            match self.connect_timeout(connect()).await {
                Ok(connection) => return Some(connection),
                Err(err) => {
                    tracing::debug!(error = %err, "Redis {what}: reconnecting");
                    if !self.backoff(delay).await {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Waits `delay`, or less if the adapter closes; `false` once it closes.
    async fn backoff(&self, delay: &mut Duration) -> bool {
        let jitter = Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 50);
        tokio::select! {
            () = tokio::time::sleep(*delay + jitter) => {}
            () = self.closed.cancelled() => {}
        }
        *delay = (*delay * 2).min(MAX_BACKOFF);
        !self.is_closing()
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Frames published in one pipeline at most.
const BATCH: usize = 512;
/// Rooms written back in one transaction at most, by a presence refresh.
const REFRESH_ROOMS: usize = 256;

impl Adapter for RedisAdapter {
    fn init(&self, node: LocalNode) -> BoxFuture<Result<(), AdapterError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(AdapterError::new(
                    "the Redis adapter starts inside a tokio runtime (`ServerBuilder::start().await`)",
                ));
            }
            // One try now: a required Redis fails start-up; otherwise the tasks keep trying.
            // Nothing is taken before it, so a failed start can be tried again.
            let publisher = match shared.connect_timeout(shared.backend.connect()).await {
                Ok(connection) => Some(connection),
                // A Redis of the other kind is a mistake in the settings, not an outage: it
                // fails start-up, required or not.
                Err(err) if shared.backend.is_cluster() && is_not_a_cluster(&err) => {
                    return Err(AdapterError::new(format!(
                        "`REDIS_CLUSTER` is set, but the Redis at {} is not a Redis Cluster node",
                        shared.url()
                    )));
                }
                Err(err) if shared.config.required => return Err(err),
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        "Redis is unreachable: running degraded (this node's clients only), reconnecting in the background"
                    );
                    None
                }
            };
            if let Some(mut con) = publisher.clone()
                && !shared.backend.is_cluster()
                && backend::is_cluster_node(&mut con).await.unwrap_or(false)
            {
                return Err(AdapterError::new(format!(
                    "the Redis at {} is a Redis Cluster node: set `REDIS_CLUSTER=true` \
                     (`RedisConfig::cluster`) and list some of its nodes in `REDIS_URL`",
                    shared.url()
                )));
            }
            let receivers = shared
                .receivers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| AdapterError::new("this Redis adapter was started already"))?;
            let _ = shared.local.set(node);
            let (up_tx, up_rx) = oneshot::channel();
            let reachable = publisher.is_some();
            let tasks = vec![
                tokio::spawn(publish_task(shared.clone(), receivers.outgoing, publisher)),
                tokio::spawn(subscribe_task(shared.clone(), receivers.changes, up_tx)),
                tokio::spawn(presence_task(shared.clone(), receivers.members)),
            ];
            *shared.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
            if reachable {
                // Broadcasts from other nodes reach this one from its first connection on.
                match tokio::time::timeout(shared.config.connect_timeout, up_rx).await {
                    Ok(Ok(())) => tracing::info!(
                        node = %shared.node_id,
                        prefix = %shared.config.prefix,
                        "Redis adapter connected"
                    ),
                    _ => tracing::warn!(
                        "Redis accepted a connection but no subscription in time: retrying in the background"
                    ),
                }
            }
            Ok(())
        })
    }

    fn publish(&self, target: Target<'_>, frame: &Frame) -> Result<(), PublishError> {
        let shared = &self.shared;
        let drop_one = |error| {
            shared.metrics.dropped.fetch_add(1, Ordering::Relaxed);
            Err(error)
        };
        // Both connections: with the subscriber down, Redis is most likely gone as well.
        if !(shared.publisher_up.load(Ordering::Acquire)
            && shared.subscriber_up.load(Ordering::Acquire))
        {
            return drop_one(PublishError::Disconnected);
        }
        let (Some(channel), Some(message)) = (
            shared.channels.of(target),
            wire::encode(&shared.node_id, target, frame),
        ) else {
            return Ok(());
        };
        let outgoing = Outgoing {
            channel,
            message,
            request: None,
        };
        match shared.outgoing.try_send(outgoing) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => drop_one(PublishError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => drop_one(PublishError::Disconnected),
        }
    }

    fn client_connected(&self, client_id: &str) {
        self.shared.want(self.shared.channels.client(client_id));
    }

    fn client_disconnected(&self, client_id: &str) {
        self.shared.unwant(self.shared.channels.client(client_id));
    }

    fn room_opened(&self, route: &str, room: &str) {
        self.shared.want(self.shared.channels.room(route, room));
    }

    fn room_closed(&self, route: &str, room: &str) {
        self.shared.unwant(self.shared.channels.room(route, room));
    }

    fn member_joined(&self, route: &str, room: &str, client_id: &str) {
        let _ = self.shared.members.send(Member::Joined {
            route: route.to_owned(),
            room: room.to_owned(),
            id: client_id.to_owned(),
        });
    }

    fn member_left(&self, route: &str, room: &str, client_id: &str) {
        let _ = self.shared.members.send(Member::Left {
            route: route.to_owned(),
            room: room.to_owned(),
            id: client_id.to_owned(),
        });
    }

    fn presence(
        &self,
        route: &str,
        room: &str,
    ) -> Option<BoxFuture<Result<Vec<String>, AdapterError>>> {
        let shared = self.shared.clone();
        let (route, room) = (route.to_owned(), room.to_owned());
        Some(Box::pin(async move {
            let timeout = shared.config.connect_timeout;
            match tokio::time::timeout(timeout, query_presence(&shared, &route, &room)).await {
                Ok(answer) => answer,
                Err(_) => Err(AdapterError::new(format!(
                    "Redis did not answer the presence of `{room}` within {timeout:?}"
                ))),
            }
        }))
    }

    fn client_ready(&self, client_id: &str) -> Option<BoxFuture<()>> {
        self.shared.ready(self.shared.channels.client(client_id))
    }

    fn command(
        &self,
        client_id: &str,
        command: Command,
    ) -> Option<BoxFuture<Result<Option<Outcome>, AdapterError>>> {
        let shared = self.shared.clone();
        // Queued now, in order with this node's publishes; only the answer is awaited.
        let queued = if self.is_connected() {
            let n = shared.next_request.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            shared.pending().insert(n, tx);
            let message = wire::encode_request(&shared.node_id, client_id, n, command);
            if shared.enqueue(shared.channels.client(client_id), message, Some(n)) {
                Ok((n, rx))
            } else {
                shared.answer(n, None);
                Err("the publish queue is full")
            }
        } else {
            Err("Redis is unreachable")
        };
        let client_id = client_id.to_owned();
        Some(Box::pin(async move {
            let (n, rx) = queued.map_err(|why| {
                AdapterError::new(format!(
                    "cannot reach the node of client `{client_id}`: {why}"
                ))
            })?;
            // However the wait ends (an answer, the timeout, or the caller dropping it), the
            // request leaves the table.
            let _forget = Forget(&shared, n);
            // The other node may wait up to the subscribe timeout itself (a join waits for
            // its subscription): twice that, so its answer is not given up on first.
            let timeout = 2 * shared.config.subscribe_timeout;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(_)) => Err(AdapterError::new(format!(
                    "the request for client `{client_id}` may not have run: Redis failed while publishing it"
                ))),
                Err(_) => Err(AdapterError::new(format!(
                    "the node of client `{client_id}` did not answer within {timeout:?} (the request may or may not have run)"
                ))),
            }
        }))
    }

    fn room_ready(&self, route: &str, room: &str) -> Option<BoxFuture<()>> {
        self.shared.ready(self.shared.channels.room(route, room))
    }

    fn close(&self) -> BoxFuture<()> {
        let shared = self.shared.clone();
        Box::pin(async move {
            shared.closed.cancel();
            // The publisher sends what the drain queued (the `disconnect` handlers' frames),
            // then ends; what does not end within the deadline is stopped.
            let tasks =
                std::mem::take(&mut *shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
            for mut task in tasks {
                if tokio::time::timeout(shared.config.connect_timeout, &mut task)
                    .await
                    .is_err()
                {
                    task.abort();
                    let _ = task.await;
                }
            }
            shared.publisher_up.store(false, Ordering::Release);
            shared.subscriber_up.store(false, Ordering::Release);
            // A clean stop takes this node's members out of the presence at once (a crash
            // leaves them until they expire): every room it ever wrote, since the drain has
            // emptied its rooms by now.
            let connection = shared.presence_connection().take();
            let written = std::mem::take(&mut *shared.written());
            if let Some(mut con) = connection {
                let mut pipe = redis::pipe();
                for (route, room) in &written {
                    forget_room(&mut pipe, &shared, route, room);
                }
                let _ =
                    tokio::time::timeout(shared.config.connect_timeout, pipe.exec_async(&mut con))
                        .await;
            }
        })
    }
}

/// The members of a room on every node: this node's from its hub (so a join is seen at once),
/// the others' from their sets in Redis, for the nodes whose sets have not expired.
async fn query_presence(
    shared: &Shared,
    route: &str,
    room: &str,
) -> Result<Vec<String>, AdapterError> {
    let local = shared
        .local
        .get()
        .ok_or_else(|| AdapterError::new("the Redis adapter has not started"))?;
    let mut con = shared.presence_connection().clone().ok_or_else(|| {
        AdapterError::new(format!(
            "Redis at {} is unreachable: the cluster-wide presence is not available",
            shared.url()
        ))
    })?;
    let failed =
        |err: redis::RedisError| AdapterError::with_source("a presence query to Redis failed", err);
    let nodes: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(shared.channels.member_nodes(route, room))
        .arg(now_ms())
        .arg("+inf")
        .query_async(&mut con)
        .await
        .map_err(failed)?;
    let mut ids = local.room_member_ids(route, room);
    let others: Vec<&String> = nodes
        .iter()
        .filter(|node| **node != shared.node_id)
        .collect();
    if !others.is_empty() {
        let mut pipe = redis::pipe();
        for node in &others {
            pipe.smembers(shared.channels.members(node, route, room));
        }
        let sets: Vec<Vec<String>> = pipe.query_async(&mut con).await.map_err(failed)?;
        ids.extend(sets.into_iter().flatten());
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// `url` (or each of a cluster's URLs) with the password of its user part, if any, replaced
/// by `***`.
fn redact(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact).collect::<Vec<_>>().join(",");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Whether connecting failed because the server is not a cluster node (cluster mode was set
/// for a single Redis).
fn is_not_a_cluster(err: &AdapterError) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(err) = source {
        if err.to_string().contains("cluster support disabled") {
            return true;
        }
        source = err.source();
    }
    false
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Keeps this node's room members in Redis: each change as it comes, and every room in full
/// every third of the time to live (which also restores them after Redis lost its data, and
/// clears the rooms this node no longer has).
async fn presence_task(shared: Arc<Shared>, mut members: mpsc::UnboundedReceiver<Member>) {
    // At least 100 ms (`from_vars` checks it; a value set in code is held to it here).
    let ttl = shared.config.presence_ttl.max(Duration::from_millis(100));
    let ttl_ms = ttl.as_millis() as u64;
    let mut delay = FIRST_BACKOFF;
    let mut batch = Vec::new();
    while !shared.is_closing() {
        let connect = || shared.backend.connect();
        let Some(mut con) = shared
            .connect_retrying("presence", &mut delay, connect)
            .await
        else {
            return;
        };
        *shared.presence_connection() = Some(con.clone());
        let mut refresh = tokio::time::interval(ttl / 3);
        let failed = loop {
            let result = tokio::select! {
                _ = refresh.tick() => {
                    let Some(local) = shared.local.get() else { return };
                    if !local.is_alive() || shared.is_closing() {
                        return;
                    }
                    refresh_all(&shared, local, &mut con, ttl_ms).await
                }
                n = members.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    let mut pipe = redis::pipe();
                    let expires = now_ms() + ttl_ms;
                    {
                    let mut written = shared.written();
                    for change in batch.drain(..) {
                        match change {
                            Member::Joined { route, room, id } => {
                                let set = shared.channels.members(&shared.node_id, &route, &room);
                                let index = shared.channels.member_nodes(&route, &room);
                                pipe.sadd(&set, id).ignore()
                                    .pexpire(&set, ttl_ms as i64).ignore()
                                    .zadd(&index, &shared.node_id, expires).ignore()
                                    .pexpire(&index, 2 * ttl_ms as i64).ignore();
                                written.insert((route, room));
                            }
                            Member::Left { route, room, id } => {
                                let set = shared.channels.members(&shared.node_id, &route, &room);
                                pipe.srem(&set, id).ignore();
                            }
                        }
                    }
                    }
                    pipe.exec_async(&mut con).await
                }
                () = shared.closed.cancelled() => return,
                () = shared.presence_stale.notified() => Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "reconnecting to write every member back",
                ))),
            };
            match result {
                Ok(()) => delay = FIRST_BACKOFF,
                Err(err) => break err,
            }
        };
        // The next connection writes every room back in full, first thing; changes not yet
        // written are part of it.
        batch.clear();
        *shared.presence_connection() = None;
        tracing::warn!(error = %failed, "Redis presence: reconnecting");
        if !shared.backoff(&mut delay).await {
            return;
        }
    }
}

/// Takes this node's members of a room out of the presence: its set, and its entry in the
/// room's index.
fn forget_room(pipe: &mut redis::Pipeline, shared: &Shared, route: &str, room: &str) {
    pipe.del(shared.channels.members(&shared.node_id, route, room))
        .ignore()
        .zrem(shared.channels.member_nodes(route, room), &shared.node_id)
        .ignore();
}

/// Writes every room of this node back in full (atomically per room, so a query never sees a
/// set between its `DEL` and its `SADD`), clears the ones it no longer has, and prunes the
/// nodes whose sets expired from each room's index. Rooms go in transactions of
/// [`REFRESH_ROOMS`], so that a node with many rooms never sends Redis one huge command.
async fn refresh_all(
    shared: &Shared,
    local: &LocalNode,
    con: &mut Connection,
    ttl_ms: u64,
) -> redis::RedisResult<()> {
    let now = now_ms();
    let rooms: std::collections::BTreeSet<(String, String)> = local.rooms().into_iter().collect();
    let gone: Vec<(String, String)> = {
        let mut written = shared.written();
        let gone = written.difference(&rooms).cloned().collect();
        *written = rooms.clone();
        gone
    };
    for chunk in gone.chunks(REFRESH_ROOMS) {
        let mut pipe = redis::pipe();
        for (route, room) in chunk {
            forget_room(&mut pipe, shared, route, room);
        }
        pipe.exec_async(&mut *con).await?;
    }
    let rooms: Vec<(String, String)> = rooms.into_iter().collect();
    for chunk in rooms.chunks(REFRESH_ROOMS) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (route, room) in chunk {
            let set = shared.channels.members(&shared.node_id, route, room);
            let index = shared.channels.member_nodes(route, room);
            pipe.del(&set).ignore();
            let ids = local.room_member_ids(route, room);
            if !ids.is_empty() {
                pipe.sadd(&set, ids)
                    .ignore()
                    .pexpire(&set, ttl_ms as i64)
                    .ignore();
            }
            pipe.zadd(&index, &shared.node_id, now + ttl_ms)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&index)
                .arg("-inf")
                .arg(now)
                .ignore()
                .pexpire(&index, 2 * ttl_ms as i64)
                .ignore();
        }
        pipe.exec_async(&mut *con).await?;
    }
    Ok(())
}

/// Publishes what the node sends, in order, in pipelines of up to [`BATCH`] frames.
///
/// A multiplexed connection only learns that Redis went away when a command fails, which
/// would lose the first batch after every outage. So the publisher also reconnects, before
/// its next batch, whenever the subscriber has reconnected (the same Redis came back).
async fn publish_task(
    shared: Arc<Shared>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    mut connection: Option<Connection>,
) {
    let mut delay = FIRST_BACKOFF;
    let mut first = true;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let epoch = shared.epoch.load(Ordering::Acquire);
        let connect = || shared.backend.connect();
        let mut con = match connection.take() {
            Some(con) => con,
            None => match shared
                .connect_retrying("publisher", &mut delay, connect)
                .await
            {
                Some(con) => con,
                None => return,
            },
        };
        if !first {
            shared.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("Redis publisher reconnected");
        }
        first = false;
        delay = FIRST_BACKOFF;
        shared.publisher_up.store(true, Ordering::Release);
        let mut alive = tokio::time::interval(Duration::from_secs(1));
        loop {
            if batch.is_empty() {
                let received = tokio::select! {
                    n = outgoing.recv_many(&mut batch, BATCH) => n,
                    () = shared.closed.cancelled() => 0,
                    // The hub may be dropped without `close`: then this task ends too.
                    _ = alive.tick() => if shared.is_closing() { 0 } else { continue },
                };
                if received == 0 || shared.is_closing() {
                    // Closing: what is queued still goes out, in one last pipeline.
                    while batch.len() < BATCH * 8 {
                        match outgoing.try_recv() {
                            Ok(item) => batch.push(item),
                            Err(_) => break,
                        }
                    }
                    if !batch.is_empty() {
                        let _ = publishes(&batch, shared.backend.publish_command())
                            .exec_async(&mut con)
                            .await;
                    }
                    shared.publisher_up.store(false, Ordering::Release);
                    return;
                }
            }
            if shared.epoch.load(Ordering::Acquire) != epoch {
                // Redis came back since this connection was made: send on a new one (and
                // refuse new frames until then, as while it was down).
                shared.publisher_up.store(false, Ordering::Release);
                break;
            }
            let pipe = publishes(&batch, shared.backend.publish_command());
            let sent = batch.len() as u64;
            let requests: Vec<u64> = batch.drain(..).filter_map(|item| item.request).collect();
            match pipe.query_async::<Vec<i64>>(&mut con).await {
                Ok(receivers) => {
                    shared.metrics.published.fetch_add(sent, Ordering::Relaxed);
                    // A command that no one received: no node holds its client.
                    for (n, _) in requests.iter().zip(receivers).filter(|(_, r)| *r == 0) {
                        shared.answer(*n, Some(None));
                    }
                }
                Err(err) => {
                    for n in requests {
                        shared.answer(n, None);
                    }
                    shared
                        .metrics
                        .publish_errors
                        .fetch_add(1, Ordering::Relaxed);
                    shared.metrics.dropped.fetch_add(sent, Ordering::Relaxed);
                    tracing::warn!(error = %err, frames = sent, "Redis publish failed: reconnecting");
                    shared.publisher_up.store(false, Ordering::Release);
                    // What was queued meanwhile would arrive late, out of its moment: drop it.
                    while let Ok(stale) = outgoing.try_recv() {
                        shared.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = stale.request {
                            shared.answer(n, None);
                        }
                    }
                    break;
                }
            }
        }
    }
}

/// One `PUBLISH` (or `SPUBLISH`) per frame, in order, as one pipeline; the number of
/// receivers is kept for the commands' only.
fn publishes(batch: &[Outgoing], command: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for item in batch {
        pipe.cmd(command).arg(&item.channel).arg(&item.message);
        if item.request.is_none() {
            pipe.ignore();
        }
    }
    pipe
}

/// Keeps one subscribing connection with every wanted channel, and delivers what arrives.
async fn subscribe_task(
    shared: Arc<Shared>,
    mut changes: mpsc::UnboundedReceiver<String>,
    up: oneshot::Sender<()>,
) {
    let mut up = Some(up);
    let mut delay = FIRST_BACKOFF;
    let mut first = true;
    while !shared.is_closing() {
        let connect = || shared.backend.subscriber();
        let Some(mut subscriber) = shared
            .connect_retrying("subscriber", &mut delay, connect)
            .await
        else {
            return;
        };
        // Everything wanted now, which covers every change queued so far (those are
        // dropped); later ones are applied after it, in order.
        while changes.try_recv().is_ok() {}
        let all: Vec<String> = shared.wanted().keys().cloned().collect();
        let mut subscribed = true;
        for chunk in all.chunks(1024) {
            if let Err(err) = subscriber.subscribe(chunk).await {
                tracing::warn!(error = %err, "Redis subscribe failed: reconnecting");
                subscribed = false;
                break;
            }
        }
        if !subscribed {
            if !shared.backoff(&mut delay).await {
                return;
            }
            continue;
        }
        shared.confirmed(&all);
        shared.subscriber_up.store(true, Ordering::Release);
        if !first {
            shared.epoch.fetch_add(1, Ordering::AcqRel);
            shared.presence_stale.notify_one();
            shared.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                channels = all.len(),
                "Redis subscriber reconnected and resubscribed"
            );
        }
        first = false;
        delay = FIRST_BACKOFF;
        if let Some(up) = up.take() {
            let _ = up.send(());
        }
        let mut alive = tokio::time::interval(Duration::from_secs(1));
        let mut pending = Vec::new();
        loop {
            tokio::select! {
                message = subscriber.next() => match message {
                    Some(message) => match (message.payload(), &message) {
                        (Some(payload), _) => deliver(&shared, payload),
                        (None, backend::Message::Unsubscribed(channel)) => {
                            let channel = String::from_utf8_lossy(channel);
                            if shared.wanted().contains_key(&*channel) {
                                tracing::warn!(%channel, "Redis dropped a subscription this node needs: resubscribing");
                                break;
                            }
                        }
                        (None, _) => {}
                    },
                    None => break,
                },
                n = changes.recv_many(&mut pending, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    if let Err(err) = apply(&shared, &mut subscriber, &mut pending).await {
                        tracing::warn!(error = %err, "Redis subscription change failed: reconnecting");
                        break;
                    }
                }
                _ = alive.tick() => {
                    if shared.is_closing() {
                        return;
                    }
                }
                () = shared.closed.cancelled() => return,
            }
        }
        shared.subscriber_up.store(false, Ordering::Release);
        shared.unconfirm_all();
        tracing::warn!(
            "lost the Redis subscription: this node serves its own clients only until it reconnects"
        );
        if !shared.backoff(&mut delay).await {
            return;
        }
    }
}

/// Applies a batch of changes in two commands, each channel as it stands now: a change that
/// a later one undid is skipped, so the subscriptions always end where the hub's rooms and
/// clients are, and a burst of connections costs one round trip, not one each.
async fn apply(
    shared: &Shared,
    subscriber: &mut Subscriber,
    changes: &mut Vec<String>,
) -> redis::RedisResult<()> {
    let mut channels = std::mem::take(changes);
    channels.sort_unstable();
    channels.dedup();
    let (subscribe, unsubscribe): (Vec<String>, Vec<String>) = {
        let wanted = shared.wanted();
        channels
            .into_iter()
            .partition(|channel| wanted.contains_key(channel))
    };
    if !subscribe.is_empty() {
        subscriber.subscribe(&subscribe).await?;
        shared.confirmed(&subscribe);
    }
    if !unsubscribe.is_empty() {
        subscriber.unsubscribe(&unsubscribe).await?;
    }
    Ok(())
}

fn deliver(shared: &Arc<Shared>, message: &[u8]) {
    let received = match wire::decode(message) {
        Ok(received) => received,
        Err(err) => {
            tracing::warn!(error = %err, "ignored a message on a vania-ws channel that is not one");
            return;
        }
    };
    if received.node == shared.node_id {
        // Delivered here when it was sent.
        return;
    }
    if let Some((n, outcome)) = received.reply {
        shared.answer(n, Some(outcome));
        return;
    }
    let Some(local) = shared.local.get() else {
        return;
    };
    if let (Some((n, command)), Some(client)) = (&received.request, received.client()) {
        // Run now, in order with the frames around it; answered once it took effect.
        let running = local.run(client, command);
        let shared = Arc::clone(shared);
        let asker = received.node.clone();
        let n = *n;
        tokio::spawn(async move {
            let outcome = match running {
                Some(running) => Some(running.await),
                None => None,
            };
            let reply = wire::encode_reply(&shared.node_id, n, outcome);
            if !shared.enqueue(shared.channels.node(&asker), reply, None) {
                tracing::debug!("the publish queue is full: a command's answer is dropped");
            }
        });
        return;
    }
    shared.metrics.received.fetch_add(1, Ordering::Relaxed);
    received.with_target(|target| local.deliver(target, &received.frame));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_come_from_the_environment_and_bad_ones_name_their_key() {
        assert_eq!(RedisConfig::from_vars(&vars(&[])).unwrap(), None);
        assert_eq!(
            RedisConfig::from_vars(&vars(&[("REDIS_URL", "")])).unwrap(),
            None
        );
        let config = RedisConfig::from_vars(&vars(&[
            ("REDIS_URL", "redis://h:1"),
            ("REDIS_PREFIX", "chat"),
            ("REDIS_REQUIRED", "true"),
            ("REDIS_PRESENCE_TTL_MS", "1500"),
        ]))
        .unwrap()
        .unwrap();
        assert!(!config.cluster);
        assert_eq!(config.prefix, "chat");
        assert!(config.required);
        assert_eq!(config.presence_ttl, Duration::from_millis(1500));
        for (key, value) in [
            ("REDIS_PREFIX", "a:b"),
            ("REDIS_PREFIX", "a b"),
            ("REDIS_REQUIRED", "maybe"),
            ("REDIS_PRESENCE_TTL_MS", "10"),
            ("REDIS_PREFIX", "a{b"),
            ("REDIS_CLUSTER", "yes"),
        ] {
            let err = RedisConfig::from_vars(&vars(&[("REDIS_URL", "redis://h"), (key, value)]))
                .unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn several_urls_are_a_clusters_and_need_redis_cluster() {
        let urls = "redis://:pw@a:1,redis://:pw@b:2";
        let err = RedisConfig::from_vars(&vars(&[("REDIS_URL", urls)])).unwrap_err();
        assert!(err.to_string().contains("REDIS_CLUSTER=true"), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
        let config = RedisConfig::from_vars(&vars(&[("REDIS_URL", urls), ("REDIS_CLUSTER", "1")]))
            .unwrap()
            .unwrap();
        assert!(config.cluster);
        assert!(RedisAdapter::new(config).is_ok());
        // Set in code, the same rules hold.
        assert!(RedisAdapter::new(RedisConfig::new(urls)).is_err());
        assert!(RedisAdapter::new(RedisConfig::new("redis://a").prefix("a:b")).is_err());
    }

    #[test]
    fn passwords_never_reach_a_log_line() {
        assert_eq!(redact("redis://:secret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact("redis://user:secret@h"), "redis://user:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            redact("redis://:a@h:1,redis://:b@k:2"),
            "redis://:***@h:1,redis://:***@k:2"
        );
    }
}
