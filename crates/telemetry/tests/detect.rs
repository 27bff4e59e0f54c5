//! What this machine can measure, through the public API: every source is tried, none
//! fails, and each unavailable metric carries a reason. Run with `--nocapture` to see the
//! probe output.

use tokbench_telemetry::{detect, Metric, UnavailableKind};

#[test]
fn detect_reports_every_source_with_reasons() {
    let d = detect();
    for r in &d.reports {
        for line in r.lines() {
            println!("{line}");
        }
        for (k, v) in &r.environment {
            println!("  {} {k} = {v}", r.source);
        }
    }
    let names: Vec<&str> = d.reports.iter().map(|r| r.source).collect();
    for want in ["procfs", "nvml", "amdgpu", "rapl", "powermetrics"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for r in &d.reports {
        for (m, a) in &r.metrics {
            if let Err(u) = a {
                assert!(!u.reason.is_empty(), "{} {m}: empty reason", r.source);
            }
        }
    }
    // Only sources that can measure something are handed to the sampler.
    for s in &d.sources {
        let r = d.reports.iter().find(|r| r.source == s.name()).unwrap();
        assert!(
            r.any_available(),
            "{} kept with nothing available",
            r.source
        );
    }
    let report = |name: &str| d.reports.iter().find(|r| r.source == name).unwrap();
    if cfg!(target_os = "linux") {
        assert!(report("procfs").available().any(|m| m == Metric::RssBytes));
        for (_, a) in &report("powermetrics").metrics {
            assert_eq!(a.clone().unwrap_err().kind, UnavailableKind::NotApplicable);
        }
    }
    // No NVIDIA driver here: "no device", with the loader's reason.
    if !std::path::Path::new("/proc/driver/nvidia/version").exists() {
        for (_, a) in &report("nvml").metrics {
            let u = a.clone().unwrap_err();
            assert_eq!(u.kind, UnavailableKind::NoDevice, "{u}");
        }
        // As stored in the run's environment/telemetry JSON.
        let json = serde_json::to_value(report("nvml")).unwrap();
        assert_eq!(json["source"], "nvml");
        assert_eq!(json["metrics"]["power_w"]["kind"], "no_device");
        assert!(json["metrics"]["power_w"]["reason"]
            .as_str()
            .unwrap()
            .contains("libnvidia-ml"));
    }
    if cfg!(target_os = "linux") {
        let json = serde_json::to_value(report("procfs")).unwrap();
        assert_eq!(json["metrics"]["rss_bytes"], "ok");
    }
}
