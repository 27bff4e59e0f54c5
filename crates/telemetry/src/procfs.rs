//! The backend's process tree and its resident memory, from `/proc` (Linux). A backend may
//! fork workers (llama-server, Ollama's runners, vLLM), so memory is summed over the root
//! PID and all its descendants, found through the parent PID in `/proc/<pid>/stat`.
//!
//! Where there is no `/proc` (macOS), the tree is the roots alone and the source says
//! "not supported".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
use crate::fs::{FileReader, RealFs};
use crate::metric::{Availability, Metric, Sample, Unavailable, UnavailableKind};
use crate::source::Source;

/// A `/proc` tree: the real one or one built in a temp dir.
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
    fs: Arc<dyn FileReader>,
}

/// The memory lines of `/proc/<pid>/status`, in bytes; `None` where the line is absent
/// (kernel threads have no `VmRSS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStatus {
    pub vm_rss_bytes: Option<u64>,
    pub vm_hwm_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
}

/// Parses the text of `/proc/<pid>/status` (see proc_pid_status(5)); values are in kB there.
pub fn parse_status(text: &str) -> ProcStatus {
    let mut st = ProcStatus::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "VmRSS" => &mut st.vm_rss_bytes,
            "VmHWM" => &mut st.vm_hwm_bytes,
            "RssAnon" => &mut st.rss_anon_bytes,
            "RssFile" => &mut st.rss_file_bytes,
            _ => continue,
        };
        let mut parts = rest.split_whitespace();
        let (Some(n), unit) = (
            parts.next().and_then(|n| n.parse::<u64>().ok()),
            parts.next(),
        ) else {
            continue;
        };
        let mult = match unit {
            Some("kB") | None => 1024,
            Some("mB") => 1024 * 1024,
            Some(_) => continue,
        };
        *slot = Some(n * mult);
    }
    st
}

/// The parent PID from the text of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_ppid(text: &str) -> Option<u32> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

impl ProcFs {
    pub fn new(root: impl Into<PathBuf>, fs: Arc<dyn FileReader>) -> ProcFs {
        ProcFs {
            root: root.into(),
            fs,
        }
    }

    /// The machine's `/proc`.
    pub fn real() -> ProcFs {
        ProcFs::new("/proc", Arc::new(RealFs))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns true if and only if this tree looks like a mounted procfs (it has `self`).
    pub fn exists(&self) -> bool {
        self.fs.exists(&self.root.join("self").join("status"))
            || self.fs.exists(&self.root.join("1").join("stat"))
    }

    /// The roots that exist and all their descendants, sorted, without duplicates. Where
    /// `/proc` cannot be listed, the roots alone.
    pub fn tree(&self, roots: &[u32]) -> Vec<u32> {
        if roots.is_empty() {
            return Vec::new();
        }
        let Ok(entries) = self.fs.read_dir(&self.root) else {
            return dedup(roots);
        };
        let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut alive = BTreeSet::new();
        for entry in entries {
            let Some(pid) = entry
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may exit between the listing and this read: skip it.
            let Ok(stat) = self.fs.read_to_string(&entry.join("stat")) else {
                continue;
            };
            alive.insert(pid);
            if let Some(ppid) = parse_stat_ppid(&stat) {
                children.entry(ppid).or_default().push(pid);
            }
        }
        let mut out = BTreeSet::new();
        let mut stack: Vec<u32> = roots
            .iter()
            .copied()
            .filter(|p| alive.contains(p))
            .collect();
        while let Some(pid) = stack.pop() {
            if out.insert(pid) {
                if let Some(kids) = children.get(&pid) {
                    stack.extend(kids.iter().copied());
                }
            }
        }
        out.into_iter().collect()
    }

    /// The memory lines of one process.
    pub fn status(&self, pid: u32) -> std::io::Result<ProcStatus> {
        let text = self
            .fs
            .read_to_string(&self.root.join(pid.to_string()).join("status"))?;
        Ok(parse_status(&text))
    }
}

fn dedup(pids: &[u32]) -> Vec<u32> {
    let set: BTreeSet<u32> = pids.iter().copied().collect();
    set.into_iter().collect()
}

/// Resident memory of the backend's process tree: `rss_bytes` (sum of `VmRSS`),
/// `rss_hwm_bytes` (sum of `VmHWM`), and its anonymous and file-backed parts (mmapped model
/// weights are file-backed and can be evicted, so they are told apart).
#[derive(Debug)]
pub struct ProcSource {
    proc: ProcFs,
    available: Option<Availability>,
}

const PROC_METRICS: [Metric; 4] = [
    Metric::RssBytes,
    Metric::RssHwmBytes,
    Metric::RssAnonBytes,
    Metric::RssFileBytes,
];

impl ProcSource {
    pub fn new(proc: ProcFs) -> ProcSource {
        ProcSource {
            proc,
            available: None,
        }
    }

    pub fn real() -> ProcSource {
        ProcSource::new(ProcFs::real())
    }

    fn check(&self) -> Availability {
        let path = self.proc.root.join("self").join("status");
        match self.proc.fs.read_to_string(&path) {
            Ok(text) if parse_status(&text).vm_rss_bytes.is_some() => Ok(()),
            Ok(_) => Err(Unavailable::new(
                UnavailableKind::NotSupported,
                format!("{} has no VmRSS line", path.display()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Unavailable::new(
                UnavailableKind::NotSupported,
                format!(
                    "{} does not exist: no procfs on this platform",
                    path.display()
                ),
            )),
            Err(e) => Err(Unavailable::from_io(&path, &e, "")),
        }
    }
}

impl Source for ProcSource {
    fn name(&self) -> &'static str {
        "procfs"
    }

    fn probe(&mut self) -> Vec<(Metric, Availability)> {
        let a = self.check();
        self.available = Some(a.clone());
        PROC_METRICS.iter().map(|m| (*m, a.clone())).collect()
    }

    fn sample(&mut self, clock: &dyn Clock, pids: &[u32], out: &mut Vec<Sample>) {
        if self.available.is_none() {
            self.probe();
        }
        if !matches!(self.available, Some(Ok(()))) || pids.is_empty() {
            return;
        }
        let t_ns = clock.now_ns();
        let (mut rss, mut hwm, mut anon, mut file) = (0u64, 0u64, 0u64, 0u64);
        let mut seen = 0usize;
        for &pid in pids {
            // A process that exited since the tree was listed no longer holds memory.
            let Ok(st) = self.proc.status(pid) else {
                continue;
            };
            seen += 1;
            rss += st.vm_rss_bytes.unwrap_or(0);
            hwm += st.vm_hwm_bytes.unwrap_or(0);
            anon += st.rss_anon_bytes.unwrap_or(0);
            file += st.rss_file_bytes.unwrap_or(0);
        }
        if seen == 0 {
            return;
        }
        for (metric, v) in [
            (Metric::RssBytes, rss),
            (Metric::RssHwmBytes, hwm),
            (Metric::RssAnonBytes, anon),
            (Metric::RssFileBytes, file),
        ] {
            out.push(Sample {
                t_ns,
                metric,
                value: v as f64,
                source: "procfs",
            });
        }
    }

    fn environment(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(
            "procfs_root".to_string(),
            self.proc.root.display().to_string(),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const STATUS_LLAMA: &str = "Name:\tllama-server\nUmask:\t0022\nState:\tS (sleeping)\n\
Tgid:\t4242\nPid:\t4242\nPPid:\t4200\nVmPeak:\t 9000000 kB\nVmSize:\t 8800000 kB\n\
VmLck:\t       0 kB\nVmHWM:\t 5120000 kB\nVmRSS:\t 4096000 kB\nRssAnon:\t  96000 kB\n\
RssFile:\t 4000000 kB\nRssShmem:\t       0 kB\nThreads:\t17\n";

    const STATUS_KTHREAD: &str =
        "Name:\tkworker/0:1\nState:\tI (idle)\nPid:\t7\nPPid:\t2\nThreads:\t1\n";

    #[test]
    fn status_text_parses_to_bytes() {
        let st = parse_status(STATUS_LLAMA);
        assert_eq!(st.vm_rss_bytes, Some(4_096_000 * 1024));
        assert_eq!(st.vm_hwm_bytes, Some(5_120_000 * 1024));
        assert_eq!(st.rss_anon_bytes, Some(96_000 * 1024));
        assert_eq!(st.rss_file_bytes, Some(4_000_000 * 1024));
        assert_eq!(parse_status(STATUS_KTHREAD), ProcStatus::default());
    }

    #[test]
    fn stat_ppid_survives_odd_command_names() {
        assert_eq!(
            parse_stat_ppid("4242 (llama-server) S 4200 4242 1 0"),
            Some(4200)
        );
        assert_eq!(parse_stat_ppid("9 (a) b (c)) R 1 9 9 0"), Some(1));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    fn write_proc(root: &Path, pid: u32, ppid: u32, rss_kb: u64, hwm_kb: u64) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("stat"),
            format!("{pid} (proc {pid}) S {ppid} {pid} {pid} 0 -1"),
        )
        .unwrap();
        std::fs::write(
            dir.join("status"),
            format!("Name:\tp\nPPid:\t{ppid}\nVmHWM:\t{hwm_kb} kB\nVmRSS:\t{rss_kb} kB\nRssAnon:\t{rss_kb} kB\nRssFile:\t0 kB\n"),
        )
        .unwrap();
    }

    fn fake_proc() -> (tempfile::TempDir, ProcFs) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_proc(root, 1, 0, 10, 10);
        write_proc(root, 100, 1, 1000, 1500); // backend root
        write_proc(root, 101, 100, 200, 300); // its worker
        write_proc(root, 102, 101, 30, 30); // the worker's child
        write_proc(root, 200, 1, 5000, 5000); // unrelated
        std::fs::create_dir_all(root.join("self")).unwrap();
        std::fs::copy(
            root.join("1").join("status"),
            root.join("self").join("status"),
        )
        .unwrap();
        std::fs::write(root.join("uptime"), "1.0 1.0").unwrap();
        let proc = ProcFs::new(root, Arc::new(RealFs));
        (dir, proc)
    }

    #[test]
    fn tree_finds_descendants_and_drops_the_dead() {
        let (_dir, proc) = fake_proc();
        assert_eq!(proc.tree(&[100]), vec![100, 101, 102]);
        assert_eq!(proc.tree(&[101, 101]), vec![101, 102]);
        assert_eq!(proc.tree(&[999]), Vec::<u32>::new());
        assert_eq!(proc.tree(&[]), Vec::<u32>::new());
    }

    #[test]
    fn proc_source_sums_the_tree() {
        let (_dir, proc) = fake_proc();
        let tree = proc.tree(&[100]);
        let mut src = ProcSource::new(proc);
        assert!(src.probe().iter().all(|(_, a)| a.is_ok()));
        let clock = ManualClock::new(77);
        let mut out = Vec::new();
        src.sample(&clock, &tree, &mut out);
        let get = |m: Metric| out.iter().find(|s| s.metric == m).unwrap().value;
        assert_eq!(get(Metric::RssBytes), (1230 * 1024) as f64);
        assert_eq!(get(Metric::RssHwmBytes), (1830 * 1024) as f64);
        assert!(out.iter().all(|s| s.t_ns == 77 && s.source == "procfs"));
        // No backend yet: nothing, not zero.
        out.clear();
        src.sample(&clock, &[], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn proc_source_without_procfs_is_not_supported() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = ProcSource::new(ProcFs::new(dir.path().join("proc"), Arc::new(RealFs)));
        let probe = src.probe();
        let err = probe[0].1.clone().unwrap_err();
        assert_eq!(err.kind, UnavailableKind::NotSupported);
        assert!(err.reason.contains("does not exist"), "{}", err.reason);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn real_procfs_sees_this_test_process() {
        let me = std::process::id();
        let proc = ProcFs::real();
        let tree = proc.tree(&[me]);
        assert!(tree.contains(&me));
        let mut src = ProcSource::real();
        assert!(src.probe().iter().all(|(_, a)| a.is_ok()));
        let mut out = Vec::new();
        src.sample(&crate::clock::MonotonicClock, &tree, &mut out);
        let rss = out
            .iter()
            .find(|s| s.metric == Metric::RssBytes)
            .expect("an rss sample")
            .value;
        // A running test binary holds at least a megabyte and surely under 64 GiB.
        assert!(rss > 1e6 && rss < 64e9, "rss {rss}");
    }
}
