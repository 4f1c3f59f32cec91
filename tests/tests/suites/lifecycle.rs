use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Barrier, mpsc};
use vania_ws::testing::TestClient;
use vania_ws::{Client, Router};

#[tokio::test]
async fn connect_runs_after_connected_and_disconnect_can_still_use_rooms() {
    let router = Router::new().websocket("/chat", |ev| {
        ev.on("connect", |client: Client| async move {
            client.emit("welcome", &json!({"id": client.id()}))
        });
        ev.on("disconnect", |client: Client| async move {
            let rooms = client.rooms();
            for room in &rooms {
                client.to_room("bye", room, &json!({"id": client.id(), "rooms": rooms}))?;
            }
            Ok::<_, vania_ws::SendError>(())
        });
    });
    let server = start(router).await;
    let mut leaving = server.connect("/chat").await;
    assert_eq!(
        leaving.recv_event("welcome").await,
        json!({"id": leaving.id()})
    );
    let mut staying = server.connect("/chat").await;
    staying.recv_event("welcome").await;
    for room in ["a", "b"] {
        leaving.join(room).await;
        staying.join(room).await;
    }
    let id = leaving.id().to_owned();
    leaving.close().await;
    let expected = json!({"id": id, "rooms": ["a", "b"]});
    assert_eq!(staying.recv_event("bye").await, expected);
    assert_eq!(staying.recv_event("bye").await, expected);
    staying.assert_nothing_received().await;
    server
        .eventually("the leaving client's rooms freed", |h| {
            h.hub().room_members("/chat", "a") == 1 && h.hub().room_members("/chat", "b") == 1
        })
        .await;
}

#[tokio::test]
async fn a_connections_events_run_one_after_another() {
    let router = Router::new().websocket("/ws", |ev| {
        ev.on("slow", |client: Client, n: u64| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.emit("done", &json!({"slow": n}))
        });
        ev.on("fast", |client: Client, n: u64| async move {
            client.emit("done", &json!({"fast": n}))
        });
    });
    let server = start(router).await;
    let mut a = server.connect("/ws").await;
    a.emit("slow", json!(1)).await;
    a.emit("fast", json!(2)).await;
    a.emit("slow", json!(3)).await;
    a.ack("fast", json!(4)).await;
    assert_eq!(
        a.take_pending(),
        vec![
            json!({"event": "done", "payload": {"slow": 1}}),
            json!({"event": "done", "payload": {"fast": 2}}),
            json!({"event": "done", "payload": {"slow": 3}}),
            json!({"event": "done", "payload": {"fast": 4}}),
        ]
    );
}

/// `/ws` with `block`, a handler that reports it started and then waits for the returned
/// `Notify`, and `echo`, which answers its payload.
fn blocking_router() -> (
    Router,
    mpsc::UnboundedReceiver<()>,
    Arc<tokio::sync::Notify>,
) {
    let (started_tx, started) = mpsc::unbounded_channel::<()>();
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let router = Router::new().websocket("/ws", move |ev| {
        let started_tx = started_tx.clone();
        let gate = gate.clone();
        ev.on("block", move |_client: Client| {
            let started_tx = started_tx.clone();
            let gate = gate.clone();
            async move {
                let _ = started_tx.send(());
                gate.notified().await;
            }
        });
        ev.on("echo", |_client: Client, v: Value| async move { v });
    });
    (router, started, release)
}

#[tokio::test]
async fn a_slow_handler_on_one_connection_does_not_stall_others() {
    let (router, mut started, release) = blocking_router();
    let server = start(router).await;
    let mut blocked = server.connect("/ws").await;
    let mut other = server.connect("/ws").await;
    blocked.emit("block", Value::Null).await;
    started.recv().await.unwrap();
    assert_eq!(other.ack("echo", json!(7)).await, json!(7));
    // Frames for the blocked connection still flow while its handler runs.
    server
        .handle()
        .to(blocked.id(), "pushed", &json!(1))
        .unwrap();
    assert_eq!(blocked.recv_event("pushed").await, json!(1));
    release.notify_one();
    blocked.assert_nothing_received().await;
}

#[tokio::test]
async fn graceful_shutdown_delivers_what_was_queued_then_closes_1001() {
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let router = Router::new().websocket("/ws", move |ev| {
        let started_tx = started_tx.clone();
        ev.on("slow", move |client: Client| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                tokio::time::sleep(Duration::from_millis(100)).await;
                client.emit("slow-done", &json!(true))?;
                Ok::<_, vania_ws::SendError>("finished")
            }
        });
    });
    let server = start(router).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut client = server.connect("/ws").await;
        client.join("room").await;
        idle.push(client);
    }
    let mut busy = server.connect("/ws").await;
    busy.send(json!({"event": "slow", "id": 5})).await;
    started.recv().await.unwrap();
    for i in 0..100 {
        server
            .handle()
            .route("/ws")
            .unwrap()
            .to_room("queued", "room", &json!(i))
            .unwrap();
    }
    // Clients read concurrently, as real ones do: the close handshake needs their answer.
    let busy = tokio::spawn(busy.closed());
    let idle: Vec<_> = idle.into_iter().map(|c| tokio::spawn(c.closed())).collect();
    let handle = server.handle().clone();
    server.shutdown().await;
    assert_eq!(handle.hub().client_count(), 0);

    let closed = busy.await.unwrap();
    assert_eq!(closed.code, Some(1001));
    assert_eq!(
        closed.frames,
        vec![
            json!({"event": "slow-done", "payload": true}),
            json!({"event": "ack", "id": 5, "payload": "finished"}),
        ],
        "the handler in flight finished before the close"
    );
    for client in idle {
        let closed = client.await.unwrap();
        assert_eq!(closed.code, Some(1001));
        let expected: Vec<Value> = (0..100)
            .map(|i| json!({"event": "queued", "payload": i}))
            .collect();
        assert_eq!(closed.frames, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_from_one_sender_arrive_in_order() {
    const N: u64 = 10_000;
    // A flood by design: the rate limit (tested on its own) is off here.
    let server = start_with(
        vania_ws_tests::app::router(),
        vania_ws::ServerConfig::default().rate_limit(0, 0),
    )
    .await;
    let mut sender = server.connect("/ws").await;
    let mut receiver = server.connect("/ws").await;
    let to = receiver.id().to_owned();
    let reader = tokio::spawn(async move {
        for i in 0..N {
            let payload = receiver.recv_event("direct").await;
            assert_eq!(payload["message"], json!(i), "message {i} out of order");
        }
        // Kept open until the sender's barrier: the demo tells everyone when a client leaves.
        receiver
    });
    for i in 0..N {
        sender.emit("direct", json!({"to": to, "message": i})).await;
    }
    sender.barrier().await;
    let pending = sender.take_pending();
    assert!(pending.is_empty(), "{pending:?}");
    let mut receiver = reader.await.unwrap();
    receiver.assert_nothing_received().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_join_send_and_leave_without_loss_or_duplicates() {
    const CLIENTS: usize = 200;
    const ROOMS: usize = 10;
    let server = Arc::new(start(vania_ws_tests::app::router()).await);
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let server = server.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let room = format!("room-{}", i % ROOMS);
            let mut client: TestClient = server.connect("/ws").await;
            client.join(&room).await;
            barrier.wait().await; // everyone has joined
            client
                .ack(
                    "room-message",
                    json!({"room": room, "message": {"from": i}}),
                )
                .await;
            barrier.wait().await; // everyone's message is queued
            client.barrier().await;
            let mut senders = Vec::new();
            for frame in client.take_pending() {
                assert_eq!(frame["event"], "room-message", "{frame}");
                senders.push(frame["payload"]["from"].as_u64().unwrap() as usize);
            }
            let unique: BTreeSet<usize> = senders.iter().copied().collect();
            assert_eq!(
                senders.len(),
                unique.len(),
                "duplicate deliveries: {senders:?}"
            );
            let expected: BTreeSet<usize> =
                (0..CLIENTS).filter(|j| j % ROOMS == i % ROOMS).collect();
            assert_eq!(unique, expected, "client {i} in {room}");
            client.leave(&room).await;
            barrier.wait().await; // everyone has left
            client
        }));
    }
    barrier.wait().await;
    assert_eq!(server.handle().hub().room_count("/ws"), ROOMS);
    barrier.wait().await;
    barrier.wait().await;
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    assert_eq!(server.handle().hub().room_count("/ws"), 0);
    for client in clients {
        client.close().await;
    }
    server
        .eventually("every client gone", |h| h.hub().client_count() == 0)
        .await;
}

#[tokio::test]
async fn shutdown_ends_within_its_deadline_even_with_clients_that_never_answer() {
    let config = vania_ws::ServerConfig::default()
        .shutdown_timeout(Duration::from_millis(300))
        .close_timeout(Duration::from_secs(30));
    let server = start_with(vania_ws_tests::app::router(), config).await;
    // Connected, then never read from again: they will not answer the close.
    let mut deaf = Vec::new();
    for _ in 0..5 {
        deaf.push(server.connect("/ws").await);
    }
    let handle = server.handle().clone();
    let started = tokio::time::Instant::now();
    server.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "drain took {took:?}");
    assert_eq!(handle.hub().client_count(), 0);
    drop(deaf);
}

#[tokio::test]
async fn frames_read_together_with_a_waiting_handler_run_once_it_finishes() {
    // Three frames in one TCP write: the connection reads the first, whose handler waits, and
    // stops reading with the other two already in its buffers. No more data comes from the
    // socket, so nothing but the connection itself can tell it to read them.
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (router, mut started, release) = blocking_router();
    let server = start(router).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url("/ws"))
        .await
        .unwrap();
    async fn text<S>(ws: &mut S) -> Value
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            // A ping here means the acks never came: the interval passed first.
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
    assert_eq!(text(&mut ws).await["event"], "connected");
    for frame in [
        json!({"event": "block"}),
        json!({"event": "echo", "id": 1, "payload": "one"}),
        json!({"event": "echo", "id": 2, "payload": "two"}),
    ] {
        // `feed` only buffers; the one `flush` below writes all three at once.
        ws.feed(Message::text(frame.to_string())).await.unwrap();
    }
    ws.flush().await.unwrap();
    started.recv().await.unwrap();
    release.notify_one();
    assert_eq!(
        text(&mut ws).await,
        json!({"event": "ack", "id": 1, "payload": "one"})
    );
    assert_eq!(
        text(&mut ws).await,
        json!({"event": "ack", "id": 2, "payload": "two"})
    );
}
