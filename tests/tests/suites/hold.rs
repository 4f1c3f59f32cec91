//! What the tests of the hold share: the frames a connection keeps while a handler awaits
//! its client's answer (at most 32).

use serde_json::{Value, json};
use vania_ws::testing::TestClient;

/// While `request` (a request from the server) waits for its answer, sends 40 events
/// (`message`, ids 2 to 41) and then the answer: the connection holds 32 of them and stops
/// reading, so the answer stays unread in the socket until the request times out.
pub(crate) async fn overflow_then_answer(client: &mut TestClient, request: &Value) {
    for id in 2..42 {
        client
            .send(json!({"event": "message", "payload": id, "id": id}))
            .await;
    }
    client
        .send(json!({"event": "ack", "id": request["id"], "payload": true}))
        .await;
}
