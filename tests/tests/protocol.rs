//! PROTOCOL.md sections 1 to 5 against the demo app: handshake, frames, replies and errors.
//!
//! The suite (`suites/protocol.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

mod standalone {
    use super::front_end::FrontEnd;
    const FRONT_END: FrontEnd = FrontEnd::Standalone;
    super::front_end::starters!();
    include!("suites/protocol.rs");
}

mod axum {
    use super::front_end::FrontEnd;
    const FRONT_END: FrontEnd = FrontEnd::Axum;
    super::front_end::starters!();
    include!("suites/protocol.rs");
}
