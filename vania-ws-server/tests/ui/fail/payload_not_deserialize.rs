use vania_ws_server::{on, ws_controller, Client};

struct NotDeserialize {
    text: String,
}

struct Admin;

#[ws_controller("/admins")]
impl Admin {
    #[on("admin-message")]
    async fn message(&self, _client: &Client, _payload: NotDeserialize) {}
}

fn main() {}
