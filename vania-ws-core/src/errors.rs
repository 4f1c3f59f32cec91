//! Error codes of the wire protocol and the error types of the core's operations.

use std::fmt;

/// The stable error codes sent in `error` frames (`payload.code`).
///
/// The string form of each variant is part of the wire contract and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The text frame is not JSON.
    InvalidJson,
    /// JSON, but not an object with a string `event`, or an `id` that is not an unsigned integer.
    InvalidEnvelope,
    /// No handler for this event on this route.
    UnknownEvent,
    /// The payload does not deserialize into the handler's type.
    InvalidPayload,
    /// `join-room` / `left-room` without a valid `room`.
    InvalidRoom,
    /// The connection is already in the maximum number of rooms.
    RoomLimit,
    /// A join or event refused by an authorization hook.
    Forbidden,
    /// The connection sends events faster than its limit.
    RateLimited,
    /// The handler returned an error.
    HandlerError,
    /// The handler panicked, or its reply could not be encoded.
    Internal,
    /// A binary frame on a route that takes none.
    UnsupportedFrame,
}

impl ErrorCode {
    /// Every code, in the order of PROTOCOL.md section 5 (a slice: a new code is not a
    /// breaking change).
    pub const ALL: &'static [ErrorCode] = &[
        Self::InvalidJson,
        Self::InvalidEnvelope,
        Self::UnknownEvent,
        Self::InvalidPayload,
        Self::InvalidRoom,
        Self::RoomLimit,
        Self::Forbidden,
        Self::RateLimited,
        Self::HandlerError,
        Self::Internal,
        Self::UnsupportedFrame,
    ];

    /// The code as it appears on the wire, e.g. `"invalid_json"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidEnvelope => "invalid_envelope",
            Self::UnknownEvent => "unknown_event",
            Self::InvalidPayload => "invalid_payload",
            Self::InvalidRoom => "invalid_room",
            Self::RoomLimit => "room_limit",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::HandlerError => "handler_error",
            Self::Internal => "internal",
            Self::UnsupportedFrame => "unsupported_frame",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: the code and human-readable message of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DispatchError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl DispatchError {
    /// A new error with its code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The payload could not be encoded as JSON (for example a map with non-string keys).
    #[error("payload could not be encoded as json: {0}")]
    Encode(#[from] serde_json::Error),
    /// The send named a route this server does not serve (a typo such as `/admin` for
    /// `/admins`): nothing was sent.
    #[error(transparent)]
    UnknownRoute(#[from] UnknownRoute),
}

/// A route path that is not in this server's route table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no route `{path}` in this server's table (its routes: {known})")]
pub struct UnknownRoute {
    path: String,
    known: String,
}

impl UnknownRoute {
    pub(crate) fn new<'a>(path: &str, known: impl IntoIterator<Item = &'a str>) -> Self {
        let mut known: Vec<&str> = known.into_iter().collect();
        known.sort_unstable();
        Self {
            path: path.to_owned(),
            known: known.join(", "),
        }
    }

    /// The path that was asked for.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Why a close could not be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// A code a server may not send: RFC 6455 reserves 1004, 1005, 1006 and 1015 (the last
    /// three say that no close frame was seen), 1010 is for clients, and codes outside
    /// 1000–1014 and 3000–4999 are not defined.
    #[error(
        "close code {0} cannot be sent by a server: use 1000-1003, 1007-1009, 1011-1014, or an application code in 3000-4999"
    )]
    InvalidCode(u16),
    /// The reason does not fit a close frame (at most 123 bytes of UTF-8).
    #[error("close reason is {0} bytes; a close frame holds at most 123")]
    ReasonTooLong(usize),
}

/// Why a request from the server ([`Client::emit_with_ack`]) got no reply.
///
/// [`Client::emit_with_ack`]: crate::Client::emit_with_ack
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The request could not be sent (its payload did not encode).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The client left, or is closing, before it answered.
    #[error("the client disconnected before answering")]
    Disconnected,
    /// No answer came within the timeout; a late answer is dropped.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The answer's payload is not the type asked for.
    #[error("the answer's payload does not fit: {0}")]
    Decode(String),
    /// The client is on a raw route (`on_text`), which does not speak the envelope: it cannot
    /// answer a request, so none was sent.
    #[error("a client of a raw route cannot answer a request: it does not speak the envelope")]
    RawRoute,
}

/// Why a client could not join a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The room name is empty or longer than 255 bytes.
    #[error("room name must be 1 to 255 bytes of utf-8, got {0} bytes")]
    InvalidName(usize),
    /// The client is already in the maximum number of rooms.
    #[error("already in the maximum of {0} rooms")]
    RoomLimit(usize),
    /// No client with this id is connected to this process ([`Handle::join`]).
    ///
    /// [`Handle::join`]: crate::Handle::join
    #[error("no client `{0}` is connected to this process")]
    NotConnected(String),
}

impl From<JoinError> for DispatchError {
    fn from(err: JoinError) -> Self {
        let code = match err {
            JoinError::InvalidName(_) => ErrorCode::InvalidRoom,
            JoinError::RoomLimit(_) => ErrorCode::RoomLimit,
            JoinError::NotConnected(_) => ErrorCode::HandlerError,
        };
        DispatchError::new(code, err.to_string())
    }
}

/// Why an operation on a client of any node ([`Handle::cluster`]) failed.
///
/// [`Handle::cluster`]: crate::Handle::cluster
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No node holds a client with this id.
    #[error("no client `{0}` is connected to any node")]
    NotConnected(String),
    /// The client's node refused: the message of the client's own error (a room limit, an
    /// invalid room name or close code).
    #[error("refused: {0}")]
    Refused(String),
    /// The adapter could not ask (the broker unreachable, or no answer in time).
    #[error(transparent)]
    Adapter(#[from] crate::adapter::AdapterError),
}

/// Why a route table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// A route path that does not start with `/`.
    #[error("route path `{path}` must start with `/` (registered at {location})")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Where it was registered.
        location: String,
    },
    /// An empty event name.
    #[error("event names must not be empty (route `{path}`, registered at {location})")]
    EmptyEvent {
        /// The route.
        path: String,
        /// Where it was registered.
        location: String,
    },
    /// Two handlers for one `(path, event)`.
    #[error("event `{event}` on route `{path}` has two handlers: {first} and {second}")]
    Duplicate {
        /// The route.
        path: String,
        /// The event.
        event: String,
        /// Where the first handler was registered.
        first: String,
        /// Where the second handler was registered.
        second: String,
    },
    /// A collected controller that cannot be built with `Default`.
    #[error(
        "controller `{controller}` (declared at {location}) has no `Default` impl: register an instance with `Router::controller(…)`"
    )]
    ControllerWithoutDefault {
        /// The controller type.
        controller: String,
        /// Where it was declared.
        location: String,
    },
    /// A handler takes `State<T>` but no `T` was registered with `Router::state`.
    #[error(
        "the handler of `{event}` on `{path}` (declared at {location}) takes `State<{state}>`, but no `{state}` was registered: add `.state(…)` to the router"
    )]
    MissingState {
        /// The state type.
        state: String,
        /// The route.
        path: String,
        /// The event.
        event: String,
        /// Where the handler was declared.
        location: String,
    },
    /// A `connect` or `disconnect` handler with a payload argument (they have no payload).
    #[error(
        "the `{event}` handler on `{path}` (declared at {location}) takes a payload, but `{event}` has none: take only the client and extractors such as `State<T>`"
    )]
    LifecyclePayload {
        /// The route.
        path: String,
        /// `connect` or `disconnect`.
        event: String,
        /// Where the handler was declared.
        location: String,
    },
    /// A router with no route at all: a server built from it would answer 404 to everything.
    #[error(
        "the router has no route{}",
        if *collected {
            ": `.controllers()` found no `#[ws_controller]`. A controller in a crate that the binary never references is not linked, so it is not collected: refer to something in that crate from the binary, or register its controllers with `Router::controller(…)`"
        } else {
            ": add `.websocket(path, …)`, `.controller(…)` or `.controllers()` (every `#[ws_controller]` linked into the binary)"
        }
    )]
    NoRoutes {
        /// Whether `.controllers()` was called (and collected nothing).
        collected: bool,
    },
    /// A guard declared with [`Router::guard`](crate::Router::guard) or
    /// [`Router::join_guard`](crate::Router::join_guard) for a path that no route serves: it
    /// would guard nothing, and the route it was meant for would stay open.
    #[error(
        "the {kind} declared at {location} is for `{path}`, but no route serves `{path}` (routes: {routes}): it would guard nothing, and the route it was meant for would stay open"
    )]
    GuardWithoutRoute {
        /// `guard` or `join guard`.
        kind: &'static str,
        /// The guard's path.
        path: String,
        /// Where the guard was declared.
        location: String,
        /// The routes there are, for comparison.
        routes: String,
    },
    /// A handler for an event the framework handles itself.
    #[error(
        "event `{event}` on route `{path}` is handled by the framework and cannot have a handler (registered at {location})"
    )]
    Reserved {
        /// The route.
        path: String,
        /// The event.
        event: String,
        /// Where it was registered.
        location: String,
    },
}
