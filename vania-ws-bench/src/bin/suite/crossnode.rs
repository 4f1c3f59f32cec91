//! Scenario `crossnode`: a room broadcast across server processes sharing a Redis, against
//! one process holding the same room, measured in the same run.
//!
//! Set-ups, in a rotating order each round:
//! - **one node**: one `example-demo` holds every member of room `r`, and the sender;
//! - **two nodes over Redis**: two `example-demo` processes share a `redis-server`; the
//!   members are split half and half, and the sender is on the first;
//! - **two nodes over a Redis Cluster**: the same, over three masters (sharded pub/sub), each
//!   node given a different master as its seed.
//!
//! Every server process (the demos and every Redis) is pinned to the servers' core, and the
//! load generator is on the other. Per set-up it reports the latency of one `room-message` to
//! every member (one broadcast at a time: p50, p99), and deliveries per server CPU-second
//! with [`IN_FLIGHT`] broadcasts in flight: for all server processes together (Redis
//! included), and for each node apart (its members' deliveries over its own CPU time).

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use vania_ws_test_redis::{RedisCluster, RedisServer};

use crate::SERVER_CORE;
use crate::peers::{Paths, build_bin};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Broadcasts in flight during the throughput part.
const IN_FLIGHT: usize = 8;
/// How long the members may go without receiving anything before the run fails.
const STALL: Duration = Duration::from_secs(10);

/// What one run measures.
pub(crate) struct CrossPlan {
    pub(crate) rooms: Vec<usize>,
    /// Broadcasts timed one at a time, per set-up and round.
    pub(crate) latency_sends: usize,
    /// Deliveries for the throughput figure, per set-up and round: enough CPU time for the
    /// clock's 10 ms ticks not to matter (2,000,000 is about 3 s).
    pub(crate) deliveries: usize,
    pub(crate) rounds: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum SetUp {
    One,
    Redis,
    Cluster,
}

impl SetUp {
    const ALL: [SetUp; 3] = [SetUp::One, SetUp::Redis, SetUp::Cluster];

    fn name(self) -> &'static str {
        match self {
            SetUp::One => "one node",
            SetUp::Redis => "two nodes over Redis",
            SetUp::Cluster => "two nodes over a Redis Cluster (3 masters)",
        }
    }
}

/// What the nodes share.
enum Broker {
    None,
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Broker {
    fn start(set_up: SetUp) -> Result<Broker, String> {
        let broker = match set_up {
            SetUp::One => return Ok(Broker::None),
            SetUp::Redis => Broker::Single(RedisServer::start()),
            SetUp::Cluster => Broker::Cluster(RedisCluster::start()),
        };
        for pid in broker.pids() {
            pin(pid)?;
        }
        Ok(broker)
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Broker::None => Vec::new(),
            Broker::Single(redis) => redis.pid().into_iter().collect(),
            Broker::Cluster(cluster) => cluster.pids(),
        }
    }

    /// The settings of node `i`.
    fn env(&self, i: usize) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("REDIS_REQUIRED", "true".to_owned()),
            ("REDIS_PREFIX", "bench".to_owned()),
        ];
        match self {
            Broker::None => return Vec::new(),
            Broker::Single(redis) => env.push(("REDIS_URL", redis.url())),
            Broker::Cluster(cluster) => {
                env.push(("REDIS_URL", cluster.seed(i % 3)));
                env.push(("REDIS_CLUSTER", "true".to_owned()));
            }
        }
        env
    }
}

/// Pins every thread of process `pid` to the servers' core.
fn pin(pid: u32) -> Result<(), String> {
    let mut set = CpuSet::new();
    set.set(SERVER_CORE).map_err(|e| e.to_string())?;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("cannot list the threads of {pid}: {e}"))?;
    for task in tasks.flatten() {
        if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
            sched_setaffinity(Pid::from_raw(tid), &set)
                .map_err(|e| format!("cannot pin thread {tid} of {pid}: {e}"))?;
        }
    }
    Ok(())
}

fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    vania_ws_bench::cpu_ticks(&format!("/proc/{pid}/stat"))
        .map_or(0.0, |(user, system)| (user + system) as f64 / ticks)
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A demo process, killed when dropped.
struct Demo {
    child: Child,
    port: u16,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start(bin: &std::path::Path, env: Vec<(&'static str, String)>) -> Result<Demo, String> {
        let port = free_port()?;
        let child = Command::new("taskset")
            .args(["-c", &SERVER_CORE.to_string()])
            .arg(bin)
            .env("APP_HOST", "127.0.0.1")
            .env("APP_PORT", port.to_string())
            .env("WS_MAX_CONNECTIONS", "30000")
            .env("WS_RATE_LIMIT_PER_SEC", "0")
            .env("WS_SEND_QUEUE_BYTES", "8388608")
            .env("RUST_LOG", "warn")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER")
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start example-demo under taskset: {e}"))?;
        let demo = Demo { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("example-demo did not listen on {port} within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(demo)
    }
}

async fn connect(port: u16) -> Result<Ws, String> {
    let (mut ws, _) = connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .map_err(|e| format!("cannot connect to {port}: {e}"))?;
    // `connected`
    ws.next()
        .await
        .ok_or("closed before `connected`")?
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn join(ws: &mut Ws) -> Result<(), String> {
    ws.send(Message::text(r#"{"event":"join-room","room":"r","id":1}"#))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let frame = ws.next().await.ok_or("closed before the join's ack")?;
        if frame
            .map_err(|e| e.to_string())?
            .to_text()
            .is_ok_and(|t| t.contains(r#""ack""#))
        {
            return Ok(());
        }
    }
}

async fn send(sender: &mut Ws, message: &Message) -> Result<(), String> {
    sender
        .send(message.clone())
        .await
        .map_err(|e| format!("the sender's connection: {e}"))
}

/// The members' readers: one task per member counts its room messages into one total.
struct Readers {
    received: Rc<Cell<usize>>,
    /// Each member's own count, checked at the end: the total alone would let a duplicate
    /// to one member hide a delivery missing at another.
    each: Rc<Vec<Cell<usize>>>,
    progress: Rc<Notify>,
    members: usize,
    expected: usize,
}

impl Readers {
    fn spawn(members: Vec<Ws>) -> Readers {
        let received = Rc::new(Cell::new(0));
        let progress = Rc::new(Notify::new());
        let count = members.len();
        let each: Rc<Vec<Cell<usize>>> = Rc::new((0..count).map(|_| Cell::new(0)).collect());
        for (i, mut ws) in members.into_iter().enumerate() {
            let (received, progress, each) = (received.clone(), progress.clone(), each.clone());
            tokio::task::spawn_local(async move {
                while let Some(Ok(frame)) = ws.next().await {
                    if frame.to_text().is_ok_and(|t| t.contains("room-message")) {
                        received.set(received.get() + 1);
                        each[i].set(each[i].get() + 1);
                        progress.notify_one();
                    }
                }
            });
        }
        Readers {
            received,
            each,
            progress,
            members: count,
            expected: 0,
        }
    }

    /// Whether every member received exactly as many room messages as were sent.
    fn check_each(&self) -> Result<(), String> {
        let sent = self.expected / self.members.max(1);
        match self.each.iter().position(|got| got.get() != sent) {
            Some(i) => Err(format!(
                "member {i} received {} room messages of {sent}",
                self.each[i].get()
            )),
            None => Ok(()),
        }
    }

    /// Waits until every member has received one more room message; an error when they
    /// received nothing for [`STALL`] (a delivery went missing).
    async fn one_more_each(&mut self) -> Result<(), String> {
        self.expected += self.members;
        let mut last = (self.received.get(), Instant::now());
        while self.received.get() < self.expected {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.progress.notified()).await;
            let now = self.received.get();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > STALL {
                return Err(format!(
                    "{now} of {} room messages arrived; none for {STALL:?}",
                    self.expected
                ));
            }
        }
        Ok(())
    }
}

struct Figures {
    p50: f64,
    p99: f64,
    /// Deliveries per CPU-second of every server process together.
    total: f64,
    /// Per node: its members' deliveries per its own CPU-second.
    per_node: Vec<f64>,
    /// The brokers' share of the servers' CPU time.
    broker_share: f64,
}

/// One set-up and room size: node 0 holds the sender; the members are spread over the nodes.
async fn measure(
    set_up: SetUp,
    demo_bin: &std::path::Path,
    plan: &CrossPlan,
    members: usize,
    ticks: f64,
) -> Result<Figures, String> {
    let broker = Broker::start(set_up)?;
    let count = if set_up == SetUp::One { 1 } else { 2 };
    let nodes = (0..count)
        .map(|i| Demo::start(demo_bin, broker.env(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sender = connect(nodes[0].port).await?;
    let mut clients = Vec::with_capacity(members);
    for i in 0..members {
        let mut ws = connect(nodes[i % count].port).await?;
        join(&mut ws).await?;
        clients.push(ws);
    }
    let message = Message::text(format!(
        r#"{{"event":"room-message","payload":{{"room":"r","message":"{}"}}}}"#,
        "x".repeat(64)
    ));
    let mut readers = Readers::spawn(clients);
    // Warm-up, and a check that every member is reached.
    for _ in 0..20 {
        send(&mut sender, &message).await?;
        readers.one_more_each().await?;
    }

    let mut latencies = Vec::with_capacity(plan.latency_sends);
    for _ in 0..plan.latency_sends {
        let sent = Instant::now();
        send(&mut sender, &message).await?;
        readers.one_more_each().await?;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);

    let node_pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
    let broker_pids = broker.pids();
    let cpu = |pids: &[u32]| {
        pids.iter()
            .map(|&p| cpu_seconds(p, ticks))
            .collect::<Vec<_>>()
    };
    let (nodes_before, broker_before) = (cpu(&node_pids), cpu(&broker_pids));
    let sends = (plan.deliveries / members).max(1);
    let mut in_flight = VecDeque::new();
    let (mut sent, mut done) = (0, 0);
    while done < sends {
        while sent < sends && in_flight.len() < IN_FLIGHT {
            send(&mut sender, &message).await?;
            in_flight.push_back(sent);
            sent += 1;
        }
        // The oldest broadcast in flight, to every member.
        readers.one_more_each().await?;
        in_flight.pop_front();
        done += 1;
    }
    let spent = |after: Vec<f64>, before: Vec<f64>| -> Vec<f64> {
        after.iter().zip(&before).map(|(a, b)| a - b).collect()
    };
    let node_cpu = spent(cpu(&node_pids), nodes_before);
    // Every broadcast was awaited; a last barrier lets a late duplicate show too.
    send(&mut sender, &message).await?;
    readers.one_more_each().await?;
    readers.check_each()?;
    let broker_cpu: f64 = spent(cpu(&broker_pids), broker_before).iter().sum();
    let all = node_cpu.iter().sum::<f64>() + broker_cpu;
    let per_node = node_cpu
        .iter()
        .enumerate()
        .map(|(i, cpu)| {
            // Node i holds members i, i + count, …
            let on_node = (members + count - 1 - i) / count;
            (sends * on_node) as f64 / cpu.max(1e-9)
        })
        .collect();
    Ok(Figures {
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        total: (sends * members) as f64 / all.max(1e-9),
        per_node,
        broker_share: broker_cpu / all.max(1e-9),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs the scenario; the markdown section, or the first error (a missing delivery, a
/// server that did not start).
pub(crate) fn run(paths: &Paths, plan: &CrossPlan, ticks: f64) -> Result<String, String> {
    build_bin(paths, "example-demo", "example-demo")?;
    let demo_bin = paths.target.join("release").join("example-demo");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut out = format!(
        "### Cross-node fan-out over Redis ({} round(s), medians)\n\n\
         A 64 B `room-message` from a client of the first node. Latency: one broadcast at a \
         time, {} times, until every member has it. Throughput: {} deliveries with {IN_FLIGHT} \
         broadcasts in flight, over the CPU time of every server process (Redis included), \
         and per node over its own.\n\n\
         | room | set-up | p50 of one broadcast | p99 | deliveries per server CPU-second | per node (1 / 2) | Redis's share of the CPU |\n\
         |---|---|---|---|---|---|---|\n",
        plan.rounds, plan.latency_sends, plan.deliveries
    );
    for &members in &plan.rooms {
        let mut figures: Vec<Vec<Figures>> = SetUp::ALL.iter().map(|_| Vec::new()).collect();
        for round in 0..plan.rounds {
            for k in 0..SetUp::ALL.len() {
                let which = (round + k) % SetUp::ALL.len();
                let set_up = SetUp::ALL[which];
                let got = tokio::task::LocalSet::new()
                    .block_on(&runtime, measure(set_up, &demo_bin, plan, members, ticks))
                    .map_err(|e| format!("crossnode, {}, room of {members}: {e}", set_up.name()))?;
                figures[which].push(got);
            }
            eprintln!(
                "suite: crossnode, room of {members}: round {} of {} done",
                round + 1,
                plan.rounds
            );
        }
        let rows: Vec<[f64; 6]> = figures
            .iter()
            .map(|runs| {
                let m = |f: &dyn Fn(&Figures) -> f64| median(runs.iter().map(f).collect());
                [
                    m(&|f| f.p50),
                    m(&|f| f.p99),
                    m(&|f| f.total),
                    m(&|f| f.per_node[0]),
                    m(&|f| f.per_node.get(1).copied().unwrap_or(f64::NAN)),
                    m(&|f| f.broker_share),
                ]
            })
            .collect();
        for (set_up, row) in SetUp::ALL.iter().zip(&rows) {
            let per_node = if *set_up == SetUp::One {
                "—".to_owned()
            } else {
                format!("{:.0} / {:.0}", row[3], row[4])
            };
            let share = if *set_up == SetUp::One {
                "—".to_owned()
            } else {
                format!("{:.0}%", row[5] * 100.0)
            };
            out.push_str(&format!(
                "| {members} | {} | {:.2} ms | {:.2} ms | {:.0} | {per_node} | {share} |\n",
                set_up.name(),
                row[0],
                row[1],
                row[2],
            ));
        }
        for (set_up, row) in SetUp::ALL.iter().zip(&rows).skip(1) {
            let one = &rows[0];
            out.push_str(&format!(
                "| {members} | **{} / one node** | **{:.2}×** | **{:.2}×** | **{:.2}×** | | |\n",
                set_up.name(),
                row[0] / one[0],
                row[1] / one[1],
                row[2] / one[2],
            ));
        }
    }
    Ok(out)
}
