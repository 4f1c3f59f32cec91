//! The demo's routes, where a Vania developer looks for them.

pub mod web_socket;
