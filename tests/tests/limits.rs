//! Close codes for bad messages: too big (1009) and invalid UTF-8 (1007), sent by the server.
//!
//! The suite (`suites/limits.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

mod standalone {
    use super::front_end::FrontEnd;
    const FRONT_END: FrontEnd = FrontEnd::Standalone;
    super::front_end::starters!();
    include!("suites/limits.rs");
}

mod axum {
    use super::front_end::FrontEnd;
    const FRONT_END: FrontEnd = FrontEnd::Axum;
    super::front_end::starters!();
    include!("suites/limits.rs");
}
