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

mod draw;
mod specs;

use draw::*;
use specs::*;

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

#[cfg(test)]
pub(crate) mod tests;
