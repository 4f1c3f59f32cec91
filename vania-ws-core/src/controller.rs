//! Controllers: handlers grouped on a type, registered by hand or collected with `inventory`.
//!
//! `#[ws_controller("/path")]` (in `vania-ws-macros`) implements [`Controller`] for an impl
//! block and submits a [`ControllerRecord`] to the registry. A router takes a controller either
//! explicitly, `Router::controller(Admin::new(pool))`, or by collecting every submitted record,
//! `Router::controllers()`, which builds each one that implements `Default`.
//!
//! `inventory` only sees code the linker keeps: a controller in a crate that the binary never
//! references is not collected. Reference that crate (or register its controllers explicitly).

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::guard::ConnectionGuard;
use crate::handler::ErasedHandler;

/// A type whose methods handle the events of one route.
pub trait Controller: Send + Sync + Sized + 'static {
    /// The route path, e.g. `/admins`.
    const PATH: &'static str;

    /// The controller's handlers, bound to this instance.
    fn routes(self: Arc<Self>) -> Vec<ControllerRoute>;

    /// The guards of the controller's route (`#[ws_controller("/admins", guard = authorize)]`),
    /// bound to this instance; they run before the upgrade, as `Router::guard`'s do.
    fn guards(self: &Arc<Self>) -> Vec<ConnectionGuard> {
        Vec::new()
    }
}

/// A controller instance's guards and handlers, ready for a router.
#[doc(hidden)]
pub struct ControllerParts {
    /// The route's guards.
    pub guards: Vec<ConnectionGuard>,
    /// The handlers.
    pub routes: Vec<ControllerRoute>,
}

impl ControllerParts {
    /// The parts of `controller`.
    pub fn of<C: Controller>(controller: C) -> Self {
        let controller = Arc::new(controller);
        Self {
            guards: controller.guards(),
            routes: controller.routes(),
        }
    }
}

/// One handler of a controller.
pub struct ControllerRoute {
    /// The event it handles.
    pub event: &'static str,
    /// The handler, bound to its controller instance.
    pub handler: Arc<dyn ErasedHandler>,
    /// Where it was declared (`file:line`).
    pub location: &'static str,
}

impl std::fmt::Debug for ControllerRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerRoute")
            .field("event", &self.event)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What `#[ws_controller]` submits to the registry for `Router::controllers()` to collect.
#[doc(hidden)]
#[derive(Debug)]
pub struct ControllerRecord {
    /// The controller type's name.
    pub type_name: &'static str,
    /// Its route path.
    pub path: &'static str,
    /// Where it was declared (`file:line`).
    pub location: &'static str,
    /// Its `TypeId` (a function, since `TypeId::of` is not `const`).
    pub type_id: fn() -> TypeId,
    /// Its guards and routes on a `Default` instance, or `None` when it has no `Default`.
    pub default_routes: fn() -> Option<ControllerParts>,
}

inventory::collect!(ControllerRecord);

/// Every controller record submitted in the program.
#[doc(hidden)]
pub fn collected_controllers() -> impl Iterator<Item = &'static ControllerRecord> {
    inventory::iter::<ControllerRecord>.into_iter()
}

/// Picks `Default` construction when a controller has it (autoref specialization); used by
/// generated code.
#[doc(hidden)]
pub struct DefaultProbe<T>(pub PhantomData<T>);

#[doc(hidden)]
pub trait ViaDefault {
    fn default_routes(&self) -> Option<ControllerParts>;
}

impl<T: Controller + Default> ViaDefault for DefaultProbe<T> {
    fn default_routes(&self) -> Option<ControllerParts> {
        Some(ControllerParts::of(T::default()))
    }
}

#[doc(hidden)]
pub trait NoDefault {
    fn default_routes(&self) -> Option<ControllerParts>;
}

impl<T> NoDefault for &DefaultProbe<T> {
    fn default_routes(&self) -> Option<ControllerParts> {
        None
    }
}
