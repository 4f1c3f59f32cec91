//! The controllers example, tested with `vania_ws::testing`.

use serde_json::{Value, json};
use std::sync::Arc;
use vania_ws::testing::{TestClient, TestServer};

use example_controllers::{MessageStore, Moderation, router};

async fn start() -> TestServer {
    let moderation = Moderation {
        banned_words: vec!["spam".to_owned()],
        max_chars: 20,
    };
    TestServer::start(router(Arc::new(MessageStore::default()), moderation)).await
}

async fn chatter(server: &TestServer) -> TestClient {
    let mut client = server.connect("/chat").await;
    let welcome = client.recv_event("welcome").await;
    assert_eq!(welcome["session_id"], client.id());
    client
}

#[tokio::test]
async fn posts_reach_the_room_and_are_stored() {
    let server = start().await;
    let mut alice = chatter(&server).await;
    let mut bob = chatter(&server).await;
    let mut carol = chatter(&server).await;
    alice.join("rust").await;
    bob.join("rust").await;
    let posted = alice
        .ack("post", json!({"room": "rust", "text": "  hello  "}))
        .await;
    assert_eq!(posted, json!({"id": 1, "room": "rust"}));
    let expected = json!({"id": 1, "room": "rust", "from": alice.id(), "text": "hello"});
    assert_eq!(
        alice.take_pending(),
        vec![json!({"event": "message", "payload": expected})]
    );
    assert_eq!(bob.recv_event("message").await, expected);
    carol.assert_nothing_received().await;
    assert_eq!(carol.ack("history", json!("rust")).await, json!([expected]));
    assert_eq!(carol.ack("history", json!("go")).await, json!([]));
}

#[tokio::test]
async fn bad_posts_are_refused_with_their_reason() {
    let server = start().await;
    let mut alice = chatter(&server).await;
    alice.join("rust").await;
    let cases = [
        (
            json!({"room": "rust", "text": "   "}),
            "a post needs some text",
        ),
        (
            json!({"room": "rust", "text": "x".repeat(21)}),
            "a post is at most 20 characters",
        ),
        (
            json!({"room": "rust", "text": "buy SPAM now"}),
            "`spam` is not allowed here",
        ),
        (
            json!({"room": "go", "text": "hi"}),
            "join `go` before posting to it",
        ),
    ];
    for (payload, message) in cases {
        let reply = alice.request("post", payload).await;
        assert_eq!(
            reply["payload"],
            json!({"code": "handler_error", "message": message})
        );
    }
    let reply = alice.request("post", json!({"room": "rust"})).await;
    assert_eq!(
        reply["payload"],
        json!({"code": "invalid_payload", "message": "missing field `text`"})
    );
    alice.assert_nothing_received().await;
}

#[tokio::test]
async fn collected_controllers_serve_beside_the_registered_one() {
    let server = start().await;
    let mut probe = server.connect("/health").await;
    assert_eq!(probe.ack("ping", Value::Null).await, json!("pong"));
}
