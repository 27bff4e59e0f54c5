//! The report's tables as data ([`Table`]): built once from the rows, rendered to
//! Markdown, CSV and HTML by the same columns, so every format shows the same numbers.
//!
//! This module owns:
//! - the table builders, pure functions of `&[ReportRow]`: [`leaderboard`] (one table per
//!   generation test, models and quantizations as rows), [`quantization`] (one per model
//!   and hardware) and [`picks`] (one per model and quantization);
//! - the renderers: [`markdown`] for tables, [`csv_rows`] and [`json`] for the rows
//!   themselves (every point field and every derived figure);
//! - number formatting ([`fmt_tps`], [`fmt_usd`], …): tok/s with 2 decimals, percentages
//!   with 1, money with thousands separators, "—" ([`UNKNOWN`]) for anything unknown.
//!
//! Output depends only on the set of rows, never on their order: every sort ends in a
//! total order over everything a row shows, and groups live in ordered maps.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use tokbench_core::{
    EngineSettings, ResultPoint, ResultStatus, SeriesKey, ServeLoad, TestSpec, SETTINGS,
};

use crate::metrics::positive;
use crate::{Derived, ReportRow};

/// What a table shows for a figure that is not known (never 0).
pub const UNKNOWN: &str = "—";

/// The budgets of the "best tok/s per $1k up to $X" picks when none are given, US dollars.
pub const DEFAULT_BUDGETS_USD: [f64; 3] = [1500.0, 3000.0, 10000.0];

/// The `schema_version` of [`json`]'s output; raised when a field changes meaning or goes.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// What [`markdown`] writes for no tables at all.
pub const NO_TABLES: &str = "_No results to show: there is no ok result for these tables._\n";

/// Bytes in a GiB.
const GIB: f64 = (1u64 << 30) as f64;

/// One table: a title, column headers and rows of display strings ("—" for unknown).
/// `sort` holds, per row and column, the number the HTML page sorts by (None: text/unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Stable id, used for anchors in HTML (`leaderboard-synth-tiny-q8-0`).
    pub id: String,
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub sort: Vec<Vec<Option<f64>>>,
}

/// One cell while a table is built: its text and its sort key.
struct Cell {
    text: String,
    sort: Option<f64>,
}

impl Cell {
    fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            sort: None,
        }
    }

    /// A number shown as `text`; the sort key is the number when it is finite.
    fn num(text: String, value: Option<f64>) -> Cell {
        Cell {
            text,
            sort: value.filter(|v| v.is_finite()),
        }
    }
}

impl Table {
    fn build(id: String, title: String, columns: &[&str], cells: Vec<Vec<Cell>>) -> Table {
        let mut rows = Vec::with_capacity(cells.len());
        let mut sort = Vec::with_capacity(cells.len());
        for row in cells {
            let (texts, keys): (Vec<String>, Vec<Option<f64>>) =
                row.into_iter().map(|c| (c.text, c.sort)).unzip();
            rows.push(texts);
            sort.push(keys);
        }
        Table {
            id,
            title,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
            sort,
        }
    }
}

mod builders;
mod export;

pub use builders::*;
pub use export::*;

// ---------------------------------------------------------------------------------------
// Ordering and labels

/// Returns true if and only if the result was measured (status `ok`).
fn is_ok(row: &ReportRow) -> bool {
    row.point.status == ResultStatus::Ok
}

/// Tests in reading order: shallow before deep, prefill-only before generation (as
/// llama-bench prints them), then by prompt and generation length.
fn test_order(p: &ResultPoint) -> (u32, bool, u32, u32, &str) {
    (
        p.series.test.n_depth,
        p.series.test.n_gen > 0,
        p.series.test.n_prompt,
        p.series.test.n_gen,
        p.test.as_str(),
    )
}

/// Fastest generation first, unknown speeds last, then [`tiebreak`].
fn by_speed(a: &ReportRow, b: &ReportRow) -> Ordering {
    match (positive(a.point.decode_tps), positive(b.point.decode_tps)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| tiebreak(a, b))
}

/// A total order: hardware name, then the setup, then the run, then everything else the
/// row holds (its CSV line), so that no two rows that show differently compare equal.
fn tiebreak(a: &ReportRow, b: &ReportRow) -> Ordering {
    let (p, q) = (&a.point, &b.point);
    p.hardware
        .name
        .cmp(&q.hardware.name)
        .then_with(|| p.host.cmp(&q.host))
        .then_with(|| p.series.backend_label().cmp(&q.series.backend_label()))
        .then_with(|| p.series.backend.accel.cmp(&q.series.backend.accel))
        .then_with(|| p.started_at.cmp(&q.started_at))
        .then_with(|| p.run_uuid.cmp(&q.run_uuid))
        .then_with(|| canonical(a).cmp(&canonical(b)))
}

/// The row's CSV line: everything it holds, as text.
fn canonical(row: &ReportRow) -> String {
    csv_line(&fields(row))
}

/// What can tell two results in one table apart, in the order a reader looks for it: the
/// backend and where it ran, then the engine settings people change most (each as
/// [`SETTINGS`] describes it: `fa 1`, `type_k q8_0`), then where the result came from.
const VARIANTS: [Variant; 20] = [
    Variant::Of(|p| p.series.backend_label()),
    Variant::Of(|p| p.series.backend.accel.clone()),
    Variant::Of(|p| format!("host {}", p.host)),
    Variant::Setting("fa"),
    Variant::Setting("type_k"),
    Variant::Setting("type_v"),
    Variant::Setting("ngl"),
    Variant::Setting("threads"),
    Variant::Setting("batch"),
    Variant::Setting("ubatch"),
    Variant::Setting("mmap"),
    Variant::Setting("ot"),
    Variant::Setting("n_cpu_moe"),
    Variant::Setting("sm"),
    Variant::Setting("ts"),
    Variant::Setting("mg"),
    Variant::Of(|p| match &p.series.model.sha256 {
        Some(sha) => format!("file {}", sha.chars().take(8).collect::<String>()),
        None => "file unknown".into(),
    }),
    Variant::Of(|p| p.backend_version.clone()),
    Variant::Of(|p| p.started_at.clone()),
    Variant::Of(|p| format!("run {}", p.run_uuid.chars().take(8).collect::<String>())),
];

/// One thing that can tell two results apart.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Of(fn(&ResultPoint) -> String),
    /// An engine setting, by its [`SETTINGS`] name.
    Setting(&'static str),
}

impl Variant {
    fn describe(self, p: &ResultPoint) -> String {
        match self {
            Variant::Of(f) => f(p),
            Variant::Setting(name) => SETTINGS
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.describe(&p.series.settings))
                .unwrap_or_default(),
        }
    }
}

/// A label per row: `shown` of the row, followed, when another row has the same `key`, by
/// what tells it apart (`GeForce RTX 4090 (llama-bench)`): the [`VARIANTS`] in order, each
/// one that differs from a row not yet told apart, until none is left; a number when
/// nothing differs.
fn distinct_labels(
    rows: &[&ReportRow],
    key: impl Fn(&ResultPoint) -> String,
    shown: impl Fn(&ResultPoint) -> String,
) -> Vec<String> {
    let bases: Vec<String> = rows.iter().map(|r| key(&r.point)).collect();
    (0..rows.len())
        .map(|i| {
            let same: Vec<usize> = (0..rows.len()).filter(|&j| bases[j] == bases[i]).collect();
            let shown = shown(&rows[i].point);
            if same.len() < 2 {
                return shown;
            }
            let mut alike: Vec<usize> = same.iter().copied().filter(|&j| j != i).collect();
            let mut parts = Vec::new();
            for variant in VARIANTS {
                if alike.is_empty() {
                    break;
                }
                let describe = |p| variant.describe(p);
                let mine = describe(&rows[i].point);
                if alike.iter().any(|&j| describe(&rows[j].point) != mine) {
                    alike.retain(|&j| describe(&rows[j].point) == mine);
                    parts.push(mine);
                }
            }
            if !alike.is_empty() {
                let n = same.iter().position(|&j| j == i).unwrap_or(0) + 1;
                parts.push(format!("#{n}"));
            }
            format!("{shown} ({})", parts.join(", "))
        })
        .collect()
}

/// `synth:tiny` → `synth-tiny`, `Q8_0` → `q8-0`: lowercase ASCII letters and digits, runs of
/// anything else as one `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// Makes table ids unique in order: a repeated id gets `-2`, `-3`, ….
fn unique_ids(tables: &mut [Table]) {
    let mut seen = BTreeSet::new();
    for t in tables {
        let mut id = t.id.clone();
        let mut n = 2;
        while !seen.insert(id.clone()) {
            id = format!("{}-{n}", t.id);
            n += 1;
        }
        t.id = id;
    }
}

// ---------------------------------------------------------------------------------------
// Markdown

/// Each table as `## title`, a blank line and a GitHub pipe table, tables separated by a
/// blank line. Pipes in cells are escaped (`\|`); line breaks in cells and titles become
/// spaces.
/// No tables give [`NO_TABLES`]; a table without rows says so under its title.
pub fn markdown(tables: &[Table]) -> String {
    if tables.is_empty() {
        return NO_TABLES.to_string();
    }
    let mut out = String::new();
    for (n, t) in tables.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str("## ");
        out.push_str(&one_line(&t.title));
        out.push_str("\n\n");
        if t.rows.is_empty() {
            out.push_str("_No rows._\n");
            continue;
        }
        out.push_str(&md_row(&t.columns));
        out.push('|');
        for _ in &t.columns {
            out.push_str("---|");
        }
        out.push('\n');
        for row in &t.rows {
            out.push_str(&md_row(row));
        }
    }
    out
}

/// `| a | b |` and a newline: cells on one line, pipes escaped.
pub(crate) fn md_row(cells: &[String]) -> String {
    let mut line = String::from("|");
    for c in cells {
        line.push(' ');
        line.push_str(&one_line(c).replace('|', "\\|"));
        line.push_str(" |");
    }
    line.push('\n');
    line
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ").trim().to_string()
}

// ---------------------------------------------------------------------------------------
// Number formatting

/// `x` with `decimals` decimals, or "—" unless `x` is a positive finite number.
pub fn fmt_fixed(x: Option<f64>, decimals: usize) -> String {
    match positive(x) {
        Some(v) => format!("{v:.decimals$}"),
        None => UNKNOWN.to_string(),
    }
}

/// A speed in tok/s (or tok/s per $1k, per 100 W): 2 decimals (`62.54`).
pub fn fmt_tps(x: Option<f64>) -> String {
    fmt_fixed(x, 2)
}

/// A speed with its standard deviation when known: `100.00 ± 1.23`, else `100.00`.
pub fn fmt_tps_sd(mean: Option<f64>, sd: Option<f64>) -> String {
    let m = fmt_tps(mean);
    match sd.filter(|s| s.is_finite() && *s >= 0.0) {
        Some(s) if positive(mean).is_some() => format!("{m} ± {s:.2}"),
        _ => m,
    }
}

/// A fraction as a percentage with 1 decimal, no sign: 0.7945 → `79.4`.
pub fn fmt_percent(fraction: Option<f64>) -> String {
    fmt_fixed(positive(fraction).map(|f| f * 100.0), 1)
}

/// Milliseconds with 1 decimal.
pub fn fmt_ms(x: Option<f64>) -> String {
    fmt_fixed(x, 1)
}

/// Measured watts with 1 decimal.
pub fn fmt_watts(x: Option<f64>) -> String {
    fmt_fixed(x, 1)
}

/// Tokens per joule with 3 decimals (a CPU makes well under one).
pub fn fmt_tokens_per_joule(x: Option<f64>) -> String {
    fmt_fixed(x, 3)
}

/// A ratio with 2 decimals and a times sign: `1.42×`.
pub fn fmt_ratio(x: Option<f64>) -> String {
    match positive(x) {
        Some(v) => format!("{v:.2}×"),
        None => UNKNOWN.to_string(),
    }
}

/// A catalog figure (GiB, TDP watts): whole numbers without decimals (`24`, `450`),
/// others with 1 (`15.9`).
pub fn fmt_trimmed(x: Option<f64>) -> String {
    match positive(x) {
        Some(v) if (v - v.round()).abs() < 0.05 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => UNKNOWN.to_string(),
    }
}

/// US dollars with thousands separators: `$1,599`, or `$1,599.99` when there are cents.
pub fn fmt_usd(x: Option<f64>) -> String {
    let Some(v) = positive(x) else {
        return UNKNOWN.to_string();
    };
    let text = format!("{v:.2}");
    let (whole, cents) = text.split_once('.').unwrap_or((text.as_str(), "00"));
    if cents == "00" {
        format!("${}", group_thousands(whole))
    } else {
        format!("${}.{cents}", group_thousands(whole))
    }
}

/// `1234567` → `1,234,567` (a string of digits).
pub fn group_thousands(digits: &str) -> String {
    let n = digits.chars().count();
    let mut out = String::with_capacity(n + n / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
