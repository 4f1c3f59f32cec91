//! A fixed workload against a running `example-demo`, so that the server's instructions can be
//! counted under callgrind (`vania-ws-bench/callgrind-server.sh`): the same work each time,
//! finished when every frame has arrived, whatever the timing.
//!
//! - `serverload URL broadcast N M [W]`: N members join room `r` on `/ws`; one more client
//!   sends M `room-message`s of 100 B, at most W (default 8) not yet received by everyone.
//! - `serverload URL echo N M`: N clients each send M `message`s of 32 B, 16 in flight, and
//!   read the echoes.
//! - `serverload URL raw-broadcast N M [W]`: the same broadcast in the suite's raw dialect
//!   (`J<room>` joins, a frame starting with `B` goes to room `bench`), against a peer such as
//!   Bun's (`vania-ws-bench/peers/bun/server.js`): the peer does the same work, so its CPU
//!   time can be set beside ours.
//!
//! With `SERVERLOAD_PID=<pid>`, a broadcast run also prints that server's user and system
//! time per delivery, from the last join to the last delivery; with `SERVERLOAD_REST_MS=<ms>`,
//! it pauses that long before each broadcast after the first (`vania-ws-bench/broadcast-cpu.sh`
//! uses both).
//!
//! With `SERVERLOAD_PAUSE`, a broadcast run stops once every member has joined and again after
//! the last delivery, each time until it reads a line on stdin (see `wait_for_go`).
//!
//! Running it twice, with two values of M, and dividing the difference in the server's
//! instructions by the difference in deliveries gives the instructions per delivery without
//! the cost of connecting and joining.

#![allow(clippy::print_stdout)]

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ECHO_IN_FLIGHT: usize = 16;
const BROADCAST_IN_FLIGHT: usize = 8;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, mode, n, m, window) = match args.as_slice() {
        [url, mode, n, m] => (url, mode, n, m, None),
        [url, mode, n, m, window] => (url, mode, n, m, Some(window)),
        _ => return Err("usage: serverload URL broadcast|raw-broadcast|echo N M [W]".into()),
    };
    let n: usize = n.parse().map_err(|_| "N must be a number")?;
    let m: usize = m.parse().map_err(|_| "M must be a number")?;
    let window = match window {
        Some(w) => w.parse().map_err(|_| "W must be a number")?,
        None => BROADCAST_IN_FLIGHT,
    };
    if n == 0 || m == 0 || window == 0 {
        return Err("N, M and W must be at least 1".into());
    }
    let local = tokio::task::LocalSet::new();
    match mode.as_str() {
        "broadcast" => {
            local
                .run_until(broadcast(url, Dialect::Vania, n, m, window))
                .await
        }
        "raw-broadcast" => {
            local
                .run_until(broadcast(url, Dialect::Raw, n, m, window))
                .await
        }
        "echo" => local.run_until(echo(url, n, m)).await,
        other => Err(format!("unknown mode {other}")),
    }
}

/// The protocol a broadcast run speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// Our envelope: `connected` first, `join-room` acked, `room-message` to room `r`.
    Vania,
    /// The suite's raw peers: no greeting, `Jbench` answered with itself, `B…` to `bench`.
    Raw,
}

impl Dialect {
    /// Connects, and for ours waits for the `connected` greeting.
    async fn open(self, url: &str) -> Result<Ws, String> {
        let (mut ws, _) = connect_async(url)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if self == Dialect::Vania {
            next_text(&mut ws).await?; // `connected`
        }
        Ok(ws)
    }

    /// Joins the broadcast's room and waits for the server's answer.
    async fn join(self, ws: &mut Ws) -> Result<(), String> {
        match self {
            Dialect::Vania => {
                send(ws, r#"{"event":"join-room","room":"r","id":1}"#).await?;
                while !next_text(ws).await?.contains(r#""event":"ack""#) {}
            }
            Dialect::Raw => {
                send(ws, "Jbench").await?;
                while next_text(ws).await? != "Jbench" {}
            }
        }
        Ok(())
    }

    /// The broadcast request (100 B of message) and a marker of what each member receives.
    fn broadcast(self) -> (String, &'static str) {
        let message = format!("B{}", "x".repeat(99));
        match self {
            Dialect::Vania => (
                format!(
                    r#"{{"event":"room-message","payload":{{"room":"r","message":"{message}"}}}}"#
                ),
                "room-message",
            ),
            Dialect::Raw => (message, "Bxxx"),
        }
    }
}

async fn open(url: &str) -> Result<Ws, String> {
    Dialect::Vania.open(url).await
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("the server closed the connection".into()),
        }
    }
}

async fn send(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

async fn broadcast(
    url: &str,
    dialect: Dialect,
    n: usize,
    m: usize,
    window: usize,
) -> Result<(), String> {
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (frame, marker) = dialect.broadcast();
    // Members close only once every member has everything: on `/ws` each close makes the
    // demo broadcast `user-left` to every client, and an early one would hold up the last
    // broadcasts behind those.
    let (all_delivered, done) = tokio::sync::watch::channel(false);
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let mut ws = dialect.open(url).await?;
        dialect.join(&mut ws).await?;
        let received_tx = received_tx.clone();
        let mut done = done.clone();
        members.push(tokio::task::spawn_local(async move {
            for _ in 0..m {
                while !next_text(&mut ws).await?.contains(marker) {}
                let _ = received_tx.send(());
            }
            let _ = done.wait_for(|done| *done).await;
            ws.close(None).await.map_err(|e| format!("close: {e}"))
        }));
    }
    drop(received_tx);
    let mut sender = dialect.open(url).await?;
    let server = ProcessCpu::from_env()?;
    let rest = rest_from_env()?;
    let pause = std::env::var_os("SERVERLOAD_PAUSE").is_some();
    if pause {
        wait_for_go("joined")?;
    }
    let before = server.as_ref().map(ProcessCpu::read).transpose()?;
    let me = server.as_ref().map(ProcessCpu::this);
    let my_before = me.as_ref().map(ProcessCpu::read).transpose()?;
    let started = std::time::Instant::now();
    let (mut sent, mut deliveries) = (0, 0);
    while deliveries < n * m {
        // Broadcasts not yet received by everyone, counting one whose deliveries have begun:
        // at most `window` of them (as the suite counts its broadcasts in flight).
        while sent < m && (sent * n - deliveries).div_ceil(n) < window {
            if sent > 0
                && let Some(rest) = rest
            {
                tokio::time::sleep(rest).await;
            }
            send(&mut sender, &frame).await?;
            sent += 1;
        }
        received.recv().await.ok_or("a member stopped early")?;
        deliveries += 1;
    }
    if pause {
        wait_for_go("delivered")?;
    }
    let _ = all_delivered.send(true);
    if let (Some(server), Some(before), Some(me), Some(my_before)) =
        (&server, before, &me, my_before)
    {
        let elapsed = started.elapsed().as_secs_f64();
        // The rests are not the server's time.
        let rests = rest.unwrap_or_default().as_secs_f64() * (m - 1) as f64;
        let wall = elapsed - rests;
        let (user, system) = server.read()?;
        let (my_user, my_system) = me.read()?;
        let my_share = (my_user + my_system - my_before.0 - my_before.1) as f64
            / me.ticks_per_sec
            / wall.max(1e-9);
        let per = |ticks: u64| ticks as f64 * 1e6 / server.ticks_per_sec / deliveries as f64;
        println!(
            "server {}: {:.2} µs user + {:.2} µs system per delivery, {:.0} ms per broadcast \
             (from the last join to the last delivery, rests left out); load generator at \
             {:.0}% of its core{}",
            server.pid,
            per(user - before.0),
            per(system - before.1),
            wall * 1e3 / m as f64,
            my_share * 100.0,
            if my_share >= 0.9 {
                " (saturated: it may be what limits the server)"
            } else {
                ""
            },
        );
    }
    for member in members {
        member.await.map_err(|e| e.to_string())??;
    }
    sender
        .close(None)
        .await
        .map_err(|e| format!("close: {e}"))?;
    println!("{deliveries} deliveries");
    Ok(())
}

/// With `SERVERLOAD_PAUSE` set, a broadcast run prints `<what>` and waits for a line on
/// stdin, once every member has joined and again after the last delivery (before anyone
/// closes): `callgrind-misses.sh` zeroes and dumps the server's counts at those points, so
/// that connecting, joining and closing (a `user-left` to every client per close on `/ws`,
/// N² pushes for N members) are left out.
/// It blocks the load generator's one thread, which has nothing else to do meanwhile.
fn wait_for_go(what: &str) -> Result<(), String> {
    println!("{what}");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("stdin: {e}"))?;
    Ok(())
}

/// `SERVERLOAD_REST_MS`: a pause before each broadcast after the first, as the suite's
/// one-at-a-time scenario rests between broadcasts, so that the server starts each one idle.
fn rest_from_env() -> Result<Option<std::time::Duration>, String> {
    match std::env::var("SERVERLOAD_REST_MS") {
        Err(_) => Ok(None),
        Ok(ms) => ms
            .parse()
            .map(|ms| Some(std::time::Duration::from_millis(ms)))
            .map_err(|_| format!("SERVERLOAD_REST_MS={ms}: not a number of milliseconds")),
    }
}

/// A process's CPU time, from `/proc/<pid>/stat`: the server's (`SERVERLOAD_PID`) and this
/// load generator's, read once every member has joined and again after the last delivery, so
/// that connecting and joining are left out.
struct ProcessCpu {
    pid: u32,
    ticks_per_sec: f64,
}

impl ProcessCpu {
    fn from_env() -> Result<Option<ProcessCpu>, String> {
        let Ok(pid) = std::env::var("SERVERLOAD_PID") else {
            return Ok(None);
        };
        let pid = pid
            .parse()
            .map_err(|_| format!("SERVERLOAD_PID={pid}: not a process id"))?;
        let ticks = vania_ws_bench::clock_ticks().ok_or("sysconf(CLK_TCK) failed")?;
        Ok(Some(ProcessCpu {
            pid,
            ticks_per_sec: ticks,
        }))
    }

    /// This process: the load generator.
    fn this(server: &ProcessCpu) -> ProcessCpu {
        ProcessCpu {
            pid: std::process::id(),
            ticks_per_sec: server.ticks_per_sec,
        }
    }

    /// The process's user and system time so far, in clock ticks.
    fn read(&self) -> Result<(u64, u64), String> {
        vania_ws_bench::cpu_ticks(&format!("/proc/{}/stat", self.pid)).map_err(|e| e.to_string())
    }
}

async fn echo(url: &str, n: usize, m: usize) -> Result<(), String> {
    let frame = format!(r#"{{"event":"message","payload":"{}"}}"#, "e".repeat(32));
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let mut ws = open(url).await?;
        let frame = frame.clone();
        clients.push(tokio::task::spawn_local(async move {
            let (mut sent, mut echoed) = (0, 0);
            while echoed < m {
                while sent < m && sent < echoed + ECHO_IN_FLIGHT {
                    send(&mut ws, &frame).await?;
                    sent += 1;
                }
                if next_text(&mut ws).await?.contains(r#""event":"message""#) {
                    echoed += 1;
                }
            }
            ws.close(None).await.map_err(|e| format!("close: {e}"))?;
            Ok::<_, String>(echoed)
        }));
    }
    let mut echoes = 0;
    for client in clients {
        echoes += client.await.map_err(|e| e.to_string())??;
    }
    println!("{echoes} echoes");
    Ok(())
}
