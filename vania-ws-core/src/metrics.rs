//! Counters an operator can log and a test can read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::errors::ErrorCode;
use crate::hub::Hub;

const CODES: [ErrorCode; 11] = [
    ErrorCode::InvalidJson,
    ErrorCode::InvalidEnvelope,
    ErrorCode::UnknownEvent,
    ErrorCode::InvalidPayload,
    ErrorCode::InvalidRoom,
    ErrorCode::RoomLimit,
    ErrorCode::Forbidden,
    ErrorCode::RateLimited,
    ErrorCode::HandlerError,
    ErrorCode::Internal,
    ErrorCode::UnsupportedFrame,
];

/// Live counters of one server (one process). Every counter is a relaxed atomic: cheap to
/// bump, and a snapshot is consistent per counter, not across counters.
///
/// The counters are private: a server records events through the `record_*` methods, and
/// the open-connection count, which the connection cap reads, moves only with a
/// [`ConnectionSlot`] taken under the cap and given back when dropped, so no caller can
/// set it.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    errors: [AtomicU64; CODES.len()],
    slow_consumers: AtomicU64,
    rate_limited: AtomicU64,
    pings_timed_out: AtomicU64,
    handshakes_refused: AtomicU64,
    handshakes_shed: AtomicU64,
    publish_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Upgraded connections currently open (including those closing).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Acquire)
    }

    /// Counts one `error` frame of `code`.
    pub fn record_error(&self, code: ErrorCode) {
        if let Some(i) = CODES.iter().position(|c| *c == code) {
            bump(&self.errors[i]);
        }
    }

    /// Counts one frame received from a client.
    pub fn record_message_in(&self) {
        bump(&self.messages_in);
    }

    /// Counts `frames` frames written to clients.
    pub fn record_messages_out(&self, frames: u64) {
        self.messages_out.fetch_add(frames, Ordering::Relaxed);
    }

    /// Counts a client closed because its send queue overflowed.
    pub fn record_slow_consumer(&self) {
        bump(&self.slow_consumers);
    }

    /// Counts an event refused by the rate limit.
    pub fn record_rate_limited(&self) {
        bump(&self.rate_limited);
    }

    /// Counts a client dropped for not answering pings.
    pub fn record_ping_timeout(&self) {
        bump(&self.pings_timed_out);
    }

    /// Counts a refused handshake (404, 403, 401, 503, …).
    pub fn record_handshake_refused(&self) {
        bump(&self.handshakes_refused);
    }

    /// Counts a pending handshake dropped to make room for new ones.
    pub fn record_handshake_shed(&self) {
        bump(&self.handshakes_shed);
    }

    /// Counts one frame the adapter could not carry to the other nodes.
    pub fn record_publish_error(&self) {
        bump(&self.publish_errors);
    }

    pub(crate) fn snapshot(&self, clients: usize, rooms: usize) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            connections: load(&self.connections),
            clients,
            rooms,
            messages_in: load(&self.messages_in),
            messages_out: load(&self.messages_out),
            errors: CODES
                .iter()
                .zip(&self.errors)
                .map(|(code, count)| (code.as_str(), load(count)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            slow_consumers: load(&self.slow_consumers),
            rate_limited: load(&self.rate_limited),
            pings_timed_out: load(&self.pings_timed_out),
            handshakes_refused: load(&self.handshakes_refused),
            handshakes_shed: load(&self.handshakes_shed),
            publish_errors: load(&self.publish_errors),
        }
    }
}

/// One open connection, counted in [`Metrics::connections`] from [`Hub::open_connection`]
/// until it is dropped.
///
/// [`Hub::open_connection`]: crate::Hub::open_connection
#[derive(Debug)]
pub struct ConnectionSlot {
    hub: Arc<Hub>,
}

impl ConnectionSlot {
    /// A slot if fewer than `max` connections are open.
    pub(crate) fn take(hub: &Arc<Hub>, max: u64) -> Option<Self> {
        hub.metrics()
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()?;
        Some(Self { hub: hub.clone() })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.hub
            .metrics()
            .connections
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Upgraded connections currently open.
    pub connections: u64,
    /// Clients registered in the hub.
    pub clients: usize,
    /// Rooms across every route.
    pub rooms: usize,
    /// Frames received.
    pub messages_in: u64,
    /// Frames written.
    pub messages_out: u64,
    /// `error` frames sent, by code (codes never sent are absent).
    pub errors: BTreeMap<&'static str, u64>,
    /// Slow-consumer disconnects.
    pub slow_consumers: u64,
    /// Events refused by the rate limit.
    pub rate_limited: u64,
    /// Clients dropped for missing pongs.
    pub pings_timed_out: u64,
    /// Handshakes refused.
    pub handshakes_refused: u64,
    /// Pending handshakes shed.
    pub handshakes_shed: u64,
    /// Frames the adapter could not carry to the other nodes (delivered here regardless).
    pub publish_errors: u64,
}
