//! The report as one self-contained HTML page: every table (sortable by clicking a column
//! header) and every plot (its SVG inlined), a table of contents, and nothing loaded from
//! anywhere else — no CDN, no web font, no external URL — so `index.html` reads the same
//! offline, from a CI artifact or a mail attachment.
//!
//! Every string that comes from the data (hardware and model names, test labels, titles,
//! ids) is HTML-escaped here; plot SVGs are inlined only if they carry no script.

use std::fmt::Write;

use crate::plots::Plot;
use crate::tables::Table;
use crate::ReportFile;

/// What the page says about itself, above the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMeta {
    /// The `<title>` and the heading: `tokbench report`.
    pub title: String,
    /// One line under the heading: `Generated from tokbench.db by tokbench 0.1.0`.
    pub generated_from: String,
    /// Labelled counts shown as one summary line: `("results", 120)` → `120 results`.
    pub counts: Vec<(String, u64)>,
    /// What the numbers are, as labelled lines under the heading: hosts, hardware, backend
    /// builds, dates, and the engine settings every result shares.
    pub facts: Vec<(String, String)>,
}

/// The report page: `index.html` beside the `plots/` folder. See [`page`].
pub fn index(tables: &[Table], plots: &[Plot], meta: &PageMeta) -> ReportFile {
    ReportFile {
        path: "index.html".to_string(),
        bytes: page(tables, plots, meta).into_bytes(),
    }
}

/// Renders the page: a header from `meta`, a table of contents, `tables` in order (each
/// anchored at its id, sortable by any column: numbers by the table's sort keys, text
/// alphabetically, unknown values last), then `plots` in order (SVG inlined, with links to
/// the SVG and PNG files under `plots/`). The same input gives the same string.
pub fn page(tables: &[Table], plots: &[Plot], meta: &PageMeta) -> String {
    let mut out = String::new();
    let title = escape(&meta.title);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<header>\n\
         <h1>{title}</h1>\n"
    );
    if !meta.generated_from.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{}</p>",
            escape(&meta.generated_from)
        );
    }
    if !meta.counts.is_empty() {
        let counts: Vec<String> = meta
            .counts
            .iter()
            .map(|(label, n)| format!("<span><b>{n}</b> {}</span>", escape(label)))
            .collect();
        let _ = writeln!(out, "<p class=\"counts\">{}</p>", counts.join(" "));
    }
    if !meta.facts.is_empty() {
        out.push_str("<dl class=\"facts\">\n");
        for (label, value) in &meta.facts {
            let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(label), escape(value));
        }
        out.push_str("</dl>\n");
    }
    out.push_str("</header>\n");
    toc(&mut out, tables, plots);
    out.push_str("<main>\n<section id=\"tb-tables\">\n<h2>Tables</h2>\n");
    if tables.is_empty() {
        out.push_str("<p class=\"empty\">No tables.</p>\n");
    }
    for t in tables {
        table(&mut out, t);
    }
    out.push_str("</section>\n<section id=\"tb-plots\">\n<h2>Plots</h2>\n");
    if plots.is_empty() {
        out.push_str("<p class=\"empty\">No plots.</p>\n");
    }
    for p in plots {
        plot(&mut out, p);
    }
    let _ = write!(
        out,
        "</section>\n</main>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
    );
    out
}

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by entities: safe in text and in quoted
/// attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn toc(out: &mut String, tables: &[Table], plots: &[Plot]) {
    out.push_str("<nav id=\"tb-toc\">\n<h2>Contents</h2>\n<ol>\n");
    out.push_str("<li><a href=\"#tb-tables\">Tables</a>\n<ol>\n");
    for t in tables {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            escape(&t.id),
            escape(&t.title)
        );
    }
    out.push_str("</ol>\n</li>\n<li><a href=\"#tb-plots\">Plots</a>\n<ol>\n");
    for p in plots {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            escape(&plot_anchor(p)),
            escape(&p.title)
        );
    }
    out.push_str("</ol>\n</li>\n</ol>\n</nav>\n");
}

fn plot_anchor(p: &Plot) -> String {
    format!("plot-{}", p.id)
}

fn table(out: &mut String, t: &Table) {
    let Table {
        id,
        title,
        columns,
        rows,
        sort,
    } = t;
    let _ = write!(
        out,
        "<section class=\"table\" id=\"{}\">\n<h3>{}</h3>\n<div class=\"scroll\">\n\
         <table class=\"sortable\">\n<thead>\n<tr>",
        escape(id),
        escape(title)
    );
    // Rows are padded to the widest row or the header, so that every column sorts.
    let width = rows
        .iter()
        .map(Vec::len)
        .chain([columns.len()])
        .max()
        .unwrap_or(0);
    let key = |r: usize, c: usize| {
        sort.get(r)
            .and_then(|keys| keys.get(c))
            .copied()
            .flatten()
            .filter(|k| k.is_finite())
    };
    // A column with any sort key is numeric: right-aligned, its "—" cells included.
    let numeric: Vec<bool> = (0..width)
        .map(|c| (0..rows.len()).any(|r| key(r, c).is_some()))
        .collect();
    let class = |c: usize| if numeric[c] { " class=\"num\"" } else { "" };
    for c in 0..width {
        let name = escape(columns.get(c).map(String::as_str).unwrap_or(""));
        let _ = write!(
            out,
            "<th scope=\"col\"{} title=\"Sort by {name}\">{name}</th>",
            class(c)
        );
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");
    for (r, cells) in rows.iter().enumerate() {
        out.push_str("<tr>");
        for c in 0..width {
            let text = escape(cells.get(c).map(String::as_str).unwrap_or(""));
            match key(r, c) {
                Some(k) => {
                    let _ = write!(out, "<td{} data-sort=\"{k}\">{text}</td>", class(c));
                }
                None => {
                    let _ = write!(out, "<td{}>{text}</td>", class(c));
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

/// A plot: the SVG draws its own title and caption, so the page adds only the links to
/// its files (and the title and caption as text where the SVG cannot be inlined).
fn plot(out: &mut String, p: &Plot) {
    let title = escape(&p.title);
    let caption = escape(&p.caption);
    let _ = writeln!(
        out,
        "<figure class=\"plot\" id=\"{}\">",
        escape(&plot_anchor(p))
    );
    match inline_svg(&p.svg) {
        Some(svg) => {
            let _ = write!(
                out,
                "<div class=\"svg\" role=\"img\" aria-label=\"{title}. {caption}\">\n{}\n</div>\n\
                 <figcaption>",
                svg.trim_end()
            );
        }
        None => {
            let _ = write!(
                out,
                "<h3>{title}</h3>\n<p class=\"empty\">This plot could not be inlined.</p>\n\
                 <figcaption>{caption} "
            );
        }
    }
    let _ = write!(
        out,
        "<a href=\"{}\">SVG</a> · <a href=\"{}\">PNG</a></figcaption>\n</figure>\n",
        escape(&p.svg_path()),
        escape(&p.png_path())
    );
}

/// The `<svg>…</svg>` element of `svg`, or `None` when it has none or holds anything but
/// the drawing elements `plots` emits, or an attribute that could run or load something
/// (`on…`, `href`). `plots` escapes all text, so this only guards against a plot built
/// elsewhere.
fn inline_svg(svg: &str) -> Option<&str> {
    const ALLOWED: [&str; 11] = [
        "svg", "g", "rect", "circle", "ellipse", "line", "polyline", "polygon", "path", "text",
        "tspan",
    ];
    let start = svg.find("<svg")?;
    let end = svg.rfind("</svg>")? + "</svg>".len();
    let body = svg.get(start..end)?;
    for piece in body.split('<').skip(1) {
        let tag = piece.split('>').next().unwrap_or("");
        let tag = tag.strip_prefix('/').unwrap_or(tag);
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if !ALLOWED.contains(&name.as_str()) {
            return None;
        }
        let bad_attr = tag.split_whitespace().skip(1).any(|token| {
            let attr = token.split('=').next().unwrap_or("").to_ascii_lowercase();
            token.contains('=') && (attr.starts_with("on") || attr.contains("href"))
        });
        if bad_attr {
            return None;
        }
    }
    Some(body)
}

const CSS: &str = r#"
:root { color-scheme: light; --fg: #222; --muted: #666; --line: #ddd; --head: #f4f5f7; --accent: #4e79a7; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header, nav, main { max-width: 1500px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 22px; margin: 32px 0 12px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 17px; margin: 24px 0 8px; }
.meta { color: var(--muted); margin: 0 0 4px; }
.counts span { display: inline-block; margin-right: 18px; }
nav ol { margin: 4px 0; padding-left: 22px; }
nav > ol { columns: 2 320px; }
nav li { break-inside: avoid; }
a { color: var(--accent); }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 6px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
/* Headers and names wrap, numbers never: the 14-column leaderboard fits 1280 px without scrolling. */
th, td:not(.num) { white-space: normal; }
td:not(.num) { min-width: 5em; }
th.num, td.num { text-align: right; }
thead th { position: sticky; top: 0; background: var(--head); cursor: pointer; user-select: none; }
thead th:hover, thead th:focus { background: #e6e9ee; outline: none; }
thead th::after { content: "\2195"; color: #aaa; margin-left: 4px; font-size: 12px; }
thead th[aria-sort="ascending"]::after { content: "\25B2"; color: var(--fg); }
thead th[aria-sort="descending"]::after { content: "\25BC"; color: var(--fg); }
tbody tr:nth-child(even) { background: #fafafa; }
tbody tr:hover { background: #eef3f9; }
figure.plot { margin: 0 0 36px; }
figure.plot .svg { overflow-x: auto; }
figure.plot svg { display: block; width: 100%; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin: 2px 0 0 16px; }
.empty { color: var(--muted); font-style: italic; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em; margin: 0.6em 0 0; font-size: 0.92em; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
"#;

/// Sorts a table by the clicked header: numbers by `data-sort` (first click: largest first),
/// text alphabetically (first click: A→Z); cells without a key or showing "—" stay last in
/// both directions; ties keep their order.
const SCRIPT: &str = r#"
(function () {
  "use strict";
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };
  each(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    var heads = table.tHead.rows[0].cells;
    each(heads, function (th, col) {
      th.tabIndex = 0;
      var sort = function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var numeric = rows.some(function (r) {
          return r.cells[col] && r.cells[col].hasAttribute("data-sort");
        });
        var was = th.getAttribute("aria-sort");
        var dir = was === "descending" ? 1 : was === "ascending" ? -1 : (numeric ? -1 : 1);
        each(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var keyed = rows.map(function (r, i) {
          var c = r.cells[col], k = null;
          if (c && numeric) {
            var v = parseFloat(c.getAttribute("data-sort"));
            k = isNaN(v) ? null : v;
          } else if (c) {
            var t = c.textContent.trim();
            k = (t === "" || t === "\u2014") ? null : t;
          }
          return { row: r, key: k, index: i };
        });
        keyed.sort(function (a, b) {
          if (a.key === null || b.key === null) {
            return a.key === b.key ? a.index - b.index : (a.key === null ? 1 : -1);
          }
          var d = numeric ? a.key - b.key
            : a.key.localeCompare(b.key, undefined, { numeric: true, sensitivity: "base" });
          return d !== 0 ? d * dir : a.index - b.index;
        });
        each(keyed, function (k) { body.appendChild(k.row); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plots::tests::{hardware, point, row};

    fn meta() -> PageMeta {
        PageMeta {
            title: "tokbench report".to_string(),
            generated_from: "Generated from test.db".to_string(),
            counts: vec![("results".to_string(), 2), ("hardware".to_string(), 1)],
            facts: vec![("hosts".to_string(), "box-<a>".to_string())],
        }
    }

    fn sample_table(hw: &str, model: &str) -> Table {
        Table {
            id: "leaderboard-tg128".to_string(),
            title: format!("Leaderboard — {model}"),
            columns: vec![
                "Hardware".to_string(),
                "Model".to_string(),
                "Gen tok/s".to_string(),
            ],
            rows: vec![
                vec![hw.to_string(), model.to_string(), "12.5".to_string()],
                vec!["Other".to_string(), model.to_string(), "—".to_string()],
            ],
            sort: vec![vec![None, None, Some(12.5)], vec![None, None, None]],
        }
    }

    /// Opening minus closing tags of `name` (`<td>` and `<td class=…>`, not `<tdx>`).
    fn balance(html: &str, name: &str) -> (usize, usize) {
        let count = |prefix: &str| {
            html.match_indices(prefix)
                .filter(|(i, m)| {
                    matches!(html[i + m.len()..].chars().next(), Some(' ' | '>' | '\n'))
                })
                .count()
        };
        (count(&format!("<{name}")), count(&format!("</{name}")))
    }

    #[test]
    fn data_is_escaped_and_the_page_ships_one_script() {
        let evil_hw = "<script>alert(1)</script>";
        let evil_model = "m\"&'x";
        let rows = vec![
            row(point(
                hardware(evil_hw, 1000.0, 300.0, 1000.0),
                evil_model,
                "Q4_0",
                true,
                50.0,
            )),
            row(point(
                hardware(evil_hw, 1000.0, 300.0, 1000.0),
                evil_model,
                "Q4_0",
                false,
                900.0,
            )),
        ];
        let plots = crate::plots::render(&rows).unwrap();
        let mut m = meta();
        m.title = "<i>report</i>".to_string();
        let html = page(&[sample_table(evil_hw, evil_model)], &plots, &m);
        assert_eq!(html.to_ascii_lowercase().matches("<script").count(), 1);
        assert!(!html.contains(evil_hw));
        assert!(!html.contains(evil_model));
        assert!(!html.contains("<i>report"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("m&quot;&amp;&#39;x"));
        // The header's facts too.
        assert!(
            html.contains("<dt>hosts</dt><dd>box-&lt;a&gt;</dd>"),
            "{html}"
        );
        // The plots were inlined (their text escaped by the SVG backend), not dropped.
        assert_eq!(html.matches("<svg").count(), plots.len());
        assert!(!html.contains("could not be inlined"));
    }

    #[test]
    fn tags_balance_and_every_table_id_is_present() {
        let plots = crate::plots::render(&crate::plots::tests::sample_rows()).unwrap();
        let mut second = sample_table("GPU < 2 & co", "m");
        second.id = "second-table".to_string();
        second.rows.push(vec!["short row".to_string()]);
        let tables = [sample_table("GPU", "m"), second];
        let html = page(&tables, &plots, &meta());
        for name in [
            "html", "head", "body", "table", "thead", "tbody", "tr", "th", "td", "section",
            "figure", "nav", "ol", "li", "svg", "script", "style",
        ] {
            let (open, close) = balance(&html, name);
            assert!(open > 0, "no <{name}>");
            assert_eq!(open, close, "<{name}> opened {open}, closed {close}");
        }
        for t in &tables {
            assert!(html.contains(&format!("id=\"{}\"", t.id)));
            assert!(html.contains(&format!("href=\"#{}\"", t.id)));
        }
        for p in &plots {
            assert!(html.contains(&format!("id=\"plot-{}\"", p.id)));
        }
        // The short row is padded to the header's three columns.
        assert!(html.contains("<tr><td>short row</td><td></td><td class=\"num\"></td></tr>"));
    }

    #[test]
    fn sort_keys_become_data_sort_and_unknowns_have_none() {
        let html = page(&[sample_table("GPU", "m")], &[], &meta());
        assert!(html.contains("<td class=\"num\" data-sort=\"12.5\">12.5</td>"));
        assert!(html.contains("<td class=\"num\">—</td>"));
        assert!(html.contains("<th scope=\"col\" class=\"num\" title=\"Sort by Gen tok/s\">"));
        assert!(html.contains("No plots."));
    }

    #[test]
    fn no_external_urls() {
        let plots = crate::plots::render(&crate::plots::tests::sample_rows()).unwrap();
        let html = page(&[sample_table("GPU", "m")], &plots, &meta());
        // The SVG namespace is an identifier, never fetched.
        let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!without_ns.contains("http://"));
        assert!(!without_ns.contains("https://"));
        assert!(!without_ns.contains("src="));
        assert!(!without_ns.contains("<link"));
    }

    #[test]
    fn page_is_deterministic_and_handles_nothing() {
        let a = page(&[], &[], &meta());
        assert_eq!(a, page(&[], &[], &meta()));
        assert!(a.contains("No tables."));
        let empty = PageMeta {
            title: String::new(),
            generated_from: String::new(),
            counts: vec![],
            facts: vec![],
        };
        assert!(page(&[], &[], &empty).starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn svgs_that_could_run_code_are_not_inlined() {
        assert!(inline_svg("<svg><text>ok one</text></svg>").is_some());
        assert!(inline_svg("<svg><script>x()</script></svg>").is_none());
        assert!(inline_svg("<svg onload=\"x()\"></svg>").is_none());
        assert!(inline_svg("<svg><a href=\"javascript:x()\">a</a></svg>").is_none());
        assert!(inline_svg("<svg><foreignObject></foreignObject></svg>").is_none());
        assert!(inline_svg("<svg><rect x=\"1\"/><text>&lt;script&gt;</text></svg>").is_some());
        assert!(inline_svg("no svg").is_none());
        assert_eq!(
            inline_svg("<?xml version=\"1.0\"?>\n<svg></svg>\n"),
            Some("<svg></svg>")
        );
    }

    #[test]
    fn escape_replaces_the_five_characters() {
        assert_eq!(escape("a&<>\"'b"), "a&amp;&lt;&gt;&quot;&#39;b");
    }
}
