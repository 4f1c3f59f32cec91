// The delivery rules across nodes (PROTOCOL.md section 6), for one kind of Redis.
//
// Included by `redis.rs` (one `redis-server`) and `redis_cluster.rs` (a three-master Redis
// Cluster). The including module defines:
// - `type Broker`, and `fn broker() -> Broker`, which starts one for the test;
// - `fn config(&Broker, i) -> RedisConfig`, the settings of the `i`th node.
//
// Frames cross Redis asynchronously, so "nothing else arrived" is shown by order, not by a
// pause: after the frame under test, the same sender sends a marker to the same client, and
// the client's next frame must be that marker (messages from one sender to one recipient
// arrive in order).

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vania_ws::redis::RedisAdapter;
use vania_ws::testing::{TestClient, TestServer};
use vania_ws::Server;
use vania_ws_tests::app;

pub(super) struct Node {
    pub(super) server: TestServer,
    pub(super) adapter: Arc<RedisAdapter>,
}

/// A server whose adapter reaches `broker` through its `i`th address.
async fn node(broker: &Broker, i: usize, prefix: &str) -> Node {
    node_with(config(broker, i), prefix).await
}

/// A server whose adapter has `config`, with `prefix` and Redis required.
pub(super) async fn node_with(config: vania_ws::redis::RedisConfig, prefix: &str) -> Node {
    let adapter = RedisAdapter::new(config.prefix(prefix).required(true)).expect("a valid URL");
    let builder = Server::builder(app::router()).adapter(adapter.clone());
    Node {
        server: TestServer::start_builder(builder).await,
        adapter,
    }
}

pub(super) async fn nodes(broker: &Broker, n: usize) -> Vec<Node> {
    let prefix = format!("test-{}", std::process::id());
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(node(broker, i, &prefix).await);
    }
    nodes
}

/// `sender` sends a `direct` marker to `client`, whose next frame must be it: whatever the
/// sender sent `client` before has arrived, and nothing else did.
pub(super) async fn next_is_marker(sender: &mut TestClient, client: &mut TestClient, marker: &str) {
    let to = client.id().to_owned();
    let direct = json!({ "to": to, "message": marker });
    assert_eq!(sender.ack("direct", direct).await, Value::Null);
    let frame = client.recv().await;
    assert_eq!(frame["event"], "direct", "expected the marker, got {frame}");
    assert_eq!(frame["payload"]["message"], marker, "{frame}");
}

#[tokio::test]
async fn a_direct_message_reaches_a_client_on_another_node_once() {
    let broker = broker();
    let nodes = nodes(&broker, 3).await;
    let mut sender = nodes[0].server.connect("/ws").await;
    let mut recipient = nodes[1].server.connect("/ws").await;
    let mut bystander = nodes[2].server.connect("/ws").await;
    let to = recipient.id().to_owned();
    let direct = json!({ "to": to, "message": "hi" });
    assert_eq!(sender.ack("direct", direct).await, Value::Null);
    assert_eq!(
        recipient.recv_event("direct").await,
        json!({ "from": sender.id(), "message": "hi" })
    );
    next_is_marker(&mut sender, &mut recipient, "end").await;
    next_is_marker(&mut sender, &mut bystander, "end").await;
    sender.assert_nothing_received().await;
    assert_eq!(
        nodes[2].adapter.metrics().received(),
        1,
        "the bystander's node received its own marker only"
    );
}

#[tokio::test]
async fn a_room_message_reaches_its_members_on_every_node_once() {
    let broker = broker();
    let nodes = nodes(&broker, 3).await;
    let mut sender = nodes[0].server.connect("/ws").await;
    let mut b = nodes[1].server.connect("/ws").await;
    let mut c = nodes[2].server.connect("/ws").await;
    let mut outside = nodes[2].server.connect("/ws").await;
    for member in [&mut sender, &mut b, &mut c] {
        member.join("r").await;
    }
    let message = json!({ "room": "r", "message": "to r" });
    assert_eq!(sender.ack("room-message", message).await, Value::Null);
    assert_eq!(sender.recv_event("room-message").await, json!("to r"));
    for member in [&mut b, &mut c] {
        assert_eq!(member.recv_event("room-message").await, json!("to r"));
        next_is_marker(&mut sender, member, "end").await;
    }
    next_is_marker(&mut sender, &mut outside, "end").await;
    sender.assert_nothing_received().await;

    // Node 2 has no member of `only-b`: it is not subscribed, so Redis sends it nothing.
    b.join("only-b").await;
    let before = nodes[2].adapter.metrics().received();
    let message = json!({ "room": "only-b", "message": "to b" });
    assert_eq!(sender.ack("room-message", message).await, Value::Null);
    assert_eq!(b.recv_event("room-message").await, json!("to b"));
    next_is_marker(&mut sender, &mut c, "after").await;
    assert_eq!(
        nodes[2].adapter.metrics().received(),
        before + 1,
        "node 2 received the marker for c, not the room it does not serve"
    );
}

#[tokio::test]
async fn a_room_whose_name_json_escapes_works_across_nodes() {
    let broker = broker();
    let nodes = nodes(&broker, 2).await;
    let mut sender = nodes[0].server.connect("/ws").await;
    let mut member = nodes[1].server.connect("/ws").await;
    let room = "a \"quoted\" \\ room\n";
    member.join(room).await;
    let message = json!({ "room": room, "message": "escaped" });
    assert_eq!(sender.ack("room-message", message).await, Value::Null);
    assert_eq!(member.recv_event("room-message").await, json!("escaped"));
}

#[tokio::test]
async fn a_broadcast_reaches_every_client_on_every_node_but_the_sender() {
    let broker = broker();
    let nodes = nodes(&broker, 3).await;
    let mut sender = nodes[0].server.connect("/ws").await;
    let mut same_node = nodes[0].server.connect("/ws").await;
    let mut clients = nodes[1].server.connect("/clients").await;
    let mut admins = nodes[2].server.connect("/admins").await;
    assert_eq!(sender.ack("user-typing", json!("…")).await, Value::Null);
    let expected = json!({ "session_id": sender.id(), "payload": "…" });
    for other in [&mut same_node, &mut clients, &mut admins] {
        assert_eq!(other.recv_event("user-typing").await, expected);
        next_is_marker(&mut sender, other, "end").await;
    }
    sender.assert_nothing_received().await;

    // The server's handle, too.
    nodes[1]
        .server
        .handle()
        .broadcast("news", &json!(1))
        .unwrap();
    for other in [&mut sender, &mut same_node, &mut admins] {
        assert_eq!(other.recv_event("news").await, json!(1));
    }
}

#[tokio::test]
async fn one_senders_messages_arrive_in_order_across_channels() {
    let broker = broker();
    let nodes = nodes(&broker, 2).await;
    let mut sender = nodes[0].server.connect("/ws").await;
    let mut recipient = nodes[1].server.connect("/ws").await;
    recipient.join("r").await;
    let to = recipient.id().to_owned();
    for i in 0..60 {
        let (event, payload) = match i % 3 {
            0 => ("room-message", json!({ "room": "r", "message": i })),
            1 => ("direct", json!({ "to": to, "message": i })),
            _ => ("user-typing", json!(i)),
        };
        assert_eq!(sender.ack(event, payload).await, Value::Null);
    }
    for i in 0..60 {
        let frame = recipient.recv().await;
        let got = match frame["event"].as_str() {
            Some("room-message") | Some("user-typing") if i % 3 != 1 => {
                if frame["event"] == "user-typing" {
                    frame["payload"]["payload"].clone()
                } else {
                    frame["payload"].clone()
                }
            }
            Some("direct") => frame["payload"]["message"].clone(),
            _ => panic!("message {i}: unexpected {frame}"),
        };
        assert_eq!(got, json!(i), "message {i} in order: {frame}");
    }
}

#[tokio::test]
async fn a_join_is_acknowledged_once_its_node_is_subscribed() {
    let broker = broker();
    let nodes = nodes(&broker, 3).await;
    let mut member = nodes[0].server.connect("/ws").await;
    let mut sender = nodes[2].server.connect("/ws").await;
    for round in 0..30 {
        let room = format!("fresh-{round}");
        member.join(&room).await;
        let message = json!({ "room": room, "message": round });
        assert_eq!(sender.ack("room-message", message).await, Value::Null);
        assert_eq!(member.recv_event("room-message").await, json!(round));
    }
}

/// Sends `direct` messages from `sender` to `recipient` until one arrives; how long it took.
/// Each call tags its messages with a number of its own, so that one sent by an earlier call
/// and delivered late is not taken for this call's.
pub(super) async fn until_delivered(sender: &mut TestClient, recipient: &mut TestClient) -> Duration {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let to = recipient.id().to_owned();
    for attempt in 0.. {
        let direct = json!({ "to": to, "message": [call, attempt] });
        assert_eq!(sender.ack("direct", direct).await, Value::Null);
        tokio::time::sleep(Duration::from_millis(50)).await;
        recipient.barrier().await;
        let got: Vec<Value> = recipient.take_pending();
        if got
            .iter()
            .any(|frame| frame["event"] == "direct" && frame["payload"]["message"][0] == call)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "cross-node delivery did not resume within 15 s"
        );
    }
    unreachable!()
}

/// Two servers with `config` (settings that name a Redis): a direct message from a client of
/// one reaches a client of the other.
pub(super) async fn two_servers_deliver_across(config: vania_ws::ServerConfig) {
    let first =
        TestServer::start_builder(Server::builder(app::router()).config(config.clone())).await;
    let second = TestServer::start_builder(Server::builder(app::router()).config(config)).await;
    let mut a = first.connect("/ws").await;
    let mut b = second.connect("/ws").await;
    let to = b.id().to_owned();
    assert_eq!(
        a.ack("direct", json!({ "to": to, "message": 1 })).await,
        Value::Null
    );
    assert_eq!(b.recv_event("direct").await["message"], json!(1));
}

/// Asks `client` for the presence of `room` until it is `expected`, for at most 5 s.
pub(super) async fn presence_becomes(client: &mut TestClient, room: &str, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|id| (*id).to_owned()).collect();
    expected.sort();
    let started = Instant::now();
    loop {
        // An error frame (Redis just came back) is retried too.
        let reply = client.request("members", json!(room)).await;
        let got = reply["payload"].clone();
        if reply["event"] == "ack" && got == json!(expected) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the presence of {room} stayed {reply}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presence_lists_a_rooms_members_on_every_node() {
    let broker = broker();
    let nodes = nodes(&broker, 3).await;
    let mut a = nodes[0].server.connect("/ws").await;
    let mut b = nodes[1].server.connect("/ws").await;
    let mut c = nodes[2].server.connect("/ws").await;
    let _d = nodes[2].server.connect("/ws").await;
    for member in [&mut a, &mut b, &mut c] {
        member.join("p").await;
    }
    let mut ids = [a.id().to_owned(), b.id().to_owned(), c.id().to_owned()];
    ids.sort();
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    // A node sees its own joins at once.
    let now = a.ack("members", json!("p")).await;
    assert!(now.as_array().unwrap().contains(&json!(a.id())), "{now}");
    presence_becomes(&mut a, "p", &all).await;
    presence_becomes(&mut c, "p", &all).await;

    // From the server's handle too, on another node.
    let handle = nodes[1].server.handle().route("/ws").unwrap();
    assert_eq!(handle.presence("p").await.unwrap(), ids.to_vec());

    // A leave and a disconnect leave the presence.
    let b_id = b.id().to_owned();
    b.leave("p").await;
    let without = |gone: &[&str]| -> Vec<String> {
        ids.iter()
            .filter(|id| !gone.contains(&id.as_str()))
            .cloned()
            .collect()
    };
    let rest = without(&[&b_id]);
    presence_becomes(
        &mut a,
        "p",
        &rest.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    c.close().await;
    let a_id = a.id().to_owned();
    presence_becomes(&mut a, "p", &[&a_id]).await;
    assert_eq!(a.ack("members", json!("empty")).await, json!([]));
}

/// A small deterministic generator (xorshift64*), so that a failing run can be replayed from
/// its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// What a frame says about who sent it: `(sender, n)`, or `(sender, None)` for an end marker.
fn origin(frame: &Value) -> Option<(u64, Option<u64>)> {
    let tag = match frame["event"].as_str()? {
        "room-message" => &frame["payload"],
        "direct" => &frame["payload"]["message"],
        "user-typing" => &frame["payload"]["payload"],
        _ => return None,
    };
    Some((tag["s"].as_u64()?, tag["n"].as_u64()))
}

#[tokio::test]
async fn a_randomized_run_over_three_nodes_delivers_exactly_what_the_rules_say_in_order() {
    const CLIENTS: usize = 200;
    const ROOMS: usize = 50;
    const OPS: usize = 1500;
    let seed = std::env::var("VANIA_WS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    eprintln!("seed {seed} (VANIA_WS_SEED replays it)");
    let mut rng = Rng(seed | 1);
    let broker = broker();
    let nodes = nodes(&broker, 3).await;
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        clients.push(nodes[i % 3].server.connect("/ws").await);
    }
    let ids: Vec<String> = clients.iter().map(|c| c.id().to_owned()).collect();
    let mut rooms: Vec<std::collections::BTreeSet<usize>> = vec![Default::default(); ROOMS];
    // What each client must receive, per sender, in order.
    let mut expected: Vec<std::collections::HashMap<u64, Vec<u64>>> =
        vec![Default::default(); CLIENTS];
    // A room message from another node may also reach a client that joins the room right
    // after it was sent, while it was in flight through Redis (pub/sub has no notion of when
    // a client joined): allowed, within the next `IN_FLIGHT_OPS` operations, and nothing else.
    const IN_FLIGHT_OPS: u64 = 100;
    let mut allowed: Vec<std::collections::HashSet<(u64, u64)>> = vec![Default::default(); CLIENTS];
    let mut recent: VecDeque<(u64, usize, usize)> = VecDeque::new();
    let mut senders = std::collections::BTreeSet::new();
    for n in 0..OPS as u64 {
        while recent
            .front()
            .is_some_and(|&(sent, _, _)| sent + IN_FLIGHT_OPS < n)
        {
            recent.pop_front();
        }
        let who = rng.below(CLIENTS);
        let tag = json!({ "s": who, "n": n });
        let kind = rng.below(10);
        match kind {
            0..=2 => {
                let room = rng.below(ROOMS);
                clients[who].join(&format!("room-{room}")).await;
                rooms[room].insert(who);
                for &(sent, to, sender) in &recent {
                    if to == room && sender % 3 != who % 3 {
                        allowed[who].insert((sender as u64, sent));
                    }
                }
            }
            3 => {
                let room = rng.below(ROOMS);
                clients[who].leave(&format!("room-{room}")).await;
                rooms[room].remove(&who);
            }
            4..=6 => {
                let room = rng.below(ROOMS);
                let message = json!({ "room": format!("room-{room}"), "message": tag });
                assert_eq!(clients[who].ack("room-message", message).await, Value::Null);
                for &member in &rooms[room] {
                    expected[member].entry(who as u64).or_default().push(n);
                }
                recent.push_back((n, room, who));
                senders.insert(who);
            }
            7..=8 => {
                let to = rng.below(CLIENTS);
                let direct = json!({ "to": ids[to], "message": tag });
                assert_eq!(clients[who].ack("direct", direct).await, Value::Null);
                expected[to].entry(who as u64).or_default().push(n);
                senders.insert(who);
            }
            _ => {
                assert_eq!(clients[who].ack("user-typing", tag).await, Value::Null);
                for (other, wanted) in expected.iter_mut().enumerate() {
                    if other != who {
                        wanted.entry(who as u64).or_default().push(n);
                    }
                }
                senders.insert(who);
            }
        }
    }
    // Each sender ends with a broadcast marker: once a client has every other sender's marker,
    // it has everything those senders sent it (one sender's messages arrive in order).
    for &sender in &senders {
        let marker = json!({ "s": sender, "done": true });
        assert_eq!(
            clients[sender].ack("user-typing", marker).await,
            Value::Null
        );
    }
    let mut in_flight_at_join = 0;
    for (i, client) in clients.iter_mut().enumerate() {
        let mut waiting: std::collections::BTreeSet<u64> = senders
            .iter()
            .map(|&s| s as u64)
            .filter(|&s| s != i as u64)
            .collect();
        let mut got: std::collections::HashMap<u64, Vec<u64>> = Default::default();
        while !waiting.is_empty() {
            let frame = client.recv().await;
            let Some((sender, n)) = origin(&frame) else {
                panic!("client {i}: an unexpected frame {frame}");
            };
            match n {
                Some(n) if !expected[i].get(&sender).is_some_and(|ns| ns.contains(&n)) => {
                    assert!(
                        allowed[i].contains(&(sender, n)),
                        "client {i}: {frame} is not for it (seed {seed})"
                    );
                    in_flight_at_join += 1;
                }
                Some(n) => {
                    // Its own frames came before the acks of its sends, so before any marker.
                    assert!(
                        waiting.contains(&sender) || sender == i as u64,
                        "client {i}: {frame} from sender {sender} after its end marker"
                    );
                    got.entry(sender).or_default().push(n);
                }
                None => {
                    waiting.remove(&sender);
                }
            }
        }
        assert_eq!(
            got, expected[i],
            "client {i} ({}): received, per sender, against the rules (seed {seed})",
            ids[i]
        );
    }
    let deliveries: usize = expected.iter().flat_map(|e| e.values()).map(Vec::len).sum();
    eprintln!(
        "{OPS} operations, {deliveries} deliveries checked over 3 nodes; \
         {in_flight_at_join} room message(s) in flight when their recipient joined"
    );
}

#[tokio::test]
async fn a_client_can_be_reached_from_another_node_as_soon_as_it_knows_its_id() {
    // `connected` (the client's id) is sent once the client's channel is subscribed: a
    // direct message from another node right after it is never lost.
    let broker = broker();
    let nodes = nodes(&broker, 2).await;
    let mut sender = nodes[0].server.connect("/ws").await;
    for round in 0..30 {
        let mut fresh = nodes[1].server.connect("/ws").await;
        let direct = json!({ "to": fresh.id(), "message": round });
        assert_eq!(sender.ack("direct", direct).await, Value::Null);
        // (Earlier rounds' clients leave meanwhile: their `user-left` is skipped.)
        assert_eq!(fresh.recv_until("direct").await["message"], json!(round));
    }
}


#[tokio::test]
async fn the_handle_joins_leaves_and_disconnects_a_client_on_another_node() {
    use vania_ws::CloseCode;
    use vania_ws::error::RemoteError;

    let broker = broker();
    let nodes = nodes(&broker, 3).await;
    let mut b = nodes[1].server.connect("/ws").await;
    let mut sender = nodes[2].server.connect("/ws").await;
    let cluster = nodes[0].server.handle().cluster();
    let b_id = b.id().to_owned();
    assert!(cluster.is_connected(&b_id).await.unwrap());
    assert!(!cluster.is_connected("ws:nobody").await.unwrap());

    // Joined from node 0: node 1 receives the room from then on, from any node.
    assert!(cluster.join(&b_id, "remote").await.unwrap());
    assert!(!cluster.join(&b_id, "remote").await.unwrap(), "one membership");
    let message = json!({ "room": "remote", "message": "after the join" });
    assert_eq!(sender.ack("room-message", message).await, Value::Null);
    assert_eq!(b.recv_event("room-message").await, json!("after the join"));
    // The presence is written by its own task: asked until it shows.
    presence_becomes(&mut sender, "remote", &[&b_id]).await;
    // A room message node 0 sends right after a join it asked for reaches the client.
    let route = nodes[0].server.handle().route("/ws").unwrap();
    for round in 0..10 {
        let room = format!("fresh-{round}");
        assert!(cluster.join(&b_id, &room).await.unwrap());
        route.to_room("news", &room, &json!(round)).unwrap();
        assert_eq!(b.recv_event("news").await, json!(round));
    }

    // The client's own errors come back, and an unknown client is one.
    let err = cluster.join(&b_id, "").await.unwrap_err();
    assert!(matches!(err, RemoteError::Refused(_)), "{err}");
    assert!(err.to_string().contains("room name"), "{err}");
    let err = cluster.join("ws:nobody", "r").await.unwrap_err();
    assert!(matches!(err, RemoteError::NotConnected(_)), "{err}");

    assert!(cluster.leave(&b_id, "remote").await.unwrap());
    assert!(!cluster.leave(&b_id, "remote").await.unwrap());
    let message = json!({ "room": "remote", "message": "after the leave" });
    assert_eq!(sender.ack("room-message", message).await, Value::Null);
    next_is_marker(&mut sender, &mut b, "left").await;

    let long = "x".repeat(200);
    let code = CloseCode::try_from(4000).unwrap();
    assert!(matches!(
        cluster.disconnect(&b_id, code, &long).await,
        Err(RemoteError::Refused(_))
    ));
    assert!(!cluster.disconnect("ws:nobody", code, "gone").await.unwrap());
    assert!(cluster.disconnect(&b_id, code, "moved on").await.unwrap());
    let closed = b.closed().await;
    assert_eq!((closed.code, closed.reason.as_str()), (Some(4000), "moved on"));
}
