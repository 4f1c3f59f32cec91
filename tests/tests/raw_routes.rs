//! Raw routes (`on_text` / `on_binary`) and the any-path route `"*"`: the machinery the
//! Autobahn echo server runs on.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use vania_ws_server::testing::TestServer;
use vania_ws_server::{Client, Router};

#[tokio::test]
async fn a_raw_route_echoes_text_and_binary_on_any_path_without_an_envelope() {
    let router = Router::new()
        .websocket("*", |ev| {
            ev.on_text(|client: Client, text| async move { client.send_text(text) });
            ev.on_binary(|client: Client, data| async move { client.send_binary(data) });
        })
        .websocket("/ws", |_| {});
    let server = TestServer::start(router).await;
    let (mut ws, _) = connect_async(server.url("/any/path?x=1")).await.unwrap();
    ws.send(Message::text("not json at all")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("not json at all")
    );
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    // A registered path keeps its own (enveloped) protocol: `connected` first.
    let mut client = server.connect("/ws").await;
    client.barrier().await;
}
