//! Extractors: what a handler's arguments are made from.
//!
//! Every argument of a handler, a controller's or a closure's, is built by [`FromEvent`] from
//! the client and the raw payload: [`Client`] itself, [`State<T>`] (application state
//! registered on the router), [`Extension<T>`] (what a guard attached), or any type that
//! implements `serde::Deserialize`, which is decoded from the payload. `&Client` is taken by
//! reference through [`ClientRef`]. An extractor of your own may await (look a user up, say):
//! it answers with [`Extraction::wait`] instead of [`Extraction::ready`].

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::client::Client;
use crate::errors::{DispatchError, ErrorCode};
use crate::handler::{BoxFuture, decode_payload};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Builds a handler argument from the event: the client, its payload, and the app's state.
///
/// Implemented for [`Client`], [`State<T>`] and every type that implements
/// `serde::Deserialize` (the payload). Implement it for your own types to make new extractors.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler argument",
    label = "not an extractor or a payload type",
    note = "a handler's arguments are `Client` (by value in a closure, `&Client` in a `#[ws_controller]` method), `State<T>`, `Extension<T>`, your own `FromEvent` types, or one payload type that implements `serde::Deserialize` (add `#[derive(Deserialize)]`)"
)]
pub trait FromEvent: Sized {
    /// Builds the argument, at once ([`Extraction::ready`], what the built-in extractors do)
    /// or after awaiting something ([`Extraction::wait`]); an error refuses the event with an
    /// error frame, and the handler does not run.
    ///
    /// ```
    /// use vania_ws_core::Client;
    /// use vania_ws_core::error::{DispatchError, ErrorCode};
    /// use vania_ws_core::extract::{Extraction, FromEvent};
    /// use vania_ws_core::serde_json::value::RawValue;
    ///
    /// /// The signed-in user, looked up (asynchronously) from what the login stored.
    /// struct CurrentUser(String);
    ///
    /// impl FromEvent for CurrentUser {
    ///     fn from_event(client: &Client, _payload: Option<&RawValue>) -> Extraction<Self> {
    ///         let token = client.data::<String>();
    ///         Extraction::wait(async move {
    ///             // a database or cache lookup would await here
    ///             token.map(CurrentUser).ok_or_else(|| {
    ///                 DispatchError::new(ErrorCode::Forbidden, "log in first")
    ///             })
    ///         })
    ///     }
    /// }
    /// ```
    fn from_event(client: &Client, payload: Option<&RawValue>) -> Extraction<Self>;

    /// The application state this extractor needs, checked when the router is built so that
    /// a missing `Router::state` fails start-up instead of a request.
    fn required_state() -> Option<StateKey> {
        None
    }

    /// Whether this extractor reads the event's payload. `connect` and `disconnect` have no
    /// payload, so `Router::build` refuses lifecycle handlers with such an argument.
    const READS_PAYLOAD: bool = false;
}

/// A type of application state, by id and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateKey {
    /// The type's id.
    pub id: TypeId,
    /// The type's name, for the error.
    pub name: &'static str,
}

impl StateKey {
    /// The key of `T`.
    pub fn of<T: 'static>() -> Self {
        Self {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }
}

impl<T: DeserializeOwned> FromEvent for T {
    fn from_event(_client: &Client, payload: Option<&RawValue>) -> Extraction<Self> {
        Extraction::ready(decode_payload(payload))
    }

    const READS_PAYLOAD: bool = true;
}

impl FromEvent for Client {
    fn from_event(client: &Client, _payload: Option<&RawValue>) -> Extraction<Self> {
        Extraction::ready(Ok(client.clone()))
    }
}

/// A closure that takes `&Client` gets this error, by name, instead of a generic one: a
/// closure's arguments are owned (its future outlives the call), and `Client` is a cheap handle.
impl<'a> FromEvent for &'a Client
where
    &'a Client: TakeClientByValue,
{
    fn from_event(_client: &Client, _payload: Option<&RawValue>) -> Extraction<Self> {
        // Never called: no type implements `TakeClientByValue`, and no other crate may add one.
        Extraction::ready(Err(DispatchError::new(
            ErrorCode::Internal,
            "`&Client` is not an extractor",
        )))
    }
}

/// Never implemented: the bound that turns `&Client` in a closure into a clear error.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`&Client` is not accepted here, take `Client`",
    label = "take `client: Client` (by value)",
    note = "a closure handler owns its arguments, because its future outlives the call; `Client` is a cheap handle (`#[ws_controller]` methods take `&Client`)"
)]
pub trait TakeClientByValue {}

/// Types a handler may take by reference: only [`Client`].
#[diagnostic::on_unimplemented(
    message = "`&{Self}` cannot be a handler argument",
    label = "only `&Client` is taken by reference",
    note = "take `&Client`, or take other extractors and payloads by value"
)]
pub trait ClientRef {
    /// The reference handed to the handler.
    fn client_ref(client: &Client) -> &Self;
}

impl ClientRef for Client {
    fn client_ref(client: &Client) -> &Self {
        client
    }
}

/// Application state registered with [`Router::state`](crate::Router::state), shared by every
/// handler that asks for it. Dereferences to `T`; cloning is cheap.
pub struct State<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: ?Sized> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&&*self.0).finish()
    }
}

impl<T: Send + Sync + 'static> FromEvent for State<T> {
    fn from_event(client: &Client, _payload: Option<&RawValue>) -> Extraction<Self> {
        Extraction::ready(client.state::<T>().map(State).ok_or_else(|| {
            DispatchError::new(
                ErrorCode::Internal,
                format!(
                    "no state of type `{}` was registered with `Router::state`",
                    std::any::type_name::<T>()
                ),
            )
        }))
    }

    fn required_state() -> Option<StateKey> {
        Some(StateKey::of::<T>())
    }
}

/// Application state by type.
#[derive(Clone, Default)]
pub(crate) struct StateMap {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMap")
            .field("len", &self.values.len())
            .finish()
    }
}

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        self.values.insert(TypeId::of::<T>(), value);
    }

    pub(crate) fn contains(&self, key: &StateKey) -> bool {
        self.values.contains_key(&key.id)
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|value| value.clone().downcast::<T>().ok())
    }
}

/// A value a connection guard attached to the handshake (`Handshake::extensions`), cloned
/// out for the handler. Missing, it fails the event with `internal`: a guard on the route must
/// insert it.
#[derive(Debug, Clone)]
pub struct Extension<T>(pub T);

impl<T> Deref for Extension<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone + Send + Sync + 'static> FromEvent for Extension<T> {
    fn from_event(client: &Client, _payload: Option<&RawValue>) -> Extraction<Self> {
        let found = client
            .extensions()
            .get::<T>()
            .cloned()
            .map(Extension)
            .ok_or_else(|| {
                DispatchError::new(
                    ErrorCode::Internal,
                    format!(
                        "no `{}` was attached to this connection by a guard",
                        std::any::type_name::<T>()
                    ),
                )
            });
        Extraction::ready(found)
    }
}

/// What [`FromEvent::from_event`] answers: the argument at once, or a future of it.
///
/// Awaiting it gives the argument or the error. The built-in extractors are always ready,
/// and a handler whose arguments are all ready starts in the same call: awaiting costs only
/// the extractors that wait.
pub struct Extraction<T>(Step<T>);

enum Step<T> {
    Ready(Option<Result<T, DispatchError>>),
    Waiting(BoxFuture<Result<T, DispatchError>>),
}

// The argument is only ever moved out, never pinned.
impl<T> Unpin for Extraction<T> {}

impl<T> fmt::Debug for Extraction<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Step::Ready(_) => "Extraction::Ready",
            Step::Waiting(_) => "Extraction::Waiting",
        })
    }
}

impl<T> Extraction<T> {
    /// The argument, or the error, now.
    pub fn ready(result: Result<T, DispatchError>) -> Self {
        Self(Step::Ready(Some(result)))
    }

    /// The argument once `future` completes (a lookup, say).
    pub fn wait(future: impl Future<Output = Result<T, DispatchError>> + Send + 'static) -> Self {
        Self(Step::Waiting(Box::pin(future)))
    }

    /// The argument or error now, or the future that waits for it: what the handlers the
    /// framework builds branch on, so that a handler whose arguments are all ready starts
    /// without a future of its own.
    #[doc(hidden)]
    pub fn now(self) -> Result<Result<T, DispatchError>, BoxFuture<Result<T, DispatchError>>> {
        match self.0 {
            Step::Ready(Some(result)) => Ok(result),
            Step::Ready(None) => Ok(Err(DispatchError::new(
                ErrorCode::Internal,
                "an extractor was taken twice",
            ))),
            Step::Waiting(future) => Err(future),
        }
    }
}

impl<T> Future for Extraction<T> {
    type Output = Result<T, DispatchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Step::Ready(ready) => Poll::Ready(ready.take().unwrap_or_else(|| {
                Err(DispatchError::new(
                    ErrorCode::Internal,
                    "an extractor was awaited twice",
                ))
            })),
            Step::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}
