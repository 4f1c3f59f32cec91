//! Counters an operator can log and a test can read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::errors::ErrorCode;

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

/// Live counters of one server (one process). Every field is a relaxed atomic: cheap to bump,
/// and a snapshot is consistent per counter, not across counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Upgraded connections currently open (including those closing).
    pub connections: AtomicU64,
    /// Frames received from clients.
    pub messages_in: AtomicU64,
    /// Frames written to clients.
    pub messages_out: AtomicU64,
    errors: [AtomicU64; CODES.len()],
    /// Clients closed because their send queue overflowed.
    pub slow_consumers: AtomicU64,
    /// Events refused by the rate limit.
    pub rate_limited: AtomicU64,
    /// Clients dropped for not answering pings.
    pub pings_timed_out: AtomicU64,
    /// Handshakes refused (404, 403, 401, 503, …).
    pub handshakes_refused: AtomicU64,
    /// Pending handshakes dropped to make room for new ones (`WS_MAX_PENDING_HANDSHAKES`).
    pub handshakes_shed: AtomicU64,
}

impl Metrics {
    /// Counts one `error` frame of `code`.
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = CODES.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
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
        }
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
}
