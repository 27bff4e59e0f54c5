//! The report's plots: generation speed by hardware, value (tok/s per $1k against tok/s per
//! 100 W of TDP, with the Pareto frontier), generation speed against bits per weight,
//! prefill against generation speed, and roofline fraction by hardware.
//!
//! Each chart is drawn once, as SVG, by `plotters`; the PNG is that SVG rasterized by
//! `resvg` with DejaVu Sans embedded in the binary, so both files show the same picture and
//! neither depends on the fonts of the machine that renders them. Nothing here writes a
//! file: [`render`] returns [`Plot`]s and [`files`] turns them into [`ReportFile`]s.
//!
//! A result without the input a chart needs (no MSRP, no bandwidth, a failed test) is left
//! out of that chart, and the chart's caption says how many were. Every chart but the
//! prefill one covers one generation test (`tg128`, `tg128 @ d4096`), so that its bars and
//! points are comparable; the value and bits-per-weight charts are small multiples (a panel
//! per model and quantization, a panel per hardware). Tests where nothing can be drawn are
//! folded into one "no data" chart per kind that says what was missing. Output is
//! deterministic: the same rows give the same bytes (ordered maps only, no clock, no
//! randomness).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::tiny_skia;
use resvg::usvg;
use tokbench_core::{ModelFacts, ResultPoint, SeriesKey};

use crate::tables::slug;
use crate::{ReportFile, ReportRow};

/// One chart, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plot {
    /// Stable id: the file stem under `plots/` and the HTML anchor
    /// (`gen_tps_by_hardware-tg128`).
    pub id: String,
    pub title: String,
    /// What the chart shows and how many results it leaves out. Also drawn in the chart.
    pub caption: String,
    /// A standalone SVG document (`<svg …>…</svg>`); text from the data is escaped.
    pub svg: String,
    /// The same chart as PNG, at [`PNG_SCALE`] times the SVG's size.
    pub png: Vec<u8>,
}

impl Plot {
    /// `plots/<id>.svg`, relative to the report directory.
    pub fn svg_path(&self) -> String {
        format!("plots/{}.svg", self.id)
    }

    /// `plots/<id>.png`, relative to the report directory.
    pub fn png_path(&self) -> String {
        format!("plots/{}.png", self.id)
    }

    /// The SVG and PNG files of this chart.
    pub fn files(&self) -> [ReportFile; 2] {
        [
            ReportFile {
                path: self.svg_path(),
                bytes: self.svg.clone().into_bytes(),
            },
            ReportFile {
                path: self.png_path(),
                bytes: self.png.clone(),
            },
        ]
    }
}

/// A chart that could not be drawn or rasterized.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing plot `{id}`")]
    Draw {
        id: String,
        #[source]
        source: DrawingAreaErrorKind<std::io::Error>,
    },
    #[error("reading back the SVG of plot `{id}`")]
    Svg {
        id: String,
        #[source]
        source: usvg::Error,
    },
    #[error("plot `{id}` has an empty or oversized canvas")]
    Canvas { id: String },
    #[error("encoding the PNG of plot `{id}`")]
    Png {
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// PNG pixels per SVG unit.
pub const PNG_SCALE: f32 = 1.5;

/// Renders every chart of the report from `rows`, in a fixed order: generation tok/s by
/// hardware, value (per $1k against per 100 W), generation tok/s by bits per weight,
/// prefill against generation, roofline fraction. Every kind yields at least one chart
/// (a "no data" one when nothing can be drawn); no input, NaN included, makes it panic.
pub fn render(rows: &[ReportRow]) -> Result<Vec<Plot>, PlotError> {
    let mut specs = Vec::new();
    specs.extend(gen_by_hardware(rows));
    specs.extend(value(rows));
    specs.extend(gen_by_bpw(rows));
    specs.extend(prefill_vs_gen(rows));
    specs.extend(roofline_by_hardware(rows));
    let mut seen = BTreeSet::new();
    specs
        .into_iter()
        .map(|mut spec| {
            spec.id = unique_id(&mut seen, &spec.id);
            draw(spec)
        })
        .collect()
}

/// The SVG and PNG files of `plots`, in order.
pub fn files(plots: &[Plot]) -> Vec<ReportFile> {
    plots.iter().flat_map(Plot::files).collect()
}

/// Bits per weight: all tensor bytes × 8 ÷ parameters. `None` when either is unknown or
/// the parameter count is 0.
pub fn bits_per_weight(facts: &ModelFacts) -> Option<f64> {
    let ModelFacts {
        n_params,
        tensor_bytes,
        ..
    } = *facts;
    let n_params = n_params.filter(|n| *n > 0)?;
    Some(tensor_bytes? as f64 * 8.0 / n_params as f64)
}

/// For each point (x, y), where larger is better on both axes: true if and only if the
/// point is finite and no other finite point is at least as good on both axes and better
/// on one. Equal points are all on the frontier.
pub fn pareto_frontier(points: &[(f64, f64)]) -> Vec<bool> {
    let finite = |(x, y): (f64, f64)| x.is_finite() && y.is_finite();
    points
        .iter()
        .map(|&(x, y)| {
            finite((x, y))
                && !points
                    .iter()
                    .any(|&(ox, oy)| finite((ox, oy)) && ox >= x && oy >= y && (ox > x || oy > y))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// What to draw: chart specifications built from the rows.

/// A chart before drawing.
struct Spec {
    id: String,
    title: String,
    caption: String,
    body: Body,
}

enum Body {
    NoData,
    Bars(Bars),
    Scatter(Scatter),
}

/// Horizontal bars in labelled groups, first group at the top.
struct Bars {
    x_desc: String,
    groups: Vec<BarGroup>,
    /// Values are fractions, shown as percentages.
    percent: bool,
    /// A vertical reference line and its label (the roofline at 100%).
    reference: Option<(f64, String)>,
}

struct BarGroup {
    name: String,
    bars: Vec<Bar>,
}

struct Bar {
    label: String,
    value: f64,
    /// One standard deviation, drawn as a whisker.
    sd: Option<f64>,
}

/// Points in one panel or several (small multiples), sharing axis titles and a legend.
struct Scatter {
    x_desc: String,
    y_desc: String,
    /// Both axes logarithmic; else both linear.
    log: bool,
    /// Lines join the points of a coloured series in x order.
    lines: bool,
    /// Each point's label is drawn beside it.
    point_labels: bool,
    /// Linear axes start at 0 (x, y); else they fit the points.
    from_zero: (bool, bool),
    /// Panels per row, at most.
    max_cols: usize,
    /// Drawn in rows above the panels; empty: no legend.
    legend: Vec<Marker>,
    panels: Vec<Panel>,
}

struct Panel {
    /// Drawn above the panel when there are several.
    title: String,
    series: Vec<Series>,
}

struct Series {
    marker: Marker,
    points: Vec<Pt>,
}

/// How a series looks, and its name in a legend.
#[derive(Clone)]
struct Marker {
    name: String,
    /// Palette index; `None` draws hollow grey points (dominated, background).
    color: Option<usize>,
    shape: Shape,
}

impl Marker {
    /// The `i`-th series: the palette's colours with circles, then again with triangles,
    /// then squares.
    fn nth(name: impl Into<String>, i: usize) -> Self {
        let shape = [Shape::Circle, Shape::Triangle, Shape::Square][(i / PALETTE.len()) % 3];
        Self {
            name: name.into(),
            color: Some(i),
            shape,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Circle,
    Triangle,
    Square,
}

struct Pt {
    x: f64,
    y: f64,
    label: String,
}

/// A row drawn at (x, y).
type XY<'a> = (&'a ReportRow, f64, f64);
/// A row drawn as a bar: its value and standard deviation.
type BarValue<'a> = (&'a ReportRow, f64, Option<f64>);

/// Charts of one kind where every scope with something to draw gets a chart, and the
/// scopes with nothing to draw share one "no data" chart that says what was missing.
struct Kind {
    id: &'static str,
    title: &'static str,
    /// "without a generation speed": completes "N results … not shown".
    missing: &'static str,
    /// The rows the kind looks at (decode tests for decode charts).
    relevant: &'static str,
}

impl Kind {
    fn no_data(&self, empty: &[(String, usize)]) -> Spec {
        let caption = if empty.is_empty() {
            format!("Nothing to show: no {}.", self.relevant)
        } else {
            let n: usize = empty.iter().map(|(_, n)| n).sum();
            let names: Vec<&str> = empty.iter().map(|(s, _)| s.as_str()).collect();
            let shown = names.iter().take(4).copied().collect::<Vec<_>>().join("; ");
            let more = names.len().saturating_sub(4);
            let more = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            format!("{} ({shown}{more}).", not_shown(n, self.missing))
        };
        Spec {
            id: self.id.to_string(),
            title: self.title.to_string(),
            caption,
            body: Body::NoData,
        }
    }

    fn id(&self, scope: &str) -> String {
        format!("{}-{}", self.id, slug(scope))
    }
}

/// Generation tok/s by hardware: one chart per test, bars grouped by model + quant.
fn gen_by_hardware(rows: &[ReportRow]) -> Vec<Spec> {
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
fn roofline_by_hardware(rows: &[ReportRow]) -> Vec<Spec> {
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

fn bars_per_test(
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
fn value(rows: &[ReportRow]) -> Vec<Spec> {
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
fn gen_by_bpw(rows: &[ReportRow]) -> Vec<Spec> {
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
fn prefill_vs_gen(rows: &[ReportRow]) -> Vec<Spec> {
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
            point_labels: false,
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

/// Rows of generation tests, by test label.
fn decode_by_test(rows: &[ReportRow]) -> BTreeMap<&str, Vec<&ReportRow>> {
    let mut by_test: BTreeMap<&str, Vec<&ReportRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.point.series.test.n_gen > 0) {
        by_test.entry(r.point.test.as_str()).or_default().push(r);
    }
    by_test
}

/// What makes a prefill and a generation result one pair: their series, apart from the
/// test's sizes.
fn pair_key(p: &ResultPoint) -> SeriesKey {
    p.series.without_test_size()
}

// ---------------------------------------------------------------------------------------
// Small pure helpers.

/// `v` when it is a finite number ≥ 0.
fn finite_nonneg(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
}

/// `v` when it is a finite number > 0 (log axes).
fn finite_pos(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v > 0.0)
}

fn model_quant(p: &ResultPoint) -> String {
    format!("{} {}", p.series.model.name, p.series.model.quant)
}

fn not_shown(n: usize, missing: &str) -> String {
    let results = if n == 1 { "result" } else { "results" };
    format!("{n} {results} {missing} not shown")
}

fn not_shown_setups(n: usize) -> String {
    let what = if n == 1 { "setup" } else { "setups" };
    format!("{n} {what} without both a prefill and a generation speed not shown")
}

fn join_caption(what: &str, missing: usize, why: &str) -> String {
    if missing == 0 {
        what.to_string()
    } else {
        format!("{what} {}.", not_shown(missing, why))
    }
}

/// Labels that tell the items apart: each item's base label, and where several items share
/// one, the parts of their setup that differ (test, backend, engine settings, run).
fn distinct_labels(items: &[(String, &ResultPoint)]) -> Vec<String> {
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
fn unique_id(seen: &mut BTreeSet<String>, id: &str) -> String {
    let mut candidate = id.to_string();
    let mut n = 1;
    while !seen.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{id}-{n}");
    }
    candidate
}

/// At most `max` characters, the rest replaced by `…`.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A readable number: 3 significant figures up to 1000, whole numbers beyond.
fn fmt_num(v: f64) -> String {
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

fn fmt_percent(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// Greedy word wrap at `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
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

// ---------------------------------------------------------------------------------------
// Drawing.

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

/// Canvas width, SVG units.
const WIDTH: u32 = 960;
/// The generic family: browsers pick their sans-serif, the PNG gets DejaVu Sans.
const FONT: &str = "sans-serif";
/// Rough width of one character of label text (13 px DejaVu Sans), for layout.
const CHAR_W: f64 = 7.4;
/// Height of one bar row.
const ROW_H: u32 = 26;

const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);
const GRID: RGBColor = RGBColor(0xf0, 0xf0, 0xf0);
const GRID_BOLD: RGBColor = RGBColor(0xd4, 0xd4, 0xd4);
const DOMINATED: RGBColor = RGBColor(0x99, 0x99, 0x99);
const REFERENCE: RGBColor = RGBColor(0xc0, 0x39, 0x2b);

/// Tableau 10: distinct, colour-blind aware, readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

fn palette(i: usize) -> &'static RGBColor {
    &PALETTE[i % PALETTE.len()]
}

/// A text style of `px` pixels (plotters scales its sizes by 1/1.24 in SVG).
fn font(px: f64) -> FontDesc<'static> {
    (FONT, px * 1.24).into_font()
}

fn bold(px: f64) -> FontDesc<'static> {
    (FONT, px * 1.24, FontStyle::Bold).into_font()
}

fn draw(spec: Spec) -> Result<Plot, PlotError> {
    let caption_lines = wrap(&spec.caption, 125);
    let header_h = 46 + 18 * caption_lines.len() as u32;
    let body_h = match &spec.body {
        Body::NoData => 120,
        Body::Bars(b) => {
            let n_rows: usize = b.groups.iter().map(|g| 1 + g.bars.len()).sum();
            64 + ROW_H * n_rows as u32
        }
        Body::Scatter(s) => scatter_height(s),
    };
    let size = (WIDTH, header_h + body_h);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let drawn = (|| -> DrawResult<()> {
            root.fill(&WHITE)?;
            let (header, body) = root.split_vertically(header_h);
            draw_header(&header, &spec.title, &caption_lines)?;
            match &spec.body {
                Body::NoData => draw_no_data(&body),
                Body::Bars(b) => draw_bars(&root, &body, b),
                Body::Scatter(s) => draw_scatter(&body, s),
            }?;
            root.present()
        })();
        drawn.map_err(|source| PlotError::Draw {
            id: spec.id.clone(),
            source,
        })?;
    }
    let png = png_from_svg(&spec.id, &svg)?;
    Ok(Plot {
        id: spec.id,
        title: spec.title,
        caption: spec.caption,
        svg,
        png,
    })
}

fn draw_header(area: &Area<'_>, title: &str, caption: &[String]) -> DrawResult<()> {
    area.draw(&Text::new(
        truncate(title, 80),
        (16, 14),
        bold(19.0).color(&TEXT),
    ))?;
    for (i, line) in caption.iter().enumerate() {
        area.draw(&Text::new(
            line.clone(),
            (16, 44 + 18 * i as i32),
            font(13.0).color(&MUTED),
        ))?;
    }
    Ok(())
}

fn draw_no_data(area: &Area<'_>) -> DrawResult<()> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        "no data",
        (w as i32 / 2, h as i32 / 2),
        font(22.0)
            .color(&DOMINATED)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))
}

/// Draws `bars` into `body`; labels are drawn on `root` (absolute pixels), left of the
/// plotting area.
fn draw_bars(root: &Area<'_>, body: &Area<'_>, bars: &Bars) -> DrawResult<()> {
    let n_rows: usize = bars.groups.iter().map(|g| 1 + g.bars.len()).sum();
    let longest = bars
        .groups
        .iter()
        .flat_map(|g| &g.bars)
        .map(|b| truncate(&b.label, 44).chars().count())
        .max()
        .unwrap_or(0);
    let label_w = (longest as f64 * CHAR_W + 24.0).clamp(120.0, 360.0) as u32;
    let max = bars
        .groups
        .iter()
        .flat_map(|g| &g.bars)
        .map(|b| b.value + b.sd.unwrap_or(0.0))
        .chain(bars.reference.iter().map(|(x, _)| *x))
        .fold(0.0_f64, f64::max);
    // Room on the right for the value printed after the longest bar.
    let x_max = if max > 0.0 { max * 1.18 } else { 1.0 };
    let top = n_rows as f64;
    let mut chart = ChartBuilder::on(body)
        .margin_left(16)
        .margin_right(24)
        .margin_top(4)
        .margin_bottom(8)
        .x_label_area_size(48)
        .y_label_area_size(label_w)
        .build_cartesian_2d(0.0..x_max, 0.0..top)?;
    let percent = bars.percent;
    let x_fmt = move |v: &f64| {
        if percent {
            fmt_percent(*v)
        } else {
            fmt_num(*v)
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .max_light_lines(1)
        .x_label_formatter(&x_fmt)
        .x_desc(bars.x_desc.as_str())
        .axis_desc_style(font(13.0).color(&TEXT))
        .label_style(font(12.0).color(&MUTED))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID)
        .axis_style(MUTED)
        .draw()?;
    let label_x = chart.backend_coord(&(0.0, 0.0)).0 - 8;
    let group_x = label_x - label_w as i32 + 16;
    let mut row = 0usize;
    for (gi, group) in bars.groups.iter().enumerate() {
        let color = palette(gi);
        let y_mid = top - row as f64 - 0.5;
        let (_, py) = chart.backend_coord(&(0.0, y_mid));
        root.draw(&Text::new(
            truncate(&group.name, 90),
            (group_x, py),
            bold(13.0)
                .color(&TEXT)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        row += 1;
        for bar in &group.bars {
            let y0 = top - row as f64 - 1.0;
            let y_mid = y0 + 0.5;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0 + 0.18), (bar.value, y0 + 0.82)],
                color.filled(),
            )))?;
            let mut end = bar.value;
            if let Some(sd) = bar.sd.filter(|sd| *sd > 0.0) {
                let lo = (bar.value - sd).max(0.0);
                let hi = bar.value + sd;
                end = hi;
                let whisker = TEXT.stroke_width(1);
                chart.draw_series([
                    PathElement::new(vec![(lo, y_mid), (hi, y_mid)], whisker),
                    PathElement::new(vec![(lo, y_mid - 0.18), (lo, y_mid + 0.18)], whisker),
                    PathElement::new(vec![(hi, y_mid - 0.18), (hi, y_mid + 0.18)], whisker),
                ])?;
            }
            let text = if percent {
                fmt_percent(bar.value)
            } else {
                fmt_num(bar.value)
            };
            chart.draw_series(std::iter::once(
                EmptyElement::at((end, y_mid))
                    + Text::new(
                        text,
                        (6, 0),
                        font(12.0)
                            .color(&TEXT)
                            .pos(Pos::new(HPos::Left, VPos::Center)),
                    ),
            ))?;
            let (_, py) = chart.backend_coord(&(0.0, y_mid));
            root.draw(&Text::new(
                truncate(&bar.label, 44),
                (label_x, py),
                font(13.0)
                    .color(&TEXT)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            row += 1;
        }
    }
    if let Some((x, label)) = &bars.reference {
        chart.draw_series([PathElement::new(
            vec![(*x, 0.0), (*x, top)],
            REFERENCE.stroke_width(2),
        )])?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((*x, top))
                + Text::new(
                    label.clone(),
                    (4, 2),
                    font(11.0)
                        .color(&REFERENCE)
                        .pos(Pos::new(HPos::Left, VPos::Top)),
                ),
        ))?;
    }
    Ok(())
}

/// Height of one row of legend entries.
const LEGEND_ROW_H: u32 = 22;

/// Panels per row, rows, and the height of one panel.
fn scatter_grid(s: &Scatter) -> (usize, usize, u32) {
    let n = s.panels.len().max(1);
    let cols = n.min(s.max_cols.max(1));
    let rows = n.div_ceil(cols);
    let panel_h = match cols {
        1 => 560,
        2 => 380,
        _ => 320,
    };
    (cols, rows, panel_h)
}

/// Where each legend entry goes, left to right in rows across the canvas: (x, row), and
/// the number of rows.
fn legend_layout(entries: &[Marker]) -> (Vec<(i32, u32)>, u32) {
    let mut at = Vec::with_capacity(entries.len());
    let (mut x, mut row) = (16.0, 0);
    for m in entries {
        let w = 34.0 + CHAR_W * truncate(&m.name, 40).chars().count() as f64;
        if x + w > f64::from(WIDTH) - 16.0 && x > 16.0 {
            x = 16.0;
            row += 1;
        }
        at.push((x as i32, row));
        x += w;
    }
    let rows = if entries.is_empty() { 0 } else { row + 1 };
    (at, rows)
}

fn legend_height(entries: &[Marker]) -> u32 {
    match legend_layout(entries).1 {
        0 => 0,
        rows => 6 + LEGEND_ROW_H * rows,
    }
}

fn scatter_height(s: &Scatter) -> u32 {
    let (_, rows, panel_h) = scatter_grid(s);
    legend_height(&s.legend) + rows as u32 * panel_h + 8
}

fn draw_scatter(area: &Area<'_>, s: &Scatter) -> DrawResult<()> {
    let (legend_area, panels_area) = area.split_vertically(legend_height(&s.legend));
    draw_legend(&legend_area, &s.legend)?;
    let (cols, rows, panel_h) = scatter_grid(s);
    let (grid, _) = panels_area.split_vertically(rows as u32 * panel_h);
    let cells = grid.split_evenly((rows, cols));
    let title_chars = ((WIDTH as usize / cols).saturating_sub(40) as f64 / 8.0) as usize;
    for (panel, cell) in s.panels.iter().zip(&cells) {
        draw_panel(cell, s, panel, title_chars)?;
    }
    Ok(())
}

fn draw_legend(area: &Area<'_>, entries: &[Marker]) -> DrawResult<()> {
    let (at, _) = legend_layout(entries);
    for (m, (x, row)) in entries.iter().zip(at) {
        let y = 12 + (LEGEND_ROW_H * row) as i32;
        draw_marker_px(area, (x + 6, y), m)?;
        area.draw(&Text::new(
            truncate(&m.name, 40),
            (x + 18, y),
            font(13.0)
                .color(&TEXT)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

fn marker_color(m: &Marker) -> &'static RGBColor {
    m.color.map(palette).unwrap_or(&DOMINATED)
}

fn marker_style(m: &Marker) -> ShapeStyle {
    let color = marker_color(m);
    if m.color.is_some() {
        color.filled()
    } else {
        color.stroke_width(2)
    }
}

/// A marker at pixel `at` of `area` (legends).
fn draw_marker_px(area: &Area<'_>, (x, y): (i32, i32), m: &Marker) -> DrawResult<()> {
    let style = marker_style(m);
    match m.shape {
        Shape::Circle => area.draw(&Circle::new((x, y), 5, style)),
        Shape::Triangle => area.draw(&TriangleMarker::new((x, y), 6, style)),
        Shape::Square => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], style)),
    }
}

/// The panel's axis ranges from its points, with room for labels; linear axes start at 0
/// unless the points sit far from it.
fn draw_panel(area: &Area<'_>, s: &Scatter, panel: &Panel, title_chars: usize) -> DrawResult<()> {
    let pts = || panel.series.iter().flat_map(|se| &se.points);
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in pts() {
        x_lo = x_lo.min(p.x);
        x_hi = x_hi.max(p.x);
        y_lo = y_lo.min(p.y);
        y_hi = y_hi.max(p.y);
    }
    if x_lo > x_hi {
        (x_lo, x_hi, y_lo, y_hi) = (1.0, 1.0, 1.0, 1.0);
    }
    if s.log {
        // Room around the points, for labels.
        let (x0, x1) = (x_lo / 2.0, x_hi * 2.5);
        let (y0, y1) = (y_lo / 2.0, y_hi * 2.5);
        scatter_on(
            area,
            s,
            panel,
            title_chars,
            (x0..x1).log_scale(),
            (y0..y1).log_scale(),
        )
    } else {
        let axis = |lo: f64, hi: f64, from_zero: bool, right: f64| {
            let span = (hi - lo).max(hi.abs() * 0.1);
            let span = if span > 0.0 { span } else { 1.0 };
            let start = if from_zero && lo >= 0.0 {
                0.0
            } else {
                lo - span * 0.15
            };
            (start, hi + span * right)
        };
        // Labels go right of the points: more room on x.
        let right = if s.point_labels { 0.35 } else { 0.1 };
        let (x0, x1) = axis(x_lo, x_hi, s.from_zero.0, right);
        let (y0, y1) = axis(y_lo, y_hi, s.from_zero.1, 0.22);
        scatter_on(area, s, panel, title_chars, x0..x1, y0..y1)
    }
}

fn scatter_on<X, Y>(
    area: &Area<'_>,
    s: &Scatter,
    panel: &Panel,
    title_chars: usize,
    x: X,
    y: Y,
) -> DrawResult<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let many = s.panels.len() > 1;
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_left(12)
        .margin_right(20)
        .margin_top(8)
        .margin_bottom(4)
        .x_label_area_size(44)
        .y_label_area_size(64);
    if many {
        builder.caption(truncate(&panel.title, title_chars), bold(13.0).color(&TEXT));
    }
    let mut chart = builder.build_cartesian_2d(x, y)?;
    let ticks = if many { 5 } else { 10 };
    chart
        .configure_mesh()
        .x_labels(ticks)
        .y_labels(ticks)
        .max_light_lines(if s.log { 9 } else { 1 })
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc(s.x_desc.as_str())
        .y_desc(s.y_desc.as_str())
        .axis_desc_style(font(12.0).color(&TEXT))
        .label_style(font(11.0).color(&MUTED))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID)
        .axis_style(MUTED)
        .draw()?;
    for series in &panel.series {
        let m = &series.marker;
        let color = marker_color(m);
        let style = marker_style(m);
        let mut points: Vec<&Pt> = series.points.iter().collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
        if s.lines && m.color.is_some() && points.len() > 1 {
            chart.draw_series(std::iter::once(PathElement::new(
                points.iter().map(|p| (p.x, p.y)).collect::<Vec<_>>(),
                color.stroke_width(2),
            )))?;
        }
        let at = |p: &&Pt| (p.x, p.y);
        match m.shape {
            Shape::Circle => {
                chart.draw_series(points.iter().map(|p| Circle::new(at(p), 5, style)))?;
            }
            Shape::Triangle => {
                chart.draw_series(points.iter().map(|p| TriangleMarker::new(at(p), 6, style)))?;
            }
            Shape::Square => {
                chart.draw_series(points.iter().map(|p| {
                    EmptyElement::at(at(p)) + Rectangle::new([(-4, -4), (4, 4)], style)
                }))?;
            }
        }
        if s.point_labels {
            let max = if many { 26 } else { 36 };
            chart.draw_series(points.iter().map(|p| {
                EmptyElement::at(at(p))
                    + Text::new(
                        truncate(&p.label, max),
                        (7, -3),
                        font(11.0)
                            .color(&TEXT)
                            .pos(Pos::new(HPos::Left, VPos::Bottom)),
                    )
            }))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Rasterizing.

/// The fonts PNG text is drawn with: DejaVu Sans (regular and bold), for every generic
/// family. Loaded once; no system font is ever looked up.
fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        for bytes in [dejavu::sans::regular(), dejavu::sans::bold()] {
            db.load_font_source(usvg::fontdb::Source::Binary(Arc::new(bytes)));
        }
        let family = "DejaVu Sans";
        db.set_sans_serif_family(family);
        db.set_serif_family(family);
        db.set_monospace_family(family);
        db.set_cursive_family(family);
        db.set_fantasy_family(family);
        Arc::new(db)
    })
    .clone()
}

fn png_from_svg(id: &str, svg: &str) -> Result<Vec<u8>, PlotError> {
    let options = usvg::Options {
        font_family: "DejaVu Sans".to_string(),
        fontdb: fontdb(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|source| PlotError::Svg {
        id: id.to_string(),
        source,
    })?;
    let canvas = || PlotError::Canvas { id: id.to_string() };
    let size = tree
        .size()
        .to_int_size()
        .scale_by(PNG_SCALE)
        .ok_or_else(canvas)?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(canvas)?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(PNG_SCALE, PNG_SCALE),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| PlotError::Png {
        id: id.to_string(),
        source: Box::new(e),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokbench_core::catalog::{Hardware, HardwareConfig, HardwareKind, Sources};
    use tokbench_core::{
        BackendIdentity, EngineSettings, HardwareRef, ModelIdentity, ResultStatus, TestSpec,
    };

    use crate::Derived;

    /// A catalog entry with the figures the derived metrics use.
    pub(crate) fn hardware(
        name: &str,
        bandwidth_gbps: f64,
        tdp_w: f64,
        msrp_usd: f64,
    ) -> HardwareRef {
        let hw = Hardware {
            name: name.to_string(),
            vendor: "Test".to_string(),
            kind: HardwareKind::DiscreteGpu,
            aliases: vec![],
            memory_bytes: Some(24 << 30),
            memory_type: None,
            bandwidth_bytes_per_s: Some(bandwidth_gbps * 1e9),
            tdp_w: Some(tdp_w),
            msrp_usd: Some(msrp_usd),
            msrp_date: None,
            sources: Sources::default(),
            notes: None,
            file: "hardware.toml".into(),
            line: 1,
        };
        HardwareRef {
            name: name.to_string(),
            config: HardwareConfig::new(hw, 1).map(std::sync::Arc::new),
        }
    }

    /// One result; `decode` makes it a `tg128`, else a `pp512`.
    pub(crate) fn point(
        hw: HardwareRef,
        model: &str,
        quant: &str,
        decode: bool,
        tps: f64,
    ) -> ResultPoint {
        ResultPoint {
            run_uuid: "00000000-0000-0000-0000-000000000001".to_string(),
            started_at: "2026-01-01T00:00:00Z".to_string(),
            series: SeriesKey {
                // One machine per hardware target: its identity names its devices.
                host: format!("host|{}", hw.name),
                backend: BackendIdentity {
                    name: "engine".to_string(),
                    accel: "cuda".to_string(),
                    flags: String::new(),
                },
                model: ModelIdentity {
                    name: model.to_string(),
                    quant: quant.to_string(),
                    sha256: None,
                },
                test: TestSpec {
                    n_prompt: if decode { 0 } else { 512 },
                    n_gen: if decode { 128 } else { 0 },
                    n_depth: 0,
                },
                settings: EngineSettings {
                    n_gpu_layers: Some(99),
                    ..EngineSettings::default()
                },
                ..SeriesKey::default()
            },
            host: "host".to_string(),
            hardware: hw,
            backend_version: "b1".to_string(),
            facts: ModelFacts {
                n_params: Some(8_000_000_000),
                file_bytes: None,
                tensor_bytes: Some(if quant == "Q8_0" {
                    8_500_000_000
                } else {
                    4_700_000_000
                }),
                token_embd_bytes: None,
                output_bytes: None,
                n_layer: Some(32),
                kv_dim: Some(1024),
            },
            test: if decode { "tg128" } else { "pp512" }.to_string(),
            status: ResultStatus::Ok,
            prefill_tps: (!decode).then_some(tps),
            prefill_tps_sd: None,
            decode_tps: decode.then_some(tps),
            decode_tps_sd: decode.then_some(tps * 0.02),
            ttft_ms: None,
            decode_power_w: None,
            vram_peak_bytes: None,
            rss_peak_bytes: None,
            source: None,
        }
    }

    /// A row whose derived figures are computed here, not by `metrics`, so these tests
    /// check the plots alone.
    pub(crate) fn row(p: ResultPoint) -> ReportRow {
        let hw = &p.hardware;
        let tps = p.decode_tps;
        let derived = Derived {
            tps_per_1k_usd: tps.zip(hw.msrp_usd()).map(|(t, m)| t / (m / 1000.0)),
            tps_per_100w_tdp: tps.zip(hw.tdp_w()).map(|(t, w)| t / (w / 100.0)),
            roofline_fraction: tps
                .zip(hw.bandwidth_bytes_per_s())
                .zip(p.facts.tensor_bytes)
                .map(|((t, bw), b)| t * b as f64 / bw),
            ..Derived::default()
        };
        ReportRow { point: p, derived }
    }

    /// Three GPUs, two quants, prefill and generation each.
    pub(crate) fn sample_rows() -> Vec<ReportRow> {
        let gpus = [
            ("GeForce RTX 4090", 1008.0, 450.0, 1599.0, 1.0),
            ("GeForce RTX 3090", 936.0, 350.0, 1499.0, 0.85),
            ("Radeon RX 7900 XTX", 960.0, 355.0, 999.0, 0.7),
        ];
        let mut rows = Vec::new();
        for (name, bw, tdp, msrp, speed) in gpus {
            for (quant, tg, pp) in [("Q4_K_M", 130.0, 9000.0), ("Q8_0", 85.0, 8000.0)] {
                let hw = hardware(name, bw, tdp, msrp);
                rows.push(row(point(
                    hw.clone(),
                    "llama-3.1-8b",
                    quant,
                    true,
                    tg * speed,
                )));
                rows.push(row(point(hw, "llama-3.1-8b", quant, false, pp * speed)));
            }
        }
        rows
    }

    #[test]
    fn pareto_frontier_keeps_points_no_other_beats_on_both_axes() {
        let pts = [
            (1.0, 5.0),
            (2.0, 4.0),
            (1.5, 3.0),
            (3.0, 1.0),
            (2.0, 4.0),
            (0.5, 0.5),
        ];
        assert_eq!(
            pareto_frontier(&pts),
            vec![true, true, false, true, true, false]
        );
    }

    #[test]
    fn pareto_frontier_handles_empty_nan_and_ties_on_one_axis() {
        assert!(pareto_frontier(&[]).is_empty());
        // NaN is never on the frontier and never dominates.
        assert_eq!(
            pareto_frontier(&[(f64::NAN, 9.0), (1.0, 1.0), (f64::INFINITY, 1.0)]),
            vec![false, true, false]
        );
        // Same x, lower y: dominated.
        assert_eq!(
            pareto_frontier(&[(2.0, 2.0), (2.0, 1.0)]),
            vec![true, false]
        );
    }

    #[test]
    fn bits_per_weight_is_tensor_bits_over_params() {
        let facts = ModelFacts {
            n_params: Some(1_000),
            tensor_bytes: Some(1_063),
            ..ModelFacts::default()
        };
        assert_eq!(bits_per_weight(&facts), Some(8.504));
        let zero = ModelFacts {
            n_params: Some(0),
            ..facts
        };
        assert_eq!(bits_per_weight(&zero), None);
        assert_eq!(bits_per_weight(&ModelFacts::default()), None);
    }

    #[test]
    fn empty_input_gives_one_no_data_plot_per_kind() {
        let plots = render(&[]).unwrap();
        let ids: Vec<&str> = plots.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "gen_tps_by_hardware",
                "value",
                "gen_tps_by_bpw",
                "prefill_vs_gen",
                "roofline_by_hardware"
            ]
        );
        for p in &plots {
            assert!(p.svg.contains("no data"), "{}", p.id);
            assert!(p.png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", p.id);
        }
    }

    #[test]
    fn sample_rows_give_every_kind_of_chart() {
        let plots = render(&sample_rows()).unwrap();
        let ids: Vec<&str> = plots.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "gen_tps_by_hardware-tg128",
                "value-tg128",
                "gen_tps_by_bpw-tg128",
                "prefill_vs_gen",
                "roofline_by_hardware-tg128",
            ]
        );
        for p in &plots {
            assert!(!p.svg.contains("no data"), "{}", p.id);
            assert!(p.svg.contains("GeForce RTX") || p.id.starts_with("gen_tps_by_bpw"));
        }
        let files = files(&plots);
        assert_eq!(files.len(), 2 * plots.len());
        assert_eq!(files[0].path, "plots/gen_tps_by_hardware-tg128.svg");
        assert_eq!(files[1].path, "plots/gen_tps_by_hardware-tg128.png");
    }

    #[test]
    fn output_is_deterministic() {
        let a = render(&sample_rows()).unwrap();
        let b = render(&sample_rows()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rows_without_inputs_are_counted_in_the_caption() {
        let mut rows = sample_rows();
        // An unmatched CPU: no MSRP, TDP or bandwidth.
        let cpu = HardwareRef::unmatched("AMD EPYC 7B13 (CPU)");
        rows.push(row(point(cpu.clone(), "llama-3.1-8b", "Q8_0", true, 9.0)));
        rows.push(row(point(cpu, "llama-3.1-8b", "Q4_K_M", true, 14.0)));
        let plots = render(&rows).unwrap();
        let value = plots.iter().find(|p| p.id == "value-tg128").unwrap();
        assert!(
            value
                .caption
                .ends_with("2 results without MSRP, TDP or generation speed not shown."),
            "{}",
            value.caption
        );
        let roofline = plots
            .iter()
            .find(|p| p.id == "roofline_by_hardware-tg128")
            .unwrap();
        assert!(
            roofline.caption.contains("2 results without"),
            "{}",
            roofline.caption
        );
        // The CPU still has a generation speed: it is in the speed chart.
        let speed = plots
            .iter()
            .find(|p| p.id == "gen_tps_by_hardware-tg128")
            .unwrap();
        assert!(speed.svg.contains("AMD EPYC 7B13 (CPU)"));
    }

    #[test]
    fn nan_and_missing_values_do_not_panic() {
        let hw = hardware("NaN GPU", f64::NAN, f64::NAN, f64::NAN);
        let mut p = point(hw, "m", "Q4_0", true, f64::NAN);
        p.decode_tps_sd = Some(f64::INFINITY);
        p.facts.n_params = Some(0);
        let mut r = row(p.clone());
        r.derived.roofline_fraction = Some(f64::NAN);
        let mut q = point(HardwareRef::unmatched("x"), "m", "Q4_0", false, f64::NAN);
        q.prefill_tps = Some(-1.0);
        let plots = render(&[r, row(q)]).unwrap();
        assert!(plots.iter().all(|p| p.svg.contains("no data")));
    }

    #[test]
    fn zeros_and_single_points_draw() {
        let hw = hardware("GPU", 1000.0, 300.0, 1000.0);
        let mut r = row(point(hw.clone(), "m", "Q4_0", true, 0.0));
        r.derived.tps_per_1k_usd = Some(0.0);
        r.derived.tps_per_100w_tdp = Some(0.0);
        let plots = render(&[r, row(point(hw, "m", "Q4_0", false, 1.0))]).unwrap();
        let value = plots.iter().find(|p| p.id == "value-tg128").unwrap();
        assert!(value.svg.contains("GPU"));
        // Zero tok/s cannot sit on a log axis: the prefill chart says so.
        let prefill = plots.iter().find(|p| p.id == "prefill_vs_gen").unwrap();
        assert!(
            prefill.caption.contains("1 setup without both"),
            "{}",
            prefill.caption
        );
    }

    #[test]
    fn text_from_the_data_is_escaped_in_the_svg() {
        let hw = hardware("<b>A&B</b> \"GPU\"", 1000.0, 300.0, 1000.0);
        let rows = vec![
            row(point(hw.clone(), "m&m", "Q4_0", true, 50.0)),
            row(point(hw, "m&m", "Q4_0", false, 500.0)),
        ];
        for plot in render(&rows).unwrap() {
            assert!(!plot.svg.contains("<b>"), "{}", plot.id);
            assert!(!plot.svg.contains("A&B"), "{}", plot.id);
            assert!(!plot.svg.contains("m&m"), "{}", plot.id);
            if plot.id.starts_with("gen_tps_by_hardware") {
                assert!(plot.svg.contains("&lt;b&gt;A&amp;B&lt;/b&gt;"));
                assert!(plot.svg.contains("m&amp;m"));
            }
        }
    }

    #[test]
    fn same_hardware_twice_is_told_apart_by_what_differs() {
        let hw = hardware("GPU", 1000.0, 300.0, 1000.0);
        let a = point(hw.clone(), "m", "Q4_0", true, 50.0);
        let mut b = a.clone();
        b.series.backend.name = "llama-bench".to_string();
        let c = a.clone();
        let labels = distinct_labels(&[
            ("GPU".to_string(), &a),
            ("GPU".to_string(), &b),
            ("GPU".to_string(), &c),
            ("Other".to_string(), &a),
        ]);
        assert_eq!(
            labels,
            [
                "GPU · engine cuda #1",
                "GPU · llama-bench cuda",
                "GPU · engine cuda #2",
                "Other"
            ]
        );
    }

    #[test]
    fn slugs_are_lowercase_ascii() {
        assert_eq!(
            slug("llama-3.1-8b Q4_K_M, tg128 @ d4096"),
            "llama-3-1-8b-q4-k-m-tg128-d4096"
        );
        assert_eq!(slug("<>"), "x");
        let mut seen = BTreeSet::new();
        assert_eq!(unique_id(&mut seen, "a"), "a");
        assert_eq!(unique_id(&mut seen, "a"), "a-2");
    }

    #[test]
    fn png_text_is_drawn_with_the_embedded_font() {
        // Only DejaVu is in the font database: no system font is ever looked up, so text
        // renders the same on a machine without fonts.
        let db = fontdb();
        assert_eq!(db.len(), 2);
        assert!(db
            .faces()
            .all(|f| f.families.iter().any(|(n, _)| n.starts_with("DejaVu Sans"))));
        let ink = |svg: &str| {
            let png = png_from_svg("t", svg).unwrap();
            let pixmap = tiny_skia::Pixmap::decode_png(&png).unwrap();
            pixmap
                .pixels()
                .iter()
                .filter(|p| p.red() < 128 && p.green() < 128 && p.blue() < 128)
                .count()
        };
        let text = r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40">
            <text x="10" y="30" font-family="sans-serif" font-size="24">Hello 4090</text>
            </svg>"#;
        let blank = r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"></svg>"#;
        assert_eq!(ink(blank), 0);
        assert!(ink(text) > 200, "text drew {} dark pixels", ink(text));
    }
}
