//! The report's tables as data ([`Table`]): built once from the rows, rendered to
//! Markdown, CSV and HTML by the same columns, so every format shows the same numbers.
//!
//! This module owns:
//! - the table builders, pure functions of `&[ReportRow]`: [`leaderboard`] (one table per
//!   model, quantization and generation test), [`quantization`] (one per model and
//!   hardware) and [`picks`] (one per model and quantization);
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
use tokbench_core::{EngineSettings, ResultPoint, ResultStatus, SeriesKey, ServeLoad, TestSpec};

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

// ---------------------------------------------------------------------------------------
// Leaderboard

/// The leaderboard columns, in order.
pub const LEADERBOARD_COLUMNS: [&str; 12] = [
    "Hardware",
    "VRAM GiB",
    "MSRP",
    "TDP W",
    "Gen tok/s",
    "tok/s/$1k",
    "tok/s/100W",
    "Prefill tok/s",
    "TTFT ms",
    "Measured W",
    "tok/J",
    "Roofline %",
];

/// The hardware as a row names it: its name, and where the numbers came from when they
/// were imported rather than measured by tokbench (`GeForce RTX 4090 (from lb.json)`).
fn hardware_label(p: &ResultPoint) -> String {
    match &p.source {
        Some(source) => format!("{} (from {source})", p.hardware.name),
        None => p.hardware.name.clone(),
    }
}

/// One table per model, quantization and generation test (`n_gen > 0`), ok results only,
/// fastest generation first (unknown speed last; ties by hardware name).
///
/// - VRAM, MSRP and TDP are the catalog's, for all devices of the configuration; "—" when
///   the hardware is not in the catalog or the figure is not.
/// - Gen tok/s is `mean ± sd` when the standard deviation is known.
/// - Prefill-only tests (`ppN`) have no table of their own: they fill the Prefill tok/s and
///   TTFT ms columns. A test with a prompt (`pp512+tg128`) shows its own prefill and TTFT;
///   a `tgN` test shows those of the `ppN` test with the same hardware, host, backend,
///   accelerator, model, quantization, engine settings and depth (same run first, then
///   the longest prompt, then the newest), or "—" when there is none.
/// - Measured W is the mean power during decode, which tok/J divides by; Roofline % is
///   generation speed × bytes read per token ÷ the catalog's bandwidth ([`crate::metrics`]).
/// - Two results on the same hardware (another backend, cache type, run …) both appear,
///   the hardware name followed by what tells them apart.
pub fn leaderboard(rows: &[ReportRow]) -> Vec<Table> {
    let prefill = PrefillIndex::new(rows);
    let mut groups: BTreeMap<TestGroup, Vec<&ReportRow>> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| is_ok(r) && r.point.series.test.n_gen > 0)
    {
        groups
            .entry(TestGroup::of(&row.point))
            .or_default()
            .push(row);
    }
    let mut tables: Vec<Table> = groups
        .into_iter()
        .map(|(group, mut members)| {
            members.sort_by(|a, b| by_speed(a, b));
            let labels = distinct_labels(&members, hardware_label, hardware_label);
            let cells = members
                .iter()
                .zip(labels)
                .map(|(row, label)| leaderboard_row(row, label, &prefill))
                .collect();
            Table::build(
                format!(
                    "leaderboard-{}-{}-{}",
                    slug(&group.model),
                    slug(&group.quant),
                    slug(&group.test)
                ),
                format!(
                    "Leaderboard: {} {}, {}",
                    group.model, group.quant, group.test
                ),
                &LEADERBOARD_COLUMNS,
                cells,
            )
        })
        .collect();
    unique_ids(&mut tables);
    tables
}

fn leaderboard_row(row: &ReportRow, label: String, prefill: &PrefillIndex) -> Vec<Cell> {
    let p = &row.point;
    let Derived {
        bytes_per_token: _,
        tps_per_1k_usd,
        tps_per_100w_tdp,
        tps_per_100w_measured: _,
        tokens_per_joule,
        roofline_fraction,
    } = row.derived;
    let (prefill_tps, ttft_ms) = prefill_for(row, prefill);
    let memory = p.hardware.memory_bytes().map(|b| b as f64 / GIB);
    let msrp = p.hardware.msrp_usd();
    let tdp = p.hardware.tdp_w();
    vec![
        Cell::text(label),
        Cell::num(fmt_trimmed(memory), positive(memory)),
        Cell::num(fmt_usd(msrp), positive(msrp)),
        Cell::num(fmt_trimmed(tdp), positive(tdp)),
        Cell::num(
            fmt_tps_sd(p.decode_tps, p.decode_tps_sd),
            positive(p.decode_tps),
        ),
        Cell::num(fmt_tps(tps_per_1k_usd), tps_per_1k_usd),
        Cell::num(fmt_tps(tps_per_100w_tdp), tps_per_100w_tdp),
        Cell::num(fmt_tps(prefill_tps), positive(prefill_tps)),
        Cell::num(fmt_ms(ttft_ms), positive(ttft_ms)),
        Cell::num(fmt_watts(p.decode_power_w), positive(p.decode_power_w)),
        Cell::num(fmt_tokens_per_joule(tokens_per_joule), tokens_per_joule),
        Cell::num(
            fmt_percent(roofline_fraction),
            roofline_fraction.map(|f| f * 100.0),
        ),
    ]
}

/// A model, quantization and test: the scope in which results are compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TestGroup {
    model: String,
    quant: String,
    /// Tests in reading order: shallow before deep, then by prompt and generation length.
    n_depth: u32,
    n_prompt: u32,
    n_gen: u32,
    test: String,
}

impl TestGroup {
    fn of(p: &ResultPoint) -> TestGroup {
        TestGroup {
            model: p.series.model.name.clone(),
            quant: p.series.model.quant.clone(),
            n_depth: p.series.test.n_depth,
            n_prompt: p.series.test.n_prompt,
            n_gen: p.series.test.n_gen,
            test: p.test.clone(),
        }
    }
}

/// The ok prefill-only results, by the setup that must match for their prefill figure to
/// stand beside a generation result.
struct PrefillIndex<'a> {
    by_setup: BTreeMap<SeriesKey, Vec<&'a ReportRow>>,
}

impl<'a> PrefillIndex<'a> {
    fn new(rows: &'a [ReportRow]) -> Self {
        let mut by_setup: BTreeMap<SeriesKey, Vec<&ReportRow>> = BTreeMap::new();
        for row in rows
            .iter()
            .filter(|r| is_ok(r) && r.point.series.test.n_gen == 0)
        {
            by_setup
                .entry(prefill_setup_key(&row.point))
                .or_default()
                .push(row);
        }
        Self { by_setup }
    }
}

/// The series apart from the test's sizes (its depth kept).
fn prefill_setup_key(p: &ResultPoint) -> SeriesKey {
    p.series.without_test_size()
}

/// The prefill tok/s and TTFT ms shown beside a generation result:
///
/// - its own, when the test has a prompt (`pp512+tg128`): both phases were measured together;
/// - else those of a prefill-only test (`ppN`) with the same hardware, host, backend,
///   accelerator, model, quantization, engine settings and depth: from the same run if
///   there is one, then the longest prompt (the steadiest throughput), then the newest;
/// - else unknown.
///
/// A `tgN` test's own TTFT is one decode step, not a prompt's wait, so it is not shown.
fn prefill_for(row: &ReportRow, index: &PrefillIndex<'_>) -> (Option<f64>, Option<f64>) {
    let p = &row.point;
    if p.series.test.n_prompt > 0 {
        return (p.prefill_tps, p.ttft_ms);
    }
    let best = index
        .by_setup
        .get(&prefill_setup_key(p))
        .and_then(|candidates| {
            candidates.iter().copied().max_by(|a, b| {
                let same_run = |r: &ReportRow| r.point.run_uuid == p.run_uuid;
                same_run(a)
                    .cmp(&same_run(b))
                    .then(
                        a.point
                            .series
                            .test
                            .n_prompt
                            .cmp(&b.point.series.test.n_prompt),
                    )
                    .then(a.point.started_at.cmp(&b.point.started_at))
                    .then_with(|| canonical(b).cmp(&canonical(a)))
            })
        });
    match best {
        Some(r) => (r.point.prefill_tps, r.point.ttft_ms),
        None => (None, None),
    }
}

// ---------------------------------------------------------------------------------------
// Quantization

/// The quantization table columns, in order.
pub const QUANTIZATION_COLUMNS: [&str; 8] = [
    "Test",
    "Quant",
    "File GiB",
    "Bits/weight",
    "Prefill tok/s",
    "Prefill vs Q8_0",
    "Gen tok/s",
    "Gen vs Q8_0",
];

/// One table per model and hardware, ok results only: per test, each quantization's file
/// size, bits per weight (tensor bytes × 8 ÷ parameters), prefill and generation speed,
/// and each speed relative to the Q8_0 result of the same test on the same hardware and
/// setup (host, backend, accelerator, engine settings; the newest when there are several).
/// "—" when there is no such Q8_0 result.
///
/// Rows go by test (as in [`leaderboard`]), then largest file first. A prefill-only test
/// has "—" for generation and a generation-only test "—" for prefill.
pub fn quantization(rows: &[ReportRow]) -> Vec<Table> {
    let mut groups: BTreeMap<(String, String), Vec<&ReportRow>> = BTreeMap::new();
    for row in rows.iter().filter(|r| is_ok(r)) {
        groups
            .entry((
                row.point.series.model.name.clone(),
                row.point.hardware.name.clone(),
            ))
            .or_default()
            .push(row);
    }
    let mut tables: Vec<Table> = groups
        .into_iter()
        .map(|((model, hardware), mut members)| {
            members.sort_by(|a, b| {
                test_order(&a.point)
                    .cmp(&test_order(&b.point))
                    .then_with(|| {
                        // Largest file first; unknown sizes after the known ones.
                        let size = |r: &ReportRow| r.point.facts.file_bytes;
                        match (size(a), size(b)) {
                            (Some(x), Some(y)) => y.cmp(&x),
                            (Some(_), None) => Ordering::Less,
                            (None, Some(_)) => Ordering::Greater,
                            (None, None) => Ordering::Equal,
                        }
                    })
                    .then_with(|| a.point.series.model.quant.cmp(&b.point.series.model.quant))
                    .then_with(|| tiebreak(a, b))
            });
            let labels = distinct_labels(
                &members,
                |p| format!("{}\u{1f}{}", p.test, p.series.model.quant),
                |p| p.series.model.quant.clone(),
            );
            let cells = members
                .iter()
                .zip(labels)
                .map(|(row, label)| quantization_row(row, label, &members))
                .collect();
            Table::build(
                format!("quantization-{}-{}", slug(&model), slug(&hardware)),
                format!("Quantization: {model} on {hardware}"),
                &QUANTIZATION_COLUMNS,
                cells,
            )
        })
        .collect();
    unique_ids(&mut tables);
    tables
}

fn quantization_row(row: &ReportRow, quant_label: String, scope: &[&ReportRow]) -> Vec<Cell> {
    let p = &row.point;
    let file_gib = p.facts.file_bytes.map(|b| b as f64 / GIB);
    let bpw = bits_per_weight(p);
    let baseline = q8_baseline(row, scope);
    let relative = |speed: fn(&ResultPoint) -> Option<f64>| {
        let base = baseline.and_then(|b| positive(speed(&b.point)))?;
        positive(Some(positive(speed(p))? / base))
    };
    let prefill_rel = relative(|p| p.prefill_tps);
    let gen_rel = relative(|p| p.decode_tps);
    vec![
        Cell::text(p.test.clone()),
        Cell::text(quant_label),
        Cell::num(fmt_fixed(file_gib, 2), positive(file_gib)),
        Cell::num(fmt_fixed(bpw, 2), bpw),
        Cell::num(fmt_tps(p.prefill_tps), positive(p.prefill_tps)),
        Cell::num(fmt_ratio(prefill_rel), prefill_rel),
        Cell::num(
            fmt_tps_sd(p.decode_tps, p.decode_tps_sd),
            positive(p.decode_tps),
        ),
        Cell::num(fmt_ratio(gen_rel), gen_rel),
    ]
}

/// Bits per weight of the model file: tensor bytes × 8 ÷ parameters, when both are known.
pub fn bits_per_weight(p: &ResultPoint) -> Option<f64> {
    let bits = p.facts.tensor_bytes? as f64 * 8.0;
    positive(Some(bits / p.facts.n_params? as f64))
}

/// Returns true if and only if `quant` names Q8_0 (any case).
fn is_q8_0(quant: &str) -> bool {
    quant.trim().eq_ignore_ascii_case("q8_0")
}

/// The Q8_0 result `row` is compared with: same model, hardware, test and setup; the
/// newest when there are several.
fn q8_baseline<'a>(row: &ReportRow, scope: &[&'a ReportRow]) -> Option<&'a ReportRow> {
    let p = &row.point;
    let same_setup =
        |q: &ResultPoint| q.series.same_but_quant(&p.series) && q.hardware.name == p.hardware.name;
    scope
        .iter()
        .copied()
        .filter(|q| is_q8_0(&q.point.series.model.quant) && same_setup(&q.point))
        .max_by(|a, b| {
            a.point
                .started_at
                .cmp(&b.point.started_at)
                .then_with(|| canonical(b).cmp(&canonical(a)))
        })
}

// ---------------------------------------------------------------------------------------
// Picks

/// The picks table columns, in order.
pub const PICKS_COLUMNS: [&str; 8] = [
    "Test",
    "Pick",
    "Hardware",
    "Gen tok/s",
    "Figure",
    "MSRP",
    "TDP W",
    "Measured W",
];

/// One table per model and quantization, ok generation results only; per test, in order:
///
/// 1. the fastest generation;
/// 2. the best tok/s per $1k of MSRP, then the same among hardware whose MSRP is at most
///    each budget (`budgets_usd`, ascending; non-positive or non-finite budgets ignored —
///    [`DEFAULT_BUDGETS_USD`] are the usual ones);
/// 3. the most tokens per joule (measured decode power);
/// 4. the best tok/s per 100 W of TDP.
///
/// Each pick shows the hardware, its generation speed, the figure that earned it and the
/// MSRP, TDP and measured power behind it. When nothing qualifies the Hardware cell says
/// why ("no hardware with a known MSRP up to $1,500"). Ties go to the faster result, then
/// to the hardware name.
pub fn picks(rows: &[ReportRow], budgets_usd: &[f64]) -> Vec<Table> {
    let mut budgets: Vec<f64> = budgets_usd
        .iter()
        .copied()
        .filter(|b| b.is_finite() && *b > 0.0)
        .collect();
    budgets.sort_by(f64::total_cmp);
    budgets.dedup();

    let mut groups: BTreeMap<(String, String), BTreeMap<TestGroup, Vec<&ReportRow>>> =
        BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| is_ok(r) && r.point.series.test.n_gen > 0)
    {
        groups
            .entry((
                row.point.series.model.name.clone(),
                row.point.series.model.quant.clone(),
            ))
            .or_default()
            .entry(TestGroup::of(&row.point))
            .or_default()
            .push(row);
    }
    let mut tables: Vec<Table> = groups
        .into_iter()
        .map(|((model, quant), tests)| {
            let mut cells = Vec::new();
            for (group, mut members) in tests {
                members.sort_by(|a, b| by_speed(a, b));
                let labels = distinct_labels(&members, hardware_label, hardware_label);
                for pick in pick_kinds(&budgets) {
                    cells.push(pick_row(&group.test, &pick, &members, &labels));
                }
            }
            Table::build(
                format!("picks-{}-{}", slug(&model), slug(&quant)),
                format!("Picks: {model} {quant}"),
                &PICKS_COLUMNS,
                cells,
            )
        })
        .collect();
    unique_ids(&mut tables);
    tables
}

/// What a pick ranks by.
#[derive(Debug, Clone, Copy)]
enum PickMetric {
    DecodeTps,
    PerUsd { budget: Option<f64> },
    TokensPerJoule,
    PerTdp,
}

struct Pick {
    label: String,
    metric: PickMetric,
    /// The Hardware cell when nothing qualifies.
    none: String,
}

fn pick_kinds(budgets: &[f64]) -> Vec<Pick> {
    let mut kinds = vec![
        Pick {
            label: "Fastest".into(),
            metric: PickMetric::DecodeTps,
            none: "no result with a known generation speed".into(),
        },
        Pick {
            label: "Best tok/s per $1k".into(),
            metric: PickMetric::PerUsd { budget: None },
            none: "no hardware with a known MSRP".into(),
        },
    ];
    for &b in budgets {
        kinds.push(Pick {
            label: format!("Best tok/s per $1k up to {}", fmt_usd(Some(b))),
            metric: PickMetric::PerUsd { budget: Some(b) },
            none: format!("no hardware with a known MSRP up to {}", fmt_usd(Some(b))),
        });
    }
    kinds.push(Pick {
        label: "Most tokens per joule".into(),
        metric: PickMetric::TokensPerJoule,
        none: "no result with measured decode power".into(),
    });
    kinds.push(Pick {
        label: "Best tok/s per 100 W TDP".into(),
        metric: PickMetric::PerTdp,
        none: "no hardware with a known TDP".into(),
    });
    kinds
}

/// The value `row` is ranked by for `metric`, or `None` when it does not qualify.
fn pick_value(metric: PickMetric, row: &ReportRow) -> Option<f64> {
    match metric {
        PickMetric::DecodeTps => positive(row.point.decode_tps),
        PickMetric::PerUsd { budget: None } => row.derived.tps_per_1k_usd,
        PickMetric::PerUsd { budget: Some(b) } => row
            .derived
            .tps_per_1k_usd
            .filter(|_| row.point.hardware.msrp_usd().is_some_and(|m| m <= b)),
        PickMetric::TokensPerJoule => row.derived.tokens_per_joule,
        PickMetric::PerTdp => row.derived.tps_per_100w_tdp,
    }
    .and_then(|v| positive(Some(v)))
}

fn pick_row(test: &str, pick: &Pick, ranked: &[&ReportRow], labels: &[String]) -> Vec<Cell> {
    // `ranked` is fastest first, so keeping the first of equal values breaks ties by speed.
    let mut best: Option<(usize, f64)> = None;
    for (i, row) in ranked.iter().enumerate() {
        if let Some(v) = pick_value(pick.metric, row) {
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
    }
    let Some((i, value)) = best else {
        return vec![
            Cell::text(test),
            Cell::text(pick.label.clone()),
            Cell::text(pick.none.clone()),
            Cell::text(UNKNOWN),
            Cell::text(UNKNOWN),
            Cell::text(UNKNOWN),
            Cell::text(UNKNOWN),
            Cell::text(UNKNOWN),
        ];
    };
    let row = ranked[i];
    let p = &row.point;
    let figure = match pick.metric {
        PickMetric::DecodeTps => format!("{} tok/s", fmt_tps(Some(value))),
        PickMetric::PerUsd { .. } => format!("{} tok/s/$1k", fmt_tps(Some(value))),
        PickMetric::TokensPerJoule => format!("{} tok/J", fmt_tokens_per_joule(Some(value))),
        PickMetric::PerTdp => format!("{} tok/s/100W", fmt_tps(Some(value))),
    };
    let msrp = p.hardware.msrp_usd();
    let tdp = p.hardware.tdp_w();
    vec![
        Cell::text(test),
        Cell::text(pick.label.clone()),
        Cell::text(
            labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| p.hardware.name.clone()),
        ),
        Cell::num(
            fmt_tps_sd(p.decode_tps, p.decode_tps_sd),
            positive(p.decode_tps),
        ),
        Cell::num(figure, Some(value)),
        Cell::num(fmt_usd(msrp), positive(msrp)),
        Cell::num(fmt_trimmed(tdp), positive(tdp)),
        Cell::num(fmt_watts(p.decode_power_w), positive(p.decode_power_w)),
    ]
}

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

/// What can tell two results in one table apart, in the order a reader looks for it.
const VARIANTS: [fn(&ResultPoint) -> String; 14] = [
    |p| p.series.backend_label(),
    |p| p.series.backend.accel.clone(),
    |p| format!("host {}", p.host),
    |p| match p.series.settings.flash_attn {
        Some(true) => "fa on".into(),
        Some(false) => "fa off".into(),
        None => "fa default".into(),
    },
    |p| {
        let name = |t: Option<tokbench_core::CacheType>| {
            t.map_or_else(|| "default".to_string(), |t| t.name().to_string())
        };
        format!(
            "KV {}/{}",
            name(p.series.settings.type_k),
            name(p.series.settings.type_v)
        )
    },
    |p| match p.series.settings.n_gpu_layers {
        Some(n) => format!("ngl {n}"),
        None => "ngl default".into(),
    },
    |p| match p.series.settings.n_threads {
        Some(n) => format!("{n} threads"),
        None => "threads default".into(),
    },
    |p| match p.series.settings.n_batch {
        Some(n) => format!("batch {n}"),
        None => "batch default".into(),
    },
    |p| match p.series.settings.n_ubatch {
        Some(n) => format!("ubatch {n}"),
        None => "ubatch default".into(),
    },
    |p| match p.series.settings.use_mmap {
        Some(true) => "mmap on".into(),
        Some(false) => "mmap off".into(),
        None => "mmap default".into(),
    },
    |p| match &p.series.model.sha256 {
        Some(sha) => format!("file {}", sha.chars().take(8).collect::<String>()),
        None => "file unknown".into(),
    },
    |p| p.backend_version.clone(),
    |p| p.started_at.clone(),
    |p| format!("run {}", p.run_uuid.chars().take(8).collect::<String>()),
];

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
            for describe in VARIANTS {
                if alike.is_empty() {
                    break;
                }
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

fn md_row(cells: &[String]) -> String {
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
// CSV and JSON

/// One field of an exported row.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Text(String),
    Int(u64),
    Signed(i64),
    Float(Option<f64>),
    Bool(bool),
    Null,
}

impl Field {
    fn text(s: &str) -> Field {
        Field::Text(s.to_string())
    }

    fn opt_int(v: Option<u64>) -> Field {
        v.map_or(Field::Null, Field::Int)
    }

    fn opt_float(v: Option<f64>) -> Field {
        match v.filter(|v| v.is_finite()) {
            Some(v) => Field::Float(Some(v)),
            None => Field::Null,
        }
    }

    fn csv(&self) -> String {
        match self {
            Field::Text(s) => crate::text::csv_field(s),
            Field::Int(v) => v.to_string(),
            Field::Signed(v) => v.to_string(),
            Field::Float(Some(v)) => v.to_string(),
            Field::Bool(b) => b.to_string(),
            Field::Float(None) | Field::Null => String::new(),
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Text(v) => s.serialize_str(v),
            Field::Int(v) => s.serialize_u64(*v),
            Field::Signed(v) => s.serialize_i64(*v),
            Field::Float(Some(v)) => s.serialize_f64(*v),
            Field::Bool(b) => s.serialize_bool(*b),
            Field::Float(None) | Field::Null => s.serialize_none(),
        }
    }
}

/// A row's fields as an ordered JSON object.
struct Record(Vec<(&'static str, Field)>);

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Every field of a result and its derived figures, in export order. The names are the
/// CSV header and the JSON keys; units are in the names.
fn fields(row: &ReportRow) -> Vec<(&'static str, Field)> {
    let ResultPoint {
        run_uuid,
        started_at,
        series,
        host,
        hardware,
        backend_version,
        facts,
        test,
        status,
        prefill_tps,
        prefill_tps_sd,
        decode_tps,
        decode_tps_sd,
        ttft_ms,
        decode_power_w,
        vram_peak_bytes,
        rss_peak_bytes,
        source,
    } = &row.point;
    let tokbench_core::ModelFacts {
        n_params,
        file_bytes,
        tensor_bytes,
        token_embd_bytes,
        // Used by bytes per token (tied embeddings); not a column of its own.
        output_bytes: _,
        n_layer,
        kv_dim,
    } = *facts;
    let Derived {
        bytes_per_token,
        tps_per_1k_usd,
        tps_per_100w_tdp,
        tps_per_100w_measured,
        tokens_per_joule,
        roofline_fraction,
    } = row.derived;
    let tokbench_core::SeriesKey {
        // The host's identity; `host` is its name.
        host: _,
        backend,
        metric_source,
        model,
        test: TestSpec {
            n_prompt,
            n_gen,
            n_depth,
        },
        settings:
            EngineSettings {
                n_threads,
                n_batch,
                n_ubatch,
                n_gpu_layers,
                flash_attn,
                type_k,
                type_v,
                use_mmap,
            },
        load: ServeLoad {
            concurrency,
            request_rate,
        },
    } = series;
    let cache =
        |t: &Option<tokbench_core::CacheType>| t.map_or(Field::Null, |t| Field::text(t.name()));
    vec![
        ("run_uuid", Field::text(run_uuid)),
        ("started_at", Field::text(started_at)),
        ("host", Field::text(host)),
        ("hardware", Field::text(&hardware.name)),
        (
            "hardware_count",
            Field::opt_int(hardware.config.as_ref().map(|c| u64::from(c.count))),
        ),
        ("memory_bytes", Field::opt_int(hardware.memory_bytes())),
        (
            "bandwidth_bytes_per_s",
            Field::opt_float(positive(hardware.bandwidth_bytes_per_s())),
        ),
        ("tdp_w", Field::opt_float(positive(hardware.tdp_w()))),
        ("msrp_usd", Field::opt_float(positive(hardware.msrp_usd()))),
        ("backend", Field::text(&series.backend_label())),
        ("backend_version", Field::text(backend_version)),
        ("accel", Field::text(&backend.accel)),
        ("model", Field::text(&model.name)),
        ("quant", Field::text(&model.quant)),
        (
            "model_sha256",
            model
                .sha256
                .as_deref()
                .map_or(Field::Null, |s| Field::Text(s.to_string())),
        ),
        ("n_params", Field::opt_int(n_params)),
        ("file_bytes", Field::opt_int(file_bytes)),
        ("tensor_bytes", Field::opt_int(tensor_bytes)),
        ("token_embd_bytes", Field::opt_int(token_embd_bytes)),
        ("n_layer", Field::opt_int(n_layer.map(u64::from))),
        ("kv_dim", Field::opt_int(kv_dim.map(u64::from))),
        ("test", Field::text(test)),
        ("n_prompt", Field::Int(u64::from(*n_prompt))),
        ("n_gen", Field::Int(u64::from(*n_gen))),
        ("n_depth", Field::Int(u64::from(*n_depth))),
        ("n_threads", Field::opt_int(n_threads.map(u64::from))),
        ("n_batch", Field::opt_int(n_batch.map(u64::from))),
        ("n_ubatch", Field::opt_int(n_ubatch.map(u64::from))),
        (
            "n_gpu_layers",
            n_gpu_layers.map_or(Field::Null, |n| Field::Signed(i64::from(n))),
        ),
        ("flash_attn", flash_attn.map_or(Field::Null, Field::Bool)),
        ("type_k", cache(type_k)),
        ("type_v", cache(type_v)),
        ("use_mmap", use_mmap.map_or(Field::Null, Field::Bool)),
        ("metric_source", Field::text(metric_source.as_str())),
        ("concurrency", Field::opt_int(concurrency.map(u64::from))),
        ("request_rate", Field::opt_float(request_rate.map(|r| r.0))),
        ("status", Field::text(status.as_str())),
        ("prefill_tps", Field::opt_float(*prefill_tps)),
        ("prefill_tps_sd", Field::opt_float(*prefill_tps_sd)),
        ("decode_tps", Field::opt_float(*decode_tps)),
        ("decode_tps_sd", Field::opt_float(*decode_tps_sd)),
        ("ttft_ms", Field::opt_float(*ttft_ms)),
        ("decode_power_w", Field::opt_float(*decode_power_w)),
        ("vram_peak_bytes", Field::opt_int(*vram_peak_bytes)),
        ("rss_peak_bytes", Field::opt_int(*rss_peak_bytes)),
        (
            "source",
            source
                .as_deref()
                .map_or(Field::Null, |s| Field::Text(s.to_string())),
        ),
        ("bytes_per_token", Field::opt_float(bytes_per_token)),
        ("tps_per_1k_usd", Field::opt_float(tps_per_1k_usd)),
        ("tps_per_100w_tdp", Field::opt_float(tps_per_100w_tdp)),
        (
            "tps_per_100w_measured",
            Field::opt_float(tps_per_100w_measured),
        ),
        ("tokens_per_joule", Field::opt_float(tokens_per_joule)),
        ("roofline_fraction", Field::opt_float(roofline_fraction)),
    ]
}

/// The export order of rows: model, quantization, test, hardware, then [`tiebreak`].
fn export_order(rows: &[ReportRow]) -> Vec<&ReportRow> {
    let mut sorted: Vec<&ReportRow> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        let (p, q) = (&a.point, &b.point);
        p.series
            .model
            .name
            .cmp(&q.series.model.name)
            .then_with(|| p.series.model.quant.cmp(&q.series.model.quant))
            .then_with(|| test_order(p).cmp(&test_order(q)))
            .then_with(|| tiebreak(a, b))
    });
    sorted
}

fn csv_line(fields: &[(&'static str, Field)]) -> String {
    let cells: Vec<String> = fields.iter().map(|(_, f)| f.csv()).collect();
    cells.join(",")
}

/// Every result, ok or not, as CSV: a header, then one line per result with every point
/// field (hardware figures from the catalog, model facts) and every derived figure, in
/// the order model, quantization, test, hardware. Unknown is an empty field; numbers are
/// unrounded (shortest form that reads back exactly); lines end with `\n`. No rows give the
/// header alone.
pub fn csv_rows(rows: &[ReportRow]) -> String {
    let header: Vec<&str> = match rows.first() {
        Some(r) => fields(r).into_iter().map(|(k, _)| k).collect(),
        None => csv_header(),
    };
    let mut out = header.join(",");
    out.push('\n');
    for row in export_order(rows) {
        out.push_str(&canonical(row));
        out.push('\n');
    }
    out
}

/// The CSV header, the same names as the JSON keys of a row.
pub fn csv_header() -> Vec<&'static str> {
    fields(&empty_row()).into_iter().map(|(k, _)| k).collect()
}

fn empty_row() -> ReportRow {
    ReportRow {
        point: ResultPoint {
            run_uuid: String::new(),
            started_at: String::new(),
            series: SeriesKey::default(),
            host: String::new(),
            hardware: tokbench_core::HardwareRef::unmatched(""),
            backend_version: String::new(),
            facts: Default::default(),
            test: String::new(),
            status: ResultStatus::Ok,
            prefill_tps: None,
            prefill_tps_sd: None,
            decode_tps: None,
            decode_tps_sd: None,
            ttft_ms: None,
            decode_power_w: None,
            vram_peak_bytes: None,
            rss_peak_bytes: None,
            source: None,
        },
        derived: Derived::default(),
    }
}

/// Where a JSON export's rows came from, computed from the rows alone (no clock).
#[derive(Debug, Serialize)]
struct GeneratedFrom<'a> {
    /// What the caller said the rows came from (a database path), or null.
    source: Option<&'a str>,
    results: usize,
    ok_results: usize,
    /// Run UUIDs, sorted.
    runs: Vec<&'a str>,
    /// The earliest and latest `started_at` among the rows (RFC 3339 sorts as text).
    first_started_at: Option<&'a str>,
    last_started_at: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonExport<'a> {
    schema_version: u32,
    generated_from: GeneratedFrom<'a>,
    rows: Vec<Record>,
}

/// Every result as pretty JSON (two-space indent, a final newline):
///
/// ```json
/// {
///   "schema_version": 1,
///   "generated_from": {
///     "source": null, "results": 12, "ok_results": 10,
///     "runs": ["<uuid>", …], "first_started_at": "…", "last_started_at": "…"
///   },
///   "rows": [ { "run_uuid": "…", …, "roofline_fraction": 0.79 }, … ]
/// }
/// ```
///
/// Each row is a flat object with the CSV's names, in the CSV's order and row order
/// ([`csv_rows`]); unknown is `null`. Nothing depends on when it was generated.
pub fn json(rows: &[ReportRow]) -> String {
    json_export(rows, None)
}

/// [`json`] with `generated_from.source` set (a database path, say); an empty source is null.
pub fn json_with_source(rows: &[ReportRow], source: &str) -> String {
    json_export(rows, Some(source).filter(|s| !s.is_empty()))
}

fn json_export(rows: &[ReportRow], source: Option<&str>) -> String {
    let runs: BTreeSet<&str> = rows.iter().map(|r| r.point.run_uuid.as_str()).collect();
    let started = || rows.iter().map(|r| r.point.started_at.as_str());
    let export = JsonExport {
        schema_version: JSON_SCHEMA_VERSION,
        generated_from: GeneratedFrom {
            source,
            results: rows.len(),
            ok_results: rows.iter().filter(|r| is_ok(r)).count(),
            runs: runs.into_iter().collect(),
            first_started_at: started().min(),
            last_started_at: started().max(),
        },
        rows: export_order(rows)
            .into_iter()
            .map(|r| Record(fields(r)))
            .collect(),
    };
    match serde_json::to_string_pretty(&export) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        // Strings, integers, finite floats and booleans always serialize; this is only
        // here so that a future field cannot turn into a panic.
        Err(e) => format!(
            "{{\"schema_version\": {JSON_SCHEMA_VERSION}, \"error\": {}}}\n",
            serde_json::Value::String(e.to_string())
        ),
    }
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
mod tests {
    use super::*;

    #[test]
    fn money_has_thousands_separators() {
        assert_eq!(fmt_usd(Some(1599.0)), "$1,599");
        assert_eq!(fmt_usd(Some(10000.0)), "$10,000");
        assert_eq!(fmt_usd(Some(999.0)), "$999");
        assert_eq!(fmt_usd(Some(1234567.5)), "$1,234,567.50");
        assert_eq!(fmt_usd(Some(1599.999)), "$1,600");
        assert_eq!(fmt_usd(Some(0.0)), UNKNOWN);
        assert_eq!(fmt_usd(None), UNKNOWN);
        assert_eq!(fmt_usd(Some(f64::NAN)), UNKNOWN);
    }

    #[test]
    fn numbers_have_fixed_decimals_and_unknown_is_a_dash() {
        assert_eq!(fmt_tps(Some(62.539)), "62.54");
        assert_eq!(fmt_tps_sd(Some(100.0), Some(1.234)), "100.00 ± 1.23");
        assert_eq!(fmt_tps_sd(Some(100.0), None), "100.00");
        assert_eq!(fmt_tps_sd(None, Some(1.0)), UNKNOWN);
        assert_eq!(fmt_percent(Some(0.79448)), "79.4");
        assert_eq!(fmt_ratio(Some(1.4249)), "1.42×");
        assert_eq!(fmt_trimmed(Some(24.0)), "24");
        assert_eq!(fmt_trimmed(Some(15.92)), "15.9");
        assert_eq!(fmt_tps(Some(0.0)), UNKNOWN);
        assert_eq!(fmt_tps(Some(-1.0)), UNKNOWN);
        assert_eq!(fmt_tps(Some(f64::INFINITY)), UNKNOWN);
    }

    #[test]
    fn slugs_and_ids() {
        assert_eq!(slug("synth:tiny"), "synth-tiny");
        assert_eq!(slug("Q8_0"), "q8-0");
        assert_eq!(slug("pp512+tg128 @ d4096"), "pp512-tg128-d4096");
        assert_eq!(slug("2× GeForce RTX 3090"), "2-geforce-rtx-3090");
        assert_eq!(slug("—"), "x");
        let t = |id: &str| Table {
            id: id.into(),
            title: String::new(),
            columns: vec![],
            rows: vec![],
            sort: vec![],
        };
        let mut tables = vec![t("a"), t("a"), t("a-2"), t("a")];
        unique_ids(&mut tables);
        let ids: Vec<&str> = tables.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a", "a-2", "a-2-2", "a-3"]);
    }

    #[test]
    fn markdown_escapes_pipes_and_line_breaks() {
        let table = Table {
            id: "t".into(),
            title: "A | B\nC".into(),
            columns: vec!["x".into(), "y".into()],
            rows: vec![vec!["a|b".into(), "c\r\nd".into()]],
            sort: vec![vec![None, None]],
        };
        assert_eq!(
            markdown(&[table]),
            "## A | B C\n\n| x | y |\n|---|---|\n| a\\|b | c  d |\n"
        );
        assert_eq!(markdown(&[]), NO_TABLES);
    }

    #[test]
    fn empty_input_gives_empty_tables_and_a_header() {
        assert!(leaderboard(&[]).is_empty());
        assert!(quantization(&[]).is_empty());
        assert!(picks(&[], &DEFAULT_BUDGETS_USD).is_empty());
        assert_eq!(csv_rows(&[]), format!("{}\n", csv_header().join(",")));
        let j: serde_json::Value = serde_json::from_str(&json(&[])).unwrap();
        assert_eq!(j["schema_version"], 1);
        assert_eq!(j["rows"], serde_json::json!([]));
        assert_eq!(j["generated_from"]["results"], 0);
    }
}
