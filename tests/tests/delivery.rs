//! PROTOCOL.md section 6 against the demo app: who receives `emit`, `to`, `to_room` and
//! `broadcast`, rooms as sets, and sends from outside any handler.
//!
//! The suite (`suites/delivery.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

front_end::on_both_front_ends!("suites/delivery.rs");
