use super::*;
use tokbench_core::catalog::{Hardware, HardwareConfig, HardwareKind, Sources};
use tokbench_core::{
    BackendIdentity, EngineSettings, HardwareRef, ModelIdentity, ResultStatus, TestSpec,
};

use crate::Derived;

/// A catalog entry with the figures the derived metrics use.
pub(crate) fn hardware(name: &str, bandwidth_gbps: f64, tdp_w: f64, msrp_usd: f64) -> HardwareRef {
    let hw = Hardware {
        name: name.to_string(),
        vendor: "Test".to_string(),
        kind: HardwareKind::DiscreteGpu,
        aliases: vec![],
        memory_bytes: Some(24 << 30),
        memory_type: None,
        bandwidth_bytes_per_s: Some(bandwidth_gbps * 1e9),
        tdp_w: Some(tdp_w),
        power_basis: Some(tokbench_core::catalog::PowerBasis::Board),
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
            tensor_bytes_only: false,
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
        noisy: None,
        throttled: None,
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

#[test]
fn prefill_vs_gen_names_each_point() {
    let hw = hardware("GPU", 1000.0, 300.0, 1000.0);
    let rows = vec![
        row(point(hw.clone(), "llama-8b", "Q4_0", true, 50.0)),
        row(point(hw.clone(), "llama-8b", "Q4_0", false, 900.0)),
        row(point(hw.clone(), "qwen-7b", "Q8_0", true, 40.0)),
        row(point(hw, "qwen-7b", "Q8_0", false, 800.0)),
    ];
    let plots = render(&rows).unwrap();
    let prefill = plots.iter().find(|p| p.id == "prefill_vs_gen").unwrap();
    assert!(prefill.svg.contains("llama-8b Q4_0"), "{}", prefill.svg);
    assert!(prefill.svg.contains("qwen-7b Q8_0"));
}
