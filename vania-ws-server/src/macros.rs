//! The controller macros, re-exported with their documentation.

/// Makes the `#[on("event")]` methods of an impl block the handlers of a WebSocket route. The
/// guide, with its examples, is on the facade crate's `vania_ws::ws_controller`.
pub use vania_ws_macros::ws_controller;

/// Marks a method of a [`#[ws_controller]`](macro@ws_controller) impl block as the handler of
/// one event: `#[on("admin-message")]`. The method must be an `async fn` taking `&self` (or no
/// receiver), then any extractor arguments.
///
/// Outside a `#[ws_controller]` impl block it is a compile error:
///
/// ```compile_fail
/// use vania_ws_server::{on, Client};
///
/// struct Lonely;
///
/// impl Lonely {
///     #[on("message")] // error: `#[on]` can only be used inside a `#[ws_controller]` impl block
///     async fn message(&self, client: &Client) {}
/// }
/// ```
pub use vania_ws_macros::on;
