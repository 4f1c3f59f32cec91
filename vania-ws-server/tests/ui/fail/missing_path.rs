use vania_ws_server::ws_controller;

struct Admin;

#[ws_controller]
impl Admin {}

fn main() {}
