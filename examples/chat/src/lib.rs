//! A chat people can open: one axum app on one port serving
//!
//! - `/`: the chat page (`static/`), which talks to the server through the browser client;
//! - `/vania-ws.js`: the browser client itself ([`vania_ws::axum_client_script`]);
//! - `/chat`: the WebSocket route ([`chat::Chat`], a `#[ws_controller]`);
//! - `/metrics`: Prometheus metrics, to loopback peers only; `/health`: `200 ok`.
//!
//! Run it with `cargo run --release -p example-chat` and open <http://127.0.0.1:8000> in two
//! tabs.

pub mod chat;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use vania_ws::{Engine, Router};

const INDEX_HTML: &str = include_str!("../static/index.html");
const CHAT_JS: &str = include_str!("../static/chat.js");
const CHAT_CSS: &str = include_str!("../static/chat.css");

/// The chat's WebSocket routes.
pub fn router() -> Router {
    Router::new().controller(chat::Chat::default())
}

/// The whole app: the page and its assets, the browser client, the WebSocket route, the
/// metrics and the health check.
pub fn app(engine: &Engine) -> axum::Router {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/chat.js",
            get(|| async { asset("text/javascript; charset=utf-8", CHAT_JS) }),
        )
        .route(
            "/chat.css",
            get(|| async { asset("text/css; charset=utf-8", CHAT_CSS) }),
        )
        .route("/health", get(|| async { "ok" }))
        .merge(vania_ws::axum_client_script())
        .merge(
            engine
                .axum_metrics()
                .route_layer(axum::middleware::from_fn(loopback_only)),
        )
        .merge(engine.axum_routes())
}

/// Metrics say how busy the server is: only for a scraper on this machine (or behind a proxy
/// on it). Anyone else gets a 404, as if there were nothing there.
async fn loopback_only(request: Request, next: Next) -> Response {
    let local = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|peer| peer.0.ip().is_loopback());
    if local {
        next.run(request).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Compiled into the binary: a restarted server may serve a new page.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Serves the app on `listener` until `signal`, then drains: WebSocket clients get what was
/// queued for them and a close 1001, then HTTP stops.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = app(&engine).into_make_service_with_connect_info::<SocketAddr>();
    // `axum::serve` leaves Nagle's algorithm on, which holds small frames back.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(engine.shutdown_after(signal))
        .await
}
