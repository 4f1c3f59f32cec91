//! The server the browser client's own tests (`clients/js/test`) start: an axum app with one
//! WebSocket route, `/ws`, whose events exercise every part of the client, and
//! `GET /vania-ws.js`. It listens on `APP_HOST:APP_PORT` (`APP_PORT=0` for a free port) and
//! prints `listening on <addr>` on stdout once it accepts connections, so a test knows where
//! to connect without a fixed port.
//!
//! | event | payload | does | replies |
//! |---|---|---|---|
//! | `echo` | any | | the payload |
//! | `emit` | `{"event","payload"}` | `emit(event, payload)` to the sender | `null` |
//! | `to-room` | `{"room","event","payload"}` | `to_room(event, room, payload)` | `null` |
//! | `whoami` | | | `{"session_id","rooms"}` |
//! | `fail` | | fails | `handler_error` |
//! | `slow` | milliseconds | waits that long | the milliseconds |
//! | `ask` | `{"event","payload","timeout_ms"}` | asks the sender (`emit_with_ack`) | the client's answer |
//! | `close` | a close code | closes the sender's connection with it | |

use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use vania_ws::{
    Client, CloseCode, Router, Server, ServerConfig, listen, load_env, shutdown_signal,
};

#[derive(Debug, Deserialize)]
struct Emit {
    event: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Debug, Deserialize)]
struct ToRoom {
    room: String,
    event: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Debug, Deserialize)]
struct Ask {
    event: String,
    #[serde(default)]
    payload: Value,
    timeout_ms: Option<u64>,
}

fn router() -> Router {
    Router::new().websocket("/ws", |ev| {
        ev.on(
            "echo",
            |_client: Client, payload: Value| async move { payload },
        );
        ev.on("emit", |client: Client, emit: Emit| async move {
            client.emit(&emit.event, &emit.payload)
        });
        ev.on("to-room", |client: Client, to: ToRoom| async move {
            client.to_room(&to.event, &to.room, &to.payload)
        });
        ev.on("whoami", |client: Client| async move {
            json!({ "session_id": client.id(), "rooms": client.rooms() })
        });
        ev.on("fail", |_client: Client| async move {
            Err::<(), _>("requested failure")
        });
        ev.on("slow", |_client: Client, ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        });
        ev.on("ask", |client: Client, ask: Ask| async move {
            let timeout = Duration::from_millis(ask.timeout_ms.unwrap_or(5_000));
            client
                .emit_with_ack_timeout::<_, Value>(&ask.event, &ask.payload, timeout)
                .await
        });
        ev.on("close", |client: Client, code: u16| async move {
            let code = CloseCode::try_from(code).map_err(|err| err.to_string())?;
            client
                .close(code, "asked to")
                .map_err(|err| err.to_string())
        });
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "js-test-server: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::from_vars(&load_env()?)?;
    let engine = Server::builder(router()).config(config.clone()).build()?;
    let app = axum::Router::new()
        .merge(vania_ws::axum_client_script())
        .merge(engine.axum_routes())
        .into_make_service_with_connect_info::<SocketAddr>();
    let listener = listen(&config).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    axum::serve(listener, app)
        .with_graceful_shutdown(engine.shutdown_after(shutdown_signal()))
        .await?;
    Ok(())
}
