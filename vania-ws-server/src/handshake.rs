//! The HTTP upgrade, done here rather than inside tungstenite so that everything that can
//! refuse a connection runs before a socket exists: routing (404), the upgrade headers
//! (400/426), the Origin check (403), the connection limit (503) and the guards (their status),
//! async guards included.

use futures_util::FutureExt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use vania_ws_core::http::Extensions;
use vania_ws_core::{Handshake, Rejection, Route};

use crate::server::Shared;

/// The largest request head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// An accepted upgrade: the route, what the guards attached, the bytes read past the request
/// head (the client may send its first frame at once), and the connection's slot.
pub(crate) struct Upgrade {
    pub(crate) route: Arc<Route>,
    pub(crate) extensions: Extensions,
    pub(crate) leftover: Vec<u8>,
    pub(crate) slot: Slot,
}

/// One unit of `WS_MAX_CONNECTIONS`, given back when dropped.
pub(crate) struct Slot {
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared
            .hub
            .metrics()
            .connections
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads the request and answers it: `Some` after a `101`, `None` after a refusal (already
/// answered) or a broken connection.
pub(crate) async fn upgrade(
    stream: &mut TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<Upgrade> {
    let result = negotiate(stream, peer, shared).await;
    match result {
        Ok(upgrade) => Some(upgrade),
        Err(Refusal::Respond(rejection, extra)) => {
            shared
                .hub
                .metrics()
                .handshakes_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, status = rejection.status, reason = %rejection.reason, "handshake refused");
            let _ = respond(stream, &rejection, extra).await;
            None
        }
        Err(Refusal::Silent) => None,
    }
}

enum Refusal {
    /// Answer with this status and body (and an extra header).
    Respond(Rejection, Option<(&'static str, &'static str)>),
    /// The peer went away or sent garbage we do not answer.
    Silent,
}

fn refuse(status: u16, reason: &str) -> Refusal {
    Refusal::Respond(Rejection::new(status, reason), None)
}

async fn negotiate(
    stream: &mut TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<Upgrade, Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let (head_len, request) = loop {
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk).await.map_err(|_| Refusal::Silent)?;
        if n == 0 {
            return Err(Refusal::Silent);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => break (len, Request::from(&parsed)),
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(refuse(431, "request head too large"));
            }
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(refuse(431, "too many headers"));
            }
            Err(_) => return Err(refuse(400, "malformed http request")),
        }
    };
    let leftover = buf.split_off(head_len);

    let (path, query) = match request.target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (request.target.clone(), None),
    };
    if !shared.config.websocket {
        return Err(refuse(404, "websockets are disabled (APP_WEBSOCKET=false)"));
    }
    let route = shared
        .routes
        .get(&path)
        .cloned()
        .ok_or_else(|| refuse(404, "no websocket route at this path"))?;

    let headers = &request.headers;
    if request.method != "GET" {
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
        return Err(Refusal::Respond(
            Rejection::new(426, "websocket version 13 is required"),
            Some(("Sec-WebSocket-Version", "13")),
        ));
    }
    let key = headers
        .get("sec-websocket-key")
        .map(HeaderValue::as_bytes)
        .filter(|key| !key.is_empty())
        .ok_or_else(|| refuse(400, "missing Sec-WebSocket-Key"))?
        .to_vec();

    if let Some(origin) = headers.get("origin") {
        let origin = origin.to_str().unwrap_or("");
        let host = headers.get("host").and_then(|h| h.to_str().ok());
        if !origin_allowed(origin, host, shared.config.allowed_origins.as_deref()) {
            return Err(refuse(403, "origin not allowed"));
        }
    }

    let mut handshake = Handshake {
        path,
        query,
        headers: request.headers,
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
            Ok(Err(rejection)) => return Err(Refusal::Respond(rejection, None)),
            Err(_) => {
                tracing::error!(%peer, "connection guard panicked");
                return Err(refuse(500, "internal error"));
            }
        };
    }

    // Only now does the connection count against the limit: one still in its handshake
    // (guards included) does not.
    if shared.drain.is_cancelled() {
        return Err(refuse(503, "server shutting down"));
    }
    let slot = reserve_slot(shared).ok_or_else(|| refuse(503, "too many connections"))?;

    let accept = derive_accept_key(&key);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream
        .write_all(response.as_bytes())
        .await
        .map_err(|_| Refusal::Silent)?;
    Ok(Upgrade {
        route,
        extensions: handshake.extensions,
        leftover,
        slot,
    })
}

fn reserve_slot(shared: &Arc<Shared>) -> Option<Slot> {
    let max = shared.config.max_connections as u64;
    shared
        .hub
        .metrics()
        .connections
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
            (open < max).then_some(open + 1)
        })
        .ok()?;
    Some(Slot {
        shared: shared.clone(),
    })
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

struct Request {
    method: String,
    target: String,
    headers: HeaderMap,
}

impl From<&httparse::Request<'_, '_>> for Request {
    fn from(parsed: &httparse::Request<'_, '_>) -> Self {
        let mut headers = HeaderMap::new();
        for header in parsed.headers.iter() {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(header.name.as_bytes()),
                HeaderValue::from_bytes(header.value),
            ) {
                headers.append(name, value);
            }
        }
        Self {
            method: parsed.method.unwrap_or("").to_owned(),
            target: parsed.path.unwrap_or("/").to_owned(),
            headers,
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    rejection: &Rejection,
    extra: Option<(&'static str, &'static str)>,
) -> std::io::Result<()> {
    let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::FORBIDDEN);
    let extra = extra
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        rejection.reason.len(),
        rejection.reason
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
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
