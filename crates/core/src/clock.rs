//! The one monotonic clock: `CLOCK_MONOTONIC` in nanoseconds, read alike by the runner,
//! the engine child (another process) and the telemetry sampler, so a phase boundary the
//! child reports lands on the sampler's timeline. Durations use it; labels use wall time.

/// `CLOCK_MONOTONIC` now, in nanoseconds. The same value in every process of the machine
/// (it does not count suspend, and it is not wall time).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on every platform
    // tokbench supports (Linux, macOS), so the call cannot fail.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}
