//! The adapter seam, proven with three servers in one process joined by an in-process cluster
//! (`vania_ws_tests::cluster`): every row of PROTOCOL.md section 6 with the recipient on
//! another node than the sender, no duplicate and no missed delivery, per-sender order, no
//! traffic to a node for what it does not serve, no race on join, and the adapter's lifecycle.
//!
//! The in-process cluster hands frames over synchronously, so a barrier on the recipient
//! (a round trip on its own connection) is enough to see that nothing else arrived.

use serde_json::{Value, json};
use std::sync::Arc;
use vania_ws::adapter::{Adapter, AdapterError, BoxFuture, Frame, LocalNode, PublishError, Target};
use vania_ws::error::ServeError;
use vania_ws::testing::TestServer;
use vania_ws::{Router, Server};
use vania_ws_tests::app;
use vania_ws_tests::cluster::MemoryCluster;

/// `n` servers of the fixture app, one cluster.
async fn nodes(n: usize) -> (Arc<MemoryCluster>, Vec<TestServer>) {
    let cluster = MemoryCluster::new();
    let mut servers = Vec::new();
    for _ in 0..n {
        let builder = Server::builder(app::router()).adapter(cluster.node());
        servers.push(TestServer::start_builder(builder).await);
    }
    (cluster, servers)
}

#[tokio::test]
async fn a_direct_message_reaches_its_recipient_on_another_node_and_no_other_node() {
    let (cluster, nodes) = nodes(3).await;
    let mut sender = nodes[0].connect("/ws").await;
    let mut recipient = nodes[1].connect("/ws").await;
    let mut bystander = nodes[2].connect("/ws").await;
    let to = recipient.id().to_owned();
    assert_eq!(
        sender
            .ack("direct", json!({ "to": to, "message": "hi" }))
            .await,
        Value::Null
    );
    assert_eq!(
        recipient.recv_event("direct").await,
        json!({ "from": sender.id(), "message": "hi" })
    );
    recipient.assert_nothing_received().await;
    bystander.assert_nothing_received().await;
    sender.assert_nothing_received().await;
    assert_eq!(cluster.received(1), 1, "the recipient's node, once");
    assert_eq!(
        cluster.received(2),
        0,
        "no work for a node without the recipient"
    );
}

#[tokio::test]
async fn a_client_can_be_reached_from_another_node_as_soon_as_it_knows_its_id() {
    // The in-process cluster takes 30 ms to subscribe a new client: its `connected` frame
    // (its id) must wait for that, or the direct message right after it would be lost.
    let (_cluster, nodes) = nodes(2).await;
    let mut sender = nodes[0].connect("/ws").await;
    for round in 0..5 {
        let mut fresh = nodes[1].connect("/ws").await;
        let direct = json!({ "to": fresh.id(), "message": round });
        assert_eq!(sender.ack("direct", direct).await, Value::Null);
        assert_eq!(fresh.recv_until("direct").await["message"], json!(round));
    }
}

#[tokio::test]
async fn a_room_message_reaches_its_members_on_every_node_the_sender_included() {
    let (cluster, nodes) = nodes(3).await;
    let mut sender = nodes[0].connect("/ws").await;
    let mut b = nodes[1].connect("/ws").await;
    let mut c = nodes[2].connect("/ws").await;
    let mut outside_1 = nodes[1].connect("/ws").await;
    let mut outside_2 = nodes[2].connect("/ws").await;
    for member in [&mut sender, &mut b, &mut c] {
        member.join("r").await;
    }
    let message = json!({ "room": "r", "message": "to r" });
    assert_eq!(sender.ack("room-message", message).await, Value::Null);
    for member in [&mut sender, &mut b, &mut c] {
        assert_eq!(member.recv_event("room-message").await, json!("to r"));
        member.assert_nothing_received().await;
    }
    outside_1.assert_nothing_received().await;
    outside_2.assert_nothing_received().await;

    // A room with members on node 1 only: node 2 gets no traffic for it.
    b.join("only-on-1").await;
    let before = cluster.received(2);
    let message = json!({ "room": "only-on-1", "message": "to 1" });
    assert_eq!(sender.ack("room-message", message).await, Value::Null);
    assert_eq!(b.recv_event("room-message").await, json!("to 1"));
    assert_eq!(
        cluster.received(2),
        before,
        "node 2 serves no member of the room"
    );
    sender.assert_nothing_received().await;
}

#[tokio::test]
async fn a_broadcast_reaches_every_client_on_every_node_but_the_sender() {
    let (_cluster, nodes) = nodes(3).await;
    let mut sender = nodes[0].connect("/ws").await;
    let mut same_node = nodes[0].connect("/ws").await;
    let mut clients = nodes[1].connect("/clients").await;
    let mut admins = nodes[2].connect("/admins").await;
    let mut ws = nodes[2].connect("/ws").await;
    assert_eq!(sender.ack("user-typing", json!("…")).await, Value::Null);
    let expected = json!({ "session_id": sender.id(), "payload": "…" });
    for other in [&mut same_node, &mut clients, &mut admins, &mut ws] {
        assert_eq!(other.recv_event("user-typing").await, expected);
        other.assert_nothing_received().await;
    }
    sender.assert_nothing_received().await;
}

#[tokio::test]
async fn one_senders_room_messages_and_direct_messages_arrive_in_the_order_sent() {
    let (_cluster, nodes) = nodes(2).await;
    let mut sender = nodes[0].connect("/ws").await;
    let mut recipient = nodes[1].connect("/ws").await;
    recipient.join("r").await;
    let to = recipient.id().to_owned();
    for i in 0..40 {
        let frame = if i % 2 == 0 {
            ("room-message", json!({ "room": "r", "message": i }))
        } else {
            ("direct", json!({ "to": to, "message": i }))
        };
        assert_eq!(sender.ack(frame.0, frame.1).await, Value::Null);
    }
    for i in 0..40 {
        let frame = recipient.recv().await;
        let got = match frame["event"].as_str() {
            Some("room-message") => frame["payload"].clone(),
            Some("direct") => frame["payload"]["message"].clone(),
            other => panic!("unexpected {other:?}: {frame}"),
        };
        assert_eq!(got, json!(i), "message {i} in order");
    }
    recipient.assert_nothing_received().await;
}

#[tokio::test]
async fn the_server_handle_sends_across_nodes() {
    let (_cluster, nodes) = nodes(3).await;
    let mut b = nodes[1].connect("/ws").await;
    let mut c = nodes[2].connect("/ws").await;
    c.join("r").await;
    let handle = nodes[0].handle();
    handle.to(b.id(), "note", &json!("for b")).unwrap();
    assert_eq!(b.recv_event("note").await, json!("for b"));
    handle
        .route("/ws")
        .unwrap()
        .to_room("note", "r", &json!("for r"))
        .unwrap();
    assert_eq!(c.recv_event("note").await, json!("for r"));
    handle.broadcast("note", &json!("for all")).unwrap();
    for client in [&mut b, &mut c] {
        assert_eq!(client.recv_event("note").await, json!("for all"));
        client.assert_nothing_received().await;
    }
}

#[tokio::test]
async fn a_join_is_acknowledged_only_once_its_node_receives_the_room() {
    // The in-process cluster subscribes a few task switches after the first join, as a broker
    // answers later: were the ack sent at once, the message right after it would be lost.
    let (cluster, nodes) = nodes(3).await;
    let mut member = nodes[0].connect("/ws").await;
    let mut sender = nodes[2].connect("/ws").await;
    for round in 0..20 {
        let room = format!("fresh-{round}");
        member.join(&room).await;
        let message = json!({ "room": room, "message": round });
        assert_eq!(sender.ack("room-message", message).await, Value::Null);
        assert_eq!(member.recv_event("room-message").await, json!(round));
    }
    member.assert_nothing_received().await;
    assert_eq!(cluster.followed_rooms(0).len(), 20);
}

#[tokio::test]
async fn a_join_asked_by_another_node_is_answered_once_the_clients_node_receives_the_room() {
    // The in-process cluster subscribes a room a few polls after its first member joins: a
    // join answered before that would lose the room message sent right after it.
    let (_cluster, nodes) = nodes(2).await;
    let mut member = nodes[1].connect("/ws").await;
    let id = member.id().to_owned();
    let cluster = nodes[0].handle().cluster();
    let route = nodes[0].handle().route("/ws").unwrap();
    for round in 0..20 {
        let room = format!("asked-{round}");
        assert!(cluster.join(&id, &room).await.unwrap());
        route.to_room("news", &room, &json!(round)).unwrap();
        assert_eq!(member.recv_event("news").await, json!(round));
    }
    assert!(cluster.is_connected(&id).await.unwrap());
    assert!(cluster.leave(&id, "asked-0").await.unwrap());
    assert_eq!(nodes[1].handle().hub().room_members("/ws", "asked-0"), 0);
}

#[tokio::test]
async fn a_node_follows_a_room_only_while_it_has_a_member_there() {
    let (cluster, nodes) = nodes(2).await;
    let mut sender = nodes[0].connect("/ws").await;
    let mut leaver = nodes[1].connect("/ws").await;
    let mut closer = nodes[1].connect("/ws").await;
    leaver.join("left").await;
    closer.join("gone").await;
    let followed = |rooms: &[&str]| -> Vec<(String, String)> {
        rooms
            .iter()
            .map(|room| ("/ws".to_owned(), (*room).to_owned()))
            .collect()
    };
    assert_eq!(cluster.followed_rooms(1), followed(&["gone", "left"]));

    leaver.leave("left").await;
    assert_eq!(cluster.followed_rooms(1), followed(&["gone"]));
    let before = cluster.received(1);
    let message = json!({ "room": "left", "message": "late" });
    assert_eq!(sender.ack("room-message", message).await, Value::Null);
    assert_eq!(cluster.received(1), before, "no traffic for a room left");
    leaver.assert_nothing_received().await;

    // A disconnect leaves its rooms, and its id no longer routes to the node.
    let gone = closer.id().to_owned();
    closer.close().await;
    nodes[1]
        .eventually("the client has left", |handle| {
            handle.hub().client_count() == 1
        })
        .await;
    assert!(cluster.followed_rooms(1).is_empty());
    let before = cluster.received(1);
    let direct = json!({ "to": gone, "message": "anyone?" });
    assert_eq!(sender.ack("direct", direct).await, Value::Null);
    assert_eq!(
        cluster.received(1),
        before,
        "no node holds the client any more"
    );
}

#[tokio::test]
async fn shutting_a_server_down_closes_its_adapter() {
    let (cluster, mut nodes) = nodes(2).await;
    let second = nodes.pop().unwrap();
    assert!(!cluster.is_closed(1));
    second.shutdown().await;
    assert!(cluster.is_closed(1));
    assert!(!cluster.is_closed(0));
}

/// An adapter that connects to nothing, slowly, or fails to.
struct Starting {
    fails: bool,
}

impl Adapter for Starting {
    fn init(&self, _node: LocalNode) -> BoxFuture<Result<(), AdapterError>> {
        let fails = self.fails;
        Box::pin(async move {
            tokio::task::yield_now().await;
            if fails {
                Err(AdapterError::new("the broker at 127.0.0.1:1 refused"))
            } else {
                Ok(())
            }
        })
    }

    fn publish(&self, _target: Target<'_>, _frame: &Frame) -> Result<(), PublishError> {
        Err(PublishError::Disconnected)
    }
}

#[tokio::test]
async fn an_adapter_that_starts_asynchronously_needs_start_not_build() {
    let adapter = Arc::new(Starting { fails: false });
    let built = Server::builder(app::router())
        .adapter(adapter.clone())
        .build();
    let err = built.expect_err("build cannot await the adapter");
    assert!(matches!(err, ServeError::AdapterStartsAsync), "{err}");
    assert!(err.to_string().contains("start().await"), "{err}");
    Server::builder(app::router())
        .adapter(adapter)
        .start()
        .await
        .expect("start awaits it");
}

#[tokio::test]
async fn an_adapter_that_fails_to_start_fails_the_server_and_a_failed_publish_is_counted() {
    let failing = Arc::new(Starting { fails: true });
    let err = Server::builder(Router::new().websocket("/ws", |_| {}))
        .adapter(failing)
        .bind()
        .await
        .expect_err("the adapter refused");
    assert!(matches!(err, ServeError::Adapter(_)), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1 refused"), "{err}");

    // Running with an adapter that cannot publish: local delivery goes on, and is counted.
    let server = TestServer::start_builder(
        Server::builder(app::router()).adapter(Arc::new(Starting { fails: false })),
    )
    .await;
    let mut sender = server.connect("/ws").await;
    let mut other = server.connect("/ws").await;
    assert_eq!(sender.ack("user-typing", json!(1)).await, Value::Null);
    assert_eq!(other.recv_event("user-typing").await["payload"], json!(1));
    assert_eq!(server.handle().metrics().publish_errors, 1);
}
