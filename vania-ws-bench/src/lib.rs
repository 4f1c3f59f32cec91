//! Shared pieces of the benchmarks: timing rounds interleaved so that a noisy, shared machine
//! slows the baseline and the candidate alike, and reporting medians and their ratio.

use std::time::{Duration, Instant};

/// Runs `baseline` and `candidate` alternately for `rounds` rounds each and returns the
/// median time of each.
pub fn interleaved(
    rounds: usize,
    mut baseline: impl FnMut(),
    mut candidate: impl FnMut(),
) -> (Duration, Duration) {
    let mut base = Vec::with_capacity(rounds);
    let mut cand = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        baseline();
        base.push(start.elapsed());
        let start = Instant::now();
        candidate();
        cand.push(start.elapsed());
    }
    (median(base), median(cand))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// One line of a report: both medians, per operation, and the ratio candidate / baseline.
pub fn report(name: &str, ops: usize, baseline: Duration, candidate: Duration) -> String {
    let per_op = |d: Duration| d.as_nanos() as f64 / ops as f64;
    format!(
        "{name}: baseline {:.0} ns/op, candidate {:.0} ns/op, ratio {:.3}",
        per_op(baseline),
        per_op(candidate),
        candidate.as_secs_f64() / baseline.as_secs_f64()
    )
}

/// A process's CPU time so far, every thread, from a `/proc/<pid>/stat` file (or
/// `/proc/self/stat`): `(user, system)` in clock ticks (see [`clock_ticks`]).
pub fn cpu_ticks(stat_path: &str) -> std::io::Result<(u64, u64)> {
    let malformed = || std::io::Error::other(format!("{stat_path}: malformed"));
    let stat = std::fs::read_to_string(stat_path)?;
    // The command name (field 2) may hold spaces; the fields after it start past the last ')'.
    let (_, rest) = stat.rsplit_once(')').ok_or_else(malformed)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of the line, are 11 and 12 after "pid (comm)".
    let ticks = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(malformed)
    };
    Ok((ticks(11)?, ticks(12)?))
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`), if the system says.
pub fn clock_ticks() -> Option<f64> {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => Some(ticks as f64),
        _ => None,
    }
}
