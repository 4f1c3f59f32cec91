//! `connect` / `disconnect` have no payload: a controller handler that asks for one fails the
//! build of the route table, naming the handler.

use vania_ws::error::RouterError;
use vania_ws::{Client, Router, on, ws_controller};

struct Greeter;

#[ws_controller("/greet")]
impl Greeter {
    #[on("connect")]
    async fn connect(&self, _client: &Client, _name: String) {}
}

#[test]
fn a_lifecycle_handler_with_a_payload_fails_the_build() {
    let err = Router::new().controller(Greeter).build().unwrap_err();
    let RouterError::LifecyclePayload {
        path,
        event,
        location,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((path.as_str(), event.as_str()), ("/greet", "connect"));
    assert!(location.contains("controller_lifecycle.rs"), "{location}");
}
