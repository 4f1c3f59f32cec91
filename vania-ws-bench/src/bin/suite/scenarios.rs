//! The scenarios, each run in rounds that alternate the order of the servers (forward on even
//! rounds, backward on odd ones), so that a drift of the machine during a run does not favour
//! whoever goes first:
//! - **idle**: hold many connections; RSS per connection above the empty server, handshake
//!   rates while ramping (256 and 100 in parallel), per second and per server CPU-second;
//! - **echo**: connections × in-flight requests × payload sizes; replies per server CPU-second;
//! - **broadcast**: a room of N; deliveries per server CPU-second with 8 broadcasts in flight,
//!   then, one at a time, the completion time of each broadcast (its last delivery).

use std::io;
use std::time::Duration;

use crate::conn::Conn;
use crate::dialect::Dialect;
use crate::loadgen::{self, Broadcast, Echo, Phases, Window, WindowKind};
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
        }
    }

    /// The figure keys the targets of issues 7 and 8 read.
    pub(crate) fn keys(&self) -> report::Keys {
        let largest = self.broadcast_members.iter().max().copied();
        report::Keys {
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
    let more = loadgen::ramp(&server, all - first, 256, false).await?;
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
    let ramp = loadgen::ramp(server, n, parallel, false).await?;
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
    let join = server.dialect == Dialect::SocketIo;
    *conns = loadgen::ramp(server, n, 100, join).await?.conns;
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
    *conns = loadgen::ramp(server, members, 256, true).await?.conns;
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
