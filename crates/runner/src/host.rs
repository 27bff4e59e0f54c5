//! Detects the host: CPU, cores, memory, OS, kernel and the GPUs the system shows, from
//! `/proc`, `/sys` and `uname` on Linux and `sysctl` on macOS. Nothing here fails: what
//! cannot be read is left empty or `None`.

use std::collections::BTreeSet;
use std::path::Path;

use tokbench_core::HostInfo;

/// What this machine is.
pub fn detect() -> HostInfo {
    let uts = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let hostname = field(|u| u.nodename());
    let kernel = Some(format!(
        "{} {}",
        field(|u| u.sysname()),
        field(|u| u.release())
    ));
    let arch = field(|u| u.machine());
    let logical = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let mut info = HostInfo {
        hostname,
        cpu_model: String::new(),
        cpu_cores_logical: logical,
        cpu_cores_physical: None,
        memory_total_bytes: None,
        os: std::env::consts::OS.to_string(),
        kernel,
        arch,
        gpus: Vec::new(),
    };
    if cfg!(target_os = "linux") {
        if let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") {
            let (model, logical, physical) = parse_cpuinfo(&cpuinfo);
            info.cpu_model = model;
            if logical > 0 {
                info.cpu_cores_logical = logical;
            }
            info.cpu_cores_physical = physical;
        }
        if let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") {
            info.memory_total_bytes = parse_meminfo_total(&meminfo);
        }
        if let Ok(osr) = std::fs::read_to_string("/etc/os-release") {
            if let Some(name) = parse_os_release(&osr) {
                info.os = name;
            }
        }
        info.gpus = linux_gpus(
            Path::new("/proc/driver/nvidia/gpus"),
            Path::new("/sys/class/drm"),
        );
    } else if cfg!(target_os = "macos") {
        info.cpu_model = sysctl("machdep.cpu.brand_string").unwrap_or_default();
        info.memory_total_bytes = sysctl("hw.memsize").and_then(|s| s.parse().ok());
        info.cpu_cores_physical = sysctl("hw.physicalcpu").and_then(|s| s.parse().ok());
        if let Some(v) = sysctl("kern.osproductversion") {
            info.os = format!("macOS {v}");
        }
        if info.cpu_model.starts_with("Apple") {
            info.gpus = vec![format!("{} GPU (unified memory)", info.cpu_model)];
        }
    }
    info
}

/// Threads to use when a suite names none: the physical cores, as llama-bench does.
pub fn default_threads(host: &HostInfo) -> u32 {
    host.cpu_cores_physical
        .unwrap_or(host.cpu_cores_logical)
        .max(1)
}

fn sysctl(name: &str) -> Option<String> {
    let out = std::process::Command::new("sysctl")
        .args(["-n", name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// CPU model name, logical CPUs, physical cores (distinct physical id/core id pairs).
pub fn parse_cpuinfo(text: &str) -> (String, u32, Option<u32>) {
    let mut model = String::new();
    let mut logical = 0;
    let mut cores = BTreeSet::new();
    let mut phys_id = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => logical += 1,
            "model name" | "Model" | "Hardware" if model.is_empty() => model = v.to_string(),
            "physical id" => phys_id = Some(v.to_string()),
            "core id" => {
                cores.insert((phys_id.clone().unwrap_or_default(), v.to_string()));
            }
            _ => {}
        }
    }
    let physical = (!cores.is_empty()).then_some(cores.len() as u32);
    (model, logical, physical)
}

pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

pub fn parse_os_release(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix("PRETTY_NAME=")?;
        Some(v.trim_matches('"').to_string())
    })
}

/// GPUs from the NVIDIA driver's `/proc` files and the DRM class in `/sys`.
pub fn linux_gpus(nvidia_proc: &Path, drm: &Path) -> Vec<String> {
    let mut gpus = Vec::new();
    if let Ok(entries) = std::fs::read_dir(nvidia_proc) {
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs {
            if let Ok(info) = std::fs::read_to_string(d.join("information")) {
                if let Some(m) = info.lines().find_map(|l| l.strip_prefix("Model:")) {
                    gpus.push(m.trim().to_string());
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(drm) {
        let mut cards: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("card") && !n.contains('-'))
            })
            .collect();
        cards.sort();
        for card in cards {
            let dev = card.join("device");
            let read = |f: &str| {
                std::fs::read_to_string(dev.join(f))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            let vendor = match read("vendor").as_deref() {
                Some("0x10de") => {
                    // Already listed from the driver's own files, with its model name.
                    if !gpus.is_empty() {
                        continue;
                    }
                    "NVIDIA"
                }
                Some("0x1002") => "AMD",
                Some("0x8086") => "Intel",
                _ => continue,
            };
            let name = read("product_name").filter(|s| !s.is_empty());
            let device = read("device").unwrap_or_default();
            gpus.push(match name {
                Some(n) => format!("{vendor} {n}"),
                None => format!("{vendor} GPU (PCI device {device})"),
            });
        }
    }
    gpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_counts_logical_and_physical_cores() {
        let text =
            "processor\t: 0\nmodel name\t: AMD EPYC 9654\nphysical id\t: 0\ncore id\t: 0\n\n\
                    processor\t: 1\nmodel name\t: AMD EPYC 9654\nphysical id\t: 0\ncore id\t: 0\n\n\
                    processor\t: 2\nmodel name\t: AMD EPYC 9654\nphysical id\t: 0\ncore id\t: 1\n";
        assert_eq!(parse_cpuinfo(text), ("AMD EPYC 9654".into(), 3, Some(2)));
        // A VM that hides topology: no physical count.
        assert_eq!(parse_cpuinfo("processor : 0\nmodel name : X\n").2, None);
    }

    #[test]
    fn meminfo_and_os_release() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       24634056 kB\nMemFree: 1 kB\n"),
            Some(24634056 * 1024)
        );
        assert_eq!(
            parse_os_release("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
                .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn gpus_from_proc_and_sys_trees() {
        let tmp = tempfile::tempdir().unwrap();
        let nv = tmp.path().join("nvidia/gpus/0000:01:00.0");
        std::fs::create_dir_all(&nv).unwrap();
        std::fs::write(nv.join("information"), "Model: \t\t NVIDIA H200\nIRQ: 1\n").unwrap();
        let drm = tmp.path().join("drm");
        for (card, vendor) in [("card0", "0x10de"), ("card1", "0x1002")] {
            let d = drm.join(card).join("device");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("vendor"), vendor).unwrap();
            std::fs::write(d.join("device"), "0x744c").unwrap();
        }
        std::fs::create_dir_all(drm.join("card1-DP-1")).unwrap();
        let gpus = linux_gpus(&tmp.path().join("nvidia/gpus"), &drm);
        assert_eq!(gpus, ["NVIDIA H200", "AMD GPU (PCI device 0x744c)"]);
        assert!(linux_gpus(&tmp.path().join("none"), &tmp.path().join("none")).is_empty());
    }
}
