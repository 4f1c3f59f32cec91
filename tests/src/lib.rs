//! End-to-end tests of vania-ws live in `tests/`; they drive real servers on `127.0.0.1:0`
//! with real WebSocket clients, through `vania_ws::testing`.
