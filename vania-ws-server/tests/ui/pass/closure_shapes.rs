use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use vania_ws_server::serde_json::Value;
use vania_ws_server::{Client, Extension, Json, Router, State};

#[derive(Serialize)]
struct Profile {
    name: String,
}

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
            // Replies: a struct of one's own wrapped, and the standard value types as they are.
            ev.on("profile", || async {
                Json(Profile {
                    name: "ada".into(),
                })
            });
            ev.on("lookup", |name: String| async move {
                if name.is_empty() {
                    Err("no name")
                } else {
                    Ok(Profile { name })
                }
            });
            ev.on("pair", || async { ("a", 1) });
            ev.on("counts", || async { HashMap::from([("a", 1)]) });
            ev.on("bytes", || async { [1u8, 2, 3] });
        });
}
