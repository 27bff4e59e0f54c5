//! Writes a sample report (hand-made results: six hardware targets, two models, three
//! quantizations, a depth test, a CPU with no catalog figures, a failed run) to
//! `$TOKBENCH_SAMPLE_DIR` (default `/tmp/report-sample`), for looking at the page and the
//! plots: `cargo test -p tokbench-report --test sample_report -- --ignored`, then
//! `scripts/screenshot-report.sh /tmp/report-sample /tmp/report-sample.png`.

use std::path::PathBuf;

use tokbench_core::catalog::{Hardware, HardwareConfig, HardwareKind, Sources};
use tokbench_core::{HardwareRef, ModelFacts, ResultPoint};
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
        host: "bench-01".to_string(),
        hardware: hw.clone(),
        backend: "engine".to_string(),
        backend_version: "b6000".to_string(),
        accel: if hw.config.is_some() { "cuda" } else { "cpu" }.to_string(),
        model: model.to_string(),
        quant: quant.to_string(),
        facts,
        test: test.to_string(),
        n_prompt,
        n_gen,
        n_depth,
        n_threads: None,
        n_gpu_layers: Some(99),
        flash_attn: Some(true),
        type_k: None,
        type_v: None,
        status: if tps.is_some() { "ok" } else { "failed" }.to_string(),
        prefill_tps: tps.filter(|_| !decode),
        prefill_tps_sd: None,
        decode_tps: tps.filter(|_| decode),
        decode_tps_sd: tps.filter(|_| decode).map(|t| t * 0.015),
        ttft_ms: None,
        decode_power_w: None,
        vram_peak_bytes: None,
        rss_peak_bytes: None,
        source: None,
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
            p.model.clone(),
            p.quant.clone(),
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
#[ignore = "writes a sample report for looking at; run by hand"]
fn write_sample_report() {
    let dir = std::env::var_os("TOKBENCH_SAMPLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/report-sample"));
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
    };
    let mut files = plots::files(&plots);
    files.push(html::index(&tables, &plots, &meta));
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &f.bytes).unwrap();
    }
    println!("wrote {}", dir.join("index.html").display());
}
