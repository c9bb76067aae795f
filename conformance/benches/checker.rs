//! The history checker's benchmark: a correct synthetic history of a million operations (or the
//! number given as the first argument), checked, against a baseline measured in the same run: a
//! plain sort and scan of the same operations for overlapping intervals.
//!
//! `cargo bench -p lockspec-conformance --bench checker [-- EVENTS]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use lockspec_conformance::stress::checker::{self, Config, Verdict};
use lockspec_conformance::stress::{History, synthetic};

/// How many times each measurement is repeated; the fastest counts.
const ROUNDS: usize = 3;

fn main() {
    let events = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| {
            a.parse::<usize>()
                .expect("the argument is a number of events")
        })
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let history = synthetic(events, 7);
    println!(
        "synthetic history: {} operations, {} locks, made in {:.3} s",
        history.ops.len(),
        history.meta.locks,
        started.elapsed().as_secs_f64()
    );

    let (baseline, overlaps) = fastest(|| sort_and_scan(&history));
    println!(
        "baseline (sort + scan):  {:.3} s ({overlaps} overlapping outer intervals)",
        baseline.as_secs_f64()
    );
    let config = Config::default();
    let (checking, report) = fastest(|| checker::check(&history, &config));
    println!(
        "checker:                 {:.3} s, verdict {}",
        checking.as_secs_f64(),
        report.verdict.name()
    );
    println!(
        "ratio checker / baseline: {:.1}; {:.0} ns per operation",
        checking.as_secs_f64() / baseline.as_secs_f64(),
        checking.as_nanos() as f64 / history.ops.len() as f64
    );
    let (json, size) = fastest(|| {
        let text = history.to_json();
        let back: History = serde_json::from_str(&text).expect("the history parses back");
        black_box(back);
        text.len()
    });
    println!(
        "JSON write + read:       {:.3} s ({:.0} MB)",
        json.as_secs_f64(),
        size as f64 / 1e6
    );
    if report.verdict != Verdict::Ok {
        eprintln!(
            "the synthetic history is correct, but the checker says:\n{}",
            report.summary()
        );
        std::process::exit(1);
    }
}

/// Runs `f` [`ROUNDS`] times; the shortest time and the last result.
fn fastest<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut result = None;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let value = black_box(f());
        best = best.min(started.elapsed());
        result = Some(value);
    }
    (best, result.expect("at least one round"))
}

/// The baseline: every operation's outer interval, sorted by lock and start, and one scan that
/// counts intervals starting before the furthest end seen so far on their lock.
fn sort_and_scan(history: &History) -> usize {
    let mut intervals: Vec<(u32, u64, u64)> = history
        .ops
        .iter()
        .map(|o| {
            (
                o.lock,
                o.invoke_ns,
                o.complete_ns.unwrap_or(history.meta.end_ns),
            )
        })
        .collect();
    intervals.sort_unstable();
    let mut overlaps = 0;
    let (mut current, mut furthest) = (u32::MAX, 0);
    for (lock, start, end) in intervals {
        if lock != current {
            (current, furthest) = (lock, end);
            continue;
        }
        if start < furthest {
            overlaps += 1;
        }
        furthest = furthest.max(end);
    }
    overlaps
}
