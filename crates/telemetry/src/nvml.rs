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
//!
//! The source is split at the library's boundary: [`NvmlApi`] is the thin layer of NVML
//! calls, answering in NVML's own units (milliwatts, millijoules, bytes) with NVML's
//! errors; [`NvmlSource`] is the conversion it feeds (units, sums over devices, the energy
//! counter's wrap and reset, readings NVML withholds, permission errors, devices that
//! vanish). [`RealNvml`] calls the library; [`crate::nvml_replay::NvmlReplay`] answers
//! the same calls from a recording (`TOKBENCH_NVML_REPLAY=FILE`), so the conversion,
//! sampler, phase windows and storage run end to end where there is no GPU.

use std::collections::{BTreeMap, BTreeSet};

use nvml_wrapper::enum_wrappers::device::{Clock as NvClock, TemperatureSensor};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
pub use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_POWER_INSTANT;
use nvml_wrapper::Nvml;

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

/// A clock NVML reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuClock {
    Sm,
    Memory,
}

/// A process on a device, as NVML lists it: its host PID and its device memory, `None`
/// where NVML withholds the figure (`NVML_VALUE_NOT_AVAILABLE`, as under some drivers and
/// in some containers).
pub type GpuProcess = (u32, Option<u64>);

/// The NVML calls tokbench makes, one method each, in NVML's units and with NVML's errors.
/// Device calls take the device's index; a device that vanished answers
/// [`NvmlError::GpuLost`] (or whatever the library says), like any failed call.
pub trait NvmlApi: Send {
    fn driver_version(&self) -> Result<String, NvmlError>;
    fn nvml_version(&self) -> Result<String, NvmlError>;
    /// As `nvmlSystemGetCudaDriverVersion`: 12040 for 12.4.
    fn cuda_driver_version(&self) -> Result<i32, NvmlError>;
    fn device_count(&self) -> Result<u32, NvmlError>;
    /// Whether device `i` can be opened (`nvmlDeviceGetHandleByIndex`).
    fn open(&self, i: u32) -> Result<(), NvmlError>;
    fn name(&self, i: u32) -> Result<String, NvmlError>;
    fn uuid(&self, i: u32) -> Result<String, NvmlError>;
    fn architecture(&self, i: u32) -> Result<String, NvmlError>;
    /// (total, used) bytes.
    fn memory_info(&self, i: u32) -> Result<(u64, u64), NvmlError>;
    /// The `NVML_FI_DEV_POWER_INSTANT` field, milliwatts.
    fn power_instant_mw(&self, i: u32) -> Result<f64, NvmlError>;
    /// `nvmlDeviceGetPowerUsage`, milliwatts.
    fn power_usage_mw(&self, i: u32) -> Result<u32, NvmlError>;
    /// `nvmlDeviceGetTotalEnergyConsumption`: millijoules since the driver loaded.
    fn total_energy_mj(&self, i: u32) -> Result<u64, NvmlError>;
    fn clock_mhz(&self, i: u32, clock: GpuClock) -> Result<u32, NvmlError>;
    fn max_clock_mhz(&self, i: u32, clock: GpuClock) -> Result<u32, NvmlError>;
    fn temperature_c(&self, i: u32) -> Result<u32, NvmlError>;
    fn utilization_gpu_pct(&self, i: u32) -> Result<u32, NvmlError>;
    /// Milliwatts.
    fn enforced_power_limit_mw(&self, i: u32) -> Result<u32, NvmlError>;
    /// Milliwatts.
    fn default_power_limit_mw(&self, i: u32) -> Result<u32, NvmlError>;
    /// `nvmlDeviceGetCurrentClocksEventReasons`' bitmask.
    fn throttle_reasons(&self, i: u32) -> Result<u64, NvmlError>;
    fn compute_processes(&self, i: u32) -> Result<Vec<GpuProcess>, NvmlError>;
    fn graphics_processes(&self, i: u32) -> Result<Vec<GpuProcess>, NvmlError>;
    /// Called before each sample with its time and the backend's PIDs. The library needs
    /// neither; a replay moves its recording to `now_ns` and gives the recording's backend
    /// process these PIDs.
    fn before_sample(&mut self, _now_ns: u64, _backend_pids: &[u32]) {}
}

/// NVML itself, through `nvml-wrapper`.
pub struct RealNvml(Nvml);

impl std::fmt::Debug for RealNvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RealNvml")
    }
}

impl RealNvml {
    /// Loads the library (it resolves every symbol once).
    pub fn load() -> Result<RealNvml, NvmlError> {
        Nvml::init().map(RealNvml)
    }

    fn dev(&self, i: u32) -> Result<nvml_wrapper::Device<'_>, NvmlError> {
        self.0.device_by_index(i)
    }
}

fn nv_clock(c: GpuClock) -> NvClock {
    match c {
        GpuClock::Sm => NvClock::SM,
        GpuClock::Memory => NvClock::Memory,
    }
}

fn processes_of(list: Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>) -> Vec<GpuProcess> {
    list.into_iter()
        .map(|p| {
            let used = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            };
            (p.pid, used)
        })
        .collect()
}

impl NvmlApi for RealNvml {
    fn driver_version(&self) -> Result<String, NvmlError> {
        self.0.sys_driver_version()
    }
    fn nvml_version(&self) -> Result<String, NvmlError> {
        self.0.sys_nvml_version()
    }
    fn cuda_driver_version(&self) -> Result<i32, NvmlError> {
        self.0.sys_cuda_driver_version()
    }
    fn device_count(&self) -> Result<u32, NvmlError> {
        self.0.device_count()
    }
    fn open(&self, i: u32) -> Result<(), NvmlError> {
        self.dev(i).map(drop)
    }
    fn name(&self, i: u32) -> Result<String, NvmlError> {
        self.dev(i)?.name()
    }
    fn uuid(&self, i: u32) -> Result<String, NvmlError> {
        self.dev(i)?.uuid()
    }
    fn architecture(&self, i: u32) -> Result<String, NvmlError> {
        Ok(self.dev(i)?.architecture()?.to_string())
    }
    fn memory_info(&self, i: u32) -> Result<(u64, u64), NvmlError> {
        let m = self.dev(i)?.memory_info()?;
        Ok((m.total, m.used))
    }
    fn power_instant_mw(&self, i: u32) -> Result<f64, NvmlError> {
        let mut v = self
            .dev(i)?
            .field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)])?;
        let sample = v.pop().ok_or(NvmlError::NotSupported)??;
        Ok(match sample.value? {
            SampleValue::F64(x) => x,
            SampleValue::U32(x) => f64::from(x),
            SampleValue::U64(x) => x as f64,
            SampleValue::I64(x) => x as f64,
        })
    }
    fn power_usage_mw(&self, i: u32) -> Result<u32, NvmlError> {
        self.dev(i)?.power_usage()
    }
    fn total_energy_mj(&self, i: u32) -> Result<u64, NvmlError> {
        self.dev(i)?.total_energy_consumption()
    }
    fn clock_mhz(&self, i: u32, clock: GpuClock) -> Result<u32, NvmlError> {
        self.dev(i)?.clock_info(nv_clock(clock))
    }
    fn max_clock_mhz(&self, i: u32, clock: GpuClock) -> Result<u32, NvmlError> {
        self.dev(i)?.max_clock_info(nv_clock(clock))
    }
    fn temperature_c(&self, i: u32) -> Result<u32, NvmlError> {
        self.dev(i)?.temperature(TemperatureSensor::Gpu)
    }
    fn utilization_gpu_pct(&self, i: u32) -> Result<u32, NvmlError> {
        Ok(self.dev(i)?.utilization_rates()?.gpu)
    }
    fn enforced_power_limit_mw(&self, i: u32) -> Result<u32, NvmlError> {
        self.dev(i)?.enforced_power_limit()
    }
    fn default_power_limit_mw(&self, i: u32) -> Result<u32, NvmlError> {
        self.dev(i)?.power_management_limit_default()
    }
    fn throttle_reasons(&self, i: u32) -> Result<u64, NvmlError> {
        Ok(self.dev(i)?.current_throttle_reasons()?.bits())
    }
    fn compute_processes(&self, i: u32) -> Result<Vec<GpuProcess>, NvmlError> {
        Ok(processes_of(self.dev(i)?.running_compute_processes()?))
    }
    fn graphics_processes(&self, i: u32) -> Result<Vec<GpuProcess>, NvmlError> {
        Ok(processes_of(self.dev(i)?.running_graphics_processes()?))
    }
}

/// How power is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PowerRead {
    /// `NVML_FI_DEV_POWER_INSTANT`: instantaneous, every architecture with a recent driver.
    Instant,
    /// `nvmlDeviceGetPowerUsage`: a 1 s average on Ampere (except GA100) and newer.
    Usage,
}

/// One device's energy counter as the conversion follows it: NVML's millijoules since the
/// driver loaded become millijoules since this source's first reading, kept exact in
/// integers (a counter near 2^64 mJ would lose whole joules as an `f64`).
#[derive(Debug, Clone, Copy, Default)]
struct EnergyCounter {
    /// The last raw reading.
    last: Option<u64>,
    /// Millijoules since the first reading; back to 0 at a reset.
    since_first_mj: u64,
    wraps: u32,
    resets: u32,
}

/// A counter within this many millijoules of 2^64 that reads small next is taken to have
/// wrapped (about 12 days of a 1 kW card): anything else that goes down was reset.
const WRAP_MARGIN_MJ: u64 = 1 << 40;

impl EnergyCounter {
    /// Follows one raw reading; returns millijoules since the first reading. A wrap past
    /// 2^64 is carried exactly; a reset (a driver reload, a GPU reset: the counter starts
    /// again near 0) restarts the figure at 0, so the series goes down and the phase
    /// windows across it fall back to integrated power instead of a wrong difference.
    /// Returns true at a reset.
    fn follow(&mut self, raw: u64) -> bool {
        let mut reset = false;
        if let Some(last) = self.last {
            if raw >= last {
                self.since_first_mj += raw - last;
            } else if last > u64::MAX - WRAP_MARGIN_MJ && raw < WRAP_MARGIN_MJ {
                self.since_first_mj += (u64::MAX - last) + raw + 1;
                self.wraps += 1;
            } else {
                self.since_first_mj = 0;
                self.resets += 1;
                reset = true;
            }
        }
        self.last = Some(raw);
        reset
    }
}

/// NVIDIA GPUs: power, the energy counter, device and per-process memory, clocks,
/// temperature, utilisation, power limit, and processes that are not the backend's.
pub struct NvmlSource {
    api: Result<Box<dyn NvmlApi>, Unavailable>,
    device_count: u32,
    power: Option<PowerRead>,
    available: BTreeMap<Metric, Availability>,
    env: BTreeMap<String, String>,
    energy: Vec<EnergyCounter>,
}

impl std::fmt::Debug for NvmlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSource")
            .field("loaded", &self.api.is_ok())
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

/// The environment variable that replaces the library with a recording.
pub const REPLAY_ENV: &str = "TOKBENCH_NVML_REPLAY";

/// NVML: the recording `TOKBENCH_NVML_REPLAY` names, else the library; or why neither.
pub fn api() -> Result<Box<dyn NvmlApi>, Unavailable> {
    if let Some(path) = std::env::var_os(REPLAY_ENV).filter(|p| !p.is_empty()) {
        let path = std::path::PathBuf::from(path);
        return crate::nvml_replay::NvmlReplay::load(&path)
            .map(|r| Box::new(r) as Box<dyn NvmlApi>)
            .map_err(|e| {
                Unavailable::new(
                    UnavailableKind::NoDevice,
                    format!("{REPLAY_ENV}={}: {e}", path.display()),
                )
            });
    }
    RealNvml::load()
        .map(|n| Box::new(n) as Box<dyn NvmlApi>)
        .map_err(|e| init_error_to_unavailable(&e))
}

impl NvmlSource {
    /// Loads NVML (expensive: it resolves every symbol once), or, where
    /// `TOKBENCH_NVML_REPLAY` names a recording, replays that. Never fails: a machine
    /// without the driver gets a source whose probe says why, as does a recording that
    /// cannot be read.
    pub fn new() -> NvmlSource {
        NvmlSource::with(api())
    }

    /// A source over `api` (the library, a replay), or one that says why there is none.
    pub fn with(api: Result<Box<dyn NvmlApi>, Unavailable>) -> NvmlSource {
        NvmlSource {
            api,
            device_count: 0,
            power: None,
            available: BTreeMap::new(),
            env: BTreeMap::new(),
            energy: Vec::new(),
        }
    }

    fn read_power_w(api: &dyn NvmlApi, i: u32, how: PowerRead) -> Result<f64, NvmlError> {
        match how {
            PowerRead::Instant => {
                let mw = api.power_instant_mw(i)?;
                // The field reads 0 (or less) where the driver has no instantaneous value.
                if mw <= 0.0 || !mw.is_finite() {
                    return Err(NvmlError::NotSupported);
                }
                Ok(mw / 1000.0)
            }
            PowerRead::Usage => Ok(f64::from(api.power_usage_mw(i)?) / 1000.0),
        }
    }

    /// Memory per PID on this device, compute and graphics contexts together (a PID in
    /// both lists counts once, at its larger figure).
    fn processes(api: &dyn NvmlApi, i: u32) -> Result<BTreeMap<u32, Option<u64>>, NvmlError> {
        let mut procs: BTreeMap<u32, Option<u64>> = BTreeMap::new();
        let compute = api.compute_processes(i)?;
        let graphics = api.graphics_processes(i).unwrap_or_default();
        for (pid, used) in compute.into_iter().chain(graphics) {
            let e = procs.entry(pid).or_insert(used);
            *e = match (*e, used) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(procs)
    }

    /// One metric read on one device, in tokbench's units. The energy counter is read raw
    /// here (millijoules); [`EnergyCounter`] turns it into a series.
    fn read(
        api: &dyn NvmlApi,
        i: u32,
        metric: Metric,
        power: Option<PowerRead>,
    ) -> Result<f64, NvmlError> {
        Ok(match metric {
            Metric::PowerW => Self::read_power_w(api, i, power.unwrap_or(PowerRead::Usage))?,
            Metric::EnergyJ => api.total_energy_mj(i)? as f64 / 1000.0,
            Metric::VramUsedBytes => api.memory_info(i)?.1 as f64,
            Metric::ClockSmMhz => f64::from(api.clock_mhz(i, GpuClock::Sm)?),
            Metric::ClockMemMhz => f64::from(api.clock_mhz(i, GpuClock::Memory)?),
            Metric::TempC => f64::from(api.temperature_c(i)?),
            Metric::UtilGpuPct => f64::from(api.utilization_gpu_pct(i)?),
            Metric::PowerLimitW => f64::from(api.enforced_power_limit_mw(i)?) / 1000.0,
            Metric::ClockThrottle => {
                crate::throttle::gpu_throttle_mask(api.throttle_reasons(i)?) as f64
            }
            Metric::VramProcBytes | Metric::OtherProcs => {
                Self::processes(api, i)?;
                0.0
            }
            _ => return Err(NvmlError::NotSupported),
        })
    }

    fn probe_loaded(&mut self) -> Vec<(Metric, Availability)> {
        let api: &dyn NvmlApi = match &self.api {
            Ok(a) => a.as_ref(),
            Err(u) => return all_unavailable(&NVML_METRICS, u.kind, &u.reason),
        };
        let mut env = BTreeMap::new();
        if let Ok(v) = api.driver_version() {
            env.insert("nvidia_driver_version".to_string(), v);
        }
        if let Ok(v) = api.nvml_version() {
            env.insert("nvml_version".to_string(), v);
        }
        if let Ok(v) = api.cuda_driver_version() {
            env.insert(
                "cuda_driver_version".to_string(),
                format!("{}.{}", v / 1000, (v % 1000) / 10),
            );
        }
        let count = match api.device_count() {
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
        self.energy = vec![EnergyCounter::default(); count as usize];
        env.insert("gpu_count".to_string(), count.to_string());
        let opened = (0..count).filter(|&i| api.open(i).is_ok()).count();
        if opened != count as usize {
            self.env = env;
            return all_unavailable(
                &NVML_METRICS,
                UnavailableKind::NoDevice,
                &format!("NVML counts {count} GPUs but only {opened} can be opened"),
            );
        }

        // Power: instantaneous field where every device gives it, else the usage call.
        let instant_ok = (0..count).all(|i| Self::read_power_w(api, i, PowerRead::Instant).is_ok());
        let power = if instant_ok {
            PowerRead::Instant
        } else {
            PowerRead::Usage
        };
        env.insert(
            "nvml_power_read".to_string(),
            match power {
                PowerRead::Instant => "field NVML_FI_DEV_POWER_INSTANT (instantaneous)",
                PowerRead::Usage => {
                    "nvmlDeviceGetPowerUsage (1 s average on Ampere and newer, except GA100)"
                }
            }
            .to_string(),
        );

        let mut result = Vec::new();
        for metric in NVML_METRICS {
            let mut a: Availability = Ok(());
            for i in 0..count {
                if let Err(e) = Self::read(api, i, metric, Some(power)) {
                    a = Err(call_error_to_unavailable(i, metric.name(), &e));
                    break;
                }
            }
            result.push((metric, a));
        }

        let mut others = BTreeSet::new();
        for i in 0..count {
            let key = |k: &str| format!("gpu{i}_{k}");
            if let Ok(v) = api.name(i) {
                env.insert(key("name"), v);
            }
            if let Ok(v) = api.uuid(i) {
                env.insert(key("uuid"), v);
            }
            if let Ok(v) = api.architecture(i) {
                env.insert(key("architecture"), v);
            }
            if let Ok((total, used)) = api.memory_info(i) {
                env.insert(key("memory_total_bytes"), total.to_string());
                env.insert(key("memory_used_bytes_at_probe"), used.to_string());
            }
            if let Ok(v) = api.enforced_power_limit_mw(i) {
                env.insert(
                    key("power_limit_w"),
                    format!("{:.1}", f64::from(v) / 1000.0),
                );
            }
            if let Ok(v) = api.default_power_limit_mw(i) {
                env.insert(
                    key("power_limit_default_w"),
                    format!("{:.1}", f64::from(v) / 1000.0),
                );
            }
            if let Ok(v) = api.max_clock_mhz(i, GpuClock::Sm) {
                env.insert(key("max_clock_sm_mhz"), v.to_string());
            }
            if let Ok(v) = api.max_clock_mhz(i, GpuClock::Memory) {
                env.insert(key("max_clock_mem_mhz"), v.to_string());
            }
            if let Ok(v) = api.clock_mhz(i, GpuClock::Sm) {
                env.insert(key("clock_sm_mhz_at_probe"), v.to_string());
            }
            if let Ok(procs) = Self::processes(api, i) {
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
        self.power = Some(power);
        self.env = env;
        result
    }

    /// How often each device's energy counter wrapped past 2^64 and was reset, so far.
    pub fn energy_counter_events(&self) -> Vec<(u32, u32)> {
        self.energy.iter().map(|e| (e.wraps, e.resets)).collect()
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
        let NvmlSource {
            api,
            device_count: count,
            power,
            available,
            energy,
            ..
        } = self;
        let (count, power) = (*count, *power);
        let is_available = |m: Metric| matches!(available.get(&m), Some(Ok(())));
        let Ok(api) = api else {
            return;
        };
        api.before_sample(clock.now_ns(), pids);
        let api: &dyn NvmlApi = api.as_ref();
        if count == 0 {
            return;
        }
        // A device that vanished (GPU lost, unplugged, reset) fails its calls: every
        // reading summed or maxed over devices is then left out, never taken from the
        // devices that remain, so a figure never silently covers fewer GPUs.
        let summed = [Metric::PowerW, Metric::VramUsedBytes, Metric::PowerLimitW];
        let maxed = [
            Metric::ClockSmMhz,
            Metric::ClockMemMhz,
            Metric::TempC,
            Metric::UtilGpuPct,
        ];
        if is_available(Metric::ClockThrottle) {
            // A bitmask: OR-ed over devices, so each device's reasons are kept.
            let t_ns = clock.now_ns();
            let mut mask = Some(0u64);
            for i in 0..count {
                mask = match (Self::read(api, i, Metric::ClockThrottle, power), mask) {
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
        if is_available(Metric::EnergyJ) {
            let t_ns = clock.now_ns();
            let raw: Option<Vec<u64>> = (0..count).map(|i| api.total_energy_mj(i).ok()).collect();
            if let Some(raw) = raw {
                let mut reset = false;
                for (r, c) in raw.iter().zip(energy.iter_mut()) {
                    reset |= c.follow(*r);
                }
                // One device's reset restarts the whole sum at 0: a drop the phases see
                // (and integrate power across), where the other devices' growth since
                // the last reading could otherwise hide it in the sum.
                if reset {
                    energy.iter_mut().for_each(|c| c.since_first_mj = 0);
                }
                let mj: u64 = energy.iter().map(|c| c.since_first_mj).sum();
                out.push(Sample {
                    t_ns,
                    metric: Metric::EnergyJ,
                    value: mj as f64 / 1000.0,
                    source: "nvml",
                });
            }
        }
        for metric in summed.into_iter().chain(maxed) {
            if !is_available(metric) {
                continue;
            }
            let t_ns = clock.now_ns();
            let mut acc: Option<f64> = Some(if summed.contains(&metric) {
                0.0
            } else {
                f64::MIN
            });
            for i in 0..count {
                match (Self::read(api, i, metric, power), acc) {
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
        if is_available(Metric::VramProcBytes) || is_available(Metric::OtherProcs) {
            let t_ns = clock.now_ns();
            let mut proc_bytes = Some(0u64);
            let mut others = BTreeSet::new();
            let mut ok = true;
            for i in 0..count {
                let Ok(procs) = Self::processes(api, i) else {
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
                    if is_available(Metric::VramProcBytes) {
                        out.push(Sample {
                            t_ns,
                            metric: Metric::VramProcBytes,
                            value: b as f64,
                            source: "nvml",
                        });
                    }
                }
                if is_available(Metric::OtherProcs) {
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
