//! `tokbench report`: the database to `reports/` — Markdown tables, CSV, versioned JSON,
//! SVG and PNG plots and one self-contained HTML page. The store reads the ok results, the
//! catalog names their hardware, `tokbench_report` derives and renders; this module wires
//! them and writes the files (each through a temporary file and a rename, so a reader never
//! sees half a report file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use tokbench_core::catalog::Catalog;
use tokbench_core::{HardwareRef, ResultPoint};
use tokbench_report::{NewestPerSeries, ReportOptions};
use tokbench_store::{PointFilter, Store, StoredPoint};

use crate::exit::{BadInput, ExitCode};

/// `tokbench report`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: PathBuf,
    /// The output directory (created; files in it are replaced).
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Only these models (repeatable), e.g. synth:tiny.
    #[arg(long)]
    pub model: Vec<String>,
    /// Only these quantizations (repeatable).
    #[arg(long)]
    pub quant: Vec<String>,
    /// Only these backends (repeatable): engine, llama-bench, …
    #[arg(long)]
    pub backend: Vec<String>,
    /// Only results from these hosts (repeatable, host names).
    #[arg(long)]
    pub host: Vec<String>,
    /// Only runs started on or after this date (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Only runs started before this date.
    #[arg(long)]
    pub until: Option<String>,
    /// Budgets in US dollars for the "best under $X" picks.
    #[arg(long, value_delimiter = ',', default_values_t = [1500.0, 3000.0, 10000.0])]
    pub budget: Vec<f64>,
    /// The hardware catalog (default: bench-configs/hardware.toml, or $TOKBENCH_HARDWARE).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// A report to share: host names and users' paths become the anonymous ids `merge
    /// --redact` gives them with the same key.
    #[arg(long)]
    pub redact: bool,
    /// The secret the ids come from (see `merge --redact-key`).
    #[arg(long, requires = "redact")]
    pub redact_key: Option<PathBuf>,
}

impl ReportArgs {
    fn filter(&self) -> PointFilter {
        PointFilter {
            models: self.model.clone(),
            quants: self.quant.clone(),
            backends: self.backend.clone(),
            hosts: self.host.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

pub async fn report_command(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let filter = args.filter();
    for d in [&filter.since, &filter.until].into_iter().flatten() {
        if !is_date_prefix(d) {
            return Err(BadInput(format!(
                "`{d}` is not a date: give YYYY-MM-DD or an RFC 3339 time (2026-11-29T12:00:00Z)"
            ))
            .into());
        }
    }
    if let Some(b) = args.budget.iter().find(|b| !(b.is_finite() && **b > 0.0)) {
        return Err(BadInput(format!(
            "--budget {b}: a budget is a positive number of US dollars"
        ))
        .into());
    }
    let catalog = crate::hardware::load_catalog(args.catalog.as_deref())?;
    let local = crate::snapshot::local(&args.db, "report").await?;
    let store = Store::open_read_only(local.path())
        .await
        .map_err(|e| BadInput(e.to_string()))?;
    // Reduced to the newest result per series: first by the database, which hands over
    // only each (series, build)'s newest, then here as those are read. Memory and time
    // follow the number of series and builds, not of results.
    let mut newest = NewestPerSeries::default();
    let mut memo = HashMap::new();
    let mut redactor = match args.redact {
        true => Some(tokbench_store::Redactor::new(
            &crate::merge::redact_key(args.redact_key.as_deref())?.0,
        )),
        false => None,
    };
    let n_results = store
        .newest_points_each(&filter, |s| {
            let hostname = s.host.hostname.clone();
            let mut p = name_hardware(&catalog, &mut memo, s);
            if let Some(r) = redactor.as_mut() {
                r.learn_hosts([hostname.as_str()]);
                p.host = r.id("host", &p.host);
                // An unmatched part is named after the host or its devices; a catalog
                // name is public.
                if p.hardware.config.is_none() {
                    p.hardware.name = r.text(&p.hardware.name);
                }
                p.source = p.source.map(|t| r.text(&t));
                // An imported model is named and identified by the path llama-bench was
                // given (`-m /home/…`).
                p.series.model.name = r.text(&p.series.model.name);
                p.series.model.sha256 = p.series.model.sha256.map(|t| r.text(&t));
            }
            newest.offer(p)
        })
        .await
        .context("cannot read results")?;
    newest.count_unoffered((n_results as usize).saturating_sub(newest.seen()));
    if newest.seen() == 0 && filter != PointFilter::default() {
        store.close().await;
        return Err(BadInput(format!(
            "no result in {} matches the filters (--model, --quant, --backend, --host, --since, --until); nothing written. What is there: tokbench query \"SELECT DISTINCT model, quant, backend, host FROM v_results\"",
            local.shown()
        ))
        .into());
    }
    let (fit_rows, _) = crate::fit::validations(&store).await?;
    store.close().await;
    let t_read = t0.elapsed();
    let n = newest.seen();
    let t1 = Instant::now();
    // The guide sets generation results beside its ceilings (few: the rest is catalog and
    // architecture arithmetic).
    let generating: Vec<tokbench_core::ResultPoint> = newest
        .points()
        .filter(|p| tokbench_report::guide::relevant(p))
        .cloned()
        .collect();
    let guide = tokbench_report::guide::guide(&catalog, &generating);
    let files = tokbench_report::generate_newest(
        newest,
        &ReportOptions {
            budgets_usd: args.budget.clone(),
            source: match &redactor {
                Some(r) => r.text(local.shown()),
                None => local.shown().to_string(),
            },
            extra_tables: guide.tables,
        },
    )
    .context("cannot draw the plots")?;
    let mut files = files;
    files.push(tokbench_report::ReportFile {
        path: "fit.md".into(),
        bytes: fit_markdown(&fit_rows).into_bytes(),
    });
    files.push(tokbench_report::ReportFile {
        path: "guide.md".into(),
        bytes: guide.markdown.into_bytes(),
    });
    let t_render = t1.elapsed();
    let t2 = Instant::now();
    for f in &files {
        write_atomically(&args.out.join(&f.path), &f.bytes)?;
    }
    remove_stale_plots(&args.out.join("plots"), &files)?;
    eprintln!(
        "report: {n} results → {} files in {} ({:.2} s: read {:.2} s, derive and render {:.2} s, write {:.2} s)",
        files.len(),
        args.out.display(),
        t0.elapsed().as_secs_f64(),
        t_read.as_secs_f64(),
        t_render.as_secs_f64(),
        t2.elapsed().as_secs_f64(),
    );
    if n == 0 {
        eprintln!("note: no ok results matched; the report says so");
    }
    Ok(ExitCode::Ok)
}

/// `fit.md`: the memory calculator against the newest run's measurements.
fn fit_markdown(rows: &[tokbench_report::fit::Validation]) -> String {
    let mut text = String::from(
        "# Does it fit? The memory calculator against measurement\n\nThe newest run in the database: for each ok result, `tokbench fit`'s prediction beside what llama.cpp reported allocating and the engine's peak RSS (`tokbench fit --db` prints the same).\n\n",
    );
    if rows.is_empty() {
        text.push_str("_No ok result of the newest run has a recorded memory peak to compare._\n");
    } else {
        let units = tokbench_report::fit::units_for(rows);
        text.push_str(&tokbench_report::fit::render_validations(
            rows,
            tokbench_report::fit::Style::Markdown,
            units,
        ));
    }
    text
}

/// Names each result's hardware: the run's recorded name resolved in the catalog (a name
/// the catalog no longer has keeps its name, with unknown figures), else the host's
/// detected devices matched now (the catalog may have grown since the run), else the
/// detected GPU or CPU name as it is.
fn name_hardware(catalog: &Catalog, memo: &mut HardwareMemo, s: StoredPoint) -> ResultPoint {
    let key = (
        s.run_hardware.clone(),
        s.host.identity(),
        s.point.series.backend.accel.clone(),
    );
    let hw = memo
        .entry(key)
        .or_insert_with(|| hardware_ref(catalog, &s))
        .clone();
    ResultPoint {
        hardware: hw,
        ..s.point
    }
}

/// Each (run hardware, host identity, accelerator)'s match, made once.
type HardwareMemo = HashMap<(Option<String>, String, String), HardwareRef>;

fn hardware_ref(catalog: &Catalog, s: &StoredPoint) -> HardwareRef {
    if let Some(name) = &s.run_hardware {
        return match catalog.resolve(name) {
            Ok(cfg) => HardwareRef::matched(cfg),
            Err(_) => HardwareRef::unmatched(name.clone()),
        };
    }
    if let Some(cfg) =
        crate::hardware::detected_hardware(catalog, &s.host, &s.point.series.backend.accel)
    {
        return HardwareRef::matched(cfg);
    }
    let gpu = s
        .host
        .gpus
        .first()
        .filter(|_| s.point.series.backend.accel != "cpu");
    match gpu {
        Some(g) => HardwareRef::unmatched(g.clone()),
        None if s.host.cpu_model.is_empty() => {
            HardwareRef::unmatched(format!("{} (CPU)", s.host.hostname))
        }
        None => HardwareRef::unmatched(format!("{} (CPU)", s.host.cpu_model)),
    }
}

/// `YYYY-MM-DD` optionally followed by a time: what compares correctly with RFC 3339.
fn is_date_prefix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Plots an earlier report drew that this one does not (a hardware or test no longer in
/// the results): removed, so `plots/` holds exactly this report's. Only `.svg` and `.png`
/// files are touched.
fn remove_stale_plots(dir: &Path, files: &[tokbench_report::ReportFile]) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let path = e.path();
        let ours = path.extension().is_some_and(|x| x == "svg" || x == "png");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if ours && !files.iter().any(|f| f.path == format!("plots/{name}")) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove the stale plot {}", path.display()))?;
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("report"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_be_dates() {
        assert!(is_date_prefix("2026-11-29"));
        assert!(is_date_prefix("2026-11-29T12:00:00Z"));
        assert!(!is_date_prefix("yesterday"));
        assert!(!is_date_prefix("2026/11/29"));
        assert!(!is_date_prefix("2026-11"));
    }
}
