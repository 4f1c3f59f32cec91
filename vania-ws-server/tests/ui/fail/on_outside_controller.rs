use vania_ws_server::{on, Client};

struct Admin;

impl Admin {
    #[on("admin-message")]
    async fn message(&self, _client: &Client) {}
}

fn main() {}
