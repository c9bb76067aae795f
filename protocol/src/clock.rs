//! The monotonic clock that every process of the machine shares, in nanoseconds.

/// `CLOCK_MONOTONIC` (Linux, macOS and the other Unixes).
#[cfg(unix)]
pub fn now_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC exists on every supported Unix.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    seconds.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// `QueryPerformanceCounter`, scaled to nanoseconds (Windows).
#[cfg(windows)]
pub fn now_ns() -> u64 {
    use windows_sys::Win32::System::Performance::{
        QueryPerformanceCounter, QueryPerformanceFrequency,
    };

    let mut counter = 0i64;
    let mut frequency = 0i64;
    // SAFETY: both pointers are valid and writable; the calls cannot fail on Windows XP or later.
    unsafe {
        QueryPerformanceCounter(&mut counter);
        QueryPerformanceFrequency(&mut frequency);
    }
    let counter = u128::try_from(counter).unwrap_or(0);
    let frequency = u128::try_from(frequency).unwrap_or(0).max(1);
    u64::try_from(counter * 1_000_000_000 / frequency).unwrap_or(u64::MAX)
}

/// Elsewhere, a clock of this process only, from its first reading.
#[cfg(not(any(unix, windows)))]
pub fn now_ns() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;

    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn advances_with_time() {
        let before = now_ns();
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let after = now_ns();
        let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap();
        assert!(after >= before + 20_000_000, "{before} -> {after}");
        // The process clock and this one measure the same interval, give or take scheduling.
        assert!(
            after - before <= elapsed + 5_000_000,
            "{before} -> {after}, {elapsed}"
        );
    }
}
