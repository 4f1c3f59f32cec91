use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vania_ws::ServerConfig;
use vania_ws::testing::{TestServer, assert_refused};

async fn demo() -> TestServer {
    start(vania_ws_tests::app::router()).await
}

fn is_session_id(id: &str) -> bool {
    id.strip_prefix("ws:")
        .is_some_and(|uuid| uuid.len() == 36 && uuid.chars().filter(|c| *c == '-').count() == 4)
}

#[tokio::test]
async fn every_registered_path_upgrades_and_sends_connected_first_with_a_fresh_id() {
    let server = demo().await;
    let mut ids = Vec::new();
    for path in ["/ws", "/clients", "/admins", "/ws?token=abc&x=1"] {
        let client = server.connect(path).await;
        assert!(is_session_id(client.id()), "{}", client.id());
        ids.push(client.id().to_owned());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids are unique: {ids:?}");
}

#[tokio::test]
async fn unknown_paths_answer_404_without_a_socket() {
    let server = demo().await;
    for path in ["/", "/nope", "/ws/", "/WS", "/ws/extra"] {
        assert_refused(&server.url(path), 404).await;
    }
    assert_eq!(server.handle().hub().client_count(), 0);
}

#[tokio::test]
async fn websocket_disabled_answers_404_everywhere() {
    let server = start_with(
        vania_ws_tests::app::router(),
        ServerConfig::default().websocket(false),
    )
    .await;
    assert_refused(&server.url("/ws"), 404).await;
}

#[tokio::test]
async fn a_request_gets_exactly_one_ack_after_what_the_handler_emitted() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    let payload = json!({"text": "hi", "n": [1, 2, {"deep": null}]});
    let reply = a.request("message", payload.clone()).await;
    assert_eq!(reply, json!({"event": "ack", "id": 1, "payload": payload}));
    // The emitted frame arrived before the ack.
    assert_eq!(
        a.take_pending(),
        vec![json!({"event": "message", "payload": payload})]
    );
    a.assert_nothing_received().await;
}

#[tokio::test]
async fn a_frame_without_id_gets_no_ack() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    a.emit("message", json!("plain string")).await;
    assert_eq!(a.recv_event("message").await, json!("plain string"));
    a.assert_nothing_received().await;
}

#[tokio::test]
async fn payloads_may_be_any_json_and_default_to_null() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    for payload in [
        json!("text"),
        json!(42),
        json!([1, "2"]),
        json!(true),
        json!({}),
    ] {
        assert_eq!(a.ack("message", payload.clone()).await, payload);
        assert_eq!(a.recv_event("message").await, payload);
    }
    let reply = a.request_frame(json!({"event": "message"})).await;
    assert_eq!(reply["payload"], Value::Null);
    assert_eq!(a.recv_event("message").await, Value::Null);
}

#[tokio::test]
async fn ids_are_echoed_whatever_their_size_and_unknown_fields_are_ignored() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    a.send_text(r#"{"event":"message","payload":1,"id":18446744073709551615,"extra":[1]}"#)
        .await;
    assert_eq!(a.recv_event("message").await, json!(1));
    let ack = a.recv().await;
    assert_eq!(ack["id"], json!(u64::MAX));
    assert_eq!(ack["event"], "ack");
    a.send_text(r#"{"event":"message","id":0}"#).await;
    a.recv_event("message").await;
    assert_eq!(
        a.recv().await,
        json!({"event": "ack", "id": 0, "payload": null})
    );
}

#[tokio::test]
async fn an_id_that_is_not_an_unsigned_integer_is_refused_and_the_handler_does_not_run() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    for id in ["null", "\"7\"", "-1", "1.5", "{}", "[]", "true"] {
        a.send_text(format!(r#"{{"event":"message","payload":"ran","id":{id}}}"#))
            .await;
        let error = a.recv().await;
        assert_eq!(
            error,
            json!({"event": "error", "payload": {
                "code": "invalid_envelope",
                "message": "`id` must be an unsigned integer"
            }}),
            "id {id}"
        );
    }
    // Nothing else arrived: no `message` echo, no ack.
    a.assert_nothing_received().await;
}

#[tokio::test]
async fn a_client_ack_that_matches_no_server_request_is_dropped_silently() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    a.send_text(r#"{"event":"ack","id":7,"payload":{"ok":true}}"#).await;
    a.send_text(r#"{"event":"ack","payload":null}"#).await;
    a.assert_nothing_received().await;
}

#[tokio::test]
async fn stringified_json_payloads_are_parsed_for_typed_handlers() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    a.join("r").await;
    let stringified = json!({"room": "r", "message": "hello"}).to_string();
    assert_eq!(a.ack("room-message", json!(stringified)).await, Value::Null);
    assert_eq!(a.recv_event("room-message").await, json!("hello"));
    // An untyped handler keeps the string as it is.
    assert_eq!(
        a.ack("message", json!("{\"a\":1}")).await,
        json!("{\"a\":1}")
    );
}

async fn error_of(client: &mut vania_ws::testing::TestClient, text: &str) -> Value {
    client.send_text(text).await;
    let frame = client.recv().await;
    assert_eq!(frame["event"], "error", "{text} -> {frame}");
    assert!(
        frame["payload"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    frame
}

#[tokio::test]
async fn each_error_code_and_the_connection_stays_usable() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    let cases = [
        ("not json", "invalid_json"),
        ("{\"event\":", "invalid_json"),
        ("", "invalid_json"),
        ("[]", "invalid_envelope"),
        ("\"message\"", "invalid_envelope"),
        ("null", "invalid_envelope"),
        (r#"{"event":5}"#, "invalid_envelope"),
        (r#"{"payload":"no event"}"#, "invalid_envelope"),
        (r#"{"event":"message","id":-1}"#, "invalid_envelope"),
        (r#"{"event":"message","id":"7"}"#, "invalid_envelope"),
        (r#"{"event":"message","id":1.5}"#, "invalid_envelope"),
        (r#"{"event":"nope"}"#, "unknown_event"),
        (r#"{"event":"connect"}"#, "unknown_event"),
        (
            r#"{"event":"room-message","payload":{"room":"r"}}"#,
            "invalid_payload",
        ),
        (r#"{"event":"join-room"}"#, "invalid_room"),
        (r#"{"event":"fail"}"#, "handler_error"),
        (r#"{"event":"panic"}"#, "internal"),
    ];
    for (text, code) in cases {
        let frame = error_of(&mut a, text).await;
        assert_eq!(frame["payload"]["code"], code, "{text} -> {frame}");
        assert!(frame.get("id").is_none(), "no id was sent: {frame}");
    }
    a.send_message(Message::binary(vec![1u8, 2, 3])).await;
    let frame = a.recv().await;
    assert_eq!(frame["payload"]["code"], "unsupported_frame");
    assert_eq!(
        a.ack("message", json!("still here")).await,
        json!("still here")
    );
}

#[tokio::test]
async fn errors_carry_the_request_id() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    let reply = a.request("nope", Value::Null).await;
    assert_eq!(reply["event"], "error");
    assert_eq!(reply["payload"]["code"], "unknown_event");
    let reply = a.request_frame(json!({"id": 99, "payload": 1})).await;
    assert_eq!(reply["payload"]["code"], "invalid_envelope");
    let reply = a.request("fail", Value::Null).await;
    assert_eq!(
        reply["payload"],
        json!({"code": "handler_error", "message": "requested failure"})
    );
    let reply = a.request("panic", Value::Null).await;
    assert_eq!(reply["payload"]["code"], "internal");
    a.assert_nothing_received().await;
}

#[tokio::test]
async fn invalid_payload_errors_name_the_field() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    let reply = a.request("room-message", json!({"message": "m"})).await;
    assert_eq!(reply["payload"]["code"], "invalid_payload");
    assert_eq!(reply["payload"]["message"], "missing field `room`");
    let reply = a.request("direct", json!({"to": 5, "message": "m"})).await;
    assert_eq!(reply["payload"]["code"], "invalid_payload");
    let message = reply["payload"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("to: invalid type: integer `5`"),
        "{message}"
    );
    let reply = a.request("direct", json!("not an object")).await;
    assert_eq!(reply["payload"]["code"], "invalid_payload");
    let mut admin = server.connect("/admins").await;
    let reply = admin.request("admin-message", json!({"room": "x"})).await;
    assert_eq!(reply["payload"]["message"], "missing field `text`");
}

#[tokio::test]
async fn a_panicking_handler_leaves_the_server_and_other_clients_running() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    let mut b = server.connect("/ws").await;
    for _ in 0..20 {
        let reply = a.request("panic", Value::Null).await;
        assert_eq!(reply["payload"]["code"], "internal");
    }
    assert_eq!(b.ack("message", json!(1)).await, json!(1));
    assert_eq!(a.ack("message", json!(2)).await, json!(2));
    let fresh = server.connect("/ws").await;
    assert!(is_session_id(fresh.id()));
}

#[tokio::test]
async fn room_frames_validate_the_room() {
    let server = demo().await;
    let mut a = server.connect("/ws").await;
    let long = "x".repeat(256);
    let bad = [
        json!({"event": "join-room"}),
        json!({"event": "join-room", "room": 5}),
        json!({"event": "join-room", "room": ""}),
        json!({"event": "join-room", "room": long}),
        json!({"event": "join-room", "room": null}),
        json!({"event": "left-room", "room": ["r"]}),
        json!({"event": "left-room"}),
        json!({"event": "join-room", "payload": {"room": "r"}}),
    ];
    for frame in bad {
        let reply = a.request_frame(frame.clone()).await;
        assert_eq!(
            reply["payload"]["code"], "invalid_room",
            "{frame} -> {reply}"
        );
    }
    a.join(&"y".repeat(255)).await;
    a.join("ünïcödé 🚀").await;
    let rooms = a.ack("whoami", Value::Null).await["rooms"].clone();
    assert_eq!(rooms, json!(["y".repeat(255), "ünïcödé 🚀"]));
}

#[tokio::test]
async fn a_thousand_bad_frames_of_mixed_kinds_each_get_their_error() {
    // A flood by design: the rate limit (tested on its own) is off here, and the size limit
    // is raised for the 100 KB nested-brackets frame. The client reads nothing until it has
    // sent all 1,000 frames, and the 1.1 MB of error frames it is owed by then are held by
    // the server (the send-queue bound covers the codec's buffer too): room for them.
    let server = start_with(
        vania_ws_tests::app::router(),
        ServerConfig::default()
            .rate_limit(0, 0)
            .max_message_bytes(256 * 1024)
            .send_queue_bytes(4 << 20),
    )
    .await;
    let mut a = server.connect("/ws").await;
    let huge_event = format!(r#"{{"event":"{}"}}"#, "e".repeat(10 * 1024));
    let nested = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let kinds: [(Message, &str); 10] = [
        (Message::text(nested), "invalid_envelope"),
        (Message::text("[".repeat(50_000)), "invalid_json"),
        (Message::text("{{{"), "invalid_json"),
        (Message::text("[]"), "invalid_envelope"),
        (Message::text(r#"{"event":5}"#), "invalid_envelope"),
        (Message::text(huge_event), "unknown_event"),
        (Message::binary(vec![0u8; 16]), "unsupported_frame"),
        (
            Message::text(r#"{"event":"join-room","room":7}"#),
            "invalid_room",
        ),
        (
            Message::text(r#"{"event":"direct","payload":[]}"#),
            "invalid_payload",
        ),
        (Message::text(r#"{"event":"fail"}"#), "handler_error"),
    ];
    let mut expected = Vec::new();
    for i in 0..1000 {
        let (message, code) = &kinds[i % kinds.len()];
        a.send_message(message.clone()).await;
        expected.push(*code);
    }
    for (i, code) in expected.iter().enumerate() {
        let frame = a.recv().await;
        assert_eq!(frame["event"], "error", "frame {i}: {frame}");
        assert_eq!(frame["payload"]["code"], *code, "frame {i}: {frame}");
    }
    a.assert_nothing_received().await;
    assert_eq!(a.ack("message", json!("ok")).await, json!("ok"));
}

#[tokio::test]
async fn text_frames_are_json_objects_with_event_and_payload() {
    let server = demo().await;
    let url = server.url("/ws");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let Some(Ok(Message::Text(first))) = ws.next().await else {
        panic!("expected a text frame")
    };
    let first: serde_json::Map<String, Value> = serde_json::from_str(&first).unwrap();
    let mut keys: Vec<_> = first.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["event", "payload"]);
}
