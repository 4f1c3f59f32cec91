//! Handshake policy, as one pure step: a request's method, target and headers and the peer's
//! address in; an admitted route (with what the guards attached and a connection slot) or a
//! rejection with its HTTP status out. It never touches a socket, so every front end (the
//! standalone server, axum) applies PROTOCOL.md section 1 identically, before any upgrade.

use futures_util::FutureExt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue};
use vania_ws_core::guard::{Handshake, Rejection};
use vania_ws_core::http::Extensions;
use vania_ws_core::router::Route;

use crate::engine::{Phase, Shared};

/// An admitted upgrade.
pub(crate) struct Admission {
    pub(crate) route: Arc<Route>,
    /// What the guards attached, for the connection's handlers.
    pub(crate) extensions: Extensions,
    /// The `Sec-WebSocket-Accept` value of the `101` answer.
    pub(crate) accept: String,
    pub(crate) slot: Slot,
}

/// A refused upgrade: the status and body to answer with.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) rejection: Rejection,
    /// `426` carries `Sec-WebSocket-Version: 13`.
    pub(crate) version_header: bool,
}

pub(crate) fn refuse(status: u16, reason: &str) -> Refusal {
    Refusal {
        rejection: Rejection::new(status, reason),
        version_header: false,
    }
}

/// One unit of `WS_MAX_CONNECTIONS`, given back when dropped.
pub(crate) type Slot = vania_ws_core::metrics::ConnectionSlot;

/// Decides an upgrade request. `target` is the request target (path and query).
pub(crate) async fn admit(
    shared: &Arc<Shared>,
    method: &str,
    target: &str,
    headers: HeaderMap,
    peer: SocketAddr,
) -> Result<Admission, Refusal> {
    let decided = decide(shared, method, target, headers, peer).await;
    if let Err(refusal) = &decided {
        shared
            .hub
            .metrics()
            .record_handshake_refused(refusal.rejection.status);
        tracing::debug!(
            %peer,
            status = refusal.rejection.status,
            reason = %refusal.rejection.reason,
            "handshake refused"
        );
    }
    decided
}

async fn decide(
    shared: &Arc<Shared>,
    method: &str,
    target: &str,
    headers: HeaderMap,
    peer: SocketAddr,
) -> Result<Admission, Refusal> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    if !shared.config.websocket {
        return Err(refuse(404, "websockets are disabled (APP_WEBSOCKET=false)"));
    }
    let route = shared
        .routes
        .get(path)
        .cloned()
        .ok_or_else(|| refuse(404, "no websocket route at this path"))?;
    if method != "GET" {
        return Err(refuse(405, "a websocket upgrade is a GET request"));
    }
    let has_token = |name: &str, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(refuse(400, "expected a websocket upgrade request"));
    }
    if headers
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err(Refusal {
            rejection: Rejection::new(426, "websocket version 13 is required"),
            version_header: true,
        });
    }
    let accept = headers
        .get("sec-websocket-key")
        .map(HeaderValue::as_bytes)
        .filter(|key| !key.is_empty())
        .map(derive_accept_key)
        .ok_or_else(|| refuse(400, "missing Sec-WebSocket-Key"))?;
    if let Some(origin) = headers.get("origin") {
        let origin = origin.to_str().unwrap_or("");
        let host = headers.get("host").and_then(|h| h.to_str().ok());
        if !origin_allowed(origin, host, shared.config.allowed_origins.as_deref()) {
            return Err(refuse(403, "origin not allowed"));
        }
    }

    let mut handshake = Handshake {
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers,
        peer,
        extensions: Extensions::new(),
    };
    for guard in shared.routes.global_guards().iter().chain(route.guards()) {
        let verdict = match std::panic::catch_unwind(AssertUnwindSafe(|| guard(handshake))) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        handshake = match verdict {
            Ok(Ok(handshake)) => handshake,
            Ok(Err(rejection)) => {
                return Err(Refusal {
                    rejection,
                    version_header: false,
                });
            }
            Err(_) => {
                tracing::error!(%peer, "connection guard panicked");
                return Err(refuse(500, "internal error"));
            }
        };
    }

    // Only now does the connection count against the limit: one still in its handshake
    // (guards included) does not.
    if shared.phase() != Phase::Running {
        return Err(refuse(503, "server shutting down"));
    }
    let slot = reserve_slot(shared).ok_or_else(|| refuse(503, "too many connections"))?;
    Ok(Admission {
        route,
        extensions: handshake.extensions,
        accept,
        slot,
    })
}

fn reserve_slot(shared: &Arc<Shared>) -> Option<Slot> {
    shared
        .hub
        .open_connection(shared.config.max_connections as u64)
}

/// Whether a browser at `origin` may connect: an exact match in the allow-list (`*` allows
/// any), or, without a list, the same host as the request's `Host` (a default port, 80 or
/// 443, written or not, is the same host).
pub(crate) fn origin_allowed(origin: &str, host: Option<&str>, allowed: Option<&[String]>) -> bool {
    match allowed {
        Some(list) => list
            .iter()
            .any(|entry| entry == "*" || entry.eq_ignore_ascii_case(origin)),
        None => match (origin.split_once("://"), host) {
            (Some((scheme, authority)), Some(host)) => {
                let default_port = match scheme.to_ascii_lowercase().as_str() {
                    "http" | "ws" => ":80",
                    "https" | "wss" => ":443",
                    _ => "",
                };
                let strip = |authority: &str| {
                    let lower = authority.to_ascii_lowercase();
                    match (!default_port.is_empty()).then(|| lower.strip_suffix(default_port)) {
                        Some(Some(bare)) => bare.to_owned(),
                        _ => lower,
                    }
                };
                strip(authority) == strip(host)
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn origins() {
        let list = vec!["https://app.example.com".to_owned()];
        let allowed = Some(list.as_slice());
        assert!(origin_allowed("https://app.example.com", None, allowed));
        assert!(!origin_allowed(
            "https://app.example.com.evil.com",
            None,
            allowed
        ));
        assert!(!origin_allowed("http://app.example.com", None, allowed));
        assert!(!origin_allowed("null", None, allowed));
        let any = vec!["*".to_owned()];
        assert!(origin_allowed("null", None, Some(any.as_slice())));
        assert!(origin_allowed(
            "http://localhost:8000",
            Some("localhost:8000"),
            None
        ));
        assert!(!origin_allowed(
            "http://localhost:9000",
            Some("localhost:8000"),
            None
        ));
        assert!(!origin_allowed("null", Some("localhost:8000"), None));
        assert!(!origin_allowed("http://evil.com", None, None));
        assert!(origin_allowed(
            "https://Example.com",
            Some("example.com:443"),
            None
        ));
        assert!(origin_allowed(
            "http://example.com:80",
            Some("example.com"),
            None
        ));
        assert!(!origin_allowed(
            "https://example.com",
            Some("example.com:80"),
            None
        ));
    }
}
