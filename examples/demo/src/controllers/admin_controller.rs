//! The `/admins` route as a controller (Vania's WebSocket controllers, in Rust).

use serde::{Deserialize, Serialize};
use serde_json::json;
use vania_ws::{Client, SendError, on, ws_controller};

/// `admin-message`'s payload.
#[derive(Debug, Deserialize)]
pub struct AdminMessage {
    /// The text to deliver.
    pub text: String,
    /// A room of `/admins` to deliver to; everyone else when absent.
    pub room: Option<String>,
}

/// `admin-message`'s reply.
#[derive(Debug, Serialize)]
pub struct Delivered {
    /// Always `true` once sent.
    pub delivered: bool,
}

/// The handlers of `/admins`. Collected by `Router::controllers()` and built with `Default`.
#[derive(Debug, Default)]
pub struct AdminController;

#[ws_controller("/admins")]
impl AdminController {
    /// `admin-message`: to the room when one is given, else to everyone but the sender.
    #[on("admin-message")]
    pub async fn message(
        &self,
        client: &Client,
        payload: AdminMessage,
    ) -> Result<Delivered, SendError> {
        let text = json!({ "text": payload.text });
        match &payload.room {
            Some(room) => client.to_room("admin-message", room, &text)?,
            None => client.broadcast("admin-message", &text)?,
        }
        Ok(Delivered { delivered: true })
    }
}
