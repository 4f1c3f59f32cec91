//! The app the end-to-end suites run: the seed's three routes (`/ws`, `/clients`, `/admins`),
//! with handlers that make every delivery rule of PROTOCOL.md observable.
//!
//! | route | event | does | replies |
//! |---|---|---|---|
//! | `/ws` | `message` | `emit("message", payload)` | the payload |
//! | `/ws` | `user-typing` | `broadcast("user-typing", {"session_id", "payload"})` | `null` |
//! | `/ws` | `room-message` | `{"room","message"}` → `to_room("room-message", room, message)` | `null` |
//! | `/ws` | `direct` | `{"to","message"}` → `to(to, "direct", {"from","message"})` | `null` |
//! | `/ws` | `whoami` | | `{"session_id","rooms"}` |
//! | `/ws` | `members` | a room name → `presence(room)` | the room's member ids on every node |
//! | `/ws` | `fail` / `panic` | fails / panics | `handler_error` / `internal` |
//! | `/ws` | `disconnect` | `broadcast("user-left", {"session_id"})` | |
//! | `/clients` | `client-joined` | `broadcast("client-joined", payload)` | `null` |
//! | `/admins` | `admin-message` | `{"text","room"?}` → `to_room` or `broadcast` of `{"text"}` | `{"delivered": true}` |

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vania_ws::{Client, Router, SendError, on, ws_controller};

/// `room-message`'s payload.
#[derive(Debug, Deserialize)]
struct RoomMessage {
    room: String,
    message: Value,
}

/// `direct`'s payload.
#[derive(Debug, Deserialize)]
struct Direct {
    to: String,
    message: Value,
}

/// `admin-message`'s payload.
#[derive(Debug, Deserialize)]
struct AdminMessage {
    text: String,
    room: Option<String>,
}

/// `admin-message`'s reply.
#[derive(Debug, Serialize)]
struct Delivered {
    delivered: bool,
}

/// `/admins`, as a controller.
#[derive(Debug, Default)]
struct Admins;

#[ws_controller("/admins")]
impl Admins {
    #[on("admin-message")]
    async fn message(
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

/// The suites' router: closures for `/ws` and `/clients`, a controller for `/admins`
/// (registered explicitly, so that the controllers a test file declares for itself are not
/// collected into it).
pub fn router() -> Router {
    Router::new()
        .websocket("/ws", |ev| {
            ev.on("message", |client: Client, payload: Value| async move {
                client.emit("message", &payload)?;
                Ok::<_, SendError>(payload)
            });
            ev.on("user-typing", |client: Client, payload: Value| async move {
                let typing = json!({ "session_id": client.id(), "payload": payload });
                client.broadcast("user-typing", &typing)
            });
            ev.on(
                "room-message",
                |client: Client, payload: RoomMessage| async move {
                    client.to_room("room-message", &payload.room, &payload.message)
                },
            );
            ev.on("direct", |client: Client, payload: Direct| async move {
                let message = json!({ "from": client.id(), "message": payload.message });
                client.to(&payload.to, "direct", &message)
            });
            ev.on("members", |client: Client, room: String| async move {
                client.presence(&room).await
            });
            ev.on("whoami", |client: Client| async move {
                json!({ "session_id": client.id(), "rooms": client.rooms() })
            });
            ev.on("fail", |_client: Client| async move {
                Err::<(), _>("requested failure")
            });
            ev.on("panic", panic_on_purpose);
            ev.on("disconnect", |client: Client| async move {
                client.broadcast("user-left", &json!({ "session_id": client.id() }))
            });
        })
        .websocket("/clients", |ev| {
            ev.on(
                "client-joined",
                |client: Client, payload: Value| async move {
                    client.broadcast("client-joined", &payload)
                },
            );
        })
        .controller(Admins)
}

/// `panic`: a panicking handler costs its request an `internal` error, no more.
async fn panic_on_purpose(_client: Client) {
    panic!("requested panic");
}
