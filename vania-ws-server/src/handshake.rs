//! The standalone server's HTTP/1.1 upgrade: reads the request head (at most
//! [`MAX_HEAD_BYTES`], exactly), asks the [policy](crate::policy) and answers `101` or the
//! refusal. Any transport works; the axum front end uses hyper's upgrade instead.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::engine::Shared;
use crate::policy::{self, Admission, Refusal, refuse};

/// The largest request head accepted, in bytes, request line and final blank line included.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// An accepted upgrade, answered `101`, with the bytes read past the request head (a client
/// may send its first frame at once).
pub(crate) struct Upgraded {
    pub(crate) admission: Admission,
    pub(crate) leftover: Vec<u8>,
}

/// Reads the request and answers it: `Some` after a `101`, `None` after a refusal (already
/// answered) or a broken connection.
pub(crate) async fn upgrade<S>(
    stream: &mut S,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<Upgraded>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (head, mut buf) = match read_head(stream).await {
        Ok(read) => read,
        Err(Some(refusal)) => {
            shared
                .hub
                .metrics()
                .record_handshake_refused(refusal.rejection.status);
            let _ = respond(stream, &refusal).await;
            return None;
        }
        Err(None) => return None,
    };
    let leftover = buf.split_off(head.len);
    drop(buf);
    match policy::admit(shared, &head.method, &head.target, head.headers, peer).await {
        Ok(admission) => {
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                admission.accept
            );
            stream.write_all(response.as_bytes()).await.ok()?;
            Some(Upgraded {
                admission,
                leftover,
            })
        }
        Err(refusal) => {
            let _ = respond(stream, &refusal).await;
            None
        }
    }
}

struct Head {
    len: usize,
    method: String,
    target: String,
    headers: HeaderMap,
}

/// Reads until a complete request head; `Err(None)` when the peer went away.
async fn read_head<S>(stream: &mut S) -> Result<(Head, Vec<u8>), Option<Refusal>>
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.capacity() == buf.len() {
            buf.reserve(buf.len().max(1024));
        }
        let n = stream.read_buf(&mut buf).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        // Parse no more than the limit, so a head past it is refused however it arrives
        // (in one piece or many).
        let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(window) {
            Ok(httparse::Status::Complete(len)) => {
                let head = Head {
                    len,
                    method: parsed.method.unwrap_or("").to_owned(),
                    target: parsed.path.unwrap_or("/").to_owned(),
                    headers: header_map(parsed.headers),
                };
                return Ok((head, buf));
            }
            Ok(httparse::Status::Partial) if window.len() >= MAX_HEAD_BYTES => {
                return Err(Some(refuse(431, "request head too large")));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Some(refuse(431, "too many headers")));
            }
            Err(_) => return Err(Some(refuse(400, "malformed http request"))),
        }
    }
}

fn header_map(headers: &[httparse::Header<'_>]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) {
            map.append(name, value);
        }
    }
    map
}

async fn respond<S>(stream: &mut S, refusal: &Refusal) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let rejection = &refusal.rejection;
    let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::FORBIDDEN);
    let extra = if refusal.version_header {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
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
