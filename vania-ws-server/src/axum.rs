//! The axum front end (feature `axum`): the engine's WebSocket routes as an `axum::Router`
//! ([`Engine::axum_routes`]), its metrics ([`Engine::axum_metrics`]) and the browser client
//! ([`axum_client_script`]), so one `axum::serve` serves pages, a REST API and WebSockets on one
//! port.
//!
//! The upgrade goes through hyper's own upgrade mechanism. The handshake policy decides
//! first, so a refusal (404, 403, 401, 503, …) is a real HTTP response and no upgrade happens;
//! an admitted connection then runs on the same engine as the standalone server's, with the
//! same limits, guards, counters and graceful drain.

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use vania_ws_core::router::ANY_PATH;

use crate::connection;
use crate::engine::{Engine, Shared};
use crate::policy::{self, Refusal};

impl Engine {
    /// The WebSocket routes as an axum router, to merge into an app:
    ///
    /// ```no_run
    /// use axum::routing::get;
    /// use std::net::SocketAddr;
    /// use vania_ws_server::{Router, Server, ServerConfig, listen, shutdown_signal};
    ///
    /// # async fn run(router: Router) -> Result<(), Box<dyn std::error::Error>> {
    /// let config = ServerConfig::from_env()?;
    /// let engine = Server::builder(router).config(config.clone()).build()?;
    /// let app = axum::Router::new()
    ///     .route("/health", get(|| async { "ok" }))
    ///     .merge(engine.axum_routes());
    /// let listener = listen(&config).await?; // WS_LISTEN_BACKLOG
    /// axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
    ///     .with_graceful_shutdown(engine.shutdown_after(shutdown_signal()))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so guards see the
    /// peer's address (without it, [`Handshake::peer`](crate::Handshake) is `0.0.0.0:0`). Set
    /// `TCP_NODELAY` on accepted sockets (`ListenerExt::tap_io`): `axum::serve` leaves Nagle's
    /// algorithm on, which delays small frames. The HTTP side of the handshake is hyper's:
    /// its header-size limit and timeouts apply instead of `WS_HANDSHAKE_TIMEOUT_MS` and
    /// `WS_MAX_PENDING_HANDSHAKES`, which bound the standalone server's own upgrade.
    pub fn axum_routes<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        if let Some(addr) = self.shared.config.metrics_addr {
            tracing::warn!(
                "WS_METRICS_ADDR ({addr}) is set, but only the standalone `Server` opens that listener: merge `Engine::axum_metrics()` into the axum app instead"
            );
        }
        let mut router = axum::Router::new();
        for path in self.shared.routes.paths() {
            let shared = self.shared.clone();
            let handler = move |request: Request| upgrade(shared, request);
            router = if path == ANY_PATH {
                router.fallback(handler)
            } else {
                router.route(path, axum::routing::any(handler))
            };
        }
        router
    }

    /// `GET /metrics`: [`render_metrics`](Engine::render_metrics), in the Prometheus text
    /// format. Merge it where the scraper can reach it and the public cannot, or behind the
    /// app's own authentication: the counters say how busy the server is.
    pub fn axum_metrics<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let shared = self.shared.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = crate::prometheus::render(&shared);
                async move {
                    let mut response = Response::new(Body::from(text));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(crate::prometheus::CONTENT_TYPE),
                    );
                    response
                }
            }),
        )
    }
}

/// `GET /vania-ws.js`: the browser client ([`CLIENT_SCRIPT`](crate::CLIENT_SCRIPT)), so a
/// page without npm can `import { connect } from "/vania-ws.js"`. Merge it into the app beside
/// [`Engine::axum_routes`].
pub fn axum_client_script<S>() -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::Router::new().route(
        "/vania-ws.js",
        axum::routing::get(|| async {
            let mut response = Response::new(Body::from(crate::CLIENT_SCRIPT));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            );
            // The module changes with the server binary, not between its requests.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }),
    )
}

async fn upgrade(shared: Arc<Shared>, mut request: Request) -> Response {
    let on_upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |info| info.0);
    let (parts, _body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |target| target.as_str());
    let admission =
        match policy::admit(&shared, parts.method.as_str(), target, parts.headers, peer).await {
            Ok(admission) => admission,
            Err(refusal) => return refused(&refusal),
        };
    let Some(on_upgrade) = on_upgrade else {
        // HTTP/2, or a request that did not come through `axum::serve`.
        return text(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "websocket upgrades need http/1.1",
        );
    };
    let accept = HeaderValue::from_str(&admission.accept).expect("base64 is a valid header value");
    shared.clone().spawn_connection(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // hyper keeps any bytes read past the request head inside the upgraded stream.
        connection::serve(TokioIo::new(upgraded), Vec::new(), admission, shared);
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

fn refused(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.rejection.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = text(status, &refusal.rejection.reason);
    if refusal.version_header {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response {
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
