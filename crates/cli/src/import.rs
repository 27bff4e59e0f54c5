//! `tokbench import FILE…`: llama-bench output (`-o json`, `-o jsonl`, `-o sql`, and the
//! Markdown table as printed or pasted) into the database, one run per file, keeping
//! llama-bench's own averages and every repetition, its build commit, and the hardware it
//! names (`gpu_info`/`cpu_info`, or a paste's device lines, matched to the catalog; else
//! `--hardware` or the file's front matter). Each run keeps a `--source` that `results` and
//! the reports show beside its rows, and a file with a source is its own host unless
//! `--host` says otherwise (two posts about one GPU are two series). Importing the same
//! results twice changes nothing, whatever the format: the run's UUID is derived from the
//! records as parsed, so `-o json` and `-o jsonl` of one run are one run, and a table
//! re-pasted with other spacing is the same table.

use std::path::PathBuf;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokbench_core::llama_bench::{
    accel_of, detect_format, front_matter, parse_any, quant_of, FrontMatter, LlamaBenchFormat,
    LlamaBenchRecord,
};
use tokbench_core::{BackendBuild, CellResult, HostInfo, ModelRecord};
use tokbench_store::{BatchCell, NewRun, Rate, RunStatus, Store};

use crate::exit::{BadInput, ExitCode};

/// `tokbench import`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// llama-bench output files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: PathBuf,
    /// Where the numbers came from (shown beside the rows); default: the file's front
    /// matter `source:`, else the file.
    #[arg(long)]
    pub source: Option<String>,
    /// The machine's name, which llama-bench does not print; default: one derived from the
    /// source (`post-1a2b3c4d`), so each post is its own series, else `imported`.
    #[arg(long)]
    pub host: Option<String>,
    /// The hardware, as the catalog names it (`2x GeForce RTX 3090`), where the output
    /// names none or names it wrong (a pasted table without its device lines).
    #[arg(long)]
    pub hardware: Option<String>,
    /// When the results were measured (`YYYY-MM-DD`), for a Markdown table, which prints no
    /// time; default: the front matter's `date:`, else the time of the import.
    #[arg(long)]
    pub date: Option<String>,
    /// The hardware catalog used to name the hardware from gpu_info/cpu_info.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
}

/// A run UUID derived from `bytes`: the records' JSON (see [`content_uuid`]), or, for runs
/// imported before that, the file's bytes.
fn run_uuid(bytes: &[u8]) -> String {
    uuid_from_digest(&Sha256::digest(bytes))
}

/// A version-8 UUID from the first 16 bytes of a sha256 digest.
fn uuid_from_digest(digest: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    // A version-8 (custom) UUID: the bits say it is derived, not random.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

/// The run UUID of a file's records: the same results give the same run whether they came
/// as JSON, JSONL or reformatted, and any difference in a figure gives another.
fn content_uuid(records: &[LlamaBenchRecord]) -> String {
    /// Hashes what is written to it (the records' JSON, never held whole).
    struct HashWriter(Sha256);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = std::io::BufWriter::with_capacity(1 << 16, HashWriter(Sha256::new()));
    // Plain records into a sink that cannot fail: neither step can fail.
    let _ = serde_json::to_writer(&mut h, records);
    let _ = std::io::Write::flush(&mut h);
    let (HashWriter(sha), _) = h.into_parts();
    uuid_from_digest(&sha.finalize())
}

/// `YYYY-MM-DD` → `YYYY-MM-DDT00:00:00Z`; `what` names the flag or file for the error.
fn day(date: &str, what: &str) -> Result<String, BadInput> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(date.trim(), &format)
        .map(|_| format!("{}T00:00:00Z", date.trim()))
        .map_err(|_| BadInput(format!("{what}: date `{date}` is not a YYYY-MM-DD date")))
}

/// Whether llama-bench's `model_type` (`qwen3moe 30B.A3B Q4_K - Medium`, `gpt-oss 20B
/// MXFP4 MoE`) names a mixture-of-experts model: an architecture llama.cpp names so, or a
/// size with its active parameters (`30B.A3B`), or an `MoE` type.
fn mixture_of_experts(model_type: &str) -> bool {
    let mut words = model_type.split_whitespace();
    let arch = words.next().unwrap_or("").to_ascii_lowercase();
    let size = words.next().unwrap_or("");
    const MOE_ARCHS: [&str; 12] = [
        "gpt-oss",
        "qwen3next",
        "deepseek2",
        "mixtral",
        "llama4",
        "dots1",
        "grok",
        "arctic",
        "jamba",
        "minimax",
        "dbrx",
        "deepseek",
    ];
    // Mixtral is `llama 8x7B`: experts times their size.
    let experts_times = size
        .split_once('x')
        .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    arch.contains("moe")
        || MOE_ARCHS.contains(&arch.as_str())
        || size.contains(".A")
        || experts_times
        || model_type.split_whitespace().any(|w| w == "MoE")
}

/// A host name for results from `source`: the same source, the same host.
fn host_of_source(source: &str) -> String {
    let digest = Sha256::digest(source.trim().as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("post-{hex}")
}

pub async fn import_command(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let catalog = crate::hardware::load_catalog(args.catalog.as_deref())?;
    // A hardware name given on the command line must be the catalog's.
    let given_hardware = args
        .hardware
        .as_deref()
        .map(|h| {
            catalog.resolve(h).map(|c| c.display_name).map_err(|e| {
                BadInput(format!(
                    "--hardware: {e} (`tokbench hardware` lists the catalog)"
                ))
            })
        })
        .transpose()?;
    let date = args.date.as_deref().map(|d| day(d, "--date")).transpose()?;
    let t0 = std::time::Instant::now();
    // Files are parsed on worker threads while earlier ones are stored. Every file is
    // stored in one transaction, committed only once the last has parsed: a file that is
    // not llama-bench output leaves the database as it was, and a database the import would
    // have created is never made (see [`Fresh`]).
    let mut parsing = Parsing::start(args.files.clone(), date);
    let mut stored_total = 0usize;
    // Into a server: the files are imported into a scratch SQLite file, which is then merged
    // into the server in one transaction (run UUIDs come from the records, so importing a
    // file twice stores it once there too).
    let url = args
        .db
        .to_str()
        .filter(|d| tokbench_store::is_postgres_url(d));
    let (server, scratch) = match url {
        Some(url) => (
            Some(crate::snapshot::open_server(url).await?),
            Some(crate::snapshot::scratch(url)?),
        ),
        None => (None, None),
    };
    let fresh = match scratch {
        None if !args.db.exists() => Some(Fresh::beside(&args.db)?),
        _ => None,
    };
    let db = match (&scratch, &fresh) {
        (Some(s), _) => s.path().to_path_buf(),
        (None, Some(f)) => f.tmp.clone(),
        (None, None) => args.db.clone(),
    };
    let store = Store::open(&db).await.with_context(|| {
        format!(
            "cannot open the results database {}",
            crate::output::display_db(&args.db)
        )
    })?;
    let mut batch = store.begin_batch().await?;
    // What the store is done with is dropped on another thread: freeing 10,000 results
    // takes as long as storing a thousand.
    let (discard, discarded) = std::sync::mpsc::channel::<Parsed>();
    let dropper = std::thread::spawn(move || discarded.into_iter().for_each(drop));
    let mut waited = std::time::Duration::ZERO;
    for file in &args.files {
        let t_wait = std::time::Instant::now();
        let parsed = parsing.next().await?;
        waited += t_wait.elapsed();
        let Parsed {
            uuid,
            bytes_uuid,
            first,
            ..
        } = &parsed;
        // A run imported before UUIDs came from the records has its file's bytes' UUID.
        let mut imported = None;
        for seen in [uuid, bytes_uuid] {
            let status = match &server {
                Some(server) => server.run_status(seen).await?,
                None => batch
                    .run_by_uuid(seen)
                    .await?
                    .map(|prev| prev.status.as_str().to_string()),
            };
            if status.as_deref() == Some(RunStatus::Ok.as_str()) {
                imported = Some(seen.clone());
                break;
            }
        }
        if let Some(seen) = imported {
            eprintln!(
                "import {}: already imported as run {seen}; nothing to do",
                file.display()
            );
            let _ = discard.send(parsed);
            continue;
        }
        let meta = &parsed.meta;
        let accel = accel_of(first.backends.as_deref());
        let source = args
            .source
            .clone()
            .or_else(|| meta.source.clone())
            .unwrap_or_else(|| format!("llama-bench output {}", file.display()));
        let stated_source = args.source.is_some() || meta.source.is_some();
        let hostname = args
            .host
            .clone()
            .or_else(|| meta.host.clone())
            .unwrap_or_else(|| {
                // One post can show several machines (a file each): the hardware it names
                // is part of the host, so they stay separate series.
                let named = args.hardware.as_deref().or(meta.hardware.as_deref());
                match (stated_source, named) {
                    (true, Some(h)) => host_of_source(&format!("{source}\n{h}")),
                    (true, None) => host_of_source(&source),
                    (false, _) => "imported".into(),
                }
            });
        let host = HostInfo {
            hostname,
            cpu_model: first.cpu_info.clone(),
            cpu_cores_logical: 0,
            cpu_cores_physical: None,
            memory_total_bytes: None,
            os: "unknown (imported)".into(),
            kernel: None,
            arch: "unknown".into(),
            gpus: first
                .gpu_info
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect(),
        };
        // The hardware: given, else the devices the output names, else the front matter's
        // (a name the catalog lacks is kept as written, with unknown figures).
        let detected =
            crate::hardware::detected_hardware(&catalog, &host, &accel).map(|c| c.display_name);
        let stated = meta.hardware.as_deref().map(|h| match catalog.resolve(h) {
            Ok(c) => (c.display_name, true),
            Err(_) => (h.to_string(), false),
        });
        // A name someone wrote down (the command line, then the file's front matter, when
        // the catalog knows it) beats detection: device lines list every GPU in the box,
        // not the ones a run used.
        let stated_known = stated
            .as_ref()
            .filter(|(_, known)| *known)
            .map(|(h, _)| h.clone());
        let hardware = given_hardware
            .clone()
            .or(stated_known)
            .or(detected)
            .or_else(|| stated.as_ref().map(|(h, _)| h.clone()));
        let unmatched = match (&hardware, &stated) {
            (Some(h), Some((s, false))) if h == s => Some(format!("`{s}` (front matter)")),
            (None, _) if !host.gpus.is_empty() => Some(format!("`{}`", host.gpus.join(", "))),
            (None, _) if !host.cpu_model.is_empty() => Some(format!("`{}`", host.cpu_model)),
            _ => None,
        };
        let run_id = match batch.run_by_uuid(uuid).await? {
            // An import cut short: finish it.
            Some(prev) => prev.id,
            None => {
                batch
                    .begin_run(
                        &NewRun {
                            uuid: uuid.clone(),
                            started_at: parsed.started_at.clone(),
                            suite_name: "llama-bench import".into(),
                            suite_path: Some(file.display().to_string()),
                            config_text: None,
                            tokbench_version: env!("CARGO_PKG_VERSION").into(),
                            trigger: "import".into(),
                            cells_total: parsed.cells.len(),
                            source: Some(source.clone()),
                            hardware: hardware.clone(),
                        },
                        &host,
                    )
                    .await?
            }
        };
        let done: std::collections::BTreeSet<usize> =
            batch.stored_cells(run_id).await?.into_iter().collect();
        // Every cell the run lacks.
        let cells: Vec<BatchCell> = parsed
            .cells
            .iter()
            .enumerate()
            .filter(|(i, _)| !done.contains(i))
            .map(|(_, c)| {
                let model = &parsed.models[c.model];
                BatchCell {
                    build: &parsed.builds[c.build],
                    model: Some(model),
                    model_name: &model.name,
                    repetitions_expected: c.expected,
                    result: &c.result,
                    rate_summary: c.summary,
                }
            })
            .collect();
        let added = batch
            .insert_cells(run_id, &cells)
            .await
            .context("cannot store the imported results")?
            .len();
        drop(cells);
        stored_total += added;
        batch
            .finish_run(run_id, RunStatus::Ok, &parsed.finished_at)
            .await?;
        eprintln!(
            "import {}: {added} results as run {uuid} (llama-bench build {} {}, {}{}), source: {source}",
            file.display(),
            first.build_number,
            first.build_commit,
            accel,
            hardware.map(|h| format!(", {h}")).unwrap_or_default(),
        );
        if let Some(what) = unmatched {
            eprintln!(
                "import {}: hardware {what} is not in the catalog: kept by that name, without price or power figures (`tokbench hardware` lists the catalog; --hardware names it)",
                file.display()
            );
        }
        if parsed.undated {
            eprintln!(
                "import {}: the table prints no date and none was given (--date, or `date:` in front matter): dated at the import, {}",
                file.display(),
                parsed.started_at
            );
        }
        let _ = discard.send(parsed);
    }
    batch.commit().await?;
    let t_stored = t0.elapsed();
    let parse_busy = parsing.finish();
    drop(discard);
    // Committed: from here on nothing fails before the new database has its name, or a
    // failing check would remove what was imported.
    let integrity = store
        .integrity_check_up_to(tokbench_store::CLOSING_CHECK_MAX_BYTES)
        .await;
    store.close().await;
    // The dropper only frees parsed files: a panic there loses nothing.
    let _ = dropper.join();
    if let Some(fresh) = fresh {
        fresh.put_in_place()?;
    }
    let integrity = integrity?;
    if let Some(server) = server {
        let merged = server.merge_sqlite(&db).await;
        server.close().await;
        let report = merged.context("cannot merge the imported runs into the server")?;
        eprintln!(
            "import: merged into {}: {} runs added, {} already there ({} extended), {} results added",
            crate::output::display_db(&args.db),
            report.runs_added,
            report.runs_skipped,
            report.runs_extended,
            report.results_added,
        );
    }
    let t_done = t0.elapsed();
    if url.is_none() {
        eprintln!("import: database integrity {integrity}");
    }
    eprintln!(
        "import: {stored_total} results in {:.2} s ({:.0} results/s): read and parse {:.2} s on {} thread{} beside the store, store {:.2} s (of it {:.2} s waiting for parsing), {} {:.2} s",
        t_done.as_secs_f64(),
        stored_total as f64 / t_done.as_secs_f64().max(1e-9),
        parse_busy.as_secs_f64(),
        parsing.workers,
        if parsing.workers == 1 { "" } else { "s" },
        t_stored.as_secs_f64(),
        waited.as_secs_f64(),
        match url {
            Some(_) => "check and merge into the server",
            None => "check",
        },
        (t_done - t_stored).as_secs_f64(),
    );
    Ok(ExitCode::Ok)
}

/// A database the import creates: written under a temporary name beside it, and linked
/// into place only once the import has committed and closed it, so a failed import leaves
/// no file behind and never one half made.
struct Fresh {
    target: PathBuf,
    tmp: PathBuf,
    placed: bool,
}

impl Fresh {
    /// The temporary name for `target`, in its directory, which must exist. What an import
    /// killed before it could clean up left there (a process that is gone) is removed.
    fn beside(target: &std::path::Path) -> anyhow::Result<Fresh> {
        let name = target.file_name().map_or_else(
            || "tokbench.db".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(BadInput(format!(
                "cannot create the results database {}: the directory {} does not exist",
                target.display(),
                dir.display()
            ))
            .into());
        }
        let prefix = format!(".{name}.import-");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            // Exactly `{prefix}PID`, or SQLite's own files beside it.
            let Some(rest) = file.strip_prefix(&prefix) else {
                continue;
            };
            let digits = ["-wal", "-shm", "-journal"]
                .iter()
                .find_map(|suffix| rest.strip_suffix(suffix))
                .unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let pid = digits.parse::<i32>().ok();
            let gone = pid.is_some_and(|pid| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    == Err(nix::errno::Errno::ESRCH)
            });
            if gone {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Fresh {
            target: target.to_path_buf(),
            tmp: target.with_file_name(format!("{prefix}{}", std::process::id())),
            placed: false,
        })
    }

    /// The files SQLite keeps beside the database.
    fn companions(&self) -> [PathBuf; 3] {
        let with = |suffix: &str| {
            let mut p = self.tmp.clone().into_os_string();
            p.push(suffix);
            PathBuf::from(p)
        };
        [self.tmp.clone(), with("-wal"), with("-shm")]
    }

    /// Gives the closed database its name: refused, with the import left where it is,
    /// where another process made a database of that name meanwhile.
    fn put_in_place(mut self) -> anyhow::Result<()> {
        let [tmp, wal, _] = self.companions();
        // A closed WAL database has written its log back: what is left must not be lost.
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            let kept = self.keep()?;
            anyhow::bail!(
                "the imported database {} still has a write-ahead log after closing; it is kept: move it and its -wal file to {}",
                kept.display(),
                self.target.display()
            );
        }
        // Neither a hard link nor a rename without replace overwrites a database another
        // process made meanwhile.
        let placed = match std::fs::hard_link(&tmp, &self.target) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                rename_unless_there(&tmp, &self.target)
            }
            linked => linked,
        };
        match placed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let kept = self.keep()?;
                anyhow::bail!(
                    "{} was created by another process during the import; the imported runs are kept in {} (`tokbench merge {} --into {}` adds them)",
                    self.target.display(),
                    kept.display(),
                    kept.display(),
                    self.target.display()
                );
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot name the new database {}", self.target.display())
                })
            }
        }
        self.placed = true;
        for f in self.companions() {
            let _ = std::fs::remove_file(f);
        }
        Ok(())
    }

    /// Keeps the import under a name no later import takes for its own leftovers
    /// (`NAME.import-PID.db`, beside the target); returns it.
    fn keep(&mut self) -> anyhow::Result<PathBuf> {
        let [tmp, wal, _] = self.companions();
        let kept = self.target.with_file_name(format!(
            "{}.import-{}.db",
            self.target
                .file_name()
                .map_or_else(|| "tokbench.db".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        std::fs::rename(&tmp, &kept)
            .with_context(|| format!("cannot keep the import as {}", kept.display()))?;
        if wal.exists() {
            let mut kept_wal = kept.clone().into_os_string();
            kept_wal.push("-wal");
            std::fs::rename(&wal, kept_wal).with_context(|| {
                format!("cannot keep the import's log beside {}", kept.display())
            })?;
        }
        self.placed = true;
        Ok(kept)
    }
}

/// `from` renamed to `to` unless `to` exists (`AlreadyExists` then): atomic where the
/// system has a no-replace rename (Linux), else a look just before.
fn rename_unless_there(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        nix::fcntl::renameat2(
            None,
            from,
            None,
            to,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        if to.exists() {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        std::fs::rename(from, to)
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if !self.placed {
            for f in self.companions() {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

/// One file, read.
struct Parsed {
    /// The run UUID, from the records.
    uuid: String,
    /// The UUID the file's bytes gave before UUIDs came from the records.
    bytes_uuid: String,
    /// The first record: the host, build and hardware the run is filed under.
    first: LlamaBenchRecord,
    /// The earliest and latest test times.
    started_at: String,
    finished_at: String,
    /// The builds and models the records name, each once.
    builds: Vec<BackendBuild>,
    models: Vec<ModelRecord>,
    /// A result for each record, in order.
    cells: Vec<Cell>,
    /// A Markdown file's front matter (source, date, hardware, host).
    meta: FrontMatter,
    /// A Markdown table with no date given: dated at the import.
    undated: bool,
}

/// What one llama-bench record is stored as.
struct Cell {
    /// Index into [`Parsed::builds`] and [`Parsed::models`].
    build: usize,
    model: usize,
    result: CellResult,
    /// The repetitions the record holds.
    expected: u32,
    /// llama-bench's own mean and sd of its per-repetition rates (the same definition as
    /// tokbench's), exact, including from SQL output, which has no samples.
    summary: Option<(Rate, f64, Option<f64>)>,
}

/// The backend build a record names.
fn build_of(r: &LlamaBenchRecord) -> BackendBuild {
    BackendBuild {
        name: "llama-bench".into(),
        // Build 0 is llama-bench's "not known" (no git checkout, or a table without its
        // build line).
        version: if r.build_number > 0 {
            format!("b{}", r.build_number)
        } else {
            "unknown".into()
        },
        commit: Some(r.build_commit.clone()).filter(|c| !c.is_empty() && c != "unknown"),
        accel: accel_of(r.backends.as_deref()),
        flags: String::new(),
    }
}

/// The model a record names.
fn model_of(r: &LlamaBenchRecord) -> ModelRecord {
    ModelRecord {
        name: r
            .model_filename
            .rsplit('/')
            .next()
            .unwrap_or(&r.model_filename)
            .to_string(),
        architecture: r
            .model_type
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string(),
        quant: quant_of(&r.model_type),
        n_params: r.model_n_params,
        file_bytes: r.model_size,
        // llama-bench does not hash the file; the name and size identify it.
        file_sha256: format!("llama-bench:{}:{}", r.model_filename, r.model_size),
        // llama-bench's model_size is every tensor's bytes: for a dense model the reports'
        // roofline takes it whole (see ModelFacts::tensor_bytes_only). A mixture of experts
        // reads only its active experts per token, which the total does not tell: no
        // roofline.
        shape_json: if mixture_of_experts(&r.model_type) {
            serde_json::json!({ "tensor_bytes": r.model_size }).to_string()
        } else {
            serde_json::json!({
                "tensor_bytes": r.model_size,
                "tensor_bytes_only": true,
            })
            .to_string()
        },
        origin: r.model_filename.clone(),
    }
}

/// Reads and parses one file: its run UUIDs, and what each record is stored as.
fn read_one(file: &std::path::Path, date: Option<&str>) -> Result<Parsed, BadInput> {
    let bytes = std::fs::read(file)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    let bytes_uuid = run_uuid(&bytes);
    let text = String::from_utf8(bytes)
        .map_err(|_| BadInput(format!("{}: not UTF-8 text", file.display())))?;
    let bad = |e: tokbench_core::llama_bench::LlamaBenchError| {
        BadInput(format!("{}: {e}", file.display()))
    };
    let mut records = parse_any(&text).map_err(bad)?;
    if records.is_empty() {
        return Err(BadInput(format!(
            "{}: no llama-bench results in it",
            file.display()
        )));
    }
    let markdown = detect_format(&text) == Some(LlamaBenchFormat::Markdown);
    let meta = match markdown {
        true => front_matter(&text).map_err(bad)?.map(|(m, _)| m),
        false => None,
    }
    .unwrap_or_default();
    // A table prints no time: the date given, else the front matter's, else the import's
    // (after the UUID, which must not change from one import to the next).
    let stated = match (date, &meta.date) {
        (Some(d), _) => Some(d.to_string()),
        (None, Some(d)) => Some(day(d, &format!("{}: front matter", file.display()))?),
        (None, None) => None,
    };
    if markdown {
        for r in &mut records {
            r.test_time = stated.clone().unwrap_or_default();
        }
    }
    let uuid = content_uuid(&records);
    let undated = markdown && stated.is_none();
    if undated {
        let now = crate::run::now();
        for r in &mut records {
            r.test_time = now.clone();
        }
    }
    // Turned into results here too, so a test tokbench cannot store (an unknown cache type)
    // is refused before anything is committed, like a file that does not parse. A file's
    // records name a few builds and models: each is made once.
    let mut builds: Vec<BackendBuild> = Vec::new();
    let mut models: Vec<ModelRecord> = Vec::new();
    let mut build_keys: Vec<(i64, &str, Option<&str>)> = Vec::new();
    let mut model_keys: std::collections::HashMap<(&str, &str, u64, u64), usize> =
        std::collections::HashMap::new();
    let mut cells = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let result = r
            .cell_result(i)
            .map_err(|e| BadInput(format!("{}: {e}", file.display())))?;
        let key = (
            r.build_number,
            r.build_commit.as_str(),
            r.backends.as_deref(),
        );
        let build = match build_keys.iter().position(|k| *k == key) {
            Some(at) => at,
            None => {
                build_keys.push(key);
                builds.push(build_of(r));
                builds.len() - 1
            }
        };
        let model = *model_keys
            .entry((
                r.model_filename.as_str(),
                r.model_type.as_str(),
                r.model_size,
                r.model_n_params,
            ))
            .or_insert_with(|| {
                models.push(model_of(r));
                models.len() - 1
            });
        cells.push(Cell {
            build,
            model,
            result,
            expected: r.samples_ts.as_ref().map_or(0, |s| s.len() as u32),
            summary: match (r.n_prompt > 0, r.n_gen > 0) {
                (true, false) => Some((Rate::Prefill, r.avg_ts, Some(r.stddev_ts))),
                (false, true) => Some((Rate::Decode, r.avg_ts, Some(r.stddev_ts))),
                _ => None,
            },
        });
    }
    drop(build_keys);
    drop(model_keys);
    let started_at = records
        .iter()
        .map(|r| &r.test_time)
        .min()
        .cloned()
        .unwrap_or_default();
    let finished_at = records
        .iter()
        .map(|r| &r.test_time)
        .max()
        .cloned()
        .unwrap_or_else(|| started_at.clone());
    let first = records.swap_remove(0);
    Ok(Parsed {
        uuid,
        bytes_uuid,
        first,
        started_at,
        finished_at,
        builds,
        models,
        cells,
        meta,
        undated,
    })
}

/// Files read and parsed on worker threads (a 10,000-test file takes about 0.05 s to parse
/// and hash) a few ahead of the store, handed over in the order given.
struct Parsing {
    workers: usize,
    handles: Vec<std::thread::JoinHandle<std::time::Duration>>,
    /// Each file's outcome, in the order given.
    outcomes: std::collections::VecDeque<tokio::sync::oneshot::Receiver<Result<Parsed, BadInput>>>,
    gate: std::sync::Arc<Gate>,
}

/// How far ahead of the store the workers may parse.
struct Gate {
    state: std::sync::Mutex<GateState>,
    moved: std::sync::Condvar,
}

struct GateState {
    /// The next file to take.
    next: usize,
    /// Files below this may be taken.
    allowed: usize,
    /// The store stopped: take no more.
    stop: bool,
}

impl Parsing {
    fn start(files: Vec<PathBuf>, date: Option<String>) -> Parsing {
        // One core is the store's: SQLite writes on one thread, the critical path.
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .min(files.len())
            .max(1);
        // Parsed files wait in memory: a few per worker at most.
        let gate = std::sync::Arc::new(Gate {
            state: std::sync::Mutex::new(GateState {
                next: 0,
                allowed: 2 * workers,
                stop: false,
            }),
            moved: std::sync::Condvar::new(),
        });
        type Outcome = tokio::sync::oneshot::Sender<Result<Parsed, BadInput>>;
        let (senders, outcomes): (Vec<Outcome>, std::collections::VecDeque<_>) = files
            .iter()
            .map(|_| tokio::sync::oneshot::channel())
            .unzip();
        let files = std::sync::Arc::new(files);
        let senders = std::sync::Arc::new(std::sync::Mutex::new(
            senders.into_iter().map(Some).collect::<Vec<_>>(),
        ));
        let handles = (0..workers)
            .map(|_| {
                let (files, date, gate, senders) =
                    (files.clone(), date.clone(), gate.clone(), senders.clone());
                std::thread::spawn(move || {
                    let mut busy = std::time::Duration::ZERO;
                    loop {
                        let i = {
                            let mut s = gate.state.lock().expect("the parse gate");
                            while !s.stop && s.next >= s.allowed && s.next < files.len() {
                                s = gate.moved.wait(s).expect("the parse gate");
                            }
                            if s.stop || s.next >= files.len() {
                                break busy;
                            }
                            s.next += 1;
                            s.next - 1
                        };
                        // Taken first: should the parse panic, the sender goes with this
                        // thread and the store hears of it, rather than waiting forever.
                        let sender = senders.lock().expect("the parse outcomes")[i].take();
                        let t = std::time::Instant::now();
                        let outcome = read_one(&files[i], date.as_deref());
                        busy += t.elapsed();
                        if let Some(sender) = sender {
                            // The store may have stopped: then nobody waits for it.
                            let _ = sender.send(outcome);
                        }
                    }
                })
            })
            .collect();
        Parsing {
            workers,
            handles,
            outcomes,
            gate,
        }
    }

    /// The next file, parsed; or its error (a file's [`BadInput`], or a parsing thread that
    /// panicked: a bug, reported as an error, with nothing of the import stored).
    async fn next(&mut self) -> anyhow::Result<Parsed> {
        let outcome = self
            .outcomes
            .pop_front()
            .expect("next() is called once per file");
        {
            let mut s = self.gate.state.lock().expect("the parse gate");
            s.allowed += 1;
        }
        self.gate.moved.notify_one();
        match outcome.await {
            Ok(parsed) => Ok(parsed?),
            Err(_) => anyhow::bail!("a thread parsing the files panicked; nothing was imported"),
        }
    }

    /// Waits for the workers; the time they spent reading and parsing, summed over them
    /// (their CPU time on an idle machine: 1.04-1.08 s against perf's 1.09 s for 100k records).
    fn finish(&mut self) -> std::time::Duration {
        self.stop();
        self.handles
            .drain(..)
            // A worker that panicked was told by `next` already; its time is not known.
            .map(|h| h.join().unwrap_or_default())
            .sum()
    }

    /// Tells the workers to take no more files.
    fn stop(&self) {
        // A worker that panicked holds no lock: the gate is never poisoned, but an
        // unwinding store must not panic again here.
        if let Ok(mut s) = self.gate.state.lock() {
            s.stop = true;
        }
        self.gate.moved.notify_all();
    }
}

impl Drop for Parsing {
    fn drop(&mut self) {
        // On an error or a panic: the workers end after the file each is parsing.
        self.stop();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixtures_of_experts_are_told_from_dense_models() {
        for moe in [
            "qwen3moe 30B.A3B Q4_K - Medium",
            "gpt-oss 20B MXFP4 MoE",
            "gpt-oss ?B F16",
            "qwen3next 80B.A3B Q5_K - Medium",
            "deepseek2 16B Q4_0",
            "llama 8x7B Q4_K - Medium",
        ] {
            assert!(mixture_of_experts(moe), "{moe}");
        }
        for dense in [
            "llama 8B Q4_K - Medium",
            "qwen2 14B Q4_K - Medium",
            "gemma4 31B Q4_K - Medium",
        ] {
            assert!(!mixture_of_experts(dense), "{dense}");
        }
    }

    #[test]
    fn the_run_uuid_comes_from_the_bytes() {
        assert_eq!(run_uuid(b"a"), run_uuid(b"a"));
        assert_ne!(run_uuid(b"a"), run_uuid(b"b"));
        assert_eq!(run_uuid(b"a").len(), 36);
    }
}
