//! Talking to the workers: the handshake, sending commands, taking in replies and events as they
//! come, and checking a reply against what its step expects.

use std::time::{Duration, Instant};

use lockspec_protocol::{Event, Op, Reply, Span, now_ns};

use super::verdict::{NO_REPLY, Stop, broken};
use super::{FailKind, Trial, WorkerInfo, ms};
use crate::scenario::{Expect, Kind};
use crate::session::{Broken, BrokenKind, Delivery, Sent};
use crate::timing::{Timeout, Window};

/// A reply, as received.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) kind: Kind,
    pub(super) detail: Option<String>,
    /// When the runner read it.
    pub(super) at: Instant,
    /// The library call's start and end on the worker's clock (protocol 2).
    pub(super) span: Option<Span>,
    /// The command it answers.
    pub(super) sent: Sent,
    pub(super) reply: Reply,
}

impl Received {
    /// How long the call took: on the worker's clock when it gave its times, else from sending
    /// the command to reading the reply.
    pub(super) fn took(&self) -> Duration {
        self.span.map_or_else(
            || self.at.saturating_duration_since(self.sent.at),
            Span::duration,
        )
    }

    pub(super) fn detail(&self) -> String {
        self.detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    }
}

/// An operation left blocked on a thread.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) proc: usize,
    pub(super) seq: u64,
    pub(super) sent: Sent,
    pub(super) handle: String,
    /// The step that sent it, which is blamed if it turns out not to have blocked.
    pub(super) step: usize,
    /// When the first command that could free the lock (a release, a close, a kill) was sent
    /// after it, on the shared clock.
    pub(super) freed_from_ns: Option<u64>,
}

impl Trial<'_> {
    /// Shakes hands with every worker, records what each said about itself, and skips the
    /// scenario if one lacks a capability it requires.
    pub(super) fn handshake(&mut self) -> Result<(), Stop> {
        let deadline = Instant::now() + self.timing.startup();
        let mut early = Vec::new();
        self.session
            .handshake(deadline, &mut early)
            .map_err(|mut broken| {
                if broken.kind == BrokenKind::NoHello {
                    broken.message = format!(
                        "worker {} did not answer `hello` within {}",
                        broken.worker.map_or("?", |w| self.session.name(w)),
                        ms(self.timing.startup())
                    );
                }
                Stop::Protocol(broken)
            })?;
        for delivery in early {
            self.deliver(delivery)?;
        }
        let mut missing = Vec::new();
        for p in 0..self.session.len() {
            let hello = self.session.hello(p).cloned().unwrap_or_default();
            let caps: Vec<&str> = hello.capabilities.iter().map(String::as_str).collect();
            for req in &self.scenario.requires {
                if !req.met_by(&caps) {
                    missing.push(*req);
                }
            }
            self.workers.push(WorkerInfo {
                process: self.session.name(p).to_owned(),
                implementation: hello.implementation.clone(),
                version: hello.version.clone(),
                language: hello.language.clone(),
                capabilities: hello.capabilities.clone(),
                protocol: hello.protocol,
            });
        }
        if let Some(req) = missing.first() {
            return Err(Stop::Skip(req.unmet()));
        }
        Ok(())
    }

    pub(super) fn send(&mut self, p: usize, thread: &str, op: Op) -> Result<u64, Stop> {
        let frees = matches!(
            op,
            Op::Release { .. } | Op::Close { .. } | Op::FileClose { .. }
        );
        let acquiring = match &op {
            Op::Acquire { handle } => Some(handle.clone()),
            _ => None,
        };
        let seq = self.session.send(p, Some(thread), op).map_err(broken)?;
        if let Some(handle) = acquiring {
            *self.acquiring.entry((p, handle)).or_default() += 1;
        }
        if frees {
            let at_ns = self.session.sent(p, seq).map_or_else(now_ns, |s| s.at_ns);
            self.freeing(at_ns);
        }
        Ok(seq)
    }

    /// Notes that a command that may free a lock was sent at `at_ns`.
    pub(super) fn freeing(&mut self, at_ns: u64) {
        for pending in self.pending.values_mut() {
            pending.freed_from_ns.get_or_insert(at_ns);
        }
    }

    /// Handles one message from a worker.
    pub(super) fn deliver(&mut self, delivery: Delivery) -> Result<(), Stop> {
        match delivery {
            Delivery::Event {
                worker, event, at, ..
            } => self.take_event(worker, event, at),
            Delivery::Reply {
                worker,
                reply,
                sent,
                at,
                ..
            } => self.take_reply(worker, *reply, sent, at),
        }
    }

    /// Counts a call of a contention callback; one outside an unanswered acquire of its object
    /// breaks the protocol.
    fn take_event(&mut self, worker: usize, event: Event, at: Instant) -> Result<(), Stop> {
        let name = self.session.name(worker).to_owned();
        self.log(at, format!("{name} event callback on {}", event.handle));
        let key = (worker, event.handle);
        if self.acquiring.get(&key).copied().unwrap_or(0) == 0 {
            // PROTOCOL.md: an event is written before the reply to the acquire it
            // happened in, so none can come while no acquire on its object is answered.
            return Err(broken(Broken {
                kind: BrokenKind::StrayEvent,
                worker: Some(worker),
                message: format!(
                    "worker {name} reported a call of the contention callback of {} while no acquire on it was unanswered",
                    key.1
                ),
            }));
        }
        *self.callbacks.entry(key).or_default() += 1;
        Ok(())
    }

    /// Logs a reply and keeps it for whoever waits for it, after checking that it does not show
    /// a blocked operation to have never blocked.
    fn take_reply(
        &mut self,
        worker: usize,
        reply: Reply,
        sent: Sent,
        at: Instant,
    ) -> Result<(), Stop> {
        let name = self.session.name(worker);
        let span = reply.span();
        let took = span.map_or_else(
            || {
                format!(
                    "{} after sending",
                    ms(at.saturating_duration_since(sent.at))
                )
            },
            |s| format!("call took {}", ms(s.duration())),
        );
        let line = format!(
            "{name} seq {} -> {}{} ({took})",
            reply.seq,
            reply.outcome,
            reply
                .detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
        );
        self.log(at, line);
        if let (true, Some(handle)) = (sent.op == "acquire", &sent.handle)
            && let Some(n) = self.acquiring.get_mut(&(worker, handle.clone()))
        {
            *n = n.saturating_sub(1);
        }
        if let (true, Some(span)) = (sent.op == "release", span) {
            self.freed_ns.push(span.t_ns);
        }
        let received = Received {
            kind: reply.outcome,
            detail: reply.detail.clone(),
            at,
            span,
            sent,
            reply,
        };
        self.check_pending(worker, &received)?;
        self.replies.insert((worker, received.reply.seq), received);
        Ok(())
    }

    /// A blocked operation that answers before anything could free the lock did not block: the
    /// step that expected it to is blamed. Judged on the worker's clock, so a reply that the runner
    /// read late still counts as early when it was.
    pub(super) fn check_pending(&self, p: usize, received: &Received) -> Result<(), Stop> {
        let Some(pending) = self
            .pending
            .values()
            .find(|pending| pending.proc == p && pending.seq == received.reply.seq)
        else {
            return Ok(());
        };
        let Some(span) = received.span else {
            return Ok(());
        };
        if received.kind != Kind::Acquired {
            return Ok(());
        }
        if pending.freed_from_ns.is_none_or(|freed| span.t_ns < freed) {
            return Err(Stop::Fail {
                expected: "blocks until the lock is freed".into(),
                observed: format!(
                    "{}{} {} after it was sent, before anything freed the lock (the call took {})",
                    received.kind,
                    received.detail(),
                    ms(Duration::from_nanos(
                        span.t_ns.saturating_sub(pending.sent.at_ns)
                    )),
                    ms(span.duration())
                ),
                step: Some(pending.step),
                kind: FailKind::NotBlocked,
            });
        }
        Ok(())
    }

    /// Waits until `deadline` for the reply to `seq` of worker `p`.
    pub(super) fn wait_reply(
        &mut self,
        p: usize,
        seq: u64,
        deadline: Instant,
    ) -> Result<Option<Received>, Stop> {
        loop {
            if let Some(r) = self.replies.remove(&(p, seq)) {
                return Ok(Some(r));
            }
            match self.session.next(deadline).map_err(broken)? {
                Some(delivery) => self.deliver(delivery)?,
                None => return Ok(None),
            }
        }
    }

    /// Like [`Trial::wait_reply`], for windows in which a reply must *not* come: a reply that the
    /// runner received at or after `deadline` (because the runner itself was slow to look) does
    /// not count as arriving within the window; it is kept for a later `await`.
    pub(super) fn wait_reply_before(
        &mut self,
        p: usize,
        seq: u64,
        deadline: Instant,
    ) -> Result<Option<Received>, Stop> {
        match self.wait_reply(p, seq, deadline)? {
            Some(reply) if reply.at >= deadline => {
                self.replies.insert((p, seq), reply);
                Ok(None)
            }
            other => Ok(other),
        }
    }

    /// Handles whatever has already arrived, without waiting.
    pub(super) fn drain(&mut self) -> Result<(), Stop> {
        while let Some(delivery) = self.session.try_next().map_err(broken)? {
            self.deliver(delivery)?;
        }
        Ok(())
    }

    /// Sends a command and checks its reply against `expect` (not `blocks`).
    pub(super) fn exchange(
        &mut self,
        p: usize,
        thread: &str,
        op: Op,
        expect: &Expect,
        within: Option<Window>,
        timeout: Option<Timeout>,
    ) -> Result<Received, Stop> {
        let seq = self.send(p, thread, op)?;
        let from = Instant::now();
        self.expect_reply(p, seq, from, expect, within, timeout, false)
    }

    /// Sends a command that must answer `ok` promptly, and checks its reply.
    pub(super) fn exchange_ok(&mut self, p: usize, thread: &str, op: Op) -> Result<Received, Stop> {
        let prompt = Expect::OneOf([Kind::Ok].into());
        self.exchange(p, thread, op, &prompt, None, None)
    }

    /// Waits for the reply to `seq` and checks it. `from` is when the `within` window starts;
    /// `awaited` says that the operation was blocked, so that a success is a hand-off.
    #[expect(
        clippy::too_many_arguments,
        reason = "one place that checks every kind of reply"
    )]
    pub(super) fn expect_reply(
        &mut self,
        p: usize,
        seq: u64,
        from: Instant,
        expect: &Expect,
        within: Option<Window>,
        timeout: Option<Timeout>,
        awaited: bool,
    ) -> Result<Received, Stop> {
        let sent = self
            .session
            .sent(p, seq)
            .cloned()
            .or_else(|| self.replies.get(&(p, seq)).map(|r| r.sent.clone()))
            .expect("a command sent by this trial");
        let window = self.timing.window(within.unwrap_or(Window::Prompt));
        let mut deadline = from + window;
        let limit = timeout.and_then(|t| self.timing.timeout(t));
        let contention = expect.allows(Kind::TimedOut) || expect.allows(Kind::WouldBlock);
        if let (true, Some(t)) = (contention, limit) {
            deadline = deadline.max(sent.at + t + self.timing.overshoot() + window);
        }
        let Some(reply) = self.wait_reply(p, seq, deadline)? else {
            return Err(self.no_reply(p, seq, &sent, expect, deadline));
        };
        if !expect.allows(reply.kind) {
            return Err(Stop::fail(
                expect.to_string(),
                format!(
                    "{}{} after {}",
                    reply.kind,
                    reply.detail(),
                    ms(reply.took())
                ),
            ));
        }
        if let Some(measure) = self.measure(&reply, limit, awaited) {
            self.measures.push(measure);
        }
        if let Err(stop) = self.judge_time(&reply, limit, awaited) {
            if !self.recheck_noise(&stop, p)? {
                return Err(stop);
            }
            self.judge_time(&reply, limit, awaited)?;
        }
        Ok(reply)
    }

    /// Why a command got no reply by `deadline`: a lock that hung, or a worker stuck on a command
    /// that never waits for a lock.
    fn no_reply(
        &self,
        p: usize,
        seq: u64,
        sent: &Sent,
        expect: &Expect,
        deadline: Instant,
    ) -> Stop {
        let waited = ms(Instant::now().saturating_duration_since(sent.at));
        let op = sent.op;
        if !sent.calls_lock {
            return broken(Broken {
                kind: BrokenKind::Stuck,
                worker: Some(p),
                message: format!(
                    "worker {} gave no reply to `{op}` (seq {seq}) after {waited}, though `{op}` never waits for a lock; it is still running",
                    self.scenario.processes[p],
                ),
            });
        }
        Stop::failed(
            FailKind::NoReply,
            format!(
                "{expect} within {}",
                ms(deadline.saturating_duration_since(sent.at))
            ),
            format!("{NO_REPLY} {waited} (still blocked)"),
        )
    }
}
