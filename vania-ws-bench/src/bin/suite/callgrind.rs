//! The instruction-count guard: runs `hotpath` under `valgrind --tool=callgrind` twice per
//! path, with a small and a large count, and reports the difference in instructions divided
//! by the difference in operations (the setup, the same in both runs, cancels out).

use std::path::Path;
use std::process::Command;

use crate::peers::{self, Paths};

/// One path's result.
pub(crate) struct Count {
    pub(crate) path: &'static str,
    pub(crate) per: &'static str,
    pub(crate) instructions: f64,
}

/// (path, argument, small count, large count, operations per count unit, unit name)
const PATHS: [(&str, &str, u64, u64, u64, &str); 3] = [
    (
        "parse → dispatch → encode (one echo frame)",
        "echo",
        1_000,
        11_000,
        1,
        "frame",
    ),
    (
        "parse → dispatch → encode (one echo frame of 1 KiB)",
        "echo-1k",
        1_000,
        11_000,
        1,
        "frame",
    ),
    (
        "fan-out, to_room to 1,000 members",
        "fanout",
        16,
        64,
        1_000,
        "delivery",
    ),
];

/// Builds `hotpath` and counts its instructions per operation.
pub(crate) fn run(paths: &Paths) -> Result<Vec<Count>, String> {
    peers::build_bin(paths, "vania-ws-bench", "hotpath")?;
    let bin = paths.target.join("release/hotpath");
    let mut counts = Vec::new();
    for (path, arg, small, large, ops, per) in PATHS {
        let low = instructions(&bin, arg, small)?;
        let high = instructions(&bin, arg, large)?;
        counts.push(Count {
            path,
            per,
            instructions: (high as f64 - low as f64) / ((large - small) * ops) as f64,
        });
    }
    Ok(counts)
}

/// The instructions callgrind collected for one run of `hotpath arg count`.
fn instructions(bin: &Path, arg: &str, count: u64) -> Result<u64, String> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(bin)
        .arg(arg)
        .arg(count.to_string())
        .output()
        .map_err(|e| format!("cannot run valgrind (is it installed?): {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "callgrind run of hotpath {arg} {count} failed: {stderr}"
        ));
    }
    // "==123== Collected : 4567890"
    stderr
        .lines()
        .find_map(|line| line.split_once("Collected :").map(|(_, n)| n.trim()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no instruction count in callgrind's output: {stderr}"))
}

/// The markdown table of the counts.
pub(crate) fn markdown(counts: &[Count]) -> String {
    let mut out = String::from("| hot path | instructions per operation |\n|---|---|\n");
    for c in counts {
        out.push_str(&format!(
            "| {} | {:.0} per {} |\n",
            c.path, c.instructions, c.per
        ));
    }
    out
}
