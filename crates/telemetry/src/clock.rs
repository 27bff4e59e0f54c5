//! Time for samples and phase windows: `CLOCK_MONOTONIC` nanoseconds, the one clock that the
//! runner, the engine child (another process) and the sampler thread all read alike, so a
//! phase boundary reported by the child can be laid over the sampler's timeline.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonic clock in nanoseconds. The real one is [`MonotonicClock`]; tests use
/// [`ManualClock`].
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

pub use tokbench_core::clock::monotonic_ns;

/// The real clock: [`monotonic_ns`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start_ns: u64) -> ManualClock {
        ManualClock(AtomicU64::new(start_ns))
    }

    pub fn set(&self, t_ns: u64) {
        self.0.store(t_ns, Ordering::SeqCst);
    }

    pub fn advance(&self, d_ns: u64) {
        self.0.fetch_add(d_ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_ns_never_goes_back() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0);
        assert!(b >= a);
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let c = ManualClock::new(5);
        assert_eq!(c.now_ns(), 5);
        c.advance(10);
        assert_eq!(c.now_ns(), 15);
        c.set(3);
        assert_eq!(c.now_ns(), 3);
    }
}
