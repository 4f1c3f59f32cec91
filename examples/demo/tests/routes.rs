//! The demo's routes through `vania_ws_server::testing`, the way an app tests its own.

use serde_json::{Value, json};
use vania_ws_server::testing::TestServer;

#[tokio::test]
async fn the_admins_controller_and_the_closure_routes_serve_together() {
    let server = TestServer::start(example_demo::router()).await;
    let mut admin = server.connect("/admins").await;
    let mut user = server.connect("/ws").await;
    let reply = admin
        .ack("admin-message", json!({"text": "maintenance"}))
        .await;
    assert_eq!(reply, json!({"delivered": true}));
    assert_eq!(
        user.recv_event("admin-message").await,
        json!({"text": "maintenance"})
    );
    let whoami = user.ack("whoami", Value::Null).await;
    assert_eq!(whoami, json!({"session_id": user.id(), "rooms": []}));
    let refused = admin.request("admin-message", json!({"text": 5})).await;
    assert_eq!(refused["payload"]["code"], "invalid_payload");
    assert!(
        refused["payload"]["message"]
            .as_str()
            .unwrap()
            .starts_with("text: invalid type: integer `5`")
    );
}
