//! `tokbench hardware`: the hardware catalog (bench-configs/hardware.toml) as a table, CSV
//! or JSON, and one entry or multi-device configuration with every figure and its source.
//! Parsing, validation and lookups live in `tokbench_core::catalog`; this module reads the
//! files and prints.

use std::path::{Path, PathBuf};

use tokbench_core::catalog::{Catalog, HardwareConfig};

use crate::exit::{BadInput, ExitCode};
use crate::output::{csv, table};
use crate::Format;

/// The catalog used when neither `--catalog` nor `TOKBENCH_HARDWARE` names one: this file
/// relative to the current directory when it exists (so edits in a checkout take effect),
/// else the copy built into the binary.
pub const DEFAULT_CATALOG: &str = "bench-configs/hardware.toml";

/// The repository's catalog as it was when this binary was built.
const BUILT_IN_CATALOG: &str = include_str!("../../../bench-configs/hardware.toml");

/// Reads the catalog: `path` when given; else every file in `TOKBENCH_HARDWARE` (a path
/// list like `PATH`: `mine.toml` or `bench-configs/hardware.toml:mine.toml`, merged, names
/// unique across them); else [`DEFAULT_CATALOG`] or the built-in copy. A missing or invalid
/// file is bad input (exit 2) naming the file, line and key.
pub fn load_catalog(path: Option<&Path>) -> anyhow::Result<Catalog> {
    let files: Vec<PathBuf> = match path {
        Some(p) => vec![p.to_path_buf()],
        None => match std::env::var_os("TOKBENCH_HARDWARE").filter(|v| !v.is_empty()) {
            Some(list) => std::env::split_paths(&list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None if Path::new(DEFAULT_CATALOG).is_file() => vec![PathBuf::from(DEFAULT_CATALOG)],
            None => {
                let name = Path::new("<built-in bench-configs/hardware.toml>");
                return Catalog::from_toml(BUILT_IN_CATALOG, name)
                    .map_err(|e| BadInput(e.to_string()).into());
            }
        },
    };
    let mut catalog = Catalog::default();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            BadInput(format!(
                "cannot read hardware catalog {}: {e}",
                file.display()
            ))
        })?;
        let one = Catalog::from_toml(&text, file).map_err(|e| BadInput(e.to_string()))?;
        catalog = catalog.merge(one).map_err(|e| BadInput(e.to_string()))?;
    }
    Ok(catalog)
}

const LIST_COLUMNS: [&str; 7] = [
    "hardware",
    "vendor",
    "kind",
    "memory GiB",
    "bandwidth GB/s",
    "TDP W",
    "MSRP USD",
];

/// `tokbench hardware`: every entry, one row each; unknown figures are "—" (empty in CSV,
/// null in JSON).
/// `tokbench hardware`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct HardwareArgs {
    #[command(subcommand)]
    pub command: Option<HardwareCommand>,
    /// The catalog file (default: bench-configs/hardware.toml, or $TOKBENCH_HARDWARE).
    #[arg(long, global = true)]
    pub catalog: Option<PathBuf>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum HardwareCommand {
    /// One entry (or "2x NAME" for several devices) with every figure and its source.
    Show { name: String },
}

/// `tokbench hardware [show NAME]`.
pub fn command(args: &HardwareArgs) -> anyhow::Result<ExitCode> {
    let catalog = load_catalog(args.catalog.as_deref())?;
    match &args.command {
        None => list(&catalog, args.format),
        Some(HardwareCommand::Show { name }) => show(&catalog, name),
    }
}

fn list(catalog: &Catalog, format: Format) -> anyhow::Result<ExitCode> {
    format.require("hardware", &[Format::Table, Format::Csv, Format::Json])?;
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&catalog.entries)?)?,
        Format::Table => {
            out!("{}", list_table(catalog))?;
            outln!(
                "{} entries; — = no sourced figure. `tokbench hardware show NAME` prints every source.",
                catalog.entries.len()
            )?;
        }
        _ => {
            let columns: Vec<String> = LIST_COLUMNS.map(String::from).to_vec();
            let rows: Vec<Vec<String>> = catalog
                .entries
                .iter()
                .map(|h| {
                    let plain = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
                    vec![
                        h.name.clone(),
                        h.vendor.clone(),
                        h.kind.to_string(),
                        plain(h.memory_gib()),
                        plain(h.bandwidth_gbps()),
                        plain(h.tdp_w),
                        plain(h.msrp_usd),
                    ]
                })
                .collect();
            out!("{}", csv(&columns, &rows))?;
        }
    }
    Ok(ExitCode::Ok)
}

fn list_table(catalog: &Catalog) -> String {
    let columns: Vec<String> = LIST_COLUMNS.map(String::from).to_vec();
    let rows: Vec<Vec<String>> = catalog
        .entries
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.vendor.clone(),
                h.kind.to_string(),
                or_dash(h.memory_gib()),
                or_dash(h.bandwidth_gbps()),
                or_dash(h.tdp_w),
                or_dash(h.msrp_usd),
            ]
        })
        .collect();
    table(&columns, &rows)
}

/// `tokbench hardware show NAME`: one entry, or `2x NAME` for a multi-device
/// configuration, with every figure and its source. An unknown name is bad input and the
/// message lists close matches.
fn show(catalog: &Catalog, name: &str) -> anyhow::Result<ExitCode> {
    let cfg = catalog
        .resolve(name)
        .map_err(|e| BadInput(format!("{e} (`tokbench hardware` lists the catalog)")))?;
    out!("{}", render_show(&cfg))?;
    Ok(ExitCode::Ok)
}

fn render_show(cfg: &HardwareConfig) -> String {
    let HardwareConfig {
        hardware: h,
        count,
        display_name,
        memory_bytes,
        bandwidth_bytes_per_s_per_device,
        tdp_w,
        msrp_usd,
    } = cfg;
    let n = *count;
    let mut title = display_name.clone();
    if n > 1 {
        title.push_str(&format!(" ({n} devices)"));
    }

    let memory = match (memory_bytes, h.memory_bytes) {
        (Some(total), Some(one)) => {
            let ty = h
                .memory_type
                .as_deref()
                .map(|t| format!(" {t}"))
                .unwrap_or_default();
            if n > 1 {
                format!(
                    "{} GiB total ({n} × {} GiB{ty}; {} bytes)",
                    num(*total as f64 / GIB),
                    num(one as f64 / GIB),
                    num(*total as f64)
                )
            } else {
                format!(
                    "{} GiB{ty} ({} bytes)",
                    num(one as f64 / GIB),
                    num(one as f64)
                )
            }
        }
        _ => "—".into(),
    };
    let bandwidth = match bandwidth_bytes_per_s_per_device {
        Some(b) if n > 1 => format!("{} GB/s per device (not summed)", num(b / 1e9)),
        Some(b) => format!("{} GB/s", num(b / 1e9)),
        None => "—".into(),
    };
    // Say what the figure is, unless it is a card's board power.
    let basis = match h.power_basis {
        Some(b) if b != tokbench_core::catalog::PowerBasis::Board => {
            format!(", {} power", b.as_str())
        }
        _ => String::new(),
    };
    let tdp = match (tdp_w, h.tdp_w) {
        (Some(total), Some(one)) if n > 1 => {
            format!("{} W total ({n} × {} W{basis})", num(*total), num(one))
        }
        (Some(total), _) if basis.is_empty() => format!("{} W", num(*total)),
        (Some(total), _) => format!("{} W ({})", num(*total), &basis[2..]),
        _ => "—".into(),
    };
    let date = h
        .msrp_date
        .as_deref()
        .map(|d| format!(", {d}"))
        .unwrap_or_default();
    let msrp = match (msrp_usd, h.msrp_usd) {
        (Some(total), Some(one)) if n > 1 => {
            format!("${} total ({n} × ${}{date})", num(*total), num(one))
        }
        (Some(total), _) if date.is_empty() => format!("${}", num(*total)),
        (Some(total), _) => format!("${} ({})", num(*total), &date[2..]),
        _ => "—".into(),
    };

    let mut out = format!("{title}\n");
    let mut field = |label: &str, value: String| {
        out.push_str(&format!("  {label:<11}{value}\n"));
    };
    field("vendor", h.vendor.clone());
    field("kind", h.kind.to_string());
    field(
        "aliases",
        if h.aliases.is_empty() {
            "— (not matched to detected devices)".into()
        } else {
            h.aliases.join(", ")
        },
    );
    for (label, value, source) in [
        ("memory", memory, &h.sources.memory),
        ("bandwidth", bandwidth, &h.sources.bandwidth),
        ("TDP", tdp, &h.sources.tdp),
        ("MSRP", msrp, &h.sources.msrp),
    ] {
        field(label, value);
        field(
            "",
            format!(
                "source: {}",
                source.as_deref().unwrap_or("none (figure unknown)")
            ),
        );
    }
    if let Some(notes) = &h.notes {
        field("notes", notes.clone());
    }
    field("defined at", h.defined_at());
    out
}

const GIB: f64 = (1u64 << 30) as f64;

fn or_dash(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "—".into())
}

/// A figure as people write it: thousands grouped, at most two decimals, none when whole
/// (`1,008`, `0.5`, `3,998`).
fn num(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_toml(
            include_str!("../../../bench-configs/hardware.toml"),
            Path::new("bench-configs/hardware.toml"),
        )
        .unwrap()
    }

    #[test]
    fn numbers_are_grouped_and_trimmed() {
        assert_eq!(num(1008.0), "1,008");
        assert_eq!(num(3998.0), "3,998");
        assert_eq!(num(25_769_803_776.0), "25,769,803,776");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(24.0), "24");
        assert_eq!(num(999.0), "999");
    }

    #[test]
    fn the_list_marks_unknown_figures() {
        let t = list_table(&catalog());
        let m1 = t.lines().find(|l| l.starts_with("Apple M1 Max")).unwrap();
        assert!(m1.contains("400") && m1.contains('—'), "{m1}");
        let rtx = t
            .lines()
            .find(|l| l.starts_with("GeForce RTX 4090"))
            .unwrap();
        for figure in ["24", "1,008", "450", "1,599"] {
            assert!(rtx.contains(figure), "{rtx}");
        }
        assert!(t.lines().next().unwrap().contains("memory GiB"));
    }

    #[test]
    fn show_prints_every_figure_with_its_source() {
        let c = catalog();
        let s = render_show(&c.resolve("GeForce RTX 4090").unwrap());
        assert!(s.starts_with("GeForce RTX 4090\n"), "{s}");
        assert!(s.contains("24 GiB GDDR6X (25,769,803,776 bytes)"), "{s}");
        assert!(s.contains("1,008 GB/s"), "{s}");
        assert!(s.contains("450 W"), "{s}");
        assert!(s.contains("$1,599"), "{s}");
        let sourced = s
            .lines()
            .filter(|l| l.contains("source: "))
            .filter(|l| !l.contains("source: none"))
            .count();
        assert_eq!(sourced, 4, "{s}");
        assert!(s.contains("hardware.toml:"), "{s}");

        let s = render_show(&c.resolve("2x GeForce RTX 5090").unwrap());
        assert!(s.starts_with("2× GeForce RTX 5090 (2 devices)\n"), "{s}");
        assert!(s.contains("64 GiB total (2 × 32 GiB GDDR7"), "{s}");
        assert!(s.contains("1,792 GB/s per device"), "{s}");
        assert!(s.contains("1,150 W total (2 × 575 W)"), "{s}");
        assert!(s.contains("$3,998 total (2 × $1,999, 2025-01)"), "{s}");

        let s = render_show(&c.resolve("Apple M1 Max").unwrap());
        assert!(s.contains("TDP        —"), "{s}");
        assert!(s.contains("none (figure unknown)"), "{s}");
    }
}

/// The hardware a run measures, as the catalog names it: the suite's `hardware` key
/// (an unknown name is bad input naming the suite's line), else the host's detected
/// devices matched to the catalog — GPUs when the engine was built for CUDA or Vulkan, the
/// chip (as the host reports its CPU) for CPU and Metal builds; several identical GPUs make an `N×` configuration. `None` when nothing
/// matched: the reports then show the detected device name with unknown figures.
pub fn hardware_for_run(
    catalog: &Catalog,
    suite: &tokbench_core::Suite,
    host: &tokbench_core::HostInfo,
    accel: &str,
) -> anyhow::Result<Option<String>> {
    if let Some(h) = &suite.hardware {
        let cfg = catalog.resolve(&h.name).map_err(|e| {
            BadInput(format!(
                "{}:{}: key `hardware`: {e} (`tokbench hardware` lists the catalog)",
                suite.file.display(),
                h.line
            ))
        })?;
        return Ok(Some(cfg.display_name));
    }
    Ok(detected_hardware(catalog, host, accel).map(|cfg| cfg.display_name))
}

/// The catalog configuration of the devices `host` reports, if they are in the catalog.
pub fn detected_hardware(
    catalog: &Catalog,
    host: &tokbench_core::HostInfo,
    accel: &str,
) -> Option<HardwareConfig> {
    // Metal runs on an Apple chip, which the catalog names as the host reports its CPU.
    if accel != "cpu" && accel != "metal" {
        let first = host.gpus.iter().find_map(|g| catalog.match_device(g))?;
        let count = host
            .gpus
            .iter()
            .filter(|g| {
                catalog
                    .match_device(g)
                    .is_some_and(|h| h.name == first.name)
            })
            .count();
        return HardwareConfig::new(first.clone(), u32::try_from(count).ok()?);
    }
    let cpu = catalog.match_device(&host.cpu_model)?;
    HardwareConfig::new(cpu.clone(), 1)
}

#[cfg(test)]
mod run_hardware_tests {
    use super::*;
    use tokbench_core::HostInfo;

    fn host(cpu: &str, gpus: &[&str]) -> HostInfo {
        HostInfo {
            hostname: "h".into(),
            cpu_model: cpu.into(),
            cpu_cores_logical: 2,
            cpu_cores_physical: None,
            memory_total_bytes: None,
            os: "Linux".into(),
            kernel: None,
            arch: "x86_64".into(),
            gpus: gpus.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn detected_devices_match_the_catalog() {
        let c = load_catalog(None).unwrap();
        let two = host(
            "AMD EPYC",
            &["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3090"],
        );
        let cfg = detected_hardware(&c, &two, "cuda").unwrap();
        assert_eq!(
            (cfg.display_name.as_str(), cfg.count),
            ("2× GeForce RTX 3090", 2)
        );
        // A CPU build measures the CPU, whatever GPUs the host has.
        assert!(detected_hardware(&c, &two, "cpu").is_none());
        // An unknown GPU: nothing, rather than a wrong entry.
        assert!(detected_hardware(&c, &host("x", &["NVIDIA H200 NVL"]), "cuda").is_none());
        let mac = host("Apple M4 Max", &["Apple M4 Max GPU (unified memory)"]);
        assert_eq!(
            detected_hardware(&c, &mac, "metal").unwrap().display_name,
            "Apple M4 Max"
        );
    }

    #[test]
    fn a_suite_names_its_hardware_or_gets_an_error_with_the_line() {
        let c = load_catalog(None).unwrap();
        let text = "hardware = \"2x GeForce RTX 4090\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[workload]\ntests = [\"tg8\"]\n";
        let suite = tokbench_core::Suite::from_toml(text, Path::new("s.toml")).unwrap();
        let h = hardware_for_run(&c, &suite, &host("x", &[]), "cpu").unwrap();
        assert_eq!(h.as_deref(), Some("2× GeForce RTX 4090"));
        let bad = text.replace("2x GeForce RTX 4090", "RTX 4090");
        let suite = tokbench_core::Suite::from_toml(&bad, Path::new("s.toml")).unwrap();
        let e = hardware_for_run(&c, &suite, &host("x", &[]), "cpu")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.toml:1: key `hardware`: unknown hardware `RTX 4090`")
                && e.contains("GeForce RTX 4090"),
            "{e}"
        );
    }
}
