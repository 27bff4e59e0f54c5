//! `tokbench results` and `tokbench query`: rows from the database to a table, CSV or JSON.

use std::path::Path;

use anyhow::Context;
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

/// The columns of `tokbench results`; [`result_cells`] fills one row of them.
const RESULT_COLUMNS: [&str; 15] = [
    "model",
    "quant",
    "test",
    "threads",
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
];

fn result_cells(r: &ResultRow) -> [String; RESULT_COLUMNS.len()] {
    let ResultRow {
        model,
        quant,
        test,
        n_threads,
        backend,
        status,
        error,
        prefill_tps,
        prefill_tps_sd,
        decode_tps,
        decode_tps_sd,
        ttft_ms,
        rss_peak_bytes,
        metric_source,
        n_reps,
        concurrency,
        ttft_p99_ms,
        output_tps,
        ..
    } = r;
    let opt = |v: Option<f64>, digits: usize| {
        v.map(|x| format!("{x:.digits$}"))
            .unwrap_or_else(|| "—".into())
    };
    let status = match error {
        Some(e) if *status != tokbench_core::ResultStatus::Ok => {
            let short: String = e.chars().take(60).collect();
            format!("{status}: {short}")
        }
        _ => status.to_string(),
    };
    [
        model.clone(),
        quant.clone().unwrap_or_else(|| "—".into()),
        test.clone(),
        n_threads
            .map(|t| t.to_string())
            .unwrap_or_else(|| "—".into()),
        backend.clone(),
        metric_source.to_string(),
        concurrency
            .map(|c| c.to_string())
            .unwrap_or_else(|| "—".into()),
        fmt_rate(*prefill_tps, *prefill_tps_sd),
        fmt_rate(*decode_tps, *decode_tps_sd),
        ttft_ms
            .map(|t| format!("{t:.1}"))
            .unwrap_or_else(|| "—".into()),
        opt(*ttft_p99_ms, 1),
        opt(*output_tps, 1),
        fmt_bytes(*rss_peak_bytes),
        n_reps.to_string(),
        status,
    ]
}

pub async fn results(db: &Path, run: Option<&str>, format: Format) -> anyhow::Result<ExitCode> {
    let store = open_ro(db).await?;
    let rows = store.results(run).await.context("cannot read results")?;
    if rows.is_empty() {
        match run {
            Some(r) => {
                return Err(BadInput(format!("no results for run {r} in {}", db.display())).into())
            }
            None => {
                eprintln!(
                    "{} holds no results yet; run `tokbench run` first",
                    db.display()
                );
                return Ok(ExitCode::Ok);
            }
        }
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table | Format::Csv => {
            let first = &rows[0];
            let columns: Vec<String> = RESULT_COLUMNS.map(String::from).to_vec();
            let cells: Vec<Vec<String>> = rows.iter().map(|r| result_cells(r).to_vec()).collect();
            if matches!(format, Format::Table) {
                println!(
                    "run {} on {} ({}); t/s: mean ± sd over the repetitions",
                    first.run_uuid, first.host, first.started_at
                );
                print!("{}", table(&columns, &cells));
            } else {
                print!("{}", csv(&columns, &cells));
            }
        }
    }
    Ok(ExitCode::Ok)
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

pub async fn query(db: &Path, sql: &str, format: Format) -> anyhow::Result<ExitCode> {
    let store = open_ro(db).await?;
    let out = match store.query(sql).await {
        Ok(o) => o,
        Err(e @ StoreError::Refused(_)) => return Err(BadInput(e.to_string()).into()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("query on {} failed", db.display())))
        }
    };
    let QueryOutput { columns, rows } = out;
    match format {
        Format::Json => {
            let objects: Vec<serde_json::Map<String, serde_json::Value>> = rows
                .iter()
                .map(|r| columns.iter().cloned().zip(r.iter().cloned()).collect())
                .collect();
            println!("{}", serde_json::to_string_pretty(&objects)?);
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().map(value_text).collect())
                .collect();
            print!("{}", table(&columns, &cells));
            eprintln!("({} rows)", rows.len());
        }
        Format::Csv => {
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
            print!("{}", csv(&columns, &cells));
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
}
