//! A crate that re-exports vania-ws under another path says so with `crate = …`.
mod framework {
    pub mod ws {
        pub use vania_ws_server::*;
    }
}

use framework::ws::{on, ws_controller, Client};

#[derive(Default)]
struct Admin;

#[ws_controller("/admins", crate = "crate::framework::ws")]
impl Admin {
    #[on("admin-message")]
    async fn message(&self, client: &Client) -> &'static str {
        let _ = client;
        "ok"
    }
}

fn main() {
    framework::ws::Router::new().controllers().build().unwrap();
}
