//! The scenarios, each run in rounds that alternate the order of the servers (forward on even
//! rounds, backward on odd ones), so that a drift of the machine during a run does not favour
//! whoever goes first:
//! - **idle**: hold many connections; RSS per connection above the empty server, handshake
//!   rates while ramping (256 and 100 in parallel), per second and per server CPU-second;
//! - **echo**: connections × in-flight requests × payload sizes; replies per server CPU-second;
//! - **broadcast**: a room of N; deliveries per server CPU-second with 8 broadcasts in flight,
//!   then, one at a time, the completion time of each broadcast (its last delivery);
//! - **mix**: many small rooms, a random member sending to its room at a fixed rate; the
//!   latency of every delivery;
//! - **direct**: direct messages between random clients, at a fixed rate (latency) and with a
//!   window in flight (messages per server CPU-second);
//! - **slow**: a busy room, first as it is, then with one more member that never reads: the
//!   others' delivery latency in both, and how much the server's memory grows meanwhile;
//! - **churn**: one broadcast at a time to a room of N while clients connect, join a room and
//!   leave at a fixed rate; the completion times with and without the churn, and the server's
//!   memory before and after it.

use std::io;
use std::time::{Duration, Instant};

use std::cell::Cell;
use std::rc::Rc;

use crate::conn::Conn;
use crate::dialect::{Dialect, ROOM};
use crate::loadgen::{self, Broadcast, Echo, Phases, Rooms, Setup, Window, WindowKind};
use crate::mesh::{self, Mesh, MeshRun, Pace, Traffic};
use crate::peers::Target;
use crate::report::{self, Results, Sample, Unit};
use crate::server::{self, Server};

/// How much of everything a run does.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) label: &'static str,
    pub(crate) rounds: usize,
    pub(crate) phases: Phases,
    /// Connections held: first, then in all.
    pub(crate) idle: (usize, usize),
    pub(crate) echo_conns: usize,
    pub(crate) echo: Vec<Echo>,
    pub(crate) broadcast_members: Vec<usize>,
    pub(crate) broadcast_payload: usize,
    pub(crate) broadcast_window: usize,
    pub(crate) mix: MixPlan,
    pub(crate) direct: DirectPlan,
    pub(crate) slow: SlowPlan,
    pub(crate) churn: ChurnPlan,
}

/// Scenario 4: `clients` in rooms of `room_size`, `rate` room messages per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MixPlan {
    pub(crate) clients: usize,
    pub(crate) room_size: usize,
    pub(crate) rate: f64,
}

/// Scenario 5: `clients`, `rate` direct messages per second, then `in_flight` at a time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectPlan {
    pub(crate) clients: usize,
    pub(crate) rate: f64,
    pub(crate) in_flight: usize,
    pub(crate) batch: usize,
}

/// Scenario 6: a room of `members` receiving `rate` messages of `payload` bytes per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlowPlan {
    pub(crate) members: usize,
    pub(crate) payload: usize,
    pub(crate) rate: f64,
}

/// Scenario 7: a room of `members`, and `rate` connects (each with a join and a disconnect)
/// per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChurnPlan {
    pub(crate) members: usize,
    pub(crate) rate: f64,
}

impl Plan {
    pub(crate) fn full() -> Plan {
        Plan {
            label: "full",
            rounds: 5,
            phases: Phases {
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(3),
            },
            idle: (10_000, 19_000),
            echo_conns: 100,
            echo: echo_variants(&[32, 1024], &[1, 16]),
            broadcast_members: vec![1_000, 10_000],
            broadcast_payload: 100,
            broadcast_window: 8,
            mix: MixPlan {
                clients: 10_000,
                room_size: 10,
                rate: 2_000.0,
            },
            direct: DirectPlan {
                clients: 1_000,
                rate: 5_000.0,
                in_flight: 4_096,
                batch: 8,
            },
            slow: SlowPlan {
                members: 100,
                payload: 4096,
                rate: 500.0,
            },
            churn: ChurnPlan {
                members: 5_000,
                rate: 2_000.0,
            },
        }
    }

    pub(crate) fn quick() -> Plan {
        Plan {
            label: "quick",
            rounds: 3,
            phases: Phases {
                warmup: Duration::from_millis(500),
                measure: Duration::from_millis(1500),
            },
            idle: (5_000, 10_000),
            broadcast_members: vec![1_000, 5_000],
            ..Plan::full()
        }
    }

    /// Small N, one round, short windows: checks that everything works, not how fast.
    pub(crate) fn smoke() -> Plan {
        Plan {
            label: "smoke",
            rounds: 1,
            phases: Phases {
                warmup: Duration::from_millis(200),
                measure: Duration::from_millis(500),
            },
            idle: (200, 400),
            echo_conns: 20,
            echo: echo_variants(&[32, 1024], &[1, 16]),
            broadcast_members: vec![50, 200],
            broadcast_payload: 100,
            broadcast_window: 8,
            mix: MixPlan {
                clients: 200,
                room_size: 10,
                rate: 200.0,
            },
            direct: DirectPlan {
                clients: 50,
                rate: 200.0,
                in_flight: 64,
                batch: 8,
            },
            slow: SlowPlan {
                members: 20,
                payload: 4096,
                rate: 100.0,
            },
            churn: ChurnPlan {
                members: 100,
                rate: 100.0,
            },
        }
    }

    /// The figure keys the targets of issues 7 and 8 read.
    pub(crate) fn keys(&self) -> report::Keys {
        let largest = self.broadcast_members.iter().max().copied();
        let slow = format!("slow.{}", self.slow.members);
        report::Keys {
            slow_p99: (format!("{slow}.alone.p99"), format!("{slow}.beside.p99")),
            slow_rss_late: format!("{slow}.rss.late"),
            churn_rss: format!("churn.{}.rss", self.churn.members),
            rss_per_conn: key_rss(self.idle.1),
            handshakes_per_sec: key_handshakes(self.idle.0, 256),
            echo_pipelined: self
                .echo
                .iter()
                .filter(|e| e.in_flight > 1)
                .map(|e| {
                    (
                        key_echo(e),
                        format!(
                            "echo through the envelope, {} pipelined, {} B",
                            e.in_flight, e.payload
                        ),
                    )
                })
                .collect(),
            broadcast: self
                .broadcast_members
                .iter()
                .map(|&n| {
                    (
                        key_broadcast(n, self.broadcast_window),
                        format!(
                            "room broadcast, {n} members, {} in flight",
                            self.broadcast_window
                        ),
                    )
                })
                .collect(),
            p99_largest: largest.map(|n| {
                (
                    key_completion(n, 99),
                    format!("one broadcast reaching {n}, p99"),
                )
            }),
        }
    }
}

fn echo_variants(payloads: &[usize], in_flight: &[usize]) -> Vec<Echo> {
    payloads
        .iter()
        .flat_map(|&payload| {
            in_flight
                .iter()
                .map(move |&in_flight| Echo { payload, in_flight })
        })
        .collect()
}

fn key_rss(n: usize) -> String {
    format!("idle.rss.{n}")
}
fn key_handshakes(n: usize, parallel: usize) -> String {
    format!("idle.handshakes.{n}.{parallel}")
}
fn key_echo(e: &Echo) -> String {
    format!("echo.{}.{}", e.in_flight, e.payload)
}
fn key_broadcast(n: usize, window: usize) -> String {
    format!("broadcast.{n}.{window}")
}
fn key_completion(n: usize, p: u32) -> String {
    format!("broadcast.{n}.p{p}")
}

/// What every scenario needs.
pub(crate) struct Ctx<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) ticks: f64,
    /// The core the servers are pinned to (none on a one-core machine).
    pub(crate) server_core: Option<usize>,
}

impl Ctx<'_> {
    async fn start(&self, target: &Target) -> io::Result<Server> {
        let port = server::free_port()?;
        Server::start(
            target.name,
            target.dialect,
            &target.launch,
            port,
            self.server_core,
            self.ticks,
        )
        .await
    }
}

/// The servers of round `round`, in its order.
fn order<T>(items: &[T], round: usize) -> Vec<&T> {
    let mut order: Vec<&T> = items.iter().collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

fn progress(plan: &Plan, round: usize, what: &str, target: &str, detail: &str) {
    eprintln!(
        "suite: round {}/{} | {what} | {target}: {detail}",
        round + 1,
        plan.rounds
    );
}

fn window_detail(w: &Window, per: &str) -> String {
    format!(
        "{} {per}/server-CPU-s ({}/s, server {:.0}%, load generator {:.0}%, others {:.0}%)",
        report::format_value(Unit::Rate, w.per_server_cpu_sec()),
        report::format_value(Unit::Rate, w.per_sec()),
        100.0 * w.server_cpu / w.secs,
        100.0 * w.loadgen_cpu / w.secs,
        100.0 * w.others()
    )
}

/// Records that a target failed in a round: an error of the run, and an invalid sample so
/// the tables show it.
fn fail(results: &mut Results, scenario: &str, target: &'static str, round: usize, e: &str) {
    let line = format!("{scenario}, {target}, round {}: {e}", round + 1);
    eprintln!("suite: ERROR {line}");
    results.errors.push(line);
}

/// **Idle**: each round starts each server afresh (so "empty" means empty), ramps to
/// `idle.0` connections 256 at a time, then to `idle.1`, reads RSS after each, closes
/// everything, and ramps `idle.0` again 100 at a time.
pub(crate) async fn idle(ctx: &Ctx<'_>, targets: &[Target], results: &mut Results) {
    for round in 0..ctx.plan.rounds {
        for target in order(targets, round) {
            if let Err(e) = idle_one(ctx, target, round, results).await {
                fail(results, "idle", target.name, round, &e.to_string());
            }
        }
    }
}

async fn idle_one(
    ctx: &Ctx<'_>,
    target: &Target,
    round: usize,
    results: &mut Results,
) -> io::Result<()> {
    let (first, all) = ctx.plan.idle;
    let mut server = ctx.start(target).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let empty = server.rss_bytes()?;

    let mut held = handshakes(ctx, &server, target, round, first, 256, results).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_first = server.rss_bytes()?;
    let more = loadgen::ramp(&server, all - first, 256, Setup::NONE).await?;
    held.extend(more.conns);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_all = server.rss_bytes()?;
    server.check_alive()?;
    for (n, rss) in [(first, rss_first), (all, rss_all)] {
        let per_conn = (rss.saturating_sub(empty)) as f64 / n as f64;
        results.record(
            &key_rss(n),
            &format!("idle: RSS per connection above the empty server, {n} held"),
            Unit::Bytes,
            target.name,
            Sample {
                round,
                value: per_conn,
                invalid: None,
            },
        );
    }
    let slope = rss_all.saturating_sub(rss_first) as f64 / (all - first) as f64;
    results.record(
        "idle.rss.slope",
        &format!("idle: RSS per connection from {first} to {all} held"),
        Unit::Bytes,
        target.name,
        Sample {
            round,
            value: slope,
            invalid: None,
        },
    );
    progress(
        ctx.plan,
        round,
        "idle",
        target.name,
        &format!(
            "empty {:.1} MiB, {first} held {:.1} MiB, {all} held {:.1} MiB ({:.0} B/conn)",
            empty as f64 / 1048576.0,
            rss_first as f64 / 1048576.0,
            rss_all as f64 / 1048576.0,
            (rss_all - empty.min(rss_all)) as f64 / all as f64
        ),
    );
    // Killed before the clients close: a server's cleanup of 19,000 connections (and
    // whatever its disconnect handlers do) must not run into the next measurement.
    server.stop();
    drop(held);

    let mut server = ctx.start(target).await?;
    let again = handshakes(ctx, &server, target, round, first, 100, results).await?;
    server.check_alive()?;
    server.stop();
    drop(again);
    Ok(())
}

/// Opens `n` connections, `parallel` at a time, and records the handshake rates.
async fn handshakes(
    ctx: &Ctx<'_>,
    server: &Server,
    target: &Target,
    round: usize,
    n: usize,
    parallel: usize,
    results: &mut Results,
) -> io::Result<Vec<Conn>> {
    let loadgen0 = server::self_cpu_secs(ctx.ticks);
    let ramp = loadgen::ramp(server, n, parallel, Setup::NONE).await?;
    let loadgen = (server::self_cpu_secs(ctx.ticks) - loadgen0) / ramp.secs;
    let invalid = (loadgen > 0.95).then(|| {
        format!(
            "load generator saturated ({:.0}% of its core)",
            loadgen * 100.0
        )
    });
    let per_sec = n as f64 / ramp.secs;
    let per_cpu = n as f64 / ramp.server_cpu.max(1e-9);
    results.record(
        &key_handshakes(n, parallel),
        &format!("idle: handshakes per second, {n} connections, {parallel} in parallel"),
        Unit::Rate,
        target.name,
        Sample {
            round,
            value: per_sec,
            invalid: invalid.clone(),
        },
    );
    results.record(
        &format!("{}.cpu", key_handshakes(n, parallel)),
        &format!("idle: handshakes per server CPU-second, {parallel} in parallel"),
        Unit::Rate,
        target.name,
        Sample {
            round,
            value: per_cpu,
            invalid,
        },
    );
    progress(
        ctx.plan,
        round,
        &format!("handshakes, {parallel} in parallel"),
        target.name,
        &format!(
            "{} /s, {} /server-CPU-s (server {:.0}%, load generator {:.0}%)",
            report::format_value(Unit::Rate, per_sec),
            report::format_value(Unit::Rate, per_cpu),
            100.0 * ramp.server_cpu / ramp.secs,
            100.0 * loadgen
        ),
    );
    Ok(ramp.conns)
}

/// **Echo**: `echo_conns` connections; for each variant, every connection keeps `in_flight`
/// requests of `payload` bytes outstanding.
pub(crate) async fn echo(ctx: &Ctx<'_>, targets: &[Target], results: &mut Results) {
    for round in 0..ctx.plan.rounds {
        for target in order(targets, round) {
            if let Err(e) = echo_one(ctx, target, round, results).await {
                fail(results, "echo", target.name, round, &e.to_string());
            }
        }
    }
}

/// One target in one round of echo, on a server of its own: it is killed before the load
/// generator closes its connections, so that no server's cleanup (or disconnect handlers)
/// runs into the next measurement on the same core.
async fn echo_one(
    ctx: &Ctx<'_>,
    target: &Target,
    round: usize,
    results: &mut Results,
) -> io::Result<()> {
    let mut server = ctx.start(target).await?;
    let mut conns = Vec::new();
    let outcome = echo_runs(ctx, &server, round, results, &mut conns).await;
    let alive = server.check_alive();
    server.stop();
    drop(conns);
    outcome.and(alive)
}

async fn echo_runs(
    ctx: &Ctx<'_>,
    server: &Server,
    round: usize,
    results: &mut Results,
    conns: &mut Vec<Conn>,
) -> io::Result<()> {
    let name = server.name;
    let n = ctx.plan.echo_conns;
    // socketioxide may drop events sent before its handlers are registered: the acked join
    // is how the load generator knows they are (for the others it is not needed).
    let setup = if server.dialect == Dialect::SocketIo {
        Setup::BENCH
    } else {
        Setup::NONE
    };
    *conns = loadgen::ramp(server, n, 100, setup).await?.conns;
    for variant in &ctx.plan.echo {
        let (back, window, errors) = loadgen::echo(
            server,
            ctx.ticks,
            std::mem::take(conns),
            *variant,
            ctx.plan.phases,
        )
        .await;
        *conns = back;
        let window = window?;
        results.others.push(window.others());
        let what = format!(
            "echo, {n} connections × {} in flight, {} B",
            variant.in_flight, variant.payload
        );
        let invalid = match &errors {
            Err(e) => {
                fail(results, &what, name, round, e);
                Some(format!("error: {e}"))
            }
            Ok(()) => window.invalid(WindowKind::Throughput),
        };
        progress(
            ctx.plan,
            round,
            &what,
            name,
            &window_detail(&window, "replies"),
        );
        results.record(
            &key_echo(variant),
            &format!("{what}: replies per server CPU-second"),
            Unit::Rate,
            name,
            Sample {
                round,
                value: window.per_server_cpu_sec(),
                invalid,
            },
        );
        if conns.len() < n {
            return Err(io::Error::other(format!(
                "{} of {n} connections lost",
                n - conns.len()
            )));
        }
    }
    Ok(())
}

/// **Broadcast**: for each room size N, N members (the sender among them); deliveries per
/// server CPU-second with `broadcast_window` broadcasts in flight, then completion times
/// with one in flight. Each target and round has a server of its own, as in echo.
pub(crate) async fn broadcast(ctx: &Ctx<'_>, targets: &[Target], results: &mut Results) {
    for &members in &ctx.plan.broadcast_members {
        for round in 0..ctx.plan.rounds {
            for target in order(targets, round) {
                let outcome = async {
                    let mut server = ctx.start(target).await?;
                    let mut conns = Vec::new();
                    let outcome =
                        broadcast_runs(ctx, &server, members, round, results, &mut conns).await;
                    let alive = server.check_alive();
                    server.stop();
                    drop(conns);
                    outcome.and(alive)
                }
                .await;
                if let Err(e) = outcome {
                    let what = format!("broadcast {members}");
                    fail(results, &what, target.name, round, &e.to_string());
                }
            }
        }
    }
}

async fn broadcast_runs(
    ctx: &Ctx<'_>,
    server: &Server,
    members: usize,
    round: usize,
    results: &mut Results,
    conns: &mut Vec<Conn>,
) -> io::Result<()> {
    let plan = ctx.plan;
    let name = server.name;
    *conns = loadgen::ramp(server, members, 256, Setup::BENCH)
        .await?
        .conns;
    let what = format!(
        "room broadcast, {members} members, {} B, {} in flight",
        plan.broadcast_payload, plan.broadcast_window
    );
    let params = Broadcast {
        payload: plan.broadcast_payload,
        window: plan.broadcast_window,
    };
    let (back, run) = loadgen::broadcast(
        server,
        ctx.ticks,
        std::mem::take(conns),
        params,
        plan.phases,
    )
    .await;
    *conns = back;
    let window = run.window?;
    results.others.push(window.others());
    let invalid = match &run.errors {
        Err(e) => {
            fail(results, &what, name, round, e);
            Some(format!("error: {e}"))
        }
        Ok(()) => window.invalid(WindowKind::Throughput),
    };
    progress(
        plan,
        round,
        &what,
        name,
        &window_detail(&window, "deliveries"),
    );
    results.record(
        &key_broadcast(members, plan.broadcast_window),
        &format!("{what}: deliveries per server CPU-second"),
        Unit::Rate,
        name,
        Sample {
            round,
            value: window.per_server_cpu_sec(),
            invalid,
        },
    );
    if conns.len() < members {
        return Err(io::Error::other(format!(
            "{} of {members} members lost",
            members - conns.len()
        )));
    }

    let one = Broadcast {
        payload: plan.broadcast_payload,
        window: 1,
    };
    // A broadcast to thousands takes about 100 ms: measure longer to get enough of them.
    let phases = Phases {
        measure: plan.phases.measure * if members >= 5_000 { 3 } else { 1 },
        ..plan.phases
    };
    let (back, run) =
        loadgen::broadcast(server, ctx.ticks, std::mem::take(conns), one, phases).await;
    *conns = back;
    let window = run.window?;
    let mut millis: Vec<f64> = run
        .completions
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let what = format!("one broadcast at a time to {members}");
    let invalid = match &run.errors {
        Err(e) => {
            fail(results, &what, name, round, e);
            Some(format!("error: {e}"))
        }
        Ok(()) if millis.len() < 10 => Some(format!("only {} broadcasts completed", millis.len())),
        Ok(()) => window.invalid(WindowKind::Latency),
    };
    let p50 = report::percentile(&mut millis, 50.0).unwrap_or(f64::NAN);
    let p99 = report::percentile(&mut millis, 99.0).unwrap_or(f64::NAN);
    progress(
        plan,
        round,
        &what,
        name,
        &format!(
            "completion p50 {p50:.2} ms, p99 {p99:.2} ms over {} broadcasts (server {:.0}%, load generator {:.0}%, others {:.0}%)",
            millis.len(),
            100.0 * window.server_cpu / window.secs,
            100.0 * window.loadgen_cpu / window.secs,
            100.0 * window.others()
        ),
    );
    for (p, value) in [(50, p50), (99, p99)] {
        results.record(
            &key_completion(members, p),
            &format!("{what}: completion (last member received it), p{p}"),
            Unit::Millis,
            name,
            Sample {
                round,
                value,
                invalid: invalid.clone(),
            },
        );
    }
    Ok(())
}

/// The scenarios that run on a server of their own per target and round, after the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fresh {
    Mix,
    Direct,
    Slow,
    Churn,
}

impl Fresh {
    pub(crate) const ALL: [Fresh; 4] = [Fresh::Mix, Fresh::Direct, Fresh::Slow, Fresh::Churn];

    /// The name `--only` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fresh::Mix => "mix",
            Fresh::Direct => "direct",
            Fresh::Slow => "slow",
            Fresh::Churn => "churn",
        }
    }
}

/// Runs `scenario` for every target in every round, each on a server of its own (killed
/// before the load generator closes its connections, as in echo).
pub(crate) async fn fresh(
    ctx: &Ctx<'_>,
    targets: &[Target],
    results: &mut Results,
    scenario: Fresh,
) {
    for round in 0..ctx.plan.rounds {
        for target in order(targets, round) {
            let outcome = async {
                let mut server = ctx.start(target).await?;
                let mut conns = Vec::new();
                let outcome = match scenario {
                    Fresh::Mix => mix_runs(ctx, &server, round, results, &mut conns).await,
                    Fresh::Direct => direct_runs(ctx, &server, round, results, &mut conns).await,
                    Fresh::Slow => slow_runs(ctx, &server, round, results, &mut conns).await,
                    Fresh::Churn => churn_runs(ctx, &server, round, results, &mut conns).await,
                };
                let alive = server.check_alive();
                server.stop();
                drop(conns);
                outcome.and(alive)
            }
            .await;
            if let Err(e) = outcome {
                fail(results, scenario.name(), target.name, round, &e.to_string());
            }
        }
    }
}

/// How late (p99) a fixed-rate run may write its messages against their schedule before the
/// run is invalid: tokio's timer alone makes them up to about 3 ms late.
const MAX_SEND_LAG_MS: f64 = 10.0;

/// Why a mesh run's figures do not count, if they do not (its errors fail the run too).
fn mesh_invalid(
    results: &mut Results,
    what: &str,
    name: &'static str,
    round: usize,
    run: &MeshRun,
    window: &Window,
    kind: WindowKind,
) -> Option<String> {
    match &run.errors {
        Err(e) => {
            fail(results, what, name, round, e);
            Some(format!("error: {e}"))
        }
        Ok(()) if kind == WindowKind::Latency && run.latencies.len() < 100 => {
            Some(format!("only {} deliveries measured", run.latencies.len()))
        }
        Ok(()) if run.send_lag_p99 > MAX_SEND_LAG_MS => Some(format!(
            "the load generator fell behind its schedule (p99 {:.1} ms late)",
            run.send_lag_p99
        )),
        Ok(()) => window.invalid(kind),
    }
}

/// Records p50 and p99 of a run's delivery latencies under `key.p50` / `key.p99`; returns
/// them.
fn record_latency(
    results: &mut Results,
    key: &str,
    what: &str,
    name: &'static str,
    round: usize,
    run: &MeshRun,
    invalid: Option<String>,
) -> (f64, f64) {
    let mut millis = run.latencies.clone();
    let p50 = report::percentile(&mut millis, 50.0).unwrap_or(f64::NAN);
    let p99 = report::percentile(&mut millis, 99.0).unwrap_or(f64::NAN);
    for (p, value) in [(50, p50), (99, p99)] {
        results.record(
            &format!("{key}.p{p}"),
            &format!("{what}: delivery latency, p{p}"),
            Unit::Millis,
            name,
            Sample {
                round,
                value,
                invalid: invalid.clone(),
            },
        );
    }
    (p50, p99)
}

fn latency_detail(p50: f64, p99: f64, run: &MeshRun, window: &Window) -> String {
    format!(
        "delivery p50 {p50:.2} ms, p99 {p99:.2} ms over {} deliveries of {} messages, written p99 {:.1} ms after due (server {:.0}%, load generator {:.0}%, others {:.0}%)",
        run.latencies.len(),
        run.sent_measured,
        run.send_lag_p99,
        100.0 * window.server_cpu / window.secs,
        100.0 * window.loadgen_cpu / window.secs,
        100.0 * window.others()
    )
}

/// **Rooms mix** (scenario 4): `clients` in rooms of `room_size`; a random member sends to
/// its room at `rate` per second.
async fn mix_runs(
    ctx: &Ctx<'_>,
    server: &Server,
    round: usize,
    results: &mut Results,
    conns: &mut Vec<Conn>,
) -> io::Result<()> {
    let plan = ctx.plan.mix;
    let setup = Setup {
        rooms: Rooms::Groups(plan.room_size),
        named: false,
    };
    *conns = loadgen::ramp(server, plan.clients, 256, setup).await?.conns;
    let mesh = Mesh {
        traffic: Traffic::Rooms {
            size: plan.room_size,
        },
        pace: Pace::Rate(plan.rate),
        payload: 100,
        departures: false,
    };
    let (back, run) = mesh::run(
        server,
        ctx.ticks,
        std::mem::take(conns),
        mesh,
        ctx.plan.phases,
    )
    .await;
    *conns = back;
    let window = run
        .window
        .as_ref()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let what = format!(
        "rooms mix, {} clients in rooms of {}, {} room messages/s",
        plan.clients, plan.room_size, plan.rate
    );
    let invalid = mesh_invalid(
        results,
        &what,
        server.name,
        round,
        &run,
        window,
        WindowKind::Latency,
    );
    let key = format!("mix.{}.{}", plan.clients, plan.room_size);
    let (p50, p99) = record_latency(results, &key, &what, server.name, round, &run, invalid);
    progress(
        ctx.plan,
        round,
        &what,
        server.name,
        &latency_detail(p50, p99, &run, window),
    );
    Ok(())
}

/// **Direct messages** (scenario 5): `clients`, each message from a random client to another;
/// at `rate` per second (latency), then `in_flight` at a time (messages per CPU-second).
async fn direct_runs(
    ctx: &Ctx<'_>,
    server: &Server,
    round: usize,
    results: &mut Results,
    conns: &mut Vec<Conn>,
) -> io::Result<()> {
    let plan = ctx.plan.direct;
    // socketioxide may drop events sent before its handlers are registered: the acked join
    // is how the load generator knows they are (as in echo).
    let setup = Setup {
        rooms: if server.dialect == Dialect::SocketIo {
            Rooms::Bench
        } else {
            Rooms::None
        },
        named: true,
    };
    *conns = loadgen::ramp(server, plan.clients, 256, setup).await?.conns;
    let paced = Mesh {
        traffic: Traffic::Direct,
        pace: Pace::Rate(plan.rate),
        payload: 100,
        departures: false,
    };
    let (back, run) = mesh::run(
        server,
        ctx.ticks,
        std::mem::take(conns),
        paced,
        ctx.plan.phases,
    )
    .await;
    *conns = back;
    let window = run
        .window
        .as_ref()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let what = format!(
        "direct messages between {} clients, {}/s",
        plan.clients, plan.rate
    );
    let invalid = mesh_invalid(
        results,
        &what,
        server.name,
        round,
        &run,
        window,
        WindowKind::Latency,
    );
    let key = format!("direct.{}", plan.clients);
    let (p50, p99) = record_latency(results, &key, &what, server.name, round, &run, invalid);
    progress(
        ctx.plan,
        round,
        &what,
        server.name,
        &latency_detail(p50, p99, &run, window),
    );

    let windowed = Mesh {
        pace: Pace::Window {
            in_flight: plan.in_flight,
            batch: plan.batch,
        },
        ..paced
    };
    let (back, run) = mesh::run(
        server,
        ctx.ticks,
        std::mem::take(conns),
        windowed,
        ctx.plan.phases,
    )
    .await;
    *conns = back;
    let window = run
        .window
        .as_ref()
        .map_err(|e| io::Error::other(e.to_string()))?;
    results.others.push(window.others());
    let what = format!(
        "direct messages between {} clients, {} in flight",
        plan.clients, plan.in_flight
    );
    let invalid = mesh_invalid(
        results,
        &what,
        server.name,
        round,
        &run,
        window,
        WindowKind::Throughput,
    );
    progress(
        ctx.plan,
        round,
        &what,
        server.name,
        &window_detail(window, "messages"),
    );
    results.record(
        &format!("direct.{}.window", plan.clients),
        &format!("{what}: messages per server CPU-second"),
        Unit::Rate,
        server.name,
        Sample {
            round,
            value: window.per_server_cpu_sec(),
            invalid,
        },
    );
    Ok(())
}

/// RSS samples with the time each was taken, or the error that stopped them.
type RssSamples = io::Result<Vec<(Instant, u64)>>;

/// Samples a process's RSS every 20 ms until told to stop; returns the samples with the time
/// each was taken.
fn sample_rss(pid: u32) -> (Rc<Cell<bool>>, tokio::task::JoinHandle<RssSamples>) {
    let stop = Rc::new(Cell::new(false));
    let task = tokio::task::spawn_local({
        let stop = stop.clone();
        async move {
            let mut samples = Vec::new();
            while !stop.get() {
                samples.push((Instant::now(), server::rss_of(pid)?));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(samples)
        }
    });
    (stop, task)
}

/// **A slow consumer beside a busy room** (scenario 6): the room's delivery latency as it is,
/// then with one more member that never reads (its receive buffer 4 KiB), for three times as
/// long; and how far the server's RSS rises above its level before the slow member joined,
/// over the whole run and in its second half (a server that bounds what it holds for a
/// client stops growing once the socket buffers and that bound are full; one that does not
/// keeps growing).
async fn slow_runs(
    ctx: &Ctx<'_>,
    server: &Server,
    round: usize,
    results: &mut Results,
    conns: &mut Vec<Conn>,
) -> io::Result<()> {
    let plan = ctx.plan.slow;
    *conns = loadgen::ramp(server, plan.members, 256, Setup::BENCH)
        .await?
        .conns;
    let mesh = Mesh {
        traffic: Traffic::Bench,
        pace: Pace::Rate(plan.rate),
        payload: plan.payload,
        departures: false,
    };
    let what = format!(
        "a room of {} receiving {} messages of {} B per second",
        plan.members, plan.rate, plan.payload
    );
    let key = format!("slow.{}", plan.members);
    let (back, run) = mesh::run(
        server,
        ctx.ticks,
        std::mem::take(conns),
        mesh,
        ctx.plan.phases,
    )
    .await;
    *conns = back;
    let window = run
        .window
        .as_ref()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let alone = format!("{what}, every member reading");
    let invalid = mesh_invalid(
        results,
        &alone,
        server.name,
        round,
        &run,
        window,
        WindowKind::Latency,
    );
    let (p50, p99) = record_latency(
        results,
        &format!("{key}.alone"),
        &alone,
        server.name,
        round,
        &run,
        invalid,
    );
    progress(
        ctx.plan,
        round,
        &alone,
        server.name,
        &latency_detail(p50, p99, &run, window),
    );

    // The slow member: set up like the others, then never read again. When the server drops
    // it, the demo's `disconnect` handler tells everyone (`user-left`): one such frame per
    // member is expected then, and counted.
    let before = server.rss_bytes()?;
    let dialect = server.dialect;
    let mut slow = loadgen::within(
        "the slow member's connect and upgrade",
        Conn::open_with_receive_buffer(server.port, dialect.path(), 4096),
    )
    .await?;
    loadgen::within("the slow member's greeting", dialect.greet(&mut slow, None)).await?;
    loadgen::within("the slow member's join", dialect.join(&mut slow, ROOM)).await?;
    let mesh = Mesh {
        departures: true,
        ..mesh
    };
    let (stop, sampler) = sample_rss(server.pid());
    let longer = Phases {
        measure: ctx.plan.phases.measure * 3,
        ..ctx.plan.phases
    };
    let (back, run) = mesh::run(server, ctx.ticks, std::mem::take(conns), mesh, longer).await;
    *conns = back;
    stop.set(true);
    let samples = sampler.await.map_err(io::Error::other)??;
    drop(slow);
    if run.departures > plan.members as u64 {
        let e = format!(
            "{} `user-left` frames for one slow member among {}",
            run.departures, plan.members
        );
        fail(results, "slow", server.name, round, &e);
    }
    let highest = samples.iter().map(|s| s.1).max().unwrap_or(before);
    let halfway = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) => first.0 + (last.0 - first.0) / 2,
        _ => Instant::now(),
    };
    let first_half = samples
        .iter()
        .filter(|s| s.0 <= halfway)
        .map(|s| s.1)
        .max()
        .unwrap_or(before);
    let window = run
        .window
        .as_ref()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let beside = format!("{what}, beside a member that never reads");
    let invalid = mesh_invalid(
        results,
        &beside,
        server.name,
        round,
        &run,
        window,
        WindowKind::Latency,
    );
    let (p50, p99) = record_latency(
        results,
        &format!("{key}.beside"),
        &beside,
        server.name,
        round,
        &run,
        invalid.clone(),
    );
    let growth = highest.saturating_sub(before);
    let late = highest.saturating_sub(first_half);
    let secs = longer.warmup.as_secs_f64() + longer.measure.as_secs_f64();
    for (suffix, title, value) in [
        ("rss", format!("server RSS growth over {secs:.1} s"), growth),
        (
            "rss.late",
            format!("server RSS growth in the second half of the {secs:.1} s"),
            late,
        ),
    ] {
        results.record(
            &format!("{key}.{suffix}"),
            &format!("{beside}: {title}"),
            Unit::Bytes,
            server.name,
            Sample {
                round,
                value: value as f64,
                invalid: invalid.clone(),
            },
        );
    }
    progress(
        ctx.plan,
        round,
        &beside,
        server.name,
        &format!(
            "{}; RSS {:.1} MiB before, {:.1} MiB at most (+{:.1} MiB, +{:.1} MiB in the second half){}",
            latency_detail(p50, p99, &run, window),
            before as f64 / 1048576.0,
            highest as f64 / 1048576.0,
            growth as f64 / 1048576.0,
            late as f64 / 1048576.0,
            if run.departures > 0 {
                format!(
                    "; the slow member was dropped ({} members told)",
                    run.departures
                )
            } else {
                String::new()
            }
        ),
    );
    Ok(())
}

/// **Churn** (scenario 7): a room of `members`, one broadcast at a time; first as it is, then
/// while `rate` clients per second connect, join a room of their own and leave (half with a
/// close frame, half by dropping the TCP connection). RSS is read before the churn and again
/// once it has stopped and the server has had a second to clean up.
async fn churn_runs(
    ctx: &Ctx<'_>,
    server: &Server,
    round: usize,
    results: &mut Results,
    conns: &mut Vec<Conn>,
) -> io::Result<()> {
    let plan = ctx.plan.churn;
    let members = plan.members;
    *conns = loadgen::ramp(server, members, 256, Setup::BENCH)
        .await?
        .conns;
    let one = Broadcast {
        payload: ctx.plan.broadcast_payload,
        window: 1,
    };
    let phases = ctx.plan.phases;
    let key = format!("churn.{members}");
    for churning in [false, true] {
        let before = server.rss_bytes()?;
        let churn = churning.then(|| {
            let until = Rc::new(Cell::new(false));
            let task = tokio::task::spawn_local(loadgen::churn(
                server.port,
                server.dialect,
                plan.rate,
                until.clone(),
            ));
            (until, task)
        });
        let (back, run) =
            loadgen::broadcast(server, ctx.ticks, std::mem::take(conns), one, phases).await;
        *conns = back;
        let churned = match churn {
            Some((until, task)) => {
                until.set(true);
                Some(task.await.map_err(io::Error::other)?)
            }
            None => None,
        };
        let window = run.window?;
        let what = match churned {
            None => format!("one broadcast at a time to {members}, no churn"),
            Some(_) => format!(
                "one broadcast at a time to {members}, {} connects + disconnects/s",
                plan.rate
            ),
        };
        let mut millis: Vec<f64> = run
            .completions
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        let mut invalid = match &run.errors {
            Err(e) => {
                fail(results, &what, server.name, round, e);
                Some(format!("error: {e}"))
            }
            Ok(()) if millis.len() < 10 => {
                Some(format!("only {} broadcasts completed", millis.len()))
            }
            Ok(()) => window.invalid(WindowKind::Latency),
        };
        let p99 = report::percentile(&mut millis, 99.0).unwrap_or(f64::NAN);
        let mut detail = format!(
            "completion p99 {p99:.2} ms over {} broadcasts",
            millis.len()
        );
        if let Some(churned) = &churned {
            if let Err(e) = &churned.errors {
                fail(results, &what, server.name, round, e);
                invalid.get_or_insert_with(|| format!("churn error: {e}"));
            }
            // What the server still holds a second after the last churner left.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = server.rss_bytes()?;
            let per = (after as f64 - before as f64) / churned.done.max(1) as f64;
            let rate = churned.done as f64 / churned.secs;
            detail.push_str(&format!(
                "; {} churned at {rate:.0}/s; RSS {:.1} MiB before, {:.1} MiB after ({per:+.1} B per churned client)",
                churned.done,
                before as f64 / 1048576.0,
                after as f64 / 1048576.0
            ));
            if rate < 0.8 * plan.rate {
                invalid.get_or_insert_with(|| format!("churned at {rate:.0}/s only"));
            }
            results.record(
                &format!("{key}.rss"),
                &format!("{what}: RSS after the churn minus before, per churned client"),
                Unit::Bytes,
                server.name,
                Sample {
                    round,
                    value: per,
                    invalid: invalid.clone(),
                },
            );
        }
        results.record(
            &format!("{key}.{}.p99", if churning { "churn" } else { "calm" }),
            &format!("{what}: completion p99"),
            Unit::Millis,
            server.name,
            Sample {
                round,
                value: p99,
                invalid,
            },
        );
        progress(ctx.plan, round, &what, server.name, &detail);
    }
    Ok(())
}
