//! AMD GPUs through the amdgpu driver's sysfs files, which need no root and no ROCm:
//! `/sys/class/drm/cardN/device/` (vendor `0x1002`) with `mem_info_vram_used`,
//! `gpu_busy_percent` and `hwmon/hwmonM/{power1_input|power1_average, power1_cap,
//! temp1_input, freq1_input, freq2_input}`.
//!
//! Power: `power1_input` (instantaneous, µW) where the ASIC has it, else `power1_average`;
//! which one is in the environment. On APUs it includes the CPU. There is no energy counter
//! here (the accumulator lives in the binary `gpu_metrics` file, read by amd-smi), so energy
//! is integrated from power.
//!
//! The backend's own VRAM comes from DRM fdinfo (`/proc/<pid>/fdinfo/<fd>`,
//! `drm-memory-vram` or `drm-resident-vram`), counted once per DRM client.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
use crate::fs::{FileReader, RealFs};
use crate::metric::{Availability, Metric, Sample, Unavailable, UnavailableKind};
use crate::source::{all_unavailable, Source};

pub const DRM_ROOT: &str = "/sys/class/drm";

const AMD_VENDOR: &str = "0x1002";

const AMDGPU_METRICS: [Metric; 8] = [
    Metric::PowerW,
    Metric::VramUsedBytes,
    Metric::VramProcBytes,
    Metric::ClockSmMhz,
    Metric::ClockMemMhz,
    Metric::TempC,
    Metric::UtilGpuPct,
    Metric::PowerLimitW,
];

#[derive(Debug)]
struct Card {
    name: String,
    device: PathBuf,
    hwmon: Option<PathBuf>,
    power_file: Option<&'static str>,
}

/// AMD GPUs via amdgpu sysfs: power, device and per-process VRAM, clocks, temperature,
/// busy percent, power cap.
#[derive(Debug)]
pub struct AmdgpuSource {
    drm_root: PathBuf,
    proc_root: PathBuf,
    fs: Arc<dyn FileReader>,
    cards: Vec<Card>,
    available: BTreeMap<Metric, Availability>,
    env: BTreeMap<String, String>,
}

/// What one metric is read from, relative to the card's `device/` or its hwmon directory,
/// and the factor to the metric's unit.
fn file_of(metric: Metric, card: &Card) -> Option<(PathBuf, f64)> {
    let hw = |f: &str| card.hwmon.as_ref().map(|h| h.join(f));
    Some(match metric {
        Metric::PowerW => (hw(card.power_file?)?, 1e-6),
        Metric::VramUsedBytes => (card.device.join("mem_info_vram_used"), 1.0),
        Metric::ClockSmMhz => (hw("freq1_input")?, 1e-6),
        Metric::ClockMemMhz => (hw("freq2_input")?, 1e-6),
        Metric::TempC => (hw("temp1_input")?, 1e-3),
        Metric::UtilGpuPct => (card.device.join("gpu_busy_percent"), 1.0),
        Metric::PowerLimitW => (hw("power1_cap")?, 1e-6),
        _ => return None,
    })
}

/// Sums `drm-memory-vram` (or `drm-resident-vram`) over the amdgpu DRM clients found in the
/// fdinfo texts, counting each `drm-client-id` once. Values are `N KiB`/`MiB`/bytes.
pub fn fdinfo_vram_bytes<'a>(texts: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    for text in texts {
        let mut driver = None;
        let mut client = None;
        let mut vram = None;
        let mut resident = None;
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "drm-driver" => driver = Some(v),
                "drm-client-id" => client = Some(v),
                "drm-memory-vram" => vram = parse_size(v),
                "drm-resident-vram" => resident = parse_size(v),
                _ => {}
            }
        }
        if driver != Some("amdgpu") {
            continue;
        }
        let Some(client) = client else {
            continue;
        };
        if seen.insert(client.to_string()) {
            total += vram.or(resident).unwrap_or(0);
        }
    }
    total
}

fn parse_size(v: &str) -> Option<u64> {
    let mut parts = v.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let mult = match parts.next() {
        None => 1,
        Some("KiB") => 1 << 10,
        Some("MiB") => 1 << 20,
        Some("GiB") => 1 << 30,
        Some(_) => return None,
    };
    Some(n * mult)
}

impl AmdgpuSource {
    pub fn new(
        drm_root: impl Into<PathBuf>,
        proc_root: impl Into<PathBuf>,
        fs: Arc<dyn FileReader>,
    ) -> AmdgpuSource {
        AmdgpuSource {
            drm_root: drm_root.into(),
            proc_root: proc_root.into(),
            fs,
            cards: Vec::new(),
            available: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }

    pub fn real() -> AmdgpuSource {
        AmdgpuSource::new(DRM_ROOT, "/proc", Arc::new(RealFs))
    }

    fn find_cards(&mut self) -> Result<(), Unavailable> {
        self.cards.clear();
        let entries = self.fs.read_dir(&self.drm_root).map_err(|e| {
            Unavailable::new(
                UnavailableKind::NoDevice,
                format!(
                    "no DRM devices: cannot list {}: {e}",
                    self.drm_root.display()
                ),
            )
        })?;
        for dir in entries {
            let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            // `card0`, not the connectors `card0-DP-1`.
            let Some(num) = name.strip_prefix("card") else {
                continue;
            };
            if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let device = dir.join("device");
            let vendor = self.fs.read_to_string(&device.join("vendor"));
            if vendor.map(|v| v.trim() != AMD_VENDOR).unwrap_or(true) {
                continue;
            }
            let hwmon = self
                .fs
                .read_dir(&device.join("hwmon"))
                .ok()
                .and_then(|hs| hs.into_iter().next());
            let power_file = hwmon.as_ref().and_then(|h| {
                ["power1_input", "power1_average"]
                    .into_iter()
                    .find(|f| self.fs.exists(&h.join(f)))
            });
            self.cards.push(Card {
                name: name.to_string(),
                device,
                hwmon,
                power_file,
            });
        }
        if self.cards.is_empty() {
            return Err(Unavailable::new(
                UnavailableKind::NoDevice,
                format!(
                    "no amdgpu card (vendor {AMD_VENDOR}) under {}",
                    self.drm_root.display()
                ),
            ));
        }
        Ok(())
    }

    fn read(&self, metric: Metric, card: &Card) -> Result<f64, Unavailable> {
        let Some((path, factor)) = file_of(metric, card) else {
            return Err(Unavailable::new(
                UnavailableKind::NotSupported,
                format!(
                    "{}: no hwmon power file (power1_input, power1_average)",
                    card.name
                ),
            ));
        };
        match self.fs.read_u64(&path) {
            Ok(v) => Ok(v as f64 * factor),
            Err(e) => Err(Unavailable::from_io(&path, &e, "")),
        }
    }

    /// The backend's VRAM from fdinfo; `None` if any process's fdinfo could not be listed.
    fn proc_vram(&self, pids: &[u32]) -> Option<u64> {
        let mut texts = Vec::new();
        for pid in pids {
            let dir = self.proc_root.join(pid.to_string()).join("fdinfo");
            let entries = self.fs.read_dir(&dir).ok()?;
            for e in entries {
                // A descriptor closed between the listing and the read is just gone.
                if let Ok(t) = self.fs.read_to_string(&e) {
                    if t.contains("drm-driver") {
                        texts.push(t);
                    }
                }
            }
        }
        Some(fdinfo_vram_bytes(texts.iter().map(String::as_str)))
    }

    fn ok(&self, m: Metric) -> bool {
        matches!(self.available.get(&m), Some(Ok(())))
    }
}

impl Source for AmdgpuSource {
    fn name(&self) -> &'static str {
        "amdgpu"
    }

    fn probe(&mut self) -> Vec<(Metric, Availability)> {
        self.available.clear();
        self.env.clear();
        if let Err(u) = self.find_cards() {
            let r = all_unavailable(&AMDGPU_METRICS, u.kind, &u.reason);
            self.available.extend(r.iter().cloned());
            return r;
        }
        let mut result = Vec::new();
        for metric in AMDGPU_METRICS {
            let a = if metric == Metric::VramProcBytes {
                let fdinfo = self.proc_root.join("self").join("fdinfo");
                if self.fs.exists(&fdinfo) {
                    Ok(())
                } else {
                    Err(Unavailable::new(
                        UnavailableKind::NotSupported,
                        format!("{} does not exist", fdinfo.display()),
                    ))
                }
            } else {
                self.cards
                    .iter()
                    .try_for_each(|c| self.read(metric, c).map(|_| ()))
            };
            result.push((metric, a));
        }
        self.available.extend(result.iter().cloned());
        for card in &self.cards {
            let key = |k: &str| format!("{}_{k}", card.name);
            if let Some(p) = card.power_file {
                self.env.insert(key("power_file"), p.to_string());
            }
            if let Ok(v) = self.fs.read_u64(&card.device.join("mem_info_vram_total")) {
                self.env.insert(key("vram_total_bytes"), v.to_string());
            }
            if let Ok(v) = self.fs.read_to_string(&card.device.join("device")) {
                self.env.insert(key("pci_device"), v.trim().to_string());
            }
            if let Some(h) = &card.hwmon {
                if let Ok(v) = self.fs.read_u64(&h.join("power1_cap")) {
                    self.env
                        .insert(key("power_cap_w"), format!("{:.1}", v as f64 / 1e6));
                }
                if let Ok(v) = self.fs.read_u64(&h.join("power1_cap_max")) {
                    self.env
                        .insert(key("power_cap_max_w"), format!("{:.1}", v as f64 / 1e6));
                }
            }
        }
        if let Ok(v) = self
            .fs
            .read_to_string(Path::new("/sys/module/amdgpu/version"))
        {
            self.env
                .insert("amdgpu_version".to_string(), v.trim().to_string());
        }
        result
    }

    fn sample(&mut self, clock: &dyn Clock, pids: &[u32], out: &mut Vec<Sample>) {
        if self.available.is_empty() {
            self.probe();
        }
        for metric in AMDGPU_METRICS {
            if metric == Metric::VramProcBytes || !self.ok(metric) {
                continue;
            }
            let t_ns = clock.now_ns();
            let sum = !matches!(
                metric,
                Metric::ClockSmMhz | Metric::ClockMemMhz | Metric::TempC | Metric::UtilGpuPct
            );
            let mut acc = if sum { Some(0.0) } else { Some(f64::MIN) };
            for card in &self.cards {
                acc = match (self.read(metric, card), acc) {
                    (Ok(v), Some(a)) if sum => Some(a + v),
                    (Ok(v), Some(a)) => Some(a.max(v)),
                    _ => None,
                };
            }
            if let Some(value) = acc {
                out.push(Sample {
                    t_ns,
                    metric,
                    value,
                    source: "amdgpu",
                });
            }
        }
        if self.ok(Metric::VramProcBytes) && !pids.is_empty() {
            let t_ns = clock.now_ns();
            if let Some(b) = self.proc_vram(pids) {
                out.push(Sample {
                    t_ns,
                    metric: Metric::VramProcBytes,
                    value: b as f64,
                    source: "amdgpu",
                });
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
    use crate::clock::ManualClock;
    use crate::fs::FailingFs;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    /// card0: an AMD GPU with power1_average only; card1: an Intel iGPU; card0-DP-1: a
    /// connector.
    fn fake_drm(root: &Path) -> PathBuf {
        let dev = root.join("card0").join("device");
        write(&dev.join("vendor"), "0x1002\n");
        write(&dev.join("device"), "0x744c\n");
        write(&dev.join("mem_info_vram_used"), "4294967296\n");
        write(&dev.join("mem_info_vram_total"), "25753026560\n");
        write(&dev.join("gpu_busy_percent"), "87\n");
        let hw = dev.join("hwmon").join("hwmon3");
        write(&hw.join("power1_average"), "215000000\n");
        write(&hw.join("power1_cap"), "303000000\n");
        write(&hw.join("temp1_input"), "61000\n");
        write(&hw.join("freq1_input"), "2400000000\n");
        write(&hw.join("freq2_input"), "1249000000\n");
        write(
            &root.join("card1").join("device").join("vendor"),
            "0x8086\n",
        );
        std::fs::create_dir_all(root.join("card0-DP-1")).unwrap();
        hw
    }

    #[test]
    fn amdgpu_sysfs_tree_reads_power_vram_and_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let drm = dir.path().join("drm");
        let proc = dir.path().join("proc");
        fake_drm(&drm);
        write(&proc.join("self").join("fdinfo").join("0"), "pos:\t0\n");
        let fdinfo = proc.join("500").join("fdinfo");
        let client = "pos:\t0\nflags:\t02100002\ndrm-driver:\tamdgpu\ndrm-client-id:\t7\n\
                      drm-memory-vram:\t2097152 KiB\ndrm-memory-gtt:\t 2048 KiB\n";
        write(&fdinfo.join("5"), client);
        write(&fdinfo.join("6"), client); // the same client through a dup'ed fd
        write(&fdinfo.join("1"), "pos:\t0\nflags:\t02\n");

        let mut src = AmdgpuSource::new(&drm, &proc, Arc::new(RealFs));
        let probe = src.probe();
        assert!(probe.iter().all(|(_, a)| a.is_ok()), "{probe:?}");
        assert_eq!(src.environment()["card0_power_file"], "power1_average");
        assert_eq!(src.environment()["card0_power_cap_w"], "303.0");

        let mut out = Vec::new();
        src.sample(&ManualClock::new(9), &[500], &mut out);
        let get = |m: Metric| out.iter().find(|s| s.metric == m).map(|s| s.value);
        assert_eq!(get(Metric::PowerW), Some(215.0));
        assert_eq!(get(Metric::VramUsedBytes), Some(4294967296.0));
        assert_eq!(get(Metric::VramProcBytes), Some(2147483648.0));
        assert_eq!(get(Metric::TempC), Some(61.0));
        assert_eq!(get(Metric::ClockSmMhz), Some(2400.0));
        assert_eq!(get(Metric::UtilGpuPct), Some(87.0));
        assert!(out.iter().all(|s| s.source == "amdgpu" && s.t_ns == 9));
    }

    #[test]
    fn amdgpu_prefers_instant_power_and_reports_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let drm = dir.path().join("drm");
        let hw = fake_drm(&drm);
        write(&hw.join("power1_input"), "100000000\n");
        let vram = drm.join("card0").join("device").join("mem_info_vram_used");
        let fs = FailingFs {
            fail: vec![vram.clone()],
            kind: std::io::ErrorKind::PermissionDenied,
        };
        let mut src = AmdgpuSource::new(&drm, dir.path().join("proc"), Arc::new(fs));
        let probe: BTreeMap<Metric, Availability> = src.probe().into_iter().collect();
        assert!(probe[&Metric::PowerW].is_ok());
        let u = probe[&Metric::VramUsedBytes].clone().unwrap_err();
        assert_eq!(u.kind, UnavailableKind::NoPermission);
        assert!(u.reason.contains("mem_info_vram_used"));
        assert_eq!(
            probe[&Metric::VramProcBytes].clone().unwrap_err().kind,
            UnavailableKind::NotSupported
        );
        let mut out = Vec::new();
        src.sample(&ManualClock::new(0), &[], &mut out);
        assert_eq!(
            out.iter()
                .find(|s| s.metric == Metric::PowerW)
                .unwrap()
                .value,
            100.0
        );
        assert!(!out.iter().any(|s| s.metric == Metric::VramUsedBytes));
    }

    #[test]
    fn no_amd_card_is_no_device() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("card1").join("device").join("vendor"),
            "0x8086\n",
        );
        let mut src = AmdgpuSource::new(dir.path(), "/proc", Arc::new(RealFs));
        for (_, a) in src.probe() {
            assert_eq!(a.unwrap_err().kind, UnavailableKind::NoDevice);
        }
    }

    #[test]
    fn fdinfo_sizes_and_other_drivers() {
        let i915 = "drm-driver:\ti915\ndrm-client-id:\t1\ndrm-memory-vram:\t5 MiB\n";
        let amd = "drm-driver:\tamdgpu\ndrm-client-id:\t2\ndrm-resident-vram:\t3 MiB\n";
        assert_eq!(fdinfo_vram_bytes([i915, amd]), 3 << 20);
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("1 parsec"), None);
    }
}
