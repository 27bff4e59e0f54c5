//! The rocm-smi JSON parser on captured output (see `fixtures/README.md`). Line numbers in
//! comments are lines of the fixture file named in the test.

use tokbench_telemetry::parse::rocm_smi::{parse, PowerKind, RocmSmiError};

const RX6700XT_430: &str = include_str!("fixtures/rocm-smi/rx6700xt_rocm430.json");
const RX6700XT_602: &str = include_str!("fixtures/rocm-smi/rx6700xt_rocm602.json");
const RX6700XT_612: &str = include_str!("fixtures/rocm-smi/rx6700xt_rocm612.json");
const MI100_602: &str = include_str!("fixtures/rocm-smi/mi100_rocm602.json");
const STRIX_HALO: &str = include_str!("fixtures/rocm-smi/strix_halo_full.json");

#[test]
fn rx6700xt_rocm430() {
    let report = parse(RX6700XT_430).unwrap();
    assert_eq!(report.driver_version.as_deref(), Some("6.3.6")); // line 67
    let [card] = &report.cards[..] else {
        panic!("one card expected, got {:?}", report.cards);
    };
    assert_eq!((card.card.as_str(), card.index), ("card0", 0)); // line 2
    assert_eq!(card.temp_edge_c, Some(45.0)); // line 6
    assert_eq!(card.temp_junction_c, Some(47.0)); // line 7
    assert_eq!(card.power_w, Some(6.0)); // line 29
    assert_eq!(card.power_kind, Some(PowerKind::Average));
    assert_eq!(card.util_pct, Some(0.0)); // line 34
    assert_eq!(card.vram_total_bytes, Some(12_868_124_672)); // line 41
    assert_eq!(card.vram_used_bytes, Some(1_622_728_704)); // line 42
                                                           // ROCm 4.3 printed the vendor ID as the series (line 59); passed on as printed.
    assert_eq!(card.name.as_deref(), Some("0x1002"));
}

#[test]
fn rx6700xt_rocm602_secondary_die_power_is_none() {
    let report = parse(RX6700XT_602).unwrap();
    let card = &report.cards[0];
    // line 26: "Average Graphics Package Power (W)": "N/A (Secondary die)"
    assert_eq!(card.power_w, None);
    assert_eq!(card.power_kind, None);
    assert_eq!(card.temp_edge_c, Some(45.0)); // line 7
    assert_eq!(card.util_pct, Some(0.0)); // line 31
    assert_eq!(card.vram_total_bytes, Some(12_868_124_672)); // line 40
    assert_eq!(card.vram_used_bytes, Some(1_572_757_504)); // line 41
    assert_eq!(
        card.name.as_deref(),
        Some("Navi 22 [Radeon RX 6700/6700 XT / 6800M]") // line 58, "Card series"
    );
}

#[test]
fn rx6700xt_rocm612_leading_newline_and_new_key_case() {
    // This capture starts with an empty line; "Card Series" gained a capital S.
    assert!(RX6700XT_612.starts_with('\n'));
    let card = &parse(RX6700XT_612).unwrap().cards[0];
    assert_eq!(card.power_w, Some(6.0)); // line 30
    assert_eq!(card.vram_used_bytes, Some(1_572_745_216)); // line 46
    assert_eq!(
        card.name.as_deref(),
        Some("Navi 22 [Radeon RX 6700/6700 XT / 6800M]") // line 4, "Device Name"
    );
}

#[test]
fn mi100_four_cards_in_index_order() {
    let report = parse(MI100_602).unwrap();
    assert_eq!(report.driver_version.as_deref(), Some("6.3.6")); // line 291
    let power: Vec<_> = report.cards.iter().map(|c| c.power_w).collect();
    // lines 24, 96, 168, 240
    assert_eq!(power, [Some(36.0), Some(44.0), Some(43.0), Some(39.0)]);
    let edge: Vec<_> = report.cards.iter().map(|c| c.temp_edge_c).collect();
    // lines 7, 79, 151, 223
    assert_eq!(edge, [Some(53.0), Some(55.0), Some(54.0), Some(51.0)]);
    for (i, card) in report.cards.iter().enumerate() {
        assert_eq!(card.index as usize, i);
        assert_eq!(card.vram_total_bytes, Some(34_342_961_152)); // lines 50, 122, 194, 266
        assert_eq!(card.vram_used_bytes, Some(6_750_208)); // lines 51, 123, 195, 267
        assert_eq!(
            card.name.as_deref(),
            Some("Arcturus GL-XL [Instinct MI100]") // lines 67, 139, 211, 283
        );
    }
}

#[test]
fn strix_halo_current_socket_power_and_missing_keys() {
    let report = parse(STRIX_HALO).unwrap();
    assert_eq!(report.driver_version, None); // no "system" object in this query
    let card = &report.cards[0];
    // Line 1 (one line): "Current Socket Graphics Package Power (W)": "16.049"
    assert_eq!(card.power_w, Some(16.049));
    assert_eq!(card.power_kind, Some(PowerKind::CurrentSocket));
    assert_eq!(card.temp_edge_c, Some(51.0));
    assert_eq!(card.util_pct, Some(6.0));
    assert_eq!(card.vram_total_bytes, Some(536_870_912));
    assert_eq!(card.vram_used_bytes, Some(492_892_160));
    // Not queried, so not printed: None, never 0.
    assert_eq!(card.temp_junction_c, None);
    assert_eq!(card.name, None);
}

#[test]
fn garbage_is_an_error() {
    // What rocm-smi prints on stdout when a query has nothing for JSON.
    let err = parse("WARNING: No JSON data to report\n").unwrap_err();
    assert!(matches!(err, RocmSmiError::NotJson(_)));
    assert_eq!(err.to_string(), "rocm-smi output is not JSON");

    assert!(matches!(parse("[1, 2]"), Err(RocmSmiError::NotAnObject)));
    assert!(matches!(
        parse(r#"{"system": {"Driver version": "6.3.6"}}"#),
        Err(RocmSmiError::NoCards)
    ));
    assert!(matches!(
        parse(r#"{"card0": "N/A"}"#),
        Err(RocmSmiError::CardNotAnObject { .. })
    ));
}

#[test]
fn a_value_that_is_neither_number_nor_na_names_card_and_key() {
    // The ROCm 4.3 capture with one value changed to something new.
    let text = RX6700XT_430.replace(
        r#""Average Graphics Package Power (W)": "6.0""#,
        r#""Average Graphics Package Power (W)": "six""#,
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"`card0`: `Average Graphics Package Power (W)` is "six", not a number or N/A"#
    );
}

#[test]
fn oversized_input_is_refused() {
    let big = " ".repeat(tokbench_telemetry::parse::rocm_smi::MAX_INPUT_BYTES + 1);
    assert!(matches!(parse(&big), Err(RocmSmiError::TooLarge { .. })));
}

#[test]
fn every_cut_of_a_capture_is_an_error_not_a_panic() {
    for cut in 0..RX6700XT_430.len() - 1 {
        if RX6700XT_430.is_char_boundary(cut) {
            assert!(parse(&RX6700XT_430[..cut]).is_err(), "cut at {cut}");
        }
    }
}
