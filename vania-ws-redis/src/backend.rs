//! The two kinds of Redis the adapter runs on, behind one face: a single server (or a
//! primary behind a proxy), with `PUBLISH`/`SUBSCRIBE`, and a Redis Cluster, with sharded
//! pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7).
//!
//! In a cluster, every channel and key of one prefix carries the hash tag `{PREFIX}`, so they
//! all live in one hash slot, on one shard: a node's publishes reach a subscriber through
//! one connection to one shard, in the order they were made, which keeps PROTOCOL.md
//! section 6's per-sender order across channels (a room's and a client's), and lets a
//! presence refresh run as one transaction. Several applications (prefixes) spread over the
//! shards; one application's pub/sub does not.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, PushKind, RedisResult, Value};
use tokio::sync::mpsc;

/// How long a command may take to be answered: long enough for a full pipeline of publishes
/// or a presence refresh of many rooms (redis-rs's own default, 500 ms, is not).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long asking a cluster for its nodes may take: it runs while connecting.
const LEARN_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the adapter connects.
pub(crate) enum Backend {
    Single(redis::Client),
    /// A client is built per connection, since the subscriber's carries its own channel for
    /// what the cluster pushes.
    Cluster {
        /// The nodes the settings name.
        seeds: Vec<ConnectionInfo>,
        /// Every node the cluster listed at the last command connection (`CLUSTER NODES`),
        /// replicas included, failed ones left out. A connection is made from the seeds,
        /// and, when none of them answers, from the seeds and these: a node whose seeds are
        /// all down (a crashed master, its replica elected in its place) still reconnects
        /// through the cluster as it is now, and one whose seeds are up never waits on a
        /// learned node that is gone. Locked only to copy or replace.
        learned: Mutex<Vec<ConnectionInfo>>,
    },
}

impl Backend {
    /// `url` is one Redis URL, or with `cluster` a comma-separated list of some of the
    /// cluster's nodes.
    pub(crate) fn new(url: &str, cluster: bool) -> RedisResult<Self> {
        use redis::IntoConnectionInfo;
        if cluster {
            let seeds = url
                .split(',')
                .map(|seed| seed.trim().into_connection_info())
                .collect::<RedisResult<Vec<_>>>()?;
            // Building the client checks the seeds agree (password, database).
            cluster_client(&seeds, None)?;
            Ok(Self::Cluster {
                seeds,
                learned: Mutex::new(Vec::new()),
            })
        } else {
            Ok(Self::Single(redis::Client::open(url)?))
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// A cluster connection from the seeds, or, if none of them answers and nodes were
    /// learned, from the seeds and those.
    async fn connect_cluster(
        seeds: &[ConnectionInfo],
        learned: &Mutex<Vec<ConnectionInfo>>,
        pushes: Option<mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> RedisResult<ClusterConnection> {
        let error = match cluster_client(seeds, pushes.clone())?
            .get_async_connection()
            .await
        {
            Ok(connection) => return Ok(connection),
            Err(error) => error,
        };
        let mut nodes = seeds.to_vec();
        nodes.extend(
            learned
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .filter(|node| !seeds.iter().any(|seed| seed.addr() == node.addr()))
                .cloned(),
        );
        if nodes.len() == seeds.len() {
            return Err(error);
        }
        tracing::debug!(%error, "no seed answered: connecting through the nodes learned");
        cluster_client(&nodes, pushes)?.get_async_connection().await
    }

    /// Asks the cluster which nodes it has, and keeps them for the next connections. Best
    /// effort, and bounded (it runs on the connecting path): on an error or a timeout the
    /// nodes learned before stay.
    async fn learn(
        seeds: &[ConnectionInfo],
        learned: &Mutex<Vec<ConnectionInfo>>,
        connection: &mut ClusterConnection,
    ) {
        let listed = tokio::time::timeout(
            LEARN_TIMEOUT,
            redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(connection),
        )
        .await;
        match listed {
            Ok(Ok(nodes)) => {
                let nodes = nodes_listed(&nodes, &seeds[0]);
                if !nodes.is_empty() {
                    *learned
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = nodes;
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "CLUSTER NODES failed: the nodes known stay");
            }
            Err(_) => tracing::debug!("CLUSTER NODES timed out: the nodes known stay"),
        }
    }

    /// A connection for commands (publishes, presence), shared by clones.
    pub(crate) async fn connect(&self) -> RedisResult<Connection> {
        match self {
            Self::Single(client) => {
                let config =
                    AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
                Ok(Connection::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            Self::Cluster { seeds, learned } => {
                let mut connection = Self::connect_cluster(seeds, learned, None).await?;
                Self::learn(seeds, learned, &mut connection).await;
                Ok(Connection::Cluster(connection))
            }
        }
    }

    /// A connection that receives what is published to the channels it subscribes to.
    pub(crate) async fn subscriber(&self) -> RedisResult<Subscriber> {
        match self {
            Self::Single(client) => {
                let (sink, stream) = client.get_async_pubsub().await?.split();
                Ok(Subscriber::Single { sink, stream })
            }
            Self::Cluster { seeds, learned } => {
                let (tx, pushes) = mpsc::unbounded_channel();
                let connection = Self::connect_cluster(seeds, learned, Some(tx)).await?;
                Ok(Subscriber::Cluster { connection, pushes })
            }
        }
    }

    /// The command that publishes to a channel.
    pub(crate) fn publish_command(&self) -> &'static str {
        match self {
            Self::Single(_) => "PUBLISH",
            Self::Cluster { .. } => "SPUBLISH",
        }
    }
}

/// The nodes of a `CLUSTER NODES` reply that have an address and are not failed, each with
/// `like`'s settings (TLS, password, database) and the address the cluster announces.
fn nodes_listed(nodes: &str, like: &ConnectionInfo) -> Vec<ConnectionInfo> {
    nodes
        .lines()
        .filter_map(|line| {
            // id host:port@bus[,hostname] flags …
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            if flags
                .split(',')
                .any(|flag| matches!(flag, "fail" | "noaddr" | "handshake"))
            {
                return None;
            }
            let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
            let (host, port) = (host.to_owned(), port.parse().ok()?);
            if host.is_empty() {
                return None;
            }
            let addr = match like.addr() {
                ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host, port),
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => return None,
            };
            Some(like.clone().set_addr(addr))
        })
        .collect()
}

fn cluster_client(
    seeds: &[ConnectionInfo],
    pushes: Option<mpsc::UnboundedSender<redis::PushInfo>>,
) -> RedisResult<ClusterClient> {
    // No retries: redis-rs would send a failed pipeline again after reconnecting, which could
    // deliver a frame twice or out of order; the adapter reconnects, and drops, itself.
    let mut builder = ClusterClient::builder(seeds.to_vec())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(0);
    if let Some(pushes) = pushes {
        builder = builder.push_sender(pushes);
    }
    builder.build()
}

/// Whether the server behind `connection` is a Redis Cluster node (`cluster_enabled:1`).
pub(crate) async fn is_cluster_node(connection: &mut Connection) -> RedisResult<bool> {
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(connection)
        .await?;
    Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1"))
}

/// A command connection to either kind.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(redis::aio::MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Self::Single(con) => con.req_packed_command(cmd),
            Self::Cluster(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(con) => con.req_packed_commands(pipeline, offset, count),
            Self::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(con) => con.get_db(),
            Self::Cluster(con) => con.get_db(),
        }
    }
}

/// A subscribing connection to either kind.
pub(crate) enum Subscriber {
    Single {
        sink: redis::aio::PubSubSink,
        stream: redis::aio::PubSubStream,
    },
    /// redis-rs would resubscribe by itself after a disconnection; the adapter instead drops
    /// the connection and makes a new one, as with a single Redis, so that a subscription
    /// is confirmed (and a `join-room` acknowledged) only once it holds again.
    Cluster {
        connection: ClusterConnection,
        pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
    },
}

impl Subscriber {
    /// Subscribes to `channels`; it returns once Redis confirmed every one.
    pub(crate) async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::Single { sink, .. } => sink.subscribe(channels).await,
            Self::Cluster { connection, .. } => connection.ssubscribe(channels).await,
        }
    }

    pub(crate) async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::Single { sink, .. } => sink.unsubscribe(channels).await,
            Self::Cluster { connection, .. } => connection.sunsubscribe(channels).await,
        }
    }

    /// The next message; `None` once the connection is lost. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Option<Message> {
        match self {
            Self::Single { stream, .. } => stream.next().await.map(Message::Single),
            Self::Cluster { pushes, .. } => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    PushKind::SMessage => {
                        // [channel, payload]
                        if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                            return Some(Message::Cluster(payload));
                        }
                    }
                    PushKind::Disconnection => return None,
                    // Redis dropped a subscription (its slot moved, or a failover): the
                    // adapter resubscribes if it still wants it.
                    PushKind::SUnsubscribe => {
                        if let Some(Value::BulkString(channel)) = push.data.into_iter().next() {
                            return Some(Message::Unsubscribed(channel));
                        }
                    }
                    // Subscription confirmations, and what redis-rs resubscribes by itself.
                    _ => {}
                }
            },
        }
    }
}

/// A message received on a subscription, kept as it arrived (its payload is not copied).
pub(crate) enum Message {
    Single(redis::Msg),
    Cluster(Vec<u8>),
    /// A channel is no longer subscribed: one the adapter gave up, or one Redis dropped.
    Unsubscribed(Vec<u8>),
}

impl Message {
    /// What was published; `None` for [`Message::Unsubscribed`].
    pub(crate) fn payload(&self) -> Option<&[u8]> {
        match self {
            Self::Single(message) => Some(message.get_payload_bytes()),
            Self::Cluster(payload) => Some(payload),
            Self::Unsubscribed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::IntoConnectionInfo;

    #[test]
    fn the_nodes_listed_keep_the_seeds_settings_and_skip_the_unreachable() {
        let like = "redis://:secret@127.0.0.1:7000"
            .into_connection_info()
            .unwrap();
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,redis-b slave a1 0 0 1 connected
c3 :0@0 master,noaddr - 0 0 0 disconnected
d4 127.0.0.1:7003@17003 master,fail - 0 0 2 disconnected
";
        let listed = nodes_listed(nodes, &like);
        let addresses: Vec<String> = listed.iter().map(|node| node.addr().to_string()).collect();
        assert_eq!(addresses, ["127.0.0.1:7001", "127.0.0.1:7002"]);
        assert!(
            listed
                .iter()
                .all(|node| node.redis_settings().password() == Some("secret")),
            "a learned node is reached with the seed's password"
        );
    }
}
