//! Which wake-ups of a connection may have something other than frames to write.
//!
//! A broadcast wakes every recipient's task to write a frame. Polling the read side on such a
//! wake-up goes through tungstenite (two waker registrations) down to the socket's readiness,
//! only to learn that nothing arrived, once per recipient. So the read side is polled with a
//! waker of its own, which marks the connection before it wakes the task: whatever
//! tungstenite and the socket register for a read (readable, or writable when a read had to
//! write) comes through it. The task reads when the mark is set, or when the last read
//! returned a frame (more may be buffered), and leaves the read side alone otherwise.
//!
//! The connection's timer and its shutdown-phase watch are polled with the same waker, so a
//! wake-up they cause is marked too, and an unmarked one leaves them alone as well. With
//! 10,000 recipients, each of them is a cache line or two per recipient that a broadcast
//! would otherwise read (BENCHMARKS.md, "misses the cache, by function").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};

/// The read side's waker and its mark.
pub(crate) struct ReadWaker {
    flag: Arc<Flag>,
    waker: Waker,
}

struct Flag {
    readable: AtomicBool,
    task: Waker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Release: the task that sees the mark also sees what the waker's caller did before.
        self.readable.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

impl ReadWaker {
    /// For a task woken by `task`; marked, so that the first poll reads and looks at the
    /// timer and the phase (registering this waker with each).
    pub(crate) fn new(task: &Waker) -> Self {
        let flag = Arc::new(Flag {
            readable: AtomicBool::new(true),
            task: task.clone(),
        });
        Self {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Follows the task's waker, `task` in this poll. A task's waker does not change under
    /// tokio, but if it did, a new read waker is made (marked, so that whatever polls with it
    /// registers it at once), and this says so: what registered the old one only on a change
    /// (the phase watch) must register again.
    pub(crate) fn follow(&mut self, task: &Waker) -> bool {
        if self.flag.task.will_wake(task) {
            return false;
        }
        *self = Self::new(task);
        true
    }

    /// The waker to poll the read side with.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Whether this wake-up may have something for the read side, the timer or the phase.
    /// Takes the mark: a wake-up through this waker from now on sets it again.
    pub(crate) fn take(&self) -> bool {
        self.flag.readable.swap(false, Ordering::Acquire)
    }

    /// Sets the mark: the last read returned something and more may be buffered where no
    /// waker will announce it, or a marked wake-up could not read and the next one should.
    pub(crate) fn set(&self) {
        self.flag.readable.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_wake_of_the_read_side_marks_it_and_wakes_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let mut reads = ReadWaker::new(&task);
        assert!(reads.take(), "the first poll reads");
        assert!(!reads.take(), "the mark was taken");
        assert!(
            !reads.follow(&task),
            "the same task's waker is followed as it is"
        );
        reads.waker().wake_by_ref();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(reads.take());
        reads.set();
        assert!(reads.take(), "set by a read that returned something");
        assert!(!reads.take());
    }

    #[test]
    fn a_new_task_waker_makes_a_new_marked_read_waker() {
        let first = Arc::new(Count(AtomicUsize::new(0)));
        let second = Arc::new(Count(AtomicUsize::new(0)));
        let mut reads = ReadWaker::new(&Waker::from(first.clone()));
        assert!(reads.take());
        let other = Waker::from(second.clone());
        assert!(reads.follow(&other), "a new waker is reported");
        assert!(reads.take(), "a new read waker starts marked");
        reads.waker().wake_by_ref();
        assert_eq!(first.0.load(Ordering::Relaxed), 0);
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
        assert!(reads.take());
    }
}
