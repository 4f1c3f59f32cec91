//! Lifecycle and ordering: connect and disconnect handlers, per-connection order, graceful
//! shutdown, and load bounded in count (10,000 ordered messages, 200 concurrent clients).
//!
//! The suite (`suites/lifecycle.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

front_end::on_both_front_ends!("suites/lifecycle.rs");
