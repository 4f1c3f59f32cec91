use vania_ws_server::ws_controller;

struct Admin;

#[ws_controller("/admins")]
impl Default for Admin {
    fn default() -> Self {
        Admin
    }
}

fn main() {}
