//! A sample report from hand-made results (six hardware targets, two models, three
//! quantizations, a depth test, a CPU with no catalog figures, a failed run): the page
//! holds every table and plot, each plot comes as SVG and PNG. With `$TOKBENCH_SAMPLE_DIR`
//! set, the files are also written there for looking at
//! (`scripts/screenshot-report.sh DIR DIR.png`).

use std::path::PathBuf;

use tokbench_core::catalog::{Hardware, HardwareConfig, HardwareKind, Sources};
use tokbench_core::{
    BackendIdentity, EngineSettings, HardwareRef, MetricSource, ModelFacts, ModelIdentity,
    ResultPoint, ResultStatus, SeriesKey, ServeLoad, TestSpec,
};
use tokbench_report::html::{self, PageMeta};
use tokbench_report::plots;
use tokbench_report::tables::Table;
use tokbench_report::ReportRow;

fn hardware(name: &str, gbps: f64, tdp_w: f64, msrp_usd: f64, count: u32) -> HardwareRef {
    let hw = Hardware {
        name: name.to_string(),
        vendor: "Sample".to_string(),
        kind: HardwareKind::DiscreteGpu,
        aliases: vec![],
        memory_bytes: Some(24 << 30),
        memory_type: None,
        bandwidth_bytes_per_s: Some(gbps * 1e9),
        tdp_w: Some(tdp_w),
        power_basis: Some(tokbench_core::catalog::PowerBasis::Board),
        msrp_usd: Some(msrp_usd),
        msrp_date: None,
        sources: Sources::default(),
        notes: None,
        file: "hardware.toml".into(),
        line: 1,
    };
    let config = HardwareConfig::new(hw, count);
    HardwareRef {
        name: config
            .as_ref()
            .map_or(name.to_string(), |c| c.display_name.clone()),
        config: config.map(std::sync::Arc::new),
    }
}

fn facts(n_params: u64, bpw: f64) -> ModelFacts {
    ModelFacts {
        n_params: Some(n_params),
        file_bytes: None,
        tensor_bytes: Some((n_params as f64 * bpw / 8.0) as u64),
        token_embd_bytes: Some(n_params / 30),
        output_bytes: Some(n_params / 30),
        n_layer: Some(32),
        kv_dim: Some(1024),
        tensor_bytes_only: false,
    }
}

#[allow(clippy::too_many_arguments)]
fn point(
    hw: &HardwareRef,
    model: &str,
    quant: &str,
    facts: ModelFacts,
    test: &str,
    (n_prompt, n_gen, n_depth): (u32, u32, u32),
    tps: Option<f64>,
) -> ResultPoint {
    let decode = n_gen > 0;
    ResultPoint {
        run_uuid: "7f0c2a64-0000-4000-8000-000000000001".to_string(),
        started_at: "2026-11-29T02:00:00Z".to_string(),
        series: SeriesKey {
            // One machine per hardware target: its identity names its devices.
            host: format!("bench-01|{}", hw.name),
            backend: BackendIdentity {
                name: "engine".to_string(),
                accel: if hw.config.is_some() { "cuda" } else { "cpu" }.to_string(),
                flags: String::new(),
            },
            metric_source: MetricSource::Engine,
            model: ModelIdentity {
                name: model.to_string(),
                quant: quant.to_string(),
                sha256: None,
            },
            test: TestSpec {
                n_prompt,
                n_gen,
                n_depth,
            },
            settings: EngineSettings {
                n_gpu_layers: Some(99),
                flash_attn: Some(true),
                ..EngineSettings::default()
            },
            load: ServeLoad::default(),
        },
        host: "bench-01".to_string(),
        hardware: hw.clone(),
        backend_version: "b6000".to_string(),
        facts,
        test: test.to_string(),
        status: if tps.is_some() {
            ResultStatus::Ok
        } else {
            ResultStatus::Failed
        },
        prefill_tps: tps.filter(|_| !decode),
        prefill_tps_sd: None,
        decode_tps: tps.filter(|_| decode),
        decode_tps_sd: tps.filter(|_| decode).map(|t| t * 0.015),
        ttft_ms: None,
        decode_power_w: None,
        vram_peak_bytes: None,
        rss_peak_bytes: None,
        source: None,
        noisy: None,
        throttled: None,
    }
}

fn sample_rows() -> Vec<ReportRow> {
    let targets = [
        (hardware("GeForce RTX 4090", 1008.0, 450.0, 1599.0, 1), 1.0),
        (hardware("GeForce RTX 5090", 1792.0, 575.0, 1999.0, 1), 1.55),
        (hardware("GeForce RTX 3090", 936.0, 350.0, 1499.0, 2), 0.9),
        (hardware("Radeon RX 7900 XTX", 960.0, 355.0, 999.0, 1), 0.72),
        (
            hardware(
                "Apple M3 Max (40-core GPU, 128 GB unified memory)",
                400.0,
                140.0,
                4699.0,
                1,
            ),
            0.38,
        ),
        (HardwareRef::unmatched("AMD EPYC 7B13 (CPU)"), 0.06),
    ];
    let models = [
        ("llama-3.1-8b-instruct", 8_030_000_000u64, 1.0),
        ("qwen2.5-14b-instruct", 14_770_000_000, 0.55),
    ];
    let quants = [("Q4_K_M", 4.89), ("Q6_K", 6.56), ("Q8_0", 8.5)];
    let mut points = Vec::new();
    for (hw, speed) in &targets {
        for (model, n_params, model_speed) in models {
            for (quant, bpw) in quants {
                let f = facts(n_params, bpw);
                let tg = 150.0 * speed * model_speed * 4.89 / bpw;
                let pp = 11000.0 * speed * speed * model_speed;
                let tests = [
                    ("pp512", (512, 0, 0), Some(pp)),
                    ("tg128", (0, 128, 0), Some(tg)),
                    ("tg128 @ d4096", (0, 128, 4096), Some(tg * 0.82)),
                ];
                for (test, shape, tps) in tests {
                    // The 3090 pair failed the deep test with the big model: no number.
                    let failed =
                        hw.name.contains("3090") && model.starts_with("qwen") && shape.2 > 0;
                    let tps = if failed { None } else { tps };
                    points.push(point(hw, model, quant, f, test, shape, tps));
                }
            }
        }
    }
    points.into_iter().map(ReportRow::new).collect()
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v >= 100.0 => format!("{v:.0}"),
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => "—".to_string(),
    }
}

fn leaderboard(rows: &[ReportRow]) -> Table {
    let mut t = Table {
        id: "leaderboard-tg128".to_string(),
        title: "Generation leaderboard (tg128)".to_string(),
        columns: [
            "Hardware",
            "Model",
            "Quant",
            "Test",
            "Gen tok/s",
            "tok/s/$1k",
            "tok/s/100W",
            "Roofline",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![],
        sort: vec![],
    };
    for r in rows.iter().filter(|r| r.point.test == "tg128") {
        let p = &r.point;
        let d = &r.derived;
        let roof = d.roofline_fraction.map(|f| f * 100.0);
        t.rows.push(vec![
            p.hardware.name.clone(),
            p.series.model.name.clone(),
            p.series.model.quant.clone(),
            p.test.clone(),
            fmt(p.decode_tps),
            fmt(d.tps_per_1k_usd),
            fmt(d.tps_per_100w_tdp),
            roof.map_or("—".to_string(), |f| format!("{f:.0}%")),
        ]);
        t.sort.push(vec![
            None,
            None,
            None,
            None,
            p.decode_tps,
            d.tps_per_1k_usd,
            d.tps_per_100w_tdp,
            roof,
        ]);
    }
    t
}

#[test]
fn the_sample_report_holds_every_table_and_plot() {
    let rows = sample_rows();
    let plots = plots::render(&rows).unwrap();
    let tables = [leaderboard(&rows)];
    let meta = PageMeta {
        title: "tokbench report (sample)".to_string(),
        generated_from: "Generated from hand-made sample results by the sample_report test"
            .to_string(),
        counts: vec![
            ("results".to_string(), rows.len() as u64),
            ("hardware".to_string(), 6),
            ("models".to_string(), 2),
        ],
        facts: vec![],
    };
    assert!(!plots.is_empty());
    let mut files = plots::files(&plots);
    assert_eq!(files.len(), 2 * plots.len());
    for f in &files {
        if f.path.ends_with(".png") {
            assert!(f.bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", f.path);
        } else {
            assert!(f.path.ends_with(".svg"), "{}", f.path);
            let svg = String::from_utf8_lossy(&f.bytes);
            assert!(
                svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
                "{}",
                f.path
            );
        }
    }
    let page = html::index(&tables, &plots, &meta);
    let text = String::from_utf8(page.bytes.clone()).unwrap();
    for p in &plots {
        assert!(text.contains(&p.id), "the page lacks plot {}", p.id);
    }
    for t in &tables {
        assert!(text.contains(&t.id), "the page lacks table {}", t.id);
    }
    files.push(page);
    if let Some(dir) = std::env::var_os("TOKBENCH_SAMPLE_DIR").map(PathBuf::from) {
        for f in files {
            let path = dir.join(&f.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &f.bytes).unwrap();
        }
        println!("wrote {}", dir.join("index.html").display());
    }
}
