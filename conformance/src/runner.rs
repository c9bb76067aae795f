//! Runs the tests of a plan: `jobs` at a time on a pool of threads, and every slow-tier test at
//! once on a thread of its own (they wait for tens of seconds and use almost nothing meanwhile,
//! so that the slow tier adds about its longest scenario to the wall time). Each finished test is
//! handed to the front end as it finishes ([`Finished`]), for it to render; the results come
//! back in the plan's order.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::plan::Test;
use crate::run::{self, Settings, TrialReport};
use crate::scenario::Tier;

/// One test that finished, as it finishes.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// Its index in the plan.
    pub index: usize,
    /// How many tests have finished, this one included.
    pub done: usize,
    /// How many tests the plan has.
    pub total: usize,
    /// The test.
    pub test: &'a Test,
    /// What the runner recorded.
    pub report: &'a TrialReport,
}

/// Runs `tests` with `settings`, `jobs` at a time (at least one) beside the slow-tier ones, and
/// calls `on_finished` on the calling thread for each test as it finishes. Returns the trials'
/// reports in the order of `tests`.
pub fn run(
    tests: &[Test],
    settings: &Settings,
    jobs: usize,
    mut on_finished: impl FnMut(Finished<'_>),
) -> Vec<TrialReport> {
    let (slow, fast): (Vec<usize>, Vec<usize>) =
        (0..tests.len()).partition(|&i| tests[i].scenario.tier == Tier::Slow);
    let queue = Arc::new(Mutex::new(fast.into_iter()));
    let (tx, rx) = mpsc::channel::<(usize, TrialReport)>();
    let total = tests.len();
    let play = |t: &Test| run::run_mixed(&t.players, &t.scenario, settings);
    std::thread::scope(|scope| {
        for i in slow {
            let tx = tx.clone();
            scope.spawn(move || {
                let _ = tx.send((i, play(&tests[i])));
            });
        }
        for _ in 0..jobs.max(1).min(total) {
            let (queue, tx) = (Arc::clone(&queue), tx.clone());
            scope.spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some(i) = next else {
                        return;
                    };
                    if tx.send((i, play(&tests[i]))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut results: Vec<Option<TrialReport>> = vec![None; total];
        for (done, (index, report)) in rx.into_iter().enumerate() {
            on_finished(Finished {
                index,
                done: done + 1,
                total,
                test: &tests[index],
                report: &report,
            });
            results[index] = Some(report);
        }
        results
            .into_iter()
            .map(|r| r.expect("every test reports"))
            .collect()
    })
}
