//! Routes: which handlers answer which events on which path.
//!
//! Declared the way Vania declares them, then checked and frozen into a [`RouteTable`] once at
//! start-up: dispatch only reads it.

use std::any::TypeId;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::panic::Location;
use std::sync::Arc;

use crate::client::Client;
use crate::controller::{Controller, ControllerParts, collected_controllers};
use crate::errors::RouterError;
use crate::extract::StateMap;
use crate::guard::{self, ConnectionGuard, Handshake, JoinGuard, Rejection};
use crate::handler::{ErasedHandler, Handler};
use crate::metrics::DurationHistogram;
use std::future::Future;

/// Events the framework answers itself; they cannot have handlers. `ack` is a client's answer
/// to a request from the server (PROTOCOL.md section 4).
pub const RESERVED_EVENTS: [&str; 3] = ["join-room", "left-room", "ack"];

/// The route path that serves every path without a route of its own:
/// `Router::new().websocket("*", …)`.
pub const ANY_PATH: &str = "*";

/// The lifecycle event run when a client connects (it gets the client only).
pub const CONNECT: &str = "connect";
/// The lifecycle event run when a client disconnects (it gets the client only).
pub const DISCONNECT: &str = "disconnect";

/// A raw text handler: the whole text frame, not parsed as an envelope.
pub type TextHandler =
    Arc<dyn Fn(Client, tungstenite::Utf8Bytes) -> crate::handler::BoxFuture<()> + Send + Sync>;
/// A binary handler: the whole binary frame.
pub type BinaryHandler =
    Arc<dyn Fn(Client, bytes::Bytes) -> crate::handler::BoxFuture<()> + Send + Sync>;

struct Registration {
    path: String,
    event: String,
    handler: Arc<dyn ErasedHandler>,
    location: String,
}

/// The WebSocket routes of an application, as Vania's `Router.websocket` declares them.
///
/// ```
/// use vania_ws_core::{Client, Router};
/// use serde_json::Value;
///
/// let router = Router::new()
///     .websocket("/ws", |ev| {
///         ev.on("message", |client: Client, payload: Value| async move {
///             client.emit("message", &payload)
///         });
///         ev.on("connect", |client: Client| async move {
///             tracing::info!(id = client.id(), "connected");
///         });
///     })
///     .websocket("/clients", |_ev| {});
/// let table = router.build().unwrap();
/// assert!(table.get("/ws").is_some());
/// ```
#[derive(Default)]
pub struct Router {
    paths: Vec<(String, String)>,
    registrations: Vec<Registration>,
    explicit_controllers: HashSet<TypeId>,
    collect_controllers: bool,
    state: StateMap,
    guards: Vec<(Option<String>, ConnectionGuard)>,
    join_guards: Vec<(String, JoinGuard)>,
    raw: Vec<(String, Raw)>,
    /// The paths named by [`Router::guard`] and [`Router::join_guard`], with what was declared
    /// and where: each must be a route's, or the guard would guard nothing (checked by
    /// [`build`](Router::build)).
    guarded_paths: Vec<GuardedPath>,
}

/// A guard declared on the router for a path, not on the route itself.
struct GuardedPath {
    path: String,
    kind: &'static str,
    location: String,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("paths", &self.paths)
            .field("handlers", &self.registrations.len())
            .finish()
    }
}

/// Declares the events of one route; given to the closure of [`Router::websocket`].
pub struct WebSocketEvent<'r> {
    path: &'r str,
    registrations: &'r mut Vec<Registration>,
    guards: &'r mut Vec<(Option<String>, ConnectionGuard)>,
    join_guards: &'r mut Vec<(String, JoinGuard)>,
    raw: &'r mut Vec<(String, Raw)>,
}

#[derive(Clone)]
enum Raw {
    Text(TextHandler),
    Binary(BinaryHandler),
}

impl std::fmt::Debug for WebSocketEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketEvent")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WebSocketEvent<'_> {
    /// Takes this route's text frames raw: each whole text message goes to `handler`, with no
    /// envelope parsing and no event dispatch (for protocols other than vania-ws's JSON).
    pub fn on_text<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(Client, tungstenite::Utf8Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: TextHandler = Arc::new(move |client, text| Box::pin(handler(client, text)));
        self.raw.push((self.path.to_owned(), Raw::Text(handler)));
        self
    }

    /// Takes this route's binary frames (without it, a binary frame gets `unsupported_frame`).
    pub fn on_binary<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(Client, bytes::Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: BinaryHandler = Arc::new(move |client, data| Box::pin(handler(client, data)));
        self.raw.push((self.path.to_owned(), Raw::Binary(handler)));
        self
    }

    /// Guards this route's handshake: see [`Router::guard`].
    pub fn guard<F, Fut>(&mut self, guard: F) -> &mut Self
    where
        F: Fn(Handshake) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Handshake, Rejection>> + Send + 'static,
    {
        self.guards
            .push((Some(self.path.to_owned()), guard::connection_guard(guard)));
        self
    }

    /// Guards this route's `join-room`: see [`Router::join_guard`].
    pub fn join_guard<F, Fut>(&mut self, guard: F) -> &mut Self
    where
        F: Fn(Client, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.join_guards
            .push((self.path.to_owned(), guard::join_guard(guard)));
        self
    }

    /// Handles `event` on this route with an async closure of the client, or of the client and
    /// a typed payload. `connect` and `disconnect` handlers take the client only.
    #[track_caller]
    pub fn on<H, M>(&mut self, event: &str, handler: H) -> &mut Self
    where
        H: Handler<M>,
    {
        self.registrations.push(Registration {
            path: self.path.to_owned(),
            event: event.to_owned(),
            handler: handler.into_erased(),
            location: Location::caller().to_string(),
        });
        self
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a WebSocket route at `path` and its events. Declaring a path twice adds to it.
    #[track_caller]
    pub fn websocket(mut self, path: &str, events: impl FnOnce(&mut WebSocketEvent<'_>)) -> Self {
        self.paths
            .push((path.to_owned(), Location::caller().to_string()));
        let mut ev = WebSocketEvent {
            path,
            registrations: &mut self.registrations,
            guards: &mut self.guards,
            join_guards: &mut self.join_guards,
            raw: &mut self.raw,
        };
        events(&mut ev);
        self
    }

    /// Registers a controller instance: its handlers serve `C::PATH`. A controller registered
    /// this way is skipped by [`controllers`](Self::controllers).
    pub fn controller<C: Controller>(mut self, controller: C) -> Self {
        self.explicit_controllers.insert(TypeId::of::<C>());
        self.add_controller(C::PATH, ControllerParts::of(controller));
        self
    }

    /// Collects, when the table is built, every `#[ws_controller]` in the program that was not
    /// registered with [`controller`](Self::controller), building each with `Default`. A
    /// collected controller without `Default` fails [`build`](Self::build): register it
    /// explicitly.
    ///
    /// Only controllers the linker keeps are seen: a controller in a crate the binary never
    /// references is not collected.
    pub fn controllers(mut self) -> Self {
        self.collect_controllers = true;
        self
    }

    /// Registers application state, handed to handlers that take a [`State<T>`](crate::State)
    /// argument. One value per type; a second call with the same type replaces the first.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(Arc::new(value));
        self
    }

    /// Guards the handshake of the route at `path`: the guard runs before the upgrade with the
    /// request's path, query, headers and peer address, and either refuses it with an HTTP
    /// status (no socket is opened, no `connect` handler runs) or accepts it, possibly
    /// attaching values to `Handshake::extensions` for the connection's handlers.
    ///
    /// ```
    /// use vania_ws_core::Router;
    /// use vania_ws_core::guard::{Handshake, Rejection};
    ///
    /// #[derive(Clone)]
    /// struct User(String);
    ///
    /// let router = Router::new().guard("/admins", |mut request: Handshake| async move {
    ///     match request.query_param("token").as_deref() {
    ///         Some("secret") => {
    ///             request.extensions.insert(User("admin".into()));
    ///             Ok(request)
    ///         }
    ///         _ => Err(Rejection::unauthorized("a valid token is required")),
    ///     }
    /// });
    /// # let _ = router;
    /// ```
    ///
    /// `path` must be a route's: building the router fails otherwise
    /// ([`RouterError::GuardWithoutRoute`]), since a guard on a misspelled path guards nothing
    /// and leaves the route it was meant for open.
    #[track_caller]
    pub fn guard<F, Fut>(mut self, path: &str, guard: F) -> Self
    where
        F: Fn(Handshake) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Handshake, Rejection>> + Send + 'static,
    {
        self.guarded_paths.push(GuardedPath {
            path: path.to_owned(),
            kind: "guard",
            location: Location::caller().to_string(),
        });
        self.guards
            .push((Some(path.to_owned()), guard::connection_guard(guard)));
        self
    }

    /// Guards the handshake of every route; runs before the routes' own guards.
    pub fn guard_all<F, Fut>(mut self, guard: F) -> Self
    where
        F: Fn(Handshake) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Handshake, Rejection>> + Send + 'static,
    {
        self.guards.push((None, guard::connection_guard(guard)));
        self
    }

    /// Guards `join-room` on the route at `path`: `Err(message)` refuses the join with a
    /// `forbidden` error carrying `message` (private rooms, say). `path` must be a route's,
    /// as for [`guard`](Self::guard).
    #[track_caller]
    pub fn join_guard<F, Fut>(mut self, path: &str, guard: F) -> Self
    where
        F: Fn(Client, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.guarded_paths.push(GuardedPath {
            path: path.to_owned(),
            kind: "join guard",
            location: Location::caller().to_string(),
        });
        self.join_guards
            .push((path.to_owned(), guard::join_guard(guard)));
        self
    }

    fn add_controller(&mut self, path: &str, parts: ControllerParts) {
        self.paths.push((path.to_owned(), String::new()));
        // Declared on the controller, so always on its own route: no orphan check needed.
        for guard in parts.guards {
            self.guards.push((Some(path.to_owned()), guard));
        }
        for route in parts.routes {
            self.registrations.push(Registration {
                path: path.to_owned(),
                event: route.event.to_owned(),
                handler: route.handler,
                location: route.location.to_owned(),
            });
        }
    }

    /// Adds one handler, recording where it was declared. Generated controller code uses this;
    /// it is also the explicit registration path for handlers built by hand.
    pub fn route(
        mut self,
        path: &str,
        event: &str,
        handler: Arc<dyn ErasedHandler>,
        location: impl Into<String>,
    ) -> Self {
        let location = location.into();
        self.paths.push((path.to_owned(), location.clone()));
        self.registrations.push(Registration {
            path: path.to_owned(),
            event: event.to_owned(),
            handler,
            location,
        });
        self
    }

    /// Checks the routes and freezes them: a path must start with `/`, an event name must not
    /// be empty nor reserved, and one `(path, event)` has one handler.
    pub fn build(mut self) -> Result<RouteTable, RouterError> {
        // Controllers linked into the program that this router will not serve: a forgotten
        // `.controllers()` or `.controller(…)`. Legitimate in a program with several routers,
        // so reported, not refused.
        let unserved: Vec<String> = if self.collect_controllers {
            Vec::new()
        } else {
            let mut unserved: Vec<String> = collected_controllers()
                .filter(|record| !self.explicit_controllers.contains(&(record.type_id)()))
                .map(|record| {
                    format!(
                        "`{}` on `{}` (declared at {})",
                        record.type_name, record.path, record.location
                    )
                })
                .collect();
            unserved.sort();
            unserved
        };
        for controller in &unserved {
            tracing::warn!(
                "controller {controller} is not served by this router: register it with `Router::controller(…)`, or collect every controller with `Router::controllers()`"
            );
        }
        if self.collect_controllers {
            let mut records: Vec<_> = collected_controllers()
                .filter(|record| !self.explicit_controllers.contains(&(record.type_id)()))
                .collect();
            records.sort_by_key(|record| (record.path, record.location));
            for record in records {
                let parts = (record.default_routes)().ok_or_else(|| {
                    RouterError::ControllerWithoutDefault {
                        controller: record.type_name.to_owned(),
                        location: record.location.to_owned(),
                    }
                })?;
                self.add_controller(record.path, parts);
            }
        }
        let mut routes: HashMap<String, RouteParts> = HashMap::new();
        for (path, location) in self.paths.drain(..) {
            if !path.starts_with('/') && path != ANY_PATH {
                return Err(RouterError::InvalidPath { path, location });
            }
            routes.entry(path).or_default();
        }
        let mut regs = std::mem::take(&mut self.registrations);
        regs.sort_by(|a, b| (&a.path, &a.event).cmp(&(&b.path, &b.event)));
        for reg in regs {
            let parts = routes.entry(reg.path.clone()).or_default();
            if reg.event.is_empty() {
                return Err(RouterError::EmptyEvent {
                    path: reg.path,
                    location: reg.location,
                });
            }
            if RESERVED_EVENTS.contains(&reg.event.as_str()) {
                return Err(RouterError::Reserved {
                    path: reg.path,
                    event: reg.event,
                    location: reg.location,
                });
            }
            if (reg.event == CONNECT || reg.event == DISCONNECT) && reg.handler.reads_payload() {
                return Err(RouterError::LifecyclePayload {
                    path: reg.path,
                    event: reg.event,
                    location: reg.location,
                });
            }
            if let Some(missing) = reg
                .handler
                .required_state()
                .into_iter()
                .find(|key| !self.state.contains(key))
            {
                return Err(RouterError::MissingState {
                    state: missing.name.to_owned(),
                    path: reg.path,
                    event: reg.event,
                    location: reg.location,
                });
            }
            match parts.handlers.entry(reg.event) {
                Entry::Occupied(first) => {
                    return Err(RouterError::Duplicate {
                        path: reg.path,
                        event: first.key().clone(),
                        first: first.get().1.clone(),
                        second: reg.location,
                    });
                }
                Entry::Vacant(slot) => {
                    slot.insert((reg.handler, reg.location));
                }
            }
        }
        if routes.is_empty() {
            return Err(RouterError::NoRoutes {
                collected: self.collect_controllers,
            });
        }
        // Before the guards are attached: attaching one to a path would create its route.
        if let Some(orphan) = self
            .guarded_paths
            .iter()
            .find(|guarded| !routes.contains_key(&guarded.path))
        {
            let mut paths: Vec<&str> = routes.keys().map(String::as_str).collect();
            paths.sort_unstable();
            let routes = paths
                .iter()
                .map(|path| format!("`{path}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(RouterError::GuardWithoutRoute {
                kind: orphan.kind,
                path: orphan.path.clone(),
                location: orphan.location.clone(),
                routes,
            });
        }
        for (path, guard) in &self.guards {
            if let Some(path) = path {
                routes
                    .entry(path.clone())
                    .or_default()
                    .guards
                    .push(guard.clone());
            }
        }
        for (path, raw) in &self.raw {
            let parts = routes.entry(path.clone()).or_default();
            match raw {
                Raw::Text(handler) => parts.text = Some(handler.clone()),
                Raw::Binary(handler) => parts.binary = Some(handler.clone()),
            }
        }
        for (path, guard) in &self.join_guards {
            routes
                .entry(path.clone())
                .or_default()
                .join_guards
                .push(guard.clone());
        }
        let global_guards = self
            .guards
            .iter()
            .filter(|(path, _)| path.is_none())
            .map(|(_, guard)| guard.clone())
            .collect();
        let state = Arc::new(self.state);
        let routes = routes
            .into_iter()
            .map(|(path, mut parts)| {
                let path: Arc<str> = Arc::from(path);
                let state = state.clone();
                let connect = parts
                    .handlers
                    .remove_entry(CONNECT)
                    .map(|(name, (handler, _))| RouteEvent::new(name, handler));
                let disconnect = parts
                    .handlers
                    .remove_entry(DISCONNECT)
                    .map(|(name, (handler, _))| RouteEvent::new(name, handler));
                let handlers = parts
                    .handlers
                    .into_iter()
                    .map(|(name, (handler, _))| {
                        let event = RouteEvent::new(name, handler);
                        (event.name.clone(), event)
                    })
                    .collect();
                let route = Route {
                    path: path.clone(),
                    handlers,
                    connect,
                    disconnect,
                    guards: parts.guards,
                    join_guards: parts.join_guards,
                    text: parts.text,
                    binary: parts.binary,
                    state,
                };
                (path, Arc::new(route))
            })
            .collect();
        Ok(RouteTable {
            routes,
            state,
            global_guards,
            unserved,
        })
    }
}

#[derive(Default)]
struct RouteParts {
    handlers: HashMap<String, (Arc<dyn ErasedHandler>, String)>,
    guards: Vec<ConnectionGuard>,
    join_guards: Vec<JoinGuard>,
    text: Option<TextHandler>,
    binary: Option<BinaryHandler>,
}

/// One event of a route: its handler, and how long its runs take.
pub(crate) struct RouteEvent {
    pub(crate) name: Box<str>,
    pub(crate) handler: Arc<dyn ErasedHandler>,
    pub(crate) duration: DurationHistogram,
}

impl RouteEvent {
    fn new(name: String, handler: Arc<dyn ErasedHandler>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into_boxed_str(),
            handler,
            duration: DurationHistogram::default(),
        })
    }
}

/// One route's handlers, frozen.
pub struct Route {
    path: Arc<str>,
    /// Looked up once per frame with a name the client chose: foldhash is several times
    /// faster than SipHash on short keys and seeded per process; the keys are fixed at
    /// start-up, so a client's names cannot degrade the table.
    handlers: HashMap<Box<str>, Arc<RouteEvent>, foldhash::fast::RandomState>,
    connect: Option<Arc<RouteEvent>>,
    disconnect: Option<Arc<RouteEvent>>,
    guards: Vec<ConnectionGuard>,
    join_guards: Vec<JoinGuard>,
    text: Option<TextHandler>,
    binary: Option<BinaryHandler>,
    /// The application's state (`Router::state`), shared by every route and every client of
    /// the table: it belongs to the application, not to delivery (the hub).
    state: Arc<StateMap>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut events: Vec<_> = self.handlers.keys().collect();
        events.sort();
        f.debug_struct("Route")
            .field("path", &self.path)
            .field("events", &events)
            .field("connect", &self.connect.is_some())
            .field("disconnect", &self.disconnect.is_some())
            .finish()
    }
}

impl Route {
    /// The route's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The application state its clients' handlers read.
    pub(crate) fn state(&self) -> &Arc<StateMap> {
        &self.state
    }

    /// The handler of `event`, if any (lifecycle events are not looked up here).
    pub fn handler(&self, event: &str) -> Option<&Arc<dyn ErasedHandler>> {
        self.handlers.get(event).map(|event| &event.handler)
    }

    /// The `connect` handler.
    pub fn connect_handler(&self) -> Option<&Arc<dyn ErasedHandler>> {
        self.connect.as_ref().map(|event| &event.handler)
    }

    /// The `disconnect` handler.
    pub fn disconnect_handler(&self) -> Option<&Arc<dyn ErasedHandler>> {
        self.disconnect.as_ref().map(|event| &event.handler)
    }

    pub(crate) fn event(&self, event: &str) -> Option<&Arc<RouteEvent>> {
        self.handlers.get(event)
    }

    pub(crate) fn connect_event(&self) -> Option<&Arc<RouteEvent>> {
        self.connect.as_ref()
    }

    pub(crate) fn disconnect_event(&self) -> Option<&Arc<RouteEvent>> {
        self.disconnect.as_ref()
    }

    /// How long each handler of the route has run, by event name (`connect` and
    /// `disconnect` included), sorted by name.
    pub fn handler_durations(&self) -> Vec<(&str, &DurationHistogram)> {
        let mut durations: Vec<_> = self
            .handlers
            .values()
            .chain(&self.connect)
            .chain(&self.disconnect)
            .map(|event| (&*event.name, &event.duration))
            .collect();
        durations.sort_unstable_by_key(|(name, _)| *name);
        durations
    }

    /// This route's own connection guards.
    pub fn guards(&self) -> &[ConnectionGuard] {
        &self.guards
    }

    /// This route's join guards.
    pub fn join_guards(&self) -> &[JoinGuard] {
        &self.join_guards
    }

    /// Whether the route speaks the envelope protocol: `false` when it takes text frames raw
    /// (such a client gets no `connected` frame, no `error` frames, and no `broadcast`).
    pub fn is_enveloped(&self) -> bool {
        self.text.is_none()
    }

    /// The raw text handler, when the route takes text frames raw.
    pub fn text_handler(&self) -> Option<&TextHandler> {
        self.text.as_ref()
    }

    /// The binary handler, when the route takes binary frames.
    pub fn binary_handler(&self) -> Option<&BinaryHandler> {
        self.binary.as_ref()
    }
}

/// Every route, checked and frozen; looked up by path during the handshake.
#[derive(Clone)]
pub struct RouteTable {
    routes: HashMap<Arc<str>, Arc<Route>>,
    state: Arc<StateMap>,
    global_guards: Vec<ConnectionGuard>,
    unserved: Vec<String>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("routes", &self.routes)
            .field("state", &self.state)
            .field("global_guards", &self.global_guards.len())
            .finish()
    }
}

impl RouteTable {
    /// The route at `path` (the path only, without the query).
    pub fn get(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.get(path).or_else(|| self.routes.get(ANY_PATH))
    }

    /// The guards of every route, run before a route's own.
    pub fn global_guards(&self) -> &[ConnectionGuard] {
        &self.global_guards
    }

    /// The `#[ws_controller]`s linked into the program that this table does not serve (the
    /// router neither registered them nor called `Router::controllers()`), each as
    /// "`Type` on `/path` (declared at file:line)"; building the table logs a warning for each.
    pub fn unserved_controllers(&self) -> &[String] {
        &self.unserved
    }

    /// Every route, sorted by path.
    pub fn routes(&self) -> Vec<&Arc<Route>> {
        let mut routes: Vec<_> = self.routes.values().collect();
        routes.sort_unstable_by(|a, b| a.path().cmp(b.path()));
        routes
    }

    /// Every route path, sorted.
    pub fn paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.routes.keys().map(|p| &**p).collect();
        paths.sort_unstable();
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Client;

    #[test]
    fn duplicate_handlers_name_both_locations() {
        let err = Router::new()
            .websocket("/ws", |ev| {
                ev.on("m", |_c: Client| async {});
                ev.on("m", |_c: Client| async {});
            })
            .build()
            .unwrap_err();
        let RouterError::Duplicate { first, second, .. } = &err else {
            panic!("{err}")
        };
        assert!(first.contains("router.rs") && second.contains("router.rs"));
        assert_ne!(first, second);
    }

    #[test]
    fn a_router_without_routes_fails_the_build_and_names_the_linking_rule() {
        let err = Router::new().build().unwrap_err();
        assert_eq!(err, RouterError::NoRoutes { collected: false });
        assert!(err.to_string().contains(".websocket("), "{err}");
        // This crate declares no controller: `controllers()` collects none.
        let err = Router::new().controllers().build().unwrap_err();
        assert_eq!(err, RouterError::NoRoutes { collected: true });
        assert!(err.to_string().contains("never references"), "{err}");
    }

    /// The security hole this closes: a guard on `/admin` with the route at `/admins` made a
    /// phantom `/admin` route and left `/admins` open.
    #[test]
    fn a_guard_on_a_path_without_a_route_names_the_path_and_where_it_was_declared() {
        let line = line!() + 3;
        let err = Router::new()
            .websocket("/admins", |_| {})
            .guard("/admin", |request: Handshake| async move { Ok(request) })
            .build()
            .unwrap_err();
        let RouterError::GuardWithoutRoute {
            kind,
            path,
            location,
            routes,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((*kind, path.as_str()), ("guard", "/admin"));
        assert!(
            location.contains("router.rs") && location.contains(&format!(":{line}:")),
            "{location}"
        );
        assert_eq!(routes, "`/admins`");
        let message = err.to_string();
        assert!(
            message.contains("`/admin`") && message.contains("`/admins`"),
            "{message}"
        );

        let err = Router::new()
            .websocket("/ws", |_| {})
            .join_guard("/room", |_client: Client, _room: String| async { Ok(()) })
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, RouterError::GuardWithoutRoute { kind: "join guard", path, .. } if path == "/room"),
            "{err}"
        );
        // With no route at all, that is what the error says.
        let err = Router::new()
            .guard("/ws", |request: Handshake| async move { Ok(request) })
            .build()
            .unwrap_err();
        assert_eq!(err, RouterError::NoRoutes { collected: false });
    }

    #[test]
    fn a_guard_on_a_route_path_is_attached_to_that_route() {
        let table = Router::new()
            .guard("/admins", |request: Handshake| async move { Ok(request) })
            .join_guard("/admins", |_client: Client, _room: String| async { Ok(()) })
            .websocket("/admins", |_| {})
            .websocket("/ws", |_| {})
            .build()
            .unwrap();
        let admins = table.get("/admins").unwrap();
        assert_eq!(admins.guards().len(), 1);
        assert_eq!(admins.join_guards().len(), 1);
        assert!(table.get("/ws").unwrap().guards().is_empty());
        assert!(table.get("/admin").is_none());
    }

    #[test]
    fn rejects_bad_paths_and_reserved_events() {
        let bad = Router::new().websocket("ws", |_| {}).build();
        assert!(matches!(bad, Err(RouterError::InvalidPath { .. })));
        let reserved = Router::new()
            .websocket("/ws", |ev| {
                ev.on("join-room", |_c: Client| async {});
            })
            .build();
        assert!(matches!(reserved, Err(RouterError::Reserved { .. })));
        let empty = Router::new()
            .websocket("/ws", |ev| {
                ev.on("", |_c: Client| async {});
            })
            .build();
        assert!(matches!(empty, Err(RouterError::EmptyEvent { .. })));
    }

    #[test]
    fn lifecycle_handlers_take_no_payload() {
        let err = Router::new()
            .websocket("/ws", |ev| {
                ev.on("disconnect", |_c: Client, _p: String| async {});
            })
            .build()
            .unwrap_err();
        assert!(matches!(err, RouterError::LifecyclePayload { .. }), "{err}");
        #[derive(Clone)]
        struct Db;
        let ok = Router::new()
            .state(Db)
            .websocket("/ws", |ev| {
                ev.on("connect", |_c: Client, _db: crate::State<Db>| async {});
                ev.on("disconnect", |_c: Client, _me: Client| async {});
            })
            .build();
        assert!(ok.is_ok());
    }

    #[test]
    fn a_path_declared_twice_is_merged() {
        let table = Router::new()
            .websocket("/ws", |ev| {
                ev.on("a", |_c: Client| async {});
            })
            .websocket("/ws", |ev| {
                ev.on("b", |_c: Client| async {});
                ev.on("connect", |_c: Client| async {});
            })
            .build()
            .unwrap();
        let route = table.get("/ws").unwrap();
        assert!(route.handler("a").is_some() && route.handler("b").is_some());
        assert!(route.handler("connect").is_none() && route.connect_handler().is_some());
        assert_eq!(table.paths(), ["/ws"]);
    }
}
