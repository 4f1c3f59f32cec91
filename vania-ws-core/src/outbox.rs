//! Per-client outgoing queues, bounded by bytes.
//!
//! Senders never wait: [`Outbox::push`] either queues a frame or, when the client's queue is
//! over its byte limit, marks the client as a slow consumer and asks its connection to close
//! with 1008. The connection drains the [`OutboxReceiver`].
//!
//! The bound covers everything the server still holds for the client: frames queued here,
//! frames taken by the connection but not yet by the socket, and the control frames (pongs,
//! pings) the connection writes itself. A connection reports the control frames with
//! [`OutboxReceiver::charge`] and releases what it took with [`OutboxReceiver::written`] as soon
//! as the socket has it, so a client that never reads holds at most the limit, whatever it
//! sends, and one that keeps up is never counted for bytes already on their way.
//!
//! Direct writes: a connection may give its queue a [`DirectWrite`], which writes queued frames
//! straight to its socket. While a task runs [`corked`] (a connection dispatching the frames
//! it read), a push that finds such a queue empty does not wake its connection: the queue is
//! noted, and when the outermost `corked` returns, each noted queue is written by its
//! `DirectWrite` (or, when that cannot write now, its connection is woken then). A broadcast
//! to a thousand idle clients is then a thousand writes from the sender's task, as in
//! uWebSockets' publish, instead of a thousand wake-ups and polls of other tasks; and the
//! broadcasts read together in one wake-up reach each client in one write.
//!
//! Why a mutex around a `VecDeque`, and not a lock-free queue: the queue must cost nothing
//! while a connection is idle. The lock-free queues at hand (tokio's, crossbeam's) keep a block
//! of 31 or 32 slots (about 1.5 KB here) allocated for as long as the queue has ever been used,
//! which is more than everything else an idle connection holds. This mutex is per client, is
//! taken for a push and for a batch of items, and is never held across an `.await`
//! or a write: it is one uncontended compare-and-swap in the common case, the same number of
//! atomic operations as a lock-free push.

use futures_util::task::AtomicWaker;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

use crate::envelope::Frame;

/// WebSocket close codes the framework sends (PROTOCOL.md section 7).
pub mod close_code {
    /// Normal close.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A WebSocket protocol violation.
    pub const PROTOCOL: u16 = 1002;
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
    /// Close the connection with this code and reason. Always the last item: it comes after
    /// everything queued before the close was asked for, and nothing is queued after it.
    Close(u16, &'static str),
}

impl Outgoing {
    /// The bytes this item counts against the queue's bound.
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Frame(frame) => frame.len(),
            Outgoing::Binary(data) => data.len(),
            Outgoing::Close(..) => 0,
        }
    }

    /// Whether the item carries no bytes (a close).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    /// Bytes held for the client: queued here, plus what the connection has taken and not yet
    /// flushed, plus the control frames it charged.
    bytes: usize,
    /// The close asked for, not yet taken by the connection.
    close: Option<(u16, &'static str)>,
    /// A close was asked for (taken or not): nothing more is queued.
    closing: bool,
}

#[derive(Debug)]
struct State {
    queue: Mutex<Queue>,
    limit: usize,
    /// The connection's task, woken when the queue goes from empty to not empty, or on close.
    waker: AtomicWaker,
    /// Mirrors `Queue::closing`, readable without the lock.
    closing: AtomicBool,
    overflowed: AtomicBool,
    /// Writes the queue from a corked sender's task, if the connection gave one.
    direct: OnceLock<Arc<dyn DirectWrite>>,
}

/// Writes a client's queued frames straight to its socket, from the task that queued them,
/// so that its connection need not be woken (see the module docs and [`corked`]).
///
/// The connection decides when that is safe: typically only while it is parked with nothing
/// of its own to write, so that frames stay whole and in order.
pub trait DirectWrite: Send + Sync + std::fmt::Debug {
    /// Writes what `queue` holds, if the connection allows it now. Returns the frames
    /// written and whether the queue is done with: `false` wakes the connection, which
    /// then writes the rest itself (and whatever this call left over, if it arranged that).
    fn write(&self, queue: &mut Queued<'_>) -> (u64, bool);
}

/// A client's queue as its [`DirectWrite`] sees it.
#[derive(Debug)]
pub struct Queued<'a> {
    state: &'a State,
}

impl Queued<'_> {
    /// Hands `write` the queued frames, in order (never the close: that is its
    /// connection's). `write` returns how many of them, from the front, it has written, and
    /// how many bytes of those the socket has not taken yet (the direct writer keeps them
    /// for the connection); the frames are removed from the queue and only those bytes stay
    /// counted against its bound. Returns how many were removed, and whether the queue is
    /// now empty.
    ///
    /// `write` runs under the queue's lock, so that what it writes and what it removes are
    /// the same frames whatever other threads push meanwhile: it must not wait, and must not
    /// touch this queue. (A non-blocking write is the whole of it.)
    pub fn write(
        &mut self,
        write: impl FnOnce(&mut dyn Iterator<Item = &Outgoing>) -> (usize, usize),
    ) -> (usize, bool) {
        let mut queue = self.state.lock();
        let (count, held) = write(&mut queue.items.iter());
        let count = count.min(queue.items.len());
        let released: usize = queue.items.drain(..count).map(|item| item.len()).sum();
        queue.bytes = (queue.bytes + held).saturating_sub(released);
        let empty = queue.items.is_empty();
        if empty && queue.items.capacity() > KEEP_ITEMS {
            queue.items = VecDeque::new();
        }
        (count, empty)
    }
}

/// A fan-out to more clients than this wakes their connections as it pushes, even under a
/// cork: no direct writes for it.
///
/// Why: direct writes make one task write every recipient's socket in turn, once per wake-up
/// of the sender. Past a few thousand recipients that pass is long (about 30 ms at 10,000),
/// the next messages arrive one by one while it runs, and the passes that follow carry one or
/// two of them per write. The recipients' own wake-ups interleave with the sender's reads of
/// new messages and batch them, in up to 8 per write. Measured (BENCHMARKS.md, 8 broadcasts in
/// flight, ratio to Bun's deliveries per CPU-second): direct writes took a room of 1,000 from
/// 0.79× to about 0.95×, and one of 10,000 from 1.3× down to 0.6×.
pub(crate) const MAX_DIRECT_FANOUT: usize = 2048;

/// Runs `f`, a fan-out to `recipients` clients, with direct writes off for it when it is wider
/// than [`MAX_DIRECT_FANOUT`].
pub(crate) fn fan_out<R>(recipients: usize, f: impl FnOnce() -> R) -> R {
    if recipients <= MAX_DIRECT_FANOUT {
        return f();
    }
    /// Restores the setting on the way out, a panic's included.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CORK.with(|cork| cork.wide.set(self.0));
        }
    }
    let _restore = Restore(CORK.with(|cork| cork.wide.replace(true)));
    f()
}

/// This thread's cork: its depth, and the queues that went from empty to not empty under it.
struct Cork {
    depth: Cell<u32>,
    /// A wide fan-out is running: its pushes wake (see [`fan_out`]).
    wide: Cell<bool>,
    /// The queue of the task that corked: it drains its own queue itself.
    own: Cell<*const State>,
    noted: RefCell<Vec<Arc<State>>>,
    written: Cell<u64>,
}

thread_local! {
    static CORK: Cork = const {
        Cork {
            depth: Cell::new(0),
            wide: Cell::new(false),
            own: Cell::new(std::ptr::null()),
            noted: RefCell::new(Vec::new()),
            written: Cell::new(0),
        }
    };
}

/// Runs `f` with this thread's pushes corked: a push that finds a queue empty, a queue with
/// a [`DirectWrite`], notes it instead of waking its connection; when the outermost `corked`
/// returns, each noted queue is written directly, or its connection woken. `own` is the
/// caller's own queue, which it drains itself afterwards (it is woken as without a cork,
/// never written directly).
/// Returns `f`'s value and the frames written directly.
///
/// Nothing under the cork waits: `f` runs synchronously (a connection calls this around the
/// handlers it polls in one wake-up), so a noted queue waits at most that long.
pub fn corked<R>(own: &Outbox, f: impl FnOnce() -> R) -> (R, u64) {
    /// Uncorks on the way out, a panic's included, so that no connection is left unwoken.
    struct Uncork(*const State);
    impl Drop for Uncork {
        fn drop(&mut self) {
            CORK.with(|cork| {
                let depth = cork.depth.get() - 1;
                cork.depth.set(depth);
                cork.own.set(self.0);
                if depth > 0 {
                    return;
                }
                // Taken out while the writes run, which must not find it borrowed; put back
                // for its capacity.
                let mut noted = cork.noted.take();
                let mut written = 0;
                for state in noted.drain(..) {
                    let done = match state.direct.get() {
                        Some(direct) if !state.closing.load(Ordering::Acquire) => {
                            let (frames, done) = direct.write(&mut Queued { state: &state });
                            written += frames;
                            done
                        }
                        _ => false,
                    };
                    if !done {
                        state.waker.wake();
                    }
                }
                *cork.noted.borrow_mut() = noted;
                cork.written.set(cork.written.get() + written);
            });
        }
    }
    let outer = CORK.with(|cork| {
        let depth = cork.depth.get();
        cork.depth.set(depth + 1);
        let outer = cork.own.get();
        cork.own.set(Arc::as_ptr(&own.state));
        if depth == 0 {
            cork.written.set(0);
        }
        outer
    });
    let value = {
        let _uncork = Uncork(outer);
        f()
    };
    let written = CORK.with(|cork| {
        if cork.depth.get() == 0 {
            cork.written.replace(0)
        } else {
            0
        }
    });
    (value, written)
}

impl State {
    /// Notes this queue under this thread's cork, if there is one and the queue can be
    /// written directly; `false` when it must be woken now.
    fn note(self: &Arc<Self>) -> bool {
        if self.direct.get().is_none() {
            return false;
        }
        CORK.with(|cork| {
            if cork.depth.get() == 0
                || cork.wide.get()
                || std::ptr::eq(cork.own.get(), Arc::as_ptr(self))
            {
                return false;
            }
            cork.noted.borrow_mut().push(self.clone());
            true
        })
    }
}

/// The sending side of one client's queue. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Outbox {
    state: Arc<State>,
}

/// The receiving side of one client's queue, drained by its connection.
#[derive(Debug)]
pub struct OutboxReceiver {
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

/// A queue buffer larger than this many items is freed once drained, so a burst leaves nothing
/// large behind on an idle connection.
const KEEP_ITEMS: usize = 64;

/// The close reason sent to a slow consumer.
const OVERFLOW: &str = "slow consumer: send queue overflow";

impl Outbox {
    /// A new queue that holds at most `limit_bytes` for its client. Allocates nothing until
    /// the first push.
    pub fn new(limit_bytes: usize) -> (Outbox, OutboxReceiver) {
        let state = Arc::new(State {
            queue: Mutex::new(Queue::default()),
            limit: limit_bytes,
            waker: AtomicWaker::new(),
            closing: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            direct: OnceLock::new(),
        });
        (
            Outbox {
                state: state.clone(),
            },
            OutboxReceiver { state },
        )
    }

    /// Queues a frame without waiting.
    pub fn push(&self, frame: Frame) -> Pushed {
        self.push_item(Outgoing::Frame(frame))
    }

    /// Queues a binary frame without waiting, bounded like text frames.
    pub fn push_binary(&self, data: bytes::Bytes) -> Pushed {
        self.push_item(Outgoing::Binary(data))
    }

    fn push_item(&self, item: Outgoing) -> Pushed {
        if self.state.closing.load(Ordering::Relaxed) {
            return Pushed::Closed;
        }
        let len = item.len();
        let mut queue = self.state.lock();
        if queue.closing {
            return Pushed::Closed;
        }
        // A single frame larger than the whole bound still goes to a client that holds
        // nothing: the message size limit, not the queue, bounds a frame.
        if queue.bytes > 0 && queue.bytes + len > self.state.limit {
            self.state.overflowed.store(true, Ordering::Release);
            Self::close_locked(&self.state, &mut queue, crate::close_code::POLICY, OVERFLOW);
            drop(queue);
            self.state.waker.wake();
            return Pushed::Overflow;
        }
        let was_empty = queue.items.is_empty();
        queue.items.push_back(item);
        queue.bytes += len;
        drop(queue);
        // The connection drains the whole queue on each wake-up: only the first push after a
        // drain needs to wake it (or, under a cork, to note it for a direct write).
        if was_empty && !self.state.note() {
            self.state.waker.wake();
        }
        Pushed::Queued
    }

    /// Asks the connection to close after what is queued; later pushes are dropped.
    /// Only the first call has an effect.
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut queue = self.state.lock();
        if !queue.closing {
            Self::close_locked(&self.state, &mut queue, code, reason);
            drop(queue);
            self.state.waker.wake();
        }
    }

    fn close_locked(state: &State, queue: &mut Queue, code: u16, reason: &'static str) {
        if !queue.closing {
            queue.closing = true;
            queue.close = Some((code, reason));
            state.closing.store(true, Ordering::Release);
        }
    }

    /// Whether the queue overflowed (the client was a slow consumer).
    pub fn overflowed(&self) -> bool {
        self.state.overflowed.load(Ordering::Acquire)
    }

    /// Whether [`close`](Self::close) was called (or the queue overflowed).
    pub fn is_closing(&self) -> bool {
        self.state.closing.load(Ordering::Acquire)
    }

    /// Bytes held for the client and not yet written to its socket.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

impl State {
    /// Takes up to `max_items` / `max_bytes` (see [`OutboxReceiver::poll_take`]); whether
    /// anything was taken.
    fn take(&self, max_items: usize, max_bytes: usize, each: &mut impl FnMut(Outgoing)) -> bool {
        let mut queue = self.lock();
        let mut items = 0;
        let mut bytes = 0;
        while items < max_items && bytes < max_bytes {
            let Some(item) = queue.items.pop_front() else {
                break;
            };
            items += 1;
            bytes += item.len();
            each(item);
        }
        if queue.items.is_empty() {
            if queue.items.capacity() > KEEP_ITEMS {
                queue.items = VecDeque::new();
            }
            if items < max_items
                && let Some((code, reason)) = queue.close.take()
            {
                items += 1;
                each(Outgoing::Close(code, reason));
            }
        }
        items > 0
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding this lock; recover from poisoning all the same.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl OutboxReceiver {
    /// Takes the next items, in order, under one lock, handing each to `each`: up to
    /// `max_items`, stopping after the one that brings the bytes taken to `max_bytes`; the
    /// close, if one was asked for, comes once the queue is empty, as the last item (it counts
    /// against `max_items`, and carries no bytes). `Pending` when there is nothing, after
    /// arranging for `cx` to be woken by the next push or close. The bytes taken stay counted
    /// until [`written`](Self::written).
    ///
    /// # Panics
    ///
    /// If `max_items` or `max_bytes` is zero: nothing could be taken, and a push to a queue
    /// that is not empty wakes nobody, so the connection would hang.
    ///
    /// One lock per batch, on the connection's side only (the queue keeps a single buffer, so
    /// an idle connection holds one small allocation, not two); the waker is registered only
    /// when the queue is found empty. `each` runs under that lock: it must be quick, and must
    /// not touch this queue.
    pub fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        max_items: usize,
        max_bytes: usize,
        mut each: impl FnMut(Outgoing),
    ) -> Poll<()> {
        assert!(
            max_items > 0 && max_bytes > 0,
            "poll_take needs room for one item"
        );
        if self.state.take(max_items, max_bytes, &mut each) {
            return Poll::Ready(());
        }
        // Register, then look again: a push between the first look and the registration
        // found no waker to wake, and is seen by this look.
        self.state.waker.register(cx.waker());
        if self.state.take(max_items, max_bytes, &mut each) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Arranges for `cx` to be woken by a close (an overflow's included) while the connection
    /// is not taking items, and says whether one was already asked for. When its socket is
    /// full, the connection stops polling the queue, and the waker the last push consumed
    /// would otherwise never be registered again, so a client that reads nothing would never
    /// start its close deadline. Registered first, then looked at: a close between the two
    /// finds the waker, and one before them is seen here.
    pub fn watch_close(&self, cx: &mut Context<'_>) -> bool {
        self.state.waker.register(cx.waker());
        self.state.closing.load(Ordering::Acquire)
    }

    /// Stops waking the connection on pushes, until the next [`poll_take`](Self::poll_take).
    /// A connection calls this before it runs handlers itself, since it drains the queue
    /// afterwards anyway: a handler's `emit` then costs no wake-up of its own task.
    pub fn quiet(&self) {
        drop(self.state.waker.take());
    }

    /// Counts `bytes` the connection writes itself (a pong, a ping) against the bound;
    /// `false` when that overflows it (the client is then closing as a slow consumer).
    pub fn charge(&self, bytes: usize) -> bool {
        let mut queue = self.state.lock();
        queue.bytes += bytes;
        if queue.bytes <= self.state.limit {
            return true;
        }
        self.state.overflowed.store(true, Ordering::Release);
        Outbox::close_locked(&self.state, &mut queue, crate::close_code::POLICY, OVERFLOW);
        false
    }

    /// Releases `bytes` that reached the socket (taken items and charged control frames).
    pub fn written(&self, bytes: usize) {
        if bytes > 0 {
            let mut queue = self.state.lock();
            queue.bytes = queue.bytes.saturating_sub(bytes);
        }
    }

    /// Lets `direct` write this queue from the tasks that push to it under a cork (see
    /// [`corked`]). Set once, for the connection's life.
    ///
    /// # Panics
    ///
    /// If one was set already.
    pub fn set_direct(&self, direct: Arc<dyn DirectWrite>) {
        assert!(
            self.state.direct.set(direct).is_ok(),
            "a queue has one direct writer"
        );
    }

    /// The next item if one is ready, released from the bound at once (for in-memory use:
    /// tests and benchmarks; a connection uses [`poll_take`](Self::poll_take)).
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let mut taken = None;
        self.state
            .take(1, usize::MAX, &mut |item| taken = Some(item));
        let item = taken?;
        self.written(item.len());
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Frame {
        Frame::event("e", &"x".repeat(n)).unwrap()
    }

    #[test]
    fn queues_in_order_and_tracks_bytes() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        let a = frame(1);
        let b = frame(2);
        assert_eq!(tx.push(a.clone()), Pushed::Queued);
        assert_eq!(tx.push(b.clone()), Pushed::Queued);
        assert_eq!(tx.queued_bytes(), a.len() + b.len());
        assert!(matches!(rx.try_recv(), Some(Outgoing::Frame(f)) if f == a));
        assert!(matches!(rx.try_recv(), Some(Outgoing::Frame(f)) if f == b));
        assert!(rx.try_recv().is_none());
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[test]
    fn overflow_closes_with_policy_after_queued_frames() {
        let (tx, mut rx) = Outbox::new(100);
        assert_eq!(tx.push(frame(60)), Pushed::Queued);
        assert_eq!(tx.push(frame(60)), Pushed::Overflow);
        assert!(tx.overflowed() && tx.is_closing());
        assert_eq!(tx.push(frame(1)), Pushed::Closed);
        assert!(matches!(rx.try_recv(), Some(Outgoing::Frame(_))));
        assert!(matches!(
            rx.try_recv(),
            Some(Outgoing::Close(close_code::POLICY, _))
        ));
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn a_single_frame_larger_than_the_limit_still_goes_to_an_empty_queue() {
        let (tx, _rx) = Outbox::new(10);
        assert_eq!(tx.push(frame(50)), Pushed::Queued);
    }

    #[test]
    fn taken_bytes_count_until_written_and_control_frames_are_charged() {
        let (tx, mut rx) = Outbox::new(100);
        tx.push(frame(40));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut taken = 0;
        assert!(
            rx.poll_take(&mut cx, 8, 1 << 20, |item| taken += item.len())
                .is_ready()
        );
        assert!(taken > 40);
        assert!(
            rx.poll_take(&mut cx, 8, 1 << 20, |_| panic!("empty"))
                .is_pending()
        );
        // Taken, not yet flushed: still held.
        assert_eq!(tx.queued_bytes(), taken);
        assert!(rx.charge(20));
        assert!(!rx.charge(100), "pongs past the bound overflow it");
        assert!(tx.overflowed());
        rx.written(taken + 120);
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[test]
    fn a_batch_stops_at_its_limits_and_the_close_comes_last() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        for _ in 0..5 {
            tx.push(frame(100));
        }
        tx.close(close_code::NORMAL, "bye");
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut take = |items, bytes| {
            let mut got = Vec::new();
            let polled = rx.poll_take(&mut cx, items, bytes, |item| got.push(item));
            (polled.is_ready(), got)
        };
        let (ready, got) = take(2, 1 << 20);
        assert!(ready && got.len() == 2, "at most two items");
        // One byte of budget still takes one whole item.
        let (_, got) = take(8, 1);
        assert_eq!(got.len(), 1);
        let (_, got) = take(8, 1 << 20);
        assert_eq!(got.len(), 3, "the last two frames and the close");
        assert!(matches!(
            got[..],
            [
                Outgoing::Frame(_),
                Outgoing::Frame(_),
                Outgoing::Close(close_code::NORMAL, "bye")
            ]
        ));
        let (ready, got) = take(8, 1 << 20);
        assert!(!ready && got.is_empty());
    }

    #[test]
    fn a_close_behind_a_full_batch_comes_alone_in_the_next_one() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        tx.push(frame(10));
        tx.push(frame(10));
        tx.close(close_code::NORMAL, "bye");
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        assert!(
            rx.poll_take(&mut cx, 2, 1 << 20, |item| got.push(item))
                .is_ready()
        );
        assert!(matches!(got[..], [Outgoing::Frame(_), Outgoing::Frame(_)]));
        got.clear();
        assert!(
            rx.poll_take(&mut cx, 2, 1 << 20, |item| got.push(item))
                .is_ready()
        );
        assert!(matches!(
            got[..],
            [Outgoing::Close(close_code::NORMAL, "bye")]
        ));
    }

    /// A direct writer that takes every frame, or none when `refuse` is set.
    #[derive(Debug, Default)]
    struct Recorder {
        refuse: AtomicBool,
        frames: Mutex<Vec<String>>,
    }

    impl DirectWrite for Recorder {
        fn write(&self, queue: &mut Queued<'_>) -> (u64, bool) {
            if self.refuse.load(Ordering::Relaxed) {
                return (0, false);
            }
            let mut frames = self.frames.lock().unwrap();
            let (written, empty) = queue.write(|items| {
                let before = frames.len();
                for item in items {
                    if let Outgoing::Frame(frame) = item {
                        frames.push(frame.as_str().to_owned());
                    }
                }
                (frames.len() - before, 0)
            });
            (written as u64, empty)
        }
    }

    /// Counts its wake-ups.
    struct CountingWaker(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn pushes_under_a_cork_are_written_directly_once_the_outermost_cork_ends() {
        let (own, _own_rx) = Outbox::new(1 << 20);
        let (tx, mut rx) = Outbox::new(1 << 20);
        let recorder = Arc::new(Recorder::default());
        rx.set_direct(recorder.clone());
        let wakes = Arc::new(CountingWaker(Default::default()));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        // Parked: the connection found its queue empty and registered.
        assert!(rx.poll_take(&mut cx, 8, 1 << 20, |_| {}).is_pending());
        let ((), written) = corked(&own, || {
            tx.push(frame(1));
            let ((), inner) = corked(&own, || {
                tx.push(frame(2));
            });
            assert_eq!(inner, 0, "an inner cork writes nothing");
            assert!(recorder.frames.lock().unwrap().is_empty());
        });
        assert_eq!(written, 2);
        assert_eq!(
            *recorder.frames.lock().unwrap(),
            [frame(1).as_str(), frame(2).as_str()]
        );
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "written, so not woken");
        assert_eq!(tx.queued_bytes(), 0, "released from the bound");
        // Without a cork, a push wakes the connection as always.
        tx.push(frame(3));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert_eq!(recorder.frames.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_corked_push_wakes_when_the_direct_writer_refuses_and_never_writes_a_closing_queue() {
        let (own, _own_rx) = Outbox::new(1 << 20);
        let (tx, mut rx) = Outbox::new(1 << 20);
        let recorder = Arc::new(Recorder::default());
        recorder.refuse.store(true, Ordering::Relaxed);
        rx.set_direct(recorder.clone());
        let wakes = Arc::new(CountingWaker(Default::default()));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_take(&mut cx, 8, 1 << 20, |_| {}).is_pending());
        let ((), written) = corked(&own, || {
            tx.push(frame(1));
            assert_eq!(
                wakes.0.load(Ordering::Relaxed),
                0,
                "woken only as the cork ends"
            );
        });
        assert_eq!((written, wakes.0.load(Ordering::Relaxed)), (0, 1));
        // Drained by the connection, which parks again; then the client is closed.
        let mut got = 0;
        assert!(rx.poll_take(&mut cx, 8, 1 << 20, |_| got += 1).is_ready());
        assert!(rx.poll_take(&mut cx, 8, 1 << 20, |_| {}).is_pending());
        recorder.refuse.store(false, Ordering::Relaxed);
        tx.close(close_code::NORMAL, "bye");
        let ((), written) = corked(&own, || {
            tx.push(frame(2));
        });
        assert_eq!(written, 0, "a closing queue is its connection's");
        assert!(recorder.frames.lock().unwrap().is_empty());
    }

    #[test]
    fn a_wide_fan_out_wakes_as_it_pushes_even_under_a_cork() {
        let (own, _own_rx) = Outbox::new(1 << 20);
        let (tx, mut rx) = Outbox::new(1 << 20);
        let recorder = Arc::new(Recorder::default());
        rx.set_direct(recorder.clone());
        let wakes = Arc::new(CountingWaker(Default::default()));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_take(&mut cx, 8, 1 << 20, |_| {}).is_pending());
        let ((), written) = corked(&own, || {
            fan_out(MAX_DIRECT_FANOUT + 1, || {
                tx.push(frame(1));
            });
            assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "woken at the push");
            // A narrow one after it is written directly again.
            let mut got = 0;
            assert!(rx.poll_take(&mut cx, 8, 1 << 20, |_| got += 1).is_ready());
            assert!(rx.poll_take(&mut cx, 8, 1 << 20, |_| {}).is_pending());
            fan_out(MAX_DIRECT_FANOUT, || {
                tx.push(frame(2));
            });
        });
        assert_eq!(written, 1);
        assert_eq!(*recorder.frames.lock().unwrap(), [frame(2).as_str()]);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_corking_tasks_own_queue_is_woken_not_written() {
        let (own, mut own_rx) = Outbox::new(1 << 20);
        let recorder = Arc::new(Recorder::default());
        own_rx.set_direct(recorder.clone());
        let wakes = Arc::new(CountingWaker(Default::default()));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(own_rx.poll_take(&mut cx, 8, 1 << 20, |_| {}).is_pending());
        let ((), written) = corked(&own, || {
            own.push(frame(1));
        });
        assert_eq!(written, 0);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert!(recorder.frames.lock().unwrap().is_empty());
    }

    #[test]
    fn nothing_is_allocated_until_the_first_push() {
        let (tx, _rx) = Outbox::new(100);
        assert_eq!(tx.state.lock().items.capacity(), 0);
    }
}
