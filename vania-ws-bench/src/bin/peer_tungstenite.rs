//! The plain tokio-tungstenite peer of the end-to-end suite: the ceiling of our stack, written
//! the straightforward way (a reader task and a writer task per connection, joined by an
//! unbounded channel), with the read buffer sized like vania-ws's (4 KiB).
//!
//! It speaks the suite's raw dialect:
//! - `J<room>`: joins the room, answered with the same text;
//! - `B…`: room broadcast to `bench`, the same `Message` (a shared `Utf8Bytes`, so the
//!   payload is not copied per recipient) queued to every member, the sender included;
//! - `R<room>|<text>`: `<text>` to every member of the room;
//! - `N<name>`: names the connection, answered with the same text; `D<name>|<text>` sends
//!   `<text>` to the connection of that name;
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

/// A client's queue.
type Queue = mpsc::UnboundedSender<Message>;

/// The rooms (each member's queue by connection number) and the named connections' queues.
#[derive(Default)]
struct State {
    rooms: HashMap<String, HashMap<u64, Queue>>,
    names: HashMap<String, (u64, Queue)>,
}

type Shared = Arc<Mutex<State>>;

impl State {
    fn to_room(&self, room: &str, message: &Message) {
        for member in self.rooms.get(room).into_iter().flat_map(HashMap::values) {
            let _ = member.send(message.clone());
        }
    }
}

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
    let state = Shared::default();
    let ids = AtomicU64::new(0);
    loop {
        let (stream, _) = listener.accept().await?;
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(stream, id, state.clone()));
    }
}

async fn serve(stream: TcpStream, id: u64, state: Shared) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let (mut rooms, mut name) = (Vec::new(), None);

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
            Message::Text(text) if text.as_str().starts_with('B') => {
                let message = Message::Text(text);
                state
                    .lock()
                    .expect("not poisoned")
                    .to_room("bench", &message);
            }
            Message::Text(text) if text.as_str().starts_with('R') => {
                if let Some((room, body)) = text.as_str()[1..].split_once('|') {
                    let message = Message::text(body);
                    state.lock().expect("not poisoned").to_room(room, &message);
                }
            }
            Message::Text(text) if text.as_str().starts_with('D') => {
                if let Some((to, body)) = text.as_str()[1..].split_once('|')
                    && let Some((_, client)) = state.lock().expect("not poisoned").names.get(to)
                {
                    let _ = client.send(Message::text(body));
                }
            }
            Message::Text(text) if text.as_str().starts_with('J') => {
                let room = text.as_str()[1..].to_owned();
                let mut state = state.lock().expect("not poisoned");
                state
                    .rooms
                    .entry(room.clone())
                    .or_default()
                    .insert(id, tx.clone());
                rooms.push(room);
                let _ = tx.send(Message::Text(text));
            }
            Message::Text(text) if text.as_str().starts_with('N') => {
                let given = text.as_str()[1..].to_owned();
                let mut state = state.lock().expect("not poisoned");
                state.names.insert(given.clone(), (id, tx.clone()));
                name = Some(given);
                let _ = tx.send(Message::Text(text));
            }
            Message::Text(_) | Message::Binary(_) => {
                let _ = tx.send(message);
            }
            Message::Close(_) => break,
            // tungstenite answers Pings itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    {
        let mut state = state.lock().expect("not poisoned");
        for room in rooms {
            if let Some(members) = state.rooms.get_mut(&room) {
                members.remove(&id);
                if members.is_empty() {
                    state.rooms.remove(&room);
                }
            }
        }
        if let Some(name) = name
            && state
                .names
                .get(&name)
                .is_some_and(|(owner, _)| *owner == id)
        {
            state.names.remove(&name);
        }
    }
    drop(tx);
    let _ = writer.await;
}
