//! Plain text shapes every command and report prints: an aligned text table, a GitHub
//! Markdown table and RFC 4180 CSV, each from column names and rows of cells.

/// Renders rows as a GitHub Markdown table (pipes in cells escaped, line breaks folded).
pub fn markdown(columns: &[String], rows: &[Vec<String>]) -> String {
    let esc = |s: &str| s.replace('|', "\\|").replace(['\r', '\n'], " ");
    let mut out = format!(
        "| {} |\n",
        columns
            .iter()
            .map(|c| esc(c))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    out.push_str(&format!(
        "|{}\n",
        columns.iter().map(|_| "---|").collect::<String>()
    ));
    for r in rows {
        out.push_str(&format!(
            "| {} |\n",
            r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

/// Renders rows as an aligned text table (numbers right-aligned).
pub fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    let layout = TableLayout::new(columns, rows);
    let mut out = layout.header_of(columns);
    for row in rows {
        out.push_str(&layout.line(row));
        out.push('\n');
    }
    out
}

/// An aligned text table's column widths and alignment, taken from the rows it is given:
/// all of a table's rows, or the first window of a table printed as it streams (a later,
/// wider cell then widens its own line only).
#[derive(Debug, Clone)]
pub struct TableLayout {
    widths: Vec<usize>,
    numeric: Vec<bool>,
}

impl TableLayout {
    pub fn new(columns: &[String], rows: &[Vec<String>]) -> Self {
        let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let numeric = (0..columns.len())
            .map(|i| {
                rows.iter().all(|r| {
                    let c = r[i].trim_start_matches(['-', '+']);
                    c == "—"
                        || c.is_empty()
                        || c.chars().next().is_some_and(|ch| ch.is_ascii_digit())
                })
            })
            .collect();
        TableLayout { widths, numeric }
    }

    /// The column names and the rule under them, each line ending in a newline.
    pub fn header_of(&self, columns: &[String]) -> String {
        let mut out = self.line(columns);
        out.push('\n');
        out.push_str(
            &self
                .widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  "),
        );
        out.push('\n');
        out
    }

    /// One row, padded to the widths (no newline).
    pub fn line(&self, cells: &[String]) -> String {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let width = self.widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(c.chars().count());
            if self.numeric.get(i).copied().unwrap_or(false) {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(c);
            } else {
                out.push_str(c);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(out.trim_end().len());
        out
    }
}

/// One CSV field, quoted when it must be (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Rows as CSV: a header line, then one line per row.
pub fn csv(columns: &[String], rows: &[Vec<String>]) -> String {
    let mut out = columns
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn numbers_align_right_and_text_left() {
        let t = table(
            &cols(&["model", "t/s"]),
            &[cols(&["tiny", "5.5"]), cols(&["a-longer-name", "123.25"])],
        );
        assert_eq!(
            t,
            "model             t/s\n-------------  ------\ntiny              5.5\na-longer-name  123.25\n"
        );
    }

    #[test]
    fn markdown_escapes_pipes_and_folds_lines() {
        let m = markdown(&cols(&["a|b"]), &[cols(&["x\ny"])]);
        assert_eq!(m, "| a\\|b |\n|---|\n| x y |\n");
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(
            csv(&cols(&["a", "b"]), &[cols(&["1", "x,y"])]),
            "a,b\n1,\"x,y\"\n"
        );
    }
}
