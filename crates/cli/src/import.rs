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
    // Every file is read and parsed before the database is opened: one that is not
    // llama-bench output is refused with nothing written and no database created.
    let parsed = read_all(&args.files, date.as_deref())?;
    let t_parsed = t0.elapsed();
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
    let db = scratch.as_ref().map_or(args.db.as_path(), |s| s.path());
    let store = Store::open(db).await.with_context(|| {
        format!(
            "cannot open the results database {}",
            crate::output::display_db(&args.db)
        )
    })?;
    'files: for (file, parsed) in parsed {
        let Parsed {
            uuid,
            bytes_uuid,
            records,
            results,
            meta,
            undated,
        } = parsed;
        let first = &records[0];
        // A run imported before UUIDs came from the records has its file's bytes' UUID.
        for seen in [&uuid, &bytes_uuid] {
            let status = match &server {
                Some(server) => server.run_status(seen).await?,
                None => store
                    .run_by_uuid(seen)
                    .await?
                    .map(|prev| prev.status.as_str().to_string()),
            };
            if let Some(status) = status {
                if status == tokbench_store::RunStatus::Ok.as_str() {
                    eprintln!(
                        "import {}: already imported as run {seen}; nothing to do",
                        file.display()
                    );
                    continue 'files;
                }
            }
        }
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
        let started_at = records
            .iter()
            .map(|r| r.test_time.clone())
            .min()
            .unwrap_or_default();
        let run_id = match store.run_by_uuid(&uuid).await? {
            // An import cut short: finish it.
            Some(prev) => prev.id,
            None => {
                store
                    .begin_run(
                        &NewRun {
                            uuid: uuid.clone(),
                            started_at: started_at.clone(),
                            suite_name: "llama-bench import".into(),
                            suite_path: Some(file.display().to_string()),
                            config_text: None,
                            tokbench_version: env!("CARGO_PKG_VERSION").into(),
                            trigger: "import".into(),
                            cells_total: records.len(),
                            source: Some(source.clone()),
                            hardware: hardware.clone(),
                        },
                        &host,
                    )
                    .await?
            }
        };
        let done: std::collections::BTreeSet<usize> =
            store.stored_cells(run_id).await?.into_iter().collect();
        // Every cell the run lacks, stored in one transaction.
        let mut pending = Vec::new();
        for (i, (r, result)) in records.iter().zip(results).enumerate() {
            if done.contains(&i) {
                continue;
            }
            let build = BackendBuild {
                name: "llama-bench".into(),
                // Build 0 is llama-bench's "not known" (no git checkout, or a table
                // without its build line).
                version: if r.build_number > 0 {
                    format!("b{}", r.build_number)
                } else {
                    "unknown".into()
                },
                commit: Some(r.build_commit.clone()).filter(|c| !c.is_empty() && c != "unknown"),
                accel: accel_of(r.backends.as_deref()),
                flags: String::new(),
            };
            let model = ModelRecord {
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
                // llama-bench's model_size is every tensor's bytes: for a dense model the
                // reports' roofline takes it whole (see ModelFacts::tensor_bytes_only). A
                // mixture of experts reads only its active experts per token, which the
                // total does not tell: no roofline.
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
            };
            let expected = r.samples_ts.as_ref().map(|s| s.len() as u32).unwrap_or(0);
            // llama-bench's own mean and sd of its per-repetition rates (the same definition
            // as tokbench's), exact, including from SQL output, which has no samples.
            let summary = match (r.n_prompt > 0, r.n_gen > 0) {
                (true, false) => Some((Rate::Prefill, r.avg_ts, Some(r.stddev_ts))),
                (false, true) => Some((Rate::Decode, r.avg_ts, Some(r.stddev_ts))),
                _ => None,
            };
            pending.push((build, model, result, expected, summary));
        }
        let cells: Vec<BatchCell> = pending
            .iter()
            .map(|(build, model, result, expected, summary)| BatchCell {
                build,
                model: Some(model),
                model_name: &model.name,
                repetitions_expected: *expected,
                result,
                rate_summary: *summary,
            })
            .collect();
        let added = store
            .insert_batch(run_id, &cells)
            .await
            .context("cannot store the imported results")?
            .len();
        stored_total += added;
        let finished_at = records
            .iter()
            .map(|r| r.test_time.clone())
            .max()
            .unwrap_or_else(|| started_at.clone());
        store
            .finish_run(run_id, RunStatus::Ok, &finished_at)
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
        if undated {
            eprintln!(
                "import {}: the table prints no date and none was given (--date, or `date:` in front matter): dated at the import, {started_at}",
                file.display()
            );
        }
    }
    let t_stored = t0.elapsed();
    let integrity = store
        .integrity_check_up_to(tokbench_store::CLOSING_CHECK_MAX_BYTES)
        .await?;
    store.close().await;
    if let Some(server) = server {
        let merged = server.merge_sqlite(db).await;
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
        "import: {stored_total} results in {:.2} s ({:.0} results/s): read and parse {:.2} s, store {:.2} s, {} {:.2} s",
        t_done.as_secs_f64(),
        stored_total as f64 / t_done.as_secs_f64().max(1e-9),
        t_parsed.as_secs_f64(),
        (t_stored - t_parsed).as_secs_f64(),
        match url {
            Some(_) => "check and merge into the server",
            None => "check",
        },
        (t_done - t_stored).as_secs_f64(),
    );
    Ok(ExitCode::Ok)
}

/// One file, read.
struct Parsed {
    /// The run UUID, from the records.
    uuid: String,
    /// The UUID the file's bytes gave before UUIDs came from the records.
    bytes_uuid: String,
    records: Vec<LlamaBenchRecord>,
    /// The result each record becomes.
    results: Vec<CellResult>,
    /// A Markdown file's front matter (source, date, hardware, host).
    meta: FrontMatter,
    /// A Markdown table with no date given: dated at the import.
    undated: bool,
}

/// Reads and parses every file, several at once (a 10,000-test file takes about 0.1 s to
/// parse and as long again to hash, a fifth of an import's time on two cores): each file's
/// run UUIDs, records and results, in the order given, or the first file's error in that
/// order.
fn read_all<'a>(
    files: &'a [PathBuf],
    date: Option<&str>,
) -> anyhow::Result<Vec<(&'a PathBuf, Parsed)>> {
    let read = |file: &PathBuf| -> Result<Parsed, BadInput> {
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
        // Turned into results here too, so a test tokbench cannot store (an unknown cache
        // type) is refused before the database is opened, like a file that does not parse.
        let results = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.cell_result(i)
                    .map_err(|e| BadInput(format!("{}: {e}", file.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Parsed {
            uuid,
            bytes_uuid,
            records,
            results,
            meta,
            undated,
        })
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<Parsed, BadInput>>> =
        std::iter::repeat_with(|| None).take(files.len()).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(file) = files.get(i) else { break done };
                        done.push((i, read(file)));
                    }
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("a parsing thread panicked") {
                slots[i] = Some(r);
            }
        }
    });
    files
        .iter()
        .zip(slots)
        .map(|(file, slot)| Ok((file, slot.expect("every file was taken by a worker")?)))
        .collect()
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
