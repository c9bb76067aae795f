//! The steps on lock objects: `open`, `acquire`, `release` (at once or left blocked), `await`,
//! `expect_blocked`, `expect_callbacks` and `close`, each sent to its worker and checked.

use std::time::Instant;

use lockspec_protocol::Op;

use super::exchange::Pending;
use super::verdict::{Stop, broken};
use super::{FailKind, Trial, ms};
use crate::scenario::{Expect, Kind};
use crate::timing::{Timeout, Window};

impl Trial<'_> {
    /// `open`: opens a lock object with its timeout (and callback), remembering the timeout for
    /// the object's acquires and an open that failed with an I/O error.
    #[expect(clippy::too_many_arguments, reason = "the fields of an `open` step")]
    pub(super) fn open(
        &mut self,
        process: &str,
        thread: &str,
        handle: &str,
        path: &str,
        timeout: Timeout,
        callback: bool,
        expect: &Expect,
    ) -> Result<(), Stop> {
        let p = self.proc(process);
        let timeout_ms = self.timing.timeout(timeout).map(|d| d.as_millis() as u64);
        let op = Op::Open {
            handle: handle.to_owned(),
            path: self.worker_path(path).into(),
            timeout_ms,
            callback,
        };
        self.timeouts.insert((p, handle.to_owned()), timeout);
        let reply = self.exchange(p, thread, op, expect, None, None)?;
        if reply.kind == Kind::IoError {
            self.failed_open.insert((p, handle.to_owned()));
        }
        Ok(())
    }

    /// `acquire` or `release` (`command`) of `handle`: answered and checked at once, or, when it
    /// must block, left pending. On an object whose opening failed nothing is sent.
    pub(super) fn acquire_or_release(
        &mut self,
        process: &str,
        thread: &str,
        handle: &str,
        command: Op,
        expect: &Expect,
        within: Option<Window>,
    ) -> Result<(), Stop> {
        let p = self.proc(process);
        let op = command.name();
        if self.failed_open.contains(&(p, handle.to_owned())) {
            if expect.allows(Kind::IoError) {
                self.log(
                    Instant::now(),
                    format!("not sent: opening {handle} failed with io_error, as allowed"),
                );
                return Ok(());
            }
            return Err(Stop::fail(
                expect.to_string(),
                format!("opening {handle} failed with io_error, so it cannot {op}"),
            ));
        }
        if *expect == Expect::Blocks {
            return self.start_blocked(p, thread, handle, command);
        }
        let timeout = self.timeouts.get(&(p, handle.to_owned())).copied();
        self.exchange(p, thread, command, expect, within, timeout)?;
        Ok(())
    }

    /// Sends `command`, which must not answer within the settling window, and leaves it pending
    /// on its thread for an `await` or an `expect_blocked`.
    fn start_blocked(
        &mut self,
        p: usize,
        thread: &str,
        handle: &str,
        command: Op,
    ) -> Result<(), Stop> {
        let seq = self.send(p, thread, command)?;
        let sent = self.session.sent(p, seq).cloned().expect("just sent");
        let settle = self.timing.window(Window::Settle);
        if let Some(reply) = self.wait_reply_before(p, seq, sent.at + settle)? {
            return Err(Stop::failed(
                FailKind::NotBlocked,
                format!("blocks (no reply within {})", ms(settle)),
                format!(
                    "{}{} after {}",
                    reply.kind,
                    reply.detail(),
                    ms(reply.took())
                ),
            ));
        }
        let pending = Pending {
            proc: p,
            seq,
            sent,
            handle: handle.to_owned(),
            step: self.current,
            freed_from_ns: None,
        };
        // A reply read after the window may still show that the call never blocked.
        if let Some(reply) = self.replies.get(&(p, seq)) {
            let reply = reply.clone();
            self.pending.insert((p, thread.to_owned()), pending);
            self.check_pending(p, &reply)?;
        } else {
            self.pending.insert((p, thread.to_owned()), pending);
        }
        Ok(())
    }

    /// `await`: the reply to the operation pending on the thread, checked as a hand-off.
    pub(super) fn await_reply(
        &mut self,
        process: &str,
        thread: &str,
        expect: &Expect,
        within: Option<Window>,
    ) -> Result<(), Stop> {
        let p = self.proc(process);
        let pending = self
            .pending
            .remove(&(p, thread.to_owned()))
            .expect("checked when the scenario was loaded");
        let timeout = self.timeouts.get(&(p, pending.handle.clone())).copied();
        self.expect_reply(
            p,
            pending.seq,
            Instant::now(),
            expect,
            within,
            timeout,
            true,
        )?;
        Ok(())
    }

    /// `expect_blocked`: the operation pending on the thread gives no reply for `window` more.
    pub(super) fn expect_blocked(
        &mut self,
        process: &str,
        thread: &str,
        window: Window,
    ) -> Result<(), Stop> {
        let p = self.proc(process);
        let pending = self.pending[&(p, thread.to_owned())].clone();
        let length = self.timing.window(window);
        if let Some(reply) = self.wait_reply_before(p, pending.seq, Instant::now() + length)? {
            return Err(Stop::failed(
                FailKind::NotBlocked,
                format!("still blocked for another {}", ms(length)),
                format!(
                    "{}{} {} after it was sent",
                    reply.kind,
                    reply.detail(),
                    ms(reply.at.saturating_duration_since(pending.sent.at))
                ),
            ));
        }
        Ok(())
    }

    /// `expect_callbacks`: the object's contention callback was called `count` times so far,
    /// waiting a prompt window for calls still on their way.
    pub(super) fn expect_callbacks(
        &mut self,
        process: &str,
        handle: &str,
        count: u32,
    ) -> Result<(), Stop> {
        let p = self.proc(process);
        let key = (p, handle.to_owned());
        self.drain()?;
        let deadline = Instant::now() + self.timing.window(Window::Prompt);
        while self.callbacks.get(&key).copied().unwrap_or(0) < count {
            match self.session.next(deadline).map_err(broken)? {
                Some(delivery) => self.deliver(delivery)?,
                None => break,
            }
        }
        let seen = self.callbacks.get(&key).copied().unwrap_or(0);
        if seen != count {
            return Err(Stop::failed(
                FailKind::Callbacks,
                format!("{count} call(s) of the contention callback so far"),
                format!("{seen} call(s)"),
            ));
        }
        Ok(())
    }

    /// `close`: closes a lock object, which must answer `ok` promptly.
    pub(super) fn close(&mut self, process: &str, thread: &str, handle: &str) -> Result<(), Stop> {
        let p = self.proc(process);
        let op = Op::Close {
            handle: handle.to_owned(),
        };
        self.exchange_ok(p, thread, op)?;
        Ok(())
    }
}
