use std::rc::Rc;
use vania_ws_server::{on, ws_controller, Client};

struct Admin;

async fn tick() {}

#[ws_controller("/admins")]
impl Admin {
    #[on("admin-message")]
    async fn message(&self, _client: &Client) {
        let local = Rc::new(1);
        tick().await;
        let _ = local;
    }
}

fn main() {}
