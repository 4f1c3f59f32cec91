//! The API refuses mistakes loudly: close codes a client must never see, sends to a route
//! that does not exist, over real sockets.

use serde_json::{Value, json};
use vania_ws::testing::TestServer;
use vania_ws::{Client, CloseCode, Router};

/// 130 bytes: more than a close frame's 123 bytes of reason.
const LONG_REASON: &str = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789";

fn router() -> Router {
    Router::new().websocket("/ws", |ev| {
        // Closes with the code the client asks for, checked at run time.
        ev.on("kick", |client: Client, code: u16| async move {
            let code = CloseCode::try_from(code).map_err(|err| err.to_string())?;
            client.close(code, "kicked").map_err(|err| err.to_string())
        });
        // An application code, checked at compile time, with too long a reason.
        ev.on("kick-verbosely", |client: Client| async move {
            client
                .close(CloseCode::app::<4001>(), LONG_REASON)
                .map_err(|err| err.to_string())
        });
    })
}

#[tokio::test]
async fn a_handler_closes_with_an_application_code_and_reason() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    client.emit("kick", json!(4001)).await;
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(4001));
    assert_eq!(closed.reason, "kicked");
}

#[tokio::test]
async fn codes_a_client_must_never_see_cannot_be_sent() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    // 1005, 1006 and 1015 mean "no close frame was seen"; 1010 is the client's; 1004 and
    // 999 are not defined.
    for code in [1005, 1006, 1015, 1010, 1004, 999] {
        let reply = client.request("kick", json!(code)).await;
        assert_eq!(reply["event"], "error", "kick {code}: {reply}");
        assert_eq!(reply["payload"]["code"], "handler_error");
        let message = reply["payload"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("close code {code} cannot be sent")),
            "{message}"
        );
    }
    // The connection is still open and served.
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn a_close_reason_that_does_not_fit_is_an_error_and_closes_nothing() {
    let server = TestServer::start(router()).await;
    let mut client = server.connect("/ws").await;
    let reply = client.request("kick-verbosely", Value::Null).await;
    assert_eq!(reply["payload"]["code"], "handler_error", "{reply}");
    assert_eq!(
        reply["payload"]["message"],
        "close reason is 130 bytes; a close frame holds at most 123"
    );
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn a_send_to_a_route_that_does_not_exist_is_an_error() {
    let server = TestServer::start(router()).await;
    let mut member = server.connect("/ws").await;
    member.join("lobby").await;

    let err = server.handle().route("/wss").unwrap_err();
    assert_eq!(err.path(), "/wss");
    assert_eq!(
        err.to_string(),
        "no route `/wss` in this server's table (its routes: /ws)"
    );
    // `?` turns it into a `SendError`, for handlers and REST endpoints.
    let as_send_error = vania_ws::SendError::from(err);
    assert!(matches!(
        as_send_error,
        vania_ws::SendError::UnknownRoute(_)
    ));

    // The checked route takes the arguments in `Client::to_room`'s order.
    let ws = server.handle().route("/ws").unwrap();
    assert_eq!(ws.path(), "/ws");
    assert_eq!(ws.room_members("lobby"), 1);
    assert_eq!(ws.to_room("note", "lobby", &json!("hi")).unwrap(), 1);
    assert_eq!(member.recv_event("note").await, json!("hi"));
}

// ---- What a connection keeps, and why it left ----

use std::time::Duration;
use tokio::sync::mpsc;
use vania_ws::testing::TestClient;
use vania_ws::{DisconnectReason, ServerConfig, State};

/// Where the `disconnect` handler reports each client's reason.
struct Reasons(mpsc::UnboundedSender<(String, Option<DisconnectReason>)>);

#[derive(Clone)]
struct UserName(String);

fn session_router(reasons: mpsc::UnboundedSender<(String, Option<DisconnectReason>)>) -> Router {
    Router::new()
        .state(Reasons(reasons))
        .websocket("/ws", |ev| {
            ev.on("login", |client: Client, name: String| async move {
                client.set_data(UserName(name));
            });
            ev.on("whoami", |client: Client| async move {
                client.data::<UserName>().map(|UserName(name)| name)
            });
            ev.on("kick", |client: Client| async move {
                client
                    .close(CloseCode::app::<4001>(), "kicked")
                    .map_err(|err| err.to_string())
            });
            ev.on("going-away", |client: Client| async move {
                client
                    .close(CloseCode::GOING_AWAY, "moved to another node")
                    .map_err(|err| err.to_string())
            });
            ev.on("flood", |client: Client| async move {
                // More than the 64 KiB send queue, at once: the queue overflows.
                let filler = "x".repeat(4096);
                for _ in 0..64 {
                    let _ = client.emit("bulk", &filler);
                }
            });
            ev.on(
                "disconnect",
                |client: Client, reasons: State<Reasons>| async move {
                    let Reasons(tx) = &*reasons;
                    let _ = tx.send((client.id().to_owned(), client.disconnect_reason()));
                },
            );
        })
}

async fn next_reason(
    reasons: &mut mpsc::UnboundedReceiver<(String, Option<DisconnectReason>)>,
    id: &str,
) -> DisconnectReason {
    let (left, reason) = tokio::time::timeout(Duration::from_secs(10), reasons.recv())
        .await
        .expect("the disconnect handler ran in time")
        .expect("the server is running");
    assert_eq!(left, id);
    reason.expect("the reason is set before the disconnect handler runs")
}

#[tokio::test]
async fn data_set_by_one_handler_is_read_by_the_next_and_by_no_other_client() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let server = TestServer::start(session_router(tx)).await;
    let mut alice = server.connect("/ws").await;
    let mut bob = server.connect("/ws").await;
    assert_eq!(alice.ack("whoami", Value::Null).await, Value::Null);
    alice.ack("login", json!("alice")).await;
    assert_eq!(alice.ack("whoami", Value::Null).await, json!("alice"));
    assert_eq!(bob.ack("whoami", Value::Null).await, Value::Null);
    // A second login replaces the value.
    alice.ack("login", json!("alice2")).await;
    assert_eq!(alice.ack("whoami", Value::Null).await, json!("alice2"));
    // The handle reaches the same client, and its data.
    let from_outside = server.handle().client(alice.id()).unwrap();
    assert_eq!(
        from_outside.data::<UserName>().map(|UserName(name)| name),
        Some("alice2".to_owned())
    );
}

#[tokio::test]
async fn the_disconnect_handler_reads_why_the_client_left() {
    let (tx, mut reasons) = mpsc::unbounded_channel();
    let config = ServerConfig::default()
        .heartbeat(Duration::from_millis(100), Duration::from_millis(150))
        .close_timeout(Duration::from_millis(300))
        .send_queue_bytes(64 * 1024);
    let server = TestServer::start_with(session_router(tx), config).await;

    // A close frame from the client, with its code.
    let mut client = server.connect("/ws").await;
    let id = client.id().to_owned();
    client
        .send_message(vania_ws::testing::Message::Close(Some(
            vania_ws::testing::CloseFrame {
                code: 4100.into(),
                reason: "bye".into(),
            },
        )))
        .await;
    assert_eq!(
        next_reason(&mut reasons, &id).await,
        DisconnectReason::ClientClosed { code: Some(4100) }
    );
    drop(client);

    // The TCP connection dropped, no close frame.
    let client = server.connect("/ws").await;
    let id = client.id().to_owned();
    drop(client);
    assert_eq!(
        next_reason(&mut reasons, &id).await,
        DisconnectReason::TransportClosed
    );

    // A handler closed it.
    let mut client = server.connect("/ws").await;
    let id = client.id().to_owned();
    client.emit("kick", Value::Null).await;
    assert_eq!(client.closed().await.code, Some(4001));
    assert_eq!(
        next_reason(&mut reasons, &id).await,
        DisconnectReason::ServerClosed {
            code: CloseCode::app::<4001>()
        }
    );

    // Its send queue overflowed.
    let client = server.connect("/ws").await;
    let id = client.id().to_owned();
    let mut client: TestClient = client;
    client.emit("flood", Value::Null).await;
    assert_eq!(
        next_reason(&mut reasons, &id).await,
        DisconnectReason::SlowConsumer
    );
    drop(client);

    // It stopped answering pings: never read from again.
    let silent = server.connect("/ws").await;
    let id = silent.id().to_owned();
    assert_eq!(
        next_reason(&mut reasons, &id).await,
        DisconnectReason::PingTimeout
    );
    drop(silent);

    // A handler closed it with 1001, the code a shutdown sends: still the app's close.
    let mut client = server.connect("/ws").await;
    let id = client.id().to_owned();
    client.emit("going-away", Value::Null).await;
    assert_eq!(client.closed().await.code, Some(1001));
    assert_eq!(
        next_reason(&mut reasons, &id).await,
        DisconnectReason::ServerClosed {
            code: CloseCode::GOING_AWAY
        }
    );

    // The server shut down.
    let mut client = server.connect("/ws").await;
    let id = client.id().to_owned();
    client.barrier().await;
    let stopping = tokio::spawn(server.shutdown());
    assert_eq!(
        next_reason(&mut reasons, &id).await,
        DisconnectReason::ServerShutdown
    );
    assert_eq!(client.closed().await.code, Some(1001));
    stopping.await.unwrap();
}

#[tokio::test]
async fn the_handle_joins_leaves_lists_and_disconnects_clients() {
    let server = TestServer::start(router()).await;
    let mut a = server.connect("/ws").await;
    let mut b = server.connect("/ws").await;
    let handle = server.handle();
    let ws = handle.route("/ws").unwrap();

    assert_eq!(handle.join(a.id(), "news"), Ok(true));
    assert_eq!(handle.join(a.id(), "news"), Ok(false));
    assert_eq!(handle.join(b.id(), "news"), Ok(true));
    let mut ids = vec![a.id().to_owned(), b.id().to_owned()];
    ids.sort();
    assert_eq!(ws.room_member_ids("news"), ids);
    assert!(matches!(
        handle.join("ws:nobody", "news"),
        Err(vania_ws::error::JoinError::NotConnected(id)) if id == "ws:nobody"
    ));

    // Everyone in the room but `a`.
    assert_eq!(
        ws.to_room_except("note", "news", &[a.id()], &json!("not a"))
            .unwrap(),
        1
    );
    assert_eq!(b.recv_event("note").await, json!("not a"));
    a.assert_nothing_received().await;

    assert_eq!(handle.leave(b.id(), "news"), Ok(true));
    assert_eq!(ws.room_member_ids("news"), vec![a.id().to_owned()]);

    assert_eq!(
        handle.disconnect(a.id(), CloseCode::POLICY, "banned"),
        Ok(true)
    );
    let closed = a.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (Some(1008), "banned")
    );
    assert_eq!(
        handle.disconnect("ws:nobody", CloseCode::POLICY, "banned"),
        Ok(false)
    );
}

#[tokio::test]
async fn an_on_start_hook_gets_the_handle_before_the_server_runs() {
    let (tx, mut rx) = tokio::sync::oneshot::channel::<vania_ws::Handle>();
    let server = vania_ws::Server::builder(router())
        .host("127.0.0.1")
        .port(0)
        .on_start(move |handle| {
            let _ = tx.send(handle);
        })
        .bind()
        .await
        .unwrap();
    // The hook ran while the server was built, before it serves anyone.
    let handle = rx.try_recv().expect("the hook ran during bind()");
    let url = format!("ws://{}/ws", server.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let mut client = TestClient::connect(&url).await;
    client.join("lobby").await;
    let ws = handle.route("/ws").unwrap();
    assert_eq!(ws.to_room("tick", "lobby", &1).unwrap(), 1);
    assert_eq!(client.recv_event("tick").await, json!(1));
    let _ = stop.send(());
    assert_eq!(client.closed().await.code, Some(1001));
    running.await.unwrap();
}

// ---- Closures take extractors as controllers do ----

#[derive(Clone)]
struct Visitor(String);

struct Prefix(&'static str);

#[derive(serde::Deserialize)]
struct Say {
    text: String,
}

#[tokio::test]
async fn closures_take_extractors_in_any_order_with_or_without_the_client() {
    let router = Router::new()
        .state(Prefix("> "))
        .websocket("/ws", |ev| {
            ev.on("ping", || async { "pong" });
            ev.on("inc", |n: u32| async move { n + 1 });
            ev.on(
                "say",
                |prefix: State<Prefix>, say: Say, client: Client| async move {
                    client.emit("said", &format!("{}{}", prefix.0.0, say.text))?;
                    Ok::<_, vania_ws::SendError>(())
                },
            );
            ev.on(
                "visitor",
                |vania_ws::Extension(Visitor(name)): vania_ws::Extension<Visitor>| async move {
                    name
                },
            );
        })
        .guard("/ws", |mut request: vania_ws::Handshake| async move {
            let name = request.query_param("name").unwrap_or_default();
            request.extensions.insert(Visitor(name));
            Ok(request)
        });
    let server = TestServer::start(router).await;
    let mut client = server.connect("/ws?name=ada").await;
    assert_eq!(client.ack("ping", Value::Null).await, json!("pong"));
    assert_eq!(client.ack("inc", json!(41)).await, json!(42));
    client.ack("say", json!({"text": "hi"})).await;
    assert_eq!(client.recv_event("said").await, json!("> hi"));
    assert_eq!(client.ack("visitor", Value::Null).await, json!("ada"));
    // The payload extractor still names what did not fit.
    let refused = client.request("inc", json!("x")).await;
    assert_eq!(refused["payload"]["code"], "invalid_payload", "{refused}");
}

// ---- Extractors that await ----

/// The signed-in user, looked up asynchronously from what `login` stored.
struct CurrentUser(String);

impl vania_ws::extract::FromEvent for CurrentUser {
    fn from_event(
        client: &Client,
        _payload: Option<&vania_ws::serde_json::value::RawValue>,
    ) -> vania_ws::extract::Extraction<Self> {
        let name = client.data::<UserName>();
        vania_ws::extract::Extraction::wait(async move {
            // Stands for a database lookup: really waits once.
            tokio::task::yield_now().await;
            name.map(|UserName(name)| CurrentUser(name)).ok_or_else(|| {
                vania_ws::error::DispatchError::new(
                    vania_ws::error::ErrorCode::Forbidden,
                    "log in first",
                )
            })
        })
    }
}

#[derive(Default)]
struct Profile;

#[vania_ws::ws_controller("/profile")]
impl Profile {
    #[vania_ws::on("login")]
    async fn login(&self, client: &Client, name: String) {
        client.set_data(UserName(name));
    }

    #[vania_ws::on("me")]
    async fn me(&self, user: CurrentUser, greeting: String) -> String {
        format!("{greeting}, {}", user.0)
    }
}

#[tokio::test]
async fn an_extractor_may_await_in_closures_and_controllers() {
    let router = Router::new()
        .websocket("/ws", |ev| {
            ev.on("login", |client: Client, name: String| async move {
                client.set_data(UserName(name));
            });
            ev.on("me", |greeting: String, user: CurrentUser| async move {
                format!("{greeting}, {}", user.0)
            });
        })
        .controller(Profile);
    let server = TestServer::start(router).await;
    for path in ["/ws", "/profile"] {
        let mut client = server.connect(path).await;
        // Before the login the lookup refuses the event, and the handler does not run.
        let refused = client.request("me", json!("hello")).await;
        assert_eq!(
            refused["payload"],
            json!({"code": "forbidden", "message": "log in first"}),
            "{path}"
        );
        client.ack("login", json!("ada")).await;
        assert_eq!(
            client.ack("me", json!("hello")).await,
            json!("hello, ada"),
            "{path}"
        );
        // A payload that does not fit is still refused before any lookup.
        let bad = client.request("me", json!(7)).await;
        assert_eq!(bad["payload"]["code"], "invalid_payload", "{path}");
    }
}
