//! Guards declared on a controller (`#[ws_controller("/vault", guard = authorize)]`): they
//! guard the controller's own route, so guard and route cannot drift apart. In a file of its
//! own: the other controller tests collect every controller of their binary.

use serde_json::{Value, json};
use vania_ws::testing::TestServer;
use vania_ws::{Router, on, ws_controller};

/// A controller that guards its own route: the guard cannot drift from the route's path.
struct Vault {
    token: String,
}

#[ws_controller("/vault", guard = authorize)]
impl Vault {
    async fn authorize(
        &self,
        request: vania_ws::Handshake,
    ) -> Result<vania_ws::Handshake, vania_ws::Rejection> {
        if request.query_param("token").as_deref() == Some(self.token.as_str()) {
            Ok(request)
        } else {
            Err(vania_ws::Rejection::unauthorized(
                "`/vault` needs its token",
            ))
        }
    }

    #[on("open")]
    async fn open(&self) -> &'static str {
        "opened"
    }
}

/// A guard without `self`, on a controller collected with `Default`.
#[derive(Default)]
struct Lobby;

#[ws_controller("/lobby", guard = only_browsers)]
impl Lobby {
    async fn only_browsers(
        request: vania_ws::Handshake,
    ) -> Result<vania_ws::Handshake, vania_ws::Rejection> {
        match request.header("user-agent") {
            Some(agent) if agent.starts_with("Mozilla/") => Ok(request),
            _ => Err(vania_ws::Rejection::forbidden("browsers only")),
        }
    }

    #[on("hello")]
    async fn hello(&self) -> &'static str {
        "hi"
    }
}

#[tokio::test]
async fn a_controller_declares_the_guard_of_its_own_route() {
    let router = Router::new()
        .controller(Vault {
            token: "s3cret".to_owned(),
        })
        .controller(Lobby);
    let server = TestServer::start(router).await;
    vania_ws::testing::assert_refused(server.url("/vault"), 401).await;
    vania_ws::testing::assert_refused(server.url("/vault?token=wrong"), 401).await;
    let mut inside = server.connect("/vault?token=s3cret").await;
    assert_eq!(inside.ack("open", Value::Null).await, json!("opened"));

    vania_ws::testing::assert_refused(server.url("/lobby"), 403).await;
    let mut browser = server
        .connect_with("/lobby", &[("user-agent", "Mozilla/5.0")])
        .await;
    assert_eq!(browser.ack("hello", Value::Null).await, json!("hi"));
}

#[test]
fn a_linked_controller_this_router_does_not_serve_is_reported() {
    // `Vault` exists in this binary, but this router neither registers it nor collects.
    let table = Router::new()
        .controller(Lobby)
        .websocket("/ws", |_| {})
        .build()
        .unwrap();
    let unserved = table.unserved_controllers();
    assert_eq!(unserved.len(), 1, "{unserved:?}");
    assert!(
        unserved[0]
            .starts_with("`Vault` on `/vault` (declared at tests/tests/controller_guards.rs:"),
        "{unserved:?}"
    );
    // Collecting serves every controller: nothing is left out.
    let everything = Router::new()
        .controller(Vault {
            token: String::new(),
        })
        .controllers()
        .build()
        .unwrap();
    assert!(everything.unserved_controllers().is_empty());
}
