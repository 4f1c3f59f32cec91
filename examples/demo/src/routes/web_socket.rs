//! The WebSocket routes of the Vania page (`routes/web_socket.dart` in Vania): `/ws`,
//! `/clients` and `/admins`, with handlers that make every delivery rule observable.

use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use vania_ws::{Client, Handshake, Rejection, Router, SendError};

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

/// The demo's router with `/admins` open to anyone (no `ADMIN_TOKEN`).
pub fn router() -> Router {
    router_with_admin_token(None)
}

/// The demo's router: closures for `/ws` and `/clients`, and every `#[ws_controller]` of the
/// app (here `AdminController` on `/admins`), collected with `controllers()`. With a token,
/// `/admins` accepts only handshakes carrying `?token=<token>` and answers 401 to any other.
pub fn router_with_admin_token(admin_token: Option<String>) -> Router {
    let router = routes();
    match admin_token {
        Some(token) => router.guard("/admins", move |request: Handshake| {
            let allowed = request
                .query_param("token")
                .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())));
            async move {
                if allowed {
                    Ok(request)
                } else {
                    Err(Rejection::unauthorized(
                        "`/admins` needs `?token=<ADMIN_TOKEN>`",
                    ))
                }
            }
        }),
        None => router,
    }
}

fn routes() -> Router {
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
        .controllers()
}

/// `panic`: shows that a panicking handler costs its request an `internal` error, no more.
async fn panic_on_purpose(_client: Client) {
    panic!("requested panic");
}
