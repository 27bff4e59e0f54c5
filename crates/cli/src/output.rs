//! `tokbench results` and `tokbench query`: rows from the database to a table, CSV or JSON.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::ops::ControlFlow;
use tokbench_core::{EngineSettings, ResultStatus, RunSelector, Setting, SETTINGS};

use tokbench_store::{blob_literal, Cell, QueryEvent, ResultRow, Store, StoreError};

use crate::exit::{BadInput, ExitCode};
use crate::Format;

pub use tokbench_report::text::{csv, csv_field, markdown, table, TableLayout};

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

/// A setting's value as the table shows it: `auto` where the tool chose at run time, `None`
/// where the source did not say.
fn setting_text(r: &ResultRow, c: &Setting) -> Option<String> {
    (c.value)(&r.settings).or_else(|| {
        let auto = r.params_auto.as_deref().unwrap_or("");
        auto.split(',')
            .any(|a| a == c.column)
            .then(|| "auto".into())
    })
}

/// "ngl 99, batch 2048, …": the settings every row shares, for the heading.
fn shared_settings(rows: &[ResultRow], varying: &[&Setting]) -> String {
    SETTINGS
        .iter()
        .filter(|c| !varying.iter().any(|v| v.name == c.name))
        .filter_map(|c| setting_text(&rows[0], c).map(|v| format!("{} {v}", c.name)))
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
            "metric",
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
    // Imported rows say where their numbers came from.
    let sourced = rows.iter().any(|r| r.source.is_some());
    if sourced {
        columns.push("from".into());
    }
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
                    .map(|c| setting_text(r, c).unwrap_or_else(dash)),
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
            if sourced {
                row.push(r.source.clone().unwrap_or_else(dash));
            }
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
            "params_auto",
            "source",
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
                r.params_auto.clone().unwrap_or_default(),
                r.source.clone().unwrap_or_default(),
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
pub fn no_run(sel: &RunSelector, db: impl std::fmt::Display) -> BadInput {
    BadInput(format!(
        "no run `{sel}` in {db} (give `latest`, `previous`, `latest~N`, a run UUID or a unique prefix of one, `host:NAME` or `build:VERSION`)"
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
    /// Stop the statement after this many seconds (on PostgreSQL the server's own
    /// statement_timeout, for this statement only); the rows printed by then stay printed.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<std::time::Duration>,
}

/// A positive number of seconds, as `30`, `2.5` or `30s`.
fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let n = s.strip_suffix('s').unwrap_or(s);
    match n.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x < 1e9 => Ok(std::time::Duration::from_secs_f64(x)),
        _ => Err(format!(
            "`{s}` is not a number of seconds (more than 0, as `30`, `2.5` or `30s`)"
        )),
    }
}

/// `tokbench results`: a run's results.
pub async fn results_command(args: &ResultsArgs) -> anyhow::Result<ExitCode> {
    let local = crate::snapshot::local(&args.db, "results").await?;
    print_results_in(local.path(), local.shown(), &args.run, args.format).await
}

/// `tokbench query`: one read-only statement.
pub async fn query_command(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    query(&args.db, &args.sql, args.format, args.timeout).await
}

/// Prints the results of the run `run` names (also `tokbench run -o FORMAT`'s output).
pub async fn print_results(
    db: &Path,
    run: &RunSelector,
    format: Format,
) -> anyhow::Result<ExitCode> {
    print_results_in(db, &db.display().to_string(), run, format).await
}

/// [`print_results`] from the SQLite file `db`, which messages call `shown` (a server's
/// snapshot is named after the server).
async fn print_results_in(
    db: &Path,
    shown: &str,
    run: &RunSelector,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let store = open_ro(db).await?;
    let Some((uuid, _)) = store.resolve_run(run).await? else {
        if *run == (RunSelector::Newest { skip: 0 }) {
            eprintln!("{shown} holds no results yet; run `tokbench run` first");
            return Ok(ExitCode::Ok);
        }
        return Err(no_run(run, shown).into());
    };
    // `latest` and `previous` name a command: every run it started (one per remote
    // target), each a table of its own.
    let runs = match run {
        RunSelector::Newest { .. } => store.invocation_runs(&uuid).await?,
        _ => vec![uuid.clone()],
    };
    let mut groups = Vec::new();
    for u in &runs {
        let rows = store
            .results(Some(u))
            .await
            .context("cannot read results")?;
        if !rows.is_empty() {
            groups.push(rows);
        }
    }
    store.close().await;
    if groups.is_empty() {
        eprintln!("run {uuid} in {shown} has no results");
        return Ok(ExitCode::Ok);
    }
    if matches!(format, Format::Table | Format::Md) {
        for (i, rows) in groups.iter().enumerate() {
            if i > 0 {
                outln!()?;
            }
            print_rows(rows, format)?;
        }
        return Ok(ExitCode::Ok);
    }
    print_rows(&groups.concat(), format)
}

/// Prints one run's rows (or, but for a table, several runs' rows) in `format`.
fn print_rows(rows: &[ResultRow], format: Format) -> anyhow::Result<ExitCode> {
    let rows = rows.to_vec();
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
    let table = SqlTable::new(table_name, columns, rows);
    let mut out = table.create();
    for r in rows {
        out.push_str(&table.insert(r));
    }
    out
}

/// An SQL table for text rows: each column's type from the rows it was made from (all of
/// them, or the first window of a stream). A later value that is not a number is quoted in
/// any column, so no value is lost or changed.
#[derive(Debug)]
struct SqlTable {
    name: String,
    columns: Vec<String>,
    kinds: Vec<&'static str>,
}

fn is_number(v: &str) -> bool {
    v.parse::<f64>().is_ok_and(f64::is_finite)
}

impl SqlTable {
    fn new(table_name: &str, columns: &[String], rows: &[Vec<String>]) -> Self {
        let kinds = (0..columns.len())
            .map(|i| {
                let values = rows.iter().map(|r| r[i].as_str()).filter(|v| !v.is_empty());
                if values.clone().count() == 0 || !values.clone().all(is_number) {
                    "TEXT"
                } else if values.clone().all(|v| v.parse::<i64>().is_ok()) {
                    "INTEGER"
                } else {
                    "REAL"
                }
            })
            .collect();
        let quote_ident = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
        SqlTable {
            name: quote_ident(table_name),
            columns: columns.iter().map(|c| quote_ident(c)).collect(),
            kinds,
        }
    }

    fn create(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n{}\n);\n",
            self.name,
            self.columns
                .iter()
                .zip(&self.kinds)
                .map(|(c, k)| format!("  {c} {k}"))
                .collect::<Vec<_>>()
                .join(",\n")
        )
    }

    fn insert(&self, row: &[String]) -> String {
        let values: Vec<String> = row
            .iter()
            .zip(&self.kinds)
            .map(|(v, k)| {
                if v.is_empty() {
                    "NULL".to_string()
                } else if *k != "TEXT" && is_number(v) {
                    v.clone()
                } else {
                    format!("'{}'", v.replace('\'', "''"))
                }
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({});\n",
            self.name,
            self.columns.join(", "),
            values.join(", ")
        )
    }
}

/// A `--db` as messages show it: a PostgreSQL URL without its password.
pub fn display_db(db: &Path) -> String {
    let shown = db.display().to_string();
    match tokbench_store::is_postgres_url(&shown) {
        true => tokbench_store::redacted_url(&shown),
        false => shown,
    }
}

async fn open_ro(db: &Path) -> anyhow::Result<Store> {
    match Store::open_read_only(db).await {
        Err(e @ StoreError::Missing { .. }) => Err(BadInput(e.to_string()).into()),
        other => Ok(other?),
    }
}

/// Rows a table or SQL output lays out from before it streams the rest: enough to set
/// widths and types from, few enough that memory stays flat.
const WINDOW: usize = 1000;

/// A cell as the table and Markdown print it (`NULL` for null).
fn cell_text(c: &Cell<'_>) -> String {
    match c {
        Cell::Null => "NULL".into(),
        Cell::Int(i) => i.to_string(),
        Cell::Real(f) => {
            serde_json::Number::from_f64(*f).map_or_else(|| f.to_string(), |n| n.to_string())
        }
        Cell::Text(s) => (*s).to_string(),
        Cell::Blob(b) => blob_literal(b),
    }
}

/// A cell as CSV and SQL print it (empty for null).
fn cell_value(c: &Cell<'_>) -> String {
    match c {
        Cell::Null => String::new(),
        other => cell_text(other),
    }
}

/// `query`'s output as it streams: each format writes its header on the columns, each row
/// as it comes, and its end; the table and SQL formats hold the first [`WINDOW`] rows to
/// lay out from, the others nothing.
#[derive(Debug)]
struct QuerySink {
    format: Format,
    columns: Vec<String>,
    /// `"name":` for each column, JSON-escaped once.
    keys: Vec<String>,
    window: Vec<Vec<String>>,
    table: Option<TableLayout>,
    sql: Option<SqlTable>,
    rows: u64,
    /// The row being written, reused.
    line: Vec<u8>,
}

impl QuerySink {
    fn new(format: Format) -> Self {
        QuerySink {
            format,
            columns: Vec::new(),
            keys: Vec::new(),
            window: Vec::new(),
            table: None,
            sql: None,
            rows: 0,
            line: Vec::new(),
        }
    }

    fn columns(
        &mut self,
        columns: &[String],
        out: &mut StdoutBuf<impl std::io::Write>,
    ) -> anyhow::Result<()> {
        self.columns = columns.to_vec();
        self.keys = columns
            .iter()
            .map(|c| format!("{}:", serde_json::Value::from(c.as_str())))
            .collect();
        match self.format {
            Format::Csv => out.put(&format!("{}\n", csv_line(columns))),
            Format::Md => out.put(&markdown(columns, &[])),
            Format::Json => out.put("["),
            _ => Ok(()),
        }
    }

    fn row(
        &mut self,
        cells: &[Cell<'_>],
        out: &mut StdoutBuf<impl std::io::Write>,
    ) -> anyhow::Result<()> {
        self.rows += 1;
        self.line.clear();
        match self.format {
            Format::Json | Format::Jsonl => {
                if self.format == Format::Json {
                    self.line
                        .extend_from_slice(if self.rows == 1 { b"\n" } else { b",\n" });
                }
                self.line.push(b'{');
                for (i, (k, c)) in self.keys.iter().zip(cells).enumerate() {
                    if i > 0 {
                        self.line.push(b',');
                    }
                    self.line.extend_from_slice(k.as_bytes());
                    push_json(&mut self.line, c);
                }
                self.line.push(b'}');
                if self.format == Format::Jsonl {
                    self.line.push(b'\n');
                }
                out.put_bytes(&self.line)
            }
            Format::Csv => {
                for (i, c) in cells.iter().enumerate() {
                    if i > 0 {
                        self.line.push(b',');
                    }
                    match c {
                        Cell::Null => {}
                        Cell::Text(t) => self.line.extend_from_slice(csv_field(t).as_bytes()),
                        other => push_plain(&mut self.line, other),
                    }
                }
                self.line.push(b'\n');
                out.put_bytes(&self.line)
            }
            Format::Md => {
                self.line.extend_from_slice(b"|");
                for c in cells {
                    self.line.push(b' ');
                    match c {
                        Cell::Text(t) => {
                            let escaped = t.replace('|', "\\|").replace(['\r', '\n'], " ");
                            self.line.extend_from_slice(escaped.as_bytes());
                        }
                        Cell::Null => self.line.extend_from_slice(b"NULL"),
                        other => push_plain(&mut self.line, other),
                    }
                    self.line.extend_from_slice(b" |");
                }
                self.line.push(b'\n');
                out.put_bytes(&self.line)
            }
            Format::Table | Format::Sql => {
                let values: Vec<String> = if self.format == Format::Table {
                    cells.iter().map(cell_text).collect()
                } else {
                    cells.iter().map(cell_value).collect()
                };
                if self.table.is_none() && self.sql.is_none() {
                    self.window.push(values);
                    if self.window.len() >= WINDOW {
                        self.lay_out(out)?;
                    }
                    return Ok(());
                }
                self.write_row(&values, out)
            }
        }
    }

    /// Sets the table's widths or the SQL types from the window and writes the window.
    fn lay_out(&mut self, out: &mut StdoutBuf<impl std::io::Write>) -> anyhow::Result<()> {
        if self.format == Format::Table {
            let layout = TableLayout::new(&self.columns, &self.window);
            out.put(&layout.header_of(&self.columns))?;
            self.table = Some(layout);
        } else {
            let table = SqlTable::new("query", &self.columns, &self.window);
            out.put(&table.create())?;
            self.sql = Some(table);
        }
        for values in std::mem::take(&mut self.window) {
            self.write_row(&values, out)?;
        }
        Ok(())
    }

    fn write_row(
        &mut self,
        values: &[String],
        out: &mut StdoutBuf<impl std::io::Write>,
    ) -> anyhow::Result<()> {
        if let Some(layout) = &self.table {
            let mut line = layout.line(values);
            line.push('\n');
            out.put(&line)
        } else if let Some(table) = &self.sql {
            out.put(&table.insert(values))
        } else {
            Ok(())
        }
    }

    fn finish(&mut self, out: &mut StdoutBuf<impl std::io::Write>) -> anyhow::Result<()> {
        match self.format {
            Format::Table | Format::Sql if self.table.is_none() && self.sql.is_none() => {
                self.lay_out(out)
            }
            Format::Json => out.put(if self.rows == 0 { "]\n" } else { "\n]\n" }),
            _ => Ok(()),
        }
    }
}

/// A number or blob as text: integers as written, reals as JSON writes them (the shortest
/// form that reads back to the same value), blobs as `x'…'`.
fn push_plain(line: &mut Vec<u8>, c: &Cell<'_>) {
    use std::io::Write;
    match c {
        Cell::Int(i) => write!(line, "{i}").expect("a Vec takes every write"),
        Cell::Real(f) => serde_json::to_writer(&mut *line, f).expect("a Vec takes every write"),
        Cell::Blob(b) => line.extend_from_slice(blob_literal(b).as_bytes()),
        Cell::Text(t) => line.extend_from_slice(t.as_bytes()),
        Cell::Null => {}
    }
}

/// A cell as a JSON value: numbers as numbers, text as a string, a blob as its literal.
fn push_json(line: &mut Vec<u8>, c: &Cell<'_>) {
    match c {
        Cell::Null => line.extend_from_slice(b"null"),
        Cell::Int(_) | Cell::Real(_) => push_plain(line, c),
        Cell::Text(t) => serde_json::to_writer(&mut *line, t).expect("a Vec takes every write"),
        Cell::Blob(b) => {
            serde_json::to_writer(&mut *line, &blob_literal(b)).expect("a Vec takes every write")
        }
    }
}

fn csv_line(values: &[String]) -> String {
    values
        .iter()
        .map(|v| csv_field(v))
        .collect::<Vec<_>>()
        .join(",")
}

/// Stdout (or, in tests, any writer) behind a buffer, for output that streams: written in
/// large pieces, a closed pipe is [`crate::exit::StdoutClosed`] as for [`out!`].
struct StdoutBuf<W: std::io::Write = std::io::StdoutLock<'static>> {
    w: std::io::BufWriter<W>,
}

impl<W: std::io::Write> std::fmt::Debug for StdoutBuf<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdoutBuf")
    }
}

impl StdoutBuf {
    fn new() -> Self {
        StdoutBuf::to(std::io::stdout().lock())
    }
}

impl<W: std::io::Write> StdoutBuf<W> {
    fn to(w: W) -> Self {
        StdoutBuf {
            w: std::io::BufWriter::with_capacity(1 << 16, w),
        }
    }

    fn put(&mut self, s: &str) -> anyhow::Result<()> {
        self.put_bytes(s.as_bytes())
    }

    fn put_bytes(&mut self, b: &[u8]) -> anyhow::Result<()> {
        use std::io::Write;
        self.w.write_all(b).map_err(crate::exit::stdout_error)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        use std::io::Write;
        self.w.flush().map_err(crate::exit::stdout_error)
    }
}

async fn query(
    db: &Path,
    sql: &str,
    format: Format,
    limit: Option<std::time::Duration>,
) -> anyhow::Result<ExitCode> {
    let mut out = StdoutBuf::new();
    let mut sink = QuerySink::new(format);
    let mut failure = None;
    let each = |event: QueryEvent<'_>| {
        let written = match event {
            QueryEvent::Columns(c) => sink.columns(c, &mut out),
            QueryEvent::Row(cells) => sink.row(cells, &mut out),
        };
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    };
    let stepped = match db.to_str().filter(|d| tokbench_store::is_postgres_url(d)) {
        Some(url) => {
            let store = match tokbench_store::PgStore::open_read_only(url).await {
                Err(e @ (StoreError::NoSchema { .. } | StoreError::OlderSchema { .. })) => {
                    return Err(BadInput(e.to_string()).into())
                }
                other => other?,
            };
            let stepped = store.query_each_within(sql, limit, each).await;
            store.close().await;
            stepped
        }
        None => {
            let store = open_ro(db).await?;
            let stepped = store.query_each_within(sql, limit, each).await;
            store.close().await;
            stepped
        }
    };
    let db = display_db(db);
    match stepped {
        Err(e @ (StoreError::Refused(_) | StoreError::BadQuery(_))) => {
            return Err(BadInput(e.to_string()).into())
        }
        Err(e) => {
            // What was printed stays printed; the error says where it stopped.
            out.flush().ok();
            return Err(anyhow::Error::new(e).context(format!("query on {db} failed")));
        }
        Ok(()) => {}
    }
    if let Some(e) = failure {
        return Err(e);
    }
    sink.finish(&mut out)?;
    out.flush()?;
    if format == Format::Table {
        eprintln!("({} rows)", sink.rows);
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `query` prints in `format` for these columns and rows.
    fn streamed(format: Format, columns: &[&str], rows: &[Vec<Cell<'_>>]) -> String {
        let mut buf = Vec::new();
        {
            let mut out = StdoutBuf::to(&mut buf);
            let mut sink = QuerySink::new(format);
            let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            sink.columns(&columns, &mut out).unwrap();
            for r in rows {
                sink.row(r, &mut out).unwrap();
            }
            sink.finish(&mut out).unwrap();
            out.flush().unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn query_output_streams_past_the_window_and_loses_nothing() {
        let n = WINDOW + 3;
        // The last row's text is wider than anything in the window, and not a number in a
        // column the window found to be integers.
        let long = "a much longer name than any before";
        let rows: Vec<Vec<Cell<'_>>> = (0..n)
            .map(|i| {
                if i + 1 == n {
                    vec![Cell::Text(long), Cell::Text("n/a")]
                } else {
                    vec![Cell::Text("m"), Cell::Int(i as i64)]
                }
            })
            .collect();
        let table = streamed(Format::Table, &["model", "n"], &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), n + 2, "header, rule and every row");
        assert_eq!(lines[0], "model    n");
        assert_eq!(lines[2], "m        0");
        assert_eq!(lines[n + 1], format!("{long}  n/a"));
        let sql = streamed(Format::Sql, &["model", "n"], &rows);
        assert!(sql.contains("\"n\" INTEGER"), "{sql}");
        assert!(sql.contains("VALUES ('m', 1001);"), "{sql}");
        assert!(
            sql.ends_with(&format!("VALUES ('{long}', 'n/a');\n")),
            "{sql}"
        );
        assert_eq!(sql.matches("INSERT").count(), n);
        let csv = streamed(Format::Csv, &["model", "n"], &rows);
        assert_eq!(csv.lines().count(), n + 1);
        let json: serde_json::Value =
            serde_json::from_str(&streamed(Format::Json, &["model", "n"], &rows)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), n);
        assert_eq!(json[1001], serde_json::json!({"model": "m", "n": 1001}));
        let md = streamed(Format::Md, &["model", "n"], &rows);
        assert_eq!(md.lines().count(), n + 2);
    }

    #[test]
    fn query_output_writes_each_type_in_each_format() {
        let row = vec![
            Cell::Int(-3),
            Cell::Real(0.1),
            Cell::Text("a,\"b\"|c"),
            Cell::Blob(&[0, 255]),
            Cell::Null,
        ];
        let cols = ["i", "r", "t", "b", "n"];
        assert_eq!(
            streamed(Format::Csv, &cols, std::slice::from_ref(&row)),
            "i,r,t,b,n\n-3,0.1,\"a,\"\"b\"\"|c\",x'00ff',\n"
        );
        assert_eq!(
            streamed(Format::Jsonl, &cols, std::slice::from_ref(&row)),
            "{\"i\":-3,\"r\":0.1,\"t\":\"a,\\\"b\\\"|c\",\"b\":\"x'00ff'\",\"n\":null}\n"
        );
        assert_eq!(
            streamed(Format::Md, &cols, std::slice::from_ref(&row)),
            "| i | r | t | b | n |\n|---|---|---|---|---|\n| -3 | 0.1 | a,\"b\"\\|c | x'00ff' | NULL |\n"
        );
        // No rows: the header alone, and JSON's empty array.
        assert_eq!(streamed(Format::Csv, &cols, &[]), "i,r,t,b,n\n");
        assert_eq!(streamed(Format::Json, &cols, &[]), "[]\n");
        assert_eq!(streamed(Format::Table, &["model"], &[]), "model\n-----\n");
    }

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
            params_auto: None,
            source: None,
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
