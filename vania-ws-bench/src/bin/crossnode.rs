//! Cross-node fan-out over Redis, against one node, measured in the same run.
//!
//! - **one node**: one `example-demo` holds every member of room `r` and the sender.
//! - **two nodes**: two `example-demo` processes share a `redis-server` (`REDIS_URL`); the
//!   members are split between them, and the sender is on the first.
//!
//! Every server process (the demos and Redis) is pinned to core 0, and this load generator to
//! core 1. Each round runs both set-ups, in alternating order, and reports:
//! - the latency of one `room-message` to every member (one broadcast at a time): p50, p99;
//! - deliveries per server CPU-second (the CPU time of every server process, Redis included),
//!   with 8 broadcasts in flight.
//!
//! ```sh
//! cargo run --release -p vania-ws-bench --bin crossnode -- [MEMBERS] [ROUNDS]
//! ```
//!
//! It builds `example-demo` first (release) and needs `redis-server` on PATH.

#![allow(clippy::print_stdout)]

use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SERVER_CORE: &str = "0";
const LOADGEN_CORE: usize = 1;
/// Broadcasts timed one at a time, per set-up and round.
const LATENCY_SENDS: usize = 200;
/// Deliveries for the throughput figure, per set-up and round: enough CPU time for the
/// clock's 10 ms ticks not to matter (about 3 s).
const THROUGHPUT_DELIVERIES: usize = 2_000_000;
const IN_FLIGHT: usize = 8;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A server process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn cpu_seconds(&self, ticks: f64) -> f64 {
        let (user, system) = vania_ws_bench::cpu_ticks(&format!("/proc/{}/stat", self.0.id()))
            .expect("the server's /proc stat");
        (user + system) as f64 / ticks
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis_server() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("taskset")
        .args([
            "-c",
            SERVER_CORE,
            "redis-server",
            "--port",
            &port.to_string(),
        ])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (and taskset) on PATH");
    wait_for_port(port);
    (Proc(child), port)
}

fn demo(demo: &str, redis: Option<u16>) -> (Proc, u16) {
    let port = free_port();
    let mut command = Command::new("taskset");
    command
        .args(["-c", SERVER_CORE, demo])
        .env("APP_HOST", "127.0.0.1")
        .env("APP_PORT", port.to_string())
        .env("WS_MAX_CONNECTIONS", "30000")
        .env("WS_RATE_LIMIT_PER_SEC", "0")
        .env("WS_SEND_QUEUE_BYTES", "8388608")
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(redis) = redis {
        command
            .env("REDIS_URL", format!("redis://127.0.0.1:{redis}"))
            .env("REDIS_REQUIRED", "true")
            .env("REDIS_PREFIX", "bench");
    }
    let child = command.spawn().expect("the demo starts");
    wait_for_port(port);
    (Proc(child), port)
}

async fn connect(port: u16) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("connects");
    // `connected`
    ws.next().await.expect("a frame").expect("a frame");
    ws
}

async fn join(ws: &mut Ws) {
    ws.send(Message::text(r#"{"event":"join-room","room":"r","id":1}"#))
        .await
        .expect("sends");
    loop {
        let frame = ws.next().await.expect("a frame").expect("a frame");
        if frame.to_text().is_ok_and(|t| t.contains(r#""ack""#)) {
            return;
        }
    }
}

/// The members' readers: one task per member counts its room messages into one total.
struct Readers {
    received: Arc<AtomicUsize>,
    progress: Arc<Notify>,
    members: usize,
    expected: usize,
}

impl Readers {
    fn spawn(members: Vec<Ws>) -> Self {
        let received = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(Notify::new());
        let count = members.len();
        for mut ws in members {
            let (received, progress) = (received.clone(), progress.clone());
            tokio::spawn(async move {
                while let Some(Ok(frame)) = ws.next().await {
                    if frame.to_text().is_ok_and(|t| t.contains("room-message")) {
                        received.fetch_add(1, Ordering::Relaxed);
                        progress.notify_one();
                    }
                }
            });
        }
        Self {
            received,
            progress,
            members: count,
            expected: 0,
        }
    }

    /// Waits until every member has received one more room message.
    async fn one_more_each(&mut self) {
        self.expected += self.members;
        while self.received.load(Ordering::Relaxed) < self.expected {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.progress.notified()).await;
        }
    }
}

struct Figures {
    p50: Duration,
    p99: Duration,
    deliveries_per_cpu_second: f64,
}

/// One set-up: `ports[0]` holds the sender; the members are spread over `ports`.
async fn measure(ports: &[u16], servers: &[&Proc], members: usize, ticks: f64) -> Figures {
    let mut sender = connect(ports[0]).await;
    let mut clients = Vec::with_capacity(members);
    for i in 0..members {
        let mut ws = connect(ports[i % ports.len()]).await;
        join(&mut ws).await;
        clients.push(ws);
    }
    let message = format!(
        r#"{{"event":"room-message","payload":{{"room":"r","message":"{}"}}}}"#,
        "x".repeat(64)
    );
    let mut readers = Readers::spawn(clients);
    // Warm-up, and a check that every member is reached.
    for _ in 0..20 {
        sender.send(Message::text(message.clone())).await.unwrap();
        readers.one_more_each().await;
    }

    let mut latencies = Vec::with_capacity(LATENCY_SENDS);
    for _ in 0..LATENCY_SENDS {
        let sent = Instant::now();
        sender.send(Message::text(message.clone())).await.unwrap();
        readers.one_more_each().await;
        latencies.push(sent.elapsed());
    }
    latencies.sort();

    let cpu = |servers: &[&Proc]| servers.iter().map(|s| s.cpu_seconds(ticks)).sum::<f64>();
    let before = cpu(servers);
    let sends = (THROUGHPUT_DELIVERIES / members).max(1);
    let mut in_flight = VecDeque::new();
    let mut sent = 0;
    let mut done = 0;
    while done < sends {
        while sent < sends && in_flight.len() < IN_FLIGHT {
            sender.send(Message::text(message.clone())).await.unwrap();
            in_flight.push_back(sent);
            sent += 1;
        }
        // The oldest broadcast in flight, to every member.
        readers.one_more_each().await;
        in_flight.pop_front();
        done += 1;
    }
    let spent = cpu(servers) - before;
    Figures {
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        deliveries_per_cpu_second: (sends * members) as f64 / spent.max(1e-9),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let members: usize = args.first().map_or(1000, |v| v.parse().expect("MEMBERS"));
    let rounds: usize = args.get(1).map_or(3, |v| v.parse().expect("ROUNDS"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new("cargo")
        .args(["build", "--release", "--locked", "-p", "example-demo"])
        .current_dir(&root)
        .status()
        .expect("cargo");
    assert!(status.success(), "example-demo builds");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let demo_bin = target.join("release/example-demo");
    let demo_bin = demo_bin.to_str().expect("a UTF-8 path").to_owned();

    let mut set = nix::sched::CpuSet::new();
    set.set(LOADGEN_CORE).expect("core 1");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .expect("the load generator pins itself to core 1");
    let ticks = vania_ws_bench::clock_ticks().unwrap_or(100.0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let mut one = Vec::new();
    let mut two = Vec::new();
    for round in 0..rounds {
        let run_one = || {
            runtime.block_on(async {
                let (server, port) = demo(&demo_bin, None);
                measure(&[port], &[&server], members, ticks).await
            })
        };
        let run_two = || {
            runtime.block_on(async {
                let (redis, redis_port) = redis_server();
                let (a, a_port) = demo(&demo_bin, Some(redis_port));
                let (b, b_port) = demo(&demo_bin, Some(redis_port));
                measure(&[a_port, b_port], &[&a, &b, &redis], members, ticks).await
            })
        };
        if round % 2 == 0 {
            one.push(run_one());
            two.push(run_two());
        } else {
            two.push(run_two());
            one.push(run_one());
        }
        eprintln!("crossnode: round {} of {rounds} done", round + 1);
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let row = |name: &str, figures: &[Figures]| {
        (
            name.to_owned(),
            median(figures.iter().map(|f| ms(f.p50)).collect()),
            median(figures.iter().map(|f| ms(f.p99)).collect()),
            median(
                figures
                    .iter()
                    .map(|f| f.deliveries_per_cpu_second)
                    .collect(),
            ),
        )
    };
    let single = row("one node", &one);
    let cross = row("two nodes over Redis", &two);
    println!(
        "### Cross-node fan-out: a room of {members}, {rounds} round(s), medians\n\n\
         | set-up | p50 of one broadcast | p99 | deliveries per server CPU-second |\n\
         |---|---|---|---|"
    );
    for (name, p50, p99, rate) in [&single, &cross] {
        println!("| {name} | {p50:.2} ms | {p99:.2} ms | {rate:.0} |");
    }
    println!(
        "| two nodes / one node | {:.2}× | {:.2}× | {:.2}× |",
        cross.1 / single.1,
        cross.2 / single.2,
        cross.3 / single.3
    );
}
