//! Abuse over real sockets (PROTOCOL.md section 7): a Ping flood with blind Pongs from clients
//! that never read, and clients that vanish without a close frame at the connection cap.
//!
//! The suite (`suites/abuse.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

front_end::on_both_front_ends!("suites/abuse.rs");
