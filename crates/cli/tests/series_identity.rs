//! One series key for every command: a run that sweeps each engine setting (and the
//! server load) over two values keeps every combination apart in `report`, `compare` and
//! `check`. Two runs of the same cells go into a real SQLite file through the store; the
//! commands are the real binary.

mod common;

use std::path::Path;

use common::*;
use tokbench_core::{
    BackendBuild, CacheType, CellResult, EngineParams, HostInfo, MetricSource, ModelRecord,
    Repetition, ResultStatus, TestSpec,
};
use tokbench_store::{NewRun, RunStatus, Store};

fn host() -> HostInfo {
    HostInfo {
        hostname: "sweep".into(),
        cpu_model: "CPU".into(),
        cpu_cores_logical: 4,
        cpu_cores_physical: Some(2),
        memory_total_bytes: Some(1 << 34),
        os: "Linux".into(),
        kernel: Some("6.1".into()),
        arch: "x86_64".into(),
        gpus: vec![],
    }
}

fn base() -> EngineParams {
    // llama-bench's defaults, as a suite that sets nothing resolves them.
    tokbench_core::EngineAxes::default().resolve(2)
}

/// The base settings and, for each setting, the base with that one setting changed.
fn sweep() -> Vec<(&'static str, EngineParams)> {
    let b = base();
    vec![
        ("base", b),
        ("threads", EngineParams { n_threads: 4, ..b }),
        ("batch", EngineParams { n_batch: 1024, ..b }),
        ("ubatch", EngineParams { n_ubatch: 256, ..b }),
        (
            "ngl",
            EngineParams {
                n_gpu_layers: 0,
                ..b
            },
        ),
        (
            "fa",
            EngineParams {
                flash_attn: true,
                ..b
            },
        ),
        (
            "type_k",
            EngineParams {
                type_k: CacheType::Q8_0,
                ..b
            },
        ),
        (
            "type_v",
            EngineParams {
                type_v: CacheType::Q8_0,
                flash_attn: true,
                ..b
            },
        ),
        (
            "mmap",
            EngineParams {
                use_mmap: false,
                ..b
            },
        ),
    ]
}

/// A tg16 result at `level` t/s (five repetitions, 0.4% apart).
fn cell(index: usize, params: EngineParams, level: f64, at: &str) -> CellResult {
    CellResult {
        cell_index: index,
        test: TestSpec {
            n_prompt: 0,
            n_gen: 16,
            n_depth: 0,
        },
        params,
        status: ResultStatus::Ok,
        error: None,
        metric_source: MetricSource::Engine,
        load_ms: Some(10.0),
        rss_peak_bytes: Some(1 << 20),
        allocated: None,
        telemetry: None,
        repetitions: [-0.004, -0.002, 0.0, 0.002, 0.004]
            .iter()
            .map(|d| Repetition {
                decode_tps: Some(level * (1.0 + d)),
                ttft_ms: Some(5.0),
                ..Default::default()
            })
            .collect(),
        serving: None,
        backend_json: None,
        log_tail: None,
        started_at: at.into(),
        duration_ms: 100.0,
        conditions: None,
    }
}

/// Two runs of the sweep, a night apart; the second one's cell `i` runs at `100 + i` t/s
/// (the first at `50 + i`), so a value shows which series it came from.
async fn write_two_runs(db: &Path) {
    let store = Store::open(db).await.unwrap();
    let build = store
        .backend_build(&BackendBuild {
            name: "engine".into(),
            version: "1".into(),
            commit: None,
            accel: "cpu".into(),
            flags: String::new(),
        })
        .await
        .unwrap();
    let model = store
        .model(&ModelRecord {
            name: "synth:tiny".into(),
            quant: "Q8_0".into(),
            file_sha256: "ab".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (uuid, at, offset) in [
        ("run-a", "2026-11-28T00:00:00Z", 50.0),
        ("run-b", "2026-11-29T00:00:00Z", 100.0),
    ] {
        let cells = sweep();
        let run = store
            .begin_run(
                &NewRun {
                    uuid: uuid.into(),
                    started_at: at.into(),
                    suite_name: "sweep".into(),
                    suite_path: None,
                    config_text: None,
                    tokbench_version: "0".into(),
                    trigger: "test".into(),
                    cells_total: cells.len(),
                    source: None,
                    hardware: None,
                },
                &host(),
            )
            .await
            .unwrap();
        for (i, (_, params)) in cells.into_iter().enumerate() {
            let r = cell(i, params, offset + i as f64, at);
            store
                .insert_result(run, build, Some(model), "synth:tiny", 5, &r)
                .await
                .unwrap();
        }
        store.finish_run(run, RunStatus::Ok, at).await.unwrap();
    }
    store.close().await;
}

#[tokio::test]
async fn every_setting_is_its_own_series_in_report_compare_and_check() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("sweep.db");
    write_two_runs(&db).await;
    let n = sweep().len();
    let db_arg = db.to_str().unwrap();

    // report: the newest result of each series, one per setting.
    let out_dir = tmp.path().join("reports");
    run_ok(&["report", "--db", db_arg, "--out", out_dir.to_str().unwrap()]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().expect("results.json has rows");
    assert_eq!(rows.len(), n, "one row per series: {rows:#?}");
    let mut decode: Vec<f64> = rows
        .iter()
        .map(|r| r["decode_tps"].as_f64().unwrap())
        .collect();
    decode.sort_by(f64::total_cmp);
    let expected: Vec<f64> = (0..n).map(|i| 100.0 + i as f64).collect();
    for (got, want) in decode.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-9, "{decode:?} vs {expected:?}");
    }

    // compare: every series of A beside the same series of B, none unpaired.
    let out = run_ok(&[
        "compare", "run-a", "run-b", "--db", db_arg, "--format", "json",
    ]);
    let cmp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cmp["unpaired"], 0, "{cmp:#}");
    let series = cmp["series"].as_array().unwrap();
    let decode_rows: Vec<&serde_json::Value> = series
        .iter()
        .filter(|r| r["comparison"]["metric"] == "decode_tps")
        .collect();
    assert_eq!(decode_rows.len(), n, "{cmp:#}");
    // Each pair is one series on both sides: the same settings, and B's level is A's + 50.
    for r in &decode_rows {
        assert_eq!(r["settings_a"], r["settings_b"], "{r:#}");
        let c = &r["comparison"];
        let step = c["median_b"].as_f64().unwrap() - c["median_a"].as_f64().unwrap();
        assert!((step - 50.0).abs() < 1e-9, "{r:#}");
    }

    // check: each result of run B is judged against its own series' one earlier result.
    let out = tokbench(&["check", "--db", db_arg, "--run", "run-b"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0)),
        "check: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let verdicts = query(
        &db,
        "SELECT result_id, series_key, baseline_n FROM verdict WHERE metric = 'decode_tps'",
    );
    assert_eq!(verdicts.len(), n, "{verdicts:#?}");
    let keys: std::collections::BTreeSet<&str> =
        verdicts.iter().map(|v| s(v, "series_key")).collect();
    assert_eq!(keys.len(), n, "one series key per setting: {keys:#?}");
    for v in &verdicts {
        assert_eq!(f(v, "baseline_n"), Some(1.0), "{v:?}");
    }

    // The key's stored text is the one earlier tokbench computed in SQL, so the change
    // points already in a database keep matching their series.
    let legacy = query(
        &db,
        "SELECT v.series_key AS stored,
            host.identity || char(31) || bb.name || char(31) || bb.accel || char(31) || bb.flags
            || char(31) || COALESCE(m.name, r.model_name) || char(31) || COALESCE(m.quant, '')
            || char(31) || COALESCE(m.file_sha256, '') || char(31) || w.label || char(31)
            || r.metric_source || char(31) || IFNULL(r.n_threads, '') || char(31)
            || IFNULL(r.n_batch, '') || char(31) || IFNULL(r.n_ubatch, '') || char(31)
            || IFNULL(r.n_gpu_layers, '') || char(31) || IFNULL(r.flash_attn, '') || char(31)
            || IFNULL(r.type_k, '') || char(31) || IFNULL(r.type_v, '') || char(31)
            || IFNULL(r.use_mmap, '') || IFNULL(char(31) || 'c' || r.concurrency, '')
            || IFNULL(char(31) || 'rate' || r.request_rate, '') AS legacy
         FROM verdict v JOIN result r ON r.id = v.result_id JOIN run ON run.id = r.run_id
         JOIN host ON host.id = run.host_id JOIN backend_build bb ON bb.id = r.backend_build_id
         JOIN workload w ON w.id = r.workload_id LEFT JOIN model m ON m.id = r.model_id
         WHERE v.metric = 'decode_tps'",
    );
    assert_eq!(legacy.len(), n);
    for row in &legacy {
        assert_eq!(s(row, "stored"), s(row, "legacy"));
    }
}
