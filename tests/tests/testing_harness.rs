//! The test harness apps use (`vania_ws::testing`): extra headers, skipping frames, and
//! failures that name the test's own line and what arrived instead.

use serde_json::{Value, json};
use vania_ws::testing::{TestServer, assert_refused};
use vania_ws::{Client, CloseCode, Handshake, Rejection, Router, SendError};

fn router() -> Router {
    Router::new()
        .websocket("/ws", |ev| {
            ev.on("three", |client: Client| async move {
                client.emit("a", &1)?;
                client.emit("b", &2)?;
                client.emit("c", &3)?;
                Ok::<_, SendError>(())
            });
            ev.on("one-then-close", |client: Client| async move {
                client.emit("a", &1).map_err(|err| err.to_string())?;
                client
                    .close(CloseCode::NORMAL, "done")
                    .map_err(|err| err.to_string())
            });
        })
        .websocket("/admins", |_| {})
        .guard("/admins", |request: Handshake| async move {
            let bearer = request.header("authorization") == Some("Bearer s3cret");
            if bearer {
                Ok(request)
            } else {
                Err(Rejection::unauthorized("a bearer token is needed"))
            }
        })
}

/// Runs `test` in a task of its own and returns its panic message.
async fn panic_message(test: impl Future<Output = ()> + Send + 'static) -> String {
    let panic = tokio::spawn(test)
        .await
        .expect_err("the assertion fails")
        .into_panic();
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic
            .downcast::<&str>()
            .map(|message| message.to_string())
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn connect_with_sends_the_headers_given() {
    let server = TestServer::start(router()).await;
    let admin = server
        .connect_with("/admins", &[("authorization", "Bearer s3cret")])
        .await;
    assert!(admin.id().starts_with("ws:"));
    assert_refused(server.url("/admins"), 401).await;
}

#[tokio::test]
async fn recv_until_skips_other_events() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    client.ack("three", Value::Null).await;
    assert_eq!(client.recv_until("c").await, json!(3));
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn a_failed_wait_names_the_event_what_came_instead_and_the_test_line() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    client.ack("three", Value::Null).await;
    let message = panic_message(async move {
        client.recv_event("c").await;
    })
    .await;
    // `tests/tests/testing_harness.rs:LINE:COL: …`, the line of the `recv_event` above.
    assert!(
        message.contains(&format!("{}:{}:", file!(), line!() - 5)),
        "{message}"
    );
    assert!(message.contains("expected `c`, got"), "{message}");
    assert!(message.contains(r#""event":"a""#), "{message}");
}

#[tokio::test]
async fn recv_until_reports_the_frames_it_skipped_when_the_connection_ends() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    client.emit("one-then-close", Value::Null).await;
    let message = panic_message(async move {
        client.recv_until("z").await;
    })
    .await;
    assert!(
        message.contains("expected `z`, the connection gave"),
        "{message}"
    );
    assert!(message.contains(r#""event":"a""#), "{message}");
}
