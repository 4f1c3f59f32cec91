//! `example-axum` over real sockets: one port serves the REST routes and the WebSocket
//! routes, a `POST` reaches the room's members on `/ws`, and a graceful shutdown drains both.

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use vania_ws::testing::TestClient;
use vania_ws::{Server, ServerConfig, listen};

const TIMEOUT: Duration = Duration::from_secs(10);

struct App {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> App {
    start_with(ServerConfig::default()).await
}

/// The app with `config` (its `REDIS_URL`, say), on a free port.
async fn start_with(config: ServerConfig) -> App {
    let config = config.port(0);
    let engine = Server::builder(example_demo::router())
        .config(config.clone())
        .start()
        .await
        .unwrap();
    let listener = listen(&config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(example_axum::serve(listener, engine, async {
        let _ = stopped.await;
    }));
    App { addr, stop, served }
}

/// One HTTP/1.1 request; returns the status and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("the app answers in time")
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    (status, body.to_owned())
}

#[tokio::test]
async fn one_port_serves_rest_and_websockets_and_a_post_reaches_the_room() {
    let app = start().await;
    assert_eq!(
        http(app.addr, "GET", "/health", None).await,
        (200, "ok".to_owned())
    );
    let url = format!("ws://{}/ws", app.addr);
    let mut alice = TestClient::connect(&url).await;
    let mut bob = TestClient::connect(&url).await;
    let mut carol = TestClient::connect(&url).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    carol.join("elsewhere").await;

    let (status, body) = http(
        app.addr,
        "POST",
        "/api/rooms/lobby/messages",
        Some(r#"{"text":"hi","from":"rest"}"#),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"delivered": 2})
    );
    for member in [&mut alice, &mut bob] {
        assert_eq!(
            member.recv_event("room-message").await,
            json!({"text": "hi", "from": "rest"})
        );
    }
    carol.assert_nothing_received().await;

    // A room nobody is in, a bad body, a bad room name.
    let (status, body) = http(app.addr, "POST", "/api/rooms/empty/messages", Some("1")).await;
    assert_eq!((status, body.as_str()), (202, r#"{"delivered":0}"#));
    let (status, _) = http(app.addr, "POST", "/api/rooms/lobby/messages", Some("{nope")).await;
    assert_eq!(status, 400);
    let long = "r".repeat(256);
    let (status, body) = http(
        app.addr,
        "POST",
        &format!("/api/rooms/{long}/messages"),
        Some("1"),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "a room name is 1 to 255 bytes")
    );
    // The WebSocket routes answer as on the standalone server.
    let (status, _) = http(app.addr, "GET", "/nowhere", None).await;
    assert_eq!(status, 404);
    assert_eq!(alice.ack("message", json!("still")).await, json!("still"));
}

#[tokio::test]
async fn the_browser_client_and_the_metrics_are_served_beside_the_routes() {
    let app = start().await;
    let (status, script) = http(app.addr, "GET", "/vania-ws.js", None).await;
    assert_eq!(status, 200);
    assert_eq!(script, vania_ws::CLIENT_SCRIPT);
    assert!(script.contains("export function connect"), "the module");
    let mut client = TestClient::connect(&format!("ws://{}/ws", app.addr)).await;
    client.ack("message", json!("hi")).await;
    let (status, metrics) = http(app.addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\nvania_ws_connections 1\n"), "{metrics}");
    assert!(
        metrics.contains(
            "\nvania_ws_handler_duration_seconds_count{route=\"/ws\",event=\"message\"} 1\n"
        ),
        "{metrics}"
    );
    let _ = app.stop.send(());
    app.served.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_graceful_shutdown_drains_websockets_then_http() {
    let app = start().await;
    let url = format!("ws://{}/ws", app.addr);
    let mut client = TestClient::connect(&url).await;
    client.join("lobby").await;
    let (status, _) = http(
        app.addr,
        "POST",
        "/api/rooms/lobby/messages",
        Some(r#""queued""#),
    )
    .await;
    assert_eq!(status, 202);
    app.stop.send(()).unwrap();
    // What was queued arrives, then the close 1001.
    let closed = client.closed().await;
    assert_eq!(
        closed.frames,
        vec![json!({"event": "room-message", "payload": "queued"})]
    );
    assert_eq!(closed.code, Some(1001));
    tokio::time::timeout(TIMEOUT, app.served)
        .await
        .expect("the app stops in time")
        .unwrap()
        .unwrap();
    // The port is closed: no more HTTP either.
    assert!(TcpStream::connect(app.addr).await.is_err());
}

/// Two `example-axum` apps sharing a Redis: a `POST` to one reaches the room's members on the
/// other.
#[tokio::test]
async fn a_post_to_one_app_reaches_the_rooms_members_on_another_sharing_redis() {
    let redis = vania_ws_test_redis::RedisServer::start();
    let vars = [
        ("REDIS_URL", redis.url()),
        ("REDIS_REQUIRED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = ServerConfig::from_vars(&vars).unwrap();
    let (one, two) = (start_with(config.clone()).await, start_with(config).await);
    let mut member = TestClient::connect(&format!("ws://{}/ws", two.addr)).await;
    member.join("r").await;
    let (status, body) = http(
        one.addr,
        "POST",
        "/api/rooms/r/messages",
        Some(r#"{"text":"from the other app"}"#),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        member.recv_event("room-message").await,
        json!({ "text": "from the other app" })
    );
    drop(member);
    for app in [one, two] {
        let _ = app.stop.send(());
        app.served.await.unwrap().unwrap();
    }
}
