//! Handlers: async closures of the client (and a typed payload), erased into one shape.

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::value::RawValue;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use crate::client::Client;
use crate::envelope::strip_position;
use crate::errors::{DispatchError, ErrorCode};
use crate::extract::{FromEvent, StateKey};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What one call of a handler produced: the reply's JSON text (when one was asked for), or the
/// error to send back.
pub type Outcome = Result<Option<String>, DispatchError>;

/// A handler with its types erased: the shape the router stores and dispatch calls.
///
/// Closures become one through [`Handler`]; controllers through generated code.
pub trait ErasedHandler: Send + Sync + 'static {
    /// Decodes `payload` for the handler and starts it. `want_reply` says whether the frame
    /// carried an `id` (the reply is encoded only then). A payload that does not decode is an
    /// `invalid_payload` error, returned before the handler runs.
    fn call(
        &self,
        client: Client,
        payload: Option<&RawValue>,
        want_reply: bool,
    ) -> Result<BoxFuture<Outcome>, DispatchError>;

    /// The application state the handler's arguments need (checked by `Router::build`).
    fn required_state(&self) -> Vec<StateKey> {
        Vec::new()
    }

    /// Whether an argument reads the payload (refused on `connect` / `disconnect`).
    fn reads_payload(&self) -> bool {
        false
    }
}

/// Something that can handle an event: an async closure whose arguments are extractors, in
/// any order: [`Client`] (by value), at most one payload (any type that implements
/// `serde::Deserialize`), and any number of the others ([`State<T>`](crate::State),
/// [`Extension<T>`](crate::Extension), or any [`FromEvent`] type), the rules
/// `#[ws_controller]` methods follow.
///
/// `M` only tells the shapes apart; it is inferred.
///
/// The closure is checked in three separate steps (its arity, then each argument, then its
/// output), each a bound of its own, so that a mistake is reported by what it is: "`&Client`
/// cannot be a handler argument", "`Foo` cannot be a handler's reply", or "the future is not
/// `Send`", rather than "not a handler".
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a vania-ws handler",
    label = "not a handler",
    note = "a handler is an async closure such as `|client: Client, payload: T| async move {{ … }}`: its arguments are extractors (`Client` by value, not `&Client`; `State<T>`; `Extension<T>`; at most one payload `T: Deserialize`), up to 8, in any order, and its output implements `IntoReply`"
)]
pub trait Handler<M>: Send + Sync + Sized + 'static {
    /// Erases the handler's types.
    fn into_erased(self) -> Arc<dyn ErasedHandler>;
}

/// A function of `Args`, a tuple of up to 8 arguments, that returns a future: the arity step
/// of [`Handler`], which infers the argument types from the closure and checks nothing else.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a vania-ws handler",
    label = "not a handler",
    note = "a handler is an async closure such as `|client: Client, payload: T| async move {{ … }}`, with up to 8 arguments"
)]
pub trait HandlerFn<Args> {
    /// What the future produces.
    type Reply;
    /// The future the call returns.
    type Future: Future<Output = Self::Reply>;
    /// Calls the function with its arguments.
    fn call_with(&self, args: Args) -> Self::Future;
}

/// A tuple of extractors, built from one event: the argument step of [`Handler`].
#[doc(hidden)]
pub trait Extractors: Sized + Send + 'static {
    /// How many of the arguments read the payload (at most one may).
    const PAYLOADS: usize;

    /// Builds every argument and starts `handler` with them: now, in this call, when every
    /// argument is ready (always so with the built-in extractors), or in the returned future
    /// once the waiting ones are done. An argument that fails refuses the event.
    fn start<F>(
        handler: &Arc<F>,
        client: &Client,
        payload: Option<&RawValue>,
        want_reply: bool,
    ) -> Result<BoxFuture<Outcome>, DispatchError>
    where
        F: HandlerFn<Self> + Send + Sync + 'static,
        F::Future: Send + 'static,
        F::Reply: IntoReply;

    /// The application state the arguments need.
    fn required_state() -> Vec<StateKey>;
}

impl<F, Args> Handler<Args> for F
where
    F: HandlerFn<Args> + Send + Sync + 'static,
    F::Future: Send + 'static,
    F::Reply: IntoReply,
    Args: Extractors,
{
    fn into_erased(self) -> Arc<dyn ErasedHandler> {
        const {
            assert!(
                Args::PAYLOADS <= 1,
                "a handler takes at most one payload argument: put the fields in one struct (the other arguments are extractors: Client, State<T>, Extension<T>)"
            );
        }
        Arc::new(Closure::<F, Args>(Arc::new(self), PhantomData))
    }
}

/// A closure with its argument types, erased. Shared, so that a call whose extractors wait
/// can call it once they are done.
struct Closure<F, Args>(Arc<F>, PhantomData<fn() -> Args>);

impl<F, Args> ErasedHandler for Closure<F, Args>
where
    F: HandlerFn<Args> + Send + Sync + 'static,
    F::Future: Send + 'static,
    F::Reply: IntoReply,
    Args: Extractors,
{
    fn call(
        &self,
        client: Client,
        payload: Option<&RawValue>,
        want_reply: bool,
    ) -> Result<BoxFuture<Outcome>, DispatchError> {
        Args::start(&self.0, &client, payload, want_reply)
    }

    fn required_state(&self) -> Vec<StateKey> {
        Args::required_state()
    }

    fn reads_payload(&self) -> bool {
        Args::PAYLOADS > 0
    }
}

macro_rules! closure_handlers {
    ($($arg:ident),*) => {
        impl<F, Fut, $($arg,)*> HandlerFn<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut,
            Fut: Future,
        {
            type Reply = Fut::Output;
            type Future = Fut;

            #[inline]
            #[allow(non_snake_case)]
            fn call_with(&self, ($($arg,)*): ($($arg,)*)) -> Fut {
                self($($arg),*)
            }
        }

        impl<$($arg,)*> Extractors for ($($arg,)*)
        where
            $($arg: FromEvent + Send + 'static,)*
        {
            const PAYLOADS: usize = 0 $(+ <$arg as FromEvent>::READS_PAYLOAD as usize)*;

            #[allow(non_snake_case, unused_variables, unreachable_patterns)]
            fn start<F>(
                handler: &Arc<F>,
                client: &Client,
                payload: Option<&RawValue>,
                want_reply: bool,
            ) -> Result<BoxFuture<Outcome>, DispatchError>
            where
                F: HandlerFn<Self> + Send + Sync + 'static,
                F::Future: Send + 'static,
                F::Reply: IntoReply,
            {
                // Each argument now (an error refuses the event before the handler starts), or
                // the future of it.
                $(let $arg = match <$arg as FromEvent>::from_event(client, payload).now() {
                    Ok(result) => Ok(result?),
                    Err(waiting) => Err(waiting),
                };)*
                match ($($arg,)*) {
                    ($(Ok($arg),)*) => {
                        let fut = handler.call_with(($($arg,)*));
                        Ok(Box::pin(async move { fut.await.into_reply(want_reply) }))
                    }
                    ($($arg,)*) => {
                        let handler = Arc::clone(handler);
                        Ok(Box::pin(async move {
                            $(let $arg = match $arg {
                                Ok(value) => value,
                                Err(waiting) => waiting.await?,
                            };)*
                            handler.call_with(($($arg,)*)).await.into_reply(want_reply)
                        }))
                    }
                }
            }

            fn required_state() -> Vec<StateKey> {
                let keys: [Option<StateKey>; 0 $(+ { let _ = stringify!($arg); 1 })*] =
                    [$(<$arg as FromEvent>::required_state()),*];
                keys.into_iter().flatten().collect()
            }
        }
    };
}

closure_handlers!();
closure_handlers!(T1);
closure_handlers!(T1, T2);
closure_handlers!(T1, T2, T3);
closure_handlers!(T1, T2, T3, T4);
closure_handlers!(T1, T2, T3, T4, T5);
closure_handlers!(T1, T2, T3, T4, T5, T6);
closure_handlers!(T1, T2, T3, T4, T5, T6, T7);
closure_handlers!(T1, T2, T3, T4, T5, T6, T7, T8);

/// Decodes a raw payload into `T`, as PROTOCOL.md section 3 says: a missing payload is `null`,
/// and a JSON string that does not decode as `T` is parsed as JSON once more (for clients that
/// send `JSON.stringify(obj)`). The error names the field that failed.
pub fn decode_payload<T: DeserializeOwned>(payload: Option<&RawValue>) -> Result<T, DispatchError> {
    let text = payload.map_or("null", RawValue::get);
    // The common case pays for one parse; the field path is only tracked to explain a failure.
    if let Ok(value) = serde_json::from_str::<T>(text) {
        return Ok(value);
    }
    let stringified = text
        .starts_with('"')
        .then(|| serde_json::from_str::<String>(text).ok())
        .flatten();
    if let Some(inner) = stringified {
        if let Ok(value) = serde_json::from_str::<T>(&inner) {
            return Ok(value);
        }
        if serde_json::from_str::<IgnoredAny>(&inner).is_ok() {
            return Err(invalid_payload::<T>(&inner));
        }
    }
    Err(invalid_payload::<T>(text))
}

/// Decodes again, this time tracking the field path, to say what did not fit.
fn invalid_payload<T: DeserializeOwned>(text: &str) -> DispatchError {
    let message = match decode_with_path::<T>(text) {
        // Unreachable for a payload that failed to decode; keep a message regardless.
        Ok(_) => "the payload does not fit the handler's type".to_owned(),
        Err(message) => message,
    };
    DispatchError::new(ErrorCode::InvalidPayload, message)
}

fn decode_with_path<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = strip_position(err.inner());
        if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })?;
    de.end().map_err(|err| strip_position(&err))?;
    Ok(value)
}

/// What a closure handler may return: the reply sent to a request that carried an `id`.
///
/// `()` replies `null`; `Result<T, E>` replies `T` (any `Serialize` type) or fails with
/// `handler_error` and `E`'s display text; [`Json`] wraps any `Serialize` value; the standard
/// value types (numbers, strings, `Vec`, `Option`, maps, tuples, `serde_json::Value`) reply
/// themselves.
///
/// A closure returns a `Serialize` struct of your own wrapped, `Json(reply)` or `Ok(reply)`,
/// where a `#[ws_controller]` method may return it as it is. The reason is Rust's coherence
/// rule: an impl for every `Serialize` type would overlap the one for `Result` (a `Result` is
/// `Serialize` too), so a generic closure cannot tell them apart. The macro can, because it
/// sees the method's concrete return type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler's reply",
    label = "not a reply",
    note = "return `()`, a `Result<T, E>` with `T: Serialize` and `E: Display`, a standard value type, or wrap a `Serialize` value in `Json(…)`: a closure cannot return a struct of your own as it is (a `#[ws_controller]` method can)"
)]
pub trait IntoReply: Send + 'static {
    /// The reply's JSON text when `want_reply`, or the error to send.
    fn into_reply(self, want_reply: bool) -> Outcome;
}

/// Wraps any `Serialize` value as a handler's reply (a closure's, whose output must implement
/// [`IntoReply`]; a controller method may return the value itself, or this).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Encodes a reply value, only when a reply was asked for.
pub fn encode_reply<T: Serialize + ?Sized>(value: &T, want_reply: bool) -> Outcome {
    if !want_reply {
        return Ok(None);
    }
    crate::json::to_string(value).map(Some).map_err(|err| {
        DispatchError::new(
            ErrorCode::Internal,
            format!("the reply could not be encoded as json: {err}"),
        )
    })
}

impl IntoReply for () {
    fn into_reply(self, want_reply: bool) -> Outcome {
        Ok(want_reply.then(|| "null".to_owned()))
    }
}

impl<T: Serialize + Send + 'static> IntoReply for Json<T> {
    fn into_reply(self, want_reply: bool) -> Outcome {
        encode_reply(&self.0, want_reply)
    }
}

impl<T, E> IntoReply for Result<T, E>
where
    T: Serialize + Send + 'static,
    E: Display + Send + 'static,
{
    fn into_reply(self, want_reply: bool) -> Outcome {
        match self {
            Ok(value) => encode_reply(&value, want_reply),
            Err(err) => Err(DispatchError::new(ErrorCode::HandlerError, err.to_string())),
        }
    }
}

macro_rules! serialize_replies {
    ($($ty:ty),* $(,)?) => {$(
        impl IntoReply for $ty {
            fn into_reply(self, want_reply: bool) -> Outcome {
                encode_reply(&self, want_reply)
            }
        }
    )*};
}

serialize_replies!(
    serde_json::Value,
    String,
    &'static str,
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    usize,
    isize,
    f32,
    f64,
    i128,
    u128,
    char,
    std::borrow::Cow<'static, str>,
);

impl<T: Serialize + Send + 'static> IntoReply for Vec<T> {
    fn into_reply(self, want_reply: bool) -> Outcome {
        encode_reply(&self, want_reply)
    }
}

impl<T: Serialize + Send + 'static> IntoReply for Option<T> {
    fn into_reply(self, want_reply: bool) -> Outcome {
        encode_reply(&self, want_reply)
    }
}

macro_rules! generic_replies {
    ($(<$($param:ident),*> $ty:ty),* $(,)?) => {$(
        impl<$($param: Serialize + Send + 'static),*> IntoReply for $ty {
            fn into_reply(self, want_reply: bool) -> Outcome {
                encode_reply(&self, want_reply)
            }
        }
    )*};
}

generic_replies!(
    <T> Box<T>,
    <T> std::collections::VecDeque<T>,
    <T> std::collections::BTreeSet<T>,
    <K, V> std::collections::BTreeMap<K, V>,
    <K, V> std::collections::HashMap<K, V>,
    <A, B> (A, B),
    <A, B, C> (A, B, C),
    <A, B, C, D> (A, B, C, D),
);

impl<T: Serialize + Send + 'static, const N: usize> IntoReply for [T; N] {
    fn into_reply(self, want_reply: bool) -> Outcome {
        encode_reply(&self[..], want_reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Msg {
        room: String,
        message: serde_json::Value,
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn decodes_objects_and_stringified_objects() {
        let want = Msg {
            room: "r".into(),
            message: 1.into(),
        };
        let direct = raw(r#"{"room":"r","message":1}"#);
        assert_eq!(decode_payload::<Msg>(Some(&direct)).unwrap(), want);
        let stringified = raw(r#""{\"room\":\"r\",\"message\":1}""#);
        assert_eq!(decode_payload::<Msg>(Some(&stringified)).unwrap(), want);
    }

    #[test]
    fn strings_stay_strings_for_string_handlers() {
        let s = raw(r#""{\"a\":1}""#);
        assert_eq!(decode_payload::<String>(Some(&s)).unwrap(), r#"{"a":1}"#);
        assert_eq!(
            decode_payload::<serde_json::Value>(Some(&s)).unwrap(),
            serde_json::Value::String(r#"{"a":1}"#.into())
        );
    }

    #[test]
    fn missing_payload_is_null() {
        assert_eq!(decode_payload::<Option<Msg>>(None).unwrap(), None);
        assert_eq!(
            decode_payload::<serde_json::Value>(None).unwrap(),
            serde_json::Value::Null
        );
    }

    #[test]
    fn errors_name_the_field() {
        let missing = raw(r#"{"message":1}"#);
        let err = decode_payload::<Msg>(Some(&missing)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        assert_eq!(err.message, "missing field `room`");
        let wrong = raw(r#"{"room":5,"message":1}"#);
        let err = decode_payload::<Msg>(Some(&wrong)).unwrap_err();
        assert_eq!(
            err.message,
            "room: invalid type: integer `5`, expected a string"
        );
    }

    #[test]
    fn deeply_nested_payloads_are_refused_not_overflowing_the_stack() {
        let nested = format!("{}1{}", "[".repeat(50_000), "]".repeat(50_000));
        let err = decode_payload::<serde_json::Value>(Some(&raw(&nested))).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        assert!(err.message.contains("recursion limit"), "{}", err.message);
    }

    #[test]
    fn replies() {
        assert_eq!(().into_reply(true).unwrap().as_deref(), Some("null"));
        assert_eq!(().into_reply(false).unwrap(), None);
        let ok: Result<u8, String> = Ok(3);
        assert_eq!(ok.into_reply(true).unwrap().as_deref(), Some("3"));
        let err: Result<u8, &str> = Err("boom");
        let err = err.into_reply(true).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (ErrorCode::HandlerError, "boom")
        );
    }

    #[test]
    fn standard_value_types_reply_themselves() {
        let reply = |r: Outcome| r.unwrap().unwrap();
        assert_eq!(reply(("a", 1).into_reply(true)), r#"["a",1]"#);
        assert_eq!(reply([1u8, 2].into_reply(true)), "[1,2]");
        let map = std::collections::BTreeMap::from([("k", vec![1])]);
        assert_eq!(reply(map.into_reply(true)), r#"{"k":[1]}"#);
        assert_eq!(reply(Box::new('x').into_reply(true)), r#""x""#);
        assert_eq!(reply(u128::MAX.into_reply(true)), u128::MAX.to_string());
        assert_eq!(("a", 1).into_reply(false).unwrap(), None);
    }
}
