//! `tokbench results` and `tokbench query`: rows from the database to a table, CSV or JSON.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokbench_core::{EngineSettings, ResultStatus, RunSelector, Setting, SETTINGS};
use tokbench_store::{QueryOutput, ResultRow, Store, StoreError};

use crate::exit::{BadInput, ExitCode};
use crate::Format;

pub use tokbench_report::text::{csv, markdown, table};

fn fmt_rate(mean: Option<f64>, sd: Option<f64>) -> String {
    match (mean, sd) {
        (Some(m), Some(s)) => format!("{m:.2} ± {s:.2}"),
        (Some(m), None) => format!("{m:.2}"),
        _ => "—".into(),
    }
}

/// Bytes as MiB/GiB with the binary unit named.
pub fn fmt_bytes(b: Option<i64>) -> String {
    match b {
        None => "—".into(),
        Some(b) if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

/// The settings whose value differs between `rows` (threads always: llama-bench shows it
/// too), in [`SETTINGS`] order; the others are the same for every row and go in the
/// heading instead.
fn varying_settings(rows: &[ResultRow]) -> Vec<&'static Setting> {
    let varying = EngineSettings::varying(rows.iter().map(|r| &r.settings));
    SETTINGS
        .iter()
        .filter(|c| c.name == "threads" || varying.iter().any(|v| v.name == c.name))
        .collect()
}

/// "ngl 99, batch 2048, …": the settings every row shares, for the heading.
fn shared_settings(rows: &[ResultRow], varying: &[&Setting]) -> String {
    SETTINGS
        .iter()
        .filter(|c| !varying.iter().any(|v| v.name == c.name))
        .filter_map(|c| (c.value)(&rows[0].settings).map(|v| format!("{} {v}", c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The CV of the figure a row is about (generation speed where the test generates, else
/// prompt speed) when the row was stored noisy: its repetitions scattered past the
/// threshold `check` and `compare` use (5%), so the number is not one to trust alone.
pub fn noisy_cv(r: &ResultRow) -> Option<f64> {
    if r.noisy != Some(true) {
        return None;
    }
    let (mean, sd) = match r.decode_tps {
        Some(m) => (m, r.decode_tps_sd?),
        None => (r.prefill_tps?, r.prefill_tps_sd?),
    };
    Some(sd / mean)
}

/// A CV as a percentage: one decimal near the 5% threshold (`5.2%`), none past 10%.
pub fn fmt_cv(cv: f64) -> String {
    let pct = cv * 100.0;
    if pct < 10.0 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.0}%")
    }
}

/// `1`, `0`, or empty for unknown: a flag in CSV.
fn flag(v: Option<bool>) -> String {
    v.map(|b| u8::from(b).to_string()).unwrap_or_default()
}

/// A row's status as `results` shows it: the error for a failure; for a result, whether it
/// is noisy and whether the machine throttled while it ran.
fn status_text(r: &ResultRow) -> String {
    if let (Some(e), false) = (&r.error, r.status == ResultStatus::Ok) {
        let short: String = e.chars().take(60).collect();
        return format!("{}: {short}", r.status);
    }
    let mut s = r.status.to_string();
    if let Some(cv) = noisy_cv(r) {
        s.push_str(&format!(", noisy (CV {})", fmt_cv(cv)));
    }
    if r.throttled == Some(true) {
        s.push_str(", throttled");
    }
    s
}

/// The table of `tokbench results`: the settings that vary get a column each.
fn results_table(rows: &[ResultRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let varying = varying_settings(rows);
    let mut columns: Vec<String> = ["model", "quant", "test"].map(String::from).to_vec();
    columns.extend(varying.iter().map(|c| c.name.to_string()));
    columns.extend(
        [
            "backend",
            "source",
            "conc",
            "prefill t/s",
            "decode t/s",
            "TTFT ms",
            "TTFT p99",
            "out t/s",
            "peak RSS",
            "reps",
            "status",
        ]
        .map(String::from),
    );
    let dash = || "—".to_string();
    let opt =
        |v: Option<f64>, digits: usize| v.map(|x| format!("{x:.digits$}")).unwrap_or_else(dash);
    let cells = rows
        .iter()
        .map(|r| {
            let status = status_text(r);
            let mut row = vec![
                r.model.clone(),
                r.quant.clone().unwrap_or_else(dash),
                r.test.clone(),
            ];
            row.extend(
                varying
                    .iter()
                    .map(|c| (c.value)(&r.settings).unwrap_or_else(dash)),
            );
            row.extend([
                r.backend.clone(),
                r.metric_source.to_string(),
                r.concurrency.map(|c| c.to_string()).unwrap_or_else(dash),
                fmt_rate(r.prefill_tps, r.prefill_tps_sd),
                fmt_rate(r.decode_tps, r.decode_tps_sd),
                opt(r.ttft_ms, 1),
                opt(r.ttft_p99_ms, 1),
                opt(r.output_tps, 1),
                fmt_bytes(r.rss_peak_bytes),
                r.n_reps.to_string(),
                status,
            ]);
            row
        })
        .collect();
    (columns, cells)
}

/// `tokbench results --format csv`: values, never display text (rates and their standard
/// deviations in separate columns, bytes as bytes, empty for unknown), and every setting.
fn results_csv(rows: &[ResultRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut columns: Vec<String> = [
        "run_uuid",
        "started_at",
        "host",
        "model",
        "quant",
        "test",
        "backend",
        "metric_source",
        "concurrency",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(SETTINGS.iter().map(|c| c.column.to_string()));
    columns.extend(
        [
            "prefill_tps",
            "prefill_tps_sd",
            "decode_tps",
            "decode_tps_sd",
            "ttft_ms",
            "ttft_p99_ms",
            "output_tps",
            "rss_peak_bytes",
            "n_reps",
            "noisy",
            "throttled",
            "throttle_reason",
            "cpu_governor",
            "status",
            "error",
        ]
        .map(String::from),
    );
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let cells = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.run_uuid.clone(),
                r.started_at.clone(),
                r.host.clone(),
                r.model.clone(),
                r.quant.clone().unwrap_or_default(),
                r.test.clone(),
                r.backend.clone(),
                r.metric_source.to_string(),
                r.concurrency.map(|c| c.to_string()).unwrap_or_default(),
            ];
            row.extend(
                SETTINGS
                    .iter()
                    .map(|c| (c.value)(&r.settings).unwrap_or_default()),
            );
            row.extend([
                num(r.prefill_tps),
                num(r.prefill_tps_sd),
                num(r.decode_tps),
                num(r.decode_tps_sd),
                num(r.ttft_ms),
                num(r.ttft_p99_ms),
                num(r.output_tps),
                r.rss_peak_bytes.map(|b| b.to_string()).unwrap_or_default(),
                r.n_reps.to_string(),
                flag(r.noisy),
                flag(r.throttled),
                r.throttle_reason.clone().unwrap_or_default(),
                r.cpu_governor.clone().unwrap_or_default(),
                r.status.to_string(),
                r.error.clone().unwrap_or_default(),
            ]);
            row
        })
        .collect();
    (columns, cells)
}

/// A database a command reads or judges must exist: a typo in `--db` is an error, never a
/// new empty database.
pub fn existing_db(db: &Path) -> Result<(), BadInput> {
    if db.is_dir() {
        return Err(BadInput(format!(
            "{} is a directory, not a results database: give the database file with --db",
            db.display()
        )));
    }
    if !db.exists() {
        return Err(BadInput(format!(
            "no results database at {}: give an existing one with --db (or $TOKBENCH_DB), or create it with `tokbench run`",
            db.display()
        )));
    }
    Ok(())
}

/// The error for a run selector that names no run in `db`.
pub fn no_run(sel: &RunSelector, db: &Path) -> BadInput {
    BadInput(format!(
        "no run `{sel}` in {} (give `latest`, `previous`, `latest~N`, a run UUID or a unique prefix of one, `host:NAME` or `build:VERSION`)",
        db.display()
    ))
}

/// `tokbench results`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ResultsArgs {
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: PathBuf,
    /// The run: `latest` (the default), `previous`, `latest~N`, a UUID or a unique prefix,
    /// `host:NAME` or `build:VERSION`.
    #[arg(long, default_value = "latest")]
    pub run: RunSelector,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `tokbench query`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// The SQL statement.
    pub sql: String,
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: PathBuf,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `tokbench results`: a run's results.
pub async fn results_command(args: &ResultsArgs) -> anyhow::Result<ExitCode> {
    print_results(&args.db, &args.run, args.format).await
}

/// `tokbench query`: one read-only statement.
pub async fn query_command(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    query(&args.db, &args.sql, args.format).await
}

/// Prints the results of the run `run` names (also `tokbench run -o FORMAT`'s output).
pub async fn print_results(
    db: &Path,
    run: &RunSelector,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let store = open_ro(db).await?;
    let Some((uuid, _)) = store.resolve_run(run).await? else {
        if *run == (RunSelector::Newest { skip: 0 }) {
            eprintln!(
                "{} holds no results yet; run `tokbench run` first",
                db.display()
            );
            return Ok(ExitCode::Ok);
        }
        return Err(no_run(run, db).into());
    };
    let rows = store
        .results(Some(&uuid))
        .await
        .context("cannot read results")?;
    store.close().await;
    if rows.is_empty() {
        eprintln!("run {uuid} in {} has no results", db.display());
        return Ok(ExitCode::Ok);
    }
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&rows)?)?,
        Format::Jsonl => {
            for r in &rows {
                outln!("{}", serde_json::to_string(r)?)?;
            }
        }
        Format::Table | Format::Md => {
            let first = &rows[0];
            let (columns, cells) = results_table(&rows);
            let shared = shared_settings(&rows, &varying_settings(&rows));
            let md = format == Format::Md;
            outln!(
                "{}run {} on {} ({}); t/s: mean ± sd over the repetitions{}",
                if md { "**tokbench** " } else { "" },
                first.run_uuid,
                first.host,
                first.started_at,
                if md { "  " } else { "" }
            )?;
            if !shared.is_empty() {
                outln!("every row: {shared}")?;
            }
            if md {
                out!("\n{}", markdown(&columns, &cells))?;
            } else {
                out!("{}", table(&columns, &cells))?;
            }
        }
        Format::Csv => {
            let (columns, cells) = results_csv(&rows);
            out!("{}", csv(&columns, &cells))?;
        }
        Format::Sql => {
            let (columns, cells) = results_csv(&rows);
            out!("{}", sql_inserts("tokbench_results", &columns, &cells))?;
        }
    }
    Ok(ExitCode::Ok)
}

/// `CREATE TABLE IF NOT EXISTS` and one `INSERT` per row, as llama-bench's `-o sql`: a
/// column whose values all read as integers is `INTEGER`, as numbers `REAL`, else `TEXT`
/// (quoted, `'` doubled); an empty value is `NULL`.
fn sql_inserts(table_name: &str, columns: &[String], rows: &[Vec<String>]) -> String {
    let numeric = |v: &str| v.parse::<f64>().is_ok_and(f64::is_finite);
    let kinds: Vec<&str> = (0..columns.len())
        .map(|i| {
            let values = rows.iter().map(|r| r[i].as_str()).filter(|v| !v.is_empty());
            if values.clone().count() == 0 || !values.clone().all(numeric) {
                "TEXT"
            } else if values.clone().all(|v| v.parse::<i64>().is_ok()) {
                "INTEGER"
            } else {
                "REAL"
            }
        })
        .collect();
    let quote_ident = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let mut out = format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n);\n",
        quote_ident(table_name),
        columns
            .iter()
            .zip(&kinds)
            .map(|(c, k)| format!("  {} {k}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(",\n")
    );
    let names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    for r in rows {
        let values: Vec<String> = r
            .iter()
            .zip(&kinds)
            .map(|(v, k)| {
                if v.is_empty() {
                    "NULL".to_string()
                } else if *k != "TEXT" {
                    v.clone()
                } else {
                    format!("'{}'", v.replace('\'', "''"))
                }
            })
            .collect();
        out.push_str(&format!(
            "INSERT INTO {} ({}) VALUES ({});\n",
            quote_ident(table_name),
            names.join(", "),
            values.join(", ")
        ));
    }
    out
}

async fn open_ro(db: &Path) -> anyhow::Result<Store> {
    match Store::open_read_only(db).await {
        Err(e @ StoreError::Missing { .. }) => Err(BadInput(e.to_string()).into()),
        other => Ok(other?),
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn query(db: &Path, sql: &str, format: Format) -> anyhow::Result<ExitCode> {
    let store = open_ro(db).await?;
    let out = match store.query(sql).await {
        Ok(o) => o,
        Err(e @ StoreError::Refused(_)) => return Err(BadInput(e.to_string()).into()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("query on {} failed", db.display())))
        }
    };
    let QueryOutput { columns, rows } = out;
    let object = |r: &Vec<serde_json::Value>| -> serde_json::Map<String, serde_json::Value> {
        columns.iter().cloned().zip(r.iter().cloned()).collect()
    };
    match format {
        Format::Json => {
            let objects: Vec<_> = rows.iter().map(object).collect();
            outln!("{}", serde_json::to_string_pretty(&objects)?)?;
        }
        Format::Jsonl => {
            for r in &rows {
                outln!("{}", serde_json::to_string(&object(r))?)?;
            }
        }
        Format::Table | Format::Md => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().map(value_text).collect())
                .collect();
            if format == Format::Md {
                out!("{}", markdown(&columns, &cells))?;
            } else {
                out!("{}", table(&columns, &cells))?;
            }
            eprintln!("({} rows)", rows.len());
        }
        Format::Csv | Format::Sql => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|v| {
                            if v.is_null() {
                                String::new()
                            } else {
                                value_text(v)
                            }
                        })
                        .collect()
                })
                .collect();
            if format == Format::Sql {
                out!("{}", sql_inserts("query", &columns, &cells))?;
            } else {
                out!("{}", csv(&columns, &cells))?;
            }
        }
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_name_their_binary_unit() {
        assert_eq!(fmt_bytes(Some(3 << 20)), "3.0 MiB");
        assert_eq!(fmt_bytes(Some(3 << 30)), "3.00 GiB");
        assert_eq!(fmt_bytes(None), "—");
    }

    fn row(test: &str, decode: Option<(f64, f64)>, fa: bool) -> ResultRow {
        ResultRow {
            run_uuid: "u".into(),
            started_at: "2026-12-05T00:00:00Z".into(),
            host: "h".into(),
            backend: "engine".into(),
            model: "m".into(),
            quant: Some("Q8_0".into()),
            test: test.into(),
            settings: EngineSettings {
                n_threads: Some(2),
                flash_attn: Some(fa),
                n_ubatch: Some(512),
                ..Default::default()
            },
            status: ResultStatus::Ok,
            error: None,
            prefill_tps: None,
            prefill_tps_sd: None,
            decode_tps: decode.map(|d| d.0),
            decode_tps_sd: decode.map(|d| d.1),
            ttft_ms: None,
            rss_peak_bytes: Some(1 << 20),
            metric_source: tokbench_core::MetricSource::Engine,
            n_reps: 3,
            concurrency: None,
            ttft_p99_ms: None,
            output_tps: None,
            noisy: decode
                .and_then(|d| tokbench_core::record::noisy(None, None, Some(d.0), Some(d.1))),
            throttled: fa.then_some(true),
            throttle_reason: fa.then(|| "cpu: 3 thermal throttle events".into()),
            cpu_governor: Some("performance".into()),
        }
    }

    #[test]
    fn noise_past_the_gate_threshold_is_said_in_the_table_and_csv() {
        let rows = [
            row("tg128", Some((39.24, 44.75)), false),
            row("tg128", Some((400.0, 4.0)), true),
        ];
        assert!(noisy_cv(&rows[0]).is_some_and(|cv| cv > 1.0));
        assert_eq!(noisy_cv(&rows[1]), None);
        let (cols, cells) = results_table(&rows);
        let status = cols.iter().position(|c| c == "status").unwrap();
        assert_eq!(cells[0][status], "ok, noisy (CV 114%)");
        assert_eq!(cells[1][status], "ok, throttled");
        // fa varies: a column; ubatch does not: in the heading.
        assert!(cols.iter().any(|c| c == "fa"));
        assert!(!cols.iter().any(|c| c == "ubatch"));
        assert!(shared_settings(&rows, &varying_settings(&rows)).contains("ubatch 512"));
        let (cols, cells) = results_csv(&rows);
        let noisy = cols.iter().position(|c| c == "noisy").unwrap();
        assert_eq!(
            (cells[0][noisy].as_str(), cells[1][noisy].as_str()),
            ("1", "0")
        );
        let sd = cols.iter().position(|c| c == "decode_tps_sd").unwrap();
        assert_eq!(cells[0][sd], "44.75");
        let throttled = cols.iter().position(|c| c == "throttled").unwrap();
        assert_eq!(
            (cells[0][throttled].as_str(), cells[1][throttled].as_str()),
            ("", "1")
        );
    }
}
