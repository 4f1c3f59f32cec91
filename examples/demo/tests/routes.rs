//! The demo's routes through `vania_ws::testing`, the way an app tests its own.

use serde_json::{Value, json};
use vania_ws::testing::{TestServer, assert_refused};

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

#[tokio::test]
async fn with_an_admin_token_admins_need_it_and_others_do_not() {
    let router = example_demo::router_with_admin_token(Some("s3cret".to_owned()));
    let server = TestServer::start(router).await;
    assert_refused(server.url("/admins"), 401).await;
    assert_refused(server.url("/admins?token=wrong"), 401).await;
    assert_refused(server.url("/admins?token=s3cre"), 401).await;
    let mut admin = server.connect("/admins?token=s3cret").await;
    assert_eq!(
        admin.ack("admin-message", json!({"text": "hi"})).await,
        json!({"delivered": true})
    );
    server.connect("/ws").await;
    server.connect("/clients").await;
}
