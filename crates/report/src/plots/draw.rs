//! Drawing: a chart specification to SVG with plotters, and the SVG to PNG with resvg.

use super::*;

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(super) type DrawResult<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

/// Canvas width, SVG units.
pub(super) const WIDTH: u32 = 960;
/// The generic family: browsers pick their sans-serif, the PNG gets DejaVu Sans.
pub(super) const FONT: &str = "sans-serif";
/// Rough width of one character of label text (13 px DejaVu Sans), for layout.
pub(super) const CHAR_W: f64 = 7.4;
/// Height of one bar row.
pub(super) const ROW_H: u32 = 26;

pub(super) const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub(super) const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);
pub(super) const GRID: RGBColor = RGBColor(0xf0, 0xf0, 0xf0);
pub(super) const GRID_BOLD: RGBColor = RGBColor(0xd4, 0xd4, 0xd4);
pub(super) const DOMINATED: RGBColor = RGBColor(0x99, 0x99, 0x99);
pub(super) const REFERENCE: RGBColor = RGBColor(0xc0, 0x39, 0x2b);

/// Tableau 10: distinct, colour-blind aware, readable on white.
pub(super) const PALETTE: [RGBColor; 10] = [
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

pub(super) fn palette(i: usize) -> &'static RGBColor {
    &PALETTE[i % PALETTE.len()]
}

/// A text style of `px` pixels (plotters scales its sizes by 1/1.24 in SVG).
pub(super) fn font(px: f64) -> FontDesc<'static> {
    (FONT, px * 1.24).into_font()
}

pub(super) fn bold(px: f64) -> FontDesc<'static> {
    (FONT, px * 1.24, FontStyle::Bold).into_font()
}

pub(super) fn draw(spec: Spec) -> Result<Plot, PlotError> {
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

pub(super) fn draw_header(area: &Area<'_>, title: &str, caption: &[String]) -> DrawResult<()> {
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

pub(super) fn draw_no_data(area: &Area<'_>) -> DrawResult<()> {
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
pub(super) fn draw_bars(root: &Area<'_>, body: &Area<'_>, bars: &Bars) -> DrawResult<()> {
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
pub(super) const LEGEND_ROW_H: u32 = 22;

/// Panels per row, rows, and the height of one panel.
pub(super) fn scatter_grid(s: &Scatter) -> (usize, usize, u32) {
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
pub(super) fn legend_layout(entries: &[Marker]) -> (Vec<(i32, u32)>, u32) {
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

pub(super) fn legend_height(entries: &[Marker]) -> u32 {
    match legend_layout(entries).1 {
        0 => 0,
        rows => 6 + LEGEND_ROW_H * rows,
    }
}

pub(super) fn scatter_height(s: &Scatter) -> u32 {
    let (_, rows, panel_h) = scatter_grid(s);
    legend_height(&s.legend) + rows as u32 * panel_h + 8
}

pub(super) fn draw_scatter(area: &Area<'_>, s: &Scatter) -> DrawResult<()> {
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

pub(super) fn draw_legend(area: &Area<'_>, entries: &[Marker]) -> DrawResult<()> {
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

pub(super) fn marker_color(m: &Marker) -> &'static RGBColor {
    m.color.map(palette).unwrap_or(&DOMINATED)
}

pub(super) fn marker_style(m: &Marker) -> ShapeStyle {
    let color = marker_color(m);
    if m.color.is_some() {
        color.filled()
    } else {
        color.stroke_width(2)
    }
}

/// A marker at pixel `at` of `area` (legends).
pub(super) fn draw_marker_px(area: &Area<'_>, (x, y): (i32, i32), m: &Marker) -> DrawResult<()> {
    let style = marker_style(m);
    match m.shape {
        Shape::Circle => area.draw(&Circle::new((x, y), 5, style)),
        Shape::Triangle => area.draw(&TriangleMarker::new((x, y), 6, style)),
        Shape::Square => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], style)),
    }
}

/// The panel's axis ranges from its points, with room for labels; linear axes start at 0
/// unless the points sit far from it.
pub(super) fn draw_panel(
    area: &Area<'_>,
    s: &Scatter,
    panel: &Panel,
    title_chars: usize,
) -> DrawResult<()> {
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

pub(super) fn scatter_on<X, Y>(
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
pub(super) fn fontdb() -> Arc<usvg::fontdb::Database> {
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

pub(super) fn png_from_svg(id: &str, svg: &str) -> Result<Vec<u8>, PlotError> {
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
