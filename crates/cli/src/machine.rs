//! Is this machine quiet enough to measure? Before a run, tokbench reads how busy the CPUs
//! are (on Linux over a tenth of a second from `/proc/stat`, elsewhere the load average) and
//! looks for other tokbench runs on the same machine, whatever database they write, through
//! a lock file per run in the user's runtime directory: two runs at once each measure the
//! other's interference (two smoke runs at once ran at ~5 t/s each, both stored `ok`).

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The directory of the per-run lock files: `$XDG_RUNTIME_DIR/tokbench`, else
/// `$TMPDIR/tokbench-UID` (one per user either way, so users do not see each other's files
/// but do see each other's load).
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("tokbench"),
        None => std::env::temp_dir().join(format!("tokbench-{}", nix::unistd::getuid())),
    }
}

/// tokbench's directory of one XDG kind: `$XDG_VAR/tokbench`, else `~/HOME_REL/tokbench`
/// (`XDG_CACHE_HOME` and `.cache`, `XDG_CONFIG_HOME` and `.config`, `XDG_DATA_HOME` and
/// `.local/share`); `given` names what would have made it unneeded, for the error.
pub fn user_dir(xdg_var: &str, home_rel: &str, given: &str) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    Ok(match std::env::var_os(xdg_var).filter(|x| !x.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(
            std::env::var_os("HOME").with_context(|| format!("neither {given} nor HOME is set"))?,
        )
        .join(home_rel),
    }
    .join("tokbench"))
}

/// This process's claim that it is measuring: an exclusive lock on `run-PID.lock`, held
/// until the value is dropped (or the process dies: the kernel drops the lock with it).
pub struct RunClaim {
    _lock: Flock<File>,
    path: PathBuf,
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What stands between this run and a quiet machine.
#[derive(Debug, Default, PartialEq)]
pub struct Busy {
    /// Process ids of other tokbench runs measuring now.
    pub other_runs: Vec<u32>,
    /// The 1-minute load average and the logical CPUs, when the load is high.
    pub load: Option<(f64, usize)>,
    /// The share of all CPU time that was busy just now (over a tenth of a second), when
    /// high: the load average lags by a minute, this does not.
    pub busy_now: Option<f64>,
}

impl Busy {
    pub fn is_quiet(&self) -> bool {
        self.other_runs.is_empty() && self.load.is_none() && self.busy_now.is_none()
    }

    /// One line per finding, for a warning or an error.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.other_runs.is_empty() {
            let pids: Vec<String> = self.other_runs.iter().map(u32::to_string).collect();
            out.push(format!(
                "another tokbench run is measuring on this machine (pid {}): both runs' numbers include the other's load",
                pids.join(", ")
            ));
        }
        if let Some((load, cpus)) = self.load {
            out.push(format!(
                "the machine is busy: load average {load:.2} over the last minute on {cpus} logical CPUs; numbers will be lower and noisier than on a quiet machine"
            ));
        }
        if let Some(busy) = self.busy_now {
            out.push(format!(
                "the CPUs are {:.0}% busy right now with other work; numbers will be lower and noisier than on a quiet machine",
                busy * 100.0
            ));
        }
        out
    }
}

/// `(busy, total)` CPU time from the first line of `/proc/stat` (iowait counts as idle).
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal …; guest time is already in user.
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Some((total - idle, total))
}

/// The share of CPU time busy over `window` (Linux); `None` where `/proc/stat` is absent.
pub fn busy_fraction(window: std::time::Duration) -> Option<f64> {
    let a = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
    std::thread::sleep(window);
    let b = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let total = b.1.checked_sub(a.1)?;
    (total > 0).then(|| b.0.saturating_sub(a.0) as f64 / total as f64)
}

/// Claims a lock file for this run in `dir` and returns it with the other runs holding
/// one there. A lock file nobody holds is left by a run that died: it is removed.
pub fn claim(dir: &Path) -> std::io::Result<(RunClaim, Vec<u32>)> {
    std::fs::create_dir_all(dir)?;
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|n| n.strip_suffix(".lock"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // Nobody holds it: a run that died. Unlocked again when dropped.
            Ok(_stale) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(_) => others.push(pid),
        }
    }
    others.sort_unstable();
    let path = dir.join(format!("run-{}.lock", std::process::id()));
    let file = File::create(&path)?;
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e)?;
    Ok((RunClaim { _lock: lock, path }, others))
}

/// The 1-minute load average, from `/proc/loadavg` (Linux) or `getloadavg` elsewhere.
pub fn load_average() -> Option<f64> {
    if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
        return text.split_whitespace().next()?.parse().ok();
    }
    let mut avg = [0f64; 1];
    // SAFETY: getloadavg writes at most `nelem` doubles into the buffer it is given.
    let n = unsafe { nix::libc::getloadavg(avg.as_mut_ptr(), 1) };
    (n == 1).then_some(avg[0])
}

/// A load average this high, before tokbench starts anything, means other work is
/// competing for the CPUs: a quarter of the logical CPUs busy (at least one).
pub fn load_is_high(load: f64, cpus: usize) -> bool {
    load > (cpus as f64 * 0.25).max(1.0)
}

/// Claims this run's lock and reads the load; what was found and the claim to hold for
/// the run. A runtime directory that cannot be written is no reason not to measure: the
/// claim is then `None` and only the load is checked.
pub fn check() -> (Busy, Option<RunClaim>) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Where the CPUs' busy time can be read (Linux), it decides: the load average still
    // counts the benchmark that ended a minute ago, so back-to-back runs would each warn
    // about the one before. Elsewhere the load average is what there is.
    let (busy_now, load) = match busy_fraction(std::time::Duration::from_millis(100)) {
        Some(b) => ((b > 0.25).then_some(b), None),
        None => (
            None,
            load_average()
                .filter(|l| load_is_high(*l, cpus))
                .map(|l| (l, cpus)),
        ),
    };
    match claim(&runtime_dir()) {
        Ok((c, other_runs)) => (
            Busy {
                other_runs,
                load,
                busy_now,
            },
            Some(c),
        ),
        Err(_) => (
            Busy {
                other_runs: Vec::new(),
                load,
                busy_now,
            },
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_claim_is_seen_and_a_dead_one_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        // A lock file left by a run that died: nobody holds it.
        std::fs::write(dir.path().join("run-999999.lock"), b"").unwrap();
        let (mine, others) = claim(dir.path()).unwrap();
        assert!(others.is_empty(), "{others:?}");
        assert!(!dir.path().join("run-999999.lock").exists());
        let own = dir.path().join(format!("run-{}.lock", std::process::id()));
        assert!(own.exists());
        // Another process holding its claim: the child takes one and waits.
        let child_dir = dir.path().to_path_buf();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec flock -x {}/run-424242.lock sleep 30",
                child_dir.display()
            ))
            .spawn()
            .unwrap();
        let held = dir.path().join("run-424242.lock");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !held.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(mine);
        assert!(!own.exists(), "a claim removes its file when dropped");
        let (_again, others) = claim(dir.path()).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(others, vec![424242]);
    }

    #[test]
    fn cpu_time_is_read_from_proc_stat() {
        let stat = "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        // busy = user + nice + system + irq + softirq + steal; idle + iowait are not.
        assert_eq!(cpu_times(stat), Some((160, 980)));
        assert_eq!(cpu_times("intr 1 2 3"), None);
        let b = busy_fraction(std::time::Duration::from_millis(50)).unwrap();
        assert!((0.0..=1.0).contains(&b), "{b}");
    }

    #[test]
    fn load_thresholds_scale_with_the_cpus() {
        assert!(!load_is_high(0.9, 2));
        assert!(load_is_high(1.5, 2));
        assert!(!load_is_high(3.0, 16));
        assert!(load_is_high(4.5, 16));
        assert!(load_average().is_some_and(|l| l >= 0.0));
    }

    #[test]
    fn findings_are_described() {
        let b = Busy {
            other_runs: vec![12],
            load: Some((3.5, 2)),
            busy_now: Some(0.97),
        };
        assert!(!b.is_quiet());
        let d = b.describe();
        assert!(d[0].contains("pid 12") && d[1].contains("3.50"), "{d:?}");
        assert!(d[2].contains("97% busy"), "{d:?}");
        assert!(Busy::default().is_quiet());
    }
}
