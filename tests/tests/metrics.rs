//! `WS_METRICS_ADDR`, the standalone server's Prometheus listener: read from the settings,
//! checked at start-up, serving `GET /metrics` and nothing else, and up through the graceful
//! drain. (What it exports is checked against the traffic in the hardening suite, on both
//! front ends.)

use std::collections::HashMap;
use vania_ws::{Router, Server, ServerConfig};

#[test]
fn the_metrics_address_is_read_from_the_settings_and_checked() {
    let vars = |value: &str| HashMap::from([("WS_METRICS_ADDR".to_owned(), value.to_owned())]);
    let config = ServerConfig::from_vars(&vars("127.0.0.1:9100")).unwrap();
    assert_eq!(config.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(
        ServerConfig::from_vars(&HashMap::new())
            .unwrap()
            .metrics_addr,
        None
    );
    let err = ServerConfig::from_vars(&vars("localhost"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("WS_METRICS_ADDR"), "{err}");
}

#[tokio::test]
async fn a_metrics_address_in_use_fails_start_up_and_names_the_setting() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ServerConfig::default()
        .port(0)
        .metrics_addr(taken.local_addr().unwrap());
    let err = Server::builder(Router::new().websocket("/ws", |_| {}))
        .config(config)
        .bind()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("WS_METRICS_ADDR"), "{err}");
}

/// One HTTP/1.1 request to `addr`; the status line and the whole response.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("the metrics listener answers")
    .unwrap();
    let response = String::from_utf8(response).unwrap();
    (response.lines().next().unwrap().to_owned(), response)
}

/// A standalone server on free ports, with a metrics listener, bound but not yet running.
async fn bind_with_metrics() -> Server {
    let config = ServerConfig::default()
        .port(0)
        .metrics_addr("127.0.0.1:0".parse().unwrap());
    Server::builder(Router::new().websocket("/ws", |_| {}))
        .config(config)
        .bind()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_metrics_listener_serves_get_metrics_and_nothing_else() {
    let server = bind_with_metrics().await;
    let metrics = server.metrics_addr().expect("a metrics listener");
    assert_ne!(metrics, server.local_addr().unwrap());
    let running = tokio::spawn(server.run_until(std::future::pending()));
    let (status, response) = http(metrics, "GET", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        response.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{response}"
    );
    assert!(
        response.contains("\nvania_ws_connections 0\n"),
        "{response}"
    );
    assert_eq!(
        http(metrics, "POST", "/metrics").await.0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(http(metrics, "GET", "/").await.0, "HTTP/1.1 404 Not Found");
    running.abort();
}

#[tokio::test]
async fn metrics_stay_up_through_the_graceful_drain() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = bind_with_metrics().await;
    let (addr, metrics) = (server.local_addr().unwrap(), server.metrics_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    // A raw client that reads but never answers the server's close: the drain then waits for
    // it (WS_CLOSE_TIMEOUT_MS, 5 s) instead of ending at once.
    let mut ws = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    ws.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("\"connected\"") {
        let n = ws.read(&mut buf).await.unwrap();
        assert!(n > 0, "the upgrade and `connected` arrive");
        seen.extend_from_slice(&buf[..n]);
    }
    let _ = stop.send(());
    // The close frame (FIN + opcode 8, unmasked) says the drain has begun.
    let close = loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), ws.read(&mut buf))
            .await
            .expect("the drain sends a close frame")
            .unwrap();
        assert!(n > 0, "the server closes with a frame, not a reset");
        if let Some(at) = buf[..n].iter().position(|b| *b == 0x88) {
            break buf[at + 2..at + 4].to_vec();
        }
    };
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1001);
    let (status, response) = http(metrics, "GET", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{response}");
    assert!(
        response.contains("\nvania_ws_connections 1\n"),
        "{response}"
    );
    drop(ws);
    running.await.unwrap();
}
