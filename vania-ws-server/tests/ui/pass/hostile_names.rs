//! Generated code uses absolute paths: it compiles whatever the user's module shadows.
#![allow(dead_code, non_camel_case_types)]

struct Box;
struct Vec;
struct Arc;
struct Option;
struct Some;
struct Ok;
struct Err;
struct String;
struct core;
struct std;
mod serde_json {}
mod vania_ws_core {}

use vania_ws_server::{on, ws_controller};

#[derive(Default)]
struct Admin;

#[ws_controller("/admins")]
impl Admin {
    #[on("admin-message")]
    async fn message(&self, client: &vania_ws_server::Client, text: ::std::string::String) -> usize {
        let _ = client;
        text.len()
    }
}

fn main() {
    vania_ws_server::Router::new().controllers().build().unwrap();
}
