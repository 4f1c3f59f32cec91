//! Sending from outside any handler: background tasks, HTTP endpoints, timers.

use serde::Serialize;
use std::sync::Arc;

use crate::adapter::Target;
use crate::errors::SendError;
use crate::hub::Hub;

/// A cheap, cloneable handle on the server's clients and rooms.
#[derive(Debug, Clone)]
pub struct Handle {
    hub: Arc<Hub>,
}

impl Handle {
    /// A handle on `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }

    /// Sends to one client, on whichever route (or node) it is connected; returns how many
    /// clients of this process received it (0 or 1).
    pub fn to<T: Serialize + ?Sized>(
        &self,
        client_id: &str,
        event: &str,
        payload: &T,
    ) -> Result<usize, SendError> {
        self.hub
            .send_event(Target::Client(client_id), event, payload)
    }

    /// Sends to every member of `room` on `route`; returns how many clients of this process
    /// received it.
    pub fn to_room<T: Serialize + ?Sized>(
        &self,
        route: &str,
        room: &str,
        event: &str,
        payload: &T,
    ) -> Result<usize, SendError> {
        self.hub
            .send_event(Target::Room { route, room }, event, payload)
    }

    /// Sends to every connected client on every enveloped route; returns how many clients of
    /// this process received it.
    pub fn broadcast<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<usize, SendError> {
        self.hub
            .send_event(Target::All { except: None }, event, payload)
    }

    /// The server's counters: connections, rooms, messages, errors by code, slow consumers,
    /// rate-limit hits, pings timed out.
    pub fn metrics(&self) -> crate::MetricsSnapshot {
        self.hub.metrics_snapshot()
    }

    /// The hub behind this handle, for counts and adapters.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}
