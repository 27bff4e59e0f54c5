//! NVML answered from a recording: the same calls as [`crate::nvml::RealNvml`], their
//! results read from a JSON file of readings over time, so the conversion, the sampler,
//! the phase windows and storage run end to end on a machine without an NVIDIA GPU
//! (`TOKBENCH_NVML_REPLAY=FILE tokbench run …`), and every odd answer NVML gives (a counter
//! that wraps or resets, `N/A`, a permission error, a device that vanishes) can be played
//! to the code that must handle it.
//!
//! The file:
//!
//! ```json
//! {
//!   "recording": "synthetic",            // or "recorded": where the figures come from
//!   "driver_version": "550.54.15", "nvml_version": "12.550.54.15",
//!   "cuda_driver_version": 12040,
//!   "devices": [{ "name": "NVIDIA H200", "uuid": "GPU-…", "architecture": "Hopper",
//!                 "memory_total_bytes": 150754820096, "power_limit_default_mw": 700000,
//!                 "max_clock_sm_mhz": 1980, "max_clock_mem_mhz": 2619 }],
//!   "timeline": [
//!     { "t_ms": 0, "devices": [{ "power_instant_mw": 75000, "power_usage_mw": 75000,
//!       "total_energy_mj": 8765432100, "memory_used_bytes": 560000000,
//!       "clock_sm_mhz": 345, "clock_mem_mhz": 2619, "temperature_c": 31,
//!       "utilization_gpu_pct": 0, "enforced_power_limit_mw": 700000,
//!       "throttle_reasons": 1,
//!       "compute_processes": [["backend", 0], [4242, 536870912]],
//!       "graphics_processes": [] }] },
//!     { "t_ms": 100, "devices": [{ "power_instant_mw": 81000 }] }
//!   ]
//! }
//! ```
//!
//! - Time: the recording starts at the first sample's time; a call reads the last entry at
//!   or before now (after the end: the last one). Before any sample, entry 0.
//! - An entry's device lists only what changed: a field it leaves out keeps its value from
//!   the entries before.
//! - Any value may be `{"error": "NotSupported"}` (or `NoPermission`, `GpuLost`, `NotFound`,
//!   `Unknown`, `Timeout`, `Uninitialized`, `InsufficientSize`): the call fails with that
//!   NVML error. A device entry that is itself `{"error": "GpuLost"}` fails every call from
//!   then on (a device that vanished), until an entry gives it readings again. A field
//!   never given fails with `NotSupported`.
//! - A process's PID `"backend"` is the backend's PIDs at sample time (the first of them);
//!   a process's memory `null` is NVML's "not available".

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::nvml::{GpuClock, GpuProcess, NvmlApi, NvmlError};

/// Values by call name: the system's or a device's fixed facts, or one device's reading.
type State = BTreeMap<String, Value>;

/// Where a device's lost mark is kept among its changes: `{"error": …}` from the entry
/// that lost it, `null` from one that gives readings again.
const LOST: &str = "*";

/// A recording, and where in it the replay stands.
#[derive(Debug)]
pub struct NvmlReplay {
    sys: State,
    statics: Vec<State>,
    /// Per device and call, each value it was given and from when (ns into the
    /// recording), in time order: what changed, not a copy of everything per entry, so
    /// an hour at 100 ms on eight GPUs replays in the memory of its file.
    changes: Vec<BTreeMap<String, Vec<(u64, Value)>>>,
    origin_ns: Option<u64>,
    /// Where the replay stands, ns into the recording.
    now_ns: u64,
    /// The first entry's time: before it, the replay stands there.
    start_ns: u64,
    backend_pid: Option<u32>,
}

/// Why a recording cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Shape(String),
}

/// The NVML errors a recording may name, each with its name there.
fn errors() -> [(&'static str, NvmlError); 8] {
    [
        ("NotSupported", NvmlError::NotSupported),
        ("NoPermission", NvmlError::NoPermission),
        ("GpuLost", NvmlError::GpuLost),
        ("NotFound", NvmlError::NotFound),
        ("Timeout", NvmlError::Timeout),
        ("Uninitialized", NvmlError::Uninitialized),
        ("InsufficientSize", NvmlError::InsufficientSize(None)),
        ("Unknown", NvmlError::Unknown),
    ]
}

fn nvml_error(name: &str) -> NvmlError {
    errors()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map_or(NvmlError::Unknown, |(_, e)| e)
}

/// NVML's error as the recording names it (one it has no name for: `Unknown`).
pub fn error_name(e: &NvmlError) -> &'static str {
    errors()
        .into_iter()
        .find(|(_, x)| std::mem::discriminant(x) == std::mem::discriminant(e))
        .map_or("Unknown", |(n, _)| n)
}

/// `{"error": NAME}`'s NAME, checked.
fn error_of(v: &Value) -> Result<Option<&str>, String> {
    match v.as_object().and_then(|o| o.get("error")) {
        None => Ok(None),
        Some(Value::String(n)) if errors().iter().any(|(e, _)| e == n) => Ok(Some(n)),
        Some(other) => Err(format!(
            "unknown NVML error {other}: one of {}",
            errors().map(|(n, _)| n).join(", ")
        )),
    }
}

fn object(v: &Value, what: &str) -> Result<State, ReplayError> {
    let o = v
        .as_object()
        .ok_or_else(|| ReplayError::Shape(format!("{what}: an object")))?;
    for (k, v) in o {
        error_of(v).map_err(|e| ReplayError::Shape(format!("{what}.{k}: {e}")))?;
    }
    Ok(o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

impl NvmlReplay {
    pub fn load(path: &Path) -> Result<NvmlReplay, ReplayError> {
        NvmlReplay::from_json(&serde_json::from_slice(&std::fs::read(path)?)?)
    }

    pub fn from_json(v: &Value) -> Result<NvmlReplay, ReplayError> {
        let shape = |m: &str| ReplayError::Shape(m.to_string());
        let root = v.as_object().ok_or_else(|| shape("a JSON object"))?;
        let sys: State = ["driver_version", "nvml_version", "cuda_driver_version"]
            .iter()
            .filter_map(|k| root.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        let statics = root
            .get("devices")
            .and_then(Value::as_array)
            .ok_or_else(|| shape("`devices`: a list of the devices' fixed facts"))?
            .iter()
            .enumerate()
            .map(|(i, d)| object(d, &format!("devices[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let entries = root
            .get("timeline")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| shape("`timeline`: a list of at least one entry"))?;
        let mut changes: Vec<BTreeMap<String, Vec<(u64, Value)>>> =
            vec![BTreeMap::new(); statics.len()];
        let mut last_ns = 0;
        let mut start_ns = None;
        for (n, e) in entries.iter().enumerate() {
            let at = |m: String| ReplayError::Shape(format!("timeline[{n}]: {m}"));
            let t_ns = e
                .get("t_ms")
                .and_then(Value::as_u64)
                .and_then(|ms| ms.checked_mul(1_000_000))
                .ok_or_else(|| at("`t_ms`: milliseconds from the start, at most 2^64 ns".into()))?;
            if t_ns < last_ns {
                return Err(at(format!("t_ms {} goes back in time", t_ns / 1_000_000)));
            }
            last_ns = t_ns;
            start_ns.get_or_insert(t_ns);
            let devices = e
                .get("devices")
                .and_then(Value::as_array)
                .ok_or_else(|| at("`devices`: one entry per device".into()))?;
            if devices.len() != statics.len() {
                return Err(at(format!(
                    "{} devices, the recording has {}",
                    devices.len(),
                    statics.len()
                )));
            }
            for (i, d) in devices.iter().enumerate() {
                let lost = error_of(d).map_err(|m| at(format!("devices[{i}]: {m}")))?;
                let calls = &mut changes[i];
                let was_lost = calls
                    .get(LOST)
                    .and_then(|l| l.last())
                    .is_some_and(|(_, v)| !v.is_null());
                if lost.is_some() {
                    calls
                        .entry(LOST.into())
                        .or_default()
                        .push((t_ns, d.clone()));
                    continue;
                }
                if was_lost {
                    calls
                        .entry(LOST.into())
                        .or_default()
                        .push((t_ns, Value::Null));
                }
                for (k, v) in object(d, &format!("timeline[{n}].devices[{i}]"))? {
                    calls.entry(k).or_default().push((t_ns, v));
                }
            }
        }
        Ok(NvmlReplay {
            sys,
            statics,
            changes,
            origin_ns: None,
            now_ns: 0,
            start_ns: start_ns.unwrap_or(0),
            backend_pid: None,
        })
    }

    /// Device `i`'s change list for `key`, as it stands now.
    fn current(&self, i: usize, key: &str) -> Option<&Value> {
        let list = self.changes.get(i)?.get(key)?;
        let now = self.now_ns.max(self.start_ns);
        let k = list.partition_point(|(t, _)| *t <= now);
        k.checked_sub(1).map(|k| &list[k].1)
    }

    /// Device `i` as NVML would open it now: there, lost, or no such index.
    fn device(&self, i: u32) -> Result<usize, NvmlError> {
        let i = i as usize;
        if i >= self.statics.len() {
            return Err(NvmlError::InvalidArg);
        }
        match self.current(i, LOST).filter(|v| !v.is_null()) {
            Some(e) => Err(nvml_error(error_of(e).ok().flatten().unwrap_or("Unknown"))),
            None => Ok(i),
        }
    }

    /// The value of `key` for device `i` now: its reading, else its fixed fact.
    fn value(&self, i: u32, key: &str) -> Result<Value, NvmlError> {
        let i = self.device(i)?;
        let v = self
            .current(i, key)
            .or_else(|| self.statics[i].get(key))
            .ok_or(NvmlError::NotSupported)?;
        match error_of(v).ok().flatten() {
            Some(name) => Err(nvml_error(name)),
            None => Ok(v.clone()),
        }
    }

    fn u64_of(&self, i: u32, key: &str) -> Result<u64, NvmlError> {
        self.value(i, key)?.as_u64().ok_or(NvmlError::Unknown)
    }

    fn u32_of(&self, i: u32, key: &str) -> Result<u32, NvmlError> {
        u32::try_from(self.u64_of(i, key)?).map_err(|_| NvmlError::Unknown)
    }

    fn text_of(&self, i: u32, key: &str) -> Result<String, NvmlError> {
        self.value(i, key)?
            .as_str()
            .map(str::to_string)
            .ok_or(NvmlError::Unknown)
    }

    fn processes(&self, i: u32, key: &str) -> Result<Vec<GpuProcess>, NvmlError> {
        let list = self.value(i, key)?;
        let list = list.as_array().ok_or(NvmlError::Unknown)?;
        Ok(list
            .iter()
            .filter_map(|p| {
                let pid = match p.get(0)? {
                    Value::String(s) if s == "backend" => self.backend_pid?,
                    v => u32::try_from(v.as_u64()?).ok()?,
                };
                Some((pid, p.get(1).and_then(Value::as_u64)))
            })
            .collect())
    }

    fn sys_value(&self, key: &str) -> Result<&Value, NvmlError> {
        let v = self.sys.get(key).ok_or(NvmlError::NotSupported)?;
        match error_of(v).ok().flatten() {
            Some(name) => Err(nvml_error(name)),
            None => Ok(v),
        }
    }
}

impl NvmlApi for NvmlReplay {
    fn driver_version(&self) -> Result<String, NvmlError> {
        Ok(self
            .sys_value("driver_version")?
            .as_str()
            .ok_or(NvmlError::Unknown)?
            .to_string())
    }
    fn nvml_version(&self) -> Result<String, NvmlError> {
        Ok(self
            .sys_value("nvml_version")?
            .as_str()
            .ok_or(NvmlError::Unknown)?
            .to_string())
    }
    fn cuda_driver_version(&self) -> Result<i32, NvmlError> {
        self.sys_value("cuda_driver_version")?
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or(NvmlError::Unknown)
    }
    fn device_count(&self) -> Result<u32, NvmlError> {
        Ok(self.statics.len() as u32)
    }
    fn open(&self, i: u32) -> Result<(), NvmlError> {
        self.device(i).map(drop)
    }
    fn name(&self, i: u32) -> Result<String, NvmlError> {
        self.text_of(i, "name")
    }
    fn uuid(&self, i: u32) -> Result<String, NvmlError> {
        self.text_of(i, "uuid")
    }
    fn architecture(&self, i: u32) -> Result<String, NvmlError> {
        self.text_of(i, "architecture")
    }
    fn memory_info(&self, i: u32) -> Result<(u64, u64), NvmlError> {
        Ok((
            self.u64_of(i, "memory_total_bytes")?,
            self.u64_of(i, "memory_used_bytes")?,
        ))
    }
    fn power_instant_mw(&self, i: u32) -> Result<f64, NvmlError> {
        self.value(i, "power_instant_mw")?
            .as_f64()
            .ok_or(NvmlError::Unknown)
    }
    fn power_usage_mw(&self, i: u32) -> Result<u32, NvmlError> {
        self.u32_of(i, "power_usage_mw")
    }
    fn total_energy_mj(&self, i: u32) -> Result<u64, NvmlError> {
        self.u64_of(i, "total_energy_mj")
    }
    fn clock_mhz(&self, i: u32, clock: GpuClock) -> Result<u32, NvmlError> {
        match clock {
            GpuClock::Sm => self.u32_of(i, "clock_sm_mhz"),
            GpuClock::Memory => self.u32_of(i, "clock_mem_mhz"),
        }
    }
    fn max_clock_mhz(&self, i: u32, clock: GpuClock) -> Result<u32, NvmlError> {
        match clock {
            GpuClock::Sm => self.u32_of(i, "max_clock_sm_mhz"),
            GpuClock::Memory => self.u32_of(i, "max_clock_mem_mhz"),
        }
    }
    fn temperature_c(&self, i: u32) -> Result<u32, NvmlError> {
        self.u32_of(i, "temperature_c")
    }
    fn utilization_gpu_pct(&self, i: u32) -> Result<u32, NvmlError> {
        self.u32_of(i, "utilization_gpu_pct")
    }
    fn enforced_power_limit_mw(&self, i: u32) -> Result<u32, NvmlError> {
        self.u32_of(i, "enforced_power_limit_mw")
    }
    fn default_power_limit_mw(&self, i: u32) -> Result<u32, NvmlError> {
        self.u32_of(i, "power_limit_default_mw")
    }
    fn throttle_reasons(&self, i: u32) -> Result<u64, NvmlError> {
        self.u64_of(i, "throttle_reasons")
    }
    fn compute_processes(&self, i: u32) -> Result<Vec<GpuProcess>, NvmlError> {
        self.processes(i, "compute_processes")
    }
    fn graphics_processes(&self, i: u32) -> Result<Vec<GpuProcess>, NvmlError> {
        self.processes(i, "graphics_processes")
    }
    fn before_sample(&mut self, now_ns: u64, backend_pids: &[u32]) {
        let origin = *self.origin_ns.get_or_insert(now_ns);
        self.now_ns = now_ns.saturating_sub(origin);
        self.backend_pid = backend_pids.first().copied();
    }
}

fn answer<T: Into<Value>>(r: Result<T, NvmlError>) -> Value {
    match r {
        Ok(v) => v.into(),
        Err(e) => serde_json::json!({ "error": error_name(&e) }),
    }
}

fn processes_value(r: Result<Vec<GpuProcess>, NvmlError>, backend: Option<u32>) -> Value {
    answer(r.map(|list| {
        list.into_iter()
            .map(|(pid, used)| {
                let pid = match backend {
                    Some(b) if b == pid => Value::from("backend"),
                    _ => Value::from(pid),
                };
                Value::Array(vec![pid, used.map(Value::from).unwrap_or(Value::Null)])
            })
            .collect::<Vec<Value>>()
    }))
}

/// Makes a recording in the replay's format from any [`NvmlApi`] (the library, on a
/// machine with a GPU): the fixed facts once, then at each [`Recorder::read`] every call
/// the source makes, each entry listing only what changed.
#[derive(Debug)]
pub struct Recorder {
    head: serde_json::Map<String, Value>,
    last: Vec<Option<State>>,
    timeline: Vec<Value>,
    start_ns: Option<u64>,
}

impl Recorder {
    /// Reads the system's and each device's fixed facts. `recording` says where the
    /// figures come from (`"recorded"` on real hardware).
    pub fn start(api: &dyn NvmlApi, recording: &str) -> Recorder {
        let mut head = serde_json::Map::new();
        head.insert("recording".into(), recording.into());
        head.insert("driver_version".into(), answer(api.driver_version()));
        head.insert("nvml_version".into(), answer(api.nvml_version()));
        head.insert(
            "cuda_driver_version".into(),
            answer(api.cuda_driver_version()),
        );
        let n = api.device_count().unwrap_or(0);
        let devices: Vec<Value> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "name": answer(api.name(i)),
                    "uuid": answer(api.uuid(i)),
                    "architecture": answer(api.architecture(i)),
                    "memory_total_bytes": answer(api.memory_info(i).map(|m| m.0)),
                    "power_limit_default_mw": answer(api.default_power_limit_mw(i)),
                    "max_clock_sm_mhz": answer(api.max_clock_mhz(i, GpuClock::Sm)),
                    "max_clock_mem_mhz": answer(api.max_clock_mhz(i, GpuClock::Memory)),
                })
            })
            .collect();
        head.insert("devices".into(), Value::Array(devices));
        Recorder {
            head,
            last: vec![None; n as usize],
            timeline: Vec::new(),
            start_ns: None,
        }
    }

    /// One reading of every device at `t_ns`; `backend` is written as `"backend"` among
    /// the processes, so a replay can give it another PID.
    pub fn read(&mut self, api: &dyn NvmlApi, t_ns: u64, backend: Option<u32>) {
        let start = *self.start_ns.get_or_insert(t_ns);
        let mut devices = Vec::new();
        for (i, last) in self.last.iter_mut().enumerate() {
            let i = i as u32;
            if let Err(e) = api.open(i) {
                devices.push(serde_json::json!({ "error": error_name(&e) }));
                *last = None;
                continue;
            }
            let now: State = [
                ("power_instant_mw", answer(api.power_instant_mw(i))),
                ("power_usage_mw", answer(api.power_usage_mw(i))),
                ("total_energy_mj", answer(api.total_energy_mj(i))),
                ("memory_used_bytes", answer(api.memory_info(i).map(|m| m.1))),
                ("clock_sm_mhz", answer(api.clock_mhz(i, GpuClock::Sm))),
                ("clock_mem_mhz", answer(api.clock_mhz(i, GpuClock::Memory))),
                ("temperature_c", answer(api.temperature_c(i))),
                ("utilization_gpu_pct", answer(api.utilization_gpu_pct(i))),
                (
                    "enforced_power_limit_mw",
                    answer(api.enforced_power_limit_mw(i)),
                ),
                ("throttle_reasons", answer(api.throttle_reasons(i))),
                (
                    "compute_processes",
                    processes_value(api.compute_processes(i), backend),
                ),
                (
                    "graphics_processes",
                    processes_value(api.graphics_processes(i), backend),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let changed: serde_json::Map<String, Value> = now
                .iter()
                .filter(|(k, v)| last.as_ref().and_then(|l| l.get(*k)) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            devices.push(Value::Object(changed));
            *last = Some(now);
        }
        self.timeline.push(serde_json::json!({
            "t_ms": (t_ns - start) / 1_000_000,
            "devices": devices,
        }));
    }

    /// The recording, ready to write.
    pub fn finish(self) -> Value {
        let mut doc = self.head;
        doc.insert("timeline".into(), Value::Array(self.timeline));
        Value::Object(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(v: Value) -> NvmlReplay {
        NvmlReplay::from_json(&v).unwrap()
    }

    #[test]
    fn fields_carry_errors_fail_and_time_moves_the_replay() {
        let mut r = replay(serde_json::json!({
            "driver_version": "550.54.15",
            "devices": [{ "name": "NVIDIA H200", "memory_total_bytes": 1000 }],
            "timeline": [
                { "t_ms": 0, "devices": [{ "memory_used_bytes": 10, "power_usage_mw": 75000,
                  "compute_processes": [["backend", 400], [4242, null]] }] },
                { "t_ms": 100, "devices": [{ "power_usage_mw": { "error": "NotSupported" } }] },
                { "t_ms": 200, "devices": [{ "error": "GpuLost" }] }
            ]
        }));
        assert_eq!(r.driver_version().unwrap(), "550.54.15");
        assert!(matches!(r.nvml_version(), Err(NvmlError::NotSupported)));
        r.before_sample(5_000_000_000, &[77]);
        assert_eq!(r.memory_info(0).unwrap(), (1000, 10));
        assert_eq!(r.power_usage_mw(0).unwrap(), 75000);
        assert_eq!(
            r.compute_processes(0).unwrap(),
            vec![(77, Some(400)), (4242, None)]
        );
        assert!(matches!(r.temperature_c(0), Err(NvmlError::NotSupported)));
        r.before_sample(5_150_000_000, &[77]);
        // Carried from the entry before; the error only where given.
        assert_eq!(r.memory_info(0).unwrap(), (1000, 10));
        assert!(matches!(r.power_usage_mw(0), Err(NvmlError::NotSupported)));
        r.before_sample(9_000_000_000, &[77]);
        assert!(matches!(r.open(0), Err(NvmlError::GpuLost)));
        assert!(matches!(r.memory_info(0), Err(NvmlError::GpuLost)));
    }

    /// What the recorder writes, the replay reads back call for call.
    #[test]
    fn a_recording_made_from_a_replay_replays_the_same_answers() {
        let original = serde_json::json!({
            "driver_version": "550.54.15",
            "cuda_driver_version": 12040,
            "devices": [{ "name": "NVIDIA H200", "memory_total_bytes": 1000,
                          "power_limit_default_mw": 700000 }],
            "timeline": [
                { "t_ms": 0, "devices": [{ "memory_used_bytes": 10, "power_usage_mw": 75000,
                  "total_energy_mj": 5, "compute_processes": [["backend", 400], [4242, null]],
                  "temperature_c": { "error": "NotSupported" } }] },
                { "t_ms": 100, "devices": [{ "power_usage_mw": 80000, "total_energy_mj": 9 }] },
                { "t_ms": 200, "devices": [{ "error": "GpuLost" }] }
            ]
        });
        let mut a = replay(original);
        let mut rec = Recorder::start(&a, "recorded");
        for t in [0u64, 100, 200] {
            a.before_sample(t * 1_000_000, &[77]);
            rec.read(&a, t * 1_000_000, Some(77));
        }
        let recorded = rec.finish();
        assert_eq!(recorded["recording"], "recorded");
        let mut b = replay(recorded.clone());
        for t in [0u64, 100, 200] {
            a.before_sample(t * 1_000_000, &[99]);
            b.before_sample(t * 1_000_000, &[99]);
            let show = |r: &NvmlReplay| {
                format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                    r.name(0),
                    r.memory_info(0),
                    r.power_usage_mw(0),
                    r.total_energy_mj(0),
                    r.temperature_c(0),
                    r.compute_processes(0),
                    r.default_power_limit_mw(0)
                )
            };
            assert_eq!(show(&a), show(&b), "at {t} ms: {recorded}");
        }
        // Only what changed is written.
        assert_eq!(
            recorded["timeline"][1]["devices"][0]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["power_usage_mw", "total_energy_mj"]
        );
    }

    #[test]
    fn a_device_opens_without_its_name_and_comes_back_after_it_was_lost() {
        let mut r = replay(serde_json::json!({
            "devices": [{}],
            "timeline": [
                { "t_ms": 50, "devices": [{ "temperature_c": 40 }] },
                { "t_ms": 100, "devices": [{ "error": "GpuLost" }] },
                { "t_ms": 200, "devices": [{ "temperature_c": 41 }] }
            ]
        }));
        // Before the first sample the replay stands at the first entry.
        assert!(r.open(0).is_ok());
        assert_eq!(r.temperature_c(0).unwrap(), 40);
        assert!(matches!(r.name(0), Err(NvmlError::NotSupported)));
        assert!(matches!(r.open(1), Err(NvmlError::InvalidArg)));
        r.before_sample(1_000, &[]);
        r.before_sample(1_000 + 150_000_000, &[]);
        assert!(matches!(r.open(0), Err(NvmlError::GpuLost)));
        r.before_sample(1_000 + 250_000_000, &[]);
        assert!(r.open(0).is_ok());
        assert_eq!(r.temperature_c(0).unwrap(), 41);
    }

    #[test]
    fn a_malformed_recording_is_refused_by_where() {
        let err = |v: Value| NvmlReplay::from_json(&v).err().unwrap().to_string();
        assert!(err(serde_json::json!([])).contains("object"));
        let e = err(serde_json::json!({ "devices": [{}], "timeline": [
            { "t_ms": 0, "devices": [{ "power_usage_mw": { "error": "Melted" } }] }
        ]}));
        assert!(
            e.contains("timeline[0].devices[0].power_usage_mw") && e.contains("Melted"),
            "{e}"
        );
        let e = err(serde_json::json!({ "devices": [{}], "timeline": [
            { "t_ms": 10, "devices": [{}] }, { "t_ms": 5, "devices": [{}] }
        ]}));
        assert!(
            e.contains("timeline[1]") && e.contains("back in time"),
            "{e}"
        );
        let e = err(serde_json::json!({ "devices": [{}], "timeline": [
            { "t_ms": u64::MAX, "devices": [{}] }
        ]}));
        assert!(e.contains("timeline[0]") && e.contains("t_ms"), "{e}");
        let e = err(serde_json::json!({ "devices": [{}, {}], "timeline": [
            { "t_ms": 0, "devices": [{}] }
        ]}));
        assert!(e.contains("1 devices, the recording has 2"), "{e}");
    }
}
