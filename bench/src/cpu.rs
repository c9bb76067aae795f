//! What a worker process is doing, read from Linux's `/proc`: the CPU time all its threads have
//! used, and whether any of them is running. Elsewhere there is no figure and no idle check.

use std::time::Duration;

/// Where [`used`] reads CPU time from, or `None` where it cannot.
pub fn source() -> Option<&'static str> {
    imp::source()
}

/// The CPU time (user + system) that every thread of process `pid` has used so far.
pub fn used(pid: u32) -> Option<Duration> {
    imp::used(pid)
}

/// Waits until no thread of process `pid` is running or runnable, as seen twice in a row 100 µs
/// apart, or until `limit` has passed.
pub fn wait_until_idle(pid: u32, limit: Duration) {
    imp::wait_until_idle(pid, limit);
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs;
    use std::time::{Duration, Instant};

    /// `/proc/PID/task/*/schedstat` when the kernel has it (nanoseconds, per thread), else
    /// `/proc/PID/stat` (utime + stime in clock ticks, every thread together).
    pub(super) fn source() -> Option<&'static str> {
        let me = std::process::id();
        if schedstat(me).is_some() {
            Some("schedstat")
        } else if stat(me).is_some() {
            Some("stat")
        } else {
            None
        }
    }

    pub(super) fn used(pid: u32) -> Option<Duration> {
        schedstat(pid).or_else(|| stat(pid))
    }

    /// The sum over threads of the first field of `schedstat`: time on a CPU, in nanoseconds.
    fn schedstat(pid: u32) -> Option<Duration> {
        let mut total = 0u64;
        for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let path = task.ok()?.path().join("schedstat");
            // A thread may exit between the listing and the read.
            let Ok(text) = fs::read_to_string(path) else {
                continue;
            };
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        (total > 0).then(|| Duration::from_nanos(total))
    }

    /// utime + stime of the whole process, from `/proc/PID/stat`.
    fn stat(pid: u32) -> Option<Duration> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may contain anything; count fields after it.
        let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
        // Fields 14 and 15 of the line are 12 and 13 after the name (state is 3, index 0).
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no memory effects.
        let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
        Some(Duration::from_nanos(
            ticks * 1_000_000_000 / per_second.max(1),
        ))
    }

    /// Whether any thread of `pid` is running or runnable (`R`) or in an uninterruptible wait.
    fn busy(pid: u32) -> bool {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().any(|task| {
            fs::read_to_string(task.path().join("stat")).is_ok_and(|text| {
                let state = text
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                matches!(state, Some('R' | 'D'))
            })
        })
    }

    pub(super) fn wait_until_idle(pid: u32, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut quiet = 0;
        while quiet < 2 && Instant::now() < deadline {
            quiet = if busy(pid) { 0 } else { quiet + 1 };
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::time::Duration;

    pub(super) fn source() -> Option<&'static str> {
        None
    }

    pub(super) fn used(_pid: u32) -> Option<Duration> {
        None
    }

    pub(super) fn wait_until_idle(_pid: u32, limit: Duration) {
        // Nothing to look at: give the waiter time to settle instead.
        std::thread::sleep(limit.min(Duration::from_millis(2)));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn counts_the_cpu_time_of_this_process() {
        let me = std::process::id();
        assert!(source().is_some());
        let before = used(me).unwrap();
        let give_up = Instant::now() + Duration::from_secs(30);
        // Spin on purpose: this test measures CPU use. However busy the machine, this thread gets
        // 30 ms of CPU long before the deadline, unless `used` does not count it.
        while used(me).unwrap() < before + Duration::from_millis(30) {
            assert!(Instant::now() < give_up, "used() stayed at {before:?}");
            for _ in 0..10_000 {
                std::hint::spin_loop();
            }
        }
    }

    #[test]
    fn no_figure_for_a_process_that_does_not_exist() {
        assert_eq!(used(u32::MAX), None);
    }
}
