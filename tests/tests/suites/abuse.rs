use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vania_ws::ServerConfig;
use vania_ws::testing::assert_refused;

/// Opens `/ws` by hand and returns the raw socket after the `101` (the `connected` frame
/// that follows is never read).
async fn raw_upgrade(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// One masked control frame from a client, with a 125-byte payload.
fn control_frame(opcode: u8) -> Vec<u8> {
    let mask = [0x1b, 0x2c, 0x3d, 0x4e];
    let mut frame = vec![0x80 | opcode, 0x80 | 125];
    frame.extend_from_slice(&mask);
    frame.extend((0..125).map(|i| b'p' ^ mask[i % 4]));
    frame
}

/// The process's peak resident memory, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Sends Pings and blind Pongs as fast as the server takes them and never reads, until the
/// server cuts the connection off or 20 s pass; returns how long that took.
async fn flood(addr: std::net::SocketAddr) -> Duration {
    let mut stream = raw_upgrade(addr).await;
    let mut burst = Vec::new();
    while burst.len() < 64 * 1024 {
        burst.extend(control_frame(0x9)); // Ping: asks for a Pong
        burst.extend(control_frame(0xA)); // Pong: answers no ping of the server's
    }
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let write = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&burst)).await;
        if let Ok(Err(_)) = write {
            break;
        }
    }
    started.elapsed()
}

#[tokio::test]
async fn a_ping_flood_from_clients_that_never_read_holds_bounded_memory_and_is_cut_off() {
    // The rate limit is off: the send-queue bound and the heartbeat alone must hold.
    let config = ServerConfig::default()
        .heartbeat(Duration::from_millis(200), Duration::from_millis(300))
        .close_timeout(Duration::from_millis(300))
        .rate_limit(0, 0);
    let server = start_with(vania_ws_tests::app::router(), config).await;
    let before = peak_rss();
    let floods: Vec<_> = (0..2)
        .map(|_| tokio::spawn(flood(server.addr())))
        .collect();
    for flood in floods {
        let took = flood.await.unwrap();
        // Due within the ping interval plus the pong timeout (0.5 s), then the close
        // timeout; the margin is for a loaded machine.
        assert!(took < Duration::from_secs(10), "cut off after {took:?}");
    }
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the flood grew the process by {} MiB",
        grown >> 20
    );
    server
        .eventually("the flooders are freed", |h| h.hub().client_count() == 0)
        .await;
    // The server still serves.
    let mut client = server.connect("/ws").await;
    assert_eq!(client.ack("message", json!(1)).await, json!(1));
}

#[tokio::test]
async fn abrupt_disconnects_free_slots_rooms_and_run_disconnect_at_once() {
    const CAP: usize = 200;
    let config = ServerConfig::default().max_connections(CAP).rate_limit(0, 0);
    let server = start_with(vania_ws_tests::app::router(), config).await;
    let mut watcher_clients = Vec::new();
    for _ in 0..CAP {
        let mut client = server.connect("/ws").await;
        client.join("crowd").await;
        watcher_clients.push(client);
    }
    assert_refused(server.url("/ws"), 503).await;
    // Every client vanishes without a close frame: its TCP connection just ends.
    drop(watcher_clients);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let metrics = server.handle().metrics();
        if metrics.connections == 0 && metrics.clients == 0 && metrics.rooms == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slots, clients and rooms still held a second later: {metrics:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every slot is usable again.
    let mut again = Vec::new();
    for _ in 0..CAP {
        again.push(server.connect("/ws").await);
    }
    assert_eq!(again[0].ack("message", json!("back")).await, json!("back"));
}
