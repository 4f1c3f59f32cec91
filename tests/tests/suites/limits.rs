use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::{
    Frame, FrameHeader, coding::Data, coding::OpCode,
};
use vania_ws::ServerConfig;
use vania_ws::testing::TestServer;

async fn demo_with_limit(limit: usize) -> TestServer {
    start_with(
        vania_ws_tests::app::router(),
        ServerConfig::default().max_message_bytes(limit),
    )
    .await
}

#[tokio::test]
async fn a_message_at_the_limit_is_delivered_and_one_byte_more_closes_1009() {
    let limit = 4096;
    let server = demo_with_limit(limit).await;
    let mut a = server.connect("/ws").await;
    let mut b = server.connect("/ws").await;
    let prefix = r#"{"event":"message","payload":""#;
    let suffix = r#""}"#;
    let fill = limit - prefix.len() - suffix.len();
    let exact = format!("{prefix}{}{suffix}", "x".repeat(fill));
    assert_eq!(exact.len(), limit);
    a.send_text(exact).await;
    assert_eq!(a.recv_event("message").await, json!("x".repeat(fill)));
    let over = format!("{prefix}{}{suffix}", "x".repeat(fill + 1));
    a.send_text(over).await;
    let closed = a.closed().await;
    assert_eq!(closed.code, Some(1009));
    assert!(
        closed.frames.is_empty(),
        "the handler did not run: {:?}",
        closed.frames
    );
    assert_eq!(b.ack("message", json!("fine")).await, json!("fine"));
}

#[tokio::test]
async fn invalid_utf8_closes_1007() {
    let server = demo_with_limit(65536).await;
    let mut a = server.connect("/ws").await;
    let frame = Frame::from_payload(
        FrameHeader {
            is_final: true,
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        },
        vec![b'{', 0xff, 0xfe, b'}'].into(),
    );
    a.send_message(Message::Frame(frame)).await;
    let closed = a.closed().await;
    assert_eq!(closed.code, Some(1007));
}
