use vania_ws_server::ws_controller;

struct Admin;
struct Other;

#[ws_controller("admins")]
impl Admin {}

#[ws_controller(admins)]
impl Other {}

fn main() {}
