//! The vocabulary shared by every source: what can be measured ([`Metric`]), one timestamped
//! reading ([`Sample`]), and why a metric cannot be measured ([`Unavailable`]).

use std::fmt;

/// One thing a source can measure. [`Metric::name`] is the stable string stored in the
/// database's `telemetry_sample.metric` column; never rename one, add a new one instead.
///
/// Where a source sees several devices (two GPUs), power, energy and memory are summed
/// over them, and clocks, temperature and utilisation are the maximum over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Device (GPU, or SoC for powermetrics) power, watts.
    PowerW,
    /// Device energy counter, joules since an arbitrary origin (the driver's load, the
    /// source's creation). Only differences mean anything.
    EnergyJ,
    /// Device memory in use on the whole device, bytes.
    VramUsedBytes,
    /// Device memory used by the backend's process tree, bytes.
    VramProcBytes,
    /// Resident memory of the backend's process tree (sum of `VmRSS`), bytes.
    RssBytes,
    /// Sum of the tree's processes' resident high-water marks (`VmHWM`), bytes: the exact
    /// peak for a single process, an upper bound on the tree's peak otherwise.
    RssHwmBytes,
    /// The anonymous part of `rss_bytes` (`RssAnon`: heap, KV cache on CPU), bytes.
    RssAnonBytes,
    /// The file-backed part of `rss_bytes` (`RssFile`: mmapped weights, evictable), bytes.
    RssFileBytes,
    /// CPU package energy counter (RAPL), joules since the source's creation.
    CpuEnergyJ,
    /// GPU SM (shader) clock, MHz.
    ClockSmMhz,
    /// GPU memory clock, MHz.
    ClockMemMhz,
    /// GPU temperature, degrees Celsius.
    TempC,
    /// GPU utilisation over the driver's last sample period, percent.
    UtilGpuPct,
    /// Enforced power limit, watts.
    PowerLimitW,
    /// Number of processes on the device that are not in the backend's tree: others
    /// competing for it (a display server, another job).
    OtherProcs,
    /// The GPU's clock-limiting reasons that are throttling (power cap, thermal slowdown,
    /// power brake; see [`crate::throttle`]), as NVML's bitmask, OR-ed over devices: 0 when
    /// the clocks ran free.
    ClockThrottle,
}

impl Metric {
    /// Every metric, in a fixed order.
    pub const ALL: [Metric; 16] = [
        Metric::PowerW,
        Metric::EnergyJ,
        Metric::VramUsedBytes,
        Metric::VramProcBytes,
        Metric::RssBytes,
        Metric::RssHwmBytes,
        Metric::RssAnonBytes,
        Metric::RssFileBytes,
        Metric::CpuEnergyJ,
        Metric::ClockSmMhz,
        Metric::ClockMemMhz,
        Metric::TempC,
        Metric::UtilGpuPct,
        Metric::PowerLimitW,
        Metric::OtherProcs,
        Metric::ClockThrottle,
    ];

    /// Whether the metric reads the machine or its devices rather than the backend's own
    /// processes: only these say anything once the backend has exited (power falling back
    /// in the idle after a model's last cell).
    pub fn is_machine_wide(self) -> bool {
        !matches!(
            self,
            Metric::VramProcBytes
                | Metric::RssBytes
                | Metric::RssHwmBytes
                | Metric::RssAnonBytes
                | Metric::RssFileBytes
        )
    }

    /// The stable name stored in the database.
    pub fn name(self) -> &'static str {
        match self {
            Metric::PowerW => "power_w",
            Metric::EnergyJ => "energy_j",
            Metric::VramUsedBytes => "vram_used_bytes",
            Metric::VramProcBytes => "vram_proc_bytes",
            Metric::RssBytes => "rss_bytes",
            Metric::RssHwmBytes => "rss_hwm_bytes",
            Metric::RssAnonBytes => "rss_anon_bytes",
            Metric::RssFileBytes => "rss_file_bytes",
            Metric::CpuEnergyJ => "cpu_energy_j",
            Metric::ClockSmMhz => "clock_sm_mhz",
            Metric::ClockMemMhz => "clock_mem_mhz",
            Metric::TempC => "temp_c",
            Metric::UtilGpuPct => "util_gpu_pct",
            Metric::PowerLimitW => "power_limit_w",
            Metric::OtherProcs => "other_procs",
            Metric::ClockThrottle => "clock_throttle",
        }
    }

    /// The metric with this stored name, if any.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Returns true if and only if this metric is a cumulative energy counter, whose
    /// differences give energy.
    pub fn is_energy_counter(self) -> bool {
        matches!(self, Metric::EnergyJ | Metric::CpuEnergyJ)
    }
}

impl serde::Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// When it was read, `CLOCK_MONOTONIC` nanoseconds (see [`crate::clock`]).
    pub t_ns: u64,
    pub metric: Metric,
    pub value: f64,
    /// The source's name ([`crate::Source::name`]), stored in `telemetry_sample.source`.
    pub source: &'static str,
}

/// Why a metric cannot be measured. Serialised in snake case (`no_device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnavailableKind {
    /// No such device on this machine (no NVIDIA driver, no AMD card, no RAPL zone).
    NoDevice,
    /// The device may be there but a library or tool needed to read it is missing.
    LibraryMissing,
    /// The device or kernel does not offer this metric.
    NotSupported,
    /// The metric exists but this user may not read it.
    NoPermission,
    /// The metric makes no sense here (powermetrics on Linux, VRAM on unified memory).
    NotApplicable,
}

impl UnavailableKind {
    /// A stable lowercase name, for storage and display.
    pub fn name(self) -> &'static str {
        match self {
            UnavailableKind::NoDevice => "no device",
            UnavailableKind::LibraryMissing => "library missing",
            UnavailableKind::NotSupported => "not supported",
            UnavailableKind::NoPermission => "no permission",
            UnavailableKind::NotApplicable => "not applicable",
        }
    }
}

/// A metric that cannot be measured, and why, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}: {reason}", kind.name())]
pub struct Unavailable {
    pub kind: UnavailableKind,
    pub reason: String,
}

impl Unavailable {
    pub fn new(kind: UnavailableKind, reason: impl Into<String>) -> Unavailable {
        Unavailable {
            kind,
            reason: reason.into(),
        }
    }

    /// Maps a file-read error on `path` to the matching kind: permission denied is
    /// [`UnavailableKind::NoPermission`] (with `hint` appended), anything else
    /// [`UnavailableKind::NotSupported`].
    pub fn from_io(path: &std::path::Path, err: &std::io::Error, hint: &str) -> Unavailable {
        if err.kind() == std::io::ErrorKind::PermissionDenied {
            let mut reason = format!("cannot read {}: {err}", path.display());
            if !hint.is_empty() {
                reason.push_str("; ");
                reason.push_str(hint);
            }
            Unavailable::new(UnavailableKind::NoPermission, reason)
        } else {
            Unavailable::new(
                UnavailableKind::NotSupported,
                format!("cannot read {}: {err}", path.display()),
            )
        }
    }
}

/// What a source says about one metric: available, or why not.
pub type Availability = Result<(), Unavailable>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        assert_eq!(Metric::PowerW.name(), "power_w");
        assert_eq!(Metric::from_name("nope"), None);
    }

    #[test]
    fn unavailable_displays_kind_and_reason() {
        let u = Unavailable::new(UnavailableKind::NoDevice, "no NVIDIA driver");
        assert_eq!(u.to_string(), "no device: no NVIDIA driver");
    }
}
