use vania_ws_server::{Client, Router};

fn main() {
    let _two_payloads = Router::new().websocket("/ws", |ev| {
        ev.on("order", |_id: u64, _client: Client, _name: String| async move {});
    });
}
