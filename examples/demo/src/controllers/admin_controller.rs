//! The `/admins` route's handlers.

use serde::{Deserialize, Serialize};
use serde_json::json;
use vania_ws_server::{Client, SendError};

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

/// `admin-message`: to the room when one is given, else to everyone but the sender.
pub async fn message(client: Client, payload: AdminMessage) -> Result<Delivered, SendError> {
    let text = json!({ "text": payload.text });
    match &payload.room {
        Some(room) => client.to_room("admin-message", room, &text)?,
        None => client.broadcast("admin-message", &text)?,
    }
    Ok(Delivered { delivered: true })
}
