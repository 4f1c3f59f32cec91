//! Runs the controllers example on `APP_HOST:APP_PORT` (default `127.0.0.1:8000`):
//! `cargo run -p example-controllers`.

use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use vania_ws::{Server, ServerConfig};

use example_controllers::{MessageStore, Moderation, router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let moderation = Moderation {
        banned_words: vec!["spam".to_owned()],
        max_chars: 280,
    };
    let server = Server::builder(router(Arc::new(MessageStore::default()), moderation))
        .config(ServerConfig::from_env()?)
        .bind()
        .await?;
    server.run().await;
    Ok(())
}
