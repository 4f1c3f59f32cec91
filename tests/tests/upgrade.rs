//! The standalone server's own HTTP upgrade: the exact head limit, the bound on pending
//! handshakes, the handshake timeout, and settings refused at start-up. (Behind axum, hyper
//! owns this part of the handshake; everything after it is shared and tested in the suites.)

use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vania_ws::testing::TestServer;
use vania_ws::{Router, Server, ServerConfig};

/// A complete upgrade request for `/ws` padded with a header to exactly `len` bytes.
fn request_head(len: usize) -> Vec<u8> {
    let start = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Pad: ";
    let end = "\r\n\r\n";
    let pad = len - start.len() - end.len();
    format!("{start}{}{end}", "a".repeat(pad)).into_bytes()
}

/// Sends `head` in one piece and returns the status line of the answer.
async fn status_of(server: &TestServer, head: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(n > 0, "the server answers before closing");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn the_head_limit_is_exact_however_the_head_arrives() {
    let server = TestServer::start(vania_ws_tests::app::router()).await;
    assert_eq!(
        status_of(&server, &request_head(16 * 1024)).await,
        "HTTP/1.1 101 Switching Protocols"
    );
    assert_eq!(
        status_of(&server, &request_head(16 * 1024 + 1)).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(
        status_of(&server, &request_head(18 * 1024)).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[tokio::test]
async fn thousands_of_silent_sockets_cannot_keep_a_real_client_out() {
    const SILENT: usize = 3_000;
    const PENDING: usize = 1_024;
    let config = ServerConfig::default().max_pending_handshakes(PENDING);
    let server = TestServer::start_with(vania_ws_tests::app::router(), config).await;
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    // Connected after all of them, so accepted after all of them: the newest pending one.
    let mut client = server.connect("/ws").await;
    assert_eq!(client.ack("message", json!("in")).await, json!("in"));
    // Each silent socket past the bound pushed out the oldest one, which the server closed.
    let shed = server.handle().metrics().handshakes_shed;
    assert!(
        shed as usize >= SILENT - PENDING,
        "{shed} pending handshakes shed"
    );
    let mut oldest = silent.swap_remove(0);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), oldest.read(&mut buf))
        .await
        .expect("the oldest silent socket was closed");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without a response");
}

#[tokio::test]
async fn settings_that_cannot_work_refuse_to_start_naming_the_setting() {
    let cases = [
        (
            ServerConfig::default()
                .max_message_bytes(2 << 20)
                .send_queue_bytes(1 << 20),
            "`WS_MAX_MESSAGE_BYTES` (2097152) must not exceed `WS_SEND_QUEUE_BYTES` (1048576)",
        ),
        (
            ServerConfig::default().handshake_timeout(Duration::ZERO),
            "`WS_HANDSHAKE_TIMEOUT_MS` must be more than 0",
        ),
        (
            ServerConfig::default().close_timeout(Duration::ZERO),
            "`WS_CLOSE_TIMEOUT_MS` must be more than 0",
        ),
    ];
    for (config, message) in cases {
        let err = Server::builder(Router::new().websocket("/ws", |_| {}))
            .config(config.port(0))
            .bind()
            .await
            .expect_err("the server refuses to start");
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[tokio::test]
async fn connections_that_never_finish_the_handshake_are_closed_by_the_timeout() {
    const IDLE: usize = 500;
    // A limit well under the idle count: half-open handshakes must not use it up.
    let config = ServerConfig::default()
        .handshake_timeout(Duration::from_millis(300))
        .max_connections(100);
    let server = TestServer::start_with(vania_ws_tests::app::router(), config).await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    // Half-open handshakes do not count against the limit nor stall anyone.
    let mut control = server.connect("/ws").await;
    assert_eq!(
        control.ack("message", json!("prompt")).await,
        json!("prompt")
    );
    for mut stream in idle {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server closes an idle handshake");
        assert!(matches!(read, Ok(0) | Err(_)), "closed without a response");
    }
    assert_eq!(control.ack("message", json!("still")).await, json!("still"));
}
