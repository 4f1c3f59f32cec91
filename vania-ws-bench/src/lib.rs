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
