//! The report's tables as data ([`Table`]): built once from the rows, rendered to
//! Markdown, CSV and HTML by the same columns, so every format shows the same numbers.

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
