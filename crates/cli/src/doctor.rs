//! `tokbench doctor`: is this machine ready to benchmark, and is the database sound? Checks
//! the database (integrity, schema version, pending migrations, runs left unfinished)
//! without changing it, the backends found, and what telemetry can measure; prints what
//! to fix. Exit 0 when nothing needs fixing, 1 otherwise.

use std::path::Path;

use tokbench_store::{Store, StoreError};

use crate::exit::ExitCode;

/// One finding: `ok`, `note` (worth knowing) or `fix` (something to do).
struct Finding {
    level: &'static str,
    what: String,
    fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        level: "ok",
        what: what.into(),
        fix: None,
    }
}
fn note(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: "note",
        what: what.into(),
        fix: Some(fix.into()),
    }
}
fn fix(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: "fix",
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// A PostgreSQL database: reachable, at this tokbench's schema, and what it holds.
async fn postgres_database(url: &str) -> Vec<Finding> {
    let shown = tokbench_store::redacted_url(url);
    let store = match tokbench_store::PgStore::open_read_only(url).await {
        Ok(s) => s,
        Err(e @ (StoreError::NoSchema { .. } | StoreError::OlderSchema { .. })) => {
            return vec![fix(
                e.to_string(),
                format!("`tokbench migrate --db {shown}` (runs, merges and migrate apply it)"),
            )]
        }
        Err(e @ StoreError::NewerSchema { .. }) => {
            return vec![fix(
                e.to_string(),
                "use the newer tokbench that migrated it (this one refuses to write to it)",
            )]
        }
        Err(e) => {
            return vec![fix(
                e.to_string(),
                "check the URL, the server and the role's password (or ~/.pgpass)",
            )]
        }
    };
    let mut counts = Vec::new();
    let counted = store
        .query_each(
            "SELECT (SELECT COUNT(*) FROM run), (SELECT COUNT(*) FROM result)",
            |e| {
                if let tokbench_store::QueryEvent::Row(cells) = e {
                    counts = cells.iter().map(|c| c.to_json()).collect();
                }
                std::ops::ControlFlow::Continue(())
            },
        )
        .await;
    store.close().await;
    match counted {
        Ok(()) => vec![ok(format!(
            "database {shown}: PostgreSQL, schema current, {} runs, {} results",
            counts.first().cloned().unwrap_or_default(),
            counts.get(1).cloned().unwrap_or_default()
        ))],
        Err(e) => vec![fix(
            format!("database {shown} cannot be read ({e})"),
            "check the role's privileges on the tokbench tables",
        )],
    }
}

async fn database(db: &Path) -> Vec<Finding> {
    if let Some(url) = db.to_str().filter(|d| tokbench_store::is_postgres_url(d)) {
        return postgres_database(url).await;
    }
    let shown = db.display();
    match Store::inspect(db).await {
        Err(StoreError::Missing { .. }) => vec![note(
            format!("database {shown} does not exist yet"),
            "`tokbench run` creates it",
        )],
        Err(StoreError::NotTokbench { .. }) => vec![fix(
            format!("{shown} is an SQLite file, but not a tokbench database"),
            "point --db at a tokbench database, or move the file away",
        )],
        Err(e) => {
            let why = tokbench_runner::serve::client::error_chain(&e);
            vec![fix(
                format!("database {shown} cannot be read ({why})"),
                "check the path and its permissions; a file that is not SQLite is not a tokbench database",
            )]
        }
        Ok(h) => {
            let mut out = Vec::new();
            if h.integrity == "ok" {
                out.push(ok(format!(
                    "database {shown}: integrity ok, {} runs, {} results",
                    h.runs, h.results
                )));
            } else {
                out.push(fix(
                    format!("database {shown} fails SQLite's integrity check: {}", h.integrity),
                    format!("copy what can be read into a new file: sqlite3 {shown} .recover | sqlite3 recovered.db"),
                ));
            }
            let version = h
                .schema_version
                .map_or("none".to_string(), |v| v.to_string());
            if h.newer {
                out.push(fix(
                    format!(
                        "schema {version} is newer than this tokbench knows ({})",
                        h.latest_version
                    ),
                    "use the newer tokbench that wrote it (this one refuses to write to it)",
                ));
            } else if h.pending.is_empty() {
                out.push(ok(format!("schema {version}, up to date")));
            } else {
                out.push(note(
                    format!("schema {version}: {} migration(s) pending: {}", h.pending.len(), h.pending.join(", ")),
                    format!("tokbench migrate --db {shown} (or the next `tokbench run` into it); migrations only add"),
                ));
            }
            for (uuid, at) in &h.running {
                out.push(note(
                    format!("run {uuid} (started {at}) is still marked running: in progress elsewhere, or its tokbench was killed"),
                    format!("if nothing runs it: tokbench run --resume {uuid} --db {shown}"),
                ));
            }
            out
        }
    }
}

fn backends() -> Vec<Finding> {
    let mut out = vec![ok("engine: built in")];
    for (name, env) in [
        ("llama-bench", "TOKBENCH_LLAMA_BENCH"),
        ("llama-server", "TOKBENCH_LLAMA_SERVER"),
    ] {
        out.push(match tokbench_runner::resolve::find_tool(name, None, env) {
            Ok(f) if f.how.contains("older sources") => note(
                format!("{name}: {} ({})", f.path.display(), f.how),
                "tokbench backends build",
            ),
            Ok(f) => ok(format!("{name}: {} ({})", f.path.display(), f.how)),
            Err(e) => note(format!("{name}: not found"), e.to_string()),
        });
    }
    for name in ["vllm", "ollama"] {
        out.push(match tokbench_runner::resolve::which(name) {
            Some(p) => ok(format!("{name}: {}", p.display())),
            None => note(
                format!("{name}: not on PATH"),
                format!("install {name} to benchmark it, or attach to a running one ([backend.{name}] base_url)"),
            ),
        });
    }
    out
}

fn telemetry() -> Vec<Finding> {
    let reports = tokbench_telemetry::probe_all();
    let mut can = std::collections::BTreeSet::new();
    for r in &reports {
        for (m, a) in &r.metrics {
            if a.is_ok() {
                can.insert(format!("{} ({})", m.name(), r.source));
            }
        }
    }
    let power = can
        .iter()
        .any(|m| m.starts_with("power_w") || m.starts_with("energy"));
    let mut out = vec![ok(format!(
        "telemetry can measure: {}",
        if can.is_empty() {
            "nothing".to_string()
        } else {
            can.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    ))];
    if !power {
        out.push(note(
            "no power or energy source on this machine: power and tokens/J columns stay empty",
            "`tokbench telemetry probe` says why for each source (no GPU, no RAPL, powermetrics needs root)",
        ));
    }
    out
}

/// The GPUs this machine has: NVIDIA through NVML (or the recording
/// `TOKBENCH_NVML_REPLAY` names), AMD and Intel as the host detection lists them from sysfs.
struct Devices {
    nvidia: Result<Vec<String>, String>,
    /// AMD and Intel GPUs: Vulkan's.
    other: Vec<String>,
}

fn devices() -> Devices {
    use tokbench_telemetry::nvml::NvmlApi;
    let nvidia = tokbench_telemetry::nvml::api()
        .map_err(|u| u.reason)
        .and_then(|api: Box<dyn NvmlApi>| {
            let n = api.device_count().map_err(|e| format!("NVML: {e}"))?;
            Ok((0..n)
                .map(|i| api.name(i).unwrap_or_else(|e| format!("GPU {i} ({e})")))
                .collect())
        });
    let other = if cfg!(target_os = "linux") {
        tokbench_runner::host::linux_gpus(
            Path::new("/proc/driver/nvidia/gpus"),
            Path::new("/sys/class/drm"),
        )
        .into_iter()
        .filter(|g| !g.starts_with("NVIDIA"))
        .collect()
    } else {
        Vec::new()
    };
    Devices { nvidia, other }
}

/// Which accelerator this binary's engine was built for, which GPUs the machine has, and
/// whether the two match: a CPU build on a GPU machine would measure the CPU.
fn accelerator(built: &str, d: &Devices) -> Vec<Finding> {
    let nvidia = d.nvidia.as_deref().unwrap_or(&[]);
    let mut out = vec![ok(format!(
        "engine built for: {built}{}",
        match built {
            "cpu" => " (no GPU offload)",
            _ => "",
        }
    ))];
    let seen: Vec<String> = nvidia.iter().chain(&d.other).cloned().collect();
    out.push(match &seen[..] {
        [] => ok(format!(
            "GPUs seen: none{}",
            match &d.nvidia {
                Err(why) => format!(" (NVIDIA: {why})"),
                Ok(_) => String::new(),
            }
        )),
        _ => ok(format!("GPUs seen: {}", seen.join(", "))),
    });
    let rebuild_cuda = "rebuild with CUDA: `cargo build --release --features cuda` (needs the CUDA toolkit's nvcc; the binary then needs the NVIDIA driver to start), and `tokbench backends build --accel cuda` for llama-bench and llama-server";
    let rebuild_vulkan = "rebuild with Vulkan: `cargo build --release --features vulkan` (needs libvulkan-dev and glslc), and `tokbench backends build --accel vulkan`";
    match (built, nvidia.is_empty(), d.other.is_empty()) {
        ("cpu", false, _) => out.push(fix(
            format!(
                "this is a CPU build on a machine with {}: the engine would measure the CPU, not the GPU",
                nvidia.join(", ")
            ),
            rebuild_cuda,
        )),
        // An integrated Intel GPU is often slower than the CPU beside it: worth knowing,
        // not a mistake.
        ("cpu", true, false) if d.other.iter().all(|g| g.starts_with("Intel")) => out.push(note(
            format!(
                "this is a CPU build on a machine with {}: the engine measures the CPU",
                d.other.join(", ")
            ),
            rebuild_vulkan,
        )),
        ("cpu", true, false) => out.push(fix(
            format!(
                "this is a CPU build on a machine with {}: the engine would measure the CPU, not the GPU",
                d.other.join(", ")
            ),
            rebuild_vulkan,
        )),
        ("cuda", true, _) => out.push(fix(
            "built for CUDA, but no NVIDIA GPU is seen: every cell would fail or fall back to the CPU",
            "run it on the GPU machine, or build without `--features cuda` here",
        )),
        // A Vulkan build with no GPU in sysfs may still have a Vulkan device (a software
        // one, lavapipe): what llama.cpp itself sees is the next finding.
        _ => {}
    }
    out
}

/// The devices the engine's llama.cpp sees (the engine started once with no work), and,
/// in a GPU build, whether one of them is the accelerator it was built for.
async fn engine_devices(built: &str) -> Vec<Finding> {
    let engine = match crate::run::own_engine() {
        Ok(engine) => engine,
        Err(e) => {
            return vec![fix(
                format!("cannot find this tokbench to start its engine: {e:#}"),
                "run tokbench from its file, not a deleted or moved one",
            )]
        }
    };
    let devices = match tokbench_runner::probe_engine_devices(&engine).await {
        Ok(d) => d,
        Err(e) => {
            return vec![fix(
            format!("the engine does not start: {e}"),
            "`tokbench engine` is this binary's own; a build that cannot start it cannot measure",
        )]
        }
    };
    let shown: Vec<String> = devices
        .iter()
        .map(|d| match d.memory_total {
            0 => format!("{} ({})", d.name, d.description),
            m => format!(
                "{} ({}, {:.1} GiB)",
                d.name,
                d.description,
                m as f64 / f64::from(1u32 << 30)
            ),
        })
        .collect();
    let mut out = vec![ok(format!(
        "engine devices (llama.cpp): {}",
        match shown.is_empty() {
            true => "none".to_string(),
            false => shown.join(", "),
        }
    ))];
    let backend = match built {
        "cuda" => Some("CUDA"),
        "vulkan" => Some("Vulkan"),
        "metal" => Some("Metal"),
        _ => None,
    };
    if let Some(b) = backend {
        if !devices.iter().any(|d| d.backend.eq_ignore_ascii_case(b)) {
            out.push(fix(
                format!("built for {built}, but llama.cpp sees no {b} device: every layer would run on the CPU"),
                match built {
                    "vulkan" => "`vulkaninfo --summary` lists the Vulkan devices; llama.cpp skips CPU-type ones (lavapipe) unless GGML_VK_VISIBLE_DEVICES names them (`GGML_VK_VISIBLE_DEVICES=0`)",
                    "cuda" => "`nvidia-smi` should list the GPU; CUDA_VISIBLE_DEVICES may hide it",
                    _ => "check the GPU's driver",
                },
            ));
        }
    }
    out
}

/// The arguments of `doctor` and `migrate`: the database.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: std::path::PathBuf,
}

/// `tokbench doctor`: what to fix, changing nothing.
pub async fn doctor_command(args: &DbArgs) -> anyhow::Result<ExitCode> {
    let db = args.db.as_path();
    let sections = [
        ("database", database(db).await),
        ("backends", backends()),
        ("accelerator", {
            let mut found = accelerator(tokbench_engine::accel(), &devices());
            found.extend(engine_devices(tokbench_engine::accel()).await);
            found
        }),
        ("telemetry", telemetry()),
    ];
    let mut to_fix = 0;
    for (name, findings) in &sections {
        outln!("{name}:")?;
        for f in findings {
            outln!("  [{}] {}", f.level, f.what)?;
            if let Some(x) = &f.fix {
                outln!("         → {x}")?;
            }
            if f.level == "fix" {
                to_fix += 1;
            }
        }
    }
    if to_fix == 0 {
        outln!("nothing to fix")?;
        Ok(ExitCode::Ok)
    } else {
        outln!("{to_fix} thing(s) to fix")?;
        Ok(ExitCode::ToolError)
    }
}

/// `tokbench migrate`: applies the migrations a database lacks and says which.
pub async fn migrate_command(args: &DbArgs) -> anyhow::Result<ExitCode> {
    let db = args.db.as_path();
    let applied = match db.to_str().filter(|d| tokbench_store::is_postgres_url(d)) {
        Some(url) => {
            let applied = tokbench_store::PgStore::migrate(url).await?;
            let shown = tokbench_store::redacted_url(url);
            return migrated(&shown, &applied);
        }
        None => Store::migrate(db).await?,
    };
    migrated(&db.display().to_string(), &applied)
}

fn migrated(db: &str, applied: &[String]) -> anyhow::Result<ExitCode> {
    if applied.is_empty() {
        outln!("{db}: schema up to date, nothing to migrate")?;
    } else {
        outln!(
            "{db}: applied {} migration(s): {}",
            applied.len(),
            applied.join(", ")
        )?;
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(f: &[Finding]) -> Vec<(&'static str, String)> {
        f.iter().map(|f| (f.level, f.what.clone())).collect()
    }

    #[test]
    fn the_build_and_the_devices_are_matched() {
        let none = Devices {
            nvidia: Err("no NVIDIA driver".into()),
            other: vec![],
        };
        let h200 = Devices {
            nvidia: Ok(vec!["NVIDIA H200".into()]),
            other: vec![],
        };
        let amd = Devices {
            nvidia: Ok(vec![]),
            other: vec!["AMD Radeon RX 7900 XTX".into()],
        };
        // Matching: nothing to fix.
        assert!(accelerator("cpu", &none).iter().all(|f| f.level == "ok"));
        assert!(accelerator("cuda", &h200).iter().all(|f| f.level == "ok"));
        assert!(accelerator("vulkan", &amd).iter().all(|f| f.level == "ok"));
        // A CPU build on a GPU machine says how to rebuild, for that vendor.
        let f = accelerator("cpu", &h200);
        let bad = f.iter().find(|f| f.level == "fix").unwrap();
        assert!(bad.what.contains("NVIDIA H200"), "{:?}", levels(&f));
        assert!(bad.fix.as_deref().unwrap().contains("--features cuda"));
        let f = accelerator("cpu", &amd);
        let bad = f.iter().find(|f| f.level == "fix").unwrap();
        assert!(bad.fix.as_deref().unwrap().contains("--features vulkan"));
        // An Intel GPU alone: a note.
        let intel = Devices {
            nvidia: Ok(vec![]),
            other: vec!["Intel GPU (PCI device 0x46a6)".into()],
        };
        let f = accelerator("cpu", &intel);
        assert!(f.iter().any(|f| f.level == "note") && f.iter().all(|f| f.level != "fix"));
        // A CUDA build with no NVIDIA GPU.
        let f = accelerator("cuda", &none);
        assert!(f
            .iter()
            .any(|f| f.level == "fix" && f.what.contains("no NVIDIA GPU")));
        assert!(
            f.iter().any(|f| f.what.contains("no NVIDIA driver")),
            "{:?}",
            levels(&f)
        );
    }
}
