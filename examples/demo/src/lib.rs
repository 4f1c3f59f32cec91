//! The demo app: the three WebSocket routes of Vania's page (`/ws`, `/clients`, `/admins`)
//! served by vania-ws, laid out as a Vania developer expects (`routes/web_socket.rs`,
//! `controllers/`, `.env.example`).
//!
//! Run it with `cargo run --release -p example-demo`, then talk to it from any WebSocket client:
//! `{"event":"message","payload":"hi","id":1}` on `ws://127.0.0.1:8000/ws`.

pub mod controllers;
pub mod routes;

pub use routes::web_socket::{router, router_with_admin_token};
