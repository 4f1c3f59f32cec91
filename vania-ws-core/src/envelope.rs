//! The JSON envelope: parsing incoming frames and encoding outgoing ones.
//!
//! An incoming frame is parsed once into an [`Envelope`] that borrows from the frame's text; the
//! payload stays raw JSON until a handler deserializes it into its own type. An outgoing frame is
//! encoded once into a [`Frame`] that all its recipients share.

use serde::Deserialize;
use serde::Serialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use std::borrow::Cow;
use tungstenite::Utf8Bytes;

use crate::errors::{DispatchError, ErrorCode};

/// A parsed client frame: `{"event": …, "payload": …, "id": …, "room": …}`.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The event name.
    pub event: Cow<'a, str>,
    /// The request id, when the client wants a reply.
    pub id: Option<u64>,
    /// The `room` field, raw (only `join-room` / `left-room` read it).
    pub room: Option<&'a RawValue>,
    /// The payload, raw; `None` when absent.
    pub payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    /// Kept raw rather than read as a string: an `event` that is not a string must not fail
    /// the whole parse before the `id` is known (its error carries the id).
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    /// `Some` whenever the key is present, `null` included: an `Option<&RawValue>` alone
    /// would read `"id": null` as no id, and run the handler without the reply asked for.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    room: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(deserializer).map(Some)
}

/// What parsing recovered of a frame it refused: the request id, where one could be read.
#[derive(Debug)]
pub struct EnvelopeError {
    /// The request id, if the frame carried a valid one.
    pub id: Option<u64>,
    /// The error to send back.
    pub error: DispatchError,
}

impl<'a> Envelope<'a> {
    /// Parses one text frame.
    ///
    /// Errors are `invalid_json` (not JSON) or `invalid_envelope` (JSON, but not an object with a
    /// string `event`, or with an `id` that is not an unsigned integer).
    pub fn parse(text: &'a str) -> Result<Self, EnvelopeError> {
        // serde would also read a struct from a JSON array (`["whoami"]`): only an object is
        // an envelope.
        if !text.trim_start().starts_with('{') {
            return Err(Self::classify(text, None));
        }
        let raw: RawEnvelope<'a> = match serde_json::from_str(text) {
            Ok(raw) => raw,
            Err(err) => return Err(Self::classify(text, Some(&err))),
        };
        let id = match raw.id {
            None => None,
            Some(id) => match serde_json::from_str::<u64>(id.get()) {
                Ok(id) => Some(id),
                Err(_) => {
                    return Err(EnvelopeError {
                        id: None,
                        error: DispatchError::new(
                            ErrorCode::InvalidEnvelope,
                            "`id` must be an unsigned integer",
                        ),
                    });
                }
            },
        };
        let event = raw
            .event
            .and_then(|event| event_name(event.get()))
            .ok_or_else(|| EnvelopeError {
                id,
                error: DispatchError::new(
                    ErrorCode::InvalidEnvelope,
                    "a frame must be an object with a string `event`",
                ),
            })?;
        Ok(Envelope {
            event,
            id,
            room: raw.room,
            payload: raw.payload,
        })
    }

    fn classify(text: &str, err: Option<&serde_json::Error>) -> EnvelopeError {
        let is_data = err.is_some_and(serde_json::Error::is_data);
        let error = if is_data || is_json(text) {
            let why = match err {
                Some(err) => format!(": {}", strip_position(err)),
                None => String::new(),
            };
            DispatchError::new(
                ErrorCode::InvalidEnvelope,
                format!("a frame must be a json object with a string `event`{why}"),
            )
        } else {
            let why = match err {
                Some(err) => strip_position(err),
                None => match serde_json::from_str::<IgnoredAny>(text) {
                    Err(err) => strip_position(&err),
                    Ok(_) => "invalid json".to_owned(),
                },
            };
            DispatchError::new(
                ErrorCode::InvalidJson,
                format!("frame is not valid json: {why}"),
            )
        };
        EnvelopeError { id: None, error }
    }
}

/// The event name of a raw `event` value: borrowed straight from the frame when it is a string
/// without escapes (the common case: no second parse), decoded when it has some; `None` when
/// it is not a string. The parser has already checked that `raw` is one JSON value, so a
/// value between quotes without a backslash is exactly its text.
fn event_name(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<Cow<'_, str>>(raw).ok()
}

/// Whether `text` is one JSON value, however deeply nested (the parser's nesting limit of 128
/// would call a deep but valid document invalid; this check grows its stack instead). Only the
/// error path runs it.
fn is_json(text: &str) -> bool {
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let valid = IgnoredAny::deserialize(serde_stacker::Deserializer::new(&mut de)).is_ok();
    valid && de.end().is_ok()
}

/// A serde_json error's message without its " at line L column C" suffix.
pub(crate) fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// An encoded outgoing frame, shared by every recipient without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Utf8Bytes);

impl Frame {
    /// `{"event": event, "payload": payload}`.
    pub fn event<T: Serialize + ?Sized>(
        event: &str,
        payload: &T,
    ) -> Result<Self, serde_json::Error> {
        #[derive(Serialize)]
        struct EventFrame<'a, T: ?Sized> {
            event: &'a str,
            payload: &'a T,
        }
        crate::json::to_string(&EventFrame { event, payload }).map(|json| Self(json.into()))
    }

    /// `{"event": event, "id": id, "payload": payload}`: a request from the server, which the
    /// client answers with `{"event":"ack","id": id, …}` (PROTOCOL.md section 4).
    pub fn request<T: Serialize + ?Sized>(
        event: &str,
        id: u64,
        payload: &T,
    ) -> Result<Self, serde_json::Error> {
        #[derive(Serialize)]
        struct RequestFrame<'a, T: ?Sized> {
            event: &'a str,
            id: u64,
            payload: &'a T,
        }
        crate::json::to_string(&RequestFrame { event, id, payload }).map(|json| Self(json.into()))
    }

    /// `{"event":"connected","payload":{"session_id": id}}`.
    pub fn connected(session_id: &str) -> Self {
        #[derive(Serialize)]
        struct Connected<'a> {
            session_id: &'a str,
        }
        Self::event("connected", &Connected { session_id }).expect("a string always encodes")
    }

    /// `{"event":"ack","id": id,"payload": payload}` where `payload` is JSON text.
    pub fn ack(id: u64, payload_json: &str) -> Self {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(48 + payload_json.len());
        let _ = write!(
            out,
            r#"{{"event":"ack","id":{id},"payload":{payload_json}}}"#
        );
        Self(out.into())
    }

    /// `{"event":"error"[,"id": id],"payload":{"code": …,"message": …}}`.
    pub fn error(id: Option<u64>, error: &DispatchError) -> Self {
        #[derive(Serialize)]
        struct ErrorFrame<'a> {
            event: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<u64>,
            payload: ErrorPayload<'a>,
        }
        #[derive(Serialize)]
        struct ErrorPayload<'a> {
            code: &'static str,
            message: &'a str,
        }
        let frame = ErrorFrame {
            event: "error",
            id,
            payload: ErrorPayload {
                code: error.code.as_str(),
                message: &error.message,
            },
        };
        Self(
            crate::json::to_string(&frame)
                .expect("strings always encode")
                .into(),
        )
    }

    /// A text frame as it is, not necessarily JSON (for raw routes).
    pub fn raw(text: Utf8Bytes) -> Self {
        Self(text)
    }

    /// A frame from bytes another node sent (an adapter's), checked to be UTF-8, and kept as
    /// they are, without a copy.
    pub fn from_utf8(bytes: bytes::Bytes) -> Result<Self, std::str::Utf8Error> {
        Utf8Bytes::try_from(bytes).map(Self)
    }

    /// The frame's JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the frame is empty (never true for a built frame).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The shared bytes, ready for a WebSocket text message.
    pub fn into_text(self) -> Utf8Bytes {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        Envelope::parse(text).unwrap_err().error.code
    }

    #[test]
    fn parses_event_payload_id_room() {
        let env =
            Envelope::parse(r#"{"event":"m","payload":{"a":[1,2]},"id":7,"room":"r"}"#).unwrap();
        assert_eq!(env.event, "m");
        assert_eq!(env.id, Some(7));
        assert_eq!(env.payload.unwrap().get(), r#"{"a":[1,2]}"#);
        assert_eq!(env.room.unwrap().get(), r#""r""#);
    }

    #[test]
    fn escaped_event_names_are_decoded() {
        let env = Envelope::parse(r#"{"event":"a\"b"}"#).unwrap();
        assert_eq!(env.event, "a\"b");
        assert!(env.payload.is_none());
    }

    #[test]
    fn classifies_bad_frames() {
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("{\"event\":"), ErrorCode::InvalidJson);
        assert_eq!(code("[]"), ErrorCode::InvalidEnvelope);
        assert_eq!(code("5"), ErrorCode::InvalidEnvelope);
        assert_eq!(code(r#"{"event":5}"#), ErrorCode::InvalidEnvelope);
        assert_eq!(code(r#"{"payload":1}"#), ErrorCode::InvalidEnvelope);
        assert_eq!(code(r#"{"event":"x","id":-1}"#), ErrorCode::InvalidEnvelope);
        assert_eq!(
            code(r#"{"event":"x","id":"1"}"#),
            ErrorCode::InvalidEnvelope
        );
        assert_eq!(
            code(r#"{"event":"x","id":1.5}"#),
            ErrorCode::InvalidEnvelope
        );
        for id in ["null", "{}", "[]", "true", "1e3", "18446744073709551616"] {
            let text = format!(r#"{{"event":"x","id":{id}}}"#);
            assert_eq!(code(&text), ErrorCode::InvalidEnvelope, "{text}");
        }
        assert_eq!(
            Envelope::parse(r#"{"event":"x","id":0}"#).unwrap().id,
            Some(0)
        );
        assert_eq!(code("{} {}"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"["whoami"]"#), ErrorCode::InvalidEnvelope);
        assert_eq!(
            code(r#" ["message",7,null,"hi"]"#),
            ErrorCode::InvalidEnvelope
        );
        assert_eq!(
            code(r#"["join-room",null,"lobby"]"#),
            ErrorCode::InvalidEnvelope
        );
        assert_eq!(code("[1,"), ErrorCode::InvalidJson);
    }

    #[test]
    fn deep_nesting_is_classified_without_overflowing_the_stack() {
        let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        assert_eq!(code(&deep), ErrorCode::InvalidEnvelope);
        assert_eq!(code(&"[".repeat(50_000)), ErrorCode::InvalidJson);
        // A deep payload is skipped, not parsed: the handler's type decides (see handler.rs).
        let nested = format!("{}1{}", "[".repeat(50_000), "]".repeat(50_000));
        let deep_payload = format!(r#"{{"event":"e","payload":{nested}}}"#);
        assert_eq!(Envelope::parse(&deep_payload).unwrap().event, "e");
    }

    #[test]
    fn keeps_the_id_of_a_frame_without_event() {
        let err = Envelope::parse(r#"{"id":3,"payload":1}"#).unwrap_err();
        assert_eq!(err.id, Some(3));
        assert_eq!(err.error.code, ErrorCode::InvalidEnvelope);
    }

    #[test]
    fn encodes_frames() {
        let f = Frame::event("a\"b", &serde_json::json!({"x": 1})).unwrap();
        assert_eq!(f.as_str(), r#"{"event":"a\"b","payload":{"x":1}}"#);
        assert_eq!(
            Frame::ack(9, "null").as_str(),
            r#"{"event":"ack","id":9,"payload":null}"#
        );
        let e = DispatchError::new(ErrorCode::UnknownEvent, "no \"x\"");
        assert_eq!(
            Frame::error(Some(1), &e).as_str(),
            r#"{"event":"error","id":1,"payload":{"code":"unknown_event","message":"no \"x\""}}"#
        );
        assert_eq!(
            Frame::connected("ws:1").as_str(),
            r#"{"event":"connected","payload":{"session_id":"ws:1"}}"#
        );
    }
}
