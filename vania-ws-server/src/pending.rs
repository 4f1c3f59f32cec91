//! The bound on connections still in their HTTP upgrade (`WS_MAX_PENDING_HANDSHAKES`).
//!
//! Each pending handshake holds a file descriptor for up to the handshake timeout. Without a
//! bound, thousands of silent sockets would hold every descriptor and keep real clients out.
//! At the bound, the oldest pending handshake is shed: a real client's upgrade takes one round
//! trip, so it is almost never the oldest, while a silent socket soon is.

use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::oneshot;
use vania_ws_core::metrics::Metrics;

pub(crate) struct PendingHandshakes {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// Pending handshakes by arrival; dropping the sender sheds that handshake.
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// One pending handshake's place; gives it back when dropped.
pub(crate) struct Ticket<'a> {
    pending: &'a PendingHandshakes,
    key: u64,
    /// Completes (with an error) when this handshake is shed.
    pub(crate) shed: oneshot::Receiver<()>,
}

impl PendingHandshakes {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Takes a place, shedding the oldest pending handshake when all are taken.
    pub(crate) fn enter(&self, metrics: &Metrics) -> Ticket<'_> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        while inner.waiting.len() >= self.max {
            // Dropping its sender wakes the oldest one, which then closes its socket.
            inner.waiting.pop_first();
            metrics.record_handshake_shed();
        }
        let key = inner.next;
        inner.next += 1;
        inner.waiting.insert(key, tx);
        Ticket {
            pending: self,
            key,
            shed: rx,
        }
    }

    /// How many handshakes are pending.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.pending.lock().waiting.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_shed_at_the_bound() {
        let hub = vania_ws_core::Hub::new([], vania_ws_core::HubConfig::default());
        let metrics = hub.metrics();
        let pending = PendingHandshakes::new(2);
        let mut first = pending.enter(metrics);
        let mut second = pending.enter(metrics);
        assert!(
            first
                .shed
                .try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Empty)
        );
        let _third = pending.enter(metrics);
        assert_eq!(
            first.shed.try_recv(),
            Err(oneshot::error::TryRecvError::Closed),
            "the oldest is shed"
        );
        assert_eq!(
            second.shed.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        );
        assert_eq!(hub.metrics_snapshot().handshakes_shed, 1);
        drop(second);
        assert_eq!(pending.len(), 1);
    }
}
