//! The report's work short of drawing: deriving every figure of 100,000 results, keeping the
//! newest result of each series and deriving those (the first step of
//! [`tokbench_report::generate`]), building the leaderboard, quantization and picks tables
//! from them; and the regression gate judging one result against a 90-night history.
//!
//! The results: every hardware entry of `bench-configs/hardware.toml`, five models in four
//! quantizations, five tests, 50 nightly runs each, speeds with 3% noise (fixed seed).

use std::path::Path;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokbench_core::catalog::{Catalog, HardwareConfig};
use tokbench_core::{
    BackendIdentity, EngineSettings, HardwareRef, MetricSource, ModelFacts, ModelIdentity,
    ResultPoint, ResultStatus, SeriesKey, ServeLoad, TestSpec,
};
use tokbench_report::gate::{judge, GateConfig, Metric, Observation};
use tokbench_report::{derive, latest_per_series, tables, ReportRow};

const HARDWARE_TOML: &str = include_str!("../../../bench-configs/hardware.toml");
const N_POINTS: usize = 100_000;
const TESTS: [&str; 5] = ["pp512", "tg128", "pp2048", "pp512 @ d4096", "tg128 @ d4096"];
/// (name, billions of parameters, layers, kv_dim)
const MODELS: [(&str, f64, u32, u32); 5] = [
    ("llama-3.1-8b", 8.0, 32, 1024),
    ("llama-3.1-70b", 70.6, 80, 1024),
    ("qwen2.5-7b", 7.6, 28, 512),
    ("mistral-7b", 7.2, 32, 1024),
    ("gemma-2-9b", 9.2, 42, 2048),
];
/// (quantization, bits per weight)
const QUANTS: [(&str, f64); 4] = [
    ("Q4_K_M", 4.85),
    ("Q5_K_M", 5.69),
    ("Q8_0", 8.5),
    ("F16", 16.0),
];

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn hardware() -> Vec<HardwareRef> {
    let catalog = Catalog::from_toml(HARDWARE_TOML, Path::new("hardware.toml")).unwrap();
    catalog
        .entries
        .into_iter()
        .map(|hw| HardwareRef::matched(HardwareConfig::new(hw, 1).unwrap()))
        .collect()
}

/// `N_POINTS` results: every series measured night after night (the last night cut short).
fn points() -> Vec<ResultPoint> {
    let hardware = hardware();
    let mut rng = ChaCha8Rng::seed_from_u64(100_000);
    let mut series = Vec::new();
    for hw in &hardware {
        let bandwidth = hw.bandwidth_bytes_per_s().unwrap_or(100e9);
        for &(model, b_params, n_layer, kv_dim) in &MODELS {
            for &(quant, bpw) in &QUANTS {
                let tensor_bytes = (b_params * 1e9 * bpw / 8.0) as u64;
                let embd_bytes = tensor_bytes / 40;
                let facts = ModelFacts {
                    n_params: Some((b_params * 1e9) as u64),
                    file_bytes: Some(tensor_bytes + (8 << 20)),
                    tensor_bytes: Some(tensor_bytes),
                    token_embd_bytes: Some(embd_bytes),
                    output_bytes: Some(embd_bytes),
                    n_layer: Some(n_layer),
                    kv_dim: Some(kv_dim),
                    tensor_bytes_only: false,
                };
                // Decode at 70% of the roofline; prefill 60 times faster.
                let tg = 0.7 * bandwidth / tensor_bytes as f64;
                for test in TESTS {
                    series.push((hw, model, quant, facts, test, tg));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(N_POINTS);
    for night in 0..N_POINTS.div_ceil(series.len()) {
        let started_at = format!("2026-{:02}-{:02}T02:00:00Z", night / 28 + 1, night % 28 + 1);
        let run_uuid = format!("00000000-0000-4000-8000-{night:012}");
        let left = N_POINTS - out.len();
        for &(hw, model, quant, facts, test, tg) in series.iter().take(left) {
            let spec: TestSpec = test.parse().unwrap();
            let noise = 1.0 + 0.03 * normal(&mut rng);
            let (prefill, decode) = if spec.n_gen > 0 {
                (None, Some(tg * noise))
            } else {
                (Some(60.0 * tg * noise), None)
            };
            out.push(ResultPoint {
                run_uuid: run_uuid.clone(),
                started_at: started_at.clone(),
                series: SeriesKey {
                    host: format!("host-{}", tables::slug(&hw.name)),
                    backend: BackendIdentity {
                        name: "engine".into(),
                        accel: "cuda".into(),
                        flags: String::new(),
                    },
                    metric_source: MetricSource::Engine,
                    model: ModelIdentity {
                        name: model.into(),
                        quant: quant.into(),
                        sha256: None,
                    },
                    test: spec,
                    settings: EngineSettings {
                        n_gpu_layers: Some(99),
                        flash_attn: Some(true),
                        ..EngineSettings::default()
                    },
                    load: ServeLoad::default(),
                },
                host: format!("host-{}", tables::slug(&hw.name)),
                hardware: hw.clone(),
                backend_version: "b5000".into(),
                facts,
                test: test.into(),
                status: ResultStatus::Ok,
                prefill_tps: prefill,
                prefill_tps_sd: prefill.map(|t| t * 0.01),
                decode_tps: decode,
                decode_tps_sd: decode.map(|t| t * 0.01),
                ttft_ms: prefill.map(|t| 512.0 / t * 1e3),
                decode_power_w: decode.and(hw.tdp_w()).map(|w| 0.8 * w),
                vram_peak_bytes: Some(facts.file_bytes.unwrap() + (1 << 30)),
                rss_peak_bytes: Some(1 << 30),
                source: None,
                noisy: Some(false),
                throttled: Some(false),
            });
        }
    }
    out
}

fn report(c: &mut Criterion) {
    let points = points();
    let rows: Vec<ReportRow> = latest_per_series(points.clone())
        .into_iter()
        .map(ReportRow::new)
        .collect();
    let budgets = tables::DEFAULT_BUDGETS_USD.to_vec();

    let mut g = c.benchmark_group("report");
    g.sample_size(20);
    g.throughput(Throughput::Elements(N_POINTS as u64));
    g.bench_function("derive/100k_points", |b| {
        b.iter(|| black_box(&points).iter().map(derive).collect::<Vec<_>>())
    });
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("latest_per_series_and_derive/100k_points", |b| {
        b.iter_batched(
            || points.clone(),
            |points| {
                latest_per_series(points)
                    .into_iter()
                    .map(ReportRow::new)
                    .collect::<Vec<_>>()
            },
            BatchSize::LargeInput,
        )
    });
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function(format!("tables/{}_rows", rows.len()), |b| {
        b.iter(|| {
            let rows = black_box(&rows);
            (
                tables::leaderboard(rows),
                tables::quantization(rows),
                tables::picks(rows, &budgets),
            )
        })
    });
    g.finish();
}

/// One decode-speed result judged against 90 nightly results: 100 tok/s with 1.5%
/// log-normal noise, repetition CVs of 0.5–6% (a few noisy nights left out).
fn gate(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(90);
    let history: Vec<Observation> = (1..=90)
        .map(|day| Observation {
            value: 100.0 * (0.015 * normal(&mut rng)).exp(),
            cv: Some(rng.gen_range(0.005..0.06)),
            age_days: f64::from(day),
            before_change_point: false,
        })
        .collect();
    let current = Observation {
        cv: Some(0.01),
        ..Observation::new(97.0, 0.0)
    };
    let cfg = GateConfig::default();
    let _ = judge(&current, &history, Metric::DecodeTps, &cfg);

    c.bench_function("gate/judge/90_days", |b| {
        b.iter(|| {
            judge(
                black_box(&current),
                black_box(&history),
                Metric::DecodeTps,
                &cfg,
            )
        })
    });
}

criterion_group!(benches, report, gate);
criterion_main!(benches);
