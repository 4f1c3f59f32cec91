//! Procedural macros for vania-ws controllers (`#[ws_controller]`, `#[on]`).
//!
//! Not yet available: until they are, declare routes with `Router::websocket` and
//! register handler functions with `ev.on("event", handler)`.
