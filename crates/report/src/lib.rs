//! tokbench-report: turns stored results ([`ResultPoint`], core types, never SQL rows) into
//! derived metrics (tok/s per $1k of MSRP, per 100 W of TDP, per measured watt, tokens per
//! joule, roofline fraction), Markdown/CSV/JSON tables, plots and one self-contained HTML
//! page. Everything is a pure function of its input: the same points give the same bytes.

pub mod compare;
pub mod fit;
pub mod gate;
mod generate;
pub mod guide;
pub mod html;
pub mod metrics;
pub mod plots;
pub mod stats;
pub mod tables;
pub mod text;

use tokbench_core::ResultPoint;

pub use generate::{
    generate, generate_newest, latest_per_series, page_facts, NewestPerSeries, ReportOptions,
};
pub use metrics::{derive, Derived};

/// A result with its derived figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReportRow {
    pub point: ResultPoint,
    pub derived: Derived,
}

impl ReportRow {
    pub fn new(point: ResultPoint) -> Self {
        let derived = derive(&point);
        Self { point, derived }
    }
}

/// One generated file: a path relative to the output directory and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    pub path: String,
    pub bytes: Vec<u8>,
}
