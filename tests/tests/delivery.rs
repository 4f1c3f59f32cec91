//! PROTOCOL.md section 6 against the demo app: who receives `emit`, `to`, `to_room` and
//! `broadcast`, rooms as sets, and sends from outside any handler.
//!
//! The suite (`suites/delivery.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

mod standalone {
    use super::front_end::FrontEnd;
    const FRONT_END: FrontEnd = FrontEnd::Standalone;
    super::front_end::starters!();
    include!("suites/delivery.rs");
}

mod axum {
    use super::front_end::FrontEnd;
    const FRONT_END: FrontEnd = FrontEnd::Axum;
    super::front_end::starters!();
    include!("suites/delivery.rs");
}
