//! Counters an operator can log and a test can read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

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
// A counter per code: a code added to `ErrorCode::ALL` needs one here too.
const _: () = assert!(CODES.len() == ErrorCode::ALL.len());

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
    /// By HTTP status. Refusals are rare and off the message path, and a guard may choose any
    /// status, so a small locked map beats a fixed table.
    handshakes_refused: Mutex<BTreeMap<u16, u64>>,
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

    /// Counts a handshake refused with HTTP `status` (404, 403, 401, 503, …).
    pub fn record_handshake_refused(&self, status: u16) {
        *self
            .handshakes_refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(status)
            .or_default() += 1;
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
        let mut snapshot = MetricsSnapshot {
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
            handshakes_refused: 0,
            handshakes_refused_by_status: self
                .handshakes_refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            handshakes_shed: load(&self.handshakes_shed),
            publish_errors: load(&self.publish_errors),
        };
        snapshot.handshakes_refused = snapshot.handshakes_refused_by_status.values().sum();
        snapshot
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
    /// Handshakes refused, by HTTP status (statuses never answered are absent).
    pub handshakes_refused_by_status: BTreeMap<u16, u64>,
    /// Pending handshakes shed.
    pub handshakes_shed: u64,
    /// Frames the adapter could not carry to the other nodes (delivered here regardless).
    pub publish_errors: u64,
}

/// The upper bounds of [`DurationHistogram`]'s buckets, in seconds: Prometheus's default
/// buckets, from 5 ms to 10 s, with three below them for handlers that answer at once.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const BUCKET_NANOS: [u64; DURATION_BUCKETS.len()] = {
    let mut nanos = [0; DURATION_BUCKETS.len()];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = (DURATION_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

/// How long one event's handler runs, from its call to its outcome, in fixed buckets
/// ([`DURATION_BUCKETS`]).
///
/// Each route event owns one, made when the router is built, so recording a run is a few
/// relaxed atomic adds: no lookup by name, no lock and no allocation per message.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Runs per bucket, not cumulative (a run bumps one bucket); the last counts the runs
    /// over every bound.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    /// In microseconds: a u64 of them lasts 580,000 years of handler time, so even ten
    /// thousand handlers always running (waiting on acks, say) cannot wrap it.
    sum_micros: AtomicU64,
}

impl DurationHistogram {
    /// Records one run.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS.partition_point(|bound| *bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(nanos / 1_000, Ordering::Relaxed);
    }

    /// A point-in-time copy.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, count)| count).sum::<u64>()
            + self.buckets[DURATION_BUCKETS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed))
                .as_secs_f64(),
        }
    }
}

/// A point-in-time copy of a [`DurationHistogram`], in Prometheus's shape.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, runs over the previous bound and at or under this one)`, for
    /// every bound of [`DURATION_BUCKETS`]. Not cumulative, unlike Prometheus's `le`
    /// buckets: the exporter sums them (the runs over every bound are `count` minus the sum).
    pub buckets: Vec<(f64, u64)>,
    /// Runs recorded.
    pub count: u64,
    /// Their total duration, in seconds.
    pub sum_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_lands_in_the_first_bucket_that_holds_it() {
        let histogram = DurationHistogram::default();
        histogram.observe(Duration::from_micros(50)); // <= 0.1 ms
        histogram.observe(Duration::from_millis(1)); // exactly 1 ms: the 1 ms bucket
        histogram.observe(Duration::from_millis(7)); // <= 10 ms
        histogram.observe(Duration::from_secs(60)); // over every bound
        let snapshot = histogram.snapshot();
        let at = |bound: f64| {
            snapshot
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .unwrap()
                .1
        };
        assert_eq!(at(0.0001), 1);
        assert_eq!(at(0.0005), 0);
        assert_eq!(at(0.001), 1);
        assert_eq!(at(0.005), 0);
        assert_eq!(at(0.01), 1);
        assert_eq!(at(10.0), 0);
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum_seconds - 60.00805).abs() < 1e-9);
    }

    #[test]
    fn refusals_are_counted_by_status() {
        let metrics = Metrics::default();
        metrics.record_handshake_refused(404);
        metrics.record_handshake_refused(401);
        metrics.record_handshake_refused(404);
        let snapshot = metrics.snapshot(0, 0);
        assert_eq!(snapshot.handshakes_refused, 3);
        assert_eq!(
            snapshot.handshakes_refused_by_status,
            BTreeMap::from([(401, 1), (404, 2)])
        );
    }
}
