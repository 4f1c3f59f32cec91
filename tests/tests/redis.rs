//! Scale-out over a real Redis (`vania-ws-redis`): three servers, each with its own adapter,
//! share a `redis-server` the test starts on a free port (and stops and restarts for the fault
//! tests). Every row of PROTOCOL.md section 6 is checked with the recipient on another node
//! than the sender (`suites/scaleout.rs`, which `redis_cluster.rs` runs on a Redis Cluster).

use serde_json::{Value, json};
use std::time::Duration;
use vania_ws::error::ServeError;
use vania_ws::redis::{RedisAdapter, RedisConfig};
use vania_ws::testing::TestServer;
use vania_ws::{Router, Server};
use vania_ws_test_redis::RedisServer;
use vania_ws_tests::app;

mod rules {
    use vania_ws::redis::RedisConfig;
    use vania_ws_test_redis::RedisServer;

    type Broker = RedisServer;

    fn broker() -> Broker {
        RedisServer::start()
    }

    fn config(redis: &Broker, _node: usize) -> RedisConfig {
        RedisConfig::new(redis.url())
    }

    include!("suites/scaleout.rs");
}

use rules::{nodes, presence_becomes, two_servers_deliver_across, until_delivered};

#[tokio::test]
async fn an_unreachable_redis_fails_a_required_start_and_degrades_an_optional_one() {
    let url = RedisServer::unreachable_url();
    let required = RedisAdapter::new(RedisConfig::new(url.clone()).required(true)).unwrap();
    let err = Server::builder(app::router())
        .adapter(required)
        .bind()
        .await
        .expect_err("a required Redis is unreachable");
    assert!(matches!(err, ServeError::Adapter(_)), "{err}");
    assert!(
        err.to_string().contains(&url),
        "the error names the URL: {err}"
    );

    let optional = RedisAdapter::new(RedisConfig::new(url)).unwrap();
    let server =
        TestServer::start_builder(Server::builder(app::router()).adapter(optional.clone())).await;
    assert!(!optional.is_connected());
    let mut a = server.connect("/ws").await;
    let mut b = server.connect("/ws").await;
    b.join("r").await;
    let message = json!({ "room": "r", "message": "local" });
    assert_eq!(a.ack("room-message", message).await, Value::Null);
    assert_eq!(b.recv_event("room-message").await, json!("local"));
    assert!(
        optional.metrics().dropped() >= 1,
        "the frame for other nodes is counted"
    );
    assert!(server.handle().metrics().publish_errors >= 1);
}

#[tokio::test]
async fn redis_from_the_settings_starts_the_adapter_and_a_bad_url_fails_start_up() {
    let redis = RedisServer::start();
    let vars = |url: &str| {
        [("REDIS_URL", url), ("REDIS_PREFIX", "from-settings")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let config = vania_ws::ServerConfig::from_vars(&vars(&redis.url())).unwrap();
    two_servers_deliver_across(config).await;

    let config = vania_ws::ServerConfig::from_vars(&vars("http://not-redis")).unwrap();
    let err = Server::builder(Router::new().websocket("/ws", |_| {}))
        .config(config)
        .bind()
        .await
        .expect_err("not a Redis URL");
    assert!(err.to_string().contains("REDIS_URL"), "{err}");

    let bad: std::collections::HashMap<String, String> =
        [("REDIS_URL", "redis://x"), ("REDIS_REQUIRED", "maybe")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let err = vania_ws::ServerConfig::from_vars(&bad).unwrap_err();
    assert!(err.to_string().contains("REDIS_REQUIRED"), "{err}");
}

#[tokio::test]
async fn redis_restarted_mid_run_local_delivery_never_stops_and_cross_node_delivery_resumes() {
    let mut redis = RedisServer::start();
    let nodes = nodes(&redis, 2).await;
    let mut a = nodes[0].server.connect("/ws").await;
    let mut local = nodes[0].server.connect("/ws").await;
    let mut remote = nodes[1].server.connect("/ws").await;
    local.join("r").await;
    remote.join("r").await;
    let mut worst = Duration::ZERO;
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let mut members = [local.id().to_owned(), remote.id().to_owned()];
    members.sort();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    // Counted at the same point after the first restart and after the last: every
    // connection to Redis up (each has a task of its own), and the presence written back
    // (Redis keeps nothing across a restart here: each node wrote its members back).
    let mut tasks = 0;
    for restart in 0..20 {
        // Local delivery goes on while Redis is down.
        let message = json!({ "room": "r", "message": restart });
        assert_eq!(a.ack("room-message", message).await, Value::Null);
        assert_eq!(local.recv_event("room-message").await, json!(restart));
        redis.restart();
        worst = worst.max(until_delivered(&mut a, &mut remote).await);
        // The room subscription came back too.
        let message = json!({ "room": "r", "message": format!("after {restart}") });
        assert_eq!(a.ack("room-message", message).await, Value::Null);
        assert_eq!(
            remote.recv_event("room-message").await,
            json!(format!("after {restart}"))
        );
        assert_eq!(
            local.recv_event("room-message").await,
            json!(format!("after {restart}"))
        );
        if restart == 0 || restart == 19 {
            presence_becomes(&mut a, "r", &members).await;
            presence_becomes(&mut remote, "r", &members).await;
            if restart == 0 {
                tasks = alive();
            } else {
                assert_eq!(alive(), tasks, "no task leaked across 19 restarts");
            }
        }
        // The other way, at the first try: node 1 had nothing to publish during the outage,
        // and its first frame after it is not lost on a dead connection.
        let to = a.id().to_owned();
        let direct = json!({ "to": to, "message": format!("back {restart}") });
        assert_eq!(remote.ack("direct", direct).await, Value::Null);
        assert_eq!(
            a.recv_event("direct").await["message"],
            json!(format!("back {restart}"))
        );
    }
    assert!(
        worst < Duration::from_secs(5),
        "cross-node delivery resumed within {worst:?}, more than 5 s"
    );
    for node in &nodes {
        // Two connections per node, each lost and made again at every restart.
        assert!(
            node.adapter.metrics().reconnects() >= 40,
            "{}",
            node.adapter.metrics().reconnects()
        );
    }

    eprintln!(
        "20 Redis restarts: worst resumption {worst:?}; frames for other nodes dropped while down: {} and {}",
        nodes[0].adapter.metrics().dropped(),
        nodes[1].adapter.metrics().dropped()
    );
}
