//! Addressed messages with a latency for every delivery: many small rooms, direct messages
//! between clients, one busy room. Unlike echo and broadcast, where every counted frame is
//! alike, each message here carries its number (`#` and ten digits, at the start of its
//! text), so that every delivery is matched to its message's send time and to the number of
//! deliveries the message still owes. A delivery nobody owes (a duplicate, or a number never
//! sent) is an error, and whatever is still owed after the drain is missing.
//!
//! Messages are sent either at a fixed rate (open loop: a server that falls behind shows it
//! as latency, not as a lower rate) or with a fixed number in flight (closed loop: work per
//! server CPU-second).

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::conn::{self, Conn};
use crate::dialect::{Dialect, ROOM};
use crate::loadgen::{self, DRAIN_TIMEOUT, Errors, Meter, Phases, Window};
use crate::server::Server;
use crate::wire::{self, Event};

/// Who sends each message, and to whom.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Traffic {
    /// Rooms of `size` consecutive connections, as [`loadgen::Rooms::Groups`] joins them: a
    /// random member sends to its room, and every member (the sender too) receives it.
    Rooms { size: usize },
    /// A random client sends to another random client.
    Direct,
    /// The first connection sends to [`ROOM`], of which every connection is a member.
    Bench,
}

/// How messages are paced.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// This many messages per second, whatever the server does.
    Rate(f64),
    /// A new message whenever fewer than `in_flight` are owed deliveries; they are written
    /// `batch` at a time from one sender (one write), as a busy client would.
    Window { in_flight: usize, batch: usize },
}

/// A run's parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mesh {
    pub(crate) traffic: Traffic,
    pub(crate) pace: Pace,
    /// Length of each message's text.
    pub(crate) payload: usize,
}

/// What a run measured.
pub(crate) struct MeshRun {
    /// Work is deliveries.
    pub(crate) window: io::Result<Window>,
    /// For every delivery of a message sent in the measured window: the time from its send
    /// to its arrival, in milliseconds.
    pub(crate) latencies: Vec<f64>,
    /// Messages sent in the measured window.
    pub(crate) sent_measured: u64,
    pub(crate) errors: Result<(), String>,
}

/// One message sent: when, how many deliveries it still owes, whether it counts.
struct Sent {
    at: Instant,
    owed: u32,
    measured: bool,
}

struct Shared {
    dialect: Dialect,
    sent: RefCell<Vec<Sent>>,
    delivered: Cell<u64>,
    /// Messages that still owe a delivery.
    outstanding: Cell<u64>,
    /// With [`Pace::Window`]: the sender waits for `outstanding` to drop below this.
    in_flight: u64,
    wake_sender: Notify,
    recording: Cell<bool>,
    stop: Cell<bool>,
    /// The drain is over: members return their connection.
    finished: Notify,
    latencies: RefCell<Vec<f64>>,
    errors: Errors,
}

impl Shared {
    /// Counts the delivery of the message whose text starts `head`; `false` when `head` has
    /// no message number (a dialect's keep-alive, or a stray frame: the caller sorts it).
    fn deliver(&self, head: &[u8], now: Instant) -> bool {
        let Some(number) = message_number(head) else {
            return false;
        };
        let mut sent = self.sent.borrow_mut();
        let Some(message) = sent.get_mut(number).filter(|m| m.owed > 0) else {
            self.errors
                .push(format!("message {number} delivered more often than sent"));
            return true;
        };
        message.owed -= 1;
        self.delivered.set(self.delivered.get() + 1);
        if message.measured {
            let millis = now.duration_since(message.at).as_secs_f64() * 1000.0;
            self.latencies.borrow_mut().push(millis);
        }
        if message.owed == 0 {
            self.outstanding.set(self.outstanding.get() - 1);
            if self.outstanding.get() < self.in_flight {
                self.wake_sender.notify_one();
            }
        }
        true
    }
}

/// The number after the first `#` in `head`, if ten digits follow it.
fn message_number(head: &[u8]) -> Option<usize> {
    let at = head.iter().position(|&b| b == b'#')?;
    let digits = head.get(at + 1..at + 11)?;
    digits.iter().try_fold(0usize, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + usize::from(d - b'0'))
    })
}

/// A small, seeded generator: every server gets the same sequence of senders and recipients.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Builds the messages: who sends, the frame, how many receive it.
struct Addresser {
    traffic: Traffic,
    dialect: Dialect,
    ids: Vec<String>,
    /// The text after the number, so that each text is `payload` bytes long.
    filler: String,
    rng: XorShift,
}

impl Addresser {
    /// A random sender.
    fn sender(&mut self) -> usize {
        match self.traffic {
            Traffic::Bench => 0,
            Traffic::Rooms { .. } | Traffic::Direct => self.rng.below(self.ids.len()),
        }
    }

    /// Message `number` from `sender`, as a masked frame appended to `out`; returns how many
    /// deliveries it owes.
    fn message(&mut self, sender: usize, number: usize, out: &mut Vec<u8>) -> u32 {
        let text = format!("#{number:010}{}", self.filler);
        let n = self.ids.len();
        let (request, owed) = match self.traffic {
            Traffic::Rooms { size } => {
                let room = sender / size;
                let members = size.min(n - room * size);
                let name = loadgen::group_room(room);
                (self.dialect.to_room(&name, &text), members)
            }
            Traffic::Direct => {
                // Anyone but the sender.
                let to = (sender + 1 + self.rng.below(n - 1)) % n;
                (self.dialect.direct(&self.ids[to], &text), 1)
            }
            Traffic::Bench => (self.dialect.to_room(ROOM, &text), n),
        };
        out.extend_from_slice(&wire::text_frame(&request));
        owed as u32
    }
}

/// Runs `mesh` over `conns` (each already set up: joined to its room, or named) and drains.
pub(crate) async fn run(
    server: &Server,
    ticks: f64,
    mut conns: Vec<Conn>,
    mesh: Mesh,
    phases: Phases,
) -> (Vec<Conn>, MeshRun) {
    let n = conns.len();
    let fail = |conns, e: &str| {
        let run = MeshRun {
            window: Err(io::Error::other(e.to_owned())),
            latencies: Vec::new(),
            sent_measured: 0,
            errors: Ok(()),
        };
        (conns, run)
    };
    if n < 2 || mesh.payload < 11 {
        return fail(conns, "a mesh run needs 2 connections and 11 bytes of text");
    }
    if matches!(mesh.traffic, Traffic::Direct) && conns.iter().any(|c| c.id.is_empty()) {
        return fail(conns, "direct messages need every connection's id");
    }
    let dialect = server.dialect;
    let in_flight = match mesh.pace {
        Pace::Rate(_) => u64::MAX,
        Pace::Window { in_flight, .. } => in_flight as u64,
    };
    let shared = Rc::new(Shared {
        dialect,
        sent: RefCell::new(Vec::new()),
        delivered: Cell::new(0),
        outstanding: Cell::new(0),
        in_flight,
        wake_sender: Notify::new(),
        recording: Cell::new(false),
        stop: Cell::new(false),
        finished: Notify::new(),
        latencies: RefCell::new(Vec::new()),
        errors: Errors::default(),
    });
    loadgen::start_counting(&mut conns, None, dialect, &shared.errors).await;
    let streams: Vec<Rc<TcpStream>> = conns.iter().map(|c| c.stream.clone()).collect();
    let addresser = Addresser {
        traffic: mesh.traffic,
        dialect,
        ids: conns.iter().map(|c| c.id.clone()).collect(),
        filler: loadgen::filler('m', mesh.payload - 11),
        rng: XorShift(0x9e37_79b9_7f4a_7c15),
    };
    let members: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::task::spawn_local(member(conn, shared.clone())))
        .collect();
    let sender = tokio::task::spawn_local(send(shared.clone(), streams, addresser, mesh.pace));
    let meter = Meter {
        server,
        ticks,
        counter: &shared.delivered,
    };
    let window = meter.run(phases, &shared.recording).await;
    shared.stop.set(true);
    shared.wake_sender.notify_one();
    let _ = sender.await;
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while shared.outstanding.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shared.finished.notify_waiters();
    let conns = loadgen::join_within(members, Duration::from_secs(10)).await;
    let (owed, sent_measured) = {
        let sent = shared.sent.borrow();
        (
            sent.iter().map(|m| u64::from(m.owed)).sum::<u64>(),
            sent.iter().filter(|m| m.measured).count() as u64,
        )
    };
    if owed > 0 {
        shared.errors.push(format!(
            "{owed} deliveries missing after the drain ({} messages sent)",
            shared.sent.borrow().len()
        ));
    }
    if conns.len() < n {
        shared
            .errors
            .push(format!("{} of {n} connections lost", n - conns.len()));
    }
    let run = MeshRun {
        window,
        latencies: shared.latencies.take(),
        sent_measured,
        errors: shared.errors.result(),
    };
    (conns, run)
}

/// The sender: writes each message on its sender's socket, at the pace asked for.
async fn send(
    shared: Rc<Shared>,
    streams: Vec<Rc<TcpStream>>,
    mut addresser: Addresser,
    pace: Pace,
) {
    let mut bytes = Vec::new();
    let mut write = async |sender: usize, count: usize, addresser: &mut Addresser| {
        bytes.clear();
        for _ in 0..count {
            let number = shared.sent.borrow().len();
            let owed = addresser.message(sender, number, &mut bytes);
            shared.sent.borrow_mut().push(Sent {
                at: Instant::now(),
                owed,
                measured: shared.recording.get(),
            });
            shared.outstanding.set(shared.outstanding.get() + 1);
        }
        conn::write_all(&streams[sender], &bytes).await
    };
    let result = match pace {
        Pace::Rate(per_sec) => {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let mut sent = 0u64;
            loop {
                tick.tick().await;
                if shared.stop.get() {
                    break Ok(());
                }
                let due = (start.elapsed().as_secs_f64() * per_sec) as u64;
                let mut outcome = Ok(());
                while sent < due && outcome.is_ok() {
                    let sender = addresser.sender();
                    outcome = write(sender, 1, &mut addresser).await;
                    sent += 1;
                }
                if outcome.is_err() {
                    break outcome;
                }
            }
        }
        Pace::Window { in_flight, batch } => loop {
            if shared.stop.get() {
                break Ok(());
            }
            let room = (in_flight as u64).saturating_sub(shared.outstanding.get());
            if room == 0 {
                shared.wake_sender.notified().await;
                continue;
            }
            let sender = addresser.sender();
            let count = batch.min(room as usize);
            if let Err(e) = write(sender, count, &mut addresser).await {
                break Err(e);
            }
        },
    };
    if let Err(e) = result {
        shared.errors.push(format!("send: {e}"));
    }
}

async fn member(mut conn: Conn, shared: Rc<Shared>) -> Conn {
    let finished = shared.finished.notified();
    tokio::pin!(finished);
    let mut replies = Vec::new();
    loop {
        tokio::select! {
            biased;
            () = &mut finished => return conn,
            read = conn.read_some(|event| match event {
                Event::Expected { head } => {
                    if !shared.deliver(head, Instant::now()) {
                        // Sorted like a frame that was not counted (Engine.IO's ping `2`
                        // is a text frame too).
                        let text = Event::Other { opcode: wire::TEXT, fin: true, len: head.len() as u64, payload: head };
                        loadgen::on_other(shared.dialect, text, &mut replies, &shared.errors);
                    }
                }
                other => loadgen::on_other(shared.dialect, other, &mut replies, &shared.errors),
            }) => {
                if let Err(e) = read {
                    shared.errors.push(format!("member: {e}"));
                    return conn;
                }
            }
        }
        for reply in replies.drain(..) {
            if let Err(e) = conn.send(&reply).await {
                shared.errors.push(format!("member reply: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_numbers_are_read_after_the_first_hash() {
        assert_eq!(
            message_number(
                br##"{"event":"direct","payload":{"from":"ws:1","message":"#0000000042mm"##
            ),
            Some(42)
        );
        assert_eq!(message_number(b"#000000004"), None);
        assert_eq!(message_number(b"#00000000x1"), None);
        assert_eq!(message_number(b"no number"), None);
    }
}
