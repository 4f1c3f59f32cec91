//! The three dialects the load generator speaks, so that every server does the same work in
//! its own protocol:
//! - **raw** (tokio-tungstenite, Bun, Node `ws`): plain text frames. `J<room>` joins the room
//!   and is answered with itself; a frame starting with `B` is broadcast to room `bench`;
//!   `R<room>|<text>` sends `<text>` to the room's members; `N<name>` names the connection
//!   (answered with itself) and `D<name>|<text>` sends `<text>` to the connection of that name;
//!   anything else is echoed.
//! - **vania** (example-demo, example-axum): our envelope on `/ws`. The server greets with
//!   `connected` (which carries the client id); `join-room` with an `id` is acked; `message` is
//!   emitted back; `room-message` goes to every member of the room; `direct` goes to one client
//!   by id.
//! - **socket.io** (socketioxide): Engine.IO 4 over the websocket transport, `40` to connect to
//!   the main namespace (answered with the socket id), `42["event",…]` events, `421[…]`/`431[…]`
//!   for an event with an ack; `join`, `message`, `room-message`, `to-room` and `direct`
//!   events.
//!
//! In every dialect the members of a room receive a room message whoever sends it, the sender
//! included when it is a member.

use std::io;
use std::time::Duration;

use crate::conn::{Conn, OwnedFrame};
use crate::wire;

/// The room every benchmark uses.
pub(crate) const ROOM: &str = "bench";

/// How long a setup step (greeting, join) may take before it is an error: long, so that a
/// machine busy with something else slows a run down without failing it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A server's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Raw,
    Vania,
    SocketIo,
}

/// What to do with a frame that was not one of the counted ones.
pub(crate) enum Unexpected {
    /// Harmless; write this reply (a Pong, Engine.IO's `3`).
    Reply(Vec<u8>),
    /// A real problem (an error frame, a close, a frame of the wrong size): the round fails.
    Error(String),
}

impl Dialect {
    /// The upgrade path.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Dialect::Raw => "/",
            Dialect::Vania => "/ws",
            Dialect::SocketIo => "/socket.io/?EIO=4&transport=websocket",
        }
    }

    /// The path of the readiness probe. For our servers it is the demo's `/clients`: `/ws`
    /// has a `disconnect` handler that broadcasts `user-left`, so a probe leaving `/ws` would
    /// send a frame to the clients of the run that follows.
    pub(crate) fn probe_path(self) -> &'static str {
        match self {
            Dialect::Vania => "/clients",
            other => other.path(),
        }
    }

    /// The text of an echo request carrying `text`; the echo reply is the same text in all
    /// three dialects.
    pub(crate) fn echo(self, text: &str) -> String {
        match self {
            Dialect::Raw => text.to_owned(),
            Dialect::Vania => format!(r#"{{"event":"message","payload":"{text}"}}"#),
            Dialect::SocketIo => format!(r#"42["message","{text}"]"#),
        }
    }

    /// A broadcast request carrying `text` and the frame every member receives for it.
    /// `text` must start with `B` (the raw dialect's marker).
    pub(crate) fn broadcast(self, text: &str) -> (String, String) {
        debug_assert!(text.starts_with('B'));
        match self {
            Dialect::Raw => (text.to_owned(), text.to_owned()),
            Dialect::Vania => (
                format!(
                    r#"{{"event":"room-message","payload":{{"room":"{ROOM}","message":"{text}"}}}}"#
                ),
                format!(r#"{{"event":"room-message","payload":"{text}"}}"#),
            ),
            Dialect::SocketIo => {
                let frame = format!(r#"42["room-message","{text}"]"#);
                (frame.clone(), frame)
            }
        }
    }

    /// A message of `text` to `room`, and what each member receives for it (in every dialect
    /// a frame that contains `text`).
    pub(crate) fn to_room(self, room: &str, text: &str) -> String {
        match self {
            Dialect::Raw => format!("R{room}|{text}"),
            Dialect::Vania => format!(
                r#"{{"event":"room-message","payload":{{"room":"{room}","message":"{text}"}}}}"#
            ),
            Dialect::SocketIo => format!(r#"42["to-room",{{"room":"{room}","text":"{text}"}}]"#),
        }
    }

    /// A direct message of `text` to the client whose id is `to` (see [`Conn::id`]); its
    /// recipient receives a frame that contains `text`.
    pub(crate) fn direct(self, to: &str, text: &str) -> String {
        match self {
            Dialect::Raw => format!("D{to}|{text}"),
            Dialect::Vania => {
                format!(r#"{{"event":"direct","payload":{{"to":"{to}","message":"{text}"}}}}"#)
            }
            Dialect::SocketIo => format!(r#"42["direct",{{"to":"{to}","text":"{text}"}}]"#),
        }
    }

    /// Whether a frame starting `head` is what the app sends everyone when a client leaves:
    /// the demo's `disconnect` handler broadcasts `user-left` (the peers send nothing).
    pub(crate) fn is_departure(self, head: &[u8]) -> bool {
        self == Dialect::Vania && head.starts_with(br#"{"event":"user-left","#)
    }

    /// After the 101: what the server sends first and the client answers, until the
    /// connection is ready for events. Sets the connection's id: the server's client id
    /// (ours, Socket.IO), or for the raw dialect the name `name` it registers.
    pub(crate) async fn greet(self, conn: &mut Conn, name: Option<usize>) -> io::Result<()> {
        match self {
            Dialect::Raw => {
                if let Some(name) = name {
                    let register = format!("N{name}");
                    conn.send(&wire::text_frame(&register)).await?;
                    let frame = conn.next_frame(SETUP_TIMEOUT).await?;
                    expect_text(&frame, |t| t == register, "the name's answer")?;
                    conn.id = name.to_string();
                }
                Ok(())
            }
            Dialect::Vania => {
                let frame = conn.next_frame(SETUP_TIMEOUT).await?;
                expect_text(
                    &frame,
                    |t| t.starts_with(r#"{"event":"connected""#),
                    "connected",
                )?;
                conn.id = json_string(&frame, &["payload", "session_id"])?;
                Ok(())
            }
            Dialect::SocketIo => {
                let open = conn.next_frame(SETUP_TIMEOUT).await?;
                expect_text(&open, |t| t.starts_with("0{"), "the Engine.IO open packet")?;
                conn.send(&wire::text_frame("40")).await?;
                loop {
                    let frame = conn.next_frame(SETUP_TIMEOUT).await?;
                    if is_engine_ping(&frame) {
                        conn.send(&wire::text_frame("3")).await?;
                        continue;
                    }
                    expect_text(&frame, |t| t.starts_with("40"), "the namespace connect")?;
                    // `40{"sid":"…"}`: the socket id, which is also the socket's own room.
                    let connect = OwnedFrame {
                        payload: frame.payload[2..].to_vec(),
                        ..frame
                    };
                    conn.id = json_string(&connect, &["sid"])?;
                    return Ok(());
                }
            }
        }
    }

    /// Joins `room` and waits for the server to confirm it.
    pub(crate) async fn join(self, conn: &mut Conn, room: &str) -> io::Result<()> {
        match self {
            Dialect::Raw => {
                let join = format!("J{room}");
                conn.send(&wire::text_frame(&join)).await?;
                let frame = conn.next_frame(SETUP_TIMEOUT).await?;
                expect_text(&frame, |t| t == join, "the join's answer")
            }
            Dialect::Vania => {
                let join = format!(r#"{{"event":"join-room","room":"{room}","id":1}}"#);
                conn.send(&wire::text_frame(&join)).await?;
                let frame = conn.next_frame(SETUP_TIMEOUT).await?;
                let acked =
                    serde_json::from_slice::<serde_json::Value>(&frame.payload).is_ok_and(|v| {
                        v["event"] == "ack" && v["id"] == 1 && v["payload"]["room"] == room
                    });
                if acked {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "join-room: expected the ack, got {}",
                        frame.text()
                    )))
                }
            }
            Dialect::SocketIo => {
                // socketioxide sends `40{sid}` before the connect handler has registered the
                // event handlers, so an event sent at once can be dropped: retry until acked
                // (every 500 ms, for up to a minute).
                for id in 1..=120u32 {
                    conn.send(&wire::text_frame(&format!(r#"42{id}["join","{room}"]"#)))
                        .await?;
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
                    loop {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        let frame = match conn.next_frame(left).await {
                            Ok(frame) => frame,
                            Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                            Err(e) => return Err(e),
                        };
                        if is_engine_ping(&frame) {
                            conn.send(&wire::text_frame("3")).await?;
                            continue;
                        }
                        let text = frame.text();
                        if text.starts_with(&format!("43{id}[")) {
                            return Ok(());
                        }
                        if !text.starts_with("43") {
                            return Err(io::Error::other(format!("join: unexpected {text}")));
                        }
                    }
                }
                Err(io::Error::other("join: no ack after 120 tries"))
            }
        }
    }

    /// Sorts a frame that was not counted: keep-alives get their answer, anything else is an
    /// error of the round.
    pub(crate) fn unexpected(self, opcode: u8, fin: bool, len: u64, payload: &[u8]) -> Unexpected {
        match opcode {
            wire::PING => return Unexpected::Reply(wire::masked_frame(wire::PONG, payload)),
            wire::PONG => return Unexpected::Reply(Vec::new()),
            _ => {}
        }
        if self == Dialect::SocketIo && opcode == wire::TEXT && payload == b"2" {
            return Unexpected::Reply(wire::text_frame("3"));
        }
        let text = String::from_utf8_lossy(&payload[..payload.len().min(300)]);
        Unexpected::Error(match opcode {
            wire::CLOSE => format!("the server closed the connection: {text}"),
            _ if !fin => format!("an unexpected fragmented frame of {len} bytes: {text}"),
            _ => format!("an unexpected frame (opcode {opcode}, {len} bytes): {text}"),
        })
    }
}

/// The string at `path` in a frame's JSON payload.
fn json_string(frame: &OwnedFrame, path: &[&str]) -> io::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(&frame.payload)
        .map_err(|e| io::Error::other(format!("{e} in {}", frame.text())))?;
    path.iter()
        .try_fold(&value, |v, key| v.get(key))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other(format!("no {} in {}", path.join("."), frame.text())))
}

fn is_engine_ping(frame: &OwnedFrame) -> bool {
    frame.opcode == wire::TEXT && frame.payload == b"2"
}

fn expect_text(frame: &OwnedFrame, ok: impl Fn(&str) -> bool, what: &str) -> io::Result<()> {
    let text = frame.text();
    if frame.opcode == wire::TEXT && frame.fin && ok(&text) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "expected {what}, got opcode {} ({} bytes): {text}",
            frame.opcode, frame.len
        )))
    }
}
