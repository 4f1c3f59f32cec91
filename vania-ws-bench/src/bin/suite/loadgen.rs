//! The workloads: opening connections in parallel, pipelined echo, and room broadcast with a
//! window of broadcasts in flight. Everything runs on one thread (a `LocalSet` on a
//! current-thread runtime, pinned to its own core), so shared counters are plain `Cell`s.
//!
//! Every workload counts what it sent and what came back, and a run ends with a drain: the
//! senders stop, and every reply or delivery still in flight must arrive. What does not is
//! reported as missing, which fails the round.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::conn::Conn;
use crate::dialect::{Dialect, Unexpected};
use crate::server::{self, Server};
use crate::wire::{self, Event};

/// How long the drain after a run may take before what is still in flight counts as missing
/// (long: a busy machine must not turn slowness into a missing message).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong during a workload: the first few errors, and how many in all.
#[derive(Default)]
pub(crate) struct Errors {
    first: RefCell<Vec<String>>,
    count: Cell<u64>,
}

impl Errors {
    pub(crate) fn push(&self, error: impl Into<String>) {
        self.count.set(self.count.get() + 1);
        let mut first = self.first.borrow_mut();
        if first.len() < 5 {
            first.push(error.into());
        }
    }

    /// `Err` with a summary when anything went wrong.
    pub(crate) fn result(&self) -> Result<(), String> {
        match self.count.get() {
            0 => Ok(()),
            n => Err(format!("{n} error(s): {}", self.first.borrow().join("; "))),
        }
    }
}

/// The measured window of a run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Window {
    pub(crate) secs: f64,
    /// Messages received by the load generator (echo replies, broadcast deliveries).
    pub(crate) work: u64,
    pub(crate) server_cpu: f64,
    pub(crate) loadgen_cpu: f64,
    /// CPU the whole machine used meanwhile (to see what other processes took).
    pub(crate) machine_cpu: f64,
}

impl Window {
    pub(crate) fn per_server_cpu_sec(&self) -> f64 {
        self.work as f64 / self.server_cpu.max(1e-9)
    }

    /// What processes other than the server and the load generator used, in cores.
    pub(crate) fn others(&self) -> f64 {
        (self.machine_cpu - self.server_cpu - self.loadgen_cpu).max(0.0) / self.secs
    }

    pub(crate) fn per_sec(&self) -> f64 {
        self.work as f64 / self.secs.max(1e-9)
    }

    /// Why the window does not measure the server, if it does not. A saturated load
    /// generator may be what limits the rate; a server below 80% of its core in a throughput
    /// window was waiting for work (or for a core taken by something else). A latency window
    /// has no busy server by design; there, other processes taking more than half a core
    /// make it invalid, since they delay both the server and the load generator.
    pub(crate) fn invalid(&self, kind: WindowKind) -> Option<String> {
        let loadgen = self.loadgen_cpu / self.secs;
        let server = self.server_cpu / self.secs;
        let others = self.others();
        if loadgen > 0.95 {
            Some(format!(
                "load generator saturated ({:.0}% of its core)",
                loadgen * 100.0
            ))
        } else if kind == WindowKind::Throughput && server < 0.80 {
            Some(format!(
                "server not busy ({:.0}% of its core)",
                server * 100.0
            ))
        } else if kind == WindowKind::Latency && others > 0.5 {
            Some(format!(
                "machine busy (other processes took {:.0}% of a core)",
                others * 100.0
            ))
        } else {
            None
        }
    }
}

/// What a window measures, for its validity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowKind {
    /// Work per server CPU-second: the server must be busy.
    Throughput,
    /// Completion times with one broadcast in flight.
    Latency,
}

/// Timing of a run: warm-up, then the measured window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phases {
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
}

/// Takes the snapshots of a measured window while a workload runs.
pub(crate) struct Meter<'a> {
    pub(crate) server: &'a Server,
    pub(crate) ticks: f64,
    pub(crate) counter: &'a Cell<u64>,
}

impl Meter<'_> {
    /// Waits out the warm-up, then measures for `phases.measure` with `recording` set.
    pub(crate) async fn run(&self, phases: Phases, recording: &Cell<bool>) -> io::Result<Window> {
        tokio::time::sleep(phases.warmup).await;
        let (t0, w0, s0, l0, m0) = self.snapshot()?;
        recording.set(true);
        tokio::time::sleep(phases.measure).await;
        recording.set(false);
        let (t1, w1, s1, l1, m1) = self.snapshot()?;
        Ok(Window {
            secs: (t1 - t0).as_secs_f64(),
            work: w1 - w0,
            server_cpu: s1 - s0,
            loadgen_cpu: l1 - l0,
            machine_cpu: m1 - m0,
        })
    }

    fn snapshot(&self) -> io::Result<(Instant, u64, f64, f64, f64)> {
        Ok((
            Instant::now(),
            self.counter.get(),
            self.server.cpu_secs()?,
            server::self_cpu_secs(self.ticks),
            server::machine_cpu_secs(self.ticks),
        ))
    }
}

/// The result of opening connections.
pub(crate) struct Ramp {
    pub(crate) conns: Vec<Conn>,
    pub(crate) secs: f64,
    pub(crate) server_cpu: f64,
}

/// What each connection of a ramp does after its greeting.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Setup {
    pub(crate) rooms: Rooms,
    /// Registers the name `i` (the raw dialect's way to be reachable by a direct message;
    /// the other dialects' servers give every client an id).
    pub(crate) named: bool,
}

impl Setup {
    pub(crate) const NONE: Setup = Setup {
        rooms: Rooms::None,
        named: false,
    };
    pub(crate) const BENCH: Setup = Setup {
        rooms: Rooms::Bench,
        named: false,
    };
}

/// The room connection `i` of a ramp joins, if any.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Rooms {
    #[default]
    None,
    /// [`crate::dialect::ROOM`], for all of them.
    Bench,
    /// `r0`, `r1`, …: rooms of `size` connections, in the order of the ramp.
    Groups(usize),
}

impl Rooms {
    pub(crate) fn of(self, i: usize) -> Option<String> {
        match self {
            Rooms::None => None,
            Rooms::Bench => Some(crate::dialect::ROOM.to_owned()),
            Rooms::Groups(size) => Some(group_room(i / size)),
        }
    }
}

/// The name of group room `r`.
pub(crate) fn group_room(r: usize) -> String {
    format!("r{r}")
}

/// Opens `count` connections to `server`, `parallel` handshakes at a time; each is upgraded,
/// greeted and set up as `setup` says. They are returned in the order of their index `i`.
/// The first error stops the ramp.
pub(crate) async fn ramp(
    server: &Server,
    count: usize,
    parallel: usize,
    setup: Setup,
) -> io::Result<Ramp> {
    let next = Rc::new(Cell::new(0usize));
    let failed: Rc<RefCell<Option<io::Error>>> = Rc::default();
    let cpu0 = server.cpu_secs()?;
    let start = Instant::now();
    let workers: Vec<JoinHandle<Vec<(usize, Conn)>>> = (0..parallel.min(count))
        .map(|_| {
            let (next, failed) = (next.clone(), failed.clone());
            let (port, dialect) = (server.port, server.dialect);
            tokio::task::spawn_local(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.get();
                    if i >= count || failed.borrow().is_some() {
                        return mine;
                    }
                    next.set(i + 1);
                    match open(port, dialect, setup, i).await {
                        Ok(conn) => mine.push((i, conn)),
                        Err(e) => {
                            failed.borrow_mut().get_or_insert(io::Error::new(
                                e.kind(),
                                format!("connection {i}: {e}"),
                            ));
                            return mine;
                        }
                    }
                }
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(count);
    for worker in workers {
        conns.extend(worker.await.map_err(io::Error::other)?);
    }
    conns.sort_unstable_by_key(|(i, _)| *i);
    let conns = conns.into_iter().map(|(_, conn)| conn).collect();
    let secs = start.elapsed().as_secs_f64();
    let server_cpu = server.cpu_secs()? - cpu0;
    if let Some(e) = failed.borrow_mut().take() {
        return Err(e);
    }
    Ok(Ramp {
        conns,
        secs,
        server_cpu,
    })
}

async fn open(port: u16, dialect: Dialect, setup: Setup, i: usize) -> io::Result<Conn> {
    // Each step has its own deadline, so that a failure says where the server got stuck.
    let mut conn = within(
        "the TCP connect and the upgrade",
        Conn::open(port, dialect.path()),
    )
    .await?;
    let name = setup.named.then_some(i);
    within("the greeting", dialect.greet(&mut conn, name)).await?;
    if let Some(room) = setup.rooms.of(i) {
        dialect.join(&mut conn, &room).await?;
    }
    Ok(conn)
}

pub(crate) async fn within<T>(step: &str, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(Duration::from_secs(30), f).await {
        Ok(result) => result.map_err(|e| io::Error::new(e.kind(), format!("{step}: {e}"))),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{step} took over 30 s"),
        )),
    }
}

/// Switches every connection to counting frames of `reply_len` (or, without one, every text
/// frame with the head of its payload). Frames left over from the setup are sorted like any
/// uncounted frame: keep-alives (socketioxide pings once right after the connect) are
/// answered, anything else is an error.
pub(crate) async fn start_counting(
    conns: &mut [Conn],
    reply_len: Option<usize>,
    dialect: Dialect,
    errors: &Errors,
) {
    for conn in conns {
        let left = match reply_len {
            Some(len) => conn.start_counting(&[len as u64]),
            None => conn.start_counting_any_text(),
        };
        for frame in left {
            let unexpected = dialect.unexpected(frame.opcode, frame.fin, frame.len, &frame.payload);
            match unexpected {
                Unexpected::Reply(reply) if reply.is_empty() => {}
                Unexpected::Reply(reply) => {
                    if let Err(e) = conn.send(&reply).await {
                        errors.push(format!("a keep-alive answer: {e}"));
                    }
                }
                Unexpected::Error(e) => errors.push(format!("left from the setup: {e}")),
            }
        }
    }
}

/// Handles a frame that was not counted: answers keep-alives, records the rest.
pub(crate) fn on_other(
    dialect: Dialect,
    event: Event<'_>,
    replies: &mut Vec<Vec<u8>>,
    errors: &Errors,
) {
    if let Event::Other {
        opcode,
        fin,
        len,
        payload,
    } = event
    {
        match dialect.unexpected(opcode, fin, len, payload) {
            Unexpected::Reply(reply) if reply.is_empty() => {}
            Unexpected::Reply(reply) => replies.push(reply),
            Unexpected::Error(error) => errors.push(error),
        }
    }
}

/// An echo run's parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Echo {
    pub(crate) payload: usize,
    pub(crate) in_flight: usize,
}

/// Pipelined echo: every connection keeps `in_flight` requests outstanding and sends one
/// more for every reply. Work is replies received.
pub(crate) async fn echo(
    server: &Server,
    ticks: f64,
    mut conns: Vec<Conn>,
    echo: Echo,
    phases: Phases,
) -> (Vec<Conn>, io::Result<Window>, Result<(), String>) {
    let dialect = server.dialect;
    let text = filler('e', echo.payload);
    let request = wire::text_frame(&dialect.echo(&text));
    let reply_len = dialect.echo(&text).len();
    let shared = Rc::new(EchoShared {
        batch: request.repeat(echo.in_flight),
        frame_len: request.len(),
        in_flight: echo.in_flight,
        dialect,
        stop: Cell::new(false),
        replies: Cell::new(0),
        outstanding: Cell::new(0),
        errors: Errors::default(),
    });
    start_counting(&mut conns, Some(reply_len), dialect, &shared.errors).await;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::task::spawn_local(echo_conn(conn, shared.clone())))
        .collect();
    let meter = Meter {
        server,
        ticks,
        counter: &shared.replies,
    };
    let window = meter.run(phases, &Cell::new(false)).await;
    shared.stop.set(true);
    let conns = join_within(tasks, DRAIN_TIMEOUT).await;
    if shared.outstanding.get() != 0 {
        shared.errors.push(format!(
            "{} echo replies missing after the drain",
            shared.outstanding.get()
        ));
    }
    (conns, window, shared.errors.result())
}

struct EchoShared {
    /// `in_flight` copies of the request, encoded and masked once.
    batch: Vec<u8>,
    frame_len: usize,
    in_flight: usize,
    dialect: Dialect,
    stop: Cell<bool>,
    replies: Cell<u64>,
    /// Requests sent and not answered yet, over all connections.
    outstanding: Cell<i64>,
    errors: Errors,
}

impl EchoShared {
    async fn send(&self, conn: &Conn, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let k = n.min(self.in_flight);
            conn.send(&self.batch[..k * self.frame_len]).await?;
            self.outstanding.set(self.outstanding.get() + k as i64);
            n -= k;
        }
        Ok(())
    }
}

async fn echo_conn(mut conn: Conn, shared: Rc<EchoShared>) -> Conn {
    let mut pending: i64 = 0;
    if let Err(e) = shared.send(&conn, shared.in_flight).await {
        shared.errors.push(format!("echo send: {e}"));
        return conn;
    }
    pending += shared.in_flight as i64;
    let mut replies = Vec::new();
    loop {
        let mut n = 0usize;
        let read = conn
            .read_some(|event| match event {
                Event::Expected { .. } => n += 1,
                other => on_other(shared.dialect, other, &mut replies, &shared.errors),
            })
            .await;
        shared.replies.set(shared.replies.get() + n as u64);
        shared.outstanding.set(shared.outstanding.get() - n as i64);
        pending -= n as i64;
        let result = async {
            read?;
            for reply in replies.drain(..) {
                conn.send(&reply).await?;
            }
            if !shared.stop.get() {
                shared.send(&conn, n).await?;
                pending += n as i64;
            }
            io::Result::Ok(())
        }
        .await;
        if let Err(e) = result {
            shared.errors.push(format!("echo: {e}"));
            return conn;
        }
        if shared.stop.get() && pending <= 0 {
            return conn;
        }
    }
}

/// A broadcast run's parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Broadcast {
    pub(crate) payload: usize,
    /// Broadcasts in flight: a new one is sent when all but `window - 1` broadcasts' worth
    /// of deliveries have arrived.
    pub(crate) window: usize,
}

/// The result of a broadcast run.
pub(crate) struct BroadcastRun {
    pub(crate) window: io::Result<Window>,
    /// With a window of 1: for each broadcast sent in the measured window, the time from
    /// its send to its last delivery.
    pub(crate) completions: Vec<Duration>,
    pub(crate) errors: Result<(), String>,
}

/// Room broadcast: the first connection sends to the room, every connection (the sender
/// included) is a member and counts its deliveries. Work is deliveries.
pub(crate) async fn broadcast(
    server: &Server,
    ticks: f64,
    mut conns: Vec<Conn>,
    params: Broadcast,
    phases: Phases,
) -> (Vec<Conn>, BroadcastRun) {
    if conns.is_empty() {
        let run = BroadcastRun {
            window: Err(io::Error::other("a broadcast needs at least one member")),
            completions: Vec::new(),
            errors: Ok(()),
        };
        return (conns, run);
    }
    let dialect = server.dialect;
    let (request, delivery) = dialect.broadcast(&filler('B', params.payload));
    let request = wire::text_frame(&request);
    let members = conns.len() as u64;
    let shared = Rc::new(BroadcastShared {
        dialect,
        members,
        window: params.window as u64,
        delivered: Cell::new(0),
        sent: Cell::new(0),
        wake_at: Cell::new(0),
        wake_sender: Notify::new(),
        stop: Cell::new(false),
        finished: Notify::new(),
        recording: Cell::new(false),
        send_times: RefCell::new(Vec::new()),
        completions: RefCell::new(Vec::new()),
        errors: Errors::default(),
    });
    start_counting(&mut conns, Some(delivery.len()), dialect, &shared.errors).await;
    let sender_stream = conns[0].stream.clone();
    let members_tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::task::spawn_local(member(conn, shared.clone())))
        .collect();
    let sender = {
        let shared = shared.clone();
        let batch = request.repeat(params.window);
        let frame_len = request.len();
        tokio::task::spawn_local(async move {
            loop {
                if shared.stop.get() {
                    return;
                }
                let s = &shared;
                let outstanding = s.sent.get() * s.members - s.delivered.get();
                let in_flight = outstanding.div_ceil(s.members);
                let k = s.window.saturating_sub(in_flight);
                if k > 0 {
                    if s.window == 1 {
                        // One at a time: rest as long as the last broadcast took before the
                        // next, so that the load generator, which reads every delivery, is
                        // idle half the time and its own work does not become the latency.
                        let took = s.send_times.borrow().last().map(Instant::elapsed);
                        if let Some(took) = took {
                            let pause =
                                took.clamp(Duration::from_millis(1), Duration::from_millis(200));
                            tokio::time::sleep(pause).await;
                            if s.stop.get() {
                                return;
                            }
                        }
                        s.send_times.borrow_mut().push(Instant::now());
                    }
                    s.sent.set(s.sent.get() + k);
                    let bytes = &batch[..k as usize * frame_len];
                    if let Err(e) = crate::conn::write_all(&sender_stream, bytes).await {
                        s.errors.push(format!("broadcast send: {e}"));
                        return;
                    }
                }
                // Woken when the deliveries allow one more broadcast in flight.
                s.wake_at
                    .set((s.sent.get() + 1).saturating_sub(s.window) * s.members);
                if s.delivered.get() < s.wake_at.get() {
                    s.wake_sender.notified().await;
                }
            }
        })
    };
    let meter = Meter {
        server,
        ticks,
        counter: &shared.delivered,
    };
    let window = meter.run(phases, &shared.recording).await;
    shared.stop.set(true);
    shared.wake_sender.notify_one();
    let _ = sender.await;
    // Every member must now receive every broadcast sent.
    let expected = shared.sent.get() * members;
    drain(|| shared.delivered.get() >= expected).await;
    shared.finished.notify_waiters();
    let results = join_within(members_tasks, Duration::from_secs(10)).await;
    let mut conns = Vec::with_capacity(results.len());
    let mut short = 0u64;
    for (conn, received) in results {
        short += shared.sent.get().saturating_sub(received);
        conns.push(conn);
    }
    if shared.delivered.get() != expected || short > 0 {
        shared.errors.push(format!(
            "{} of {expected} deliveries missing after the drain ({short} short on members' counts)",
            expected.saturating_sub(shared.delivered.get())
        ));
    }
    let completions = shared.completions.take();
    (
        conns,
        BroadcastRun {
            window,
            completions,
            errors: shared.errors.result(),
        },
    )
}

struct BroadcastShared {
    dialect: Dialect,
    members: u64,
    window: u64,
    delivered: Cell<u64>,
    sent: Cell<u64>,
    /// The delivery count at which the sender may send again.
    wake_at: Cell<u64>,
    wake_sender: Notify,
    stop: Cell<bool>,
    /// The drain is over: members return their connection.
    finished: Notify,
    recording: Cell<bool>,
    /// Send instants of the broadcasts (window 1 only), by broadcast number.
    send_times: RefCell<Vec<Instant>>,
    completions: RefCell<Vec<Duration>>,
    errors: Errors,
}

async fn member(mut conn: Conn, shared: Rc<BroadcastShared>) -> (Conn, u64) {
    let finished = shared.finished.notified();
    tokio::pin!(finished);
    let mut received = 0u64;
    let mut replies = Vec::new();
    loop {
        let mut n = 0u64;
        tokio::select! {
            biased;
            () = &mut finished => return (conn, received),
            read = conn.read_some(|event| match event {
                Event::Expected { .. } => n += 1,
                other => on_other(shared.dialect, other, &mut replies, &shared.errors),
            }) => {
                if let Err(e) = read {
                    shared.errors.push(format!("member: {e}"));
                    return (conn, received);
                }
            }
        }
        received += n;
        let s = &shared;
        let before = s.delivered.get();
        s.delivered.set(before + n);
        if s.window == 1 && n > 0 && s.delivered.get().is_multiple_of(s.members) {
            // This read completed broadcast number `delivered / members - 1`.
            let index = (s.delivered.get() / s.members - 1) as usize;
            if s.recording.get()
                && let Some(sent_at) = s.send_times.borrow().get(index)
            {
                s.completions.borrow_mut().push(sent_at.elapsed());
            }
        }
        if n > 0 && s.delivered.get() >= s.wake_at.get() {
            s.wake_sender.notify_one();
        }
        for reply in replies.drain(..) {
            if let Err(e) = conn.send(&reply).await {
                shared.errors.push(format!("member reply: {e}"));
            }
        }
    }
}

/// Waits until `drained` holds, or for [`DRAIN_TIMEOUT`]: whatever is still owed then is
/// missing. (The deliveries are counted by the members' tasks; this only looks.)
pub(crate) async fn drain(drained: impl Fn() -> bool) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while !drained() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits the tasks until `timeout`; those still running then are aborted (their outcome
/// is left out, and the caller's counters show what they missed).
pub(crate) async fn join_within<T: 'static>(
    tasks: Vec<JoinHandle<T>>,
    timeout: Duration,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut done = Vec::with_capacity(tasks.len());
    for mut task in tasks {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(value)) => done.push(value),
            Ok(Err(_)) => {}
            Err(_) => task.abort(),
        }
    }
    done
}

/// `len` bytes of text: `first`, then lowercase letters (nothing a JSON string escapes).
pub(crate) fn filler(first: char, len: usize) -> String {
    let mut text = String::with_capacity(len);
    text.push(first);
    text.extend(
        (b'a'..=b'z')
            .cycle()
            .take(len.saturating_sub(1))
            .map(char::from),
    );
    text
}

/// What a churn did.
pub(crate) struct Churned {
    /// Clients that connected, joined and left.
    pub(crate) done: u64,
    /// How long the churn ran.
    pub(crate) secs: f64,
    pub(crate) errors: Result<(), String>,
}

/// Until `stop` is set: `per_sec` clients a second connect (on the dialect's probe path, so
/// that no disconnect handler of ours sends anything to the members of a run), join a room
/// `c0`…`c63`, and leave, every other one with a close frame, the rest by dropping the TCP
/// connection. At most 256 are in progress at once.
pub(crate) async fn churn(
    port: u16,
    dialect: Dialect,
    per_sec: f64,
    stop: Rc<Cell<bool>>,
) -> Churned {
    let errors = Rc::new(Errors::default());
    let done = Rc::new(Cell::new(0u64));
    let in_progress = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut started = 0u64;
    while !stop.get() {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * per_sec) as u64;
        while started < due && in_progress.get() < 256 {
            started += 1;
            in_progress.set(in_progress.get() + 1);
            let (errors, done, in_progress) = (errors.clone(), done.clone(), in_progress.clone());
            let k = started;
            tokio::task::spawn_local(async move {
                match churn_one(port, dialect, k).await {
                    Ok(()) => done.set(done.get() + 1),
                    Err(e) => errors.push(format!("churn: {e}")),
                }
                in_progress.set(in_progress.get() - 1);
            });
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Each step of a churner has its own deadline, so this ends.
    while in_progress.get() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Churned {
        done: done.get(),
        secs,
        errors: errors.result(),
    }
}

async fn churn_one(port: u16, dialect: Dialect, k: u64) -> io::Result<()> {
    let mut conn = within(
        "the TCP connect and the upgrade",
        Conn::open(port, dialect.probe_path()),
    )
    .await?;
    within("the greeting", dialect.greet(&mut conn, None)).await?;
    within("the join", dialect.join(&mut conn, &format!("c{}", k % 64))).await?;
    if k.is_multiple_of(2) {
        conn.send(&wire::masked_frame(wire::CLOSE, &1000u16.to_be_bytes()))
            .await?;
    }
    Ok(())
}
