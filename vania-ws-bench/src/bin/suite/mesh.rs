//! Addressed messages with a latency for every delivery: many small rooms, direct messages
//! between clients, one busy room. Unlike echo and broadcast, where every counted frame is
//! alike, each message here carries its number (`#` and ten digits, at the start of its
//! text), so that every delivery is matched to its message's send time, to its recipients
//! and to the deliveries it still owes. A delivery to a connection that is not a recipient,
//! a second delivery to the same one (where that can be told: direct messages and rooms of
//! up to 64), or a number never sent, is an error; whatever is still owed after the drain is
//! missing. Numbers never repeat within a process, so a frame left over from an earlier run
//! on the same connections is an error too, not a delivery.
//!
//! Messages are sent either at a fixed rate (open loop: a server that falls behind shows it
//! as latency, not as a lower rate) or with a fixed number in flight (closed loop: work per
//! server CPU-second). A latency counts from the message's write. At a fixed rate the run
//! also records how late each write was against its schedule: tokio's timer has millisecond
//! steps, so a write is normally up to about 3 ms late, and a load generator
//! (or a server not reading) that holds the sender back longer makes the window invalid
//! rather than hiding the delay.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::conn::{self, Conn};
use crate::dialect::{Dialect, ROOM};
use crate::loadgen::{self, Errors, Meter, Phases, Window};
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
    /// Counts the frames the app sends when a client leaves (the demo's `user-left`) instead
    /// of failing on them: for a run where a client is expected to be dropped.
    pub(crate) departures: bool,
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
    /// Departure frames received (with [`Mesh::departures`]).
    pub(crate) departures: u64,
    /// At a fixed rate: the 99th percentile of how late the measured messages were written
    /// against their schedule, in milliseconds.
    pub(crate) send_lag_p99: f64,
    pub(crate) errors: Result<(), String>,
}

/// One message sent: when, to whom, how many deliveries it still owes, whether it counts.
struct Sent {
    at: Instant,
    /// The recipient (direct), or the room (rooms); unused for the bench room.
    to: u32,
    owed: u32,
    /// Which members of a room of up to 64 have received it.
    received: u64,
    measured: bool,
}

thread_local! {
    /// The next message number: numbers are never reused within the process.
    static NEXT_NUMBER: Cell<usize> = const { Cell::new(0) };
}

struct Shared {
    dialect: Dialect,
    traffic: Traffic,
    /// The number of the first message of this run (`sent[0]`).
    first: usize,
    sent: RefCell<Vec<Sent>>,
    allow_departures: bool,
    departures: Cell<u64>,
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
    /// How late each measured message was written against its schedule (fixed rate), in ms.
    send_lags: RefCell<Vec<f64>>,
    errors: Errors,
}

impl Shared {
    /// Counts the delivery to connection `me` of the message whose text starts `head`;
    /// `false` when `head` has no message number (a dialect's keep-alive, or a stray frame:
    /// the caller sorts it).
    fn deliver(&self, head: &[u8], now: Instant, me: usize) -> bool {
        let Some(number) = message_number(head) else {
            return false;
        };
        let mut sent = self.sent.borrow_mut();
        let index = number.checked_sub(self.first);
        let Some(message) = index.and_then(|i| sent.get_mut(i)) else {
            self.errors
                .push(format!("message {number} was not sent in this run"));
            return true;
        };
        let (recipient, bit) = match self.traffic {
            Traffic::Rooms { size } => (me / size == message.to as usize, me % size),
            Traffic::Direct => (me == message.to as usize, 0),
            Traffic::Bench => (true, 64),
        };
        if !recipient {
            self.errors.push(format!(
                "message {number} for {} reached connection {me}",
                message.to
            ));
            return true;
        }
        let again = bit < 64 && message.received & (1 << bit) != 0;
        if again || message.owed == 0 {
            self.errors.push(format!(
                "message {number} reached connection {me} more than once"
            ));
            return true;
        }
        if bit < 64 {
            message.received |= 1 << bit;
        }
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

    /// Message `number` from `sender`, as a masked frame appended to `out`; returns its
    /// recipient (or room) and how many deliveries it owes.
    fn message(&mut self, sender: usize, number: usize, out: &mut Vec<u8>) -> (u32, u32) {
        let text = format!("#{number:010}{}", self.filler);
        let n = self.ids.len();
        let (request, to, owed) = match self.traffic {
            Traffic::Rooms { size } => {
                let room = sender / size;
                let members = size.min(n - room * size);
                let name = loadgen::group_room(room);
                (self.dialect.to_room(&name, &text), room, members)
            }
            Traffic::Direct => {
                // Anyone but the sender.
                let to = (sender + 1 + self.rng.below(n - 1)) % n;
                (self.dialect.direct(&self.ids[to], &text), to, 1)
            }
            Traffic::Bench => (self.dialect.to_room(ROOM, &text), 0, n),
        };
        out.extend_from_slice(&wire::text_frame(&request));
        (to as u32, owed as u32)
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
            departures: 0,
            send_lag_p99: 0.0,
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
        traffic: mesh.traffic,
        first: NEXT_NUMBER.get(),
        sent: RefCell::new(Vec::new()),
        allow_departures: mesh.departures,
        departures: Cell::new(0),
        delivered: Cell::new(0),
        outstanding: Cell::new(0),
        in_flight,
        wake_sender: Notify::new(),
        recording: Cell::new(false),
        stop: Cell::new(false),
        finished: Notify::new(),
        latencies: RefCell::new(Vec::new()),
        send_lags: RefCell::new(Vec::new()),
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
        .enumerate()
        .map(|(i, conn)| tokio::task::spawn_local(member(conn, i, shared.clone())))
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
    loadgen::drain(|| shared.outstanding.get() == 0).await;
    // A little longer, so that a duplicate still on its way is read (and is an error) here.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shared.finished.notify_waiters();
    let conns = loadgen::join_within(members, Duration::from_secs(10)).await;
    NEXT_NUMBER.set(shared.first + shared.sent.borrow().len());
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
        departures: shared.departures.get(),
        send_lag_p99: crate::report::percentile(&mut shared.send_lags.take(), 99.0).unwrap_or(0.0),
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
    // `due`: when the messages were due, at a fixed rate.
    let mut write =
        async |sender: usize, count: usize, due: Option<Instant>, addresser: &mut Addresser| {
            bytes.clear();
            let at = Instant::now();
            if let Some(due) = due
                && shared.recording.get()
            {
                let lag = at.saturating_duration_since(due).as_secs_f64() * 1000.0;
                shared.send_lags.borrow_mut().push(lag);
            }
            for _ in 0..count {
                let number = shared.first + shared.sent.borrow().len();
                let (to, owed) = addresser.message(sender, number, &mut bytes);
                shared.sent.borrow_mut().push(Sent {
                    at,
                    to,
                    owed,
                    received: 0,
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
                    let due = start + Duration::from_secs_f64(sent as f64 / per_sec);
                    outcome = write(sender, 1, Some(due), &mut addresser).await;
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
            if let Err(e) = write(sender, count, None, &mut addresser).await {
                break Err(e);
            }
        },
    };
    if let Err(e) = result {
        shared.errors.push(format!("send: {e}"));
    }
}

async fn member(mut conn: Conn, me: usize, shared: Rc<Shared>) -> Conn {
    let finished = shared.finished.notified();
    tokio::pin!(finished);
    let mut replies = Vec::new();
    loop {
        tokio::select! {
            biased;
            () = &mut finished => return conn,
            read = conn.read_some(|event| match event {
                Event::Expected { head } => {
                    if shared.deliver(head, Instant::now(), me) {
                        return;
                    }
                    if shared.allow_departures && shared.dialect.is_departure(head) {
                        shared.departures.set(shared.departures.get() + 1);
                        return;
                    }
                    // Sorted like a frame that was not counted (Engine.IO's ping `2` is a
                    // text frame too).
                    let text = Event::Other { opcode: wire::TEXT, fin: true, len: head.len() as u64, payload: head };
                    loadgen::on_other(shared.dialect, text, &mut replies, &shared.errors);
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
