//! The demo's controllers.

pub mod admin_controller;
