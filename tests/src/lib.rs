//! End-to-end tests of vania-ws live in `tests/`; they drive real servers on `127.0.0.1:0`
//! with real WebSocket clients, through `vania_ws::testing`.
//!
//! This library holds their fixture, [`app::router`]: the framework's tests use their own app,
//! so that changing an example never changes what the framework is tested against.

pub mod app;
pub mod cluster;
