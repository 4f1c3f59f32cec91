use serde::Deserialize;
use vania_ws_server::serde_json::Value;
use vania_ws_server::{Client, Extension, Router, State};

#[derive(Deserialize)]
struct Msg {
    text: String,
}

struct Config {
    prefix: String,
}

#[derive(Clone)]
struct User(String);

fn main() {
    let _router = Router::new()
        .state(Config { prefix: "> ".into() })
        .websocket("/ws", |ev| {
            // No arguments, only a payload, and extractors in any order.
            ev.on("ping", || async { "pong" });
            ev.on("inc", |n: u32| async move { n + 1 });
            ev.on(
                "say",
                |config: State<Config>, msg: Msg, client: Client| async move {
                    client.emit("said", &format!("{}{}", config.prefix, msg.text))
                },
            );
            ev.on(
                "whoami",
                |Extension(user): Extension<User>, _raw: Value| async move { user.0 },
            );
        });
}
