//! An echo server for the Autobahn WebSocket conformance suite: every text and binary message,
//! on any path, comes back unchanged. It runs on vania-ws-server's own machinery (handshake,
//! reader, writer, limits, close handling), with the limits raised to 16 MiB for the suite's
//! large-message cases and the rate limit off.
//!
//! `cargo run --release -p example-autobahn-echo` listens on `APP_HOST:APP_PORT` (default
//! `127.0.0.1:9001`); `.ci/autobahn` runs the suite against it.

use std::time::Duration;
use tracing_subscriber::EnvFilter;
use vania_ws::{Client, Router, Server, ServerConfig, load_env};

const SIXTEEN_MIB: usize = 16 * 1024 * 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let mut vars = load_env()?;
    vars.entry("APP_PORT".to_owned())
        .or_insert_with(|| "9001".to_owned());
    let config = ServerConfig::from_vars(&vars)?
        .max_message_bytes(SIXTEEN_MIB)
        .send_queue_bytes(4 * SIXTEEN_MIB)
        .rate_limit(0, 0)
        .allowed_origins(["*"])
        .close_timeout(Duration::from_secs(2));
    let router = Router::new().websocket("*", |ev| {
        ev.on_text(|client: Client, text| async move { client.send_text(text) });
        ev.on_binary(|client: Client, data| async move { client.send_binary(data) });
    });
    Server::builder(router)
        .config(config)
        .bind()
        .await?
        .run()
        .await;
    Ok(())
}
