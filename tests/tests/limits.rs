//! Close codes for bad messages: too big (1009) and invalid UTF-8 (1007), sent by the server.
//!
//! The suite (`suites/limits.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

front_end::on_both_front_ends!("suites/limits.rs");
