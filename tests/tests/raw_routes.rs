//! Raw routes (`on_text` / `on_binary`) and the any-path route `"*"`: the machinery the
//! Autobahn echo server runs on.
//!
//! The suite (`suites/raw_routes.rs`) runs once per front end: the standalone server, and the engine
//! mounted in an axum app.

#[path = "suites/front_end.rs"]
mod front_end;

mod standalone {
    use super::front_end::FrontEnd;
    const FRONT_END: FrontEnd = FrontEnd::Standalone;
    super::front_end::starters!();
    include!("suites/raw_routes.rs");
}

mod axum {
    use super::front_end::FrontEnd;
    const FRONT_END: FrontEnd = FrontEnd::Axum;
    super::front_end::starters!();
    include!("suites/raw_routes.rs");
}
