//! Raw routes (`on_text` / `on_binary`) and the any-path route `"*"`: the machinery the
//! Autobahn echo server runs on.
//!
//! The suite (`suites/raw_routes.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

front_end::on_both_front_ends!("suites/raw_routes.rs");
