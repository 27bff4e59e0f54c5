//! The tables from hand-built results: every derived figure against a hand calculation,
//! "—" for what is unknown, Markdown/JSON/CSV snapshots (`tests/snapshots/`, rewritten only
//! with `UPDATE_SNAPSHOTS=1`), and output independent of input order.

use std::path::Path;

use tokbench_core::catalog::Catalog;
use tokbench_core::{
    BackendIdentity, CacheType, EngineSettings, HardwareRef, MetricSource, ModelFacts,
    ModelIdentity, ResultPoint, ResultStatus, SeriesKey, ServeLoad, TestSpec,
};
use tokbench_report::tables::{
    self, csv_rows, json, leaderboard, markdown, picks, quantization, Table, DEFAULT_BUDGETS_USD,
    UNKNOWN,
};
use tokbench_report::ReportRow;

/// Figures as in `bench-configs/hardware.toml` for the GeForce cards; the others are made up
/// for the test: a datacenter card without an MSRP and a unified part without a TDP.
const CATALOG: &str = r#"
[[hardware]]
name = "GeForce RTX 4090"
vendor = "NVIDIA"
kind = "discrete_gpu"
memory_gib = 24
bandwidth_gbps = 1008
tdp_w = 450
msrp_usd = 1599
[hardware.sources]
memory = "test"
bandwidth = "test"
tdp = "test"
msrp = "test"

[[hardware]]
name = "GeForce RTX 3090"
vendor = "NVIDIA"
kind = "discrete_gpu"
memory_gib = 24
bandwidth_gbps = 936
tdp_w = 350
msrp_usd = 1499
[hardware.sources]
memory = "test"
bandwidth = "test"
tdp = "test"
msrp = "test"

[[hardware]]
name = "H100 PCIe"
vendor = "NVIDIA"
kind = "discrete_gpu"
memory_gib = 80
bandwidth_gbps = 2000
tdp_w = 350
[hardware.sources]
memory = "test"
bandwidth = "test"
tdp = "test"

[[hardware]]
name = "Apple M4 Max"
vendor = "Apple"
kind = "unified"
memory_gib = 128
bandwidth_gbps = 546
msrp_usd = 3499
[hardware.sources]
memory = "test"
bandwidth = "test"
msrp = "test"
"#;

const CPU: &str = "AMD EPYC 7B13 (CPU)";

fn hardware(spec: &str) -> HardwareRef {
    let catalog = Catalog::from_toml(CATALOG, Path::new("t.toml")).unwrap();
    match catalog.resolve(spec) {
        Ok(config) => HardwareRef::matched(config),
        Err(_) => HardwareRef::unmatched(spec),
    }
}

/// An 8B-like model. Q8_0: 8.5 GB of tensors, of which 0.5 GB token embeddings; Q4_K_M:
/// 4.9 GB, 0.28 GB. 32 layers, 8 KV heads × 128 = kv_dim 1024, 8.0 B parameters.
fn facts(quant: &str) -> ModelFacts {
    let (file, tensors, embd) = match quant {
        "Q8_0" => (8_510_000_000, 8_500_000_000, 500_000_000),
        _ => (4_920_000_000, 4_900_000_000, 280_000_000),
    };
    ModelFacts {
        n_params: Some(8_000_000_000),
        file_bytes: Some(file),
        tensor_bytes: Some(tensors),
        token_embd_bytes: Some(embd),
        output_bytes: Some(embd),
        n_layer: Some(32),
        kv_dim: Some(1024),
        tensor_bytes_only: false,
    }
}

fn point(hw: &str, quant: &str, test: &str) -> ResultPoint {
    let spec: TestSpec = test.parse().unwrap();
    let host = format!("host-{}", tables::slug(hw));
    ResultPoint {
        run_uuid: "00000000-0000-4000-8000-000000000001".into(),
        started_at: "2026-01-10T02:00:00Z".into(),
        series: SeriesKey {
            host: host.clone(),
            backend: BackendIdentity {
                name: "engine".into(),
                accel: if hw == CPU { "cpu" } else { "cuda" }.into(),
                flags: String::new(),
            },
            metric_source: MetricSource::Engine,
            model: ModelIdentity {
                name: "llama-8b".into(),
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
        host,
        hardware: hardware(hw),
        backend_version: "b5000".into(),
        facts: facts(quant),
        test: test.into(),
        status: ResultStatus::Ok,
        prefill_tps: None,
        prefill_tps_sd: None,
        decode_tps: None,
        decode_tps_sd: None,
        ttft_ms: None,
        decode_power_w: None,
        vram_peak_bytes: None,
        rss_peak_bytes: None,
        source: None,
        noisy: None,
        throttled: None,
    }
}

/// A prefill test: tok/s and TTFT ms.
fn pp(hw: &str, quant: &str, tps: f64, ttft_ms: f64) -> ResultPoint {
    ResultPoint {
        prefill_tps: Some(tps),
        ttft_ms: Some(ttft_ms),
        ..point(hw, quant, "pp512")
    }
}

/// A generation test: tok/s, its sd and the measured decode power when known.
fn tg(hw: &str, quant: &str, tps: f64, sd: Option<f64>, power_w: Option<f64>) -> ResultPoint {
    ResultPoint {
        decode_tps: Some(tps),
        decode_tps_sd: sd,
        decode_power_w: power_w,
        ..point(hw, quant, "tg128")
    }
}

/// The sample: six hardware configurations, two quantizations, pp512 and tg128, a second
/// backend on the 4090 and one crashed result.
fn sample() -> Vec<ReportRow> {
    let r4090 = "GeForce RTX 4090";
    let r3090 = "GeForce RTX 3090";
    let two_3090 = "2x GeForce RTX 3090";
    let h100 = "H100 PCIe";
    let m4 = "Apple M4 Max";
    let points = vec![
        pp(r4090, "Q8_0", 9000.0, 60.0),
        tg(r4090, "Q8_0", 100.0, Some(0.5), Some(300.0)),
        {
            let mut p = tg(r4090, "Q8_0", 102.0, None, None);
            p.series.backend.name = "llama-bench".into();
            p.backend_version = "b4999".into();
            p
        },
        pp(r3090, "Q8_0", 5000.0, 105.0),
        tg(r3090, "Q8_0", 90.0, None, Some(330.0)),
        pp(two_3090, "Q8_0", 9500.0, 58.0),
        tg(two_3090, "Q8_0", 85.0, Some(1.25), None),
        pp(h100, "Q8_0", 12000.0, 45.0),
        tg(h100, "Q8_0", 150.0, None, Some(310.0)),
        tg(m4, "Q8_0", 60.0, None, Some(70.0)),
        pp(CPU, "Q8_0", 120.0, 4300.0),
        tg(CPU, "Q8_0", 8.0, None, None),
        pp(r4090, "Q4_K_M", 9500.0, 57.0),
        tg(r4090, "Q4_K_M", 160.0, Some(1.0), None),
        tg(r3090, "Q4_K_M", 140.0, None, None),
        pp(CPU, "Q4_K_M", 150.0, 3500.0),
        tg(CPU, "Q4_K_M", 14.0, None, None),
        ResultPoint {
            status: ResultStatus::Crashed,
            ..point(h100, "Q4_K_M", "tg128")
        },
    ];
    points.into_iter().map(ReportRow::new).collect()
}

fn find<'a>(tables: &'a [Table], id: &str) -> &'a Table {
    tables
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no table {id} in {:?}", ids(tables)))
}

fn ids(tables: &[Table]) -> Vec<&str> {
    tables.iter().map(|t| t.id.as_str()).collect()
}

fn cells(t: &Table) -> Vec<Vec<&str>> {
    t.rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect()
}

#[test]
fn leaderboard_figures_match_hand_calculation() {
    let tables = leaderboard(&sample());
    // Generation tests only: pp512 has no table of its own; the crashed Q4_K_M result on
    // the H100 is left out.
    // One table per test, models and quantizations as rows.
    assert_eq!(ids(&tables), ["leaderboard-tg128"]);
    let t = find(&tables, "leaderboard-tg128");
    assert_eq!(t.title, "Leaderboard: tg128");
    assert_eq!(
        t.columns,
        [
            "Model",
            "Quant",
            "Hardware",
            "VRAM GiB",
            "MSRP",
            "TDP W",
            "Gen tok/s",
            "tok/s/$1k",
            "tok/s/100W",
            "Prefill tok/s",
            "TTFT ms",
            "Measured W",
            "tok/J",
            "Roofline %"
        ]
    );
    // Bytes read per generated token, Q8_0 tg128 (the same for every row):
    //   weights without token_embd: 8,500,000,000 − 500,000,000 = 8,000,000,000
    //   KV per cell, f16/f16 (not recorded → f16): 32 × 1024 × (2 + 2) = 131,072 bytes
    //   mean context during tg128: 0 + 0 + 128 / 2 = 64 cells → 8,388,608 bytes
    //   total B = 8,008,388,608 bytes
    // Prefill tok/s and TTFT come from the pp512 result of the same setup.
    let expected = [
        // H100: 150 tok/s. No MSRP → "—". 150 / (350 / 100) = 42.857 → 42.86.
        //   tok/J = 150 / 310 = 0.48387 → 0.484.
        //   roofline = 150 × B / 2000e9 = 1.2013e12 / 2e12 = 0.60063 → 60.1.
        [
            "H100 PCIe",
            "80",
            UNKNOWN,
            "350",
            "150.00",
            UNKNOWN,
            "42.86",
            "12000.00",
            "45.0",
            "310.0",
            "0.484",
            "60.1",
        ],
        // 4090 under llama-bench, 102 tok/s: 102 / 1.599 = 63.789 → 63.79;
        //   102 / 4.5 = 22.667 → 22.67; roofline 102 × B / 1008e9 = 0.81037 → 81.0.
        //   No llama-bench pp512 → prefill "—". No power → "—".
        [
            "GeForce RTX 4090 (llama-bench)",
            "24",
            "$1,599",
            "450",
            "102.00",
            "63.79",
            "22.67",
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            "81.0",
        ],
        // 4090 engine, 100 ± 0.5 tok/s at 300 W: 100 / 1.599 = 62.539 → 62.54;
        //   100 / 4.5 = 22.222 → 22.22; 100 / 300 = 0.3333 → 0.333;
        //   roofline 100 × B / 1008e9 = 0.79448 → 79.4.
        [
            "GeForce RTX 4090 (engine)",
            "24",
            "$1,599",
            "450",
            "100.00 ± 0.50",
            "62.54",
            "22.22",
            "9000.00",
            "60.0",
            "300.0",
            "0.333",
            "79.4",
        ],
        // 3090, 90 tok/s at 330 W: 90 / 1.499 = 60.040 → 60.04; 90 / 3.5 = 25.714 → 25.71;
        //   90 / 330 = 0.27273 → 0.273; roofline 90 × B / 936e9 = 0.77004 → 77.0.
        [
            "GeForce RTX 3090",
            "24",
            "$1,499",
            "350",
            "90.00",
            "60.04",
            "25.71",
            "5000.00",
            "105.0",
            "330.0",
            "0.273",
            "77.0",
        ],
        // 2× 3090: 48 GiB, $2,998, 700 W; bandwidth stays one card's.
        //   85 / 2.998 = 28.352 → 28.35; 85 / 7 = 12.143 → 12.14;
        //   roofline 85 × B / 936e9 = 0.72726 → 72.7.
        [
            "2× GeForce RTX 3090",
            "48",
            "$2,998",
            "700",
            "85.00 ± 1.25",
            "28.35",
            "12.14",
            "9500.00",
            "58.0",
            UNKNOWN,
            UNKNOWN,
            "72.7",
        ],
        // M4 Max: no TDP. 60 / 3.499 = 17.148 → 17.15; 60 / 70 = 0.85714 → 0.857;
        //   roofline 60 × B / 546e9 = 0.88004 → 88.0. No pp512 → "—".
        [
            "Apple M4 Max",
            "128",
            "$3,499",
            UNKNOWN,
            "60.00",
            "17.15",
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            "70.0",
            "0.857",
            "88.0",
        ],
        // Not in the catalog: only what was measured.
        [
            CPU, UNKNOWN, UNKNOWN, UNKNOWN, "8.00", UNKNOWN, UNKNOWN, "120.00", "4300.0", UNKNOWN,
            UNKNOWN, UNKNOWN,
        ],
    ];
    // Grouped by model and quantization (Q4_K_M first), fastest first within each.
    let quants: Vec<&str> = t.rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(quants[..3], ["Q4_K_M"; 3]);
    assert!(t.rows.iter().all(|r| r[0] == "llama-8b"));
    let first = quants.iter().position(|q| *q == "Q8_0").unwrap();
    let q8: Vec<Vec<&str>> = cells(t)
        .into_iter()
        .filter(|r| r[1] == "Q8_0")
        .map(|r| r[2..].to_vec())
        .collect();
    assert_eq!(q8, expected);

    // Sort keys: the numbers behind the cells, None for text and unknowns.
    assert_eq!(t.sort[first][2], None);
    assert_eq!(t.sort[first][4], None);
    assert_eq!(t.sort[first][6], Some(150.0));
    let pct = t.sort[first + 2][13].unwrap();
    assert!((pct - 100.0 * 100.0 * 8_008_388_608.0 / 1.008e12).abs() < 1e-9);
}

#[test]
fn unknown_figures_are_a_dash_never_zero() {
    let rows = sample();
    for t in leaderboard(&rows)
        .iter()
        .chain(&quantization(&rows))
        .chain(&picks(&rows, &DEFAULT_BUDGETS_USD))
    {
        assert_eq!(t.rows.len(), t.sort.len());
        for (row, keys) in t.rows.iter().zip(&t.sort) {
            assert_eq!(row.len(), t.columns.len(), "{}", t.id);
            assert_eq!(keys.len(), t.columns.len(), "{}", t.id);
            for (cell, key) in row.iter().zip(keys) {
                let digits: String = cell.chars().filter(char::is_ascii_digit).collect();
                assert!(
                    digits.is_empty() || digits.chars().any(|c| c != '0'),
                    "{}: zero cell `{cell}`",
                    t.id
                );
                if cell == UNKNOWN {
                    assert_eq!(*key, None, "{}", t.id);
                }
            }
        }
    }

    // A TDP or MSRP of 0 in a hand-made configuration is unknown, like a missing one.
    let mut p = tg("GeForce RTX 4090", "Q8_0", 100.0, None, Some(0.0));
    if let Some(c) = p.hardware.config.as_mut().map(std::sync::Arc::make_mut) {
        c.tdp_w = Some(0.0);
        c.msrp_usd = Some(0.0);
    }
    let t = leaderboard(&[ReportRow::new(p)]);
    assert_eq!(
        cells(&t[0]),
        [[
            "llama-8b",
            "Q8_0",
            "GeForce RTX 4090",
            "24",
            UNKNOWN,
            UNKNOWN,
            "100.00",
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            "79.4"
        ]]
    );
}

#[test]
fn noisy_and_throttled_results_say_so_beside_their_speed() {
    let steady = tg("GeForce RTX 4090", "Q8_0", 100.0, Some(1.0), None);
    let noisy = ResultPoint {
        noisy: Some(true),
        ..tg("GeForce RTX 3090", "Q8_0", 80.0, Some(30.0), None)
    };
    let both = ResultPoint {
        noisy: Some(true),
        throttled: Some(true),
        ..tg("Apple M2 Ultra", "Q8_0", 60.0, Some(20.0), None)
    };
    let t = leaderboard(&[steady, noisy, both].map(ReportRow::new));
    let gen = t[0].columns.iter().position(|c| c == "Gen tok/s").unwrap();
    let mut speeds: Vec<&str> = cells(&t[0]).iter().map(|r| r[gen]).collect();
    speeds.sort_unstable();
    assert_eq!(
        speeds,
        [
            "100.00 ± 1.00",
            "60.00 ± 20.00 (noisy, throttled)",
            "80.00 ± 30.00 (noisy)"
        ]
    );
    // The flags go into the CSV and JSON too.
    let csv = csv_rows(&[ReportRow::new(ResultPoint {
        throttled: Some(true),
        ..tg("GeForce RTX 4090", "Q8_0", 100.0, None, None)
    })]);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let at = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!((at("noisy"), at("throttled")), ("", "true"));
}

#[test]
fn a_test_with_a_prompt_shows_its_own_prefill_and_ttft() {
    let p = ResultPoint {
        prefill_tps: Some(8000.0),
        decode_tps: Some(95.0),
        ttft_ms: Some(75.0),
        ..point("GeForce RTX 4090", "Q8_0", "pp512+tg128")
    };
    // The pp512 result of the same setup is not used: the test measured its own prompt.
    let rows: Vec<ReportRow> = [p, pp("GeForce RTX 4090", "Q8_0", 9000.0, 60.0)]
        .into_iter()
        .map(ReportRow::new)
        .collect();
    let t = leaderboard(&rows);
    assert_eq!(ids(&t), ["leaderboard-pp512-tg128"]);
    assert_eq!(t[0].rows[0][9], "8000.00");
    assert_eq!(t[0].rows[0][10], "75.0");
    // Mean context 0 + 512 + 64 = 576 cells: B = 8e9 + 131,072 × 576 = 8,075,497,472;
    // 95 × B / 1008e9 = 0.76109 → 76.1.
    assert_eq!(t[0].rows[0][13], "76.1");
}

#[test]
fn quantization_compares_with_q8_0_on_the_same_hardware() {
    let tables = quantization(&sample());
    let t = find(&tables, "quantization-llama-8b-geforce-rtx-4090");
    assert_eq!(t.title, "Quantization: llama-8b on GeForce RTX 4090");
    // File GiB: 8,510,000,000 / 2^30 = 7.9255 → 7.93; 4,920,000,000 / 2^30 = 4.5821 → 4.58.
    // Bits/weight: 8.5e9 × 8 / 8e9 = 8.50; 4.9e9 × 8 / 8e9 = 4.90.
    // Q4_K_M vs Q8_0 (engine): prefill 9500 / 9000 = 1.0556 → 1.06×; gen 160 / 100 = 1.60×.
    // The llama-bench Q8_0 row is its own baseline (no engine Q8_0 is its setup).
    assert_eq!(
        cells(t),
        [
            ["pp512", "Q8_0", "7.93", "8.50", "9000.00", "1.00×", UNKNOWN, UNKNOWN],
            ["pp512", "Q4_K_M", "4.58", "4.90", "9500.00", "1.06×", UNKNOWN, UNKNOWN],
            [
                "tg128",
                "Q8_0 (engine)",
                "7.93",
                "8.50",
                UNKNOWN,
                UNKNOWN,
                "100.00 ± 0.50",
                "1.00×"
            ],
            [
                "tg128",
                "Q8_0 (llama-bench)",
                "7.93",
                "8.50",
                UNKNOWN,
                UNKNOWN,
                "102.00",
                "1.00×"
            ],
            [
                "tg128",
                "Q4_K_M",
                "4.58",
                "4.90",
                UNKNOWN,
                UNKNOWN,
                "160.00 ± 1.00",
                "1.60×"
            ],
        ]
    );
    // The M4 Max has no Q4_K_M; the 3090's Q4_K_M tg128 compares with its Q8_0:
    // 140 / 90 = 1.5556 → 1.56×.
    let t = find(&tables, "quantization-llama-8b-geforce-rtx-3090");
    assert_eq!(t.rows[2][1], "Q4_K_M");
    assert_eq!(t.rows[2][7], "1.56×");
    // Without a Q8_0 result on the same hardware there is nothing to compare with.
    let rows: Vec<ReportRow> = vec![ReportRow::new(tg(CPU, "Q4_K_M", 14.0, None, None))];
    assert_eq!(quantization(&rows)[0].rows[0][7], UNKNOWN);
}

#[test]
fn picks_name_the_hardware_and_the_figures_that_earned_it() {
    let tables = picks(&sample(), &DEFAULT_BUDGETS_USD);
    assert_eq!(
        ids(&tables),
        ["picks-llama-8b-q4-k-m", "picks-llama-8b-q8-0"]
    );
    let t = find(&tables, "picks-llama-8b-q8-0");
    let rows = cells(t);
    let pick = |label: &str| {
        rows.iter()
            .find(|r| r[1] == label)
            .unwrap_or_else(|| panic!("no pick {label}"))
            .clone()
    };
    // Fastest: the H100 at 150 tok/s.
    assert_eq!(
        pick("Fastest"),
        [
            "tg128",
            "Fastest",
            "H100 PCIe",
            "150.00",
            "150.00 tok/s",
            UNKNOWN,
            "350",
            "310.0"
        ]
    );
    // Per $1k: 4090/llama-bench 63.79 > 4090/engine 62.54 > 3090 60.04 > 2× 3090 28.35 >
    // M4 Max 17.15.
    assert_eq!(
        pick("Best tok/s per $1k")[2],
        "GeForce RTX 4090 (llama-bench)"
    );
    assert_eq!(pick("Best tok/s per $1k")[4], "63.79 tok/s/$1k");
    // Up to $1,500 only the 3090 ($1,499) qualifies.
    assert_eq!(
        pick("Best tok/s per $1k up to $1,500"),
        [
            "tg128",
            "Best tok/s per $1k up to $1,500",
            "GeForce RTX 3090",
            "90.00",
            "60.04 tok/s/$1k",
            "$1,499",
            "350",
            "330.0"
        ]
    );
    assert_eq!(
        pick("Best tok/s per $1k up to $10,000")[2],
        "GeForce RTX 4090 (llama-bench)"
    );
    // Tokens per joule: M4 Max 60 / 70 = 0.857 beats H100 0.484, 4090 0.333, 3090 0.273.
    assert_eq!(pick("Most tokens per joule")[2], "Apple M4 Max");
    assert_eq!(pick("Most tokens per joule")[4], "0.857 tok/J");
    // Per 100 W of TDP: H100 42.86 > 3090 25.71 > 4090 22.67 > 2× 3090 12.14.
    assert_eq!(pick("Best tok/s per 100 W TDP")[2], "H100 PCIe");
    assert_eq!(pick("Best tok/s per 100 W TDP")[4], "42.86 tok/s/100W");

    // Q4_K_M: nobody measured power.
    let t = find(&tables, "picks-llama-8b-q4-k-m");
    let joule = t
        .rows
        .iter()
        .find(|r| r[1] == "Most tokens per joule")
        .unwrap();
    assert_eq!(joule[2], "no result with measured decode power");
    assert!(joule[3..].iter().all(|c| c == UNKNOWN));

    // A budget nothing fits in says so; junk budgets are ignored, duplicates merged.
    let t = picks(&sample(), &[500.0, f64::NAN, -1.0, 0.0, 500.0]);
    let labels: Vec<&str> = t[1].rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        labels,
        [
            "Fastest",
            "Best tok/s per $1k",
            "Best tok/s per $1k up to $500",
            "Most tokens per joule",
            "Best tok/s per 100 W TDP"
        ]
    );
    assert_eq!(t[1].rows[2][2], "no hardware with a known MSRP up to $500");
}

#[test]
fn results_on_the_same_hardware_are_told_apart() {
    let run = |backend: &str, fa: bool, tps: f64| {
        let mut p = tg("GeForce RTX 4090", "Q8_0", tps, None, None);
        p.series.backend.name = backend.into();
        p.series.settings.flash_attn = Some(fa);
        p
    };
    let rows: Vec<ReportRow> = [
        run("engine", true, 100.0),
        run("engine", false, 90.0),
        run("llama-bench", true, 80.0),
        // The same setup as the first, measured again: only a number tells them apart.
        run("engine", true, 95.0),
    ]
    .into_iter()
    .map(ReportRow::new)
    .collect();
    let t = leaderboard(&rows);
    let labels: Vec<&str> = t[0].rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        labels,
        [
            "GeForce RTX 4090 (engine, fa 1, #1)",
            "GeForce RTX 4090 (engine, fa 1, #2)",
            "GeForce RTX 4090 (engine, fa 0)",
            "GeForce RTX 4090 (llama-bench)",
        ]
    );
}

#[test]
fn weird_inputs_do_not_panic() {
    let weird = [0.0, -3.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE];
    let mut points = Vec::new();
    for (i, &x) in weird.iter().enumerate() {
        points.push(ResultPoint {
            run_uuid: format!("run-{i}"),
            decode_tps_sd: Some(x),
            prefill_tps: Some(x),
            ttft_ms: Some(x),
            ..tg("GeForce RTX 4090", "Q8_0", x, Some(x), Some(x))
        });
        let mut p = ResultPoint {
            facts: ModelFacts {
                n_params: Some(0),
                file_bytes: Some(0),
                tensor_bytes: Some(0),
                token_embd_bytes: Some(u64::MAX),
                output_bytes: Some(0),
                n_layer: Some(u32::MAX),
                kv_dim: Some(u32::MAX),
                tensor_bytes_only: false,
            },
            ..tg(CPU, "q8_0", x, None, Some(x))
        };
        p.series.settings.type_k = Some(CacheType::Q4_0);
        points.push(p);
    }
    let rows: Vec<ReportRow> = points.into_iter().map(ReportRow::new).collect();
    let all: Vec<Table> = leaderboard(&rows)
        .into_iter()
        .chain(quantization(&rows))
        .chain(picks(&rows, &[f64::NAN, f64::INFINITY, 1e300]))
        .collect();
    let md = markdown(&all);
    assert!(!md.contains("NaN") && !md.contains("inf"), "{md}");
    let j: serde_json::Value = serde_json::from_str(&json(&rows)).unwrap();
    assert_eq!(j["rows"].as_array().map(Vec::len), Some(rows.len()));
    let csv = csv_rows(&rows);
    assert!(!csv.contains("NaN") && !csv.contains("inf"), "{csv}");
    assert_eq!(csv.lines().count(), rows.len() + 1);

    // Nothing at all: no tables, and Markdown that says so.
    assert!(leaderboard(&[]).is_empty());
    assert_eq!(markdown(&leaderboard(&[])), tables::NO_TABLES);
}

#[test]
fn csv_has_every_field_and_quotes_per_rfc_4180() {
    let mut p = tg(CPU, "Q8_0", 8.0, None, None);
    p.host = "rack 1, \"blue\"".into();
    let csv = csv_rows(&[ReportRow::new(p)]);
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("run_uuid,started_at,host,hardware,hardware_count,"));
    assert!(header.ends_with(",tokens_per_joule,roofline_fraction"));
    let line = lines.next().unwrap();
    assert!(
        line.contains(",\"rack 1, \"\"blue\"\"\",AMD EPYC 7B13 (CPU),,"),
        "{line}"
    );
    assert_eq!(lines.next(), None);
}

// ---------------------------------------------------------------------------------------
// Snapshots and determinism

/// Compares `actual` with the insta snapshot `tests/snapshots/tables__<name>.snap`
/// (`cargo insta review` after a change that is meant).
fn assert_snapshot(name: &str, actual: &str) {
    insta::assert_snapshot!(name, actual);
}

#[test]
fn leaderboard_markdown_snapshot() {
    assert_snapshot("leaderboard.md", &markdown(&leaderboard(&sample())));
}

#[test]
fn quantization_markdown_snapshot() {
    assert_snapshot("quantization.md", &markdown(&quantization(&sample())));
}

#[test]
fn picks_markdown_snapshot() {
    assert_snapshot(
        "picks.md",
        &markdown(&picks(&sample(), &DEFAULT_BUDGETS_USD)),
    );
}

#[test]
fn json_snapshot() {
    assert_snapshot("rows.json", &json(&sample()));
}

#[test]
fn csv_snapshot() {
    assert_snapshot("rows.csv", &csv_rows(&sample()));
}

/// Everything the tables module renders from `rows`, concatenated.
fn everything(rows: &[ReportRow]) -> String {
    let mut all = leaderboard(rows);
    all.extend(quantization(rows));
    all.extend(picks(rows, &DEFAULT_BUDGETS_USD));
    let sort_keys: Vec<String> = all.iter().map(|t| format!("{:?}", t.sort)).collect();
    format!(
        "{}\n{}\n{}\n{}",
        markdown(&all),
        csv_rows(rows),
        json(rows),
        sort_keys.join("\n")
    )
}

#[test]
fn shuffled_input_gives_identical_output() {
    let rows = sample();
    let reference = everything(&rows);
    // Deterministic permutations: reversed, rotations and a multiplicative shuffle
    // (i × 7 mod n visits every index since 7 and n are coprime for n = 18).
    let n = rows.len();
    assert_eq!(n, 18);
    let mut orders: Vec<Vec<usize>> = vec![(0..n).rev().collect()];
    for shift in [1, 5, 11] {
        orders.push((0..n).map(|i| (i + shift) % n).collect());
    }
    orders.push((0..n).map(|i| (i * 7) % n).collect());
    for order in orders {
        let shuffled: Vec<ReportRow> = order.iter().map(|&i| rows[i].clone()).collect();
        assert_eq!(everything(&shuffled), reference, "order {order:?}");
    }
}

#[test]
fn a_rerun_replaces_the_older_result_of_its_series() {
    let old = ResultPoint {
        started_at: "2026-11-01T00:00:00Z".into(),
        run_uuid: "old".into(),
        ..tg("GeForce RTX 4090", "Q8_0", 100.0, None, None)
    };
    let new = ResultPoint {
        started_at: "2026-11-02T00:00:00Z".into(),
        run_uuid: "new".into(),
        ..tg("GeForce RTX 4090", "Q8_0", 110.0, None, None)
    };
    // Another setting is another series and stays.
    let mut fa = old.clone();
    fa.series.settings.flash_attn = Some(false);
    for input in [
        vec![old.clone(), new.clone(), fa.clone()],
        vec![fa.clone(), new.clone(), old.clone()],
    ] {
        let kept = tokbench_report::latest_per_series(input);
        assert_eq!(kept.len(), 2);
        let uuids: Vec<&str> = kept.iter().map(|p| p.run_uuid.as_str()).collect();
        assert!(
            uuids.contains(&"new") && uuids.contains(&"old"),
            "{uuids:?}"
        );
        assert!(kept
            .iter()
            .all(|p| p.decode_tps == Some(110.0) || p.series.settings.flash_attn == Some(false)));
    }
}

#[test]
fn imported_rows_say_where_their_numbers_came_from() {
    let imported = ResultPoint {
        source: Some("llama-bench output lb.json".into()),
        ..tg("GeForce RTX 3090", "Q8_0", 90.0, None, None)
    };
    let rows = vec![ReportRow::new(imported)];
    let md = markdown(&leaderboard(&rows));
    assert!(
        md.contains("| GeForce RTX 3090 (from llama-bench output lb.json) |"),
        "{md}"
    );
    assert!(csv_rows(&rows).contains(",llama-bench output lb.json,"));
}

#[test]
fn the_page_header_says_what_the_numbers_are() {
    let rows = sample();
    let facts: std::collections::BTreeMap<String, String> =
        tokbench_report::page_facts(&rows).into_iter().collect();
    assert!(facts["hardware"].contains("GeForce RTX 4090"), "{facts:?}");
    assert!(facts["hardware"].contains("H100 PCIe"), "{facts:?}");
    assert!(facts["backends"].contains("llama-bench b4999"), "{facts:?}");
    assert!(facts["models"].contains("Q4_K_M"), "{facts:?}");
    assert!(facts["runs"].contains("run"), "{facts:?}");
    // Every sample row has the same settings: they are named once.
    let label = rows[0].point.series.settings_label();
    assert_eq!(facts["settings"], label);
    let mut varied = sample();
    varied[0].point.series.settings.n_ubatch = Some(64);
    let facts: std::collections::BTreeMap<String, String> =
        tokbench_report::page_facts(&varied).into_iter().collect();
    assert!(facts["settings"].starts_with("differ"), "{facts:?}");
    assert!(tokbench_report::page_facts(&[]).is_empty());
}
