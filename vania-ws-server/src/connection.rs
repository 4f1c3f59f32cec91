//! One connection: the handshake, then a reader that dispatches frames in order and a writer
//! that drains the client's queue to the socket.

use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vania_ws_core::{OutboxReceiver, Outgoing, Route, Session, close_code};

use crate::server::Shared;

/// How long a closing connection waits for the peer's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many queued frames the writer batches before one flush.
const WRITE_BATCH: usize = 64;

type Sink = futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>;

pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let mut matched: Option<Arc<Route>> = None;
    // The error type is tungstenite's, so its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if !shared.config.websocket {
            return Err(reject(
                StatusCode::NOT_FOUND,
                "websockets are disabled (APP_WEBSOCKET=false)",
            ));
        }
        match shared.routes.get(request.uri().path()) {
            Some(route) => {
                matched = Some(route.clone());
                Ok(response)
            }
            None => Err(reject(
                StatusCode::NOT_FOUND,
                "no websocket route at this path",
            )),
        }
    };
    let handshake = accept_hdr_async_with_config(stream, callback, Some(shared.ws_config));
    let ws = match tokio::time::timeout(shared.config.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(err)) => {
            tracing::debug!(?peer, error = %err, "handshake refused");
            return;
        }
        Err(_) => {
            tracing::debug!(?peer, "handshake timed out");
            return;
        }
    };
    let Some(route) = matched else { return };
    let (session, queue) = Session::open(&shared.hub, route.clone()).await;
    let span = tracing::info_span!("ws", client = session.client().id(), route = route.path());
    run(ws, session, queue, shutdown).instrument(span).await;
}

fn reject(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

async fn run(
    ws: WebSocketStream<TcpStream>,
    session: Session,
    queue: OutboxReceiver,
    shutdown: CancellationToken,
) {
    let (sink, mut stream) = ws.split();
    let writer_done = Arc::new(Notify::new());
    let writer = tokio::spawn(
        write_loop(sink, queue, writer_done.clone()).instrument(tracing::Span::current()),
    );
    let client = session.client().clone();
    let mut closing_since: Option<tokio::time::Instant> = None;
    loop {
        let deadline = closing_since.map(|since| since + CLOSE_TIMEOUT);
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled(), if closing_since.is_none() => {
                client.close(close_code::GOING_AWAY, "server shutting down");
                closing_since = Some(tokio::time::Instant::now());
                continue;
            }
            () = writer_done.notified(), if closing_since.is_none() => {
                // The writer sent a close frame or lost the socket: wait for the peer's close.
                closing_since = Some(tokio::time::Instant::now());
                continue;
            }
            () = sleep_until(deadline) => break,
            message = stream.next() => message,
        };
        let message = match message {
            None => break,
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                let (code, reason) = close_for(&err);
                tracing::debug!(error = %err, code, "read failed");
                if let Some(code) = code {
                    client.close(code, reason);
                    closing_since.get_or_insert_with(tokio::time::Instant::now);
                    // The socket's read side is unusable; let the writer send the close frame.
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer_done.notified()).await;
                }
                break;
            }
        };
        if closing_since.is_some() || client.outbox().is_closing() {
            // Closing: nothing more is dispatched, only the peer's close is awaited.
            closing_since.get_or_insert_with(tokio::time::Instant::now);
            continue;
        }
        match message {
            Message::Text(text) => session.handle_text(&text).await,
            Message::Binary(_) => session.handle_binary(),
            Message::Close(_) => {
                // tungstenite queues the close reply; reading on flushes it and ends the stream.
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    session.close().await;
    client.close(close_code::NORMAL, "");
    let abort = writer.abort_handle();
    if tokio::time::timeout(CLOSE_TIMEOUT, writer).await.is_err() {
        abort.abort();
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn close_for(err: &WsError) -> (Option<u16>, &'static str) {
    match err {
        WsError::Capacity(_) => (Some(close_code::TOO_BIG), "message too big"),
        WsError::Utf8(_) => (Some(close_code::INVALID_PAYLOAD), "invalid utf-8"),
        WsError::Protocol(_) => (Some(1002), "protocol error"),
        _ => (None, ""),
    }
}

async fn write_loop(mut sink: Sink, mut queue: OutboxReceiver, done: Arc<Notify>) {
    'outer: while let Some(item) = queue.recv().await {
        let mut next = Some(item);
        let mut batched = 0;
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame(frame) => {
                    if sink.feed(Message::Text(frame.into_text())).await.is_err() {
                        break 'outer;
                    }
                }
                Outgoing::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break 'outer;
                }
            }
            batched += 1;
            if batched < WRITE_BATCH {
                next = queue.try_recv();
            }
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    done.notify_one();
}
