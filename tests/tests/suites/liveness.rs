use serde_json::{Value, json};
use std::time::Duration;
use vania_ws::{Client, Router, ServerConfig};

/// How long the handlers below keep their connection from reading: far beyond the heartbeat's
/// ping interval plus pong timeout (0.25 s).
const WAIT: Duration = Duration::from_millis(800);

fn config() -> ServerConfig {
    ServerConfig::default()
        .heartbeat(Duration::from_millis(100), Duration::from_millis(150))
        .ack_timeout(WAIT)
}

fn router() -> Router {
    Router::new().websocket("/ws", |ev| {
        ev.on("slow", || async {
            tokio::time::sleep(WAIT).await;
            "done"
        });
        ev.on("confirm", |client: Client| async move {
            client
                .emit_with_ack::<_, Value>("are-you-sure", &())
                .await
                .map_err(|err| err.to_string())
        });
        ev.on("message", |payload: Value| async move { payload });
    })
}

#[tokio::test]
async fn a_client_that_answers_pings_outlives_a_handler_slower_than_the_pong_timeout() {
    let server = start_with(router(), config()).await;
    let mut client = server.connect("/ws").await;
    // While the handler runs the connection reads nothing, the client's pongs included; the
    // client answers the pings all the same (it reads while it waits for the ack).
    assert_eq!(client.ack("slow", Value::Null).await, json!("done"));
    assert_eq!(client.ack("message", json!(1)).await, json!(1));
    // The heartbeat counts again once the connection reads: several pings later, still open.
    client.idle(Duration::from_millis(600)).await;
    assert_eq!(client.ack("message", json!(2)).await, json!(2));
}

#[tokio::test]
async fn a_handler_awaiting_its_client_behind_a_full_hold_does_not_time_the_client_out() {
    let server = start_with(router(), config()).await;
    let mut client = server.connect("/ws").await;
    client.send(json!({"event": "confirm", "id": 1})).await;
    let request = client.recv().await;
    assert_eq!(request["event"], "are-you-sure");
    // The answer and the client's pongs wait in the socket until the request times out.
    super::hold::overflow_then_answer(&mut client, &request).await;
    let reply = client.recv().await;
    assert_eq!(reply["id"], 1, "{reply}");
    assert_eq!(
        reply["payload"]["message"],
        format!("no answer within {WAIT:?}"),
        "{reply}"
    );
    for id in 2..42 {
        assert_eq!(
            client.recv().await,
            json!({"event": "ack", "id": id, "payload": id})
        );
    }
    assert_eq!(client.ack("message", json!(0)).await, json!(0));
}
