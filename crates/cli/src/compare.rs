//! `tokbench compare A B`: two runs, two backend builds or two hosts, series by series —
//! the two medians, the ratio B/A with a bootstrap interval, a Mann–Whitney test on the
//! repetitions and a mark (better, worse, same, noisy). As a terminal table, as Markdown for
//! a pull request or a CI job summary, or as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use tokbench_core::RunSelector;
use tokbench_report::compare::{
    compare, repetitions_for_test, Basis, CompareConfig, Comparison, Mark,
};
use tokbench_report::gate::{Metric, MetricKind};
use tokbench_store::{SeriesColumn, SeriesResult, Store};

use crate::exit::{BadInput, ExitCode};
use crate::output::{markdown, table};
use crate::Format;

/// `tokbench compare`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The reference: a run (`latest`, `previous`, `latest~N`, a UUID or a unique prefix),
    /// or every series' newest result from `build:VERSION` or `host:NAME`.
    pub a: RunSelector,
    /// Compared against A, the same way.
    pub b: RunSelector,
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: PathBuf,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub format: Format,
}

/// One series of A beside the same of B.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What A and B share: `synth:tiny Q8_0 tg128`.
    pub series: String,
    /// What told A and B apart when both sides had several results of the series.
    pub settings_a: String,
    pub settings_b: String,
    pub comparison: Comparison,
}

/// The results one side names: `build:VERSION`, `host:NAME`, or a run (UUID, unique
/// prefix, `latest`, `previous`; `run:` in front is allowed).
/// One side of the comparison: a run's results, or for a build or a host the newest
/// result of every series it has.
async fn side(store: &Store, sel: &RunSelector) -> anyhow::Result<(String, Vec<SeriesResult>)> {
    let spec = sel.to_string();
    match sel {
        RunSelector::Build(v) => {
            let r = store
                .newest_per_series_where(SeriesColumn::BuildVersion, v)
                .await?;
            return nonempty(&spec, format!("build {v}"), r);
        }
        RunSelector::Host(h) => {
            let r = store
                .newest_per_series_where(SeriesColumn::Hostname, h)
                .await?;
            return nonempty(&spec, format!("host {h}"), r);
        }
        RunSelector::Newest { .. } | RunSelector::Uuid(_) => {}
    }
    let Some((uuid, _)) = store.resolve_run(sel).await? else {
        return Err(BadInput(format!(
            "`{spec}` names no run: give a run UUID or a unique prefix, `latest`, `previous`, `latest~N`, `build:VERSION` or `host:NAME`"
        ))
        .into());
    };
    let r = store.run_series(&uuid).await?;
    Ok((format!("run {uuid}"), r))
}

/// The speeds compared: prefill and decode (the gate's metrics without TTFT and memory).
/// A build or host that names no result is a typo, not an empty comparison.
fn nonempty(
    spec: &str,
    name: String,
    r: Vec<SeriesResult>,
) -> anyhow::Result<(String, Vec<SeriesResult>)> {
    if r.is_empty() {
        return Err(BadInput(format!(
            "`{spec}` names no ok result (check the build version or host name: `tokbench query \"SELECT DISTINCT backend_version, host FROM v_results\"`)"
        ))
        .into());
    }
    Ok((name, r))
}

fn metrics_of(r: &SeriesResult) -> Vec<(Metric, Vec<f64>)> {
    crate::check::metric_values(r)
        .into_iter()
        .filter(|(m, _)| matches!(m, Metric::PrefillTps | Metric::DecodeTps))
        .collect()
}

/// Pairs A's and B's results: by model, quantization and test; where a side has several
/// results for one of those (several thread counts, two ubatch sizes), by their whole
/// series apart from the machine and build (`SeriesKey::without_machine`).
fn pair<'a>(
    a: &'a [SeriesResult],
    b: &'a [SeriesResult],
) -> (Vec<(&'a SeriesResult, &'a SeriesResult)>, usize) {
    let key = |r: &SeriesResult| format!("{} {} {}", r.key.model.name, r.key.model.quant, r.test);
    let mut groups: BTreeMap<String, (Vec<&SeriesResult>, Vec<&SeriesResult>)> = BTreeMap::new();
    for r in a {
        groups.entry(key(r)).or_default().0.push(r);
    }
    for r in b {
        groups.entry(key(r)).or_default().1.push(r);
    }
    let mut pairs = Vec::new();
    let mut unpaired = 0;
    for (_, (xs, ys)) in groups {
        match (xs.as_slice(), ys.as_slice()) {
            ([x], [y]) => pairs.push((*x, *y)),
            _ => {
                let same = |x: &SeriesResult, y: &SeriesResult| {
                    x.key.without_machine() == y.key.without_machine()
                };
                for x in &xs {
                    match ys.iter().find(|y| same(x, y)) {
                        Some(y) => pairs.push((*x, *y)),
                        None => unpaired += 1,
                    }
                }
                unpaired += ys.iter().filter(|y| !xs.iter().any(|x| same(x, y))).count();
            }
        }
    }
    (pairs, unpaired)
}

pub async fn compare_command(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    args.format
        .require("compare", &[Format::Table, Format::Md, Format::Json])?;
    let local = crate::snapshot::local(&args.db, "compare").await?;
    let store = Store::open_read_only(local.path())
        .await
        .map_err(|e| BadInput(e.to_string()))?;
    let (name_a, a) = side(&store, &args.a).await?;
    let (name_b, b) = side(&store, &args.b).await?;
    store.close().await;
    let (pairs, unpaired) = pair(&a, &b);
    let cfg = CompareConfig::default();
    let mut rows = Vec::new();
    for (x, y) in pairs {
        for (metric, xs) in metrics_of(x) {
            let Some((_, ys)) = metrics_of(y).into_iter().find(|(m, _)| *m == metric) else {
                continue;
            };
            if let Some(c) = compare(&xs, &ys, metric, &cfg) {
                rows.push(Row {
                    series: format!("{} {} {}", x.key.model.name, x.key.model.quant, x.test),
                    settings_a: x.settings.clone(),
                    settings_b: y.settings.clone(),
                    comparison: c,
                });
            }
        }
    }
    match args.format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "a": name_a, "b": name_b, "unpaired": unpaired, "series": rows,
            }))
            .context("cannot write JSON")?
        )?,
        f => out!("{}", render(&name_a, &name_b, &rows, unpaired, f))?,
    }
    Ok(ExitCode::Ok)
}

fn mark_name(m: Mark) -> &'static str {
    match m {
        Mark::Better => "better",
        Mark::Worse => "worse",
        Mark::Same => "same",
        Mark::Noisy => "noisy",
    }
}

fn render(a: &str, b: &str, rows: &[Row], unpaired: usize, format: Format) -> String {
    let cols: Vec<String> = [
        "series", "settings", "metric", "A median", "B median", "B/A", "95% CI", "p", "mark",
    ]
    .map(String::from)
    .to_vec();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let c = &r.comparison;
            let settings = if r.settings_a == r.settings_b {
                r.settings_a.clone()
            } else {
                format!("{} → {}", r.settings_a, r.settings_b)
            };
            vec![
                r.series.clone(),
                settings,
                c.metric.name().into(),
                format!("{:.2}", c.median_a),
                format!("{:.2}", c.median_b),
                format!("{:.3}", c.ratio),
                match (c.ci_low, c.ci_high) {
                    (Some(l), Some(h)) => format!("{l:.3}–{h:.3}"),
                    _ => "—".into(),
                },
                c.p_value
                    .map(|p| format!("{p:.3}"))
                    .unwrap_or_else(|| "—".into()),
                match (c.mark, c.noisy) {
                    (Mark::Better | Mark::Worse, true) => format!("{} (noisy)", mark_name(c.mark)),
                    (m, _) => mark_name(m).into(),
                },
            ]
        })
        .collect();
    let count = |m: Mark| rows.iter().filter(|r| r.comparison.mark == m).count();
    let summary = format!(
        "A = {a}, B = {b}: {} better, {} worse, {} same, {} noisy{}",
        count(Mark::Better),
        count(Mark::Worse),
        count(Mark::Same),
        count(Mark::Noisy),
        if unpaired > 0 {
            format!("; {unpaired} result(s) without a counterpart")
        } else {
            String::new()
        }
    );
    let mut notes = String::new();
    if let Some(line) = speedup_line(rows) {
        notes.push_str(&line);
        notes.push('\n');
    }
    if let Some(line) = sample_size_note(rows) {
        notes.push_str(&line);
        notes.push('\n');
    }
    match format {
        Format::Md => format!(
            "### tokbench compare\n\n{summary}\n\n{}{}",
            if body.is_empty() {
                "_No series in common._\n".to_string()
            } else {
                markdown(&cols, &body)
            },
            if notes.is_empty() {
                String::new()
            } else {
                format!("\n{notes}")
            }
        ),
        _ => format!("{}{summary}\n{notes}", table(&cols, &body)),
    }
}

/// hyperfine's summary, over the throughput series: "B is 1.31× faster than A (geometric
/// mean of B/A over 14 series, 0.95 to 1.52); faster on 12 of 14".
fn speedup_line(rows: &[Row]) -> Option<String> {
    let ratios: Vec<f64> = rows
        .iter()
        .filter(|r| r.comparison.metric.kind() == MetricKind::Throughput)
        .map(|r| r.comparison.ratio)
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let n = ratios.len();
    let geo = (ratios.iter().map(|x| x.ln()).sum::<f64>() / n as f64).exp();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let faster = ratios.iter().filter(|x| **x > 1.0).count();
    let (factor, word) = if geo >= 1.0 {
        (geo, "faster")
    } else {
        (1.0 / geo, "slower")
    };
    Some(format!(
        "B is {factor:.2}× {word} than A (geometric mean of B/A tok/s over {n} series, {lo:.2} to {hi:.2}); faster on {faster} of {n}"
    ))
}

/// What the marks rest on when the repetitions are too few for the Mann–Whitney test: says
/// so, and how many repetitions let the test speak.
fn sample_size_note(rows: &[Row]) -> Option<String> {
    let few = rows
        .iter()
        .map(|r| &r.comparison)
        .filter(|c| c.basis != Basis::IntervalAndTest)
        .min_by_key(|c| c.n_a.min(c.n_b))?;
    let need = repetitions_for_test(CompareConfig::default().alpha);
    Some(if few.basis == Basis::Floor {
        format!(
            "note: a side has one repetition: its marks rest on the 5% floor alone (no interval, no test); measure with -r {need} or more"
        )
    } else {
        format!(
            "note: with {} vs {} repetitions the Mann–Whitney test cannot reach p < 0.05 (at best p = {:.2}): those marks rest on the bootstrap interval and the floor; measure with -r {need} or more for the test to count",
            few.n_a,
            few.n_b,
            tokbench_report::stats::mann_whitney_min_p(few.n_a, few.n_b)
        )
    })
}
