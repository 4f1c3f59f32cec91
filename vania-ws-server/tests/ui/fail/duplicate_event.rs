use vania_ws_server::{on, ws_controller, Client};

struct Admin;

#[ws_controller("/admins")]
impl Admin {
    #[on("admin-message")]
    async fn first(&self, _client: &Client) {}

    #[on("admin-message")]
    async fn second(&self, _client: &Client) {}
}

fn main() {}
