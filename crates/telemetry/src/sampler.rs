//! The sampling thread: one OS thread owns every source (NVML handles and the powermetrics
//! pipe want one owner) and reads them all at a fixed interval, stamping each reading with
//! `CLOCK_MONOTONIC`. Ticks are on a fixed schedule (start + k·interval); a tick that
//! overran is skipped rather than bunched, so a slow source shows up as a gap.
//!
//! The backend's PIDs are shared with the runner (`Arc<Mutex<Vec<u32>>>`, set once the
//! child is spawned); each tick expands them to the whole process tree through `/proc`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::{Clock, MonotonicClock};
use crate::metric::Sample;
use crate::procfs::ProcFs;
use crate::source::Source;

/// The default interval: NVML power updates no faster than about every 100 ms.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// How often the backend's process tree is rebuilt by default.
pub const DEFAULT_TREE_REFRESH: Duration = Duration::from_secs(1);

/// How long [`Sampler::stop`] waits for the thread to finish its tick before leaving it
/// behind (a source stuck in a driver call).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How the sampler runs.
#[derive(Clone)]
pub struct SamplerConfig {
    pub interval: Duration,
    /// Stamps readings. The real clock unless a test injects one.
    pub clock: Arc<dyn Clock>,
    /// Expands the root PIDs into the process tree; `None` uses the roots alone.
    pub proc_tree: Option<ProcFs>,
    /// How often the tree is rebuilt (it is rebuilt at once when the roots change). A scan
    /// reads every process's `/proc/<pid>/stat`, about 15 µs per process, so it is not done
    /// every tick; a worker forked by the backend is seen within this time.
    pub tree_refresh: Duration,
}

impl std::fmt::Debug for SamplerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerConfig")
            .field("interval", &self.interval)
            .field("proc_tree", &self.proc_tree)
            .field("tree_refresh", &self.tree_refresh)
            .finish()
    }
}

impl SamplerConfig {
    /// The real clock and `/proc` where it exists.
    pub fn new(interval: Duration) -> SamplerConfig {
        let proc = ProcFs::real();
        SamplerConfig {
            interval,
            clock: Arc::new(MonotonicClock),
            proc_tree: proc.exists().then_some(proc),
            tree_refresh: DEFAULT_TREE_REFRESH,
        }
    }
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig::new(DEFAULT_INTERVAL)
    }
}

/// A running sampling thread.
pub struct Sampler {
    stop_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<Vec<Box<dyn Source>>>,
    handle: Option<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    ticks: Arc<AtomicU64>,
    started_ns: u64,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("ticks", &self.ticks.load(Ordering::Relaxed))
            .field("started_ns", &self.started_ns)
            .finish()
    }
}

impl Sampler {
    /// Starts sampling `sources` every `interval` on a new thread, with the real clock.
    /// `pids` holds the backend's root PIDs (empty until it is spawned).
    pub fn start(
        sources: Vec<Box<dyn Source>>,
        interval: Duration,
        pids: Arc<Mutex<Vec<u32>>>,
    ) -> Sampler {
        Sampler::start_with(sources, pids, SamplerConfig::new(interval))
    }

    /// [`Sampler::start`] with a chosen clock and process tree.
    pub fn start_with(
        mut sources: Vec<Box<dyn Source>>,
        pids: Arc<Mutex<Vec<u32>>>,
        config: SamplerConfig,
    ) -> Sampler {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let ticks = Arc::new(AtomicU64::new(0));
        let started_ns = config.clock.now_ns();
        let shared = Arc::clone(&samples);
        let tick_count = Arc::clone(&ticks);
        let interval = config.interval.max(Duration::from_millis(1));
        let handle = std::thread::Builder::new()
            .name("tokbench-telemetry".to_string())
            .spawn(move || {
                let mut buf = Vec::new();
                // (roots, their tree, when it was built)
                let mut cached: (Vec<u32>, Vec<u32>, Option<Instant>) =
                    (Vec::new(), Vec::new(), None);
                let mut tick = |sources: &mut Vec<Box<dyn Source>>, buf: &mut Vec<Sample>| {
                    let roots = pids.lock().map(|p| p.clone()).unwrap_or_default();
                    let stale = cached.2.is_none_or(|t| t.elapsed() >= config.tree_refresh);
                    if roots != cached.0 || stale {
                        cached.1 = match &config.proc_tree {
                            Some(proc) => proc.tree(&roots),
                            None => roots.clone(),
                        };
                        cached.0 = roots;
                        cached.2 = Some(Instant::now());
                    }
                    let tree = &cached.1;
                    for s in sources.iter_mut() {
                        s.sample(config.clock.as_ref(), tree, buf);
                    }
                    if let Ok(mut all) = shared.lock() {
                        all.append(buf);
                    }
                    buf.clear();
                    tick_count.fetch_add(1, Ordering::Relaxed);
                };
                let origin = Instant::now();
                let mut k: u32 = 0;
                loop {
                    tick(&mut sources, &mut buf);
                    // Next tick on the fixed grid, skipping any that already passed.
                    let elapsed = origin.elapsed();
                    k = k.saturating_add(1);
                    while interval * k <= elapsed {
                        k = k.saturating_add(1);
                    }
                    let wait = interval * k - elapsed;
                    match stop_rx.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                // One last reading, so the final window's end edge is covered.
                tick(&mut sources, &mut buf);
                let _ = done_tx.send(sources);
            })
            .expect("spawn the telemetry thread");
        Sampler {
            stop_tx,
            done_rx,
            handle: Some(handle),
            samples,
            ticks,
            started_ns,
        }
    }

    /// When the sampler started, on its clock.
    pub fn started_ns(&self) -> u64 {
        self.started_ns
    }

    /// How many ticks have completed.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// A copy of the samples taken at or after `t_ns` so far (not removed).
    pub fn snapshot_since(&self, t_ns: u64) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|all| all.iter().filter(|s| s.t_ns >= t_ns).copied().collect())
            .unwrap_or_default()
    }

    /// Takes the samples so far out of the sampler, for storing as the test goes.
    pub fn drain(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }

    /// Stops the thread and returns the samples not yet drained.
    pub fn stop(self) -> Vec<Sample> {
        self.stop_keep_sources().0
    }

    /// Stops the thread; returns the samples not yet drained and the sources, for the next
    /// test (NVML is expensive to load). Waits at most [`STOP_TIMEOUT`] for the tick in
    /// progress and a last one: a thread stuck in a source is left behind, and the sources
    /// with it (empty `Vec`).
    pub fn stop_keep_sources(mut self) -> (Vec<Sample>, Vec<Box<dyn Source>>) {
        let _ = self.stop_tx.send(());
        let sources = match self.done_rx.recv_timeout(STOP_TIMEOUT) {
            Ok(sources) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                sources
            }
            Err(_) => Vec::new(),
        };
        (self.drain(), sources)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        let _ = self.stop_tx.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::metric::{Availability, Metric};
    use std::collections::BTreeMap;

    /// The PID lists a fake source was handed, one per tick.
    type SeenPids = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A scripted source: reports `power_w` = the tick number and what PIDs it saw.
    struct Fake {
        n: u64,
        seen_pids: SeenPids,
        delay: Duration,
    }

    impl Source for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn probe(&mut self) -> Vec<(Metric, Availability)> {
            vec![(Metric::PowerW, Ok(()))]
        }
        fn sample(&mut self, clock: &dyn Clock, pids: &[u32], out: &mut Vec<Sample>) {
            std::thread::sleep(self.delay);
            self.seen_pids.lock().unwrap().push(pids.to_vec());
            self.n += 1;
            out.push(Sample {
                t_ns: clock.now_ns(),
                metric: Metric::PowerW,
                value: self.n as f64,
                source: "fake",
            });
        }
        fn environment(&self) -> BTreeMap<String, String> {
            BTreeMap::new()
        }
    }

    fn fake(delay: Duration) -> (Box<dyn Source>, SeenPids) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (
            Box::new(Fake {
                n: 0,
                seen_pids: Arc::clone(&seen),
                delay,
            }),
            seen,
        )
    }

    #[test]
    fn sampler_ticks_with_monotonic_timestamps_and_stops_promptly() {
        let (src, seen) = fake(Duration::ZERO);
        let pids = Arc::new(Mutex::new(Vec::new()));
        let sampler = Sampler::start(vec![src], Duration::from_millis(5), Arc::clone(&pids));
        std::thread::sleep(Duration::from_millis(60));
        pids.lock().unwrap().push(std::process::id());
        std::thread::sleep(Duration::from_millis(60));
        let early = sampler.snapshot_since(0);
        assert!(!early.is_empty());
        let t0 = Instant::now();
        let (samples, sources) = sampler.stop_keep_sources();
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(sources.len(), 1);
        assert!(samples.len() >= 10, "only {} samples", samples.len());
        assert!(samples.windows(2).all(|w| w[0].t_ns < w[1].t_ns));
        // Values are the tick numbers: no tick lost between the thread and the buffer.
        assert!(samples
            .iter()
            .enumerate()
            .all(|(i, s)| s.value == (i + 1) as f64));
        // Once set, the PID reached the sources, expanded to its tree on Linux.
        let seen = seen.lock().unwrap();
        assert_eq!(seen.first(), Some(&Vec::new()));
        assert!(seen.last().unwrap().contains(&std::process::id()));
    }

    #[test]
    fn sampler_stamps_with_the_injected_clock_and_drains() {
        let clock = Arc::new(ManualClock::new(1_000));
        let (src, _) = fake(Duration::ZERO);
        let config = SamplerConfig {
            interval: Duration::from_millis(2),
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            proc_tree: None,
            tree_refresh: DEFAULT_TREE_REFRESH,
        };
        let pids = Arc::new(Mutex::new(vec![42, 7]));
        let sampler = Sampler::start_with(vec![src], pids, config);
        assert_eq!(sampler.started_ns(), 1_000);
        while sampler.ticks() < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let first = sampler.drain();
        assert!(first.iter().all(|s| s.t_ns == 1_000));
        clock.set(5_000);
        let before = sampler.ticks();
        while sampler.ticks() < before + 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!sampler.snapshot_since(5_000).is_empty());
        let rest = sampler.stop();
        assert!(rest.iter().all(|s| s.t_ns >= 1_000));
        assert!(rest.iter().any(|s| s.t_ns == 5_000));
        // Drained samples are not returned again.
        assert!(rest
            .first()
            .map(|s| s.value > first.last().unwrap().value)
            .unwrap());
    }

    #[test]
    fn a_slow_source_skips_ticks_and_stop_is_bounded() {
        // Each read takes 30 ms with a 10 ms interval: ticks are skipped, not queued.
        let (src, _) = fake(Duration::from_millis(30));
        let pids = Arc::new(Mutex::new(Vec::new()));
        let sampler = Sampler::start(vec![src], Duration::from_millis(10), pids);
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        let samples = sampler.stop();
        assert!(t0.elapsed() < STOP_TIMEOUT);
        let gaps: Vec<u64> = samples.windows(2).map(|w| w[1].t_ns - w[0].t_ns).collect();
        assert!(gaps.iter().all(|g| *g >= 25_000_000), "{gaps:?}");
        assert!(samples.len() <= 10, "{}", samples.len());
    }
}
