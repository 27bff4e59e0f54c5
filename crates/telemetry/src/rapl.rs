//! CPU package energy through the Linux powercap interface (RAPL; Intel, and AMD Zen through
//! the same files): `/sys/class/powercap/intel-rapl:<pkg>/energy_uj`, a microjoule counter
//! that wraps at `max_energy_range_uj`.
//!
//! Since Linux 5.10 (CVE-2020-8694) `energy_uj` is readable by root only; a permission error
//! becomes "no permission" with the fix in the reason. Counters are summed over packages;
//! `psys` (whole platform) and the `core`/`uncore`/`dram` subzones are not added in, but named
//! in the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
use crate::fs::{FileReader, RealFs};
use crate::metric::{Availability, Metric, Sample, Unavailable, UnavailableKind};
use crate::source::{all_unavailable, Source};

/// Where the kernel puts powercap zones.
pub const POWERCAP_ROOT: &str = "/sys/class/powercap";

const PERMISSION_HINT: &str = "energy_uj is root-only since Linux 5.10 (CVE-2020-8694): run as \
root, or `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (undone at reboot)";

/// Turns a counter that wraps at `max_range` into a running total since the first reading.
///
/// A reading lower than the last one means the counter wrapped once. Read it at least once
/// per wrap period (minutes at full package power) and it cannot wrap twice unseen; the
/// sampler reads every interval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrapCounter {
    last_raw: Option<u64>,
    total: u64,
    wraps: u64,
}

impl WrapCounter {
    /// Feeds one raw reading; returns the total since the first reading.
    pub fn update(&mut self, raw: u64, max_range: u64) -> u64 {
        if let Some(last) = self.last_raw {
            if raw >= last {
                self.total += raw - last;
            } else {
                // Wrapped: from `last` up to the top of the range, then from 0 to `raw`.
                self.total += max_range.saturating_sub(last) + raw;
                self.wraps += 1;
            }
        }
        self.last_raw = Some(raw);
        self.total
    }

    /// How many wraps were seen.
    pub fn wraps(&self) -> u64 {
        self.wraps
    }
}

#[derive(Debug)]
struct Zone {
    dir: PathBuf,
    name: String,
    max_range_uj: u64,
    counter: WrapCounter,
}

/// CPU package energy (`cpu_energy_j`), joules since the source's first sample.
#[derive(Debug)]
pub struct RaplSource {
    root: PathBuf,
    fs: Arc<dyn FileReader>,
    zones: Vec<Zone>,
    /// Zones seen but not summed (psys, subzones), for the environment.
    others: Vec<String>,
    available: Option<Availability>,
}

impl RaplSource {
    pub fn new(root: impl Into<PathBuf>, fs: Arc<dyn FileReader>) -> RaplSource {
        RaplSource {
            root: root.into(),
            fs,
            zones: Vec::new(),
            others: Vec::new(),
            available: None,
        }
    }

    pub fn real() -> RaplSource {
        RaplSource::new(POWERCAP_ROOT, Arc::new(RealFs))
    }

    fn discover(&mut self) -> Availability {
        self.zones.clear();
        self.others.clear();
        let entries = match self.fs.read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Unavailable::new(
                    UnavailableKind::NotSupported,
                    format!(
                        "{} does not exist: this kernel exposes no powercap/RAPL \
                         (a VM, a non-x86 CPU, or the intel_rapl modules not loaded)",
                        self.root.display()
                    ),
                ))
            }
            Err(e) => return Err(Unavailable::from_io(&self.root, &e, "")),
        };
        for dir in entries {
            let Some(base) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(rest) = base.strip_prefix("intel-rapl:") else {
                continue;
            };
            let name = self
                .fs
                .read_to_string(&dir.join("name"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            // `intel-rapl:0` is a package; `intel-rapl:0:1` a subzone of it.
            if rest.contains(':') || !name.starts_with("package") {
                self.others.push(format!("{base}={name}"));
                continue;
            }
            let range_path = dir.join("max_energy_range_uj");
            let max_range_uj = match self.fs.read_u64(&range_path) {
                Ok(v) => v,
                Err(e) => return Err(Unavailable::from_io(&range_path, &e, PERMISSION_HINT)),
            };
            let energy_path = dir.join("energy_uj");
            if let Err(e) = self.fs.read_u64(&energy_path) {
                return Err(Unavailable::from_io(&energy_path, &e, PERMISSION_HINT));
            }
            self.zones.push(Zone {
                dir,
                name,
                max_range_uj,
                counter: WrapCounter::default(),
            });
        }
        if self.zones.is_empty() {
            return Err(Unavailable::new(
                UnavailableKind::NotSupported,
                format!(
                    "no intel-rapl:<n> package zone under {}",
                    self.root.display()
                ),
            ));
        }
        Ok(())
    }

    /// Reads every zone once; the summed total in joules, or `None` if a read failed.
    fn read_total_j(&mut self) -> Option<f64> {
        let mut total_uj = 0u64;
        for zone in &mut self.zones {
            let raw = self.fs.read_u64(&zone.dir.join("energy_uj")).ok()?;
            total_uj += zone.counter.update(raw, zone.max_range_uj);
        }
        Some(total_uj as f64 / 1e6)
    }

    /// The powercap root this source reads.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Source for RaplSource {
    fn name(&self) -> &'static str {
        "rapl"
    }

    fn probe(&mut self) -> Vec<(Metric, Availability)> {
        let a = self.discover();
        self.available = Some(a.clone());
        match a {
            Ok(()) => vec![(Metric::CpuEnergyJ, Ok(()))],
            Err(u) => all_unavailable(&[Metric::CpuEnergyJ], u.kind, &u.reason),
        }
    }

    fn sample(&mut self, clock: &dyn Clock, _pids: &[u32], out: &mut Vec<Sample>) {
        if self.available.is_none() {
            self.probe();
        }
        if !matches!(self.available, Some(Ok(()))) {
            return;
        }
        let t_ns = clock.now_ns();
        if let Some(j) = self.read_total_j() {
            out.push(Sample {
                t_ns,
                metric: Metric::CpuEnergyJ,
                value: j,
                source: "rapl",
            });
        }
    }

    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("rapl_root".to_string(), self.root.display().to_string());
        if !self.zones.is_empty() {
            let zones: Vec<String> = self
                .zones
                .iter()
                .map(|z| {
                    format!(
                        "{}={} (range {} uJ)",
                        z.dir.display(),
                        z.name,
                        z.max_range_uj
                    )
                })
                .collect();
            env.insert("rapl_zones_summed".to_string(), zones.join(", "));
        }
        if !self.others.is_empty() {
            env.insert("rapl_zones_not_summed".to_string(), self.others.join(", "));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::fs::FailingFs;

    #[test]
    fn wrap_counter_monotonic_single_and_multiple_wraps() {
        let mut c = WrapCounter::default();
        assert_eq!(c.update(100, 1000), 0);
        assert_eq!(c.update(400, 1000), 300);
        assert_eq!(c.update(400, 1000), 300);
        // Wrap: 400 → 1000 (600) then 0 → 50.
        assert_eq!(c.update(50, 1000), 950);
        assert_eq!(c.update(990, 1000), 1890);
        assert_eq!(c.update(10, 1000), 1910);
        assert_eq!(c.wraps(), 2);
    }

    fn zone(root: &Path, dir: &str, name: &str, energy: u64, range: u64) -> PathBuf {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(d.join("energy_uj"), format!("{energy}\n")).unwrap();
        std::fs::write(d.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
        d
    }

    #[test]
    fn rapl_tree_sums_packages_and_handles_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let p0 = zone(
            root,
            "intel-rapl:0",
            "package-0",
            999_000_000,
            1_000_000_000,
        );
        let p1 = zone(root, "intel-rapl:1", "package-1", 5_000_000, 1_000_000_000);
        zone(root, "intel-rapl:0:0", "core", 1, 1_000_000_000);
        zone(root, "intel-rapl:2", "psys", 1, 1_000_000_000);
        let mut src = RaplSource::new(root, Arc::new(RealFs));
        assert_eq!(src.probe(), vec![(Metric::CpuEnergyJ, Ok(()))]);
        let env = src.environment();
        assert!(env["rapl_zones_not_summed"].contains("psys"));
        assert!(env["rapl_zones_not_summed"].contains("core"));

        let clock = ManualClock::new(1_000);
        let mut out = Vec::new();
        src.sample(&clock, &[], &mut out);
        // p0 wraps: +1 J to the top, +2 J after; p1 +3 J.
        std::fs::write(p0.join("energy_uj"), "2000000\n").unwrap();
        std::fs::write(p1.join("energy_uj"), "8000000\n").unwrap();
        clock.advance(100_000_000);
        src.sample(&clock, &[], &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].value, 0.0);
        assert_eq!(out[1].value, 6.0);
        assert_eq!(out[1].t_ns, 100_001_000);
        assert_eq!(out[1].metric, Metric::CpuEnergyJ);
    }

    #[test]
    fn rapl_permission_denied_says_so_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p0 = zone(dir.path(), "intel-rapl:0", "package-0", 1, 10);
        let fs = FailingFs {
            fail: vec![p0.join("energy_uj")],
            kind: std::io::ErrorKind::PermissionDenied,
        };
        let mut src = RaplSource::new(dir.path(), Arc::new(fs));
        let probe = src.probe();
        let err = probe[0].1.clone().unwrap_err();
        assert_eq!(err.kind, UnavailableKind::NoPermission);
        assert!(err.reason.contains("energy_uj"), "{}", err.reason);
        assert!(err.reason.contains("CVE-2020-8694"), "{}", err.reason);
        let mut out = Vec::new();
        src.sample(&ManualClock::new(0), &[], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn rapl_absent_is_not_supported_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("powercap");
        let mut src = RaplSource::new(&missing, Arc::new(RealFs));
        let err = src.probe()[0].1.clone().unwrap_err();
        assert_eq!(err.kind, UnavailableKind::NotSupported);
        assert!(err.reason.contains(&missing.display().to_string()));

        std::fs::create_dir_all(&missing).unwrap();
        let err = src.probe()[0].1.clone().unwrap_err();
        assert_eq!(err.kind, UnavailableKind::NotSupported);
        assert!(err.reason.contains("no intel-rapl"), "{}", err.reason);
    }

    /// On this machine: RAPL is used where the kernel exposes it; otherwise the reason
    /// names the path.
    #[test]
    fn real_rapl_probe_is_used_or_explained() {
        let mut src = RaplSource::real();
        let probe = src.probe();
        match &probe[0].1 {
            Ok(()) => {
                let mut out = Vec::new();
                src.sample(&crate::clock::MonotonicClock, &[], &mut out);
                assert_eq!(out.len(), 1);
            }
            Err(u) => {
                assert!(
                    matches!(
                        u.kind,
                        UnavailableKind::NotSupported | UnavailableKind::NoPermission
                    ),
                    "{u}"
                );
                assert!(u.reason.contains(POWERCAP_ROOT), "{u}");
            }
        }
    }
}
