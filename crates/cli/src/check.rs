//! `tokbench check`: judges a run against the history of each of its series, re-measures
//! suspects at once on this machine, stores every verdict with its inputs, and exits 3 on a
//! confirmed regression. `tokbench check --accept RUN` records a change point instead: the
//! run's level becomes the new normal of its series.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokbench_core::{RunSelector, SeriesKey};
use tokbench_report::gate::{self, GateConfig, Metric, Observation, Verdict, VerdictKind};
use tokbench_report::stats::summarize;
use tokbench_store::{NewVerdict, SeriesResult, Store};

use crate::exit::{BadInput, ExitCode};
use crate::output::{markdown, table};
use crate::Format;

/// `tokbench check`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: PathBuf,
    /// The run: `latest`, `previous`, `latest~N`, a UUID or a unique prefix, `host:NAME`
    /// or `build:VERSION`.
    #[arg(long, default_value = "latest")]
    pub run: RunSelector,
    /// Re-measurements of a suspect series, at once on this machine (0: none; then a
    /// suspect does not fail).
    #[arg(long, default_value_t = gate::CONFIRM_RUNS)]
    pub remeasure: usize,
    /// Results in the baseline, at most.
    #[arg(long, default_value_t = 30)]
    pub baseline: usize,
    /// Results the baseline needs, else the verdict is `insufficient`.
    #[arg(long, default_value_t = 5)]
    pub min_baseline: usize,
    /// Only history this recent counts, days.
    #[arg(long, default_value_t = 90.0)]
    pub window_days: f64,
    /// Practical floor for speeds and latencies, percent.
    #[arg(long, default_value_t = 5.0)]
    pub floor: f64,
    /// Practical floor for memory, percent.
    #[arg(long, default_value_t = 3.0)]
    pub floor_memory: f64,
    /// A result whose repetitions' CV exceeds this (percent) is noisy and never gates.
    #[arg(long, default_value_t = 5.0)]
    pub noisy_cv: f64,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub format: Format,
    /// Instead of judging: the run's level becomes the new normal of its series (a
    /// change point); later runs are judged against results from it on.
    #[arg(long, value_name = "RUN")]
    pub accept: Option<RunSelector>,
    /// Why the change point (with --accept).
    #[arg(long, default_value = "accepted as the new normal")]
    pub note: String,
    /// The targets file: a run measured on a remote target is re-measured there, over SSH.
    #[arg(long, value_name = "FILE", default_value = crate::targets::DEFAULT_TARGETS)]
    pub targets: PathBuf,
}

impl CheckArgs {
    /// The gate's settings, from the percentages given.
    pub fn gate(&self) -> GateConfig {
        GateConfig {
            baseline_max: self.baseline,
            baseline_min: self.min_baseline,
            window_days: self.window_days,
            floor_speed: self.floor / 100.0,
            floor_memory: self.floor_memory / 100.0,
            noisy_cv: self.noisy_cv / 100.0,
            ..Default::default()
        }
    }
}

/// One judged (result, metric), as printed and stored.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub label: String,
    pub series_key: String,
    pub result_id: i64,
    pub cell_index: i64,
    pub backend_version: String,
    pub verdict: Verdict,
    /// The verdict after re-measurement ([`gate::confirm`]).
    pub final_kind: VerdictKind,
    pub mad: Option<f64>,
    /// The re-measurements: run UUID and their verdicts.
    pub remeasured: Vec<(String, Verdict)>,
}

/// The metrics a result carries: prefill and TTFT for tests with a prompt, decode for those
/// that generate, and the peak memory.
pub(crate) fn metric_values(r: &SeriesResult) -> Vec<(Metric, Vec<f64>)> {
    let mut out = Vec::new();
    if r.key.test.n_prompt > 0 && !r.prefill_tps.is_empty() {
        out.push((Metric::PrefillTps, r.prefill_tps.clone()));
    }
    if r.key.test.n_gen > 0 && !r.decode_tps.is_empty() {
        out.push((Metric::DecodeTps, r.decode_tps.clone()));
    }
    // A generation-only test's "TTFT" is one decode step, not a time to first token.
    if r.key.test.n_prompt > 0 && !r.ttft_ms.is_empty() {
        out.push((Metric::TtftMs, r.ttft_ms.clone()));
    }
    if let Some(b) = r.rss_peak_bytes {
        out.push((Metric::RssPeakBytes, vec![b]));
    }
    out
}

fn parse_time(s: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).with_context(|| format!("`{s}` is not an RFC 3339 time"))
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A verdict on one metric of the result at this index of the run, with the MAD of its
/// repetitions.
type FirstVerdict = (usize, Metric, Verdict, Option<f64>);

/// Judges every metric of every result in `run` against `history`.
fn judge_run(
    run: &[SeriesResult],
    run_started: OffsetDateTime,
    history: &[SeriesResult],
    change_points: &BTreeMap<String, String>,
    cfg: &GateConfig,
) -> anyhow::Result<Vec<FirstVerdict>> {
    let mut by_series: BTreeMap<&str, Vec<&SeriesResult>> = BTreeMap::new();
    for h in history {
        by_series.entry(&h.series_key).or_default().push(h);
    }
    let mut out = Vec::new();
    for (i, r) in run.iter().enumerate() {
        let past = by_series
            .get(r.series_key.as_str())
            .cloned()
            .unwrap_or_default();
        let change = change_points.get(&r.series_key);
        for (metric, values) in metric_values(r) {
            let Some(summary) = summarize(&values) else {
                continue;
            };
            let current = Observation::from_summary(&summary, 0.0);
            let mut obs = Vec::new();
            for h in &past {
                let Some(hv) = metric_values(h)
                    .into_iter()
                    .find(|(m, _)| *m == metric)
                    .and_then(|(_, v)| summarize(&v))
                else {
                    continue;
                };
                // A history run whose time does not parse (an odd import) is left out.
                let Ok(started) = parse_time(&h.run_started_at) else {
                    continue;
                };
                let age = (run_started - started).as_seconds_f64() / 86_400.0;
                obs.push(Observation {
                    before_change_point: change.is_some_and(|c| h.run_started_at < *c),
                    ..Observation::from_summary(&hv, age.max(0.0))
                });
            }
            let verdict = gate::judge(&current, &obs, metric, cfg);
            out.push((i, metric, verdict, Some(summary.mad)));
        }
    }
    Ok(out)
}

/// `tokbench check`: judges the run, or with `--accept` records a change point.
pub async fn check_command(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(url) = args
        .db
        .to_str()
        .filter(|d| tokbench_store::is_postgres_url(d))
    else {
        return check_file(args, &args.db.display().to_string()).await;
    };
    // A server: judged on a snapshot of it (one consistent moment, however many runners
    // write meanwhile); what the check stored there (its verdicts, a change point, the
    // re-measured runs) is then merged into the server in one transaction.
    let local = crate::snapshot::local(&args.db, "check").await?;
    let on_snapshot = CheckArgs {
        db: local.path().to_path_buf(),
        ..args.clone()
    };
    let code = check_file(&on_snapshot, local.shown()).await?;
    let server = tokbench_store::PgStore::open(url).await?;
    let merged = server.merge_sqlite(local.path()).await;
    server.close().await;
    let r = merged.with_context(|| format!("cannot store the check on {}", local.shown()))?;
    eprintln!(
        "check: stored on {}: {} verdicts, {} change points, {} re-measured runs",
        local.shown(),
        r.verdicts_added,
        r.change_points_added,
        r.runs_added
    );
    Ok(code)
}

/// [`check_command`] on the SQLite file `args.db`, which messages call `shown`.
async fn check_file(args: &CheckArgs, shown: &str) -> anyhow::Result<ExitCode> {
    if let Some(run) = &args.accept {
        return accept_command(&args.db, shown, run, &args.note).await;
    }
    args.format
        .require("check", &[Format::Table, Format::Md, Format::Json])?;
    let cfg = args.gate();
    cfg.validate()
        .map_err(|e| BadInput(format!("gate settings: {e}")))?;
    crate::output::existing_db(&args.db)?;
    let store = Store::open(&args.db)
        .await
        .with_context(|| format!("cannot open the results database {shown}"))?;
    let Some((run_uuid, started_at)) = store.resolve_run(&args.run).await? else {
        return Err(crate::output::no_run(&args.run, shown).into());
    };
    let run_started = parse_time(&started_at)?;
    let since = fmt_time(run_started - time::Duration::seconds_f64(cfg.window_days * 86_400.0));
    let run = store.run_series(&run_uuid).await?;
    let keys: Vec<SeriesKey> = run
        .iter()
        .map(|r| r.key.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let history = store.series_history(&keys, &since, &started_at).await?;
    let texts: Vec<String> = keys.iter().map(SeriesKey::encode).collect();
    let change_points: BTreeMap<String, String> = store
        .change_points(&texts, &started_at)
        .await?
        .into_iter()
        .collect();
    let first = judge_run(&run, run_started, &history, &change_points, &cfg)?;

    // Re-measure the suspects' cells at once, on this machine, against the same history.
    let suspect_cells: BTreeSet<usize> = first
        .iter()
        .filter(|(_, _, v, _)| v.kind == VerdictKind::Suspect)
        .filter_map(|(i, _, _, _)| usize::try_from(run[*i].cell_index).ok())
        .collect();
    let mut remeasured: BTreeMap<(String, Metric), Vec<(String, Verdict)>> = BTreeMap::new();
    // Re-measuring runs the suspect cells again from the run's stored suite; a run without
    // one (imported from llama-bench) cannot be, and its suspects stay unconfirmed.
    let has_suite = store
        .run_by_uuid(&run_uuid)
        .await?
        .and_then(|r| r.config_text)
        .is_some_and(|t| !t.trim().is_empty());
    let target = store.run_target(&run_uuid).await?;
    store.close().await;
    if !suspect_cells.is_empty() && args.remeasure > 0 && !has_suite {
        eprintln!(
            "check: run {run_uuid} has no stored suite (imported?): its {} suspect cell(s) cannot be re-measured and stay unconfirmed",
            suspect_cells.len()
        );
    }
    if !suspect_cells.is_empty() && args.remeasure > 0 && has_suite {
        for n in 1..=args.remeasure {
            eprintln!(
                "check: {} suspect cell(s); re-measuring ({n} of {})",
                suspect_cells.len(),
                args.remeasure
            );
            let trigger = format!("recheck:{run_uuid}");
            // A run a controller measured on a remote target is measured again there.
            let rerun = match &target {
                Some(t) => crate::targets::rerun_on_target(
                    &args.db,
                    &args.targets,
                    t,
                    &run_uuid,
                    &suspect_cells,
                    &trigger,
                )
                .await
                .map(|uuid| (uuid, ExitCode::Ok)),
                None => {
                    crate::run::rerun_cells(
                        &args.db,
                        &run_uuid,
                        &suspect_cells,
                        &trigger,
                        crate::run::Remote::default(),
                    )
                    .await
                }
            };
            let uuid = match rerun {
                Ok((uuid, _)) => uuid,
                Err(e) => {
                    // A confirmation needs every re-measurement: without them all, the
                    // suspects stay unconfirmed (and the verdicts are still stored).
                    eprintln!(
                        "check: re-measurement {n} failed ({e:#}); suspects stay unconfirmed"
                    );
                    remeasured.clear();
                    break;
                }
            };
            let judged_again = async {
                let store = Store::open_read_only(&args.db).await?;
                let again = store.run_series(&uuid).await?;
                store.close().await;
                let verdicts = judge_run(&again, run_started, &history, &change_points, &cfg)?;
                anyhow::Ok((again, verdicts))
            }
            .await;
            let (again, verdicts) = match judged_again {
                Ok(v) => v,
                Err(e) => {
                    eprintln!(
                        "check: re-measurement {n} cannot be read ({e:#}); suspects stay unconfirmed"
                    );
                    remeasured.clear();
                    break;
                }
            };
            for (i, metric, verdict, _) in verdicts {
                remeasured
                    .entry((again[i].series_key.clone(), metric))
                    .or_default()
                    .push((uuid.clone(), verdict));
            }
        }
    }

    let judged: Vec<Judged> = first
        .into_iter()
        .map(|(i, metric, verdict, mad)| {
            let r = &run[i];
            let again = remeasured
                .get(&(r.series_key.clone(), metric))
                .cloned()
                .unwrap_or_default();
            // Confirmed only by every re-measurement asked for: a cell that failed in one of
            // them leaves the suspect unconfirmed.
            let verdicts: Vec<Verdict> = if again.len() == args.remeasure {
                again.iter().map(|(_, v)| v.clone()).collect()
            } else {
                Vec::new()
            };
            Judged {
                label: r.label.clone(),
                series_key: r.series_key.clone(),
                result_id: r.result_id,
                cell_index: r.cell_index,
                backend_version: r.backend_version.clone(),
                final_kind: gate::confirm(&verdict, &verdicts),
                verdict,
                mad,
                remeasured: again,
            }
        })
        .collect();

    let store = Store::open(&args.db).await?;
    let check_uuid = uuid::Uuid::new_v4().to_string();
    let checked_at = fmt_time(OffsetDateTime::now_utc());
    let rows: Vec<NewVerdict> = judged
        .iter()
        .map(|j| NewVerdict {
            check_uuid: check_uuid.clone(),
            checked_at: checked_at.clone(),
            run_uuid: run_uuid.clone(),
            result_id: j.result_id,
            series_key: j.series_key.clone(),
            metric: j.verdict.metric.name().into(),
            kind: kind_name(j.final_kind).into(),
            value: j.verdict.value,
            cv: j.verdict.cv,
            mad: j.mad,
            baseline_n: j.verdict.baseline_n as i64,
            baseline_geomean: j.verdict.baseline,
            baseline_sd_log: j.verdict.baseline_sd_log,
            t_quantile: j.verdict.t_quantile,
            limit_value: j.verdict.limit,
            floor: Some(j.verdict.floor),
            ratio: j.verdict.ratio,
            remeasured_json: serde_json::to_string(
                &j.remeasured
                    .iter()
                    .map(|(u, v)| serde_json::json!({"run": u, "value": v.value, "kind": kind_name(v.kind)}))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|_| "[]".into()),
            reason: j.verdict.reason.clone(),
        })
        .collect();
    store.insert_verdicts(&rows).await?;
    let failed = store.failed_results(&run_uuid).await?;
    store.close().await;

    let regressions = judged.iter().filter(|j| j.final_kind.fails()).count();
    match args.format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": run_uuid,
                "check": check_uuid,
                "regressions": regressions,
                "failed_results": failed,
                "verdicts": judged,
            }))?
        )?,
        _ => out!("{}", render(&run_uuid, &judged, failed, args.format))?,
    }
    Ok(if regressions > 0 {
        ExitCode::Regression
    } else if failed > 0 {
        ExitCode::SomeFailed
    } else {
        ExitCode::Ok
    })
}

fn kind_name(k: VerdictKind) -> &'static str {
    match k {
        VerdictKind::Ok => "ok",
        VerdictKind::Improvement => "improvement",
        VerdictKind::Suspect => "suspect",
        VerdictKind::Regression => "regression",
        VerdictKind::Transient => "transient",
        VerdictKind::Noisy => "noisy",
        VerdictKind::Insufficient => "insufficient",
        VerdictKind::Invalid => "invalid",
    }
}

/// A figure in its metric's unit: memory as MiB, everything else as it is.
fn num(metric: Metric, v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if matches!(metric, Metric::RssPeakBytes | Metric::VramPeakBytes) => {
            format!("{:.1} MiB", v / 1048576.0)
        }
        Some(v) => format!("{v:.2}"),
    }
}

fn render(run: &str, judged: &[Judged], failed: i64, format: Format) -> String {
    let cols: Vec<String> = [
        "series", "metric", "verdict", "value", "baseline", "ratio", "limit", "n", "why",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = judged
        .iter()
        .map(|j| {
            let v = &j.verdict;
            let mut why = v.reason.clone();
            if !j.remeasured.is_empty() {
                let again: Vec<String> = j
                    .remeasured
                    .iter()
                    .map(|(_, r)| format!("{} {}", num(r.metric, Some(r.value)), kind_name(r.kind)))
                    .collect();
                why.push_str(&format!(" Re-measured: {}.", again.join(", ")));
            }
            vec![
                j.label.clone(),
                v.metric.name().into(),
                kind_name(j.final_kind).into(),
                num(v.metric, Some(v.value)),
                num(v.metric, v.baseline),
                v.ratio
                    .map(|r| format!("{r:.3}"))
                    .unwrap_or_else(|| "—".into()),
                num(v.metric, v.limit),
                v.baseline_n.to_string(),
                why,
            ]
        })
        .collect();
    let count = |k: VerdictKind| judged.iter().filter(|j| j.final_kind == k).count();
    let summary = format!(
        "run {run}: {} regression(s), {} transient, {} improvement(s), {} ok, {} noisy, {} insufficient history; {failed} failed result(s)",
        count(VerdictKind::Regression),
        count(VerdictKind::Transient),
        count(VerdictKind::Improvement),
        count(VerdictKind::Ok),
        count(VerdictKind::Noisy),
        count(VerdictKind::Insufficient),
    );
    match format {
        Format::Md => format!(
            "### tokbench check\n\n{summary}\n\n{}",
            markdown(&cols, &rows)
        ),
        _ => format!("{}{summary}\n", table(&cols, &rows)),
    }
}

/// `tokbench check --accept RUN`: every series of RUN restarts its baseline at RUN.
async fn accept_command(
    db: &std::path::Path,
    shown: &str,
    run: &RunSelector,
    note: &str,
) -> anyhow::Result<ExitCode> {
    crate::output::existing_db(db)?;
    let store = Store::open(db)
        .await
        .with_context(|| format!("cannot open the results database {shown}"))?;
    let Some((run_uuid, started_at)) = store.resolve_run(run).await? else {
        return Err(crate::output::no_run(run, shown).into());
    };
    let keys: BTreeSet<String> = store
        .run_series(&run_uuid)
        .await?
        .into_iter()
        .map(|r| r.series_key)
        .collect();
    let now = fmt_time(OffsetDateTime::now_utc());
    for k in &keys {
        store.add_change_point(k, &started_at, note, &now).await?;
    }
    store.close().await;
    eprintln!(
        "check: {} series restart their baseline at run {run_uuid} ({started_at}): {note}",
        keys.len()
    );
    Ok(ExitCode::Ok)
}
