//! The steps on the workers' processes: `spawn_child` (a child that the worker starts and the
//! runner kills with it) and `kill` (the worker dies holding whatever it held).

use std::time::Instant;

use lockspec_protocol::{Op, now_ns};

use super::Trial;
use super::verdict::Stop;

impl Trial<'_> {
    /// `spawn_child`: the worker starts a child process and reports its ID.
    pub(super) fn spawn_child(
        &mut self,
        process: &str,
        thread: &str,
        child: &str,
    ) -> Result<(), Stop> {
        let p = self.proc(process);
        let op = Op::SpawnChild {
            child: Some(child.to_owned()),
        };
        let reply = self.exchange_ok(p, thread, op)?;
        match reply.reply.pid {
            Some(pid) => self.session.add_child(p, pid),
            None => {
                return Err(Stop::Broken(format!(
                    "worker {process} answered spawn_child without a `pid`"
                )));
            }
        }
        Ok(())
    }

    /// `kill`: kills the worker and reaps it, so that whatever it held is free from then on;
    /// what it had pending is forgotten.
    pub(super) fn kill(&mut self, process: &str) -> Result<(), Stop> {
        let p = self.proc(process);
        self.freeing(now_ns());
        self.session
            .kill(p)
            .map_err(|e| Stop::Broken(format!("cannot kill worker {process}: {e}")))?;
        self.acquiring.retain(|(q, _), _| *q != p);
        // Reaped: whatever the worker held is free from now on.
        self.freed_ns.push(now_ns());
        self.pending.retain(|(q, _), _| *q != p);
        self.log(Instant::now(), format!("{process} killed and reaped"));
        Ok(())
    }
}
