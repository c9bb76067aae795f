//! The checker on hand-written histories: each kind of finding, the conservative cases that must
//! not be findings, and clean histories.

use super::*;
use crate::stress::history::{Kill, Meta};

const MS: u64 = 1_000_000;

/// Builds histories by hand; times are in milliseconds from the start.
struct Builder {
    h: History,
    next_object: u32,
}

/// The four instants of an operation: runner sent, worker began, worker returned, runner got
/// the answer.
#[derive(Clone, Copy)]
struct T(u64, u64, u64, u64);

impl Builder {
    fn new() -> Builder {
        Builder {
            h: History {
                meta: Meta {
                    implementation: "hand".into(),
                    seed: 1,
                    procs: 3,
                    threads: 2,
                    locks: 1,
                    duration_ms: 10_000,
                    timing_scale: 1.0,
                    replay: String::new(),
                    start_ns: 0,
                    end_ns: 10_000 * MS,
                },
                kills: Vec::new(),
                ops: Vec::new(),
            },
            next_object: 0,
        }
    }

    fn push(&mut self, mut op: Op, t: Option<T>, outcome: Outcome) -> u32 {
        if let Some(T(invoke, start, end, complete)) = t {
            op.invoke_ns = invoke * MS;
            op.start_ns = Some(start * MS);
            op.end_ns = Some(end * MS);
            op.complete_ns = Some(complete * MS);
        }
        op.outcome = outcome;
        self.h.ops.push(op);
        (self.h.ops.len() - 1) as u32
    }

    /// An acquire by process `proc` (incarnation `proc` too) on lock 0.
    fn acquire(&mut self, proc: u32, timeout_ms: Option<u64>, t: T, outcome: Outcome) -> u32 {
        let mut op = Op::new(OpKind::Acquire, proc, proc, 0, 0);
        op.object = Some(self.next_object);
        self.next_object += 1;
        op.timeout_ms = timeout_ms;
        self.push(op, Some(t), outcome)
    }

    /// An acquire that was in flight when its worker was killed, or had no answer at the end.
    fn unanswered(&mut self, proc: u32, invoke: u64, outcome: Outcome) -> u32 {
        let mut op = Op::new(OpKind::Acquire, proc, proc, 0, 0);
        op.invoke_ns = invoke * MS;
        self.push(op, None, outcome)
    }

    fn release(&mut self, hold: u32, t: T, outcome: Outcome) -> u32 {
        let a = &self.h.ops[hold as usize];
        let mut op = Op::new(OpKind::Release, a.proc, a.incarnation, 0, a.lock);
        op.object = a.object;
        op.hold = Some(hold);
        self.push(op, Some(t), outcome)
    }

    fn witness(&mut self, hold: u32, t: T, value: u64, collision: bool) -> u32 {
        let a = &self.h.ops[hold as usize];
        let mut op = Op::new(OpKind::Witness, a.proc, a.incarnation, 0, a.lock);
        op.hold = Some(hold);
        op.value = Some(value);
        op.collision = Some(collision);
        self.push(op, Some(t), Outcome::Ok)
    }

    /// A hold from `at` to `until`: an acquire taking 1 ms, a witness in the middle, a release.
    fn hold(&mut self, proc: u32, at: u64, until: u64, value: u64) -> u32 {
        let a = self.acquire(proc, None, T(at, at, at + 1, at + 1), Outcome::Acquired);
        let mid = (at + until) / 2;
        self.witness(a, T(mid, mid, mid, mid + 1), value, false);
        self.release(a, T(until, until, until + 1, until + 1), Outcome::Released);
        a
    }

    fn kill(&mut self, proc: u32, sent: u64, reaped: u64) {
        self.h.kills.push(Kill {
            proc,
            incarnation: proc,
            sent_ns: sent * MS,
            reaped_ns: reaped * MS,
        });
    }

    fn check(&self) -> Report {
        check(&self.h, &Config::default())
    }
}

fn kinds(report: &Report) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = report.counts.keys().copied().collect();
    kinds.dedup();
    kinds
}

/// Holds in turn by three processes, with tries and a timed acquire failing while the lock is
/// held, a waiter that gets the lock when it is released, and a killed holder.
fn clean() -> Builder {
    let mut b = Builder::new();
    b.hold(0, 10, 20, 0);
    b.acquire(1, Some(0), T(12, 12, 12, 13), Outcome::WouldBlock);
    b.acquire(2, Some(5), T(13, 13, 18, 19), Outcome::TimedOut);
    // A waiter from 15 that gets the lock when it is released at 20.
    let w = b.acquire(1, None, T(15, 15, 21, 22), Outcome::Acquired);
    b.witness(w, T(25, 25, 26, 26), 1, false);
    b.release(w, T(30, 30, 31, 31), Outcome::Released);
    b.hold(2, 40, 50, 2);
    // Process 0 holds and is killed; process 1 gets the lock after the kill.
    let k = b.acquire(0, Some(100), T(60, 60, 61, 61), Outcome::Acquired);
    b.witness(k, T(62, 62, 63, 63), 3, false);
    b.unanswered(0, 64, Outcome::Killed);
    b.kill(0, 70, 71);
    let after = b.acquire(1, Some(0), T(72, 72, 72, 73), Outcome::Acquired);
    b.witness(after, T(74, 74, 74, 75), 4, false);
    b.release(after, T(76, 76, 77, 77), Outcome::Released);
    b
}

#[test]
fn a_clean_history_is_ok_with_no_findings() {
    let report = clean().check();
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
    assert!(report.findings.is_empty(), "{}", report.summary());
    assert_eq!(report.stats.acquired, 5);
    assert_eq!(report.stats.lock_errors, 2);
    assert_eq!(report.stats.witnesses, 5);
    assert_eq!(report.stats.indeterminate, 1);
    assert_eq!(report.stats.shared_clock_workers, 3);
}

#[test]
fn an_empty_history_is_unknown() {
    let report = Builder::new().check();
    assert!(matches!(report.verdict, Verdict::Unknown(_)), "{report:?}");
}

#[test]
fn a_history_without_contention_is_unknown() {
    let mut b = Builder::new();
    b.hold(0, 10, 20, 0);
    b.hold(1, 30, 40, 1);
    let report = b.check();
    assert_eq!(
        report.verdict,
        Verdict::Unknown(
            "no acquire waited or failed, so exclusion was never put to the test".into()
        ),
        "{}",
        report.summary()
    );
}

#[test]
fn two_definite_holds_that_overlap_are_two_holders() {
    let mut b = clean();
    // Process 2 acquires at 15 (returning at 16) while process 0 holds from 11 to 20.
    let a = b.acquire(2, Some(0), T(15, 15, 16, 16), Outcome::Acquired);
    let r = b.release(a, T(18, 18, 18, 19), Outcome::Released);
    let report = b.check();
    assert_eq!(report.verdict, Verdict::Violation);
    assert_eq!(kinds(&report), [Kind::Overlap]);
    let finding = &report.findings[0];
    assert!(finding.ops.contains(&0) && finding.ops.contains(&a) && finding.ops.contains(&r));
    assert!(
        finding.summary.contains("two holders of lock 0"),
        "{}",
        finding.summary
    );
    assert_eq!(finding.kind.rule(), "STR-1");
}

#[test]
fn holds_that_only_possibly_overlap_are_not_blamed() {
    let mut b = Builder::new();
    // A holds at least from 2 to 11 (its release began at 11 and returned at 12); B's acquire
    // returned at 12, so B may have taken the lock right after A's release took effect.
    let a = b.acquire(0, None, T(0, 1, 2, 3), Outcome::Acquired);
    b.release(a, T(10, 11, 12, 13), Outcome::Released);
    let c = b.acquire(1, None, T(5, 5, 12, 13), Outcome::Acquired);
    b.release(c, T(20, 20, 21, 21), Outcome::Released);
    let report = b.check();
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
}

#[test]
fn the_runner_bounds_alone_are_conservative_too() {
    let mut b = Builder::new();
    // The workers' timestamps are far outside the runner's bounds (another clock): the runner's
    // bounds are used, and within them the holds need not overlap.
    let a = b.acquire(0, None, T(0, 900, 901, 3), Outcome::Acquired);
    b.release(a, T(10, 902, 903, 13), Outcome::Released);
    let c = b.acquire(1, None, T(5, 904, 905, 13), Outcome::Acquired);
    b.release(c, T(20, 906, 907, 21), Outcome::Released);
    let report = b.check();
    assert_eq!(
        kinds(&report),
        [Kind::ClockNotShared],
        "{}",
        report.summary()
    );
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.stats.shared_clock_workers, 0);
}

#[test]
fn a_killed_holder_holds_until_the_kill_and_no_longer() {
    let mut b = clean();
    // Process 2 acquires at 68, before process 0 (holding since 61) was killed at 70.
    let a = b.acquire(2, Some(0), T(68, 68, 68, 69), Outcome::Acquired);
    b.release(a, T(69, 69, 69, 69), Outcome::Released);
    let report = b.check();
    assert_eq!(kinds(&report), [Kind::Overlap], "{}", report.summary());
}

#[test]
fn operations_in_flight_at_a_kill_are_not_violations() {
    let mut b = clean();
    // An acquire of process 2 in flight when process 2 was killed: whatever it did is unknown.
    b.unanswered(2, 14, Outcome::Killed);
    b.kill(2, 16, 17);
    let report = b.check();
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
}

#[test]
fn a_collision_is_two_holders() {
    let mut b = clean();
    let a = b.acquire(2, Some(0), T(80, 80, 80, 81), Outcome::Acquired);
    let w = b.witness(a, T(82, 82, 82, 83), 5, true);
    b.release(a, T(84, 84, 84, 85), Outcome::Released);
    let report = b.check();
    assert_eq!(kinds(&report), [Kind::Collision], "{}", report.summary());
    assert!(report.findings[0].ops.contains(&w));
}

#[test]
fn two_witnesses_reading_one_value_are_a_lost_update() {
    let mut b = clean();
    let a = b.acquire(2, Some(0), T(80, 80, 80, 81), Outcome::Acquired);
    let w = b.witness(a, T(82, 82, 82, 83), 4, false);
    b.release(a, T(84, 84, 84, 85), Outcome::Released);
    let report = b.check();
    assert_eq!(kinds(&report), [Kind::LostUpdate], "{}", report.summary());
    assert!(report.findings[0].ops.contains(&w));
    assert!(
        report.findings[0]
            .summary
            .contains("both read the counter as 4")
    );
}

#[test]
fn a_counter_that_skips_is_a_lost_update() {
    let mut b = clean();
    let a = b.acquire(2, Some(0), T(80, 80, 80, 81), Outcome::Acquired);
    b.witness(a, T(82, 82, 82, 83), 7, false);
    b.release(a, T(84, 84, 84, 85), Outcome::Released);
    let report = b.check();
    assert_eq!(kinds(&report), [Kind::LostUpdate], "{}", report.summary());
    assert!(
        report.findings[0].summary.contains("went from 4"),
        "{}",
        report.summary()
    );
}

#[test]
fn a_broken_witness_turns_off_the_gap_check_only() {
    let mut b = clean();
    let a = b.acquire(2, Some(0), T(80, 80, 80, 81), Outcome::Acquired);
    let mut lost = Op::new(OpKind::Witness, 2, 2, 0, 0);
    lost.hold = Some(a);
    b.push(lost, Some(T(82, 82, 82, 83)), Outcome::IoError);
    b.release(a, T(84, 84, 84, 85), Outcome::Released);
    let c = b.acquire(1, Some(0), T(90, 90, 90, 91), Outcome::Acquired);
    b.witness(c, T(92, 92, 92, 93), 6, false);
    b.release(c, T(94, 94, 94, 95), Outcome::Released);
    let report = b.check();
    assert_eq!(
        kinds(&report),
        [Kind::WitnessBroken],
        "{}",
        report.summary()
    );
    assert_eq!(report.verdict, Verdict::Ok);
}

#[test]
fn a_timed_acquire_that_fails_before_its_timeout_is_early() {
    let mut b = clean();
    let early = b.acquire(2, Some(100), T(12, 12, 60, 61), Outcome::TimedOut);
    let report = b.check();
    assert_eq!(kinds(&report), [Kind::EarlyTimeout], "{}", report.summary());
    assert_eq!(report.findings[0].ops, [early]);
    assert_eq!(report.findings[0].kind.rule(), "TMO-3");
}

#[test]
fn an_acquire_without_timeout_never_fails_with_a_lock_error() {
    let mut b = clean();
    b.acquire(2, None, T(12, 12, 14, 15), Outcome::TimedOut);
    let report = b.check();
    assert_eq!(kinds(&report), [Kind::EarlyTimeout], "{}", report.summary());
}

#[test]
fn acquires_that_return_long_after_their_timeout_are_late() {
    let mut b = clean();
    // A 100 ms timeout that fires after 1.5 s, and a single attempt that takes 2.5 s.
    b.acquire(2, Some(100), T(100, 100, 1600, 1601), Outcome::TimedOut);
    b.acquire(1, Some(0), T(100, 100, 2600, 2601), Outcome::WouldBlock);
    // Within the margins: 100 ms + 900 ms, and a single attempt of 1 s.
    b.acquire(2, Some(100), T(2000, 2000, 3000, 3001), Outcome::TimedOut);
    b.acquire(1, Some(0), T(2000, 2000, 3000, 3001), Outcome::WouldBlock);
    b.hold(0, 99, 3100, 5);
    let report = b.check();
    assert_eq!(kinds(&report), [Kind::LateReturn], "{}", report.summary());
    assert_eq!(report.counts[&Kind::LateReturn], 2);
}

#[test]
fn a_lock_error_while_no_one_holds_or_acquires_is_a_violation() {
    let mut b = clean();
    // After the killed holder's prompt margin (killed at 70, reaped at 71, margin 2 s).
    let try_ = b.acquire(2, Some(0), T(3000, 3000, 3000, 3001), Outcome::WouldBlock);
    let report = b.check();
    assert_eq!(
        kinds(&report),
        [Kind::LockErrorWhileFree],
        "{}",
        report.summary()
    );
    assert_eq!(report.findings[0].ops, [try_]);
}

#[test]
fn a_lock_error_while_another_acquire_is_in_progress_is_not_blamed() {
    let mut b = clean();
    // A timed acquire that itself fails is in progress: it may have claimed the lock briefly.
    b.acquire(1, Some(50), T(2995, 2995, 3045, 3046), Outcome::TimedOut);
    b.acquire(2, Some(0), T(3000, 3000, 3000, 3001), Outcome::WouldBlock);
    let report = b.check();
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
}

#[test]
fn a_lock_error_within_the_prompt_margin_after_a_kill_is_not_blamed() {
    let mut b = clean();
    // The holder killed at 70 (reaped at 71) may take up to `prompt` to let go.
    b.acquire(2, Some(0), T(1000, 1000, 1000, 1001), Outcome::WouldBlock);
    let report = b.check();
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
    let mut b = clean();
    b.acquire(2, Some(0), T(3000, 3000, 3000, 3001), Outcome::WouldBlock);
    assert_eq!(kinds(&b.check()), [Kind::LockErrorWhileFree]);
}

#[test]
fn a_waiter_left_waiting_on_a_free_lock_is_not_woken() {
    let mut b = clean();
    // Free from 2071 (the killed holder's margin); the waiter from 100 gets it only at 9000.
    let w = b.acquire(2, None, T(100, 100, 9000, 9001), Outcome::Acquired);
    b.release(w, T(9002, 9002, 9003, 9003), Outcome::Released);
    let report = b.check();
    assert_eq!(
        kinds(&report),
        [Kind::WaiterNotWoken],
        "{}",
        report.summary()
    );
    assert_eq!(report.findings[0].ops, [w]);
}

#[test]
fn a_waiter_still_pending_at_the_end_on_a_free_lock_is_not_woken() {
    let mut b = clean();
    b.unanswered(2, 100, Outcome::Pending);
    let report = b.check();
    assert_eq!(
        kinds(&report),
        [Kind::WaiterNotWoken],
        "{}",
        report.summary()
    );
}

#[test]
fn a_long_wait_behind_a_long_hold_is_fine() {
    let mut b = clean();
    b.hold(0, 100, 4900, 5);
    let w = b.acquire(2, None, T(150, 150, 4902, 4903), Outcome::Acquired);
    b.witness(w, T(4904, 4904, 4904, 4905), 6, false);
    b.release(w, T(4906, 4906, 4907, 4907), Outcome::Released);
    let report = b.check();
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
}

#[test]
fn a_refused_release_of_a_held_lock_is_a_violation() {
    let mut b = clean();
    let a = b.acquire(2, Some(0), T(80, 80, 80, 81), Outcome::Acquired);
    let refused = b.release(a, T(82, 82, 82, 83), Outcome::NotHeld);
    b.release(a, T(84, 84, 84, 85), Outcome::Released);
    let report = b.check();
    assert_eq!(
        kinds(&report),
        [Kind::ReleaseRefused],
        "{}",
        report.summary()
    );
    assert_eq!(report.findings[0].ops, [a, refused]);
}

#[test]
fn a_waiter_overtaken_many_times_is_a_warning_not_a_violation() {
    let mut b = clean();
    let w = b.acquire(2, None, T(100, 100, 1000, 1001), Outcome::Acquired);
    for k in 0..45 {
        let at = 110 + k * 20;
        b.hold(k as u32 % 2, at, at + 10, 5 + k);
    }
    b.witness(w, T(1002, 1002, 1002, 1003), 50, false);
    b.release(w, T(1004, 1004, 1005, 1005), Outcome::Released);
    let report = b.check();
    assert_eq!(kinds(&report), [Kind::Starvation], "{}", report.summary());
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.findings[0].ops, [w]);
    assert!(
        report.findings[0].summary.contains("45 acquires"),
        "{}",
        report.summary()
    );
}

#[test]
fn findings_beyond_the_limit_are_counted_not_kept() {
    let mut b = Builder::new();
    for k in 0..30 {
        let at = 10 + k * 10;
        b.hold(0, at, at + 8, k);
        let c = b.acquire(
            1,
            Some(0),
            T(at + 2, at + 2, at + 3, at + 3),
            Outcome::Acquired,
        );
        b.release(c, T(at + 4, at + 4, at + 5, at + 5), Outcome::Released);
    }
    let report = b.check();
    assert_eq!(report.counts[&Kind::Overlap], 30);
    assert_eq!(report.findings.len(), Config::default().per_kind);
}

#[test]
fn gaps_find_the_longest_free_stretch_in_any_window() {
    let busy = |lo: u64, hi: u64| Span { lo, hi };
    let gaps = Gaps::new(
        vec![
            busy(10, 20),
            busy(15, 30),
            busy(35, 40),
            busy(60, 61),
            busy(62, 90),
        ],
        0,
        100,
    );
    let found = |lo, hi| gaps.longest_within(lo, hi).map(|g| (g.lo, g.hi));
    assert_eq!(found(0, 100), Some((40, 60)));
    assert_eq!(found(12, 38), Some((30, 35)));
    assert_eq!(found(45, 95), Some((45, 60)));
    assert_eq!(found(63, 89), None);
    assert_eq!(found(0, 5), Some((0, 5)));
    assert_eq!(found(85, 100), Some((90, 100)));
    // Many gaps: the sparse table agrees with a scan.
    let many: Vec<Span> = (0..200u64)
        .map(|i| busy(i * 10, i * 10 + 10 - (i * 7 % 9)))
        .collect();
    let gaps = Gaps::new(many, 0, 2000);
    for (lo, hi) in [(0, 2000), (33, 1777), (500, 510), (1234, 1999)] {
        let scan = gaps
            .gaps
            .iter()
            .map(|g| (g.lo.max(lo), g.hi.min(hi)))
            .filter(|(a, b)| a < b)
            .map(|(a, b)| b - a)
            .max();
        assert_eq!(gaps.longest_within(lo, hi).map(|g| g.hi - g.lo), scan);
    }
}

#[test]
fn a_synthetic_history_is_clean_and_an_injected_overlap_is_found() {
    let history = crate::stress::synthetic(20_000, 5);
    let report = check(&history, &Config::default());
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
    assert!(
        report.counts.keys().all(|k| *k == Kind::Starvation),
        "{}",
        report.summary()
    );
    let mut broken = history;
    let acquire = broken
        .ops
        .iter()
        .position(|o| {
            o.op == OpKind::Acquire && o.outcome == Outcome::Acquired && o.timeout_ms == Some(0)
        })
        .unwrap();
    // Make a failed try succeed instead, in the middle of someone else's hold.
    let victim = broken
        .ops
        .iter()
        .enumerate()
        .skip(acquire + 100)
        .find(|(_, o)| o.op == OpKind::Acquire && o.outcome == Outcome::WouldBlock)
        .map(|(i, _)| i)
        .unwrap();
    broken.ops[victim].outcome = Outcome::Acquired;
    let mut release = broken.ops[victim].clone();
    release.op = OpKind::Release;
    release.hold = Some(victim as u32);
    release.outcome = Outcome::Released;
    let end = release.end_ns.unwrap();
    release.invoke_ns = end + 1;
    release.start_ns = Some(end + 2);
    release.end_ns = Some(end + 3);
    release.complete_ns = Some(end + 4);
    broken.ops.push(release);
    let report = check(&broken, &Config::default());
    assert_eq!(report.verdict, Verdict::Violation, "{}", report.summary());
    assert_eq!(report.counts[&Kind::Overlap], 1, "{}", report.summary());
}
