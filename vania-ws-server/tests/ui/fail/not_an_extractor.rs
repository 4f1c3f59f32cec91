use vania_ws_server::{on, ws_controller};

struct Admin;

#[ws_controller("/admins")]
impl Admin {
    #[on("by-ref")]
    async fn by_ref(&self, _name: &String) {}
}

fn main() {}
