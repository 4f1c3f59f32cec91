use vania_ws_server::{Client, Router};

fn main() {
    // Each mistake is reported by what it is, at the closure.
    let _borrowed_client = Router::new().websocket("/ws", |ev| {
        ev.on("message", |_client: &Client| async move {});
    });
    struct NotAnExtractor;
    let _not_an_extractor = Router::new().websocket("/ws", |ev| {
        ev.on("message", |_client: Client, _bad: NotAnExtractor| async move {});
    });
    struct NotAReply;
    let _not_a_reply = Router::new().websocket("/ws", |ev| {
        ev.on("message", |_client: Client| async move { NotAReply });
    });
    let _not_async = Router::new().websocket("/ws", |ev| {
        ev.on("message", |_client: Client| ());
    });
}
