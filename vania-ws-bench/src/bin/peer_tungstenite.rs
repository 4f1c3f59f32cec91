//! The plain tokio-tungstenite peer of the end-to-end suite: the ceiling of our stack, written
//! the straightforward way (a reader task and a writer task per connection, joined by an
//! unbounded channel), with the read buffer sized like vania-ws's (4 KiB).
//!
//! It speaks the suite's raw dialect:
//! - `J`: join; everyone is a member already, so it only answers `J`;
//! - `B…`: room broadcast, the same `Message` (a shared `Utf8Bytes`, so the payload is not
//!   copied per recipient) queued to every connected client, the sender included;
//! - anything else is echoed back.
//!
//! `APP_PORT=9001 target/release/peer_tungstenite` (listens on 127.0.0.1, backlog 1024).

// It prints one line when it listens, which is what a server binary does.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// vania-ws's read buffer size, so that both sides pay the same per idle connection.
const READ_BUFFER_BYTES: usize = 4096;

/// Every connected client's queue, by connection number.
type Clients = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("APP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    // The default of std/tokio's `bind` is 128, which drops SYNs at 256 parallel connects.
    let listener = socket.listen(1024)?;
    println!("tokio-tungstenite listening on 127.0.0.1:{port}");
    let clients = Clients::default();
    let ids = AtomicU64::new(0);
    loop {
        let (stream, _) = listener.accept().await?;
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(stream, id, clients.clone()));
    }
}

async fn serve(stream: TcpStream, id: u64, clients: Clients) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    clients.lock().expect("not poisoned").insert(id, tx.clone());

    // The writer feeds everything queued, then flushes once: one write per wake-up.
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = rx.try_recv() {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });

    while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Text(text) if text.as_str() == "J" => {
                let _ = tx.send(Message::Text(text));
            }
            Message::Text(text) if text.as_str().starts_with('B') => {
                let message = Message::Text(text);
                for member in clients.lock().expect("not poisoned").values() {
                    let _ = member.send(message.clone());
                }
            }
            Message::Text(_) | Message::Binary(_) => {
                let _ = tx.send(message);
            }
            Message::Close(_) => break,
            // tungstenite answers Pings itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    clients.lock().expect("not poisoned").remove(&id);
    drop(tx);
    let _ = writer.await;
}
