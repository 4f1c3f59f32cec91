//! The demo's three WebSocket routes (`/ws`, `/clients`, `/admins`, the same handlers as
//! `example-demo`) mounted in an axum app, so one port serves HTTP and WebSockets:
//!
//! - `GET /health` answers `200 ok`;
//! - `GET /vania-ws.js` serves the browser client, `GET /metrics` the Prometheus metrics;
//! - `POST /api/rooms/{room}/messages` takes a JSON body and delivers
//!   `{"event":"room-message","payload":<body>}` to every member of `room` on `/ws`, as
//!   Laravel broadcasting pushes from a controller; it answers `202` with
//!   `{"delivered":<members reached on this node>}`.
//!
//! REST handlers reach the WebSocket side through the engine's [`Handle`](vania_ws::Handle): the app keeps the
//! handle of `/ws`'s rooms in axum's state, checked once when the app is built. A graceful shutdown drains the WebSocket connections (close 1001), then the HTTP
//! side. Run it with `cargo run --release -p example-axum`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use vania_ws::core::room::is_valid_room_name;
use vania_ws::error::UnknownRoute;
use vania_ws::{Engine, RouteHandle};

/// The app: the REST routes, then the engine's WebSocket routes. An error if the engine has no
/// `/ws` route for the REST side to push to.
pub fn app(engine: &Engine) -> Result<axum::Router, UnknownRoute> {
    let ws: RouteHandle = engine.handle().route("/ws")?;
    Ok(axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/api/rooms/{room}/messages", post(room_message))
        .with_state(ws)
        .merge(vania_ws::axum_client_script())
        .merge(engine.axum_metrics())
        .merge(engine.axum_routes()))
}

/// Serves the app on `listener` until `signal`, then drains: WebSocket clients get what was
/// queued for them and a close 1001, then HTTP stops.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = app(&engine)
        .map_err(std::io::Error::other)?
        .into_make_service_with_connect_info::<SocketAddr>();
    // `axum::serve` leaves Nagle's algorithm on, which holds small frames back.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(engine.shutdown_after(signal))
        .await
}

/// `POST /api/rooms/{room}/messages`.
async fn room_message(
    State(ws): State<RouteHandle>,
    Path(room): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), (StatusCode, String)> {
    if !is_valid_room_name(&room) {
        return Err((
            StatusCode::BAD_REQUEST,
            "a room name is 1 to 255 bytes".to_owned(),
        ));
    }
    let delivered = ws
        .to_room("room-message", &room, &body)
        .map_err(|err| (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "delivered": delivered })),
    ))
}
