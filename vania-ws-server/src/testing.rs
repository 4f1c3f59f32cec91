//! Test your app over real sockets without writing WebSocket plumbing (feature `testing`).
//!
//! [`TestServer`] runs your [`Router`] on `127.0.0.1:0`; [`TestClient`] connects to a route,
//! sends events and asserts on what it receives:
//!
//! ```
//! use vania_ws_server::serde_json::{json, Value};
//! use vania_ws_server::testing::TestServer;
//! use vania_ws_server::{Client, Router, SendError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let router = Router::new().websocket("/ws", |ev| {
//!     ev.on("message", |client: Client, payload: Value| async move {
//!         client.broadcast("message", &payload)
//!     });
//! });
//! let server = TestServer::start(router).await;
//! let mut alice = server.connect("/ws").await;
//! let mut bob = server.connect("/ws").await;
//! alice.ack("message", json!("hi")).await;                 // waits for the reply
//! assert_eq!(bob.recv_event("message").await, json!("hi"));
//! alice.assert_nothing_received().await;                   // broadcast skips the sender
//! # }
//! ```
//!
//! Waiting is done on replies, never on sleeps: [`TestClient::request`] sends a frame with an
//! `id` and reads until its answer, and [`TestClient::barrier`] proves that nothing queued for a
//! client before it is still in flight. The only timeouts are failure guards.

use crate::{Handle, Router, Server, ServerBuilder, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::Location;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// The WebSocket message types [`TestClient::send_message`] takes, for frames the protocol
/// helpers do not build (a close with a code, a ping, binary data).
pub use tokio_tungstenite::tungstenite::{Message, protocol::CloseFrame};

/// How long any single expected frame may take before a test fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Which front end a [`TestServer`] runs the engine behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrontEnd {
    /// The standalone [`Server`], with its own HTTP upgrade.
    Standalone,
    /// An `axum::serve` app with [`Engine::axum_routes`](crate::Engine::axum_routes) merged in
    /// (feature `axum`).
    #[cfg(feature = "axum")]
    Axum,
}

/// A server running in this process on an ephemeral loopback port.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    /// Where `GET /metrics` is served.
    metrics: SocketAddr,
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts `router` with default settings on `127.0.0.1:0`.
    pub async fn start(router: Router) -> Self {
        Self::start_with(router, ServerConfig::default()).await
    }

    /// Starts `router` with `config`, on `127.0.0.1:0`.
    pub async fn start_with(router: Router, config: ServerConfig) -> Self {
        Self::start_on(FrontEnd::Standalone, router, config).await
    }

    /// Starts `router` with `config` behind `front_end`, on `127.0.0.1:0`.
    pub async fn start_on(front_end: FrontEnd, router: Router, config: ServerConfig) -> Self {
        match front_end {
            FrontEnd::Standalone => Self::start_standalone(router, config).await,
            #[cfg(feature = "axum")]
            FrontEnd::Axum => Self::start_axum(router, config).await,
        }
    }

    #[cfg(feature = "axum")]
    async fn start_axum(router: Router, config: ServerConfig) -> Self {
        let config = config.host("127.0.0.1").port(0);
        let engine = Server::builder(router)
            .config(config.clone())
            .build()
            .expect("the test engine builds");
        let listener = crate::listen(&config).await.expect("the test server binds");
        let addr = listener.local_addr().expect("a bound address");
        let handle = engine.handle();
        let app = engine
            .axum_routes::<()>()
            .merge(engine.axum_metrics())
            .into_make_service_with_connect_info::<SocketAddr>();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(engine.shutdown_after(async {
                    let _ = stopped.await;
                }))
                .await
                .expect("axum serves");
        });
        Self {
            addr,
            metrics: addr,
            handle,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn start_standalone(router: Router, config: ServerConfig) -> Self {
        Self::start_builder(Server::builder(router).config(config)).await
    }

    /// Starts what `builder` builds (its adapter and `on_start` hooks included), standalone,
    /// on `127.0.0.1:0`: for several servers that share an adapter's cluster.
    pub async fn start_builder(mut builder: ServerBuilder) -> Self {
        builder
            .config
            .metrics_addr
            .get_or_insert_with(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let server = builder
            .host("127.0.0.1")
            .port(0)
            .bind()
            .await
            .expect("the test server binds");
        let addr = server.local_addr().expect("a bound address");
        let metrics = server.metrics_addr().expect("a metrics listener");
        let handle = server.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics,
            handle,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `ws://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server-side send handle (also gives the hub's counts).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Connects a client to `path` and reads its `connected` frame.
    #[track_caller]
    pub fn connect(&self, path: &str) -> impl Future<Output = TestClient> {
        TestClient::connect_request(self.url(path))
    }

    /// Connects a client to `path` with extra request headers (a token, a cookie, an
    /// `Origin`) and reads its `connected` frame. A header that is not valid HTTP fails the
    /// test.
    ///
    /// ```no_run
    /// # async fn test(server: vania_ws_server::testing::TestServer) {
    /// let admin = server
    ///     .connect_with("/admins", &[("authorization", "Bearer s3cret")])
    ///     .await;
    /// # }
    /// ```
    #[track_caller]
    pub fn connect_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = TestClient> {
        let at = Location::caller();
        let mut request = self
            .url(path)
            .into_client_request()
            .unwrap_or_else(|err| panic!("{at}: not a valid path {path:?}: {err}"));
        for (name, value) in headers {
            let name = crate::http::HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|err| panic!("{at}: not a header name {name:?}: {err}"));
            let value = crate::http::HeaderValue::from_str(value)
                .unwrap_or_else(|err| panic!("{at}: not a header value {value:?}: {err}"));
            request.headers_mut().append(name, value);
        }
        TestClient::connect_request(request)
    }

    /// `GET /metrics`, over HTTP: the Prometheus text the server exports (the standalone
    /// server's `metrics_addr`, which the test server sets to a free port unless the
    /// settings chose one; [`Engine::axum_metrics`](crate::Engine::axum_metrics) behind
    /// axum).
    pub async fn metrics_text(&self) -> String {
        use http_body_util::{BodyExt, Empty};
        let stream = TcpStream::connect(self.metrics)
            .await
            .expect("the metrics listener accepts");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("an HTTP/1.1 connection to the metrics listener");
        tokio::spawn(connection);
        let request = hyper::Request::get("/metrics")
            .header(hyper::header::HOST, self.metrics.to_string())
            .body(Empty::<bytes::Bytes>::new())
            .expect("a valid request");
        let response = sender
            .send_request(request)
            .await
            .expect("the metrics listener answers");
        assert_eq!(response.status(), 200, "GET /metrics answers 200");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the whole body")
            .to_bytes();
        String::from_utf8(body.to_vec()).expect("metrics are UTF-8 text")
    }

    /// Signals shutdown and waits until the server has drained.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the server drains in time")
                .expect("the server task does not panic");
        }
    }

    /// Waits until `check` holds, for server-side state that no frame reports (such as a
    /// room freed after a disconnect). Fails the test after [`FRAME_TIMEOUT`].
    pub async fn eventually(&self, what: &str, check: impl Fn(&Handle) -> bool) {
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        while !check(&self.handle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A WebSocket client that speaks the vania-ws protocol.
#[derive(Debug)]
pub struct TestClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    id: String,
    next_request: u64,
    pending: VecDeque<Value>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    /// The close code, `None` when the connection ended without a close frame.
    pub code: Option<u16>,
    /// The close frame's reason, empty when it had none (or there was no close frame).
    pub reason: String,
    /// Every frame received before the close.
    pub frames: Vec<Value>,
}

/// Where a test awaited: a failure names the test's own line, not this module's. `async fn`
/// cannot be `#[track_caller]`, so the methods below are plain functions that record their
/// caller and return the future.
type At = &'static Location<'static>;

impl TestClient {
    /// Connects to `url` and reads the `connected` frame, which must come first.
    #[track_caller]
    pub fn connect(url: &str) -> impl Future<Output = Self> + '_ {
        Self::connect_request(url)
    }

    /// Connects with a request built by hand (extra headers such as `Origin`, say) and reads
    /// the `connected` frame.
    #[track_caller]
    pub fn connect_request(request: impl IntoClientRequest + Unpin) -> impl Future<Output = Self> {
        let at = Location::caller();
        let request = request.into_client_request();
        async move {
            let request = request.unwrap_or_else(|err| panic!("{at}: not a valid request: {err}"));
            let url = request.uri().to_string();
            let (ws, response) = tokio::time::timeout(FRAME_TIMEOUT, connect_async(request))
                .await
                .unwrap_or_else(|_| {
                    panic!("{at}: the handshake to {url} took over {FRAME_TIMEOUT:?}")
                })
                .unwrap_or_else(|err| panic!("{at}: connecting to {url} failed: {err}"));
            assert_eq!(response.status(), 101, "{at}: the handshake to {url}");
            let mut client = Self {
                ws,
                id: String::new(),
                next_request: 1,
                pending: VecDeque::new(),
            };
            let first = client.read_frame(at, "`connected`").await;
            assert_eq!(
                first["event"], "connected",
                "{at}: the first frame is `connected`, got {first}"
            );
            client.id = first["payload"]["session_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: `connected` carries no session_id: {first}"))
                .to_owned();
            client
        }
    }

    /// The session id from the `connected` frame.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends a raw text frame.
    #[track_caller]
    pub fn send_text(&mut self, text: impl Into<String>) -> impl Future<Output = ()> + '_ {
        let at = Location::caller();
        let text = text.into();
        async move {
            self.ws
                .send(Message::text(text))
                .await
                .unwrap_or_else(|err| panic!("{at}: the frame could not be sent: {err}"));
        }
    }

    /// Sends a JSON value as a text frame.
    #[track_caller]
    pub fn send(&mut self, frame: Value) -> impl Future<Output = ()> + '_ {
        self.send_text(frame.to_string())
    }

    /// Sends `{"event": event, "payload": payload}` without an id.
    #[track_caller]
    pub fn emit(&mut self, event: &str, payload: Value) -> impl Future<Output = ()> + '_ {
        self.send(json!({ "event": event, "payload": payload }))
    }

    /// Sends a raw WebSocket message.
    #[track_caller]
    pub fn send_message(&mut self, message: Message) -> impl Future<Output = ()> + '_ {
        let at = Location::caller();
        async move {
            self.ws
                .send(message)
                .await
                .unwrap_or_else(|err| panic!("{at}: the message could not be sent: {err}"));
        }
    }

    /// Sends `frame` with a fresh `id` added and returns its answer (`ack` or `error`).
    /// Other frames received meanwhile are kept for [`recv`](Self::recv).
    #[track_caller]
    pub fn request_frame(&mut self, frame: Value) -> impl Future<Output = Value> + '_ {
        let at = Location::caller();
        self.request_at(frame, at)
    }

    async fn request_at(&mut self, mut frame: Value, at: At) -> Value {
        let id = self.next_request;
        self.next_request += 1;
        frame["id"] = json!(id);
        let what = format!("the answer to {frame}");
        self.send_text(frame.to_string()).await;
        loop {
            let reply = self.read_frame(at, &what).await;
            if reply.get("id") == Some(&json!(id)) {
                assert!(
                    reply["event"] == "ack" || reply["event"] == "error",
                    "{at}: a reply is `ack` or `error`, got {reply}"
                );
                return reply;
            }
            self.pending.push_back(reply);
        }
    }

    /// Sends `{"event", "payload", "id"}` and returns the answer (`ack` or `error`).
    #[track_caller]
    pub fn request(&mut self, event: &str, payload: Value) -> impl Future<Output = Value> + '_ {
        let at = Location::caller();
        self.request_at(json!({ "event": event, "payload": payload }), at)
    }

    /// Like [`request`](Self::request), and asserts the answer is an `ack`; returns its payload.
    #[track_caller]
    pub fn ack<'a>(
        &'a mut self,
        event: &'a str,
        payload: Value,
    ) -> impl Future<Output = Value> + 'a {
        let at = Location::caller();
        async move {
            let reply = self
                .request_at(json!({ "event": event, "payload": payload }), at)
                .await;
            assert_eq!(
                reply["event"], "ack",
                "{at}: expected an ack for `{event}`, got {reply}"
            );
            reply["payload"].clone()
        }
    }

    /// Joins `room` and waits for the ack.
    #[track_caller]
    pub fn join<'a>(&'a mut self, room: &'a str) -> impl Future<Output = ()> + 'a {
        let at = Location::caller();
        async move {
            let reply = self
                .request_at(json!({ "event": "join-room", "room": room }), at)
                .await;
            assert_eq!(reply["event"], "ack", "{at}: join-room {room}: {reply}");
            assert_eq!(
                reply["payload"],
                json!({ "room": room }),
                "{at}: join-room {room}"
            );
        }
    }

    /// Leaves `room` and waits for the ack.
    #[track_caller]
    pub fn leave<'a>(&'a mut self, room: &'a str) -> impl Future<Output = ()> + 'a {
        let at = Location::caller();
        async move {
            let reply = self
                .request_at(json!({ "event": "left-room", "room": room }), at)
                .await;
            assert_eq!(reply["event"], "ack", "{at}: left-room {room}: {reply}");
        }
    }

    /// Round-trips a request with no side effect (an unknown event): every frame queued for
    /// this client before it has then been received and is returned by [`recv`](Self::recv).
    #[track_caller]
    pub fn barrier(&mut self) -> impl Future<Output = ()> + '_ {
        let at = Location::caller();
        self.barrier_at(at)
    }

    async fn barrier_at(&mut self, at: At) {
        let reply = self
            .request_at(
                json!({ "event": "vania-ws-test-barrier", "payload": null }),
                at,
            )
            .await;
        assert_eq!(
            reply["payload"]["code"], "unknown_event",
            "{at}: the barrier's answer: {reply}"
        );
    }

    /// Asserts that nothing was delivered to this client (using a [`barrier`](Self::barrier)).
    #[track_caller]
    pub fn assert_nothing_received(&mut self) -> impl Future<Output = ()> + '_ {
        let at = Location::caller();
        async move {
            self.barrier_at(at).await;
            assert!(
                self.pending.is_empty(),
                "{at}: expected no frames, got {:?}",
                self.pending
            );
        }
    }

    /// The next frame that is not a reply to a request of this client.
    #[track_caller]
    pub fn recv(&mut self) -> impl Future<Output = Value> + '_ {
        let at = Location::caller();
        self.recv_at(at, "a frame")
    }

    async fn recv_at(&mut self, at: At, what: &str) -> Value {
        match self.pending.pop_front() {
            Some(frame) => frame,
            None => self.read_frame(at, what).await,
        }
    }

    /// The next frame, which must have this event; returns its payload.
    #[track_caller]
    pub fn recv_event<'a>(&'a mut self, event: &'a str) -> impl Future<Output = Value> + 'a {
        let at = Location::caller();
        async move {
            let frame = self.recv_at(at, &format!("`{event}`")).await;
            assert_eq!(
                frame["event"], event,
                "{at}: expected `{event}`, got {frame}"
            );
            frame["payload"].clone()
        }
    }

    /// The payload of the next frame with this event, skipping (and dropping) the frames of
    /// other events before it. A failure lists what arrived instead.
    #[track_caller]
    pub fn recv_until<'a>(&'a mut self, event: &'a str) -> impl Future<Output = Value> + 'a {
        let at = Location::caller();
        async move {
            let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
            let mut skipped = Vec::new();
            loop {
                let next = match self.pending.pop_front() {
                    Some(frame) => Some(Ok(frame)),
                    None => tokio::time::timeout_at(deadline, self.read_text())
                        .await
                        .ok(),
                };
                match next {
                    Some(Ok(frame)) if frame["event"] == event => {
                        return frame["payload"].clone();
                    }
                    Some(Ok(frame)) => skipped.push(frame),
                    Some(Err(other)) => panic!(
                        "{at}: expected `{event}`, the connection gave {other} after {}",
                        Value::Array(skipped)
                    ),
                    None => panic!(
                        "{at}: no `{event}` within {FRAME_TIMEOUT:?}; received instead: {}",
                        Value::Array(skipped)
                    ),
                }
            }
        }
    }

    /// Keeps reading (and so answering pings) for `duration`, asserting that no frame arrives.
    #[track_caller]
    pub fn idle(&mut self, duration: Duration) -> impl Future<Output = ()> + '_ {
        let at = Location::caller();
        async move {
            assert!(
                self.pending.is_empty(),
                "{at}: unread frames: {:?}",
                self.pending
            );
            if let Ok(frame) = tokio::time::timeout(duration, self.read_frame(at, "no frame")).await
            {
                panic!("{at}: expected no frame while idle, got {frame}");
            }
        }
    }

    /// Takes the frames received so far and not yet read.
    pub fn take_pending(&mut self) -> Vec<Value> {
        self.pending.drain(..).collect()
    }

    /// Reads until the connection ends; returns the close code and the frames before it.
    #[track_caller]
    pub fn closed(mut self) -> impl Future<Output = Closed> {
        let at = Location::caller();
        async move {
            let mut frames: Vec<Value> = self.pending.drain(..).collect();
            loop {
                let next = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("{at}: the connection did not close within {FRAME_TIMEOUT:?}; received {frames:?}")
                    });
                match next {
                    Some(Ok(Message::Text(text))) => {
                        frames.push(serde_json::from_str(&text).unwrap_or_else(|err| {
                            panic!("{at}: the server sent non-json {text:?}: {err}")
                        }));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Closed {
                            code: frame.as_ref().map(|f| u16::from(f.code)),
                            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                            frames,
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        return Closed {
                            code: None,
                            reason: String::new(),
                            frames,
                        };
                    }
                }
            }
        }
    }

    /// Closes normally (1000) and waits for the server's answer.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: 1000.into(),
                reason: "".into(),
            }))
            .await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await {}
    }

    /// The next text frame as JSON; `Err` with a description when the connection gives
    /// something else (a close, an error, a binary frame).
    async fn read_text(&mut self) -> Result<Value, String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map_err(|err| format!("non-json {text:?}: {err}"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => return Err(format!("a close frame {frame:?}")),
                Some(Ok(other)) => return Err(format!("{other:?}")),
                Some(Err(err)) => return Err(format!("an error: {err}")),
                None => return Err("its end".to_owned()),
            }
        }
    }

    /// The next text frame, awaited for `what`; fails the test at `at` otherwise.
    async fn read_frame(&mut self, at: At, what: &str) -> Value {
        match tokio::time::timeout(FRAME_TIMEOUT, self.read_text()).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(other)) => panic!("{at}: awaiting {what}, the connection gave {other}"),
            Err(_) => panic!("{at}: awaiting {what}, nothing arrived within {FRAME_TIMEOUT:?}"),
        }
    }
}

/// Asserts that a handshake (a URL, or a request built by hand) is refused with HTTP `status`.
pub async fn assert_refused(request: impl IntoClientRequest + Unpin, status: u16) {
    let request = request.into_client_request().expect("a valid request");
    let url = request.uri().to_string();
    let result = tokio::time::timeout(FRAME_TIMEOUT, connect_async(request))
        .await
        .expect("the handshake is answered in time");
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), status, "handshake to {url}");
        }
        Ok(_) => panic!("handshake to {url} was accepted, expected HTTP {status}"),
        Err(err) => panic!("handshake to {url} failed with {err}, expected HTTP {status}"),
    }
}
