//! `tokbench compare A B`: two runs, two backend builds or two hosts, series by series —
//! the two medians, the ratio B/A with a bootstrap interval, a Mann–Whitney test on the
//! repetitions and a mark (better, worse, same, noisy). As a terminal table, as Markdown for
//! a pull request or a CI job summary, or as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use tokbench_report::compare::{compare, CompareConfig, Comparison, Mark};
use tokbench_report::gate::Metric;
use tokbench_store::{SeriesColumn, SeriesResult, Store};

use crate::check::CheckFormat;
use crate::exit::{BadInput, ExitCode};
use crate::output::{markdown, table};

#[derive(Debug, Clone)]
pub struct CompareArgs {
    pub db: PathBuf,
    pub a: String,
    pub b: String,
    pub format: CheckFormat,
    pub cfg: CompareConfig,
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
async fn side(store: &Store, spec: &str) -> anyhow::Result<(String, Vec<SeriesResult>)> {
    if let Some(v) = spec.strip_prefix("build:") {
        let r = store
            .newest_per_series_where(SeriesColumn::BuildVersion, v)
            .await?;
        return nonempty(spec, format!("build {v}"), r);
    }
    if let Some(h) = spec.strip_prefix("host:") {
        let r = store
            .newest_per_series_where(SeriesColumn::Hostname, h)
            .await?;
        return nonempty(spec, format!("host {h}"), r);
    }
    let run = spec.strip_prefix("run:").unwrap_or(spec);
    let Some((uuid, _)) = store.resolve_run(run).await? else {
        return Err(BadInput(format!(
            "`{spec}` names no run: give a run UUID or a unique prefix, `latest`, `previous`, `build:VERSION` or `host:NAME`"
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
    let store = Store::open_read_only(&args.db)
        .await
        .map_err(|e| BadInput(e.to_string()))?;
    let (name_a, a) = side(&store, &args.a).await?;
    let (name_b, b) = side(&store, &args.b).await?;
    store.close().await;
    let (pairs, unpaired) = pair(&a, &b);
    let mut rows = Vec::new();
    for (x, y) in pairs {
        for (metric, xs) in metrics_of(x) {
            let Some((_, ys)) = metrics_of(y).into_iter().find(|(m, _)| *m == metric) else {
                continue;
            };
            if let Some(c) = compare(&xs, &ys, metric, &args.cfg) {
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
        CheckFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "a": name_a, "b": name_b, "unpaired": unpaired, "series": rows,
            }))
            .context("cannot write JSON")?
        ),
        f => print!("{}", render(&name_a, &name_b, &rows, unpaired, f)),
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

fn render(a: &str, b: &str, rows: &[Row], unpaired: usize, format: CheckFormat) -> String {
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
                mark_name(c.mark).into(),
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
    match format {
        CheckFormat::Markdown => format!(
            "### tokbench compare\n\n{summary}\n\n{}",
            if body.is_empty() {
                "_No series in common._\n".to_string()
            } else {
                markdown(&cols, &body)
            }
        ),
        _ => format!("{}{summary}\n", table(&cols, &body)),
    }
}
