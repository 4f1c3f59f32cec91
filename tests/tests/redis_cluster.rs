//! Scale-out over a Redis Cluster: the same delivery rules as over one Redis
//! (`suites/scaleout.rs`), on three masters the test starts, each node of vania-ws given a
//! different master as its seed; then what only a cluster has: sharded pub/sub on one shard,
//! the settings' mistakes, a master restarted, a failover to a replica, and a master's crash
//! that its replica takes over from.

use serde_json::{Value, json};
use vania_ws::Server;
use vania_ws::error::ServeError;
use vania_ws::redis::{RedisAdapter, RedisConfig};
use vania_ws_test_redis::{RedisCluster, RedisServer};
use vania_ws_tests::app;

mod rules {
    use vania_ws::redis::RedisConfig;
    use vania_ws_test_redis::RedisCluster;

    type Broker = RedisCluster;

    fn broker() -> Broker {
        RedisCluster::start()
    }

    fn config(cluster: &Broker, node: usize) -> RedisConfig {
        RedisConfig::new(cluster.seed(node % 3)).cluster(true)
    }

    include!("suites/scaleout.rs");
}

use rules::{next_is_marker, node_with, nodes, two_servers_deliver_across, until_delivered};

#[tokio::test]
async fn every_channel_is_a_sharded_channel_on_the_prefixs_shard() {
    let cluster = RedisCluster::start();
    let nodes = nodes(&cluster, 2).await;
    let mut a = nodes[0].server.connect("/ws").await;
    let mut b = nodes[1].server.connect("/ws").await;
    b.join("r").await;
    let message = json!({ "room": "r", "message": 1 });
    assert_eq!(a.ack("room-message", message).await, Value::Null);
    assert_eq!(b.recv_event("room-message").await, json!(1));
    next_is_marker(&mut a, &mut b, "end").await;

    // Every name carries the prefix as its hash tag, so one shard holds them all.
    let prefix = format!("{{test-{}}}", std::process::id());
    let shard = cluster.master_of(&prefix);
    let mut channels: Vec<String> = cluster
        .cli(shard, &["pubsub", "shardchannels"])
        .lines()
        .map(str::to_owned)
        .collect();
    channels.sort();
    let mut expected = vec![
        format!("{prefix}:all"),
        format!("{prefix}:client:{}", a.id()),
        format!("{prefix}:client:{}", b.id()),
        format!("{prefix}:room:3:/ws:r"),
        // Where the answers to each node's commands come.
        format!("{prefix}:{}", nodes[0].adapter.node_id()),
        format!("{prefix}:{}", nodes[1].adapter.node_id()),
    ];
    expected.sort();
    assert_eq!(channels, expected, "the shard's sharded channels");
    for master in 0..3 {
        // No classic pub/sub anywhere, which a cluster would copy to every node.
        assert_eq!(cluster.cli(master, &["pubsub", "channels"]).trim(), "");
        if master != shard {
            assert_eq!(cluster.cli(master, &["pubsub", "shardchannels"]).trim(), "");
        }
    }
    // The presence keys live on the same shard.
    let keys = cluster.cli(shard, &["keys", &format!("{prefix}:member*")]);
    assert!(
        keys.contains(":members:"),
        "the presence keys are on the shard: {keys}"
    );
}

#[tokio::test]
async fn the_wrong_kind_of_redis_fails_start_up_whether_required_or_not() {
    let cluster = RedisCluster::start();
    let single = RedisAdapter::new(RedisConfig::new(cluster.seed(0))).unwrap();
    let err = Server::builder(app::router())
        .adapter(single)
        .bind()
        .await
        .expect_err("a cluster node without cluster settings");
    assert!(matches!(err, ServeError::Adapter(_)), "{err}");
    assert!(err.to_string().contains("REDIS_CLUSTER=true"), "{err}");

    let redis = RedisServer::start();
    let clustered = RedisAdapter::new(RedisConfig::new(redis.url()).cluster(true)).unwrap();
    let err = Server::builder(app::router())
        .adapter(clustered)
        .bind()
        .await
        .expect_err("cluster settings for a single Redis");
    assert!(
        err.to_string().contains("not a Redis Cluster node"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cluster_from_the_settings_takes_several_urls_and_several_urls_need_it() {
    let cluster = RedisCluster::start();
    let vars = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let urls = cluster.urls();
    let settings = [
        ("REDIS_URL", urls.as_str()),
        ("REDIS_CLUSTER", "true"),
        ("REDIS_REQUIRED", "true"),
        ("REDIS_PREFIX", "from-settings"),
    ];
    let config = vania_ws::ServerConfig::from_vars(&vars(&settings)).unwrap();
    two_servers_deliver_across(config).await;
    let shard = cluster.master_of("{from-settings}");
    assert!(
        cluster
            .cli(shard, &["pubsub", "shardchannels"])
            .contains("{from-settings}:all")
    );

    let err =
        vania_ws::ServerConfig::from_vars(&vars(&[("REDIS_URL", urls.as_str())])).unwrap_err();
    assert!(err.to_string().contains("REDIS_CLUSTER=true"), "{err}");
    let err = vania_ws::ServerConfig::from_vars(&vars(&[
        ("REDIS_URL", urls.as_str()),
        ("REDIS_CLUSTER", "yes"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("REDIS_CLUSTER"), "{err}");
}

// Two workers: the harness waits for the cluster with blocking sleeps, on one, while the
// adapters reconnect on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_restarted_mid_run_local_delivery_goes_on_and_cross_node_delivery_resumes() {
    let mut cluster = RedisCluster::start();
    let nodes = nodes(&cluster, 2).await;
    let mut a = nodes[0].server.connect("/ws").await;
    let mut a2 = nodes[0].server.connect("/ws").await;
    let mut b = nodes[1].server.connect("/ws").await;
    let shard = cluster.master_of(&format!("{{test-{}}}", std::process::id()));
    for round in 0..3 {
        cluster.stop(shard);
        // This node's clients are served while the shard is down.
        let to = a2.id().to_owned();
        let direct = json!({ "to": to, "message": round });
        assert_eq!(a.ack("direct", direct).await, Value::Null);
        assert_eq!(a2.recv_event("direct").await["message"], json!(round));
        cluster.restart(shard);
        let resumed = until_delivered(&mut a, &mut b).await;
        eprintln!("round {round}: resumed {resumed:?} after the shard came back");
    }
    assert!(
        nodes[0].adapter.metrics().reconnects() >= 3,
        "the node reconnected after each restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_of_the_shard_cross_node_delivery_resumes_on_its_new_master() {
    let cluster = RedisCluster::start_with_replicas();
    let nodes = nodes(&cluster, 2).await;
    let mut a = nodes[0].server.connect("/ws").await;
    let mut b = nodes[1].server.connect("/ws").await;
    until_delivered(&mut a, &mut b).await;
    let shard = format!("{{test-{}}}", std::process::id());
    for round in 0..2 {
        // Every channel is on this shard: its master becomes a replica, and Redis drops the
        // subscriptions it held, so the nodes must subscribe again on the new master.
        // It waits on the cluster, blocking: not on one of the two workers the servers need.
        tokio::task::block_in_place(|| cluster.failover(&shard));
        let took = until_delivered(&mut a, &mut b).await;
        eprintln!("round {round}: a to b resumed {took:?} after the failover");
        let took = until_delivered(&mut b, &mut a).await;
        eprintln!("round {round}: b to a resumed {took:?} after the failover");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_shards_master_crashes_its_replica_takes_over_and_cross_node_delivery_resumes() {
    let mut cluster = RedisCluster::start_with_replicas();
    let prefix = format!("test-{}", std::process::id());
    let shard = format!("{{{prefix}}}");
    // The shard's master is each node's only seed: once it is gone, the nodes reconnect
    // through the nodes they learned from the cluster (its replica among them).
    let seed = cluster.seed(cluster.master_of(&shard));
    let config = || RedisConfig::new(seed.clone()).cluster(true);
    let nodes = [
        node_with(config(), &prefix).await,
        node_with(config(), &prefix).await,
    ];
    let mut a = nodes[0].server.connect("/ws").await;
    let mut b = nodes[1].server.connect("/ws").await;
    until_delivered(&mut a, &mut b).await;
    // Killed: the nodes' connections to it drop, and the replica is elected once the
    // cluster has marked its master as failed.
    tokio::task::block_in_place(|| cluster.crash(&shard));
    let took = until_delivered(&mut a, &mut b).await;
    eprintln!("a to b resumed {took:?} after the replica took over");
    let took = until_delivered(&mut b, &mut a).await;
    eprintln!("b to a resumed {took:?} after the replica took over");
}
