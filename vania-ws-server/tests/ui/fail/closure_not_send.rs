use std::rc::Rc;
use vania_ws_server::{Client, Router};

fn main() {
    let _not_send = Router::new().websocket("/ws", |ev| {
        ev.on("message", |_client: Client| async move {
            let local = Rc::new(1);
            std::future::ready(()).await;
            let _ = local;
        });
    });
}
