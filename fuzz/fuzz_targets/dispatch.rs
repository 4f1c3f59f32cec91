//! Dispatch on arbitrary frames: a session with typed, raw and room handlers answers every
//! frame without panicking, every frame it queues is valid JSON, a frame with an id gets
//! exactly one answer with that id, and the connection is still usable afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;
use vania_ws_core::{Client, Hub, HubConfig, Outgoing, RouteTable, Router, SendError, Session};

#[derive(Deserialize)]
struct RoomMessage {
    room: String,
    message: Value,
}

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        Router::new()
            .websocket("/ws", |ev| {
                ev.on("message", |client: Client, payload: Value| async move {
                    client.emit("message", &payload)?;
                    Ok::<_, SendError>(payload)
                });
                ev.on("room-message", |client: Client, p: RoomMessage| async move {
                    client.to_room("room-message", &p.room, &p.message)
                });
                ev.on("opt", |_client: Client, p: Option<Vec<u32>>| async move { p });
                ev.on("fail", |_client: Client| async move { Err::<(), _>("no") });
            })
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let table = table();
        let hub = Hub::new(table.paths(), HubConfig::default());
        let (session, mut queue) = Session::open(&hub, table.get("/ws").unwrap().clone()).await.unwrap();
        while queue.try_recv().is_some() {}
        session.handle_text(text).await;
        let sent_id = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64));
        let mut answers = 0;
        while let Some(item) = queue.try_recv() {
            let Outgoing::Frame(frame) = item else { continue };
            let frame: Value = serde_json::from_str(frame.as_str()).expect("frames are json");
            if let (Some(id), Some(event)) = (frame.get("id"), frame["event"].as_str()) {
                assert!(event == "ack" || event == "error");
                assert_eq!(id.as_u64(), sent_id);
                answers += 1;
            }
        }
        assert!(answers <= 1);
        session
            .handle_text(r#"{"event":"message","payload":1,"id":7}"#)
            .await;
        let mut acked = false;
        while let Some(item) = queue.try_recv() {
            if let Outgoing::Frame(frame) = item {
                acked |= frame.as_str() == r#"{"event":"ack","id":7,"payload":1}"#;
            }
        }
        assert!(acked, "the session still works");
        session.close(vania_ws_core::DisconnectReason::TransportClosed).await;
        assert_eq!(hub.client_count(), 0);
        assert_eq!(hub.room_count("/ws"), 0);
    });
});
