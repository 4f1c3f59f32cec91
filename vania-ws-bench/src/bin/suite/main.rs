//! The end-to-end benchmark suite: vania-ws against the servers its users would otherwise
//! pick (plain tokio-tungstenite, socketioxide, Bun, Node `ws`), over real sockets on
//! 127.0.0.1, the server pinned to core 0 and this load generator to core 1.
//!
//! ```sh
//! cargo run --release -p vania-ws-bench --bin suite             # full: 5 rounds (~50 min)
//! cargo run --release -p vania-ws-bench --bin suite -- --quick  # 3 rounds, smaller N
//! cargo run --release -p vania-ws-bench --bin suite -- --smoke  # CI: ours + tokio-tungstenite
//! cargo run --release -p vania-ws-bench --bin suite -- --hotpath  # callgrind counts only
//! ```
//!
//! Options:
//! - `--rounds N` overrides the number of rounds;
//! - `--all-peers` adds socketioxide, Bun and Node `ws` to a smoke run;
//! - `--only idle,echo,broadcast,mix,direct,slow,churn,crossnode,hotpath` runs some
//!   scenarios (`crossnode`: a room broadcast across two `example-demo` processes over Redis
//!   and over a Redis Cluster, against one; it needs `redis-server` and `redis-cli`);
//! - `--targets tungstenite,bun` keeps the peers whose name contains one of the words (ours
//!   are always kept);
//! - `--baseline PATH` adds an earlier build of `example-demo` as a peer, "vania-ws
//!   (baseline)", so that a change is measured before and after in one interleaved run
//!   (`--targets` keeps it).
//!
//! It builds and installs what it needs (cargo for ours and the Rust peers, npm for Bun and
//! `ws`) into `target/bench-peers/`, prints the markdown tables on stdout (and writes them to
//! `target/bench-peers/last-run.md`), and exits non-zero on any error or missing message,
//! never because of a timing.

// The report is the program's output.
#![allow(clippy::print_stdout)]

mod callgrind;
mod conn;
mod crossnode;
mod dialect;
mod loadgen;
mod mesh;
mod peers;
mod report;
mod scenarios;
mod server;
mod wire;

use std::process::ExitCode;

use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::Pid;

use crate::peers::{Paths, Want};
use crate::report::Results;
use crate::scenarios::{Ctx, Fresh, Plan};

/// The core of the servers; the load generator takes [`LOADGEN_CORE`].
const SERVER_CORE: usize = 0;
const LOADGEN_CORE: usize = 1;

struct Args {
    plan: Plan,
    smoke: bool,
    /// `--all-peers`: a smoke run with every peer (a quick check of the peers' setup).
    all_peers: bool,
    only: Option<Vec<String>>,
    targets: Option<Vec<String>>,
    baseline: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        plan: Plan::full(),
        smoke: false,
        all_peers: false,
        only: None,
        targets: None,
        baseline: None,
    };
    let list = |v: Option<String>, flag: &str| {
        v.map(|v| v.split(',').map(|s| s.trim().to_lowercase()).collect())
            .ok_or_else(|| format!("{flag} needs a comma-separated list"))
    };
    let mut rounds = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.plan = Plan::quick(),
            "--smoke" => {
                args.plan = Plan::smoke();
                args.smoke = true;
            }
            "--all-peers" => args.all_peers = true,
            "--hotpath" => args.only = Some(vec!["hotpath".to_owned()]),
            "--rounds" => {
                let n = it.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                rounds = Some(n.ok_or("--rounds needs a positive number")?);
            }
            "--only" => {
                let only: Vec<String> = list(it.next(), "--only")?;
                let known: Vec<&str> = ["idle", "echo", "broadcast", "crossnode", "hotpath"]
                    .into_iter()
                    .chain(Fresh::ALL.map(Fresh::name))
                    .collect();
                if let Some(unknown) = only.iter().find(|o| !known.contains(&o.as_str())) {
                    return Err(format!(
                        "--only: no scenario {unknown:?} (there are {})",
                        known.join(", ")
                    ));
                }
                args.only = Some(only);
            }
            "--targets" => args.targets = Some(list(it.next(), "--targets")?),
            "--baseline" => {
                let path = it.next().ok_or("--baseline needs the path of a binary")?;
                // Absolute: the servers run in the suite's cache folder.
                let path =
                    std::fs::canonicalize(&path).map_err(|e| format!("--baseline {path}: {e}"))?;
                args.baseline = Some(path);
            }
            other => return Err(format!("unknown argument {other:?} (see the doc of suite)")),
        }
    }
    if let Some(rounds) = rounds {
        args.plan.rounds = rounds;
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("suite: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the suite; `Ok(false)` when anything failed or went missing.
fn run() -> Result<bool, String> {
    let args = parse_args()?;
    let paths = Paths::discover();
    let wants = |scenario: &str| {
        args.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == scenario))
    };
    let measure_servers = ["idle", "echo", "broadcast"]
        .into_iter()
        .chain(Fresh::ALL.map(Fresh::name))
        .any(wants);

    let mut out = if measure_servers {
        format!(
            "## End-to-end suite, {} run ({} round(s), {:?} warm-up + {:?} measured)\n\n{}\n",
            args.plan.label,
            args.plan.rounds,
            args.plan.phases.warmup,
            args.plan.phases.measure,
            machine()
        )
    } else if wants("crossnode") {
        format!("## Cross-node fan-out\n\n{}\n", machine())
    } else {
        format!("## Instruction counts\n\n{}\n", machine())
    };
    let mut ok = true;
    if measure_servers {
        // Builds first, on every core, before the load generator pins itself.
        let (mut targets, skipped) = peers::prepare(
            &paths,
            Want {
                all_peers: !args.smoke || args.all_peers,
                baseline: args.baseline.clone(),
            },
        )?;
        if let Some(words) = &args.targets {
            // The baseline was asked for by name: `--targets` does not drop it.
            targets.retain(|t| {
                t.ours
                    || t.name == peers::BASELINE
                    || words
                        .iter()
                        .any(|w| t.name.to_lowercase().contains(w.as_str()))
            });
        }
        for line in &skipped {
            eprintln!("suite: {line}");
        }
        let server_core = pin_load_generator();
        let mut plan = args.plan.clone();
        raise_open_files(&mut plan);
        let ticks = clock_ticks();
        let ctx = Ctx {
            plan: &plan,
            ticks,
            server_core,
        };
        let mut results = Results {
            targets: targets.iter().map(|t| (t.name, t.ours)).collect(),
            ..Results::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            if wants("idle") {
                scenarios::idle(&ctx, &targets, &mut results).await;
            }
            if wants("echo") {
                scenarios::echo(&ctx, &targets, &mut results).await;
            }
            if wants("broadcast") {
                scenarios::broadcast(&ctx, &targets, &mut results).await;
            }
            for scenario in Fresh::ALL {
                if wants(scenario.name()) {
                    scenarios::fresh(&ctx, &targets, &mut results, scenario).await;
                }
            }
        });
        out.push_str(&format!(
            "Targets: {}. CPU time read from /proc/<pid>/stat at {ticks} ticks/s.\n",
            targets
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for line in &skipped {
            out.push_str(&format!("Skipped: {line}.\n"));
        }
        out.push_str(&results.machine_load());
        if server_core.is_none() {
            out.push_str("**Not pinned: fewer than 2 cores; figures are not comparable.**\n");
        }
        out.push('\n');
        out.push_str(&results.markdown(&report::targets(&results, &plan.keys())));
        if !results.errors.is_empty() {
            ok = false;
            out.push_str("\n### Errors and missing messages\n\n");
            for e in &results.errors {
                out.push_str(&format!("- {e}\n"));
            }
        }
        let findings = peers::log_findings(&paths);
        if !findings.is_empty() {
            out.push_str("\n### Warnings and errors in the servers' logs\n\n");
            for line in &findings {
                out.push_str(&format!("- `{line}`\n"));
            }
        }
        out.push_str(&format!(
            "\nServer logs: {}\n",
            paths.cache.join("logs").display()
        ));
    }
    if wants("crossnode") {
        let plan = crossnode::CrossPlan {
            rooms: if args.smoke {
                vec![50]
            } else {
                vec![100, 1000]
            },
            latency_sends: if args.smoke { 20 } else { 200 },
            deliveries: match args.plan.label {
                "smoke" => 20_000,
                "quick" => 1_000_000,
                _ => 2_000_000,
            },
            rounds: args.plan.rounds,
        };
        // The load generator on its core (the servers' scenarios pinned it already).
        let _ = pin_load_generator();
        out.push('\n');
        match crossnode::run(&paths, &plan, clock_ticks()) {
            Ok(section) => out.push_str(&section),
            Err(e) => {
                ok = false;
                out.push_str(&format!("crossnode failed: {e}\n"));
            }
        }
    }
    if wants("hotpath") && !args.smoke {
        out.push_str("\n### Instruction counts (callgrind)\n\n");
        match callgrind::run(&paths) {
            Ok(counts) => out.push_str(&callgrind::markdown(&counts)),
            Err(e) => {
                ok = false;
                out.push_str(&format!("callgrind failed: {e}\n"));
            }
        }
    }
    println!("{out}");
    let _ = std::fs::write(paths.cache.join("last-run.md"), &out);
    Ok(ok)
}

/// Pins this process (the load generator; threads started later inherit it) to its core,
/// and returns the core for the servers, or none on a machine with fewer than 2 cores.
fn pin_load_generator() -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("suite: WARNING: {cores} core(s): nothing pinned, figures not comparable");
        return None;
    }
    let mut set = CpuSet::new();
    let pinned = set
        .set(LOADGEN_CORE)
        .and_then(|()| sched_setaffinity(Pid::from_raw(0), &set));
    if let Err(e) = pinned {
        eprintln!("suite: WARNING: cannot pin the load generator to core {LOADGEN_CORE}: {e}");
    }
    Some(SERVER_CORE)
}

/// Raises the soft open-file limit to the hard one (the servers inherit it too), and holds
/// fewer idle connections if even the hard limit is too low.
fn raise_open_files(plan: &mut Plan) {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        eprintln!("suite: WARNING: cannot raise the open-file limit from {soft} to {hard}");
    }
    let room = getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(soft, _)| soft) as usize;
    // Keep a margin for the process's own files and the servers' listeners and logs.
    let most = room.saturating_sub(500);
    if plan.idle.1 > most {
        eprintln!(
            "suite: WARNING: open-file limit {room}: holding {most} idle connections, not {}",
            plan.idle.1
        );
        plan.idle.1 = most;
        plan.idle.0 = plan.idle.0.min(most / 2);
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 if unknown).
fn clock_ticks() -> f64 {
    vania_ws_bench::clock_ticks().unwrap_or_else(|| {
        eprintln!("suite: WARNING: CLK_TCK unknown, assuming 100");
        100.0
    })
}

/// The machine line of the report: date, cores, CPU model.
fn machine() -> String {
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d %H:%M %Z")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{date}, {cores} cores ({model}), load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
