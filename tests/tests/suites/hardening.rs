use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use vania_ws::testing::{TestClient, assert_refused};
use vania_ws::{Client, Extension, Handshake, Rejection, Router, ServerConfig};

fn with_origin(
    url: &str,
    origin: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", origin.parse().unwrap());
    request
}

/// The value of `series` (a metric's name and labels, as printed) in the server's
/// `GET /metrics`.
async fn exported(server: &vania_ws::testing::TestServer, series: &str) -> f64 {
    let text = server.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in GET /metrics:\n{text}"))
        .parse()
        .unwrap()
}

fn counting_router(connects: Arc<AtomicUsize>) -> Router {
    Router::new().websocket("/ws", move |ev| {
        let connects = connects.clone();
        ev.on("connect", move |_client: Client| {
            let connects = connects.clone();
            async move {
                connects.fetch_add(1, Ordering::SeqCst);
            }
        });
        ev.on("echo", |_client: Client, v: Value| async move { v });
    })
}

#[tokio::test]
async fn same_host_origins_only_by_default() {
    let connects = Arc::new(AtomicUsize::new(0));
    let server = start(counting_router(connects.clone())).await;
    let url = server.url("/ws");
    // Not a browser: no Origin header, always accepted.
    let mut plain = TestClient::connect(&url).await;
    let same = format!("http://{}", server.addr());
    let mut browser = TestClient::connect_request(with_origin(&url, &same)).await;
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        assert_refused(with_origin(&url, origin), 403).await;
    }
    plain.ack("echo", json!(1)).await;
    browser.ack("echo", json!(2)).await;
    assert_eq!(
        connects.load(Ordering::SeqCst),
        2,
        "no connect handler for refused origins"
    );
}

#[tokio::test]
async fn allowed_origins_are_compared_exactly() {
    let connects = Arc::new(AtomicUsize::new(0));
    let config = ServerConfig::default().allowed_origins(["https://app.example.com"]);
    let server = start_with(counting_router(connects.clone()), config).await;
    let url = server.url("/ws");
    let mut ok = TestClient::connect_request(with_origin(&url, "https://app.example.com")).await;
    for origin in [
        "https://app.example.com.evil.com",
        "http://app.example.com",
        "https://evil.com/https://app.example.com",
        "null",
    ] {
        assert_refused(with_origin(&url, origin), 403).await;
    }
    ok.ack("echo", json!("in")).await;
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    let any = ServerConfig::default().allowed_origins(["*"]);
    let open = start_with(counting_router(Arc::default()), any).await;
    TestClient::connect_request(with_origin(&open.url("/ws"), "null")).await;
}

#[derive(Clone, Debug)]
struct User {
    name: String,
    admin: bool,
}

fn guarded_router(connects: Arc<AtomicUsize>) -> Router {
    Router::new()
        .guard_all(|request: Handshake| async move {
            if request.header("x-banned").is_some() {
                return Err(Rejection::forbidden("banned"));
            }
            Ok(request)
        })
        .websocket("/secure", move |ev| {
            ev.guard(|mut request: Handshake| async move {
                let user = match request.query_param("token").as_deref() {
                    Some("admin-token") => User {
                        name: "ann".into(),
                        admin: true,
                    },
                    Some("user-token") => User {
                        name: "bob".into(),
                        admin: false,
                    },
                    _ => return Err(Rejection::unauthorized("a valid token is required")),
                };
                request.extensions.insert(user);
                Ok(request)
            });
            ev.join_guard(|client: Client, room: String| async move {
                let admin = client.extensions().get::<User>().is_some_and(|u| u.admin);
                if room.starts_with("private-") && !admin {
                    return Err(format!("`{room}` is private"));
                }
                Ok(())
            });
            let connects = connects.clone();
            ev.on("connect", move |_client: Client| {
                let connects = connects.clone();
                async move {
                    connects.fetch_add(1, Ordering::SeqCst);
                }
            });
            ev.on(
                "me",
                |_client: Client, Extension(user): Extension<User>| async move { user.name },
            );
        })
}

#[tokio::test]
async fn guards_run_before_the_upgrade_and_attach_an_identity() {
    let connects = Arc::new(AtomicUsize::new(0));
    let server = start(guarded_router(connects.clone())).await;
    assert_refused(server.url("/secure"), 401).await;
    assert_refused(server.url("/secure?token=wrong"), 401).await;
    let mut banned = server
        .url("/secure?token=admin-token")
        .into_client_request()
        .unwrap();
    banned
        .headers_mut()
        .insert("x-banned", "1".parse().unwrap());
    assert_refused(banned, 403).await;
    assert_eq!(
        connects.load(Ordering::SeqCst),
        0,
        "no connect handler for a refused client"
    );
    assert_eq!(
        server.handle().hub().client_count(),
        0,
        "no socket for a refused client"
    );

    let mut admin = server.connect("/secure?token=admin-token").await;
    let mut user = server.connect("/secure?token=user-token").await;
    assert_eq!(admin.ack("me", Value::Null).await, json!("ann"));
    assert_eq!(user.ack("me", Value::Null).await, json!("bob"));
    admin.join("private-ops").await;
    let refused = user
        .request_frame(json!({"event": "join-room", "room": "private-ops"}))
        .await;
    assert_eq!(
        refused["payload"],
        json!({"code": "forbidden", "message": "`private-ops` is private"})
    );
    user.join("public").await;
    assert_eq!(connects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn over_the_connection_limit_exactly_the_extra_get_503() {
    const MAX: usize = 20;
    let config = ServerConfig::default().max_connections(MAX);
    let server = start_with(vania_ws_tests::app::router(), config).await;
    let url = server.url("/ws");
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..MAX + 50 {
        match connect_async(&url).await {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503);
                refused += 1;
            }
            Err(err) => panic!("unexpected {err}"),
        }
    }
    assert_eq!((open.len(), refused), (MAX, 50));
    for mut ws in open {
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    }
    server
        .eventually("every slot given back", |h| h.metrics().connections == 0)
        .await;
    let mut again = Vec::new();
    for _ in 0..MAX {
        again.push(server.connect("/ws").await);
    }
    assert_eq!(server.handle().metrics().handshakes_refused, 50);
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_dropped_and_leaves_its_rooms() {
    let config =
        ServerConfig::default().heartbeat(Duration::from_millis(100), Duration::from_millis(150));
    let server = start_with(counting_router(Arc::default()), config).await;
    let mut silent = server.connect("/ws").await;
    silent.join("r").await;
    let mut alive = server.connect("/ws").await;
    alive.join("r").await;
    let started = tokio::time::Instant::now();
    // `silent` is never read from again, so its pings go unanswered; `alive` keeps reading,
    // so it answers every ping meanwhile.
    let ((), ()) = tokio::join!(
        alive.idle(Duration::from_millis(800)),
        server.eventually("the silent client dropped", |h| {
            h.metrics().pings_timed_out == 1 && h.hub().room_members("/ws", "r") == 1
        }),
    );
    // Dropped within interval + timeout (250 ms), give or take scheduling.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(alive.ack("echo", json!(1)).await, json!(1));
    assert_eq!(server.handle().metrics().pings_timed_out, 1);
    assert_eq!(exported(&server, "vania_ws_ping_timeouts_total").await, 1.0);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_and_the_others_receive_everything_in_order() {
    const QUEUE: usize = 64 * 1024;
    const FRAMES: usize = 4_000;
    // A connection releases a batch from the bound just after writing it, so a reader can see
    // a batch while its bytes still count: two batches (2 x 4 x 4 KiB) must fit the bound.
    const BATCH: usize = 4;
    let config = ServerConfig::default()
        .send_queue_bytes(QUEUE)
        .close_timeout(Duration::from_millis(500))
        .rate_limit(0, 0);
    let server = start_with(Router::new().websocket("/ws", |_| {}), config).await;
    let mut slow = server.connect("/ws").await;
    slow.join("busy").await;
    let slow_id = slow.id().to_owned();
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..2 {
        let mut fast = server.connect("/ws").await;
        fast.join("busy").await;
        let (tx, rx) = tokio::sync::watch::channel(0usize);
        progress.push(rx);
        readers.push(tokio::spawn(async move {
            for i in 0..FRAMES {
                let payload = fast.recv_event("bulk").await;
                assert_eq!(payload["seq"], json!(i), "in order");
                let _ = tx.send(i + 1);
            }
            fast
        }));
    }
    let filler = "x".repeat(4096);
    for batch in 0..FRAMES / BATCH {
        for i in batch * BATCH..(batch + 1) * BATCH {
            server
                .handle()
                .route("/ws")
                .unwrap()
                .to_room("bulk", "busy", &json!({"seq": i, "fill": filler}))
                .unwrap();
        }
        // Pace the sender on what the fast clients have received, not on time.
        for rx in &mut progress {
            rx.wait_for(|got| *got >= (batch + 1) * BATCH)
                .await
                .unwrap();
        }
    }
    for reader in readers {
        let mut fast = reader.await.unwrap();
        fast.assert_nothing_received().await;
    }
    server
        .eventually("the slow consumer closed", |h| {
            h.metrics().slow_consumers == 1 && !h.hub().is_connected(&slow_id)
        })
        .await;
    drop(slow);
}

#[tokio::test]
async fn a_slow_consumer_that_reads_nothing_is_dropped_after_the_close_timeout() {
    // The heartbeat is out of the way: only the overflow's close may drop the client.
    let config = ServerConfig::default()
        .send_queue_bytes(256 * 1024)
        .close_timeout(Duration::from_millis(300))
        .heartbeat(Duration::from_secs(3600), Duration::from_secs(3600))
        .rate_limit(0, 0);
    let server = start_with(Router::new().websocket("/ws", |_| {}), config).await;
    // A raw client with a small receive buffer that never reads: the server's socket fills,
    // its connection stops taking frames from the queue, and then the queue overflows.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr()).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    server
        .eventually("the client registered", |h| h.metrics().clients == 1)
        .await;
    // Until the queue overflows (a send then reaches nobody): first the kernel's socket
    // buffers fill, then the 256 KiB queue. Paced a little, so that the connection writes
    // what the socket takes before the queue overflows.
    let filler = "x".repeat(4096);
    let mut sent = 0usize;
    while server
        .handle()
        .broadcast("bulk", &json!({ "fill": filler }))
        .unwrap()
        == 1
    {
        sent += 1;
        assert!(sent < 16_384, "the queue never overflowed (64 MiB sent)");
        if sent.is_multiple_of(16) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    server
        .eventually("the slow consumer dropped", |h| {
            h.metrics().slow_consumers == 1 && h.metrics().clients == 0
        })
        .await;
    assert_eq!(exported(&server, "vania_ws_slow_consumers_total").await, 1.0);
    assert_eq!(exported(&server, "vania_ws_connections").await, 0.0);
    drop(stream);
}

#[tokio::test]
async fn room_limit_and_room_churn() {
    let config = ServerConfig::default()
        .max_rooms_per_client(100)
        .rate_limit(0, 0);
    let server = start_with(vania_ws_tests::app::router(), config).await;
    let mut a = server.connect("/ws").await;
    for i in 0..10_000u64 {
        a.send(json!({"event": "join-room", "room": format!("room-{i}"), "id": i}))
            .await;
    }
    let (mut acks, mut limited) = (0, 0);
    for i in 0..10_000u64 {
        let reply = a.recv().await;
        assert_eq!(reply["id"], json!(i));
        match reply["event"].as_str() {
            Some("ack") => {
                assert!(i < 100, "join {i} accepted");
                acks += 1;
            }
            _ => {
                assert_eq!(reply["payload"]["code"], "room_limit");
                limited += 1;
            }
        }
    }
    assert_eq!((acks, limited), (100, 9_900));
    assert_eq!(server.handle().hub().room_count("/ws"), 100);
    a.close().await;
    server
        .eventually("rooms freed", |h| h.hub().room_count("/ws") == 0)
        .await;

    // 10,000 connect / join / disconnect cycles, 10 at a time.
    let server = Arc::new(server);
    let mut tasks = Vec::new();
    for t in 0..10 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1_000 {
                let mut client = server.connect("/ws").await;
                client.join(&format!("churn-{t}-{}", i % 7)).await;
                client.close().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    server
        .eventually("every client, room and slot freed", |h| {
            let m = h.metrics();
            m.clients == 0 && m.rooms == 0 && m.connections == 0
        })
        .await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_while_a_polite_client_is_served() {
    let config = ServerConfig::default().rate_limit(10, 20);
    let server = start_with(vania_ws_tests::app::router(), config).await;
    let mut polite = server.connect("/ws").await;
    let mut flood = server.connect("/ws").await;
    for i in 0..1_000 {
        flood
            .send(json!({"event": "message", "payload": i, "id": i}))
            .await;
    }
    let closed = flood.closed().await;
    assert_eq!(closed.code, Some(1008));
    let limited = closed
        .frames
        .iter()
        .filter(|f| f["payload"]["code"] == "rate_limited")
        .count();
    let acked = closed.frames.iter().filter(|f| f["event"] == "ack").count();
    assert!(limited >= 200, "{limited} refusals before the close");
    assert!(
        (20..40).contains(&acked),
        "about the burst was served: {acked}"
    );
    // Refusals carry the request's id.
    let first = closed
        .frames
        .iter()
        .find(|f| f["payload"]["code"] == "rate_limited")
        .unwrap();
    assert!(first["id"].is_u64(), "{first}");
    for i in 0..5 {
        assert_eq!(polite.ack("message", json!(i)).await, json!(i));
    }
    let rate_limited = server.handle().metrics().rate_limited;
    assert!(rate_limited >= 200);
    assert_eq!(
        exported(&server, "vania_ws_rate_limited_total").await,
        rate_limited as f64
    );
}

#[tokio::test]
async fn an_oversized_message_in_continuation_frames_closes_1009() {
    let config = ServerConfig::default().max_message_bytes(4096);
    let server = start_with(vania_ws_tests::app::router(), config).await;
    let mut a = server.connect("/ws").await;
    let mut b = server.connect("/ws").await;
    let part = |fin: bool, opcode: OpCode, len: usize| {
        Frame::from_payload(
            FrameHeader {
                is_final: fin,
                opcode,
                ..FrameHeader::default()
            },
            vec![b' '; len].into(),
        )
    };
    a.send_message(Message::Frame(part(false, OpCode::Data(Data::Text), 3000)))
        .await;
    a.send_message(Message::Frame(part(
        true,
        OpCode::Data(Data::Continue),
        3000,
    )))
    .await;
    let closed = a.closed().await;
    assert_eq!(closed.code, Some(1009));
    assert!(closed.frames.is_empty());
    assert_eq!(
        b.ack("message", json!("unaffected")).await,
        json!("unaffected")
    );
}

#[tokio::test]
async fn counters_report_traffic_and_errors() {
    let server = start(vania_ws_tests::app::router()).await;
    // Refused by the engine behind either front end (behind axum, a path without a route is
    // the app's own 404, which the engine never sees).
    let foreign = || with_origin(&server.url("/ws"), "https://elsewhere.example");
    assert_refused(foreign(), 403).await;
    assert_refused(foreign(), 403).await;
    let mut a = server.connect("/ws").await;
    let mut b = server.connect("/ws").await;
    a.join("r").await;
    b.join("r").await;
    a.ack("room-message", json!({"room": "r", "message": 1}))
        .await;
    a.recv_event("room-message").await;
    b.recv_event("room-message").await;
    a.request("nope", Value::Null).await;
    a.send_text("not json").await;
    assert_eq!(a.recv_event("error").await["code"], "invalid_json");
    let metrics = server.handle().metrics();
    assert_eq!(metrics.connections, 2);
    assert_eq!(metrics.clients, 2);
    assert_eq!(metrics.rooms, 1);
    assert_eq!(metrics.errors.get("unknown_event"), Some(&1), "{metrics:?}");
    assert_eq!(metrics.errors.get("invalid_json"), Some(&1));
    // In: 2 joins, room-message, nope, not json. Out: 2 connected, 2 join acks, 2 room
    // messages, 1 ack, 2 errors.
    assert_eq!(
        (metrics.messages_in, metrics.messages_out),
        (5, 9),
        "{metrics:?}"
    );
    // The same, as Prometheus scrapes it.
    let series = [
        ("vania_ws_connections", 2.0),
        ("vania_ws_rooms", 1.0),
        ("vania_ws_messages_in_total", 5.0),
        ("vania_ws_messages_out_total", 9.0),
        ("vania_ws_errors_total{code=\"unknown_event\"}", 1.0),
        ("vania_ws_errors_total{code=\"invalid_json\"}", 1.0),
        ("vania_ws_errors_total{code=\"handler_error\"}", 0.0),
        ("vania_ws_handshake_rejections_total{status=\"403\"}", 2.0),
        (
            "vania_ws_handler_duration_seconds_count{route=\"/ws\",event=\"room-message\"}",
            1.0,
        ),
        (
            "vania_ws_handler_duration_seconds_bucket{route=\"/ws\",event=\"room-message\",le=\"+Inf\"}",
            1.0,
        ),
        (
            "vania_ws_handler_duration_seconds_count{route=\"/ws\",event=\"whoami\"}",
            0.0,
        ),
    ];
    for (name, value) in series {
        assert_eq!(exported(&server, name).await, value, "{name}");
    }
    // A handler's run is timed to its reply.
    a.ack("whoami", Value::Null).await;
    let whoami = "vania_ws_handler_duration_seconds_count{route=\"/ws\",event=\"whoami\"}";
    assert_eq!(exported(&server, whoami).await, 1.0);
    // The gauge follows a close.
    b.close().await;
    server
        .eventually("b's connection closed", |h| h.metrics().connections == 1)
        .await;
    assert_eq!(exported(&server, "vania_ws_connections").await, 1.0);
}

#[tokio::test]
async fn panics_in_guards_and_raw_handlers_are_contained() {
    let router = Router::new()
        .websocket("/guarded", |ev| {
            ev.guard(|request: Handshake| async move {
                if request.query_param("boom").is_some() {
                    panic!("guard panic");
                }
                Ok(request)
            });
            ev.join_guard(|_client: Client, room: String| async move {
                if room == "boom" {
                    panic!("join guard panic");
                }
                Ok(())
            });
        })
        .websocket("/raw", |ev| {
            ev.on_text(|client: Client, text| async move {
                if text.as_str() == "boom" {
                    panic!("raw handler panic");
                }
                client.send_text(text);
            });
        });
    let server = start(router).await;
    assert_refused(server.url("/guarded?boom=1"), 500).await;
    let mut client = server.connect("/guarded").await;
    let reply = client
        .request_frame(json!({"event": "join-room", "room": "boom"}))
        .await;
    assert_eq!(reply["payload"]["code"], "internal");
    client.join("fine").await;

    let (mut raw, _) = connect_async(server.url("/raw")).await.unwrap();
    raw.send(Message::text("echo")).await.unwrap();
    assert_eq!(raw.next().await.unwrap().unwrap(), Message::text("echo"));
    raw.send(Message::text("boom")).await.unwrap();
    match raw.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected close 1011, got {other:?}"),
    }
    server
        .eventually("the raw client freed", |h| h.hub().client_count() == 1)
        .await;
    // The server is fine.
    client.join("still-fine").await;
}
