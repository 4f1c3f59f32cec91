//! Every handler shape the docs promise.
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use vania_ws_server::serde_json::Value;
use vania_ws_server::{on, ws_controller, Client, Router, SendError, State};

#[derive(Deserialize)]
struct Msg {
    text: String,
}

#[derive(Serialize)]
struct Reply {
    ok: bool,
}

struct Config {
    prefix: String,
}

#[derive(Debug)]
struct AppError;

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("app error")
    }
}

type AppResult<T> = Result<T, AppError>;

struct Shapes {
    counter: Arc<std::sync::atomic::AtomicUsize>,
}

#[ws_controller("/shapes")]
impl Shapes {
    #[on("none")]
    async fn none(&self) {}

    #[on("client-ref")]
    async fn client_ref(&self, client: &Client) {
        let _ = client.id();
    }

    #[on("client-owned")]
    async fn client_owned(&self, client: Client) -> Result<(), SendError> {
        client.emit("x", &1)
    }

    #[on("payload-only")]
    async fn payload_only(&self, payload: Msg) -> String {
        payload.text
    }

    #[on("optional")]
    async fn optional(&self, payload: Option<Msg>) -> bool {
        payload.is_some()
    }

    #[on("raw")]
    async fn raw(&self, payload: Value, client: Client) -> Value {
        let _ = client;
        payload
    }

    #[on("state")]
    async fn state(&self, config: State<Config>, client: &Client, payload: Msg) -> Reply {
        let _ = (client, format!("{}{}", config.prefix, payload.text));
        Reply { ok: true }
    }

    #[on("result")]
    async fn result(&self, payload: Msg) -> Result<Reply, AppError> {
        if payload.text.is_empty() {
            return Err(AppError);
        }
        Ok(Reply { ok: true })
    }

    #[on("alias")]
    async fn alias(&self) -> AppResult<u32> {
        Ok(self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u32)
    }

    #[on("no-receiver")]
    async fn no_receiver(client: &Client) -> usize {
        client.rooms().len()
    }

    #[on("connect")]
    async fn connect(&self, client: &Client) {
        let _ = client.join("lobby");
    }

    /// Not a handler: left alone.
    fn helper(&self) -> usize {
        0
    }
}

#[derive(Default)]
struct Second;

#[ws_controller("/second")]
impl Second {
    #[on("message")]
    async fn message(&self, client: &Client, payload: Value) -> Result<Value, SendError> {
        client.emit("message", &payload)?;
        Ok(payload)
    }
}

fn main() {
    let shapes = Shapes { counter: Arc::default() };
    let _ = shapes.helper();
    Router::new()
        .controller(shapes)
        .controllers()
        .state(Config { prefix: String::new() })
        .websocket("/second", |ev| {
            ev.on("closure", |_client: Client| async {});
        })
        .build()
        .unwrap();
}

#[derive(Serialize)]
struct SearchResult {
    hits: u32,
}

#[derive(Default)]
struct Third;

#[ws_controller("/third")]
impl Third {
    #[on("search")]
    async fn search(&self) -> SearchResult {
        SearchResult { hits: 1 }
    }

    #[on("io")]
    async fn io(&self) -> std::io::Result<u8> {
        Ok(1)
    }
}
