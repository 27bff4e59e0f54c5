//! What to draw: chart specifications built from the rows.

use super::*;

/// Generation tok/s by hardware: one chart per test, bars grouped by model + quant.
pub(super) fn gen_by_hardware(rows: &[ReportRow]) -> Vec<Spec> {
    let kind = Kind {
        id: "gen_tps_by_hardware",
        title: "Generation tok/s by hardware",
        missing: "without a generation speed",
        relevant: "generation results",
    };
    bars_per_test(rows, &kind, "generation tok/s", false, |r| {
        finite_nonneg(r.point.decode_tps).map(|v| (v, finite_nonneg(r.point.decode_tps_sd)))
    })
}

/// Roofline fraction by hardware: one chart per test, bars grouped by model + quant.
pub(super) fn roofline_by_hardware(rows: &[ReportRow]) -> Vec<Spec> {
    let kind = Kind {
        id: "roofline_by_hardware",
        title: "Roofline fraction by hardware",
        missing: "without memory bandwidth, model size or generation speed",
        relevant: "generation results",
    };
    bars_per_test(
        rows,
        &kind,
        "share of the memory-bandwidth limit",
        true,
        |r| finite_nonneg(r.derived.roofline_fraction).map(|v| (v, None)),
    )
}

pub(super) fn bars_per_test(
    rows: &[ReportRow],
    kind: &Kind,
    x_desc: &str,
    percent: bool,
    value: impl Fn(&ReportRow) -> Option<(f64, Option<f64>)>,
) -> Vec<Spec> {
    let mut specs = Vec::new();
    let mut empty = Vec::new();
    for (test, rs) in decode_by_test(rows) {
        let shown: Vec<BarValue<'_>> = rs
            .iter()
            .filter_map(|r| value(r).map(|(v, sd)| (*r, v, sd)))
            .collect();
        let missing = rs.len() - shown.len();
        if shown.is_empty() {
            empty.push((test.to_string(), missing));
            continue;
        }
        let mut by_group: BTreeMap<String, Vec<BarValue<'_>>> = BTreeMap::new();
        for s in shown {
            by_group.entry(model_quant(&s.0.point)).or_default().push(s);
        }
        let groups = by_group
            .into_iter()
            .map(|(name, mut members)| {
                let labels = distinct_labels(
                    &members
                        .iter()
                        .map(|(r, _, _)| (r.point.hardware.name.clone(), &r.point))
                        .collect::<Vec<_>>(),
                );
                let mut bars: Vec<Bar> = members
                    .drain(..)
                    .zip(labels)
                    .map(|((_, value, sd), label)| Bar { label, value, sd })
                    .collect();
                bars.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.label.cmp(&b.label)));
                BarGroup { name, bars }
            })
            .collect();
        let what = if percent {
            "Decode tok/s × bytes read per token ÷ memory bandwidth; 100% is the bandwidth limit."
        } else {
            "Decode tok/s; whiskers show ± 1 standard deviation where measured."
        };
        specs.push(Spec {
            id: kind.id(test),
            title: format!("{} — {test}", kind.title),
            caption: join_caption(what, missing, kind.missing),
            body: Body::Bars(Bars {
                x_desc: x_desc.to_string(),
                groups,
                percent,
                reference: percent.then(|| (1.0, "roofline".to_string())),
            }),
        });
    }
    if specs.is_empty() || !empty.is_empty() {
        specs.push(kind.no_data(&empty));
    }
    specs
}

/// Value: tok/s per $1k (x) against tok/s per 100 W TDP (y), one chart per test, one panel
/// per model + quant, the Pareto frontier filled and joined.
pub(super) fn value(rows: &[ReportRow]) -> Vec<Spec> {
    let kind = Kind {
        id: "value",
        title: "Value: tok/s per $1k vs per 100 W TDP",
        missing: "without MSRP, TDP or generation speed",
        relevant: "generation results",
    };
    let mut specs = Vec::new();
    let mut empty = Vec::new();
    for (test, rs) in decode_by_test(rows) {
        let mut by_mq: BTreeMap<String, Vec<&ReportRow>> = BTreeMap::new();
        for r in rs {
            by_mq.entry(model_quant(&r.point)).or_default().push(r);
        }
        let mut panels = Vec::new();
        let mut missing = 0;
        for (mq, members) in by_mq {
            let shown: Vec<XY<'_>> = members
                .iter()
                .filter_map(|r| {
                    let x = finite_nonneg(r.derived.tps_per_1k_usd)?;
                    let y = finite_nonneg(r.derived.tps_per_100w_tdp)?;
                    Some((*r, x, y))
                })
                .collect();
            missing += members.len() - shown.len();
            if shown.is_empty() {
                continue;
            }
            let labels = distinct_labels(
                &shown
                    .iter()
                    .map(|(r, _, _)| (r.point.hardware.name.clone(), &r.point))
                    .collect::<Vec<_>>(),
            );
            let xy: Vec<(f64, f64)> = shown.iter().map(|(_, x, y)| (*x, *y)).collect();
            let mut front = Vec::new();
            let mut dominated = Vec::new();
            for ((&(x, y), label), on) in xy.iter().zip(labels).zip(pareto_frontier(&xy)) {
                let pt = Pt { x, y, label };
                if on {
                    front.push(pt);
                } else {
                    dominated.push(pt);
                }
            }
            panels.push(Panel {
                title: mq,
                series: vec![
                    Series {
                        marker: Marker::nth("Pareto frontier", 0),
                        points: front,
                    },
                    Series {
                        marker: Marker {
                            name: "dominated".to_string(),
                            color: None,
                            shape: Shape::Circle,
                        },
                        points: dominated,
                    },
                ],
            });
        }
        if panels.is_empty() {
            empty.push((test.to_string(), missing));
            continue;
        }
        specs.push(Spec {
            id: kind.id(test),
            title: format!("Value — {test}"),
            caption: join_caption(
                "One point per hardware, one panel per model and quantization. Filled points \
                 are on the Pareto frontier: no other hardware is better on both axes.",
                missing,
                kind.missing,
            ),
            body: Body::Scatter(Scatter {
                x_desc: "generation tok/s per $1k of MSRP".to_string(),
                y_desc: "generation tok/s per 100 W of TDP".to_string(),
                log: false,
                lines: true,
                point_labels: true,
                from_zero: (true, true),
                max_cols: 2,
                legend: vec![],
                panels,
            }),
        });
    }
    if specs.is_empty() || !empty.is_empty() {
        specs.push(kind.no_data(&empty));
    }
    specs
}

/// Generation tok/s against bits per weight: one chart per test, one panel per hardware,
/// one line per model through its quantizations.
pub(super) fn gen_by_bpw(rows: &[ReportRow]) -> Vec<Spec> {
    let kind = Kind {
        id: "gen_tps_by_bpw",
        title: "Generation tok/s by bits per weight",
        missing: "without model size or generation speed",
        relevant: "generation results",
    };
    let mut specs = Vec::new();
    let mut empty = Vec::new();
    for (test, rs) in decode_by_test(rows) {
        let shown: Vec<XY<'_>> = rs
            .iter()
            .filter_map(|r| {
                let x = bits_per_weight(&r.point.facts).filter(|b| b.is_finite())?;
                let y = finite_nonneg(r.point.decode_tps)?;
                Some((*r, x, y))
            })
            .collect();
        let missing = rs.len() - shown.len();
        if shown.is_empty() {
            empty.push((test.to_string(), missing));
            continue;
        }
        // One colour per model across all panels.
        let models: BTreeSet<&str> = shown
            .iter()
            .map(|(r, _, _)| r.point.series.model.name.as_str())
            .collect();
        let legend: Vec<Marker> = models
            .iter()
            .enumerate()
            .map(|(i, m)| Marker::nth(*m, i))
            .collect();
        let marker_of = |model: &str| {
            let i = models.iter().position(|m| *m == model).unwrap_or(0);
            legend[i].clone()
        };
        let mut by_hw: BTreeMap<&str, BTreeMap<&str, Vec<XY<'_>>>> = BTreeMap::new();
        for s in shown {
            by_hw
                .entry(s.0.point.hardware.name.as_str())
                .or_default()
                .entry(s.0.point.series.model.name.as_str())
                .or_default()
                .push(s);
        }
        let panels = by_hw
            .into_iter()
            .map(|(hw, by_model)| Panel {
                title: hw.to_string(),
                series: by_model
                    .into_iter()
                    .map(|(model, members)| {
                        let labels = distinct_labels(
                            &members
                                .iter()
                                .map(|(r, _, _)| (r.point.series.model.quant.clone(), &r.point))
                                .collect::<Vec<_>>(),
                        );
                        Series {
                            marker: marker_of(model),
                            points: members
                                .iter()
                                .zip(labels)
                                .map(|((_, x, y), label)| Pt {
                                    x: *x,
                                    y: *y,
                                    label,
                                })
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect();
        specs.push(Spec {
            id: kind.id(test),
            title: format!("Generation tok/s by bits per weight — {test}"),
            caption: join_caption(
                "One panel per hardware, one line per model through its quantizations; bits \
                 per weight = tensor bytes × 8 ÷ parameters.",
                missing,
                kind.missing,
            ),
            body: Body::Scatter(Scatter {
                x_desc: "bits per weight".to_string(),
                y_desc: "generation tok/s".to_string(),
                log: false,
                lines: true,
                point_labels: true,
                from_zero: (false, true),
                max_cols: 3,
                legend,
                panels,
            }),
        });
    }
    if specs.is_empty() || !empty.is_empty() {
        specs.push(kind.no_data(&empty));
    }
    specs
}

/// Prefill against generation tok/s at depth 0, log-log: each point pairs the largest
/// prefill test and the largest generation test of one hardware, model, quant, backend and
/// engine setting. One series (colour and shape) per hardware.
pub(super) fn prefill_vs_gen(rows: &[ReportRow]) -> Vec<Spec> {
    let kind = Kind {
        id: "prefill_vs_gen",
        title: "Prefill vs generation tok/s",
        missing: "without both a prefill and a generation speed",
        relevant: "prefill or generation results at depth 0",
    };
    /// The best candidate so far: (size of the test, started_at, run) and the value.
    type Best<'a> = Option<((u32, &'a str, &'a str), f64)>;
    let mut pairs: BTreeMap<SeriesKey, (&ResultPoint, Best<'_>, Best<'_>)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.point.series.test.n_depth == 0) {
        let p = &r.point;
        let entry = pairs.entry(pair_key(p)).or_insert((p, None, None));
        let better = |best: &Best<'_>, n: u32| {
            best.is_none_or(|(k, _)| (n, p.started_at.as_str(), p.run_uuid.as_str()) > k)
        };
        if let Some(v) = finite_pos(p.prefill_tps).filter(|_| p.series.test.n_prompt > 0) {
            if better(&entry.1, p.series.test.n_prompt) {
                entry.1 = Some(((p.series.test.n_prompt, &p.started_at, &p.run_uuid), v));
            }
        }
        if let Some(v) = finite_pos(p.decode_tps).filter(|_| p.series.test.n_gen > 0) {
            if better(&entry.2, p.series.test.n_gen) {
                entry.2 = Some(((p.series.test.n_gen, &p.started_at, &p.run_uuid), v));
            }
        }
    }
    let n_keys = pairs.len();
    let mut by_hw: BTreeMap<&str, Vec<(&ResultPoint, f64, f64)>> = BTreeMap::new();
    for (p, pre, gen) in pairs.into_values() {
        if let (Some((_, x)), Some((_, y))) = (pre, gen) {
            by_hw
                .entry(p.hardware.name.as_str())
                .or_default()
                .push((p, x, y));
        }
    }
    let n_shown: usize = by_hw.values().map(Vec::len).sum();
    let missing = n_keys - n_shown;
    let what = "Each point pairs the largest prefill and generation tests (depth 0) of one \
                hardware, model, quantization and backend; log scales.";
    let caption = if missing == 0 {
        what.to_string()
    } else {
        format!("{what} {}.", not_shown_setups(missing))
    };
    if n_shown == 0 {
        let mut spec = kind.no_data(&[]);
        if n_keys > 0 {
            spec.caption = caption;
        }
        return vec![spec];
    }
    let series: Vec<Series> = by_hw
        .into_iter()
        .enumerate()
        .map(|(i, (hw, members))| Series {
            marker: Marker::nth(hw, i),
            points: members
                .iter()
                .map(|(p, x, y)| Pt {
                    x: *x,
                    y: *y,
                    label: model_quant(p),
                })
                .collect(),
        })
        .collect();
    vec![Spec {
        id: kind.id.to_string(),
        title: kind.title.to_string(),
        caption,
        body: Body::Scatter(Scatter {
            x_desc: "prefill tok/s".to_string(),
            y_desc: "generation tok/s".to_string(),
            log: true,
            lines: false,
            // Each point names its model and quantization (the colour is the hardware),
            // unless there are so many that the names would cover the points.
            point_labels: n_shown <= MAX_POINT_LABELS,
            from_zero: (false, false),
            max_cols: 1,
            legend: series.iter().map(|s| s.marker.clone()).collect(),
            panels: vec![Panel {
                title: String::new(),
                series,
            }],
        }),
    }]
}

/// The most points a scatter labels one by one.
pub(super) const MAX_POINT_LABELS: usize = 24;

/// Rows of generation tests, by test label.
pub(super) fn decode_by_test(rows: &[ReportRow]) -> BTreeMap<&str, Vec<&ReportRow>> {
    let mut by_test: BTreeMap<&str, Vec<&ReportRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.point.series.test.n_gen > 0) {
        by_test.entry(r.point.test.as_str()).or_default().push(r);
    }
    by_test
}

/// What makes a prefill and a generation result one pair: their series, apart from the
/// test's sizes.
pub(super) fn pair_key(p: &ResultPoint) -> SeriesKey {
    p.series.without_test_size()
}

// ---------------------------------------------------------------------------------------
// Small pure helpers.

/// `v` when it is a finite number ≥ 0.
pub(super) fn finite_nonneg(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
}

/// `v` when it is a finite number > 0 (log axes).
pub(super) fn finite_pos(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v > 0.0)
}

pub(super) fn model_quant(p: &ResultPoint) -> String {
    format!("{} {}", p.series.model.name, p.series.model.quant)
}

pub(super) fn not_shown(n: usize, missing: &str) -> String {
    let results = if n == 1 { "result" } else { "results" };
    format!("{n} {results} {missing} not shown")
}

pub(super) fn not_shown_setups(n: usize) -> String {
    let what = if n == 1 { "setup" } else { "setups" };
    format!("{n} {what} without both a prefill and a generation speed not shown")
}

pub(super) fn join_caption(what: &str, missing: usize, why: &str) -> String {
    if missing == 0 {
        what.to_string()
    } else {
        format!("{what} {}.", not_shown(missing, why))
    }
}

/// Labels that tell the items apart: each item's base label, and where several items share
/// one, the parts of their setup that differ (test, backend, engine settings, run).
pub(super) fn distinct_labels(items: &[(String, &ResultPoint)]) -> Vec<String> {
    let parts = |p: &ResultPoint| -> Vec<String> {
        vec![
            p.test.clone(),
            format!("{} {}", p.series.backend_label(), p.series.backend.accel),
            p.backend_version.clone(),
            p.series.settings_label(),
            p.host.clone(),
            p.run_uuid.chars().take(8).collect(),
        ]
    };
    let mut by_base: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (base, _)) in items.iter().enumerate() {
        by_base.entry(base.as_str()).or_default().push(i);
    }
    let mut labels: Vec<String> = items.iter().map(|(base, _)| base.clone()).collect();
    for (base, idx) in by_base {
        if idx.len() < 2 {
            continue;
        }
        let all: Vec<Vec<String>> = idx.iter().map(|&i| parts(items[i].1)).collect();
        let n_parts = all[0].len();
        let differing: Vec<usize> = (0..n_parts)
            .filter(|&k| all.iter().any(|ps| ps[k] != all[0][k]))
            .collect();
        for (&i, ps) in idx.iter().zip(&all) {
            let extra: Vec<&str> = differing
                .iter()
                .map(|&k| ps[k].as_str())
                .filter(|s| !s.is_empty())
                .collect();
            labels[i] = if extra.is_empty() {
                base.to_string()
            } else {
                format!("{base} · {}", extra.join(" · "))
            };
        }
    }
    // Items identical in every part (the same result twice) are numbered.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for l in &labels {
        *count.entry(l.clone()).or_default() += 1;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for l in labels.iter_mut() {
        if count[l.as_str()] > 1 {
            let n = seen.entry(l.clone()).or_default();
            *n += 1;
            l.push_str(&format!(" #{n}"));
        }
    }
    labels
}

/// `id`, or `id-2`, `id-3` … when taken.
pub(super) fn unique_id(seen: &mut BTreeSet<String>, id: &str) -> String {
    let mut candidate = id.to_string();
    let mut n = 1;
    while !seen.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{id}-{n}");
    }
    candidate
}

/// At most `max` characters, the rest replaced by `…`.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A readable number: 3 significant figures up to 1000, whole numbers beyond.
pub(super) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub(super) fn fmt_percent(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// Greedy word wrap at `width` characters.
pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
