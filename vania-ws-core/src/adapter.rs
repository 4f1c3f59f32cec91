//! The seam that carries `to`, `to_room` and `broadcast` beyond this process.
//!
//! Every send that may reach other clients goes through the hub's [`Adapter`]. The default,
//! [`LocalAdapter`], delivers to this process's clients only. A scale-out adapter (Redis, say)
//! delivers locally through [`Hub::deliver_local`] and publishes the same encoded frame to the
//! other nodes, which deliver it through their own hubs.

use crate::envelope::Frame;
use crate::hub::Hub;

/// Who a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target<'a> {
    /// One client, on whichever route (or node) it is connected.
    Client(&'a str),
    /// Every member of `room` on `route`.
    Room {
        /// The route whose room it is.
        route: &'a str,
        /// The room name.
        room: &'a str,
    },
    /// Every member of `room` on `route` but the clients in `except` (ids).
    RoomExcept {
        /// The route whose room it is.
        route: &'a str,
        /// The room name.
        room: &'a str,
        /// The client ids to skip.
        except: &'a [&'a str],
    },
    /// Every connected client on every enveloped route (raw routes speak another protocol),
    /// except `except` (a client id) when given.
    All {
        /// The client id to skip, usually the sender.
        except: Option<&'a str>,
    },
}

/// Carries frames to their recipients, in this process and, for a scale-out adapter, in others.
///
/// Implementations must not block: they are called from handlers, synchronously, once per
/// send call (never once per recipient).
pub trait Adapter: Send + Sync + 'static {
    /// Delivers `frame` to `target`; returns how many clients of this process received it.
    fn send(&self, hub: &Hub, target: Target<'_>, frame: &Frame) -> usize;
}

/// The in-memory adapter: delivers to this process's clients only.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalAdapter;

impl Adapter for LocalAdapter {
    fn send(&self, hub: &Hub, target: Target<'_>, frame: &Frame) -> usize {
        hub.deliver_local(target, frame)
    }
}
