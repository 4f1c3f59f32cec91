//! Requests from the server (PROTOCOL.md section 4): `Client::emit_with_ack` sends an event
//! with an `id` from the server's own counter and resolves with the client's `ack`.

use serde_json::{Value, json};
use std::time::Duration;
use vania_ws::error::AckError;
use vania_ws::testing::TestServer;
use vania_ws::{Client, Router, SendError};

#[path = "suites/hold.rs"]
mod hold;

fn router() -> Router {
    Router::new().websocket("/ws", |ev| {
        // Asks its own client, and replies with the answer: the connection must read the
        // `ack` while this handler waits.
        ev.on("confirm", |client: Client, question: Value| async move {
            client
                .emit_with_ack::<_, Value>("are-you-sure", &question)
                .await
                .map_err(|err| err.to_string())
        });
        ev.on("confirm-quickly", |client: Client| async move {
            client
                .emit_with_ack_timeout::<_, bool>(
                    "are-you-sure",
                    &"quick",
                    Duration::from_millis(100),
                )
                .await
                .map_err(|err| err.to_string())
        });
        ev.on("message", |client: Client, payload: Value| async move {
            client.emit("message", &payload)?;
            Ok::<_, SendError>(payload)
        });
    })
}

#[tokio::test]
async fn a_handler_awaits_its_own_clients_answer() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    client
        .send(json!({"event": "confirm", "payload": "delete?", "id": 7}))
        .await;
    let request = client.recv().await;
    assert_eq!(request["event"], "are-you-sure");
    assert_eq!(request["payload"], "delete?");
    let id = request["id"]
        .as_u64()
        .expect("a request carries an unsigned id");
    // A frame sent while the handler waits is held, and handled after it, in order.
    client
        .send(json!({"event": "message", "payload": "next", "id": 8}))
        .await;
    client
        .send(json!({"event": "ack", "id": id, "payload": {"yes": true}}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"event": "ack", "id": 7, "payload": {"yes": true}})
    );
    assert_eq!(
        client.recv().await,
        json!({"event": "message", "payload": "next"})
    );
    assert_eq!(
        client.recv().await,
        json!({"event": "ack", "id": 8, "payload": "next"})
    );
    // Ids come from the server's own counter: the next request gets the next one.
    client
        .send(json!({"event": "confirm", "payload": "again?", "id": 1}))
        .await;
    let second = client.recv().await;
    assert_eq!(second["id"], id + 1, "{second}");
    client
        .send(json!({"event": "ack", "id": id + 1, "payload": false}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"event": "ack", "id": 1, "payload": false})
    );
}

#[tokio::test]
async fn no_answer_in_time_fails_the_request_and_a_late_answer_is_dropped() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    client
        .send(json!({"event": "confirm-quickly", "id": 1}))
        .await;
    let request = client.recv().await;
    assert_eq!(request["event"], "are-you-sure");
    let reply = client.recv().await;
    assert_eq!(reply["event"], "error", "{reply}");
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["payload"]["code"], "handler_error");
    assert_eq!(reply["payload"]["message"], "no answer within 100ms");
    // The late answer, and one that matches nothing, get no error frame.
    client
        .send(json!({"event": "ack", "id": request["id"], "payload": true}))
        .await;
    client
        .send(json!({"event": "ack", "id": 999_999, "payload": true}))
        .await;
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn a_request_from_outside_any_handler_resolves_typed_or_fails_to_decode() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    let handle = server.handle().client(client.id()).unwrap();

    let asked = tokio::spawn({
        let handle = handle.clone();
        async move { handle.emit_with_ack::<_, u32>("how-many", &()).await }
    });
    let request = client.recv().await;
    assert_eq!(request["payload"], Value::Null);
    client
        .send(json!({"event": "ack", "id": request["id"], "payload": 3}))
        .await;
    assert_eq!(asked.await.unwrap().unwrap(), 3);

    let asked = tokio::spawn({
        let handle = handle.clone();
        async move { handle.emit_with_ack::<_, u32>("how-many", &()).await }
    });
    let request = client.recv().await;
    client
        .send(json!({"event": "ack", "id": request["id"], "payload": "three"}))
        .await;
    let err = asked.await.unwrap().unwrap_err();
    assert!(matches!(err, AckError::Decode(_)), "{err}");
}

#[tokio::test]
async fn a_client_that_leaves_fails_its_pending_requests() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    let handle = server.handle().client(client.id()).unwrap();
    let asked =
        tokio::spawn(async move { handle.emit_with_ack::<_, Value>("still-there", &()).await });
    assert_eq!(client.recv().await["event"], "still-there");
    client.close().await;
    let err = tokio::time::timeout(Duration::from_secs(5), asked)
        .await
        .expect("the request fails as the client leaves, not at its timeout")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, AckError::Disconnected), "{err}");
}

#[tokio::test]
async fn while_a_handler_waits_the_connection_holds_at_most_32_frames() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    client
        .send(json!({"event": "confirm-quickly", "id": 1}))
        .await;
    let request = client.recv().await;
    assert_eq!(request["event"], "are-you-sure");
    // The request times out; nothing is lost or reordered.
    hold::overflow_then_answer(&mut client, &request).await;
    let reply = client.recv().await;
    assert_eq!(reply["id"], 1);
    assert_eq!(
        reply["payload"]["message"], "no answer within 100ms",
        "{reply}"
    );
    for id in 2..42 {
        assert_eq!(client.recv_event("message").await, json!(id));
        assert_eq!(
            client.recv().await,
            json!({"event": "ack", "id": id, "payload": id})
        );
    }
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn a_frame_refused_by_the_rate_limit_while_a_handler_waits_is_answered_in_its_turn() {
    // A burst of two and a refill far slower than the test: the third frame is refused. The
    // handler waits a second, so the frames after it arrive while it waits.
    let config = vania_ws::ServerConfig::default()
        .rate_limit(1, 2)
        .ack_timeout(Duration::from_secs(1));
    let server = TestServer::start_with(router(), config).await;
    let mut client = server.connect("/ws").await;
    client.send(json!({"event": "confirm", "id": 1})).await;
    assert_eq!(client.recv().await["event"], "are-you-sure");
    // Read ahead while the handler waits: the second is held, the third refused. Its
    // refusal comes after the replies to the frames before it, as a reply would.
    client
        .send(json!({"event": "message", "payload": 2, "id": 2}))
        .await;
    client
        .send(json!({"event": "message", "payload": 3, "id": 3}))
        .await;
    let timed_out = client.recv().await;
    assert_eq!(timed_out["id"], 1, "{timed_out}");
    assert_eq!(timed_out["payload"]["code"], "handler_error", "{timed_out}");
    assert_eq!(client.recv_event("message").await, json!(2));
    assert_eq!(
        client.recv().await,
        json!({"event": "ack", "id": 2, "payload": 2})
    );
    let refused = client.recv().await;
    assert_eq!(refused["id"], 3, "{refused}");
    assert_eq!(refused["payload"]["code"], "rate_limited", "{refused}");
}

#[tokio::test]
async fn an_ack_over_the_rate_limit_still_reaches_its_request() {
    let config = vania_ws::ServerConfig::default().rate_limit(1, 2);
    let server = TestServer::start_with(router(), config).await;
    let mut client = server.connect("/ws").await;
    client.send(json!({"event": "confirm", "id": 1})).await;
    let request = client.recv().await;
    assert_eq!(request["event"], "are-you-sure");
    client
        .send(json!({"event": "message", "payload": 2, "id": 2}))
        .await;
    // Over the budget, but an answer: the handler gets it, and no error frame comes.
    client
        .send(json!({"event": "ack", "id": request["id"], "payload": "yes"}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"event": "ack", "id": 1, "payload": "yes"})
    );
    assert_eq!(client.recv_event("message").await, json!(2));
    assert_eq!(
        client.recv().await,
        json!({"event": "ack", "id": 2, "payload": 2})
    );
}

/// Where handlers report, for what a client cannot see once it has left.
struct Reports(tokio::sync::mpsc::UnboundedSender<String>);

fn reporting_router(reports: tokio::sync::mpsc::UnboundedSender<String>) -> Router {
    Router::new()
        .state(Reports(reports))
        .websocket("/ws", |ev| {
            ev.on(
                "confirm",
                |client: Client, reports: vania_ws::State<Reports>| async move {
                    let answer = client.emit_with_ack::<_, Value>("are-you-sure", &()).await;
                    let Reports(tx) = &*reports;
                    let _ = tx.send(match answer {
                        Ok(answer) => format!("answered {answer}"),
                        Err(err) => format!("failed: {err}"),
                    });
                },
            );
            ev.on(
                "record",
                |text: String, reports: vania_ws::State<Reports>| async move {
                    let Reports(tx) = &*reports;
                    let _ = tx.send(format!("recorded {text}"));
                },
            );
        })
}

async fn next_report(reports: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .expect("a handler reported in time")
        .expect("the server is running")
}

#[tokio::test]
async fn a_client_that_closes_while_a_handler_awaits_it_fails_the_request_and_loses_no_frame() {
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let server = TestServer::start(reporting_router(tx)).await;
    let mut client = server.connect("/ws").await;
    client.emit("confirm", Value::Null).await;
    assert_eq!(client.recv().await["event"], "are-you-sure");
    // Read ahead and held behind the waiting handler, then the client leaves.
    client.emit("record", json!("after")).await;
    client.close().await;
    // The handler finishes (it is not dropped mid-await), then the held frame runs.
    assert_eq!(
        next_report(&mut reports).await,
        "failed: the client disconnected before answering"
    );
    assert_eq!(next_report(&mut reports).await, "recorded after");
}

#[tokio::test]
async fn a_draining_server_still_reads_the_answer_a_handler_waits_for() {
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    // Timeouts far beyond the test's own: only reading the answer lets the drain end.
    let config = vania_ws::ServerConfig::default()
        .ack_timeout(Duration::from_secs(120))
        .shutdown_timeout(Duration::from_secs(120));
    let server = TestServer::start_with(reporting_router(tx), config).await;
    let url = server.url("/ws");
    let mut client = server.connect("/ws").await;
    client.emit("confirm", Value::Null).await;
    let request = client.recv().await;
    assert_eq!(request["event"], "are-you-sure");
    let stopping = tokio::spawn(server.shutdown());
    // The drain has begun once new connections are refused (the server stopped accepting).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio_tungstenite::connect_async(url.as_str()).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the drain never began"
        );
        tokio::task::yield_now().await;
    }
    client
        .send(json!({"event": "ack", "id": request["id"], "payload": "yes"}))
        .await;
    assert_eq!(next_report(&mut reports).await, r#"answered "yes""#);
    assert_eq!(client.closed().await.code, Some(1001));
    stopping.await.unwrap();
}
