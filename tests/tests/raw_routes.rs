//! Raw routes (`on_text` / `on_binary`) and the any-path route `"*"`: the machinery the
//! Autobahn echo server runs on.
//!
//! The suite (`suites/raw_routes.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

front_end::on_both_front_ends!("suites/raw_routes.rs");

#[tokio::test]
async fn a_request_to_a_raw_client_fails_at_once_and_sends_nothing() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let router = vania_ws::Router::new().websocket("/raw", |ev| {
        // Tells the client its id (a raw route has no `connected` frame).
        ev.on_text(|client: vania_ws::Client, _text| async move {
            client.send_text(client.id().to_owned());
        });
    });
    let server = vania_ws::testing::TestServer::start(router).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url("/raw"))
        .await
        .unwrap();
    ws.send(Message::text("id")).await.unwrap();
    let id = ws
        .next()
        .await
        .unwrap()
        .unwrap()
        .to_text()
        .unwrap()
        .to_owned();
    let client = server
        .handle()
        .client(&id)
        .expect("the raw client is connected");
    let err = client
        .emit_with_ack::<_, serde_json::Value>("question", &())
        .await
        .unwrap_err();
    assert!(matches!(err, vania_ws::error::AckError::RawRoute), "{err}");
    // Nothing was sent: the next frame is the answer to the next text.
    ws.send(Message::text("id")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().to_text().unwrap(), id);
}
