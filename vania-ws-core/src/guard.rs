//! Guards: a connection guard decides at the handshake, before any socket exists; a join guard
//! decides on each `join-room`.

use http::{Extensions, HeaderMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::client::Client;
use crate::handler::BoxFuture;

/// The handshake request a connection guard inspects. A guard that accepts may attach values
/// (an identity, say) to [`extensions`](Self::extensions); handlers read them from
/// [`Client::extensions`] or with the `Extension<T>` extractor.
#[derive(Debug)]
pub struct Handshake {
    /// The request path, e.g. `/admins`.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Values for the connection's handlers.
    pub extensions: Extensions,
}

impl Handshake {
    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_deref()?.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// A header's value as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// A refused handshake: the HTTP status and a short text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status, e.g. 401.
    pub status: u16,
    /// The response body.
    pub reason: String,
}

impl Rejection {
    /// A rejection with `status` and `reason`.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    /// `401 Unauthorized`.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(401, reason)
    }

    /// `403 Forbidden`.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(403, reason)
    }
}

/// A connection guard, type-erased.
pub type ConnectionGuard =
    Arc<dyn Fn(Handshake) -> BoxFuture<Result<Handshake, Rejection>> + Send + Sync>;

/// A join guard, type-erased: `Err(message)` refuses the join with `forbidden`.
pub type JoinGuard = Arc<dyn Fn(Client, String) -> BoxFuture<Result<(), String>> + Send + Sync>;

pub(crate) fn connection_guard<F, Fut>(guard: F) -> ConnectionGuard
where
    F: Fn(Handshake) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Handshake, Rejection>> + Send + 'static,
{
    Arc::new(move |handshake| Box::pin(guard(handshake)))
}

pub(crate) fn join_guard<F, Fut>(guard: F) -> JoinGuard
where
    F: Fn(Client, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |client, room| Box::pin(guard(client, room)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let handshake = Handshake {
            path: "/a".into(),
            query: Some("x=1&token=abc&flag&enc=a%2Bb%20c".into()),
            headers: HeaderMap::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            extensions: Extensions::new(),
        };
        assert_eq!(handshake.query_param("token").as_deref(), Some("abc"));
        assert_eq!(handshake.query_param("flag").as_deref(), Some(""));
        assert_eq!(handshake.query_param("enc").as_deref(), Some("a+b c"));
        assert_eq!(handshake.query_param("nope"), None);
    }
}
