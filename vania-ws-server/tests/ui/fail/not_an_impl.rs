use vania_ws_server::ws_controller;

#[ws_controller("/admins")]
struct Admin;

fn main() {}
