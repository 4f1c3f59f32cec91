//! The chat's WebSocket route, `/chat`, as one controller.
//!
//! A client connects to `/chat?name=<name>`; the guard checks the name and attaches it, so a
//! reconnecting page (the browser client reconnects to the same URL) keeps its name without
//! a login step. Rooms are the protocol's own `join-room` / `left-room`, which the browser
//! client repeats after a reconnect; the page then says `entered` for each room, which
//! tells the other members and answers with the room's history and members.
//!
//! | event | payload | does | replies |
//! |---|---|---|---|
//! | `rooms` | | | `[{"name","members"}]`: the usual rooms and every room with history (at most [`HISTORY_ROOMS`]) |
//! | `entered` | a room the client has joined | `member-joined` `{"room","id","name"}` to the room | `{"room","history","members"}` |
//! | `left` | a room the client has left | `member-left` `{"room","id","name"}` to the room | `null` |
//! | `say` | `{"room","text"}` | `message` `{"room","id","name","text","at"}` to the room, kept in its history | `null` |
//! | `typing` | `{"room","typing"}` | `typing` `{"room","id","name","typing"}` to the room | `null` |
//! | `private` | `{"to","text"}` | `private` `{"id","name","text","at"}` to that member only | `{"to","name"}` |
//!
//! When a client disconnects, each of its rooms gets `member-left`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use vania_ws::{Client, Extension, Handshake, Rejection, on, ws_controller};

/// Lines of history kept per room, replayed on `entered`.
pub const HISTORY: usize = 50;
/// The longest message, in characters.
pub const MAX_TEXT: usize = 2_000;
/// The longest name, in characters.
pub const MAX_NAME: usize = 32;
/// Rooms whose history is kept at most: past it, saying something in a new room forgets the
/// history of the room that has been quiet longest, so that clients making up room names
/// cannot grow the server's memory without bound.
pub const HISTORY_ROOMS: usize = 100;
/// The rooms the room list always offers.
pub const ROOMS: [&str; 3] = ["general", "random", "help"];

/// The name a client connected with (`?name=`), attached by the guard.
#[derive(Debug, Clone)]
pub struct Name(pub String);

/// One message of a room.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    room: String,
    id: String,
    name: String,
    text: String,
    /// Milliseconds since the Unix epoch, by the server's clock.
    at: u64,
}

/// A member of a room, as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    id: String,
    name: String,
}

/// `entered`'s reply.
#[derive(Debug, Serialize)]
pub struct RoomState {
    room: String,
    history: Vec<Line>,
    members: Vec<Member>,
}

/// A room in the room list.
#[derive(Debug, Serialize)]
pub struct RoomInfo {
    name: String,
    /// Members connected to this server.
    members: usize,
}

/// `say`'s payload.
#[derive(Debug, Deserialize)]
pub struct Say {
    room: String,
    text: String,
}

/// `typing`'s payload.
#[derive(Debug, Deserialize)]
pub struct Typing {
    room: String,
    typing: bool,
}

/// `private`'s payload.
#[derive(Debug, Deserialize)]
pub struct Private {
    to: String,
    text: String,
}

/// `private`'s reply.
#[derive(Debug, Serialize)]
pub struct Sent {
    to: String,
    name: String,
}

/// A membership event, for `member-joined` and `member-left`.
#[derive(Debug, Serialize)]
struct Membership<'a> {
    room: &'a str,
    id: &'a str,
    name: &'a str,
}

/// The typing indicator's event.
#[derive(Debug, Serialize)]
struct TypingEvent<'a> {
    room: &'a str,
    id: &'a str,
    name: &'a str,
    typing: bool,
}

/// A private message, as its target receives it.
#[derive(Debug, Serialize)]
struct PrivateLine<'a> {
    id: &'a str,
    name: &'a str,
    text: &'a str,
    at: u64,
}

/// The chat: who is connected under which name, and each room's recent history. Both are
/// this process's own (a second node would need them in a shared store).
#[derive(Debug, Default)]
pub struct Chat {
    names: Mutex<HashMap<String, String>>,
    /// Lines said so far, in every room.
    said: AtomicU64,
    history: Mutex<BTreeMap<String, RoomHistory>>,
}

/// One room's recent lines.
#[derive(Debug, Default)]
struct RoomHistory {
    lines: VecDeque<Line>,
    /// When the room last had a line, in lines said across every room: which room is the
    /// quietest, exactly, where milliseconds would tie.
    said: u64,
}

/// Why an event was refused: its text is the `handler_error` message. The chat's own
/// refusals (a `String`) and the framework's errors both convert into it with `?`.
type Refused = Box<dyn std::error::Error + Send + Sync>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A message's text, trimmed; an error names the limit.
fn text_of(text: &str) -> Result<&str, String> {
    let text = text.trim();
    match text.chars().count() {
        0 => Err("a message needs some text".to_owned()),
        n if n > MAX_TEXT => Err(format!("a message is at most {MAX_TEXT} characters")),
        _ => Ok(text),
    }
}

fn member_of(client: &Client, room: &str) -> Result<(), String> {
    if client.in_room(room) {
        Ok(())
    } else {
        Err(format!("join `{room}` first"))
    }
}

#[ws_controller("/chat", guard = named)]
impl Chat {
    /// The handshake must carry `?name=`: 1 to 32 characters, no control characters.
    async fn named(&self, mut request: Handshake) -> Result<Handshake, Rejection> {
        let name = request
            .query_param("name")
            .map(|name| name.trim().to_owned());
        match name {
            Some(name)
                if (1..=MAX_NAME).contains(&name.chars().count())
                    && !name.chars().any(char::is_control) =>
            {
                request.extensions.insert(Name(name));
                Ok(request)
            }
            _ => Err(Rejection::new(
                400,
                format!("connect to `/chat?name=<1 to {MAX_NAME} characters>`"),
            )),
        }
    }

    #[on("connect")]
    async fn connected(&self, client: &Client, Extension(name): Extension<Name>) {
        self.lock_names().insert(client.id().to_owned(), name.0);
    }

    #[on("disconnect")]
    async fn disconnected(&self, client: &Client, Extension(name): Extension<Name>) {
        for room in client.rooms() {
            let left = Membership {
                room: &room,
                id: client.id(),
                name: &name.0,
            };
            let _ = client.to_room("member-left", &room, &left);
        }
        self.lock_names().remove(client.id());
    }

    #[on("rooms")]
    async fn rooms(&self, client: &Client) -> Result<Vec<RoomInfo>, Refused> {
        let route = client.handle().route(client.route())?;
        let mut names: Vec<String> = ROOMS.iter().map(|room| (*room).to_owned()).collect();
        for room in self.lock_history().keys() {
            if !names.contains(room) {
                names.push(room.clone());
            }
        }
        Ok(names
            .into_iter()
            .map(|name| RoomInfo {
                members: route.room_members(&name),
                name,
            })
            .collect())
    }

    #[on("entered")]
    async fn entered(
        &self,
        client: &Client,
        Extension(name): Extension<Name>,
        room: String,
    ) -> Result<RoomState, Refused> {
        member_of(client, &room)?;
        let joined = Membership {
            room: &room,
            id: client.id(),
            name: &name.0,
        };
        client.to_room("member-joined", &room, &joined)?;
        let history = self
            .lock_history()
            .get(&room)
            .map(|room| room.lines.iter().cloned().collect())
            .unwrap_or_default();
        let ids = client
            .handle()
            .route(client.route())?
            .room_member_ids(&room);
        let members = {
            let names = self.lock_names();
            ids.into_iter()
                .filter_map(|id| {
                    let name = names.get(&id)?.clone();
                    Some(Member { id, name })
                })
                .collect()
        };
        Ok(RoomState {
            room,
            history,
            members,
        })
    }

    #[on("left")]
    async fn left(
        &self,
        client: &Client,
        Extension(name): Extension<Name>,
        room: String,
    ) -> Result<(), Refused> {
        if client.in_room(&room) {
            return Err(format!("leave `{room}` first").into());
        }
        let left = Membership {
            room: &room,
            id: client.id(),
            name: &name.0,
        };
        Ok(client.to_room("member-left", &room, &left)?)
    }

    #[on("say")]
    async fn say(
        &self,
        client: &Client,
        Extension(name): Extension<Name>,
        say: Say,
    ) -> Result<(), Refused> {
        member_of(client, &say.room)?;
        let line = Line {
            room: say.room.clone(),
            id: client.id().to_owned(),
            name: name.0,
            text: text_of(&say.text)?.to_owned(),
            at: now_ms(),
        };
        {
            let mut history = self.lock_history();
            if !history.contains_key(&say.room) && history.len() >= HISTORY_ROOMS {
                let quietest = history
                    .iter()
                    .min_by_key(|(_, room)| room.said)
                    .map(|(name, _)| name.clone());
                if let Some(name) = quietest {
                    history.remove(&name);
                }
            }
            let said = self.said.fetch_add(1, Ordering::Relaxed);
            let room = history.entry(say.room.clone()).or_default();
            if room.lines.len() == HISTORY {
                room.lines.pop_front();
            }
            room.lines.push_back(line.clone());
            room.said = said;
        }
        Ok(client.to_room("message", &say.room, &line)?)
    }

    #[on("typing")]
    async fn typing(
        &self,
        client: &Client,
        Extension(name): Extension<Name>,
        typing: Typing,
    ) -> Result<(), Refused> {
        member_of(client, &typing.room)?;
        let event = TypingEvent {
            room: &typing.room,
            id: client.id(),
            name: &name.0,
            typing: typing.typing,
        };
        Ok(client.to_room("typing", &typing.room, &event)?)
    }

    #[on("private")]
    async fn private(
        &self,
        client: &Client,
        Extension(name): Extension<Name>,
        private: Private,
    ) -> Result<Sent, Refused> {
        let target = self
            .lock_names()
            .get(&private.to)
            .cloned()
            .ok_or_else(|| format!("no member `{}` is connected", private.to))?;
        let line = PrivateLine {
            id: client.id(),
            name: &name.0,
            text: text_of(&private.text)?,
            at: now_ms(),
        };
        client.to(&private.to, "private", &line)?;
        Ok(Sent {
            to: private.to,
            name: target,
        })
    }
}

impl Chat {
    fn lock_names(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RoomHistory>> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
