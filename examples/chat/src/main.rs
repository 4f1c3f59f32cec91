//! Runs the chat on `APP_HOST:APP_PORT` (from the environment or `.env`; default
//! `127.0.0.1:8000`) until Ctrl-C or SIGTERM: `cargo run --release -p example-chat`, then
//! open <http://127.0.0.1:8000> in two tabs.

use tracing_subscriber::EnvFilter;
use vania_ws::{Server, ServerConfig, listen, load_env, shutdown_signal};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::from_vars(&load_env()?)?;
    let engine = Server::builder(example_chat::router())
        .config(config.clone())
        .start() // with `REDIS_URL` set, connects to Redis first
        .await?;
    let listener = listen(&config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "chat listening on http://{addr}: open it in two tabs (metrics at http://{addr}/metrics)"
    );
    example_chat::serve(listener, engine, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
