//! `example-chat` over real sockets, without a browser (the page itself is tested in
//! Chromium by `tests/browser`): the name guard, rooms with history and members, messages,
//! typing, private messages, and what a disconnect tells the rooms.

use std::net::SocketAddr;
use tokio::sync::oneshot;
use vania_ws::serde_json::{Value, json};
use vania_ws::testing::{TestClient, assert_refused};
use vania_ws::{Server, ServerConfig, listen};

struct App {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start() -> App {
    start_with(ServerConfig::default()).await
}

async fn start_with(config: ServerConfig) -> App {
    let config = config.port(0);
    let engine = Server::builder(example_chat::router())
        .config(config.clone())
        .build()
        .unwrap();
    let listener = listen(&config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(example_chat::serve(listener, engine, async {
        let _ = stopped.await;
    }));
    App { addr, _stop: stop }
}

impl App {
    async fn connect(&self, name: &str) -> TestClient {
        TestClient::connect(&format!("ws://{}/chat?name={name}", self.addr)).await
    }
}

/// `entered` for `room` after joining it: the room's history and members.
async fn enter(client: &mut TestClient, room: &str) -> Value {
    client.join(room).await;
    client.ack("entered", json!(room)).await
}

#[tokio::test]
async fn a_connection_needs_a_name() {
    let app = start().await;
    assert_refused(format!("ws://{}/chat", app.addr), 400).await;
    assert_refused(format!("ws://{}/chat?name=", app.addr), 400).await;
    let long = "x".repeat(33);
    assert_refused(format!("ws://{}/chat?name={long}", app.addr), 400).await;
    let mut ok = app.connect("x".repeat(32).as_str()).await;
    assert!(ok.ack("rooms", Value::Null).await.is_array());
}

#[tokio::test]
async fn members_see_the_rooms_messages_history_and_typing() {
    let app = start().await;
    let mut alice = app.connect("alice").await;
    let mut bob = app.connect("bob").await;
    let mut carol = app.connect("carol").await;
    let entered = enter(&mut alice, "general").await;
    assert_eq!(entered["history"], json!([]));
    assert_eq!(
        entered["members"],
        json!([{ "id": alice.id(), "name": "alice" }])
    );
    assert_eq!(alice.recv_event("member-joined").await["name"], "alice");
    enter(&mut bob, "general").await;
    let joined = alice.recv_event("member-joined").await;
    assert_eq!(
        joined,
        json!({ "room": "general", "id": bob.id(), "name": "bob" })
    );
    enter(&mut carol, "random").await;
    assert_eq!(carol.recv_event("member-joined").await["name"], "carol");

    bob.request("typing", json!({ "room": "general", "typing": true }))
        .await;
    let typing = alice.recv_until("typing").await;
    assert_eq!(
        (typing["name"].clone(), typing["typing"].clone()),
        (json!("bob"), json!(true))
    );

    alice
        .ack("say", json!({ "room": "general", "text": "  hello  " }))
        .await;
    for member in [&mut alice, &mut bob] {
        let line = member.recv_until("message").await;
        assert_eq!(line["text"], "hello", "trimmed");
        assert_eq!(line["name"], "alice");
    }
    carol.barrier().await;
    carol.assert_nothing_received().await;

    // A later member gets the history and the members.
    let mut dave = app.connect("dave").await;
    let entered = enter(&mut dave, "general").await;
    assert_eq!(entered["history"][0]["text"], "hello");
    let names: Vec<&str> = entered["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in ["alice", "bob", "dave"] {
        assert!(names.contains(&name), "{names:?}");
    }
}

#[tokio::test]
async fn mistakes_are_refused_with_their_reason() {
    let app = start().await;
    let mut alice = app.connect("alice").await;
    let refused = alice
        .request("say", json!({ "room": "general", "text": "hi" }))
        .await;
    assert_eq!(refused["payload"]["code"], "handler_error");
    assert_eq!(refused["payload"]["message"], "join `general` first");
    enter(&mut alice, "general").await;
    let refused = alice
        .request("say", json!({ "room": "general", "text": "   " }))
        .await;
    assert_eq!(refused["payload"]["message"], "a message needs some text");
    let refused = alice
        .request("private", json!({ "to": "ws:nobody", "text": "hi" }))
        .await;
    assert_eq!(
        refused["payload"]["message"],
        "no member `ws:nobody` is connected"
    );
    let refused = alice.request("left", json!("general")).await;
    assert_eq!(refused["payload"]["message"], "leave `general` first");
}

#[tokio::test]
async fn a_private_message_reaches_its_target_only_and_leaving_is_announced() {
    let app = start().await;
    let mut alice = app.connect("alice").await;
    let mut bob = app.connect("bob").await;
    let mut carol = app.connect("carol").await;
    enter(&mut alice, "general").await;
    enter(&mut bob, "general").await;
    let sent = alice
        .ack("private", json!({ "to": bob.id(), "text": "psst" }))
        .await;
    assert_eq!(sent, json!({ "to": bob.id(), "name": "bob" }));
    let private = bob.recv_until("private").await;
    assert_eq!(
        (private["name"].clone(), private["text"].clone()),
        (json!("alice"), json!("psst"))
    );
    carol.barrier().await;
    carol.assert_nothing_received().await;

    // Leaving by hand, then by disconnecting: the room hears both.
    // Alice's own, from her `entered`, then bob's.
    assert_eq!(alice.recv_until("member-joined").await["name"], "alice");
    assert_eq!(alice.recv_until("member-joined").await["name"], "bob");
    bob.leave("general").await;
    bob.ack("left", json!("general")).await;
    let left = alice.recv_until("member-left").await;
    assert_eq!(left["name"], "bob");
    enter(&mut bob, "general").await;
    let _ = alice.recv_until("member-joined").await;
    bob.close().await;
    let left = alice.recv_until("member-left").await;
    assert_eq!(left["name"], "bob");
}

#[tokio::test]
async fn the_page_its_assets_and_the_browser_client_are_served() {
    let app = start().await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/chat.js", "text/javascript"),
        ("/chat.css", "text/css"),
        ("/vania-ws.js", "text/javascript"),
        ("/metrics", "text/plain; version=0.0.4"),
    ] {
        let (status, headers) = get(app.addr, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains(&format!("content-type: {content_type}")),
            "{path}: {headers}"
        );
    }
}

/// `GET path`; the status and the response head.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, _) = response.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), head.to_owned())
}

#[tokio::test]
async fn made_up_rooms_cannot_grow_the_history_without_bound() {
    use example_chat::chat::{HISTORY_ROOMS, ROOMS};
    let app = start_with(ServerConfig::default().rate_limit(0, 0)).await;
    let mut alice = app.connect("alice").await;
    for i in 0..=HISTORY_ROOMS {
        let room = format!("room-{i}");
        alice.join(&room).await;
        alice
            .ack("say", json!({ "room": room, "text": format!("line {i}") }))
            .await;
        alice.leave(&room).await;
    }
    let rooms = alice.ack("rooms", Value::Null).await;
    let names: Vec<&str> = rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|room| room["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), ROOMS.len() + HISTORY_ROOMS, "{names:?}");
    // The quietest room's history went; the newest room's is there.
    assert!(
        !names.contains(&"room-0") && names.contains(&"room-100"),
        "{names:?}"
    );
    let entered = enter(&mut alice, &format!("room-{HISTORY_ROOMS}")).await;
    assert_eq!(
        entered["history"][0]["text"],
        format!("line {HISTORY_ROOMS}")
    );
}

#[tokio::test]
async fn metrics_are_for_this_machine_only() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use tower::ServiceExt;
    let engine = Server::builder(example_chat::router()).build().unwrap();
    let status_from = |peer: &str| {
        let mut request = axum::http::Request::get("/metrics")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        let app = example_chat::app(&engine);
        async move { app.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(status_from("127.0.0.1:40000").await, 200);
    assert_eq!(status_from("[::1]:40000").await, 200);
    assert_eq!(status_from("192.0.2.7:40000").await, 404);
    // The page itself is for everyone.
    let mut request = axum::http::Request::get("/").body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "192.0.2.7:40000".parse::<SocketAddr>().unwrap(),
    ));
    let status = example_chat::app(&engine)
        .oneshot(request)
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}
