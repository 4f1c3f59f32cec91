use vania_ws_server::{on, ws_controller, Client};

struct Admin;

#[ws_controller("/admins")]
impl Admin {
    #[on(message)]
    async fn not_a_literal(&self, _client: &Client) {}

    #[on("")]
    async fn empty(&self, _client: &Client) {}

    #[on]
    async fn missing(&self, _client: &Client) {}

    #[on("join-room")]
    async fn reserved(&self, _client: &Client) {}
}

fn main() {}
