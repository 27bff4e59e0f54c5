use super::*;

#[test]
fn money_has_thousands_separators() {
    assert_eq!(fmt_usd(Some(1599.0)), "$1,599");
    assert_eq!(fmt_usd(Some(10000.0)), "$10,000");
    assert_eq!(fmt_usd(Some(999.0)), "$999");
    assert_eq!(fmt_usd(Some(1234567.5)), "$1,234,567.50");
    assert_eq!(fmt_usd(Some(1599.999)), "$1,600");
    assert_eq!(fmt_usd(Some(0.0)), UNKNOWN);
    assert_eq!(fmt_usd(None), UNKNOWN);
    assert_eq!(fmt_usd(Some(f64::NAN)), UNKNOWN);
}

#[test]
fn numbers_have_fixed_decimals_and_unknown_is_a_dash() {
    assert_eq!(fmt_tps(Some(62.539)), "62.54");
    assert_eq!(fmt_tps_sd(Some(100.0), Some(1.234)), "100.00 ± 1.23");
    assert_eq!(fmt_tps_sd(Some(100.0), None), "100.00");
    assert_eq!(fmt_tps_sd(None, Some(1.0)), UNKNOWN);
    assert_eq!(fmt_percent(Some(0.79448)), "79.4");
    assert_eq!(fmt_ratio(Some(1.4249)), "1.42×");
    assert_eq!(fmt_trimmed(Some(24.0)), "24");
    assert_eq!(fmt_trimmed(Some(15.92)), "15.9");
    assert_eq!(fmt_tps(Some(0.0)), UNKNOWN);
    assert_eq!(fmt_tps(Some(-1.0)), UNKNOWN);
    assert_eq!(fmt_tps(Some(f64::INFINITY)), UNKNOWN);
}

#[test]
fn slugs_and_ids() {
    assert_eq!(slug("synth:tiny"), "synth-tiny");
    assert_eq!(slug("Q8_0"), "q8-0");
    assert_eq!(slug("pp512+tg128 @ d4096"), "pp512-tg128-d4096");
    assert_eq!(slug("2× GeForce RTX 3090"), "2-geforce-rtx-3090");
    assert_eq!(slug("—"), "x");
    let t = |id: &str| Table {
        id: id.into(),
        title: String::new(),
        columns: vec![],
        rows: vec![],
        sort: vec![],
    };
    let mut tables = vec![t("a"), t("a"), t("a-2"), t("a")];
    unique_ids(&mut tables);
    let ids: Vec<&str> = tables.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a", "a-2", "a-2-2", "a-3"]);
}

#[test]
fn markdown_escapes_pipes_and_line_breaks() {
    let table = Table {
        id: "t".into(),
        title: "A | B\nC".into(),
        columns: vec!["x".into(), "y".into()],
        rows: vec![vec!["a|b".into(), "c\r\nd".into()]],
        sort: vec![vec![None, None]],
    };
    assert_eq!(
        markdown(&[table]),
        "## A | B C\n\n| x | y |\n|---|---|\n| a\\|b | c  d |\n"
    );
    assert_eq!(markdown(&[]), NO_TABLES);
}

#[test]
fn empty_input_gives_empty_tables_and_a_header() {
    assert!(leaderboard(&[]).is_empty());
    assert!(quantization(&[]).is_empty());
    assert!(picks(&[], &DEFAULT_BUDGETS_USD).is_empty());
    assert_eq!(csv_rows(&[]), format!("{}\n", csv_header().join(",")));
    let j: serde_json::Value = serde_json::from_str(&json(&[])).unwrap();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["rows"], serde_json::json!([]));
    assert_eq!(j["generated_from"]["results"], 0);
}
