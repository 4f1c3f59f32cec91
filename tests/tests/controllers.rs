//! Controllers end to end: extractors, replies and errors over real sockets, explicit and
//! collected registration, and mixing with closure routes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use vania_ws::error::RouterError;
use vania_ws::testing::TestServer;
use vania_ws::{Client, Router, SendError, State, on, ws_controller};

#[derive(Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

#[derive(Serialize)]
struct Receipt {
    item: String,
    total: u32,
}

struct Prices {
    unit: u32,
}

#[derive(Debug)]
struct OutOfStock(String);

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is out of stock", self.0)
    }
}

/// A controller with a dependency built by the app (no `Default`).
struct Shop {
    orders: Arc<AtomicUsize>,
}

#[ws_controller("/shop")]
impl Shop {
    #[on("order")]
    async fn order(
        &self,
        client: &Client,
        prices: State<Prices>,
        order: Order,
    ) -> Result<Receipt, OutOfStock> {
        if order.item == "unicorn" {
            return Err(OutOfStock(order.item));
        }
        self.orders.fetch_add(1, Ordering::SeqCst);
        client
            .to_room("orders", "staff", &json!({"item": order.item}))
            .map_err(|err| OutOfStock(err.to_string()))?;
        Ok(Receipt {
            total: prices.unit * order.quantity,
            item: order.item,
        })
    }

    #[on("maybe")]
    async fn maybe(&self, note: Option<String>) -> Value {
        json!({ "note": note })
    }

    #[on("raw")]
    async fn raw(&self, payload: Value, owned: Client) -> Result<Value, SendError> {
        owned.emit("raw", &payload)?;
        Ok(payload)
    }

    #[on("count")]
    async fn count(&self) -> usize {
        self.orders.load(Ordering::SeqCst)
    }

    #[on("boom")]
    async fn boom(&self) {
        panic!("controller panic");
    }

    #[on("connect")]
    async fn connect(&self, client: &Client) -> Result<(), SendError> {
        client.emit("welcome", &client.route())
    }
}

fn shop_router(orders: Arc<AtomicUsize>) -> Router {
    Router::new()
        .controller(Shop { orders })
        .state(Prices { unit: 3 })
        // A closure route on the same path as the controller.
        .websocket("/shop", |ev| {
            ev.on("closure", |_client: Client, n: u32| async move { n + 1 });
        })
}

#[tokio::test]
async fn a_controller_handles_its_route_with_state_and_typed_replies() {
    let orders = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(shop_router(orders.clone())).await;
    let mut staff = server.connect("/shop").await;
    assert_eq!(staff.recv_event("welcome").await, json!("/shop"));
    staff.join("staff").await;
    let mut buyer = server.connect("/shop").await;
    assert_eq!(buyer.recv_event("welcome").await, json!("/shop"));

    let receipt = buyer
        .ack("order", json!({"item": "tea", "quantity": 4}))
        .await;
    assert_eq!(receipt, json!({"item": "tea", "total": 12}));
    assert_eq!(staff.recv_event("orders").await, json!({"item": "tea"}));
    assert_eq!(orders.load(Ordering::SeqCst), 1);
    assert_eq!(buyer.ack("count", Value::Null).await, json!(1));

    let refused = buyer
        .request("order", json!({"item": "unicorn", "quantity": 1}))
        .await;
    assert_eq!(
        refused["payload"],
        json!({"code": "handler_error", "message": "unicorn is out of stock"})
    );
    assert_eq!(buyer.ack("closure", json!(41)).await, json!(42));
}

#[tokio::test]
async fn controller_payload_errors_name_the_field() {
    let server = TestServer::start(shop_router(Arc::default())).await;
    let mut buyer = server.connect("/shop").await;
    buyer.recv_event("welcome").await;
    let missing = buyer.request("order", json!({"item": "tea"})).await;
    assert_eq!(missing["payload"]["code"], "invalid_payload");
    assert_eq!(missing["payload"]["message"], "missing field `quantity`");
    let mistyped = buyer
        .request("order", json!({"item": "tea", "quantity": "four"}))
        .await;
    let message = mistyped["payload"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("quantity: invalid type: string \"four\""),
        "{message}"
    );
    // A stringified payload is decoded too.
    let text = json!({"item": "tea", "quantity": 1}).to_string();
    assert_eq!(
        buyer.ack("order", json!(text)).await,
        json!({"item": "tea", "total": 3})
    );
}

#[tokio::test]
async fn optional_and_raw_payloads_and_panics() {
    let server = TestServer::start(shop_router(Arc::default())).await;
    let mut a = server.connect("/shop").await;
    a.recv_event("welcome").await;
    assert_eq!(a.ack("maybe", Value::Null).await, json!({"note": null}));
    assert_eq!(a.ack("maybe", json!("hi")).await, json!({"note": "hi"}));
    let wrong = a.request("maybe", json!(5)).await;
    assert_eq!(wrong["payload"]["code"], "invalid_payload");
    assert_eq!(
        a.ack("raw", json!([1, {"a": 2}])).await,
        json!([1, {"a": 2}])
    );
    assert_eq!(
        a.take_pending(),
        vec![json!({"event": "raw", "payload": [1, {"a": 2}]})]
    );
    let boom = a.request("boom", Value::Null).await;
    assert_eq!(boom["payload"]["code"], "internal");
    assert_eq!(a.ack("count", Value::Null).await, json!(0));
}

#[test]
fn missing_state_fails_the_build_naming_the_type_and_the_handler() {
    let err = Router::new()
        .controller(Shop {
            orders: Arc::default(),
        })
        .build()
        .unwrap_err();
    let RouterError::MissingState { state, event, .. } = &err else {
        panic!("{err}")
    };
    assert!(state.ends_with("Prices"), "{state}");
    assert_eq!(event, "order");
    assert!(err.to_string().contains("add `.state(…)`"), "{err}");
    // Closures that take `State<T>` are checked the same way.
    let err = Router::new()
        .websocket("/ws", |ev| {
            ev.on("x", |_c: Client, _p: State<Prices>| async {});
        })
        .build()
        .unwrap_err();
    assert!(matches!(err, RouterError::MissingState { .. }), "{err}");
}

#[test]
fn a_closure_and_a_controller_on_one_event_fail_with_both_locations() {
    let err = Router::new()
        .controller(Shop {
            orders: Arc::default(),
        })
        .state(Prices { unit: 1 })
        .websocket("/shop", |ev| {
            ev.on("order", |_client: Client| async {});
        })
        .build()
        .unwrap_err();
    let RouterError::Duplicate {
        path,
        event,
        first,
        second,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((path.as_str(), event.as_str()), ("/shop", "order"));
    let both = format!("{first} {second}");
    let order_line = include_str!("controllers.rs")
        .lines()
        .position(|line| line.trim_start().starts_with("async fn order("))
        .unwrap()
        + 1;
    let declared = format!("tests/tests/controllers.rs:{order_line}");
    assert!(first == &declared || second == &declared, "{both}");
    assert_eq!(both.matches("controllers.rs").count(), 2, "{both}");
    assert!(err.to_string().contains("has two handlers"), "{err}");
}

#[derive(Default)]
struct Collected;

#[ws_controller("/collected")]
impl Collected {
    #[on("ping")]
    async fn ping(&self) -> &'static str {
        "pong"
    }
}

/// Every controller of this file: `Shop` (no `Default`) registered explicitly, the others
/// collected by `controllers()`.
fn every_controller() -> Router {
    Router::new()
        .controller(Shop {
            orders: Arc::default(),
        })
        .state(Prices { unit: 1 })
        .controllers()
}

#[tokio::test]
async fn controllers_collects_default_controllers_and_skips_explicit_ones() {
    let router = every_controller();
    let server = TestServer::start(router).await;
    let mut a = server.connect("/collected").await;
    assert_eq!(a.ack("ping", Value::Null).await, json!("pong"));
    let mut shop = server.connect("/shop").await;
    shop.recv_event("welcome").await;
}

#[test]
fn an_uncollectable_controller_fails_the_build_with_its_name_and_place() {
    let err = Router::new().controllers().build().unwrap_err();
    let RouterError::ControllerWithoutDefault {
        controller,
        location,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(controller, "Shop");
    assert!(
        location.contains("tests/tests/controllers.rs"),
        "{location}"
    );
    assert!(err.to_string().contains("Router::controller"), "{err}");
}

/// Issue 9's security hole: a guard declared for `/collecte` beside the controller at
/// `/collected` used to create a phantom route and leave `/collected` open. The server now
/// refuses to start; with the route's own path, the guard holds over a real socket.
#[tokio::test]
async fn a_guard_beside_a_controller_must_name_its_path() {
    use vania_ws::{Handshake, Rejection, Server};
    let refuse = |_request: Handshake| async { Err(Rejection::unauthorized("no token")) };
    let router = every_controller().guard("/collecte", refuse);
    let err = Server::builder(router)
        .port(0)
        .bind()
        .await
        .expect_err("a guard on a path without a route must not start");
    let message = err.to_string();
    assert!(
        message.contains("`/collecte`")
            && message.contains("`/collected`")
            && message.contains("tests/tests/controllers.rs"),
        "{message}"
    );

    let router = every_controller().guard("/collected", refuse);
    let server = TestServer::start(router).await;
    vania_ws::testing::assert_refused(server.url("/collected"), 401).await;
    let mut shop = server.connect("/shop").await;
    shop.recv_event("welcome").await;
}

/// Issue 9: a server with no route at all (a forgotten `.controllers()`, or a controller in
/// a crate the binary never links) refuses to start instead of answering 404 to everything.
#[tokio::test]
async fn a_server_without_routes_refuses_to_start() {
    let err = vania_ws::Server::builder(Router::new())
        .port(0)
        .bind()
        .await
        .expect_err("no route, no server");
    assert!(
        matches!(
            &err,
            vania_ws::error::ServeError::Router(RouterError::NoRoutes { collected: false })
        ),
        "{err}"
    );
    assert!(err.to_string().contains(".controllers()"), "{err}");
}

/// A `Result` under a name that does not say so.
type Reply<T> = Result<T, String>;

/// A reply whose name ends in `Result` and is not one.
#[derive(Serialize)]
struct SearchResult {
    hits: u32,
}

#[derive(Default)]
struct Replies;

#[ws_controller("/replies")]
impl Replies {
    #[on("halve")]
    async fn halve(&self, n: u32) -> Reply<u32> {
        if n % 2 == 1 {
            return Err(format!("{n} is odd"));
        }
        Ok(n / 2)
    }

    #[on("search")]
    async fn search(&self) -> SearchResult {
        SearchResult { hits: 3 }
    }

    // `Json<T>`, as closures return it, is a reply here too.
    #[on("wrapped")]
    async fn wrapped(&self) -> vania_ws::Json<SearchResult> {
        vania_ws::Json(SearchResult { hits: 4 })
    }
}

#[tokio::test]
async fn a_result_is_recognised_by_its_type_not_its_name() {
    let server = TestServer::start(Router::new().controller(Replies)).await;
    let mut client = server.connect("/replies").await;
    assert_eq!(client.ack("halve", json!(8)).await, json!(4));
    // Through the alias, an `Err` is a `handler_error`, not `{"Err": …}`.
    let failed = client.request("halve", json!(7)).await;
    assert_eq!(failed["event"], "error", "{failed}");
    assert_eq!(
        failed["payload"],
        json!({"code": "handler_error", "message": "7 is odd"})
    );
    assert_eq!(client.ack("search", Value::Null).await, json!({"hits": 3}));
    assert_eq!(client.ack("wrapped", Value::Null).await, json!({"hits": 4}));
}
