//! Every signature mistake of one impl block is reported at once.
use vania_ws_server::{on, ws_controller, Client};

struct Admin;

#[ws_controller("/admins")]
impl Admin {
    #[on("not-async")]
    fn not_async(&self, _client: &Client) {}

    #[on("by-value")]
    async fn by_value(self, _client: &Client) {}

    #[on("by-mut")]
    async fn by_mut(&mut self, _client: &Client) {}

    #[on("generic")]
    async fn generic<T>(&self, _client: &Client) {}
}

fn main() {}
