//! NVIDIA GPUs through NVML (`nvml-wrapper`). The library is opened at run time
//! (`libnvidia-ml.so.1`), so tokbench builds and runs where there is no driver: there NVML
//! is simply "no device", with the loader's message as the reason.
//!
//! Metric by metric, a device may not support a call (pre-Volta has no energy counter,
//! Jetson has no power): each is probed on every device and is available only where every
//! device supports it, since the values are summed (power, energy, memory) or maxed (clocks,
//! temperature, utilisation) over devices.
//!
//! Process memory: NVML reports host PIDs, so inside a container's PID namespace the
//! backend's PIDs match nothing and `vram_proc_bytes` reads 0 with every process counted in
//! `other_procs`.

use std::collections::{BTreeMap, BTreeSet};

use nvml_wrapper::enum_wrappers::device::{Clock as NvClock, TemperatureSensor};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_POWER_INSTANT;
use nvml_wrapper::{Device, Nvml};

use crate::clock::Clock;
use crate::metric::{Availability, Metric, Sample, Unavailable, UnavailableKind};
use crate::source::{all_unavailable, Source};

const NVML_METRICS: [Metric; 11] = [
    Metric::PowerW,
    Metric::EnergyJ,
    Metric::VramUsedBytes,
    Metric::VramProcBytes,
    Metric::ClockSmMhz,
    Metric::ClockMemMhz,
    Metric::TempC,
    Metric::UtilGpuPct,
    Metric::PowerLimitW,
    Metric::OtherProcs,
    Metric::ClockThrottle,
];

/// Maps an error from `Nvml::init` to why NVML cannot be used.
pub fn init_error_to_unavailable(err: &NvmlError) -> Unavailable {
    use UnavailableKind::*;
    let (kind, reason) = match err {
        NvmlError::LibloadingError(e) => (
            NoDevice,
            format!("no NVIDIA driver: NVML library not loadable ({e})"),
        ),
        NvmlError::LibraryNotFound => (NoDevice, format!("no NVIDIA driver: {err}")),
        NvmlError::DriverNotLoaded => (NoDevice, format!("{err}")),
        NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound => (
            LibraryMissing,
            format!("the NVML library is too old for this call: {err}"),
        ),
        NvmlError::LibRmVersionMismatch => (
            LibraryMissing,
            format!("{err}: the driver was upgraded without a reboot"),
        ),
        NvmlError::NoPermission => (NoPermission, format!("NVML init: {err}")),
        other => (NotSupported, format!("NVML init failed: {other}")),
    };
    Unavailable::new(kind, reason)
}

/// Maps an error from one device call to why that metric cannot be measured.
pub fn call_error_to_unavailable(device: u32, what: &str, err: &NvmlError) -> Unavailable {
    use UnavailableKind::*;
    let kind = match err {
        NvmlError::NotSupported => NotSupported,
        NvmlError::NoPermission => NoPermission,
        NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound => LibraryMissing,
        NvmlError::GpuLost | NvmlError::NotFound => NoDevice,
        _ => NotSupported,
    };
    Unavailable::new(kind, format!("GPU {device}: {what}: {err}"))
}

/// How power is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PowerRead {
    /// `NVML_FI_DEV_POWER_INSTANT`: instantaneous, every architecture with a recent driver.
    Instant,
    /// `nvmlDeviceGetPowerUsage`: a 1 s average on Ampere (except GA100) and newer.
    Usage,
}

/// NVIDIA GPUs: power, the energy counter, device and per-process memory, clocks,
/// temperature, utilisation, power limit, and processes that are not the backend's.
pub struct NvmlSource {
    nvml: Result<Nvml, Unavailable>,
    device_count: u32,
    power: Option<PowerRead>,
    available: BTreeMap<Metric, Availability>,
    env: BTreeMap<String, String>,
}

impl std::fmt::Debug for NvmlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSource")
            .field("loaded", &self.nvml.is_ok())
            .field("device_count", &self.device_count)
            .field("power", &self.power)
            .field("available", &self.available)
            .finish()
    }
}

impl Default for NvmlSource {
    fn default() -> Self {
        NvmlSource::new()
    }
}

impl NvmlSource {
    /// Loads NVML (expensive: it resolves every symbol once). Never fails: a machine
    /// without the driver gets a source whose probe says why.
    pub fn new() -> NvmlSource {
        let nvml = Nvml::init().map_err(|e| init_error_to_unavailable(&e));
        NvmlSource {
            nvml,
            device_count: 0,
            power: None,
            available: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }

    fn devices(nvml: &Nvml, count: u32) -> Vec<Device<'_>> {
        (0..count)
            .filter_map(|i| nvml.device_by_index(i).ok())
            .collect()
    }

    fn read_power_w(dev: &Device<'_>, how: PowerRead) -> Result<f64, NvmlError> {
        match how {
            PowerRead::Instant => {
                let mut v = dev.field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)])?;
                let sample = v.pop().ok_or(NvmlError::NotSupported)??;
                let mw = match sample.value? {
                    SampleValue::F64(x) => x,
                    SampleValue::U32(x) => f64::from(x),
                    SampleValue::U64(x) => x as f64,
                    SampleValue::I64(x) => x as f64,
                };
                if mw <= 0.0 {
                    return Err(NvmlError::NotSupported);
                }
                Ok(mw / 1000.0)
            }
            PowerRead::Usage => Ok(f64::from(dev.power_usage()?) / 1000.0),
        }
    }

    /// Memory per PID on this device, compute and graphics contexts together (a PID in
    /// both lists counts once, at its larger figure).
    fn processes(dev: &Device<'_>) -> Result<BTreeMap<u32, Option<u64>>, NvmlError> {
        let mut procs: BTreeMap<u32, Option<u64>> = BTreeMap::new();
        let compute = dev.running_compute_processes()?;
        let graphics = dev.running_graphics_processes().unwrap_or_default();
        for p in compute.into_iter().chain(graphics) {
            let used = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            };
            let e = procs.entry(p.pid).or_insert(used);
            *e = match (*e, used) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(procs)
    }

    /// One metric read on one device.
    fn read(dev: &Device<'_>, metric: Metric, power: Option<PowerRead>) -> Result<f64, NvmlError> {
        Ok(match metric {
            Metric::PowerW => Self::read_power_w(dev, power.unwrap_or(PowerRead::Usage))?,
            Metric::EnergyJ => dev.total_energy_consumption()? as f64 / 1000.0,
            Metric::VramUsedBytes => dev.memory_info()?.used as f64,
            Metric::ClockSmMhz => f64::from(dev.clock_info(NvClock::SM)?),
            Metric::ClockMemMhz => f64::from(dev.clock_info(NvClock::Memory)?),
            Metric::TempC => f64::from(dev.temperature(TemperatureSensor::Gpu)?),
            Metric::UtilGpuPct => f64::from(dev.utilization_rates()?.gpu),
            Metric::PowerLimitW => f64::from(dev.enforced_power_limit()?) / 1000.0,
            Metric::ClockThrottle => {
                crate::throttle::gpu_throttle_mask(dev.current_throttle_reasons()?.bits()) as f64
            }
            Metric::VramProcBytes | Metric::OtherProcs => {
                Self::processes(dev)?;
                0.0
            }
            _ => return Err(NvmlError::NotSupported),
        })
    }

    fn probe_loaded(&mut self) -> Vec<(Metric, Availability)> {
        let nvml = match &self.nvml {
            Ok(n) => n,
            Err(u) => return all_unavailable(&NVML_METRICS, u.kind, &u.reason),
        };
        let mut env = BTreeMap::new();
        if let Ok(v) = nvml.sys_driver_version() {
            env.insert("nvidia_driver_version".to_string(), v);
        }
        if let Ok(v) = nvml.sys_nvml_version() {
            env.insert("nvml_version".to_string(), v);
        }
        if let Ok(v) = nvml.sys_cuda_driver_version() {
            env.insert(
                "cuda_driver_version".to_string(),
                format!("{}.{}", v / 1000, (v % 1000) / 10),
            );
        }
        let count = match nvml.device_count() {
            Ok(0) => {
                self.env = env;
                return all_unavailable(
                    &NVML_METRICS,
                    UnavailableKind::NoDevice,
                    "NVML loaded but sees no GPU",
                );
            }
            Ok(n) => n,
            Err(e) => {
                self.env = env;
                let u = init_error_to_unavailable(&e);
                return all_unavailable(&NVML_METRICS, u.kind, &u.reason);
            }
        };
        self.device_count = count;
        env.insert("gpu_count".to_string(), count.to_string());
        let devices = Self::devices(nvml, count);
        if devices.len() != count as usize {
            self.env = env;
            return all_unavailable(
                &NVML_METRICS,
                UnavailableKind::NoDevice,
                &format!(
                    "NVML counts {count} GPUs but only {} can be opened",
                    devices.len()
                ),
            );
        }

        // Power: instantaneous field where every device gives it, else the usage call.
        let instant_ok = devices
            .iter()
            .all(|d| Self::read_power_w(d, PowerRead::Instant).is_ok());
        self.power = Some(if instant_ok {
            PowerRead::Instant
        } else {
            PowerRead::Usage
        });
        env.insert(
            "nvml_power_read".to_string(),
            match self.power {
                Some(PowerRead::Instant) => "field NVML_FI_DEV_POWER_INSTANT (instantaneous)",
                _ => "nvmlDeviceGetPowerUsage (1 s average on Ampere and newer, except GA100)",
            }
            .to_string(),
        );

        let mut result = Vec::new();
        for metric in NVML_METRICS {
            let mut a: Availability = Ok(());
            for (i, dev) in devices.iter().enumerate() {
                if let Err(e) = Self::read(dev, metric, self.power) {
                    a = Err(call_error_to_unavailable(i as u32, metric.name(), &e));
                    break;
                }
            }
            self.available.insert(metric, a.clone());
            result.push((metric, a));
        }

        let mut others = BTreeSet::new();
        for (i, dev) in devices.iter().enumerate() {
            let key = |k: &str| format!("gpu{i}_{k}");
            if let Ok(v) = dev.name() {
                env.insert(key("name"), v);
            }
            if let Ok(v) = dev.uuid() {
                env.insert(key("uuid"), v);
            }
            if let Ok(v) = dev.architecture() {
                env.insert(key("architecture"), v.to_string());
            }
            if let Ok(m) = dev.memory_info() {
                env.insert(key("memory_total_bytes"), m.total.to_string());
                env.insert(key("memory_used_bytes_at_probe"), m.used.to_string());
            }
            if let Ok(v) = dev.enforced_power_limit() {
                env.insert(
                    key("power_limit_w"),
                    format!("{:.1}", f64::from(v) / 1000.0),
                );
            }
            if let Ok(v) = dev.power_management_limit_default() {
                env.insert(
                    key("power_limit_default_w"),
                    format!("{:.1}", f64::from(v) / 1000.0),
                );
            }
            if let Ok(v) = dev.max_clock_info(NvClock::SM) {
                env.insert(key("max_clock_sm_mhz"), v.to_string());
            }
            if let Ok(v) = dev.max_clock_info(NvClock::Memory) {
                env.insert(key("max_clock_mem_mhz"), v.to_string());
            }
            if let Ok(v) = dev.clock_info(NvClock::SM) {
                env.insert(key("clock_sm_mhz_at_probe"), v.to_string());
            }
            if let Ok(procs) = Self::processes(dev) {
                others.extend(procs.keys().copied());
            }
        }
        env.insert(
            "gpu_processes_at_probe".to_string(),
            others
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        self.env = env;
        result
    }

    fn is_available(&self, m: Metric) -> bool {
        matches!(self.available.get(&m), Some(Ok(())))
    }
}

impl Source for NvmlSource {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn probe(&mut self) -> Vec<(Metric, Availability)> {
        self.available.clear();
        let result = self.probe_loaded();
        for (m, a) in &result {
            self.available.insert(*m, a.clone());
        }
        result
    }

    fn sample(&mut self, clock: &dyn Clock, pids: &[u32], out: &mut Vec<Sample>) {
        if self.available.is_empty() {
            self.probe();
        }
        let Ok(nvml) = &self.nvml else {
            return;
        };
        let devices = Self::devices(nvml, self.device_count);
        if devices.is_empty() || devices.len() != self.device_count as usize {
            return;
        }
        let summed = [
            Metric::PowerW,
            Metric::EnergyJ,
            Metric::VramUsedBytes,
            Metric::PowerLimitW,
        ];
        let maxed = [
            Metric::ClockSmMhz,
            Metric::ClockMemMhz,
            Metric::TempC,
            Metric::UtilGpuPct,
        ];
        if self.is_available(Metric::ClockThrottle) {
            // A bitmask: OR-ed over devices, so each device's reasons are kept.
            let t_ns = clock.now_ns();
            let mut mask = Some(0u64);
            for dev in &devices {
                mask = match (Self::read(dev, Metric::ClockThrottle, self.power), mask) {
                    (Ok(v), Some(m)) => Some(m | v as u64),
                    _ => None,
                };
            }
            if let Some(m) = mask {
                out.push(Sample {
                    t_ns,
                    metric: Metric::ClockThrottle,
                    value: m as f64,
                    source: "nvml",
                });
            }
        }
        for metric in summed.into_iter().chain(maxed) {
            if !self.is_available(metric) {
                continue;
            }
            let t_ns = clock.now_ns();
            let mut acc: Option<f64> = Some(if summed.contains(&metric) {
                0.0
            } else {
                f64::MIN
            });
            for dev in &devices {
                match (Self::read(dev, metric, self.power), acc) {
                    (Ok(v), Some(a)) if summed.contains(&metric) => acc = Some(a + v),
                    (Ok(v), Some(a)) => acc = Some(a.max(v)),
                    _ => acc = None,
                }
            }
            if let Some(value) = acc {
                out.push(Sample {
                    t_ns,
                    metric,
                    value,
                    source: "nvml",
                });
            }
        }
        if self.is_available(Metric::VramProcBytes) || self.is_available(Metric::OtherProcs) {
            let t_ns = clock.now_ns();
            let mut proc_bytes = Some(0u64);
            let mut others = BTreeSet::new();
            let mut ok = true;
            for dev in &devices {
                let Ok(procs) = Self::processes(dev) else {
                    ok = false;
                    break;
                };
                for (pid, used) in procs {
                    if pids.contains(&pid) {
                        proc_bytes = match (proc_bytes, used) {
                            (Some(a), Some(b)) => Some(a + b),
                            _ => None,
                        };
                    } else {
                        others.insert(pid);
                    }
                }
            }
            if ok {
                if let (Some(b), false) = (proc_bytes, pids.is_empty()) {
                    if self.is_available(Metric::VramProcBytes) {
                        out.push(Sample {
                            t_ns,
                            metric: Metric::VramProcBytes,
                            value: b as f64,
                            source: "nvml",
                        });
                    }
                }
                if self.is_available(Metric::OtherProcs) {
                    out.push(Sample {
                        t_ns,
                        metric: Metric::OtherProcs,
                        value: others.len() as f64,
                        source: "nvml",
                    });
                }
            }
        }
    }

    fn environment(&self) -> BTreeMap<String, String> {
        self.env.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_errors_map_to_kinds() {
        let missing = NvmlError::LibraryNotFound;
        assert_eq!(
            init_error_to_unavailable(&missing).kind,
            UnavailableKind::NoDevice
        );
        assert_eq!(
            init_error_to_unavailable(&NvmlError::DriverNotLoaded).kind,
            UnavailableKind::NoDevice
        );
        assert_eq!(
            init_error_to_unavailable(&NvmlError::NoPermission).kind,
            UnavailableKind::NoPermission
        );
        assert_eq!(
            init_error_to_unavailable(&NvmlError::FailedToLoadSymbol("x".into())).kind,
            UnavailableKind::LibraryMissing
        );
        let u = call_error_to_unavailable(1, "energy_j", &NvmlError::NotSupported);
        assert_eq!(u.kind, UnavailableKind::NotSupported);
        assert!(u.reason.starts_with("GPU 1: energy_j:"), "{}", u.reason);
    }

    /// On a machine with no NVIDIA driver (this one, CI) NVML says "no device" for every
    /// metric, with the loader's message; where a GPU exists, power at least is available.
    #[test]
    fn real_nvml_probe_is_no_device_without_driver() {
        let mut src = NvmlSource::new();
        let probe = src.probe();
        assert_eq!(probe.len(), NVML_METRICS.len());
        let driverless = !std::path::Path::new("/proc/driver/nvidia/version").exists();
        if driverless {
            for (m, a) in &probe {
                let u = a.clone().expect_err("no driver, yet available");
                assert_eq!(u.kind, UnavailableKind::NoDevice, "{m}: {u}");
                assert!(!u.reason.is_empty());
            }
            let mut out = Vec::new();
            src.sample(&crate::clock::MonotonicClock, &[1], &mut out);
            assert!(out.is_empty());
        } else {
            assert!(probe
                .iter()
                .any(|(m, a)| *m == Metric::VramUsedBytes && a.is_ok()));
        }
    }
}
