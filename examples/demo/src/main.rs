//! Runs the demo app on `APP_HOST:APP_PORT` (from the environment or `.env`; default
//! `127.0.0.1:8000`) until Ctrl-C or SIGTERM: `cargo run --release -p example-demo`.

use tracing_subscriber::EnvFilter;
use vania_ws_server::{Server, ServerConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), vania_ws_server::ServeError> {
    let config = ServerConfig::from_env()?;
    let server = Server::builder(example_demo::router())
        .config(config)
        .bind()
        .await?;
    server.run().await;
    Ok(())
}
