//! In-memory dispatch tests: sessions, queues and the hub, with no network.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use vania_ws_core::adapter::{Adapter, PublishError, Target};
use vania_ws_core::outbox::{OutboxReceiver, Outgoing};
use vania_ws_core::router::RouteTable;
use vania_ws_core::{Client, Frame, Hub, HubConfig, Router, SendError, Session};

fn table() -> RouteTable {
    Router::new()
        .websocket("/ws", |ev| {
            ev.on("to-room", |client: Client, room: String| async move {
                client.to_room("news", &room, &json!({"big": "x".repeat(1000)}))
            });
            ev.on("all", |client: Client| async move {
                client.broadcast("all", &json!(1))
            });
            ev.on("echo", |client: Client, v: Value| async move {
                client.emit("echo", &v)?;
                Ok::<_, SendError>(v)
            });
        })
        .websocket("/other", |_| {})
        .build()
        .unwrap()
}

async fn open(hub: &Arc<Hub>, table: &RouteTable, path: &str) -> (Session, OutboxReceiver) {
    let (session, mut rx) = Session::open(hub, table.get(path).unwrap().clone())
        .await
        .unwrap();
    let first = drain(&mut rx);
    assert!(first[0].as_str().starts_with(r#"{"event":"connected""#));
    (session, rx)
}

fn drain(rx: &mut OutboxReceiver) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(item) = rx.try_recv() {
        match item {
            Outgoing::Frame(frame) => frames.push(frame),
            other => panic!("unexpected {other:?}"),
        }
    }
    frames
}

#[tokio::test]
async fn a_room_payload_is_encoded_once_and_shared_by_every_recipient() {
    let table = table();
    let hub = Hub::new(table.paths(), HubConfig::default());
    let mut members = Vec::new();
    for _ in 0..5 {
        let (session, rx) = open(&hub, &table, "/ws").await;
        session
            .handle_text(r#"{"event":"join-room","room":"r"}"#)
            .await;
        members.push((session, rx));
    }
    members[0]
        .0
        .handle_text(r#"{"event":"to-room","payload":"r"}"#)
        .await;
    let frames: Vec<Frame> = members
        .iter_mut()
        .map(|(_, rx)| {
            let mut frames = drain(rx);
            assert_eq!(frames.len(), 1);
            frames.remove(0)
        })
        .collect();
    let first = frames[0].as_str().as_ptr();
    for frame in &frames {
        assert_eq!(
            frame.as_str().as_ptr(),
            first,
            "every recipient shares one buffer"
        );
    }
}

#[tokio::test]
async fn broadcast_skips_the_sender_and_reaches_other_routes() {
    let table = table();
    let hub = Hub::new(table.paths(), HubConfig::default());
    let (a, mut ra) = open(&hub, &table, "/ws").await;
    let (_b, mut rb) = open(&hub, &table, "/other").await;
    a.handle_text(r#"{"event":"all"}"#).await;
    assert!(drain(&mut ra).is_empty());
    assert_eq!(drain(&mut rb)[0].as_str(), r#"{"event":"all","payload":1}"#);
}

#[tokio::test]
async fn close_frees_the_client_and_its_rooms() {
    let table = table();
    let hub = Hub::new(table.paths(), HubConfig::default());
    let (a, _ra) = open(&hub, &table, "/ws").await;
    a.handle_text(r#"{"event":"join-room","room":"r"}"#).await;
    assert_eq!((hub.client_count(), hub.room_count("/ws")), (1, 1));
    a.close(vania_ws_core::DisconnectReason::TransportClosed)
        .await;
    assert_eq!((hub.client_count(), hub.room_count("/ws")), (0, 0));
}

#[tokio::test]
async fn a_full_queue_closes_the_slow_client_only() {
    let table = table();
    let hub = Hub::new(table.paths(), HubConfig::default().send_queue_bytes(4096));
    let (fast, mut fast_rx) = open(&hub, &table, "/ws").await;
    let (slow, mut slow_rx) = open(&hub, &table, "/ws").await;
    for session in [&fast, &slow] {
        session
            .handle_text(r#"{"event":"join-room","room":"r"}"#)
            .await;
    }
    for _ in 0..10 {
        fast.handle_text(r#"{"event":"to-room","payload":"r"}"#)
            .await;
        assert_eq!(drain(&mut fast_rx).len(), 1, "the fast client keeps up");
    }
    let mut queued = 0;
    let mut closed = None;
    while let Some(item) = slow_rx.try_recv() {
        match item {
            Outgoing::Frame(_) => queued += 1,
            Outgoing::Close(code, _) => closed = Some(code),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(queued < 10, "the slow client's queue is bounded: {queued}");
    assert_eq!(closed, Some(vania_ws_core::CloseCode::POLICY));
}

struct Recording(Mutex<Vec<String>>);

impl Recording {
    fn record(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
}

impl Adapter for Recording {
    fn publish(&self, target: Target<'_>, _frame: &Frame) -> Result<(), PublishError> {
        self.record(format!("{target:?}"));
        Ok(())
    }

    fn client_connected(&self, _client_id: &str) {
        self.record("connected".into());
    }

    fn client_disconnected(&self, _client_id: &str) {
        self.record("disconnected".into());
    }

    fn room_opened(&self, route: &str, room: &str) {
        self.record(format!("opened {route} {room}"));
    }

    fn room_closed(&self, route: &str, room: &str) {
        self.record(format!("closed {route} {room}"));
    }
}

#[tokio::test]
async fn sends_that_may_leave_the_process_go_through_the_adapter_once_per_call() {
    let table = table();
    let adapter = Arc::new(Recording(Mutex::new(Vec::new())));
    let hub = Hub::with_adapter(table.paths(), HubConfig::default(), adapter.clone());
    let (a, mut ra) = open(&hub, &table, "/ws").await;
    let (b, _rb) = open(&hub, &table, "/ws").await;
    a.handle_text(r#"{"event":"join-room","room":"r"}"#).await;
    b.handle_text(r#"{"event":"join-room","room":"r"}"#).await;
    a.handle_text(r#"{"event":"to-room","payload":"r"}"#).await;
    a.handle_text(r#"{"event":"all"}"#).await;
    a.handle_text(r#"{"event":"echo","payload":1}"#).await;
    assert_eq!(drain(&mut ra).len(), 2, "to-room and echo");
    // A client held here is not looked for elsewhere; one that is not, is.
    hub.send_event(Target::Client(b.client().id()), "e", &1)
        .unwrap();
    hub.send_event(Target::Client("ws:elsewhere"), "e", &1)
        .unwrap();
    a.handle_text(r#"{"event":"left-room","room":"r"}"#).await;
    drop(b);
    let id = a.client().id().to_owned();
    assert_eq!(
        *adapter.0.lock().unwrap(),
        vec![
            "connected".to_owned(),
            "connected".to_owned(),
            "opened /ws r".to_owned(),
            r#"Room { route: "/ws", room: "r" }"#.to_owned(),
            format!("All {{ except: Some({id:?}) }}"),
            r#"Client("ws:elsewhere")"#.to_owned(),
            "closed /ws r".to_owned(),
            "disconnected".to_owned(),
        ],
        "emit and a local client stay local; to_room and broadcast go through the adapter \
         once each; a room opens with its first member and closes with its last"
    );
}

#[tokio::test]
async fn a_session_on_a_route_of_another_table_is_an_error() {
    let ours = Router::new().websocket("/ws", |_| {}).build().unwrap();
    let theirs = Router::new().websocket("/other", |_| {}).build().unwrap();
    let hub = Hub::new(ours.paths(), HubConfig::default());
    let err = Session::open(&hub, theirs.get("/other").unwrap().clone())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no route `/other` in this server's table (its routes: /ws)"
    );
    assert_eq!(hub.client_count(), 0);
}

#[tokio::test]
async fn a_request_from_the_server_is_forgotten_when_its_future_is_dropped() {
    let table = table();
    let hub = Hub::new(table.paths(), HubConfig::default());
    let (session, mut queue) = Session::open(&hub, table.get("/ws").unwrap().clone())
        .await
        .unwrap();
    let asked = session
        .client()
        .emit_with_ack::<_, Value>("question", &json!(1));
    // Sent at the call, not at the first poll.
    let frames: Vec<String> = std::iter::from_fn(|| queue.try_recv())
        .filter_map(|item| match item {
            Outgoing::Frame(frame) => Some(frame.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(
        frames.last().unwrap(),
        r#"{"event":"question","id":1,"payload":1}"#
    );
    assert!(session.awaits_answer());
    drop(asked);
    assert!(
        !session.awaits_answer(),
        "an abandoned request leaves nothing behind"
    );

    // Once the connection ended, a request fails at once.
    session.end_requests();
    let err = session
        .client()
        .emit_with_ack::<_, Value>("question", &json!(2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, vania_ws_core::error::AckError::Disconnected),
        "{err}"
    );
}
