//! The table builders: leaderboard, quantization and picks, pure functions of the rows.

use super::*;
use tokbench_core::catalog::PowerBasis;

// Leaderboard

/// The leaderboard columns, in order.
pub const LEADERBOARD_COLUMNS: [&str; 14] = [
    "Model",
    "Quant",
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
pub(super) fn hardware_label(p: &ResultPoint) -> String {
    match &p.source {
        Some(source) => format!("{} (from {source})", p.hardware.name),
        None => p.hardware.name.clone(),
    }
}

/// One table per generation test (`n_gen > 0`), ok results only, models and quantizations
/// as rows: by model and quantization, then fastest generation first (unknown speed last;
/// ties by hardware name). The page sorts by any column.
///
/// - VRAM, MSRP and TDP are the catalog's, for all devices of the configuration; "—" when
///   the hardware is not in the catalog or the figure is not.
/// - Gen tok/s is `mean ± sd` when the standard deviation is known, followed by `(noisy)`
///   when its repetitions scattered past a CV of 5% and `(throttled)` when the machine
///   throttled while it ran: numbers not to trust alone.
/// - Prefill-only tests (`ppN`) have no table of their own: they fill the Prefill tok/s and
///   TTFT ms columns. A test with a prompt (`pp512+tg128`) shows its own prefill and TTFT;
///   a `tgN` test shows those of the `ppN` test with the same hardware, host, backend,
///   accelerator, model, quantization, engine settings and depth (same run first, then
///   the longest prompt, then the newest), or "—" when there is none.
/// - Measured W is the mean power during decode, which tok/J divides by; Roofline % is
///   generation speed × bytes read per token ÷ the catalog's bandwidth ([`crate::metrics`]),
///   marked `≈` for an imported result, whose bytes are the tool's reported total.
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
            .entry(TestGroup::of_test(&row.point))
            .or_default()
            .push(row);
    }
    let model_quant = |r: &ReportRow| {
        (
            r.point.series.model.name.clone(),
            r.point.series.model.quant.clone(),
        )
    };
    let mut tables: Vec<Table> = groups
        .into_iter()
        .map(|(group, mut members)| {
            members.sort_by(|a, b| model_quant(a).cmp(&model_quant(b)).then(by_speed(a, b)));
            let labels = distinct_labels(
                &members,
                |p| {
                    format!(
                        "{}\u{1f}{}\u{1f}{}",
                        p.series.model.name,
                        p.series.model.quant,
                        hardware_label(p)
                    )
                },
                hardware_label,
            );
            let cells = members
                .iter()
                .zip(labels)
                .map(|(row, label)| leaderboard_row(row, label, &prefill))
                .collect();
            Table::build(
                format!("leaderboard-{}", slug(&group.test)),
                format!("Leaderboard: {}", group.test),
                &LEADERBOARD_COLUMNS,
                cells,
            )
        })
        .collect();
    unique_ids(&mut tables);
    tables
}

/// ` (noisy)`, ` (throttled)`, ` (noisy, throttled)` or nothing.
pub(super) fn trust_marks(p: &tokbench_core::ResultPoint) -> String {
    let marks: Vec<&str> = [(p.noisy, "noisy"), (p.throttled, "throttled")]
        .into_iter()
        .filter(|(flag, _)| *flag == Some(true))
        .map(|(_, name)| name)
        .collect();
    if marks.is_empty() {
        String::new()
    } else {
        format!(" ({})", marks.join(", "))
    }
}

pub(super) fn leaderboard_row(row: &ReportRow, label: String, prefill: &PrefillIndex) -> Vec<Cell> {
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
        Cell::text(p.series.model.name.clone()),
        Cell::text(p.series.model.quant.clone()),
        Cell::text(label),
        Cell::num(fmt_trimmed(memory), positive(memory)),
        Cell::num(fmt_usd(msrp), positive(msrp)),
        Cell::num(
            // A card's board power as is; a system's or package's figure says so.
            match p
                .hardware
                .config
                .as_ref()
                .and_then(|c| c.hardware.power_basis)
            {
                Some(b) if b != PowerBasis::Board && positive(tdp).is_some() => {
                    format!("{} ({})", fmt_trimmed(tdp), b.as_str())
                }
                _ => fmt_trimmed(tdp),
            },
            positive(tdp),
        ),
        Cell::num(
            format!(
                "{}{}",
                fmt_tps_sd(p.decode_tps, p.decode_tps_sd),
                trust_marks(p)
            ),
            positive(p.decode_tps),
        ),
        Cell::num(fmt_tps(tps_per_1k_usd), tps_per_1k_usd),
        Cell::num(fmt_tps(tps_per_100w_tdp), tps_per_100w_tdp),
        Cell::num(fmt_tps(prefill_tps), positive(prefill_tps)),
        Cell::num(fmt_ms(ttft_ms), positive(ttft_ms)),
        Cell::num(fmt_watts(p.decode_power_w), positive(p.decode_power_w)),
        Cell::num(fmt_tokens_per_joule(tokens_per_joule), tokens_per_joule),
        Cell::num(
            // From an imported total (embeddings in, KV cache out): approximate.
            match (p.facts.tensor_bytes_only, roofline_fraction) {
                (true, Some(_)) => format!("≈{}", fmt_percent(roofline_fraction)),
                _ => fmt_percent(roofline_fraction),
            },
            roofline_fraction.map(|f| f * 100.0),
        ),
    ]
}

/// A model, quantization and test: the scope in which results are compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct TestGroup {
    model: String,
    quant: String,
    /// Tests in reading order: shallow before deep, then by prompt and generation length.
    n_depth: u32,
    n_prompt: u32,
    n_gen: u32,
    test: String,
}

impl TestGroup {
    /// The test alone: every model and quantization in one group.
    fn of_test(p: &ResultPoint) -> TestGroup {
        TestGroup {
            model: String::new(),
            quant: String::new(),
            ..TestGroup::of(p)
        }
    }

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
pub(super) struct PrefillIndex<'a> {
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
pub(super) fn prefill_setup_key(p: &ResultPoint) -> SeriesKey {
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
pub(super) fn prefill_for(row: &ReportRow, index: &PrefillIndex<'_>) -> (Option<f64>, Option<f64>) {
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

pub(super) fn quantization_row(
    row: &ReportRow,
    quant_label: String,
    scope: &[&ReportRow],
) -> Vec<Cell> {
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
pub(super) fn is_q8_0(quant: &str) -> bool {
    quant.trim().eq_ignore_ascii_case("q8_0")
}

/// The Q8_0 result `row` is compared with: same model, hardware, test and setup; the
/// newest when there are several.
pub(super) fn q8_baseline<'a>(row: &ReportRow, scope: &[&'a ReportRow]) -> Option<&'a ReportRow> {
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
pub(super) enum PickMetric {
    DecodeTps,
    PerUsd { budget: Option<f64> },
    TokensPerJoule,
    PerTdp,
}

pub(super) struct Pick {
    label: String,
    metric: PickMetric,
    /// The Hardware cell when nothing qualifies.
    none: String,
}

pub(super) fn pick_kinds(budgets: &[f64]) -> Vec<Pick> {
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
pub(super) fn pick_value(metric: PickMetric, row: &ReportRow) -> Option<f64> {
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

pub(super) fn pick_row(
    test: &str,
    pick: &Pick,
    ranked: &[&ReportRow],
    labels: &[String],
) -> Vec<Cell> {
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
