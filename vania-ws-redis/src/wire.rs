//! What travels through Redis: channel names, and messages that carry a frame's bytes as they
//! were encoded, behind a one-line header.
//!
//! A message is a JSON header (the sending node, and the target with its exceptions), a
//! newline, then the frame itself. serde_json never writes a raw newline, so the first one
//! ends the header; the frame after it is forwarded without being parsed.
//!
//! A command for another node's client travels the same way, on the client's channel, with
//! a `request` in the header and no frame; the answer comes back on the asking node's own
//! channel, with a `reply`.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use vania_ws_core::adapter::{Command, Frame, Outcome, Target};

/// The channels (and presence keys) of one application (one prefix).
#[derive(Debug, Clone)]
pub(crate) struct Channels {
    /// `{PREFIX}`: the hash tag puts every name of the application in one hash slot of a
    /// Redis Cluster, on one shard, which keeps a sender's order across channels (see
    /// `backend`). A single Redis ignores it.
    prefix: String,
}

impl Channels {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: format!("{{{prefix}}}"),
        }
    }

    /// Where a target's frames are published: each client has a channel (only the node that
    /// holds it subscribes), each room of each route has one (only nodes with a member in it
    /// subscribe), and broadcasts have one (every node subscribes).
    pub(crate) fn of(&self, target: Target<'_>) -> Option<String> {
        match target {
            Target::Client(id) => Some(self.client(id)),
            Target::Room { route, room } | Target::RoomExcept { route, room, .. } => {
                Some(self.room(route, room))
            }
            Target::All { .. } => Some(self.all()),
            _ => None,
        }
    }

    pub(crate) fn client(&self, id: &str) -> String {
        format!("{}:client:{id}", self.prefix)
    }

    /// The route's length keeps the name unambiguous: a route or a room may hold a `:`.
    pub(crate) fn room(&self, route: &str, room: &str) -> String {
        format!("{}:room:{}", self.prefix, room_key(route, room))
    }

    /// The set of one node's members of a room (it expires unless the node refreshes it).
    pub(crate) fn members(&self, node: &str, route: &str, room: &str) -> String {
        format!("{}:members:{node}:{}", self.prefix, room_key(route, room))
    }

    /// The nodes that have members in a room, scored by when their set expires (ms).
    pub(crate) fn member_nodes(&self, route: &str, room: &str) -> String {
        format!("{}:member-nodes:{}", self.prefix, room_key(route, room))
    }

    pub(crate) fn all(&self) -> String {
        format!("{}:all", self.prefix)
    }

    /// A node's own channel, where the answers to its commands come.
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}:{node}", self.prefix)
    }
}

/// A room's part of a key or channel name: the route's length keeps it unambiguous.
fn room_key(route: &str, room: &str) -> String {
    format!("{}:{route}:{room}", route.len())
}

// Strings are `Cow`: borrowed from the message when they hold nothing JSON escapes, owned
// when they do (a room named `a"b`, say), which a borrowed `&str` could not decode.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Header<'a> {
    /// The node that sent it.
    #[serde(borrow)]
    node: Cow<'a, str>,
    #[serde(borrow, flatten)]
    target: WireTarget<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<Request>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<Reply>,
}

/// A command for the target client, numbered by the asking node.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Request {
    n: u64,
    command: Command,
}

/// The answer to request `n`: `None` when the client was not there after all.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Reply {
    n: u64,
    outcome: Option<Outcome>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "to", rename_all = "snake_case")]
enum WireTarget<'a> {
    Client {
        #[serde(borrow)]
        id: Cow<'a, str>,
    },
    Room {
        #[serde(borrow)]
        route: Cow<'a, str>,
        #[serde(borrow)]
        room: Cow<'a, str>,
        #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
        except: Vec<Cow<'a, str>>,
    },
    All {
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        except: Option<Cow<'a, str>>,
    },
    /// The node whose channel it came on (a reply).
    Node {},
}

/// The message that carries `frame` to `target` from `node`.
pub(crate) fn encode(node: &str, target: Target<'_>, frame: &Frame) -> Option<Vec<u8>> {
    let target = match target {
        Target::Client(id) => WireTarget::Client { id: id.into() },
        Target::Room { route, room } => WireTarget::Room {
            route: route.into(),
            room: room.into(),
            except: Vec::new(),
        },
        Target::RoomExcept {
            route,
            room,
            except,
        } => WireTarget::Room {
            route: route.into(),
            room: room.into(),
            except: except.iter().map(|&id| id.into()).collect(),
        },
        Target::All { except } => WireTarget::All {
            except: except.map(Cow::Borrowed),
        },
        _ => return None,
    };
    let header = Header {
        node: node.into(),
        target,
        request: None,
        reply: None,
    };
    let mut message = header_line(&header);
    message.extend_from_slice(frame.as_str().as_bytes());
    Some(message)
}

/// The message that asks the node holding `client_id` to run `command` (request `n` of
/// `node`).
pub(crate) fn encode_request(node: &str, client_id: &str, n: u64, command: Command) -> Vec<u8> {
    header_line(&Header {
        node: node.into(),
        target: WireTarget::Client {
            id: client_id.into(),
        },
        request: Some(Request { n, command }),
        reply: None,
    })
}

/// The message that answers request `n`.
pub(crate) fn encode_reply(node: &str, n: u64, outcome: Option<Outcome>) -> Vec<u8> {
    header_line(&Header {
        node: node.into(),
        target: WireTarget::Node {},
        request: None,
        reply: Some(Reply { n, outcome }),
    })
}

fn header_line(header: &Header<'_>) -> Vec<u8> {
    let mut message = serde_json::to_vec(header).expect("a header of strings encodes");
    message.push(b'\n');
    message
}

/// A message another node published: who sent it, to whom, and the frame.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) node: String,
    target: OwnedTarget,
    pub(crate) frame: Frame,
    /// A command for the target client: its number and what to run.
    pub(crate) request: Option<(u64, Command)>,
    /// An answer to this node's request.
    pub(crate) reply: Option<(u64, Option<Outcome>)>,
}

#[derive(Debug)]
enum OwnedTarget {
    Client(String),
    Room {
        route: String,
        room: String,
        except: Vec<String>,
    },
    All(Option<String>),
    Node,
}

/// Why a message could not be read (another program on the channel, or another version).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("no header line")]
    NoHeader,
    #[error("the header is not one this version reads: {0}")]
    Header(#[from] serde_json::Error),
    #[error("the frame is not UTF-8: {0}")]
    Frame(#[from] std::str::Utf8Error),
}

pub(crate) fn decode(message: &[u8]) -> Result<Received, DecodeError> {
    let split = message
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(DecodeError::NoHeader)?;
    let header: Header<'_> = serde_json::from_slice(&message[..split])?;
    let frame = Frame::from_utf8(bytes::Bytes::copy_from_slice(&message[split + 1..]))?;
    let target = match header.target {
        WireTarget::Client { id } => OwnedTarget::Client(id.into_owned()),
        WireTarget::Room {
            route,
            room,
            except,
        } => OwnedTarget::Room {
            route: route.into_owned(),
            room: room.into_owned(),
            except: except.into_iter().map(Cow::into_owned).collect(),
        },
        WireTarget::All { except } => OwnedTarget::All(except.map(Cow::into_owned)),
        WireTarget::Node {} => OwnedTarget::Node,
    };
    Ok(Received {
        node: header.node.into_owned(),
        target,
        frame,
        request: header.request.map(|r| (r.n, r.command)),
        reply: header.reply.map(|r| (r.n, r.outcome)),
    })
}

impl Received {
    /// Hands the target to `deliver`, borrowed as the hub takes it; `None` for a reply,
    /// which is for no client.
    pub(crate) fn with_target<R>(&self, deliver: impl FnOnce(Target<'_>) -> R) -> Option<R> {
        Some(match &self.target {
            OwnedTarget::Client(id) => deliver(Target::Client(id)),
            OwnedTarget::Room {
                route,
                room,
                except,
            } if except.is_empty() => deliver(Target::Room { route, room }),
            OwnedTarget::Room {
                route,
                room,
                except,
            } => {
                let except: Vec<&str> = except.iter().map(String::as_str).collect();
                deliver(Target::RoomExcept {
                    route,
                    room,
                    except: &except,
                })
            }
            OwnedTarget::All(except) => deliver(Target::All {
                except: except.as_deref(),
            }),
            OwnedTarget::Node => return None,
        })
    }

    /// The client a request is for.
    pub(crate) fn client(&self) -> Option<&str> {
        match &self.target {
            OwnedTarget::Client(id) => Some(id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(target: Target<'_>) -> (String, String) {
        let frame = Frame::event("e", &serde_json::json!({"text": "a\nb"})).unwrap();
        let message = encode("node-1", target, &frame).unwrap();
        let received = decode(&message).unwrap();
        assert_eq!(received.frame.as_str(), frame.as_str());
        let target = received
            .with_target(|target| format!("{target:?}"))
            .unwrap();
        (received.node, target)
    }

    #[test]
    fn every_target_round_trips_with_its_frame_as_it_was() {
        let except = ["ws:a", "ws:b"];
        for target in [
            Target::Client("ws:x"),
            Target::Room {
                route: "/ws",
                room: "r:1",
            },
            // What JSON escapes, in every field.
            Target::Room {
                route: "/w\\s",
                room: "a\"b\\c\n\u{1}é",
            },
            Target::Client("ws:\"x\""),
            Target::RoomExcept {
                route: "/ws",
                room: "r",
                except: &except,
            },
            Target::All { except: None },
            Target::All {
                except: Some("ws:a"),
            },
        ] {
            assert_eq!(
                round_trip(target),
                ("node-1".to_owned(), format!("{target:?}"))
            );
        }
    }

    #[test]
    fn requests_and_replies_round_trip_without_a_frame() {
        let command = Command::Disconnect {
            code: 4000,
            reason: "a \"quoted\" reason".to_owned(),
        };
        let message = encode_request("node-1", "ws:\"x\"", 7, command.clone());
        let received = decode(&message).unwrap();
        assert_eq!(received.request, Some((7, command)));
        assert_eq!(received.client(), Some("ws:\"x\""));
        assert_eq!(received.frame.as_str(), "");
        let reply = decode(&encode_reply("node-2", 7, Some(Outcome::Done(true)))).unwrap();
        assert_eq!(reply.reply, Some((7, Some(Outcome::Done(true)))));
        assert!(
            reply.with_target(|_| ()).is_none(),
            "a reply is for no client"
        );
        let refused = Some(Outcome::Refused("room limit".to_owned()));
        let reply = decode(&encode_reply("node-2", 8, refused.clone())).unwrap();
        assert_eq!(reply.reply, Some((8, refused)));
        assert_eq!(
            decode(&encode_reply("n", 9, None)).unwrap().reply,
            Some((9, None))
        );
    }

    #[test]
    fn room_channels_are_unambiguous() {
        let channels = Channels::new("app");
        assert_ne!(channels.room("/a:b", "c"), channels.room("/a", "b:c"));
        assert_eq!(channels.room("/ws", "r"), "{app}:room:3:/ws:r");
        assert_eq!(channels.client("ws:1"), "{app}:client:ws:1");
        assert_eq!(channels.all(), "{app}:all");
        // A room's braces come after the prefix's, so they never move the hash slot.
        assert!(channels.room("/ws", "{x}").starts_with("{app}:"));
    }

    #[test]
    fn foreign_messages_are_errors_not_panics() {
        assert!(matches!(decode(b"hello"), Err(DecodeError::NoHeader)));
        assert!(matches!(decode(b"{}\n{}"), Err(DecodeError::Header(_))));
        let bad = b"{\"node\":\"n\",\"to\":\"all\"}\n\xff";
        assert!(matches!(decode(bad), Err(DecodeError::Frame(_))));
    }
}
