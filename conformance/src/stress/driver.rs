//! The stress driver: starts the workers, plays every simulated thread's random moves over the
//! worker protocol, kills and replaces workers, and records the history.
//!
//! One runner thread does everything: it sends commands, waits for replies and timers, and
//! stamps every command and reply on the shared monotonic clock. Each worker thread `tN` is one
//! simulated thread with its own [`Generator`]; the worker thread `aux` only sends the
//! releases "from another thread" of the process. The runner never takes a lock itself.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use lockspec_protocol::{Op as WireOp, PROTOCOL_VERSION, capability, now_ns};

use super::generator::{Action, Class, Generator, Mix, Move, Rng};
use super::history::{
    AUX_THREAD, History, Kill, Meta, Op, OpKind, Outcome, counter_path, lock_path, thread_name,
};
use crate::process::Implementation;
use crate::session::{Broken, Delivery, Session};
use crate::timing::{Timing, Window};

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Worker processes running at once.
    pub procs: u32,
    /// Simulated threads per worker.
    pub threads: u32,
    /// Lock files.
    pub locks: u32,
    /// How long new operations are started.
    pub duration: Duration,
    /// The seed of every random choice.
    pub seed: u64,
    /// The mean time between two kills of a worker; `None`: no kills.
    pub kill_every: Option<Duration>,
    /// The operation mix.
    pub mix: Mix,
    /// The margins.
    pub timing: Timing,
}

impl Config {
    /// The defaults of `cargo xtask stress`: 3 workers of 2 threads on 2 lock files for 5 s, a
    /// kill about every 700 ms.
    pub fn new(seed: u64) -> Config {
        Config {
            procs: 3,
            threads: 2,
            locks: 2,
            duration: Duration::from_secs(5),
            seed,
            kill_every: Some(Duration::from_millis(700)),
            mix: Mix::default(),
            timing: Timing::default(),
        }
    }
}

/// Why a run could not be completed: the worker broke, not the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveError {
    /// What happened.
    pub message: String,
    /// The tail of the stderr of the worker concerned, if one is.
    pub stderr: String,
}

impl fmt::Display for DriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.stderr.trim().is_empty() {
            write!(f, "\nstderr of the worker (last part):")?;
            for line in self
                .stderr
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                write!(f, "\n  | {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for DriveError {}

/// What a run recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The history.
    pub history: History,
    /// Remarks about the run (a worker without the witness, objects left unusable), for people.
    pub notes: Vec<String>,
}

/// Runs the stress mix in `dir` with worker slot `i` played by `imps[i]` (the last entry plays
/// the slots beyond the list), and returns the history. `replay` is the command that replays it.
///
/// # Errors
///
/// Returns a [`DriveError`] when a worker cannot be started, breaks the protocol or exits on its
/// own; the run stops there.
pub fn drive(
    imps: &[Implementation],
    dir: &Path,
    config: &Config,
    replay: &str,
) -> Result<Recorded, DriveError> {
    if imps.is_empty() {
        return Err(DriveError {
            message: "no implementation to run".into(),
            stderr: String::new(),
        });
    }
    let mut driver = Driver::new(imps, dir, config)?;
    driver.history.meta = Meta {
        implementation: imps
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        seed: config.seed,
        procs: config.procs,
        threads: config.threads,
        locks: config.locks,
        duration_ms: config.duration.as_millis() as u64,
        timing_scale: config.timing.scale(),
        replay: replay.to_owned(),
        start_ns: now_ns(),
        end_ns: 0,
    };
    let result = driver.run();
    driver.session.kill_all();
    driver.history.meta.end_ns = now_ns();
    result?;
    Ok(Recorded {
        history: driver.history,
        notes: driver.notes,
    })
}

/// One worker process slot and the worker currently playing it.
struct Slot {
    /// The worker's index in the session, which is also its incarnation.
    worker: usize,
    incarnation: u32,
    outstanding: HashMap<u64, Waiting>,
    /// Whether it answered `hello`, and when `hello` was sent.
    ready: bool,
    hello_sent: Instant,
    /// Whether a release may come from another thread than the acquire (the worker does not
    /// declare `no_release_any_thread`).
    release_any_thread: bool,
}

/// What a reply will answer.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    Hello,
    Op { op: u32, agent: usize },
}

/// A lock object of one simulated thread.
#[derive(Debug, Clone)]
struct Handle {
    name: String,
    object: u32,
    timeout_ms: Option<u64>,
}

/// Where a simulated thread stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its worker is starting.
    Starting,
    /// Its next move starts at `at`.
    Idle { at: Instant },
    /// Waiting for the reply to `op`.
    Busy { op: u32 },
    /// Holds the lock through the acquire `acquire` until `until`.
    Holding {
        lock: u32,
        class: Class,
        acquire: u32,
        until: Instant,
    },
    /// Finished: the run is over for it.
    Done,
}

/// One simulated thread.
struct Agent {
    slot: usize,
    thread: u32,
    generator: Generator,
    phase: Phase,
    handles: HashMap<(u32, Class), Handle>,
    /// Counts the objects it opened, to name them.
    opened: u32,
    /// What the pending operation is for.
    task: Task,
    /// The move being played.
    current: Option<Move>,
}

/// The context of an agent's pending operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    None,
    /// Opening an object in order to acquire through it.
    OpenThenAcquire {
        lock: u32,
        class: Class,
    },
    Close,
    Acquire {
        lock: u32,
        class: Class,
    },
    Witness {
        lock: u32,
        class: Class,
        acquire: u32,
    },
    Release {
        lock: u32,
        class: Class,
        acquire: u32,
        retried: bool,
    },
}

struct Driver<'a> {
    imps: &'a [Implementation],
    config: &'a Config,
    session: Session,
    slots: Vec<Slot>,
    /// The slot of each incarnation.
    incarnations: Vec<usize>,
    agents: Vec<Agent>,
    history: History,
    kills: Rng,
    next_kill: Option<Instant>,
    objects: u32,
    /// Whether the workers answer `witness`.
    witness: bool,
    stopping: bool,
    notes: Vec<String>,
}

impl<'a> Driver<'a> {
    fn new(
        imps: &'a [Implementation],
        dir: &'a Path,
        config: &'a Config,
    ) -> Result<Driver<'a>, DriveError> {
        let mut driver = Driver {
            imps,
            config,
            session: Session::new(dir),
            slots: Vec::new(),
            incarnations: Vec::new(),
            agents: Vec::new(),
            history: History::default(),
            kills: Rng::derive(config.seed, 0),
            next_kill: None,
            objects: 0,
            witness: true,
            stopping: false,
            notes: Vec::new(),
        };
        for slot in 0..config.procs as usize {
            let started = driver.start_worker(slot)?;
            driver.slots.push(started);
            for thread in 0..config.threads {
                driver.agents.push(Agent {
                    slot,
                    thread,
                    generator: Generator::new(
                        config.seed,
                        slot as u32,
                        thread,
                        config.locks,
                        config.mix.clone(),
                    ),
                    phase: Phase::Starting,
                    handles: HashMap::new(),
                    opened: 0,
                    task: Task::None,
                    current: None,
                });
            }
        }
        Ok(driver)
    }

    /// Starts a worker for `slot` and sends it `hello`.
    fn start_worker(&mut self, slot: usize) -> Result<Slot, DriveError> {
        let imp = self
            .imps
            .get(slot)
            .unwrap_or(&self.imps[self.imps.len() - 1]);
        if let Some(why) = &imp.unavailable {
            return Err(DriveError {
                message: format!("{} cannot run: {why}", imp.name),
                stderr: String::new(),
            });
        }
        let incarnation = self.incarnations.len();
        let worker = self
            .session
            .spawn(imp, format!("p{slot}#{incarnation}"), false)
            .map_err(|(broken, _)| DriveError {
                message: broken.message,
                stderr: String::new(),
            })?;
        debug_assert_eq!(worker, incarnation, "one session worker per incarnation");
        self.incarnations.push(slot);
        let hello = WireOp::Hello {
            protocol: Some(PROTOCOL_VERSION),
        };
        let seq = self
            .session
            .send(worker, None, hello)
            .map_err(|broken| self.broken(worker, broken))?;
        Ok(Slot {
            worker,
            incarnation: incarnation as u32,
            outstanding: HashMap::from([(seq, Waiting::Hello)]),
            ready: false,
            hello_sent: Instant::now(),
            release_any_thread: true,
        })
    }

    fn run(&mut self) -> Result<(), DriveError> {
        self.await_hellos()?;
        // The window starts when every worker is ready, however long a slow runtime took to
        // start, so that every run contends for its whole duration.
        let begin = Instant::now();
        let deadline = begin + self.config.duration;
        self.next_kill = self
            .config
            .kill_every
            .map(|mean| begin + self.kills.exponential(mean));
        let prompt = self.config.timing.window(Window::Prompt);
        let longest_timeout = Duration::from_millis(self.config.mix.timeout_ms.1);
        let longest_hold = Duration::from_micros(self.config.mix.long_hold.1.1);
        let drain_until = deadline + longest_timeout + longest_hold + prompt * 2;
        loop {
            let now = Instant::now();
            if !self.stopping && now >= deadline {
                self.stop(now);
            }
            if self.stopping && self.finished() {
                return Ok(());
            }
            if now >= drain_until {
                // Whatever is still unanswered stays pending: the checker judges it.
                return Ok(());
            }
            self.check_startup(now)?;
            self.timers(now)?;
            let wake = self.next_timer().unwrap_or(drain_until).min(drain_until);
            let wait = wake.saturating_duration_since(Instant::now());
            let wake_at = Instant::now() + wait;
            let mut next = self.session.next(wake_at);
            while let Some(delivery) = next.map_err(|b| self.broken(b.worker.unwrap_or(0), b))? {
                self.receive(delivery)?;
                next = self.session.try_next();
            }
        }
    }

    /// Waits until every worker has answered `hello`, up to the start-up margin.
    fn await_hellos(&mut self) -> Result<(), DriveError> {
        let deadline = Instant::now() + self.config.timing.startup();
        while let Some(slot) = self.slots.iter().find(|s| !s.ready) {
            let worker = slot.worker;
            match self
                .session
                .next(deadline)
                .map_err(|b| self.broken(b.worker.unwrap_or(worker), b))?
            {
                Some(delivery) => self.receive(delivery)?,
                None => {
                    return Err(DriveError {
                        message: format!(
                            "worker {} did not answer `hello` within {:?}",
                            self.session.name(worker),
                            self.config.timing.startup()
                        ),
                        stderr: self.session.stderr_tail(worker),
                    });
                }
            }
        }
        Ok(())
    }

    /// Stops starting moves: idle threads are done, holders release at once.
    fn stop(&mut self, now: Instant) {
        self.stopping = true;
        self.next_kill = None;
        for agent in &mut self.agents {
            match agent.phase {
                Phase::Idle { .. } | Phase::Starting => agent.phase = Phase::Done,
                Phase::Holding {
                    lock,
                    class,
                    acquire,
                    ..
                } => {
                    agent.phase = Phase::Holding {
                        lock,
                        class,
                        acquire,
                        until: now,
                    }
                }
                Phase::Busy { .. } | Phase::Done => {}
            }
        }
    }

    fn finished(&self) -> bool {
        self.agents.iter().all(|a| a.phase == Phase::Done)
            && self
                .slots
                .iter()
                .all(|s| s.outstanding.values().all(|w| matches!(w, Waiting::Hello)))
    }

    fn check_startup(&self, now: Instant) -> Result<(), DriveError> {
        let startup = self.config.timing.startup();
        for slot in &self.slots {
            if !slot.ready && !self.stopping && now > slot.hello_sent + startup {
                return Err(DriveError {
                    message: format!(
                        "worker p{}#{} did not answer `hello` within {:?}",
                        self.incarnations[slot.incarnation as usize], slot.incarnation, startup
                    ),
                    stderr: self.session.stderr_tail(slot.worker),
                });
            }
        }
        Ok(())
    }

    /// The earliest timer: an idle thread's next move, a hold's end, the next kill.
    fn next_timer(&self) -> Option<Instant> {
        let agents = self.agents.iter().filter_map(|a| match a.phase {
            Phase::Idle { at } => Some(at),
            Phase::Holding { until, .. } => Some(until),
            _ => None,
        });
        agents.chain(self.next_kill).min()
    }

    fn timers(&mut self, now: Instant) -> Result<(), DriveError> {
        if self.next_kill.is_some_and(|at| at <= now) {
            self.kill_one()?;
            let mean = self.config.kill_every.expect("kills are scheduled");
            self.next_kill = Some(Instant::now() + self.kills.exponential(mean));
        }
        for agent in 0..self.agents.len() {
            match self.agents[agent].phase {
                Phase::Idle { at } if at <= now => self.next_move(agent)?,
                Phase::Holding {
                    lock,
                    class,
                    acquire,
                    until,
                } if until <= now => self.end_hold(agent, lock, class, acquire)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends one command for `agent` (on its own thread, or on `aux`) and records it.
    fn send(
        &mut self,
        agent: usize,
        mut op: Op,
        command: WireOp,
        task: Task,
    ) -> Result<(), DriveError> {
        let worker = self.slots[self.agents[agent].slot].worker;
        op.invoke_ns = now_ns();
        let index = self.history.ops.len() as u32;
        let seq = self
            .session
            .send(worker, Some(&thread_name(op.thread)), command)
            .map_err(|broken| self.broken(worker, broken))?;
        let slot = &mut self.slots[self.agents[agent].slot];
        slot.outstanding
            .insert(seq, Waiting::Op { op: index, agent });
        self.history.ops.push(op);
        let a = &mut self.agents[agent];
        a.phase = Phase::Busy { op: index };
        a.task = task;
        Ok(())
    }

    fn op(&self, agent: usize, kind: OpKind, lock: u32) -> Op {
        let a = &self.agents[agent];
        Op::new(
            kind,
            a.slot as u32,
            self.slots[a.slot].incarnation,
            a.thread,
            lock,
        )
    }

    /// An idle thread's next move.
    fn next_move(&mut self, agent: usize) -> Result<(), DriveError> {
        if self.stopping {
            self.agents[agent].phase = Phase::Done;
            return Ok(());
        }
        let mv = self.agents[agent].generator.next_move();
        self.agents[agent].current = Some(mv);
        let (lock, class) = (mv.lock, mv.class);
        match mv.action {
            Action::Reopen if self.agents[agent].handles.contains_key(&(lock, class)) => {
                let handle = self.agents[agent]
                    .handles
                    .remove(&(lock, class))
                    .expect("checked");
                let mut op = self.op(agent, OpKind::Close, lock);
                op.object = Some(handle.object);
                let command = WireOp::Close {
                    handle: handle.name,
                };
                self.send(agent, op, command, Task::Close)
            }
            Action::Reopen | Action::Acquire => self.acquire(agent, lock, class),
        }
    }

    /// Acquires through the thread's object of that lock and class, opening it first if needed.
    fn acquire(&mut self, agent: usize, lock: u32, class: Class) -> Result<(), DriveError> {
        let Some(handle) = self.agents[agent].handles.get(&(lock, class)).cloned() else {
            let a = &mut self.agents[agent];
            let timeout_ms = a.current.and_then(|m| m.timeout_ms);
            a.opened += 1;
            let name = format!(
                "l{lock}{}_{}_{}",
                class.letter(),
                thread_name(a.thread),
                a.opened
            );
            let object = self.objects;
            self.objects += 1;
            a.handles.insert(
                (lock, class),
                Handle {
                    name: name.clone(),
                    object,
                    timeout_ms,
                },
            );
            let mut op = self.op(agent, OpKind::Open, lock);
            op.object = Some(object);
            op.timeout_ms = timeout_ms;
            let command = WireOp::Open {
                handle: name,
                path: lock_path(lock).into(),
                timeout_ms,
                callback: false,
            };
            return self.send(agent, op, command, Task::OpenThenAcquire { lock, class });
        };
        let mut op = self.op(agent, OpKind::Acquire, lock);
        op.object = Some(handle.object);
        op.timeout_ms = handle.timeout_ms;
        let command = WireOp::Acquire {
            handle: handle.name,
        };
        self.send(agent, op, command, Task::Acquire { lock, class })
    }

    /// The hold is over: witness, then release.
    fn end_hold(
        &mut self,
        agent: usize,
        lock: u32,
        class: Class,
        acquire: u32,
    ) -> Result<(), DriveError> {
        if self.witness {
            let mut op = self.op(agent, OpKind::Witness, lock);
            op.hold = Some(acquire);
            let command = WireOp::Witness {
                path: counter_path(lock).into(),
            };
            return self.send(
                agent,
                op,
                command,
                Task::Witness {
                    lock,
                    class,
                    acquire,
                },
            );
        }
        self.release(agent, lock, class, acquire, false)
    }

    fn release(
        &mut self,
        agent: usize,
        lock: u32,
        class: Class,
        acquire: u32,
        retry: bool,
    ) -> Result<(), DriveError> {
        let Some(handle) = self.agents[agent].handles.get(&(lock, class)).cloned() else {
            unreachable!("a held object stays open");
        };
        let elsewhere = self.agents[agent]
            .current
            .is_some_and(|m| m.release_elsewhere)
            && !retry
            && self.slots[self.agents[agent].slot].release_any_thread;
        let mut op = self.op(agent, OpKind::Release, lock);
        if elsewhere {
            op.thread = AUX_THREAD;
        }
        op.object = Some(handle.object);
        op.hold = Some(acquire);
        let command = WireOp::Release {
            handle: handle.name,
        };
        let task = Task::Release {
            lock,
            class,
            acquire,
            retried: retry,
        };
        self.send(agent, op, command, task)
    }

    /// A break the session saw, with the stderr of the worker it blames.
    fn broken(&self, worker: usize, broken: Broken) -> DriveError {
        DriveError {
            stderr: self.session.stderr_tail(broken.worker.unwrap_or(worker)),
            message: broken.message,
        }
    }

    /// Handles one message from a worker.
    fn receive(&mut self, delivery: Delivery) -> Result<(), DriveError> {
        let Delivery::Reply {
            worker,
            reply,
            at_ns,
            ..
        } = delivery
        else {
            // Events (contention callbacks) play no part in stress runs.
            return Ok(());
        };
        let slot_index = self.incarnations[worker];
        let broken = |driver: &Driver<'_>, what: String| DriveError {
            message: format!("worker {} {what}: {reply:?}", driver.session.name(worker)),
            stderr: driver.session.stderr_tail(worker),
        };
        let Some(waiting) = self.slots[slot_index].outstanding.remove(&reply.seq) else {
            // The session checked the seq; a reply of a worker since replaced is not awaited.
            return Ok(());
        };
        match waiting {
            Waiting::Hello => {
                let declares = |name: &str| reply.hello.capabilities.iter().any(|c| c == name);
                self.slots[slot_index].release_any_thread =
                    !declares(capability::NO_RELEASE_ANY_THREAD);
                self.slots[slot_index].ready = true;
                let at = Instant::now();
                for agent in self.agents.iter_mut().filter(|a| a.slot == slot_index) {
                    agent.phase = if self.stopping {
                        Phase::Done
                    } else {
                        Phase::Idle { at }
                    };
                }
                Ok(())
            }
            Waiting::Op { op, agent } => {
                let Some(outcome) = Outcome::parse(reply.outcome.as_str()) else {
                    return Err(broken(
                        self,
                        format!("answered with the outcome {}", reply.outcome),
                    ));
                };
                let record = &mut self.history.ops[op as usize];
                record.complete_ns = Some(at_ns);
                record.start_ns = reply.start_ns;
                record.end_ns = reply.t_ns;
                record.outcome = outcome;
                if record.op == OpKind::Witness && outcome == Outcome::Ok {
                    record.value = reply.value;
                    record.collision = reply.collision;
                    if record.value.is_none() || record.collision.is_none() {
                        return Err(broken(
                            self,
                            "answered `witness` without an integer `value` and a boolean `collision`".into(),
                        ));
                    }
                }
                self.answered(agent, op, outcome)
            }
        }
    }

    /// The agent's pending operation `op` was answered with `outcome`.
    fn answered(&mut self, agent: usize, op: u32, outcome: Outcome) -> Result<(), DriveError> {
        let task = std::mem::replace(&mut self.agents[agent].task, Task::None);
        let a = &mut self.agents[agent];
        let think = Instant::now() + a.current.map_or(Duration::ZERO, |m| m.think);
        match task {
            Task::None => unreachable!("a reply always answers a task"),
            Task::OpenThenAcquire { lock, class } => {
                if outcome == Outcome::Ok {
                    return self.acquire(agent, lock, class);
                }
                a.handles.remove(&(lock, class));
                self.note(format!(
                    "opening a lock object failed with {}",
                    outcome.name()
                ));
                self.agents[agent].phase = Phase::Idle { at: think };
            }
            Task::Close => a.phase = Phase::Idle { at: think },
            Task::Acquire { lock, class } => {
                if outcome == Outcome::Acquired {
                    let until = if self.stopping {
                        Instant::now()
                    } else {
                        Instant::now() + a.current.map_or(Duration::ZERO, |m| m.hold)
                    };
                    a.phase = Phase::Holding {
                        lock,
                        class,
                        acquire: op,
                        until,
                    };
                } else {
                    if !outcome.is_lock_error() {
                        self.note(format!("an acquire answered {}", outcome.name()));
                    }
                    self.agents[agent].phase = Phase::Idle { at: think };
                }
            }
            Task::Witness {
                lock,
                class,
                acquire,
            } => {
                if outcome == Outcome::Unsupported {
                    self.witness = false;
                    self.note("the worker does not support `witness`: no data witness".into());
                }
                return self.release(agent, lock, class, acquire, false);
            }
            Task::Release {
                lock,
                class,
                acquire,
                retried,
            } => {
                if outcome == Outcome::Released {
                    a.phase = Phase::Idle { at: think };
                } else if !retried {
                    return self.release(agent, lock, class, acquire, true);
                } else {
                    // The object may still hold the lock: never use it again, never close it.
                    a.handles.remove(&(lock, class));
                    self.note(format!(
                        "a release of a held lock answered {} twice; its object was abandoned",
                        outcome.name()
                    ));
                    self.agents[agent].phase = Phase::Idle { at: think };
                }
            }
        }
        if self.stopping && matches!(self.agents[agent].phase, Phase::Idle { .. }) {
            self.agents[agent].phase = Phase::Done;
        }
        Ok(())
    }

    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Kills one worker with SIGKILL, preferably one whose thread holds a lock, never one in
    /// the middle of a witness (a half-done witness would leave its sentinel behind), and
    /// starts a fresh worker in its slot.
    fn kill_one(&mut self) -> Result<(), DriveError> {
        let candidates: Vec<usize> = (0..self.slots.len())
            .filter(|&s| {
                self.slots[s].ready
                    && !self
                        .agents
                        .iter()
                        .any(|a| a.slot == s && matches!(a.task, Task::Witness { .. }))
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let holding: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&s| {
                self.agents
                    .iter()
                    .any(|a| a.slot == s && matches!(a.phase, Phase::Holding { .. }))
            })
            .collect();
        let pool = if !holding.is_empty() && self.kills.chance(700) {
            holding
        } else {
            candidates
        };
        let victim = pool[self.kills.below(pool.len() as u64) as usize];
        let sent_ns = now_ns();
        self.session.kill_tree(self.slots[victim].worker);
        let reaped_ns = now_ns();
        let old = self.slots[victim].incarnation;
        self.history.kills.push(Kill {
            proc: victim as u32,
            incarnation: old,
            sent_ns,
            reaped_ns,
        });
        for waiting in self.slots[victim].outstanding.values() {
            if let Waiting::Op { op, .. } = waiting {
                self.history.ops[*op as usize].outcome = Outcome::Killed;
            }
        }
        for agent in self.agents.iter_mut().filter(|a| a.slot == victim) {
            agent.phase = Phase::Starting;
            agent.task = Task::None;
            agent.handles.clear();
        }
        let fresh = self.start_worker(victim)?;
        self.slots[victim] = fresh;
        Ok(())
    }
}
