//! Liveness of a client that answers pings while the connection is not reading (PROTOCOL.md
//! section 7: only a client that stops answering pings is dropped): a handler slower than the
//! pong timeout, and a handler that awaits its client's answer behind a full hold.
//!
//! The suite (`suites/liveness.rs`) runs once per front end: the standalone server, and the
//! engine mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;
#[path = "suites/hold.rs"]
mod hold;

front_end::on_both_front_ends!("suites/liveness.rs");
