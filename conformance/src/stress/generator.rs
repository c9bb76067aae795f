//! The random choices of a stress run: a small seeded PRNG and the operation mix each simulated
//! thread draws its next move from.
//!
//! Every choice of a run comes from here, and every generator is derived from the run's seed, so
//! a seed replays the same sequence of choices for each thread, given the same outcomes. (Which
//! operation wins a race is up to the operating system, so a replay follows the same script,
//! not necessarily the same interleaving.)

use std::time::Duration;

use super::history::{AUX_THREAD, History, Meta, Op, OpKind, Outcome};

/// SplitMix64: tiny, fast, statistically good enough for choosing operations, and fully
/// determined by its seed on every platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator that starts from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// A generator for one part of a run (`stream`), independent of the other parts' generators.
    pub fn derive(seed: u64, stream: u64) -> Rng {
        let mut mixer = Rng::new(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        Rng::new(mixer.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be zero.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        // Multiply-shift: the bias is at most n / 2^64, far below anything a run could see.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` (in per mille, so that the mix stays in integers).
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A duration drawn from an exponential distribution with the given mean, capped at eight
    /// times the mean.
    pub fn exponential(&mut self, mean: Duration) -> Duration {
        // A uniform number in (0, 1]; its negative logarithm is exponential with mean 1.
        let uniform = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let factor = -(1.0 - uniform).max(f64::MIN_POSITIVE).ln();
        mean.mul_f64(factor.min(8.0))
    }
}

/// The kind of timeout a lock object is opened with; an acquire uses its object's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// No timeout: a blocking acquire.
    Blocking,
    /// A zero timeout: a single attempt.
    Try,
    /// A random timeout, drawn when the object is opened.
    Timed,
}

impl Class {
    /// Every class, in a fixed order.
    pub const ALL: [Class; 3] = [Class::Blocking, Class::Try, Class::Timed];

    /// A one-letter name, used in handle names.
    pub fn letter(self) -> char {
        match self {
            Class::Blocking => 'b',
            Class::Try => 'z',
            Class::Timed => 't',
        }
    }
}

/// What a move does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Acquire the lock through the thread's object of the move's lock and class (opening it
    /// first if it is not open), and if that succeeds, hold, witness and release.
    Acquire,
    /// Close the thread's object of that lock and class, if it is open, so that the next
    /// acquire through it opens a new one; if it is not open, acquire instead.
    Reopen,
}

/// The next thing a simulated thread does when it is idle, with every random parameter it may
/// need drawn up front, so that a thread's sequence of moves depends on the seed alone, never on
/// what the operations answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub action: Action,
    /// The lock file.
    pub lock: u32,
    /// The kind of timeout of the object used.
    pub class: Class,
    /// The timeout of the object if this move opens one (`None`: no timeout).
    pub timeout_ms: Option<u64>,
    /// How long to hold the lock if the acquire succeeds.
    pub hold: Duration,
    /// Whether the release is sent from another thread of the process.
    pub release_elsewhere: bool,
    /// The pause after the move.
    pub think: Duration,
}

/// How often each kind of move happens, and the ranges of the random durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Weights of the classes of an acquire, in per mille: blocking, try, timed.
    pub classes: [u64; 3],
    /// Chance that a move is a re-open, per mille.
    pub reopen: u64,
    /// Chance that a release is sent from the process's other thread, per mille.
    pub release_elsewhere: u64,
    /// Range of a timed object's timeout, in milliseconds.
    pub timeout_ms: (u64, u64),
    /// Range of an ordinary hold, in microseconds.
    pub hold_us: (u64, u64),
    /// Chance of a long hold instead, per mille, and its range in microseconds.
    pub long_hold: (u64, (u64, u64)),
    /// Range of the pause between two moves, in microseconds.
    pub think_us: (u64, u64),
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            classes: [400, 300, 300],
            reopen: 120,
            release_elsewhere: 300,
            timeout_ms: (1, 120),
            hold_us: (0, 8_000),
            long_hold: (50, (20_000, 60_000)),
            think_us: (0, 4_000),
        }
    }
}

/// The choices of one simulated thread.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Rng,
    mix: Mix,
    locks: u32,
}

impl Generator {
    /// The generator of thread `thread` of process slot `slot`, for a run with `seed` and
    /// `locks` lock files.
    pub fn new(seed: u64, slot: u32, thread: u32, locks: u32, mix: Mix) -> Generator {
        let stream = (u64::from(slot) << 32) | u64::from(thread);
        Generator {
            rng: Rng::derive(seed, stream.wrapping_add(1)),
            mix,
            locks: locks.max(1),
        }
    }

    /// The next move. Every parameter is drawn, used or not, in a fixed order.
    pub fn next_move(&mut self) -> Move {
        let lock = self.rng.below(u64::from(self.locks)) as u32;
        let class = self.class();
        let action = if self.rng.chance(self.mix.reopen) {
            Action::Reopen
        } else {
            Action::Acquire
        };
        let timeout_ms = self.timeout_ms(class);
        let hold = self.hold();
        let release_elsewhere = self.rng.chance(self.mix.release_elsewhere);
        let (lo, hi) = self.mix.think_us;
        let think = Duration::from_micros(self.rng.between(lo, hi));
        Move {
            action,
            lock,
            class,
            timeout_ms,
            hold,
            release_elsewhere,
            think,
        }
    }

    fn class(&mut self) -> Class {
        let total: u64 = self.mix.classes.iter().sum();
        let mut pick = self.rng.below(total.max(1));
        for (class, weight) in Class::ALL.into_iter().zip(self.mix.classes) {
            if pick < weight {
                return class;
            }
            pick -= weight;
        }
        Class::Blocking
    }

    /// The timeout of a newly opened object of `class`, in milliseconds (`None`: no timeout).
    /// A timed object's timeout is drawn whatever the class, so that the draws stay aligned.
    fn timeout_ms(&mut self, class: Class) -> Option<u64> {
        let (lo, hi) = self.mix.timeout_ms;
        let timed = self.rng.between(lo, hi);
        match class {
            Class::Blocking => None,
            Class::Try => Some(0),
            Class::Timed => Some(timed),
        }
    }

    fn hold(&mut self) -> Duration {
        let (chance, (long_lo, long_hi)) = self.mix.long_hold;
        let long = self.rng.chance(chance);
        let (lo, hi) = if long {
            (long_lo, long_hi)
        } else {
            self.mix.hold_us
        };
        Duration::from_micros(self.rng.between(lo, hi))
    }
}

/// A correct history of about `events` operations, made up without running anything: holds of
/// three locks in turn by six threads, with single attempts and timed acquires that fail while
/// the lock is held, waiters that get the lock when it is released, and a witness in every
/// critical section. For the checker's benchmark and tests.
pub fn synthetic(events: usize, seed: u64) -> History {
    let mut synthetic = Synthetic::new(events, seed);
    while synthetic.ops.len() < events {
        synthetic.hold();
    }
    let ops = in_invoke_order(synthetic.ops);
    let start = SYNTHETIC_START;
    let end = ops
        .iter()
        .filter_map(|o| o.complete_ns)
        .max()
        .unwrap_or(start)
        + 1_000 * US;
    History {
        meta: Meta {
            implementation: "synthetic".into(),
            seed,
            procs: SYNTHETIC_AGENTS / 2,
            threads: 2,
            locks: SYNTHETIC_LOCKS,
            duration_ms: (end - start) / 1_000_000,
            timing_scale: 1.0,
            replay: String::new(),
            start_ns: start,
            end_ns: end,
        },
        kills: Vec::new(),
        ops,
    }
}

/// A microsecond in nanoseconds.
const US: u64 = 1_000;
/// The locks of a [`synthetic`] history.
const SYNTHETIC_LOCKS: u32 = 3;
/// The threads of a [`synthetic`] history, two per process.
const SYNTHETIC_AGENTS: u32 = 6;
/// When a [`synthetic`] history starts, in nanoseconds.
const SYNTHETIC_START: u64 = 1_000_000_000;

/// A [`synthetic`] history being made up, one hold at a time.
struct Synthetic {
    rng: Rng,
    ops: Vec<Op>,
    /// When each lock is next free.
    clock: [u64; SYNTHETIC_LOCKS as usize],
    /// The witness counter of each lock.
    counter: [u64; SYNTHETIC_LOCKS as usize],
    /// Lock objects opened so far.
    objects: u32,
    /// The acquire of the next hold of each lock, if a waiter has already begun it.
    waiting: [Option<(u32, u64)>; SYNTHETIC_LOCKS as usize],
}

impl Synthetic {
    fn new(events: usize, seed: u64) -> Synthetic {
        Synthetic {
            rng: Rng::new(seed),
            ops: Vec::with_capacity(events + 8),
            clock: [SYNTHETIC_START; SYNTHETIC_LOCKS as usize],
            counter: [0; SYNTHETIC_LOCKS as usize],
            objects: 0,
            waiting: [None; SYNTHETIC_LOCKS as usize],
        }
    }

    /// One hold of a lock: its acquire, a witness in the middle, the acquires of others that
    /// fail meanwhile, its release, and perhaps the next holder already waiting.
    fn hold(&mut self) {
        let lock = self.rng.below(u64::from(SYNTHETIC_LOCKS)) as u32;
        let l = lock as usize;
        let (agent, invoke) = self.waiting[l].take().unwrap_or_else(|| {
            (
                self.rng.below(u64::from(SYNTHETIC_AGENTS)) as u32,
                self.clock[l],
            )
        });
        let taken = self.clock[l] + self.rng.between(5, 20) * US;
        let mut acquire = synthetic_op(
            OpKind::Acquire,
            agent,
            lock,
            invoke,
            (invoke + US, taken),
            Outcome::Acquired,
        );
        acquire.object = Some(self.objects);
        acquire.timeout_ms = [None, Some(0), Some(50)][self.rng.below(3) as usize];
        self.objects += 1;
        let hold_ns = self.rng.between(2_000, 6_000) * US;
        let released = taken + 20 * US + hold_ns;
        let a = self.ops.len() as u32;
        self.ops.push(acquire);
        let middle = taken + 20 * US + hold_ns / 2;
        let mut witness = synthetic_op(
            OpKind::Witness,
            agent,
            lock,
            middle,
            (middle + US, middle + 20 * US),
            Outcome::Ok,
        );
        witness.hold = Some(a);
        witness.value = Some(self.counter[l]);
        witness.collision = Some(false);
        self.counter[l] += 1;
        self.ops.push(witness);
        self.failed_attempts(agent, lock, taken, hold_ns);
        let releaser = if self.rng.chance(300) {
            AUX_THREAD
        } else {
            agent % 2
        };
        let mut release = synthetic_op(
            OpKind::Release,
            agent,
            lock,
            released,
            (released + US, released + 5 * US),
            Outcome::Released,
        );
        release.thread = releaser;
        release.hold = Some(a);
        self.ops.push(release);
        self.clock[l] = released + 6 * US;
        // Sometimes the next holder was already waiting.
        if self.rng.chance(400) {
            let other = (agent + 1 + self.rng.below(u64::from(SYNTHETIC_AGENTS) - 1) as u32)
                % SYNTHETIC_AGENTS;
            self.waiting[l] = Some((other, taken + 40 * US));
        } else {
            self.clock[l] += self.rng.between(0, 3_000) * US;
        }
    }

    /// Others fail while `agent` holds `lock`: single attempts, and a timed acquire of 1 ms.
    fn failed_attempts(&mut self, agent: u32, lock: u32, taken: u64, hold_ns: u64) {
        for _ in 0..self.rng.below(3) {
            let at = taken + 30 * US + self.rng.below(hold_ns / 2);
            let other = (agent + 1 + self.rng.below(u64::from(SYNTHETIC_AGENTS) - 1) as u32)
                % SYNTHETIC_AGENTS;
            let mut attempt = synthetic_op(
                OpKind::Acquire,
                other,
                lock,
                at,
                (at + US, at + 3 * US),
                Outcome::WouldBlock,
            );
            attempt.timeout_ms = Some(0);
            self.ops.push(attempt);
        }
        if self.rng.chance(300) {
            let at = taken + 30 * US;
            let other = (agent + 1) % SYNTHETIC_AGENTS;
            let mut timed = synthetic_op(
                OpKind::Acquire,
                other,
                lock,
                at,
                (at + US, at + 1_100 * US),
                Outcome::TimedOut,
            );
            timed.timeout_ms = Some(1);
            self.ops.push(timed);
        }
    }
}

/// One answered operation of thread `agent % 2` of process `agent / 2`, invoked at `invoke`,
/// made between the two times of `call` and seen by the runner 10 µs after.
fn synthetic_op(
    kind: OpKind,
    agent: u32,
    lock: u32,
    invoke: u64,
    call: (u64, u64),
    outcome: Outcome,
) -> Op {
    let mut op = Op::new(kind, agent / 2, agent / 2, agent % 2, lock);
    op.invoke_ns = invoke;
    op.start_ns = Some(call.0);
    op.end_ns = Some(call.1);
    op.complete_ns = Some(call.1 + 10 * US);
    op.outcome = outcome;
    op
}

/// The operations in the order the runner would have sent them, with the holds renumbered.
fn in_invoke_order(ops: Vec<Op>) -> Vec<Op> {
    let mut order: Vec<u32> = (0..ops.len() as u32).collect();
    order.sort_by_key(|&i| ops[i as usize].invoke_ns);
    let mut new_index = vec![0u32; ops.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old as usize] = new as u32;
    }
    let mut slots: Vec<Option<Op>> = ops.into_iter().map(Some).collect();
    order
        .iter()
        .map(|&i| {
            let mut op = slots[i as usize]
                .take()
                .expect("each operation is moved once");
            op.hold = op.hold.map(|h| new_index[h as usize]);
            op
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_sequence_and_another_seed_another() {
        let draw = |seed| {
            let mut g = Generator::new(seed, 1, 0, 3, Mix::default());
            (0..200).map(|_| g.next_move()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn threads_of_one_run_get_independent_streams() {
        let mut a = Generator::new(7, 0, 0, 3, Mix::default());
        let mut b = Generator::new(7, 0, 1, 3, Mix::default());
        let a: Vec<_> = (0..50).map(|_| a.next_move()).collect();
        let b: Vec<_> = (0..50).map(|_| b.next_move()).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn draws_stay_in_their_ranges_and_cover_every_kind() {
        let mix = Mix::default();
        let mut g = Generator::new(42, 2, 1, 3, mix.clone());
        let mut locks = [0u32; 3];
        let mut classes = [0u32; 3];
        let (mut reopens, mut elsewhere, mut long) = (0, 0, 0);
        for _ in 0..3000 {
            let m = g.next_move();
            locks[m.lock as usize] += 1;
            classes[Class::ALL.iter().position(|c| *c == m.class).unwrap()] += 1;
            reopens += u32::from(m.action == Action::Reopen);
            elsewhere += u32::from(m.release_elsewhere);
            match (m.class, m.timeout_ms) {
                (Class::Blocking, None) | (Class::Try, Some(0)) => {}
                (Class::Timed, Some(t)) => {
                    assert!((mix.timeout_ms.0..=mix.timeout_ms.1).contains(&t))
                }
                other => panic!("a timeout that does not fit its class: {other:?}"),
            }
            assert!(m.hold <= Duration::from_micros(mix.long_hold.1.1));
            long += u32::from(m.hold >= Duration::from_micros(mix.long_hold.1.0));
            assert!(m.think <= Duration::from_micros(mix.think_us.1));
        }
        assert!(locks.iter().all(|&n| n > 800), "{locks:?}");
        assert!(classes.iter().all(|&n| n > 600), "{classes:?}");
        assert!((200..600).contains(&reopens), "{reopens}");
        assert!((700..1100).contains(&elsewhere), "{elsewhere}");
        assert!((80..250).contains(&long), "{long}");
    }

    #[test]
    fn below_and_exponential_are_bounded() {
        let mut rng = Rng::new(1);
        for n in [1, 2, 3, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(rng.below(n) < n);
            }
        }
        let mean = Duration::from_millis(10);
        let draws: Vec<Duration> = (0..2000).map(|_| rng.exponential(mean)).collect();
        assert!(draws.iter().all(|d| *d <= mean * 8));
        let average = draws.iter().sum::<Duration>() / 2000;
        assert!(
            (Duration::from_millis(8)..Duration::from_millis(12)).contains(&average),
            "{average:?}"
        );
    }
}
