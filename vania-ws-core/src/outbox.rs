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
//! Why a mutex around a `VecDeque`, and not a lock-free queue: the queue must cost nothing
//! while a connection is idle. The lock-free queues at hand (tokio's, crossbeam's) keep a block
//! of 31 or 32 slots (about 1.5 KB here) allocated for as long as the queue has ever been used,
//! which is more than everything else an idle connection holds. This mutex is per client, is
//! taken for a push and for a batch of items, and is never held across an `.await`
//! or a write: it is one uncontended compare-and-swap in the common case, the same number of
//! atomic operations as a lock-free push.

use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use crate::close::CloseCode;
use crate::envelope::Frame;

/// One item of a client's outgoing queue.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A text frame.
    Frame(Frame),
    /// A binary frame.
    Binary(bytes::Bytes),
    /// Close the connection with this code and reason. Always the last item: it comes after
    /// everything queued before the close was asked for, and nothing is queued after it.
    Close(CloseCode, Box<str>),
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

/// `repr(C)`, here and in [`State`], keeps the fields in the order written: what a push and
/// a take of one item touch (the flags, the bound, the waker, the lock, then `bytes`, `len`
/// and `first`) comes first, and the buffer's header and the close after. `State` starts on
/// a cache line (`align(64)`), so those are exactly two lines; unaligned, they straddle
/// three. With 10,000 members, every line a broadcast touches per member is a cache miss:
/// this layout took 2.4 misses off each delivery (BENCHMARKS.md, "a flat connection task").
#[derive(Debug, Default)]
#[repr(C)]
struct Queue {
    /// Bytes held for the client: queued here, plus what the connection has taken and not yet
    /// flushed, plus the control frames it charged.
    bytes: usize,
    /// Items queued, `first` included: what a take looks at instead of the buffer's header.
    len: usize,
    /// A close was asked for (taken or not): nothing more is queued.
    closing: bool,
    /// The code of the close asked for, kept after the connection took it (it says why the
    /// client was disconnected). In `closing`'s padding: `Queue` stays 120 bytes.
    closed_with: Option<CloseCode>,
    /// The oldest item, kept beside the lock rather than in `items`' buffer: a queue that
    /// holds one item at a time (a client of a room that broadcasts one message at a time)
    /// never touches that buffer, one cache line fewer per delivery for the sender and for
    /// the connection. Only filled while `items` is empty, so it always comes first.
    first: Option<Outgoing>,
    items: VecDeque<Outgoing>,
    /// The close asked for, not yet taken by the connection.
    close: Option<(CloseCode, Box<str>)>,
}

#[derive(Debug)]
#[repr(C, align(64))]
struct State {
    /// Mirrors `Queue::closing`, readable without the lock.
    closing: AtomicBool,
    overflowed: AtomicBool,
    limit: usize,
    /// The connection's task, woken when the queue goes from empty to not empty, or on close.
    waker: AtomicWaker,
    queue: Mutex<Queue>,
    /// The id of the client the queue belongs to, for what lists or skips room members by
    /// id. Cold, after the two hot lines, in the slack of the third that `align(64)` leaves
    /// (`State` is 192 bytes with or without it).
    client_id: Option<Arc<str>>,
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
        Self::with_client_id(limit_bytes, None)
    }

    /// [`new`](Self::new), for the client `id`.
    pub(crate) fn for_client(limit_bytes: usize, id: Arc<str>) -> (Outbox, OutboxReceiver) {
        Self::with_client_id(limit_bytes, Some(id))
    }

    fn with_client_id(limit_bytes: usize, client_id: Option<Arc<str>>) -> (Outbox, OutboxReceiver) {
        let state = Arc::new(State {
            queue: Mutex::new(Queue::default()),
            limit: limit_bytes,
            waker: AtomicWaker::new(),
            closing: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            client_id,
        });
        (
            Outbox {
                state: state.clone(),
            },
            OutboxReceiver { state },
        )
    }

    /// The id of the client this queue belongs to (`None` for a queue made with
    /// [`new`](Self::new)).
    pub fn client_id(&self) -> Option<&str> {
        self.state.client_id.as_deref()
    }

    /// The code of the close asked for, if one was (by a handler, the server, an overflow).
    pub fn close_code(&self) -> Option<CloseCode> {
        self.state.lock().closed_with
    }

    /// Queues a frame without waiting.
    #[inline]
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
            Self::close_locked(&self.state, &mut queue, CloseCode::POLICY, OVERFLOW.into());
            drop(queue);
            self.state.waker.wake();
            return Pushed::Overflow;
        }
        let was_empty = queue.len == 0;
        if was_empty {
            queue.first = Some(item);
        } else {
            queue.items.push_back(item);
        }
        queue.len += 1;
        queue.bytes += len;
        drop(queue);
        // The connection drains the whole queue on each wake-up: only the first push after a
        // drain needs to wake it.
        if was_empty {
            self.state.waker.wake();
        }
        Pushed::Queued
    }

    /// Asks the connection to close after what is queued; later pushes are dropped.
    /// Only the first call has an effect, and says so by returning `true`: the close code
    /// the client gets is this call's. The reason is owned (a close asked for by another
    /// node carries its own), and as wide as a `&'static str`, so the queue keeps its layout.
    pub fn close(&self, code: CloseCode, reason: impl Into<Box<str>>) -> bool {
        let mut queue = self.state.lock();
        if queue.closing {
            return false;
        }
        Self::close_locked(&self.state, &mut queue, code, reason.into());
        drop(queue);
        self.state.waker.wake();
        true
    }

    fn close_locked(state: &State, queue: &mut Queue, code: CloseCode, reason: Box<str>) {
        if !queue.closing {
            queue.closing = true;
            queue.closed_with = Some(code);
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
    /// against `max_items`, and carries no bytes). The bytes taken stay counted until
    /// [`written`](Self::written).
    ///
    /// `Ready(true)` when this take left the queue empty, `Ready(false)` when more is queued
    /// (take again), and `Pending` when there was nothing. Whenever the queue is left empty,
    /// `cx` is woken by the next push or close, so a caller that got `Ready(true)` need not
    /// look again to learn that the queue is empty.
    ///
    /// # Panics
    ///
    /// If `max_items` or `max_bytes` is zero: nothing could be taken, and a push to a queue
    /// that is not empty wakes nobody, so the connection would hang.
    ///
    /// One lock per batch, on the connection's side only (the queue keeps a single buffer, so
    /// an idle connection holds one small allocation, not two). The waker is registered under
    /// that lock when the queue is left empty: a push, which also takes the lock, then
    /// either came before and was taken, or comes after and finds the waker. `each` runs
    /// under the lock: it must be quick, and must not touch this queue.
    pub fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        max_items: usize,
        max_bytes: usize,
        mut each: impl FnMut(Outgoing),
    ) -> Poll<bool> {
        assert!(
            max_items > 0 && max_bytes > 0,
            "poll_take needs room for one item"
        );
        let mut queue = self.state.lock();
        let taken = Self::take_locked(&mut queue, max_items, max_bytes, &mut each);
        // With room for one item, nothing taken means nothing queued, no close included.
        // (`closing` first: `close` lies on a line of its own, see `Queue`.)
        let drained = queue.len == 0 && !(queue.closing && queue.close.is_some());
        if drained {
            self.state.waker.register(cx.waker());
        }
        drop(queue);
        if taken {
            Poll::Ready(drained)
        } else {
            Poll::Pending
        }
    }

    /// Takes up to `max_items` / `max_bytes` (see [`poll_take`](Self::poll_take)); whether
    /// anything was taken.
    fn take_locked(
        queue: &mut Queue,
        max_items: usize,
        max_bytes: usize,
        each: &mut impl FnMut(Outgoing),
    ) -> bool {
        let mut items = 0;
        let mut bytes = 0;
        // `len` first: an empty queue, or one that held only `first`, is seen without reading
        // the buffer's header (another cache line).
        let mut buffered = false;
        while items < max_items && bytes < max_bytes && queue.len > 0 {
            let item = match queue.first.take() {
                Some(item) => item,
                None => {
                    buffered = true;
                    queue
                        .items
                        .pop_front()
                        .expect("`len` counts the buffer's items")
                }
            };
            queue.len -= 1;
            items += 1;
            bytes += item.len();
            each(item);
        }
        if queue.len == 0 {
            if buffered && queue.items.capacity() > KEEP_ITEMS {
                queue.items = VecDeque::new();
            }
            if items < max_items
                && queue.closing
                && let Some((code, reason)) = queue.close.take()
            {
                items += 1;
                each(Outgoing::Close(code, reason));
            }
        }
        items > 0
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

    /// Whether a close was asked for (an overflow's included), as
    /// [`Outbox::is_closing`]: the connection's own look, without going through its client.
    pub fn is_closing(&self) -> bool {
        self.state.closing.load(Ordering::Acquire)
    }

    /// Stops waking the connection on pushes, until the next [`poll_take`](Self::poll_take)
    /// that leaves the queue empty (it registers the waker again).
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
        Outbox::close_locked(&self.state, &mut queue, CloseCode::POLICY, OVERFLOW.into());
        false
    }

    /// Releases `bytes` that reached the socket (taken items and charged control frames).
    pub fn written(&self, bytes: usize) {
        if bytes > 0 {
            let mut queue = self.state.lock();
            queue.bytes = queue.bytes.saturating_sub(bytes);
        }
    }

    /// The next item if one is ready, released from the bound at once (for in-memory use:
    /// tests and benchmarks; a connection uses [`poll_take`](Self::poll_take)).
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let mut taken = None;
        Self::take_locked(&mut self.state.lock(), 1, usize::MAX, &mut |item| {
            taken = Some(item);
        });
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
            Some(Outgoing::Close(CloseCode::POLICY, _))
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

    /// Counts wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_take_that_drains_says_so_and_the_next_push_wakes_the_taker() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        let count = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        tx.push(frame(1));
        tx.push(frame(2));
        let mut got = 0;
        assert_eq!(
            rx.poll_take(&mut cx, 1, 1 << 20, |_| got += 1),
            Poll::Ready(false),
            "one more is queued"
        );
        assert_eq!(
            rx.poll_take(&mut cx, 8, 1 << 20, |_| got += 1),
            Poll::Ready(true),
            "the queue is drained"
        );
        assert_eq!(got, 2);
        // No second look: the drain registered the waker.
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
        tx.push(frame(3));
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "the push woke the taker"
        );
        tx.push(frame(4));
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "only the push to an empty queue wakes"
        );
        assert_eq!(
            rx.poll_take(&mut cx, 8, 1 << 20, |_| got += 1),
            Poll::Ready(true)
        );
        assert!(tx.close(CloseCode::NORMAL, "bye"), "the first close counts");
        assert!(
            !tx.close(CloseCode::GOING_AWAY, "later"),
            "a second close has no effect"
        );
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            2,
            "a close wakes too, once"
        );
        assert_eq!(tx.close_code(), Some(CloseCode::NORMAL));
        // The close is the last item: taking it drains the queue.
        assert_eq!(
            rx.poll_take(&mut cx, 1, 1 << 20, |item| assert!(matches!(
                item,
                Outgoing::Close(..)
            ))),
            Poll::Ready(true)
        );
        assert!(
            rx.poll_take(&mut cx, 1, 1 << 20, |_| panic!("empty"))
                .is_pending()
        );
    }

    #[test]
    fn a_close_behind_a_full_batch_is_not_a_drain() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        tx.push(frame(1));
        tx.close(CloseCode::NORMAL, "bye");
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(
            rx.poll_take(&mut cx, 1, 1 << 20, |_| {}),
            Poll::Ready(false),
            "the close is still to take"
        );
        assert_eq!(rx.poll_take(&mut cx, 1, 1 << 20, |_| {}), Poll::Ready(true));
    }

    /// The layout `Queue`'s comment promises: what a push and a take of one item touch lies in
    /// the state's first two cache lines, and the state starts on a line.
    #[test]
    fn a_push_and_a_take_of_one_item_touch_the_first_two_lines() {
        assert_eq!(std::mem::align_of::<State>(), 64);
        let (tx, _rx) = Outbox::new(1);
        let state: &State = &tx.state;
        let base = std::ptr::from_ref(state) as usize;
        let queue = std::ptr::from_ref::<Queue>(&state.lock()) as usize - base;
        let waker_end = std::mem::offset_of!(State, waker) + std::mem::size_of::<AtomicWaker>();
        assert!(waker_end <= 64, "the waker ends at {waker_end}");
        let first_end =
            queue + std::mem::offset_of!(Queue, first) + std::mem::size_of::<Option<Outgoing>>();
        assert!(first_end <= 128, "the first item ends at {first_end}");
    }

    #[test]
    fn a_batch_stops_at_its_limits_and_the_close_comes_last() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        for _ in 0..5 {
            tx.push(frame(100));
        }
        tx.close(CloseCode::NORMAL, "bye");
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
            &got[..],
            [
                Outgoing::Frame(_),
                Outgoing::Frame(_),
                Outgoing::Close(CloseCode::NORMAL, reason)
            ] if &**reason == "bye"
        ));
        let (ready, got) = take(8, 1 << 20);
        assert!(!ready && got.is_empty());
    }

    #[test]
    fn a_close_behind_a_full_batch_comes_alone_in_the_next_one() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        tx.push(frame(10));
        tx.push(frame(10));
        tx.close(CloseCode::NORMAL, "bye");
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
            &got[..],
            [Outgoing::Close(CloseCode::NORMAL, reason)] if &**reason == "bye"
        ));
    }

    #[test]
    fn one_item_at_a_time_stays_beside_the_lock_and_order_holds_past_it() {
        let (tx, mut rx) = Outbox::new(1 << 20);
        for n in 1..4 {
            assert_eq!(tx.push(frame(n)), Pushed::Queued);
            assert!(matches!(rx.try_recv(), Some(Outgoing::Frame(f)) if f == frame(n)));
        }
        assert_eq!(
            tx.state.lock().items.capacity(),
            0,
            "no buffer for one at a time"
        );
        // The first item beside the lock, the next ones in the buffer; one more pushed after
        // the first is taken still comes after those.
        let frames: Vec<Frame> = (1..6).map(frame).collect();
        for f in &frames[..3] {
            tx.push(f.clone());
        }
        assert!(matches!(rx.try_recv(), Some(Outgoing::Frame(f)) if f == frames[0]));
        for f in &frames[3..] {
            tx.push(f.clone());
        }
        for want in &frames[1..] {
            assert!(matches!(rx.try_recv(), Some(Outgoing::Frame(f)) if f == *want));
        }
        assert!(rx.try_recv().is_none());
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[test]
    fn nothing_is_allocated_until_the_first_push() {
        let (tx, _rx) = Outbox::new(100);
        assert_eq!(tx.state.lock().items.capacity(), 0);
    }
}

#[cfg(test)]
mod layout {
    /// The layout the hot path was measured with: `State` is three cache lines, of which a
    /// push and a take touch the first two; the client id rides in the third's slack.
    #[test]
    fn a_queue_state_stays_three_cache_lines() {
        assert_eq!(std::mem::size_of::<super::State>(), 192);
        assert_eq!(std::mem::size_of::<super::Queue>(), 120);
    }
}
