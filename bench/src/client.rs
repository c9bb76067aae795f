//! The benchmark's side of the worker protocol: two workers of one implementation, a holder and
//! a waiter, driven through the one protocol client ([`Session`]), and the worker's own times of
//! each library call. The benchmark asks for no contention callbacks, so events are ignored.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use lockspec_conformance::process::Implementation;
use lockspec_conformance::session::{Delivery, Session};
use lockspec_protocol::{Command, Hello, Kind, Op, Reply, Span};

/// How long a worker gets to answer `hello`.
const STARTUP: Duration = Duration::from_secs(20);

/// Which of the two workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The worker that holds the lock while the other waits.
    Holder,
    /// The worker that waits.
    Waiter,
}

impl Role {
    /// The worker's index in the session: they are started in this order.
    fn index(self) -> usize {
        match self {
            Role::Holder => 0,
            Role::Waiter => 1,
        }
    }

    /// The worker's name in messages.
    fn name(self) -> &'static str {
        match self {
            Role::Holder => "holder",
            Role::Waiter => "waiter",
        }
    }
}

/// The two running workers of one implementation.
#[derive(Debug)]
pub struct Workers {
    session: Session,
    /// Replies received but not yet asked for, by worker and `seq`.
    early: HashMap<(usize, u64), Reply>,
}

impl Workers {
    /// Starts the holder and the waiter of `imp` in `dir`, and shakes hands with both.
    ///
    /// # Errors
    ///
    /// When the implementation is unavailable, a process cannot start, or a worker does not
    /// answer `hello` in time with a protocol version that the session speaks.
    pub fn start(imp: &Implementation, dir: &Path) -> Result<Workers, String> {
        if let Some(why) = &imp.unavailable {
            return Err(why.clone());
        }
        let mut session = Session::new(dir);
        for role in [Role::Holder, Role::Waiter] {
            let w = session
                .spawn(imp, role.name(), false)
                .map_err(|(broken, _)| broken.to_string())?;
            debug_assert_eq!(w, role.index());
        }
        let mut other = Vec::new();
        session
            .handshake(Instant::now() + STARTUP, &mut other)
            .map_err(|broken| broken.to_string())?;
        let mut workers = Workers {
            session,
            early: HashMap::new(),
        };
        for delivery in other {
            workers.keep(delivery);
        }
        Ok(workers)
    }

    /// What `role` said about itself in its `hello` reply.
    pub fn hello(&self, role: Role) -> &Hello {
        self.session
            .hello(role.index())
            .expect("the workers have shaken hands")
    }

    /// The process ID of `role`.
    pub fn pid(&self, role: Role) -> u32 {
        self.session.pid(role.index())
    }

    /// Sends `op` to `role` on `thread` (`None`: the default thread) and returns its `seq`.
    ///
    /// # Errors
    ///
    /// When the worker's stdin cannot be written.
    pub fn send(&mut self, role: Role, thread: Option<&str>, op: Op) -> Result<u64, String> {
        self.session
            .send(role.index(), thread, op)
            .map_err(|broken| broken.to_string())
    }

    /// The reply of `role` to `seq`, waiting up to `within`.
    ///
    /// # Errors
    ///
    /// When no reply comes in time, or a worker breaks the protocol or exits.
    pub fn reply(&mut self, role: Role, seq: u64, within: Duration) -> Result<Reply, String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(reply) = self.early.remove(&(role.index(), seq)) {
                return Ok(reply);
            }
            match self.session.next(deadline).map_err(|b| b.to_string())? {
                Some(delivery) => self.keep(delivery),
                None => {
                    return Err(format!(
                        "the {} did not answer command {seq} within {within:?}",
                        role.name()
                    ));
                }
            }
        }
    }

    /// The reply of `role` to `seq` if it has already arrived.
    ///
    /// # Errors
    ///
    /// When a worker breaks the protocol or exits.
    pub fn reply_now(&mut self, role: Role, seq: u64) -> Result<Option<Reply>, String> {
        while let Some(delivery) = self.session.try_next().map_err(|b| b.to_string())? {
            self.keep(delivery);
        }
        Ok(self.early.remove(&(role.index(), seq)))
    }

    /// Sends `op` to `role` on `thread` and expects the outcome `expected` within `within`.
    ///
    /// # Errors
    ///
    /// As [`Workers::send`] and [`Workers::reply`], and when the outcome is another.
    pub fn expect(
        &mut self,
        role: Role,
        thread: Option<&str>,
        op: Op,
        expected: Kind,
        within: Duration,
    ) -> Result<Reply, String> {
        let shown = op.clone();
        let seq = self.send(role, thread, op)?;
        let reply = self.reply(role, seq, within)?;
        if reply.outcome == expected {
            Ok(reply)
        } else {
            let command = Command {
                seq,
                thread: thread.map(str::to_owned),
                op: shown,
            };
            Err(format!(
                "the {} answered {} with {}, expected {expected}",
                role.name(),
                command.to_line(),
                reply.to_line()
            ))
        }
    }

    /// Keeps a reply for [`Workers::reply`]; events are ignored.
    fn keep(&mut self, delivery: Delivery) {
        if let Delivery::Reply { worker, reply, .. } = delivery {
            self.early.insert((worker, reply.seq), *reply);
        }
    }
}

/// The worker's times of the library call that `reply` answers.
///
/// # Errors
///
/// When the reply lacks `start_ns` or `t_ns` (a version 1 worker may): the benchmark needs the
/// worker's own times.
pub fn span(reply: &Reply) -> Result<Span, String> {
    reply.span().ok_or_else(|| {
        format!(
            "the reply {} has no `start_ns` and `t_ns`; the benchmark needs the times that \
             spec/PROTOCOL.md asks of replies to acquire and release",
            reply.to_line()
        )
    })
}
