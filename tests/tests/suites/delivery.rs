use serde_json::{Value, json};
use vania_ws::testing::{TestClient, TestServer};

async fn demo() -> TestServer {
    start(vania_ws_tests::app::router()).await
}

#[tokio::test]
async fn broadcast_reaches_every_route_but_never_the_sender() {
    let server = demo().await;
    let mut sender = server.connect("/ws").await;
    let mut same_route = server.connect("/ws").await;
    let mut clients = server.connect("/clients").await;
    let mut admins = server.connect("/admins").await;
    assert_eq!(
        sender.ack("user-typing", json!("typing…")).await,
        Value::Null
    );
    let expected = json!({"session_id": sender.id(), "payload": "typing…"});
    for other in [&mut same_route, &mut clients, &mut admins] {
        assert_eq!(other.recv_event("user-typing").await, expected);
        other.assert_nothing_received().await;
    }
    sender.assert_nothing_received().await;
}

#[tokio::test]
async fn clients_route_broadcasts_client_joined() {
    let server = demo().await;
    let mut a = server.connect("/clients").await;
    let mut b = server.connect("/clients").await;
    let mut ws = server.connect("/ws").await;
    assert_eq!(
        a.ack("client-joined", json!({"name": "ann"})).await,
        Value::Null
    );
    assert_eq!(b.recv_event("client-joined").await, json!({"name": "ann"}));
    assert_eq!(ws.recv_event("client-joined").await, json!({"name": "ann"}));
    a.assert_nothing_received().await;
}

#[tokio::test]
async fn to_room_reaches_members_of_that_route_only_sender_included() {
    let server = demo().await;
    let mut sender = server.connect("/ws").await;
    let mut member = server.connect("/ws").await;
    let mut outsider = server.connect("/ws").await;
    let mut other_route = server.connect("/admins").await;
    sender.join("lobby").await;
    member.join("lobby").await;
    outsider.join("elsewhere").await;
    other_route.join("lobby").await;
    let reply = sender
        .ack(
            "room-message",
            json!({"room": "lobby", "message": {"m": 1}}),
        )
        .await;
    assert_eq!(reply, Value::Null);
    assert_eq!(sender.recv_event("room-message").await, json!({"m": 1}));
    assert_eq!(member.recv_event("room-message").await, json!({"m": 1}));
    for client in [&mut sender, &mut member, &mut outsider, &mut other_route] {
        client.assert_nothing_received().await;
    }
}

#[tokio::test]
async fn a_non_member_may_send_to_a_room_and_does_not_receive_it() {
    let server = demo().await;
    let mut sender = server.connect("/ws").await;
    let mut member = server.connect("/ws").await;
    member.join("r").await;
    sender
        .ack("room-message", json!({"room": "r", "message": "x"}))
        .await;
    assert_eq!(member.recv_event("room-message").await, json!("x"));
    sender.assert_nothing_received().await;
    // An empty room is no error either.
    sender
        .ack("room-message", json!({"room": "empty", "message": "x"}))
        .await;
}

#[tokio::test]
async fn to_reaches_only_its_target_on_any_route() {
    let server = demo().await;
    let mut sender = server.connect("/ws").await;
    let mut target = server.connect("/clients").await;
    let mut bystander = server.connect("/ws").await;
    let target_id = target.id().to_owned();
    sender
        .ack("direct", json!({"to": target_id, "message": "psst"}))
        .await;
    assert_eq!(
        target.recv_event("direct").await,
        json!({"from": sender.id(), "message": "psst"})
    );
    for client in [&mut sender, &mut target, &mut bystander] {
        client.assert_nothing_received().await;
    }
    // A client that is not connected is not an error.
    let reply = sender
        .ack(
            "direct",
            json!({"to": "ws:00000000-0000-0000-0000-000000000000", "message": 1}),
        )
        .await;
    assert_eq!(reply, Value::Null);
}

#[tokio::test]
async fn joining_twice_is_one_membership_and_left_room_works() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    let mut b = server.connect("/ws").await;
    a.join("r").await;
    a.join("r").await;
    assert_eq!(server.handle().hub().room_members("/ws", "r"), 1);
    b.ack("room-message", json!({"room": "r", "message": 1}))
        .await;
    assert_eq!(a.recv_event("room-message").await, json!(1));
    a.assert_nothing_received().await;

    a.leave("r").await;
    assert_eq!(
        server.handle().hub().room_count("/ws"),
        0,
        "an empty room is freed"
    );
    b.ack("room-message", json!({"room": "r", "message": 2}))
        .await;
    a.assert_nothing_received().await;
    // Leaving a room one is not in is not an error.
    a.leave("r").await;
    a.leave("never-joined").await;
}

#[tokio::test]
async fn join_and_leave_without_id_take_effect_in_order() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    a.send(json!({"event": "join-room", "room": "r"})).await;
    // Events are handled in arrival order, so the join is done before this request runs.
    a.ack("room-message", json!({"room": "r", "message": "in"}))
        .await;
    assert_eq!(
        a.take_pending(),
        vec![json!({"event": "room-message", "payload": "in"})]
    );
    a.send(json!({"event": "left-room", "room": "r"})).await;
    a.ack("room-message", json!({"room": "r", "message": "out"}))
        .await;
    a.assert_nothing_received().await;
}

#[tokio::test]
async fn whoami_lists_the_rooms_sorted() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    assert_eq!(
        a.ack("whoami", Value::Null).await,
        json!({"session_id": a.id(), "rooms": []})
    );
    for room in ["zeta", "alpha", "mid", "alpha"] {
        a.join(room).await;
    }
    a.leave("mid").await;
    assert_eq!(
        a.ack("whoami", Value::Null).await,
        json!({"session_id": a.id(), "rooms": ["alpha", "zeta"]})
    );
}

#[tokio::test]
async fn admin_message_goes_to_a_room_or_to_everyone_else() {
    let server = demo().await;
    let mut admin = server.connect("/admins").await;
    let mut admin_in_room = server.connect("/admins").await;
    let mut ws_in_room = server.connect("/ws").await;
    let mut ws = server.connect("/ws").await;
    admin.join("ops").await;
    admin_in_room.join("ops").await;
    ws_in_room.join("ops").await;

    let reply = admin
        .ack("admin-message", json!({"text": "deploy", "room": "ops"}))
        .await;
    assert_eq!(reply, json!({"delivered": true}));
    assert_eq!(
        admin.recv_event("admin-message").await,
        json!({"text": "deploy"})
    );
    assert_eq!(
        admin_in_room.recv_event("admin-message").await,
        json!({"text": "deploy"})
    );
    for client in [&mut ws_in_room, &mut ws] {
        client.assert_nothing_received().await;
    }

    let reply = admin.ack("admin-message", json!({"text": "all"})).await;
    assert_eq!(reply, json!({"delivered": true}));
    for client in [&mut admin_in_room, &mut ws_in_room, &mut ws] {
        assert_eq!(
            client.recv_event("admin-message").await,
            json!({"text": "all"})
        );
    }
    admin.assert_nothing_received().await;
}

#[tokio::test]
async fn the_server_handle_sends_from_outside_any_handler() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    let mut b = server.connect("/clients").await;
    a.join("news").await;
    b.join("news").await;
    let handle = server.handle();

    handle.to(a.id(), "note", &json!("to a")).unwrap();
    assert_eq!(a.recv_event("note").await, json!("to a"));
    b.assert_nothing_received().await;

    handle
        .route("/ws")
        .unwrap()
        .to_room("note", "news", &json!("room"))
        .unwrap();
    assert_eq!(a.recv_event("note").await, json!("room"));
    b.assert_nothing_received().await;

    handle.broadcast("note", &json!("all")).unwrap();
    assert_eq!(a.recv_event("note").await, json!("all"));
    assert_eq!(b.recv_event("note").await, json!("all"));
}

#[tokio::test]
async fn disconnect_fires_its_handler_and_frees_rooms_and_the_client() {
    let server = demo().await;
    let mut leaving = server.connect("/ws").await;
    let mut watcher = server.connect("/clients").await;
    leaving.join("r1").await;
    leaving.join("r2").await;
    let id = leaving.id().to_owned();
    assert_eq!(server.handle().hub().room_count("/ws"), 2);
    leaving.close().await;
    assert_eq!(
        watcher.recv_event("user-left").await,
        json!({"session_id": id})
    );
    server
        .eventually("rooms and client freed", |h| {
            h.hub().room_count("/ws") == 0 && h.hub().client_count() == 1
        })
        .await;
    assert!(!server.handle().hub().is_connected(&id));
}

#[tokio::test]
async fn a_dropped_tcp_connection_also_runs_disconnect() {
    let server = demo().await;
    let leaving = server.connect("/ws").await;
    let mut watcher = server.connect("/ws").await;
    let id = leaving.id().to_owned();
    drop(leaving);
    assert_eq!(
        watcher.recv_event("user-left").await,
        json!({"session_id": id})
    );
}

async fn connect_all(server: &TestServer, path: &str, n: usize) -> Vec<TestClient> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(server.connect(path).await);
    }
    clients
}

#[tokio::test]
async fn emit_goes_to_the_sender_only() {
    let server = demo().await;
    let mut clients = connect_all(&server, "/ws", 3).await;
    clients[0].ack("message", json!("mine")).await;
    assert_eq!(
        clients[0].take_pending(),
        vec![json!({"event": "message", "payload": "mine"})]
    );
    for other in &mut clients[1..] {
        other.assert_nothing_received().await;
    }
}

#[tokio::test]
async fn a_member_that_stops_reading_gets_every_room_message_whole_and_in_order() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    // 6 MB, more than the kernel's socket buffers hold (4 MiB at most for sending) and under
    // the send-queue bound, to a member with a small receive buffer that reads nothing
    // meanwhile: its socket fills, writes are taken in part, and what is left waits in the
    // connection until the socket drains. The member must see every byte, in order.
    let config = vania_ws::ServerConfig::default()
        .rate_limit(0, 0)
        .send_queue_bytes(16 << 20);
    let server = start_with(vania_ws_tests::app::router(), config).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr()).await.unwrap();
    let (member, _) = tokio_tungstenite::client_async(server.url("/ws"), stream)
        .await
        .unwrap();
    let (mut to_server, mut from_server) = member.split();
    let mut next = async || -> Value {
        loop {
            match from_server.next().await.expect("the member's connection is open").unwrap() {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    assert_eq!(next().await["event"], "connected");
    let join = json!({"event": "join-room", "room": "lobby", "id": 1});
    to_server
        .send(Message::text(join.to_string()))
        .await
        .unwrap();
    assert_eq!(next().await["event"], "ack");
    let mut sender = server.connect("/ws").await;
    let text = "x".repeat(12_000);
    const MESSAGES: usize = 500;
    for i in 0..MESSAGES {
        let message = json!({"room": "lobby", "message": {"i": i, "text": text}});
        assert_eq!(sender.ack("room-message", message).await, Value::Null);
    }
    for i in 0..MESSAGES {
        let frame = next().await;
        assert_eq!(frame["event"], "room-message");
        assert_eq!(frame["payload"], json!({"i": i, "text": text}));
    }
}
