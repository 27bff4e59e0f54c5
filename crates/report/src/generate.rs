//! The whole report from a list of results: which results count (the newest of each
//! series), then every table, data file, plot and the HTML page, as bytes.

use std::collections::BTreeMap;

use tokbench_core::{ResultPoint, SeriesKey};

use crate::{tables, ReportFile, ReportRow};

/// How to build the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Budgets for the "best under $X" picks, US dollars.
    pub budgets_usd: Vec<f64>,
    /// Where the results came from (the database path), printed in the files.
    pub source: String,
    /// Tables computed beside the results (the hardware guide), shown on the HTML page
    /// after the results' own.
    pub extra_tables: Vec<tables::Table>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            budgets_usd: vec![1500.0, 3000.0, 10000.0],
            source: String::new(),
            extra_tables: Vec::new(),
        }
    }
}

/// The newest result of each series, kept as results stream in: what the report shows
/// holds one point per series however many results the database has.
#[derive(Debug, Default)]
pub struct NewestPerSeries {
    newest: BTreeMap<SeriesKey, ResultPoint>,
    seen: usize,
}

impl NewestPerSeries {
    /// Keeps `p` when it is its series' newest so far (a tie goes to the later offer).
    pub fn offer(&mut self, p: ResultPoint) {
        self.seen += 1;
        match self.newest.get_mut(&p.series) {
            Some(old) if old.started_at > p.started_at => {}
            Some(old) => *old = p,
            None => {
                self.newest.insert(p.series.clone(), p);
            }
        }
    }

    /// How many results were offered, or counted with [`NewestPerSeries::count_unoffered`].
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Counts `n` results that were read but not offered, having been found older than
    /// another of their series before they got here (by the database's own grouping).
    pub fn count_unoffered(&mut self, n: usize) {
        self.seen += n;
    }

    /// The kept points so far, in series order.
    pub fn points(&self) -> impl Iterator<Item = &ResultPoint> {
        self.newest.values()
    }

    /// The kept points, in series order.
    pub fn into_points(self) -> Vec<ResultPoint> {
        self.newest.into_values().collect()
    }
}

/// The newest result of each series ([`SeriesKey`]): the same thing measured again (a
/// nightly run) replaces the older measurement instead of adding a row. Ties on `started_at` keep the later one in
/// input order. The output is sorted by the series key, so input order does not matter.
pub fn latest_per_series(points: Vec<ResultPoint>) -> Vec<ResultPoint> {
    let mut newest = NewestPerSeries::default();
    for p in points {
        newest.offer(p);
    }
    newest.into_points()
}

/// What the page's numbers are, for its header: hosts, hardware, backend builds, models,
/// the runs' dates, and the engine settings when every result shares them.
pub fn page_facts(rows: &[ReportRow]) -> Vec<(String, String)> {
    use std::collections::BTreeSet;
    if rows.is_empty() {
        return Vec::new();
    }
    let list = |items: BTreeSet<String>| -> String {
        let n = items.len();
        let mut shown: Vec<String> = items.into_iter().take(8).collect();
        if n > 8 {
            shown.push(format!("and {} more", n - 8));
        }
        shown.join(", ")
    };
    let points = || rows.iter().map(|r| &r.point);
    let runs: BTreeSet<&str> = points().map(|p| p.run_uuid.as_str()).collect();
    let days: BTreeSet<&str> = points()
        .map(|p| p.started_at.get(..10).unwrap_or(&p.started_at))
        .collect();
    let dates = match (days.first(), days.last()) {
        (Some(a), Some(b)) if a == b => format!("{} run(s) on {a}", runs.len()),
        (Some(a), Some(b)) => format!("{} runs from {a} to {b}", runs.len()),
        _ => String::new(),
    };
    let first = &rows[0].point.series;
    let settings = if points().all(|p| p.series.settings == first.settings) {
        first.settings_label()
    } else {
        "differ between results: each table names what tells its rows apart".to_string()
    };
    vec![
        (
            "hosts".into(),
            list(points().map(|p| p.host.clone()).collect()),
        ),
        (
            "hardware".into(),
            list(points().map(|p| p.hardware.name.clone()).collect()),
        ),
        (
            "backends".into(),
            list(
                points()
                    .map(|p| format!("{} {}", p.series.backend.name, p.backend_version))
                    .collect(),
            ),
        ),
        (
            "models".into(),
            list(
                points()
                    .map(|p| format!("{} {}", p.series.model.name, p.series.model.quant))
                    .collect(),
            ),
        ),
        ("runs".into(), dates),
        ("settings".into(), settings),
    ]
}

/// Every file of the report, in a stable order: `leaderboard.md`, `quantization.md`,
/// `picks.md`, `results.csv`, `results.json`, the plots (`plots/*.svg`, `plots/*.png`) and
/// `index.html`. Fails only if a plot cannot be drawn or rasterized.
pub fn generate(
    points: Vec<ResultPoint>,
    opts: &ReportOptions,
) -> Result<Vec<ReportFile>, crate::plots::PlotError> {
    let mut newest = NewestPerSeries::default();
    for p in points {
        newest.offer(p);
    }
    generate_newest(newest, opts)
}

/// [`generate`] from results already reduced to the newest per series as they were read.
pub fn generate_newest(
    newest: NewestPerSeries,
    opts: &ReportOptions,
) -> Result<Vec<ReportFile>, crate::plots::PlotError> {
    let n_input = newest.seen();
    let rows: Vec<ReportRow> = newest
        .into_points()
        .into_iter()
        .map(ReportRow::new)
        .collect();
    let budgets = if opts.budgets_usd.is_empty() {
        tables::DEFAULT_BUDGETS_USD.to_vec()
    } else {
        opts.budgets_usd.clone()
    };
    let leaderboard = tables::leaderboard(&rows);
    let quantization = tables::quantization(&rows);
    let picks = tables::picks(&rows, &budgets);
    let from = if opts.source.is_empty() {
        String::new()
    } else {
        format!(" from `{}`", opts.source)
    };
    let intro = format!(
        "Generated by `tokbench report`{from}: {} ok results, the newest of each series ({} series). Unknown figures are —.\n\n",
        n_input,
        rows.len()
    );
    let md = |title: &str, what: &str, t: &[tables::Table]| -> ReportFile {
        ReportFile {
            path: format!("{what}.md"),
            bytes: format!("# {title}\n\n{intro}{}", tables::markdown(t)).into_bytes(),
        }
    };
    let plots = crate::plots::render(&rows)?;
    let mut files = vec![
        md("Leaderboard", "leaderboard", &leaderboard),
        md("Quantization", "quantization", &quantization),
        md("Picks", "picks", &picks),
        ReportFile {
            path: "results.csv".into(),
            bytes: tables::csv_rows(&rows).into_bytes(),
        },
        ReportFile {
            path: "results.json".into(),
            bytes: tables::json_with_source(&rows, &opts.source).into_bytes(),
        },
    ];
    files.extend(crate::plots::files(&plots));
    let all_tables: Vec<tables::Table> = leaderboard
        .into_iter()
        .chain(quantization)
        .chain(picks)
        .chain(opts.extra_tables.iter().cloned())
        .collect();
    let meta = crate::html::PageMeta {
        title: "tokbench report".into(),
        generated_from: format!(
            "Generated by tokbench report{}",
            if opts.source.is_empty() {
                String::new()
            } else {
                format!(" from {}", opts.source)
            }
        ),
        counts: vec![
            ("ok results".into(), n_input as u64),
            ("series (newest result each)".into(), rows.len() as u64),
        ],
        facts: page_facts(&rows),
    };
    files.push(crate::html::index(&all_tables, &plots, &meta));
    Ok(files)
}
