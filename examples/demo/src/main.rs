//! Runs the demo app on `APP_HOST:APP_PORT` (from the environment or `.env`; default
//! `127.0.0.1:8000`) until Ctrl-C or SIGTERM: `cargo run --release -p example-demo`. With
//! `ADMIN_TOKEN` set, `/admins` needs `?token=<ADMIN_TOKEN>`.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use vania_ws::{Server, ServerConfig, load_env};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        // Colour codes only for a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), vania_ws::error::ServeError> {
    let vars = load_env()?;
    let config = ServerConfig::from_vars(&vars)?;
    let admin_token = vars.get("ADMIN_TOKEN").filter(|t| !t.is_empty()).cloned();
    if admin_token.is_some() {
        tracing::info!("ADMIN_TOKEN is set: `/admins` needs `?token=<ADMIN_TOKEN>`");
    }
    let server = Server::builder(example_demo::router_with_admin_token(admin_token))
        .config(config)
        .bind()
        .await?;
    if let Ok(addr) = server.local_addr() {
        tracing::info!(
            "try it: `websocat ws://{addr}/ws`, then send {{\"event\":\"message\",\"payload\":\"hi\",\"id\":1}}"
        );
        tracing::info!(
            "or in the console of a page at http://{addr} (same origin): const ws = new WebSocket(\"ws://{addr}/ws\"); ws.onmessage = (e) => console.log(e.data); ws.onopen = () => ws.send(JSON.stringify({{ event: \"message\", payload: \"hi\", id: 1 }}));"
        );
    }
    server.run().await;
    Ok(())
}
