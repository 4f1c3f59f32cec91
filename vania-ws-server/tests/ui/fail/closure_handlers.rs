use vania_ws_server::{Client, Router};

fn main() {
    let _borrowed_client = Router::new().websocket("/ws", |ev| {
        ev.on("message", |_client: &Client| async move {});
    });
    struct NotAnExtractor;
    let _not_an_extractor = Router::new().websocket("/ws", |ev| {
        ev.on("message", |_client: Client, _bad: NotAnExtractor| async move {});
    });
}
