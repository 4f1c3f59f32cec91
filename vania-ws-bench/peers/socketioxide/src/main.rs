//! socketioxide (on axum 0.8) doing the suite's work:
//! - `join` with a room name puts the socket in that room and acks;
//! - `message` is emitted back to the sender;
//! - `room-message` goes to every member of "bench" (the sender included, as vania-ws's
//!   `to_room` does), and `to-room` `{room, text}` to every member of `room`;
//! - `direct` `{to, text}` goes to the socket whose id is `to`.
//!
//! Listens on `127.0.0.1:$APP_PORT` with a listen backlog of 1024 and TCP_NODELAY (axum leaves
//! Nagle on, which adds up to 40 ms to small replies).

use std::time::Duration;

use axum::serve::ListenerExt;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::socket::Sid;

/// Longer than any run, so that no ping/pong traffic lands in a measurement.
const PING: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("APP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let (layer, io) = SocketIo::builder()
        // 128 packets per socket by default: a burst of 8 broadcasts in flight to a client that
        // is also pipelining would hit it and drop messages.
        .max_buffer_size(65_536)
        .ping_interval(PING)
        .ping_timeout(PING)
        .build_layer();
    let direct_io = io.clone();
    io.ns("/", async move |socket: SocketRef| {
        socket.on(
            "join",
            async |socket: SocketRef, Data::<String>(room), ack: AckSender| {
                socket.join(room.clone());
                let _ = ack.send(&room);
            },
        );
        socket.on(
            "to-room",
            async |socket: SocketRef, Data::<Value>(message)| {
                let (Some(room), Some(text)) = (message["room"].as_str(), message["text"].as_str())
                else {
                    return;
                };
                let _ = socket.within(room.to_owned()).emit("room-message", text).await;
            },
        );
        let io = direct_io.clone();
        socket.on("direct", async move |Data::<Value>(message)| {
            let (Some(to), Some(text)) = (message["to"].as_str(), message["text"].as_str()) else {
                return;
            };
            if let Some(to) = to.parse::<Sid>().ok().and_then(|sid| io.get_socket(sid)) {
                let _ = to.emit("direct", text);
            }
        });
        socket.on(
            "message",
            async |socket: SocketRef, Data::<String>(text)| {
                let _ = socket.emit("message", &text);
            },
        );
        socket.on(
            "room-message",
            async |socket: SocketRef, Data::<String>(text)| {
                let _ = socket.within("bench").emit("room-message", &text).await;
            },
        );
    });
    let app = axum::Router::new().layer(layer);

    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(([127, 0, 0, 1], port).into())
        .expect("bind 127.0.0.1:$APP_PORT");
    let listener = socket
        .listen(1024)
        .expect("listen")
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    println!("socketioxide listening on 127.0.0.1:{port}");
    axum::serve(listener, app).await.expect("serve");
}
