use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use vania_ws::{Client, Router};

#[tokio::test]
async fn a_raw_route_echoes_text_and_binary_on_any_path_without_an_envelope() {
    let router = Router::new()
        .websocket("*", |ev| {
            ev.on_text(|client: Client, text| async move { client.send_text(text) });
            ev.on_binary(|client: Client, data| async move { client.send_binary(data) });
        })
        .websocket("/ws", |_| {});
    let server = start(router).await;
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

#[tokio::test]
async fn broadcast_skips_raw_routes() {
    let router = Router::new()
        .websocket("/raw", |ev| {
            ev.on_text(|client: Client, text| async move { client.send_text(text) });
        })
        .websocket("/ws", |ev| {
            ev.on(
                "shout",
                |client: Client, payload: serde_json::Value| async move {
                    client.broadcast("shout", &payload)
                },
            );
        });
    let server = start(router).await;
    let (mut raw, _) = connect_async(server.url("/raw")).await.unwrap();
    let mut listener = server.connect("/ws").await;
    let mut shouter = server.connect("/ws").await;
    shouter.ack("shout", serde_json::json!("hello")).await;
    assert_eq!(listener.recv_event("shout").await, serde_json::json!("hello"));
    // The raw client's next frame is its own echo: no `{"event":"shout",…}` came before it.
    raw.send(Message::text("mine")).await.unwrap();
    assert_eq!(raw.next().await.unwrap().unwrap(), Message::text("mine"));
}
