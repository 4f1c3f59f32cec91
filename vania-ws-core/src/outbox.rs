//! Per-client outgoing queues, bounded by bytes.
//!
//! Senders never wait: [`Outbox::push`] either queues a frame or, when the client's queue is
//! over its byte limit, marks the client as a slow consumer and asks its connection to close
//! with 1008. The connection's writer drains the [`OutboxReceiver`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::envelope::Frame;

/// WebSocket close codes the framework sends (PROTOCOL.md section 7).
pub mod close_code {
    /// Normal close.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame with invalid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation: abuse or a slow consumer.
    pub const POLICY: u16 = 1008;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// An internal server error.
    pub const INTERNAL: u16 = 1011;
}

/// One item of a client's outgoing queue.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A text frame.
    Frame(Frame),
    /// A binary frame.
    Binary(bytes::Bytes),
    /// A WebSocket ping (heartbeat).
    Ping,
    /// Close the connection with this code and reason, after everything queued before.
    Close(u16, &'static str),
}

#[derive(Debug)]
struct State {
    queued_bytes: AtomicUsize,
    limit: usize,
    closing: AtomicBool,
    overflowed: AtomicBool,
    closed: CancellationToken,
}

/// The sending side of one client's queue. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    state: Arc<State>,
}

/// The receiving side of one client's queue, drained by its connection's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    state: Arc<State>,
}

/// Whether a frame was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// The queue overflowed: the client is being closed as a slow consumer.
    Overflow,
    /// The client is closing or gone; the frame was dropped.
    Closed,
}

impl Outbox {
    /// A new queue that holds at most `limit_bytes` of frames not yet written.
    pub fn new(limit_bytes: usize) -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            queued_bytes: AtomicUsize::new(0),
            limit: limit_bytes,
            closing: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            closed: CancellationToken::new(),
        });
        (
            Outbox {
                tx,
                state: state.clone(),
            },
            OutboxReceiver { rx, state },
        )
    }

    /// Queues a frame without waiting.
    pub fn push(&self, frame: Frame) -> Pushed {
        self.push_item(frame.len(), Outgoing::Frame(frame))
    }

    /// Queues a binary frame without waiting, bounded like text frames.
    pub fn push_binary(&self, data: bytes::Bytes) -> Pushed {
        self.push_item(data.len(), Outgoing::Binary(data))
    }

    /// Queues a ping (not counted against the byte bound).
    pub fn ping(&self) {
        if !self.is_closing() {
            let _ = self.tx.send(Outgoing::Ping);
        }
    }

    fn push_item(&self, len: usize, item: Outgoing) -> Pushed {
        if self.state.closing.load(Ordering::Relaxed) {
            return Pushed::Closed;
        }
        let before = self.state.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.state.limit {
            self.state.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.state.overflowed.store(true, Ordering::Release);
            self.close(close_code::POLICY, "slow consumer: send queue overflow");
            return Pushed::Overflow;
        }
        if self.tx.send(item).is_err() {
            self.state.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Pushed::Closed;
        }
        Pushed::Queued
    }

    /// Asks the connection to close after what is queued; later pushes are dropped.
    /// Only the first call has an effect.
    pub fn close(&self, code: u16, reason: &'static str) {
        if !self.state.closing.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Outgoing::Close(code, reason));
            self.state.closed.cancel();
        }
    }

    /// Completes once [`close`](Self::close) was called (at once if it already was).
    pub async fn closing(&self) {
        self.state.closed.cancelled().await;
    }

    /// Whether the queue overflowed (the client was a slow consumer).
    pub fn overflowed(&self) -> bool {
        self.state.overflowed.load(Ordering::Acquire)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closing(&self) -> bool {
        self.state.closing.load(Ordering::Acquire)
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.state.queued_bytes.load(Ordering::Acquire)
    }
}

impl OutboxReceiver {
    /// The next item, waiting for one; `None` when every sender is gone.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.recv().await;
        self.account(item.as_ref());
        item
    }

    /// The next item if one is ready.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.try_recv().ok();
        self.account(item.as_ref());
        item
    }

    fn account(&self, item: Option<&Outgoing>) {
        let len = match item {
            Some(Outgoing::Frame(frame)) => frame.len(),
            Some(Outgoing::Binary(data)) => data.len(),
            _ => return,
        };
        self.state.queued_bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Frame {
        Frame::event("e", &"x".repeat(n)).unwrap()
    }

    #[tokio::test]
    async fn queues_in_order_and_tracks_bytes() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        let a = frame(1);
        let b = frame(2);
        assert_eq!(tx.push(a.clone()), Pushed::Queued);
        assert_eq!(tx.push(b.clone()), Pushed::Queued);
        assert_eq!(tx.queued_bytes(), a.len() + b.len());
        assert!(matches!(rx.recv().await, Some(Outgoing::Frame(f)) if f == a));
        assert!(matches!(rx.try_recv(), Some(Outgoing::Frame(f)) if f == b));
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_closes_with_policy_after_queued_frames() {
        let (tx, mut rx) = Outbox::new(100);
        assert_eq!(tx.push(frame(60)), Pushed::Queued);
        assert_eq!(tx.push(frame(60)), Pushed::Overflow);
        assert!(tx.overflowed());
        tx.closing().await;
        assert_eq!(tx.push(frame(1)), Pushed::Closed);
        assert!(matches!(rx.recv().await, Some(Outgoing::Frame(_))));
        assert!(matches!(
            rx.recv().await,
            Some(Outgoing::Close(close_code::POLICY, _))
        ));
    }

    #[tokio::test]
    async fn a_single_frame_larger_than_the_limit_still_goes_to_an_empty_queue() {
        let (tx, _rx) = Outbox::new(10);
        assert_eq!(tx.push(frame(50)), Pushed::Queued);
    }
}
