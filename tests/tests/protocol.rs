//! PROTOCOL.md sections 1 to 5 against the demo app: handshake, frames, replies and errors.
//!
//! The suite (`suites/protocol.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

front_end::on_both_front_ends!("suites/protocol.rs");
