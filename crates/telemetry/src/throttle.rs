//! Whether the machine held its clocks down while a cell ran. A benchmark on a throttling
//! machine measures the cooling, not the hardware, so each cell records what can be read:
//!
//! - the CPU frequency governor (`cpufreq/scaling_governor` of every CPU in sysfs), read at
//!   the cell's start, since `powersave` on a laptop halves a CPU backend's numbers;
//! - the CPU thermal throttle counters (`thermal_throttle/core_throttle_count` per CPU and
//!   `package_throttle_count` per package, Intel's `therm_throt` driver), read at the
//!   cell's start and end: any increase means the CPU throttled during the cell;
//! - the GPU's clock-limiting reasons (NVML `clocks_event_reasons`, sampled with the other
//!   telemetry as [`Metric::ClockThrottle`](crate::Metric::ClockThrottle)): a power cap, a
//!   thermal slowdown or a power brake seen in any sample of the cell.
//!
//! Where none of these can be read (a VM, macOS, AMD CPUs without the counters) the cell's
//! `throttled` is unknown, never "no".

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use tokbench_core::CellConditions;

use crate::fs::{FileReader, RealFs};

/// Where Linux puts the CPUs.
pub const CPU_ROOT: &str = "/sys/devices/system/cpu";

/// What sysfs says about the CPUs' clocks at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuClocks {
    /// The governors of the CPUs that have one (`performance`, `powersave`, `schedutil`).
    pub governors: BTreeSet<String>,
    /// The thermal throttle events counted so far, summed over CPUs (core) and packages;
    /// `None` where the kernel has no counters.
    pub throttle_events: Option<u64>,
}

impl CpuClocks {
    /// Reads this machine's CPUs (Linux; elsewhere everything is unknown).
    pub fn read() -> CpuClocks {
        CpuClocks::read_from(&RealFs, Path::new(CPU_ROOT))
    }

    /// Reads the CPUs under `root` (`/sys/devices/system/cpu` or a test's tree).
    pub fn read_from(fs: &dyn FileReader, root: &Path) -> CpuClocks {
        let mut governors = BTreeSet::new();
        let mut core_events: Option<u64> = None;
        let mut package_events: BTreeMap<String, u64> = BTreeMap::new();
        let cpus = fs.read_dir(root).unwrap_or_default();
        for cpu in cpus.iter().filter(|p| is_cpu_dir(p)) {
            if let Ok(g) = fs.read_to_string(&cpu.join("cpufreq/scaling_governor")) {
                let g = g.trim();
                if !g.is_empty() {
                    governors.insert(g.to_string());
                }
            }
            let throttle = cpu.join("thermal_throttle");
            if let Ok(n) = fs.read_u64(&throttle.join("core_throttle_count")) {
                core_events = Some(core_events.unwrap_or(0) + n);
            }
            if let Ok(n) = fs.read_u64(&throttle.join("package_throttle_count")) {
                // Every CPU of a package shows the package's one counter: count it once.
                let package = fs
                    .read_to_string(&cpu.join("topology/physical_package_id"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| cpu.display().to_string());
                package_events.insert(package, n);
            }
        }
        let packages = (!package_events.is_empty()).then(|| package_events.values().sum::<u64>());
        let throttle_events = match (core_events, packages) {
            (None, None) => None,
            (c, p) => Some(c.unwrap_or(0) + p.unwrap_or(0)),
        };
        CpuClocks {
            governors,
            throttle_events,
        }
    }
}

/// `cpu0`, `cpu17`: not `cpufreq`, `cpuidle`.
fn is_cpu_dir(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("cpu"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// NVML's clock-limiting reasons that mean the GPU ran slower than it could for this work,
/// with the names a result shows. Idle, application or user clock settings, sync boost and
/// display clocks are choices, not throttling, and are left out.
pub const GPU_THROTTLE_REASONS: [(u64, &str); 5] = [
    (ThrottleReasons::SW_POWER_CAP.bits(), "sw power cap"),
    (ThrottleReasons::HW_SLOWDOWN.bits(), "hw slowdown"),
    (
        ThrottleReasons::SW_THERMAL_SLOWDOWN.bits(),
        "sw thermal slowdown",
    ),
    (
        ThrottleReasons::HW_THERMAL_SLOWDOWN.bits(),
        "hw thermal slowdown",
    ),
    (
        ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN.bits(),
        "hw power brake",
    ),
];

/// The throttling part of an NVML reasons bitmask.
pub fn gpu_throttle_mask(reasons: u64) -> u64 {
    GPU_THROTTLE_REASONS
        .iter()
        .map(|(bit, _)| bit)
        .fold(0, |acc, bit| acc | (reasons & bit))
}

/// The names of the throttle reasons in `mask`, in NVML's bit order.
pub fn gpu_throttle_names(mask: u64) -> Vec<&'static str> {
    GPU_THROTTLE_REASONS
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// A cell's conditions from the CPU state at its start and end and, where the GPU's
/// reasons were sampled, their union over the cell (`None`: not sampled).
pub fn conditions(before: &CpuClocks, after: &CpuClocks, gpu_mask: Option<u64>) -> CellConditions {
    let governors = if before.governors.is_empty() {
        &after.governors
    } else {
        &before.governors
    };
    let cpu_governor =
        (!governors.is_empty()).then(|| governors.iter().cloned().collect::<Vec<_>>().join(","));
    let cpu_events = match (before.throttle_events, after.throttle_events) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    let mut reasons = Vec::new();
    if let Some(n) = cpu_events.filter(|&n| n > 0) {
        let s = if n == 1 { "" } else { "s" };
        reasons.push(format!("cpu: {n} thermal throttle event{s}"));
    }
    if let Some(mask) = gpu_mask.filter(|&m| m != 0) {
        reasons.push(format!("gpu: {}", gpu_throttle_names(mask).join(", ")));
    }
    let known = cpu_events.is_some() || gpu_mask.is_some();
    CellConditions {
        cpu_governor,
        throttled: known.then_some(!reasons.is_empty()),
        throttle: (!reasons.is_empty()).then(|| reasons.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    /// Two CPUs of one package with Intel's counters, as a throttling laptop has them.
    fn intel_tree(root: &Path, core: [u64; 2], package: u64) {
        for (i, c) in core.iter().enumerate() {
            write(
                root,
                &format!("cpu{i}/cpufreq/scaling_governor"),
                "powersave\n",
            );
            write(
                root,
                &format!("cpu{i}/thermal_throttle/core_throttle_count"),
                &format!("{c}\n"),
            );
            write(
                root,
                &format!("cpu{i}/thermal_throttle/package_throttle_count"),
                &format!("{package}\n"),
            );
            write(root, &format!("cpu{i}/topology/physical_package_id"), "0\n");
        }
        // Not CPUs: never read as one.
        write(root, "cpufreq/boost", "1\n");
        write(root, "cpuidle/current_driver", "intel_idle\n");
    }

    #[test]
    fn counters_sum_cores_and_count_each_package_once() {
        let tmp = tempfile::tempdir().unwrap();
        intel_tree(tmp.path(), [3, 4], 10);
        let c = CpuClocks::read_from(&RealFs, tmp.path());
        assert_eq!(c.throttle_events, Some(3 + 4 + 10));
        assert_eq!(c.governors, BTreeSet::from(["powersave".to_string()]));
    }

    #[test]
    fn a_counter_that_moves_during_the_cell_flags_it() {
        let tmp = tempfile::tempdir().unwrap();
        intel_tree(tmp.path(), [3, 4], 10);
        let before = CpuClocks::read_from(&RealFs, tmp.path());
        intel_tree(tmp.path(), [3, 6], 11);
        let after = CpuClocks::read_from(&RealFs, tmp.path());
        let c = conditions(&before, &after, None);
        assert_eq!(c.throttled, Some(true));
        assert_eq!(
            c.throttle.as_deref(),
            Some("cpu: 3 thermal throttle events")
        );
        assert_eq!(c.cpu_governor.as_deref(), Some("powersave"));
        // Unmoved: read, and not throttled.
        let c = conditions(&after, &after, None);
        assert_eq!((c.throttled, c.throttle), (Some(false), None));
    }

    #[test]
    fn nothing_readable_is_unknown_not_no() {
        let tmp = tempfile::tempdir().unwrap();
        // A VM: CPUs, no cpufreq, no counters.
        write(tmp.path(), "cpu0/topology/physical_package_id", "0\n");
        let c = CpuClocks::read_from(&RealFs, tmp.path());
        assert_eq!(c, CpuClocks::default());
        let c = conditions(&c, &c, None);
        assert_eq!(c, CellConditions::default());
        // A missing root (macOS) reads the same.
        let gone = CpuClocks::read_from(&RealFs, &tmp.path().join("absent"));
        assert_eq!(gone, CpuClocks::default());
    }

    #[test]
    fn mixed_governors_are_all_named() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "cpu0/cpufreq/scaling_governor", "performance\n");
        write(tmp.path(), "cpu1/cpufreq/scaling_governor", "powersave\n");
        let c = CpuClocks::read_from(&RealFs, tmp.path());
        let c = conditions(&c, &c, None);
        assert_eq!(c.cpu_governor.as_deref(), Some("performance,powersave"));
        assert_eq!(c.throttled, None);
    }

    #[test]
    fn gpu_reasons_keep_only_throttling() {
        // GPU idle (0x1) and applications clocks (0x2) are not throttling; the power cap
        // (0x4) and hw thermal slowdown (0x40) are.
        let mask = gpu_throttle_mask(0x1 | 0x2 | 0x4 | 0x40);
        assert_eq!(mask, 0x44);
        assert_eq!(
            gpu_throttle_names(mask),
            ["sw power cap", "hw thermal slowdown"]
        );
        let none = CpuClocks::default();
        let c = conditions(&none, &none, Some(mask));
        assert_eq!(c.throttled, Some(true));
        assert_eq!(
            c.throttle.as_deref(),
            Some("gpu: sw power cap, hw thermal slowdown")
        );
        // Sampled and clean: known not throttled.
        assert_eq!(conditions(&none, &none, Some(0)).throttled, Some(false));
    }
}
