//! Production limits over real sockets: origins, guards, connection and room limits,
//! handshake timeout, heartbeat, slow consumers, rate limit, fragmented oversize messages and
//! the counters. Every load here is bounded in count and stops by itself.
//!
//! The suite (`suites/hardening.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

front_end::on_both_front_ends!("suites/hardening.rs");
