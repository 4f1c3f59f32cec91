//! The API refuses mistakes loudly: close codes a client must never see, sends to a route
//! that does not exist, over real sockets.

use serde_json::{Value, json};
use vania_ws::testing::TestServer;
use vania_ws::{Client, CloseCode, Router};

/// 130 bytes: more than a close frame's 123 bytes of reason.
const LONG_REASON: &str = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789";

fn router() -> Router {
    Router::new().websocket("/ws", |ev| {
        // Closes with the code the client asks for, checked at run time.
        ev.on("kick", |client: Client, code: u16| async move {
            let code = CloseCode::try_from(code).map_err(|err| err.to_string())?;
            client.close(code, "kicked").map_err(|err| err.to_string())
        });
        // An application code, checked at compile time, with too long a reason.
        ev.on("kick-verbosely", |client: Client| async move {
            client
                .close(CloseCode::app::<4001>(), LONG_REASON)
                .map_err(|err| err.to_string())
        });
    })
}

#[tokio::test]
async fn a_handler_closes_with_an_application_code_and_reason() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    client.emit("kick", json!(4001)).await;
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(4001));
    assert_eq!(closed.reason, "kicked");
}

#[tokio::test]
async fn codes_a_client_must_never_see_cannot_be_sent() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    // 1005, 1006 and 1015 mean "no close frame was seen"; 1010 is the client's; 1004 and
    // 999 are not defined.
    for code in [1005, 1006, 1015, 1010, 1004, 999] {
        let reply = client.request("kick", json!(code)).await;
        assert_eq!(reply["event"], "error", "kick {code}: {reply}");
        assert_eq!(reply["payload"]["code"], "handler_error");
        let message = reply["payload"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("close code {code} cannot be sent")),
            "{message}"
        );
    }
    // The connection is still open and served.
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn a_close_reason_that_does_not_fit_is_an_error_and_closes_nothing() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    let reply = client.request("kick-verbosely", Value::Null).await;
    assert_eq!(reply["payload"]["code"], "handler_error", "{reply}");
    assert_eq!(
        reply["payload"]["message"],
        "close reason is 130 bytes; a close frame holds at most 123"
    );
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn a_send_to_a_route_that_does_not_exist_is_an_error() {
    let server = TestServer::start(router()).await;
    let mut member = server.connect("/ws").await;
    member.join("lobby").await;

    let err = server.handle().route("/wss").unwrap_err();
    assert_eq!(err.path(), "/wss");
    assert_eq!(
        err.to_string(),
        "no route `/wss` in this server's table (its routes: /ws)"
    );
    // `?` turns it into a `SendError`, for handlers and REST endpoints.
    let as_send_error = vania_ws::SendError::from(err);
    assert!(matches!(
        as_send_error,
        vania_ws::SendError::UnknownRoute(_)
    ));

    // The checked route takes the arguments in `Client::to_room`'s order.
    let ws = server.handle().route("/ws").unwrap();
    assert_eq!(ws.path(), "/ws");
    assert_eq!(ws.room_members("lobby"), 1);
    assert_eq!(ws.to_room("note", "lobby", &json!("hi")).unwrap(), 1);
    assert_eq!(member.recv_event("note").await, json!("hi"));
}
