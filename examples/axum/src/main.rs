//! Runs the demo's routes in an axum app on `APP_HOST:APP_PORT` (from the environment or
//! `.env`; default `127.0.0.1:8000`) until Ctrl-C or SIGTERM:
//! `cargo run --release -p example-axum`. Try `curl -X POST -d '{"text":"hi"}'
//! -H 'content-type: application/json' http://127.0.0.1:8000/api/rooms/lobby/messages`
//! while a client on `/ws` has joined `lobby`.

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
    let vars = load_env()?;
    let config = ServerConfig::from_vars(&vars)?;
    let admin_token = vars.get("ADMIN_TOKEN").filter(|t| !t.is_empty()).cloned();
    let engine = Server::builder(example_demo::router_with_admin_token(admin_token))
        .config(config.clone())
        .start() // with `REDIS_URL` set, connects to Redis first
        .await?;
    let listener = listen(&config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "vania-ws listening on ws://{addr} (http://{addr}/health, POST http://{addr}/api/rooms/{{room}}/messages)"
    );
    example_axum::serve(listener, engine, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
