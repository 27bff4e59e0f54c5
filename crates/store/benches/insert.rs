//! Storing results in a real SQLite file (a temporary directory, so whatever disk holds the
//! system's temp dir, with the store's own WAL and `synchronous = FULL`): one cell's result
//! in its own transaction, as a run stores each cell, and 1,000 results in one transaction,
//! through [`Store::insert_results`] and through [`Store::insert_batch`] (what `import`
//! uses: each cell names its build and model). Every result is an engine cell with five
//! repetitions; cell indices keep growing, so the tables grow as the benchmark runs, as in
//! a long run.

use std::cell::Cell;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tokbench_core::record::AllocatedMemory;
use tokbench_core::{
    BackendBuild, CellResult, EngineParams, HostInfo, MetricSource, ModelRecord, Repetition,
    ResultStatus, TestSpec,
};
use tokbench_store::{BatchCell, BuildId, ModelId, NewRun, RunId, Store};

const BATCH: usize = 1_000;
const N_REPS: usize = 5;

fn host() -> HostInfo {
    HostInfo {
        hostname: "bench".into(),
        cpu_model: "AMD EPYC 7B13".into(),
        cpu_cores_logical: 2,
        cpu_cores_physical: Some(1),
        memory_total_bytes: Some(24 << 30),
        os: "Linux".into(),
        kernel: Some("6.1".into()),
        arch: "x86_64".into(),
        gpus: vec![],
    }
}

/// Cell `cell` of a run: a tg128 engine cell with `N_REPS` repetitions within 2% of
/// 100 tok/s (deterministic: the spread follows the cell and repetition index).
fn result(cell: usize) -> CellResult {
    CellResult {
        cell_index: cell,
        test: TestSpec {
            n_prompt: 0,
            n_gen: 128,
            n_depth: 0,
        },
        params: EngineParams {
            flash_attn: true,
            ..tokbench_core::EngineAxes::default().resolve(2)
        },
        status: ResultStatus::Ok,
        error: None,
        metric_source: MetricSource::Engine,
        load_ms: Some(850.0),
        rss_peak_bytes: Some(5 << 30),
        allocated: Some(AllocatedMemory {
            model_bytes: Some(4_900_000_000),
            repack_bytes: None,
            kv_bytes: Some(512 << 20),
            compute_bytes: Some(300 << 20),
            output_bytes: Some(500 << 10),
            ..Default::default()
        }),
        telemetry: None,
        repetitions: (0..N_REPS)
            .map(|rep| {
                let wobble = ((cell * N_REPS + rep) as f64).sin();
                let tps = 100.0 * (1.0 + 0.02 * wobble);
                Repetition {
                    decode_tps: Some(tps),
                    ttft_ms: Some(10.0 + wobble),
                    gen_ms: Some(128.0 / tps * 1e3),
                    ..Default::default()
                }
            })
            .collect(),
        serving: None,
        backend_json: None,
        log_tail: None,
        started_at: "2026-11-29T02:00:00Z".into(),
        duration_ms: 7_000.0,
        conditions: None,
    }
}

/// A fresh store with one run, its build and its model.
async fn setup(db: &std::path::Path) -> (Store, RunId, BuildId, ModelId) {
    let store = Store::open(db).await.unwrap();
    let run = store
        .begin_run(
            &NewRun {
                uuid: "00000000-0000-4000-8000-000000000b0c".into(),
                started_at: "2026-11-29T02:00:00Z".into(),
                suite_name: "bench".into(),
                suite_path: None,
                config_text: None,
                tokbench_version: "0".into(),
                trigger: "bench".into(),
                cells_total: 0,
                source: None,
                hardware: None,
            },
            &host(),
        )
        .await
        .unwrap();
    let build = store
        .backend_build(&BackendBuild {
            name: "engine".into(),
            version: "b5000".into(),
            commit: None,
            accel: "cpu".into(),
            flags: String::new(),
        })
        .await
        .unwrap();
    let model = store
        .model(&ModelRecord {
            name: "llama-3.1-8b".into(),
            quant: "Q4_K_M".into(),
            file_sha256: "ab".repeat(32),
            ..Default::default()
        })
        .await
        .unwrap();
    (store, run, build, model)
}

fn insert(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (store, run, build, model) = rt.block_on(setup(&tmp.path().join("bench.db")));
    // The next unused cell index: (run, cell, source) is unique.
    let next_cell = Cell::new(0usize);
    let take_cells = |n: usize| {
        let first = next_cell.get();
        next_cell.set(first + n);
        (first..first + n).map(result).collect::<Vec<_>>()
    };

    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert_result/1", |b| {
        b.iter_batched(
            || take_cells(1),
            |rs| {
                let r = black_box(&rs[0]);
                rt.block_on(store.insert_result(run, build, Some(model), "llama-3.1-8b", 5, r))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("insert_results/1000", |b| {
        b.iter_batched(
            || take_cells(BATCH),
            |rs| {
                let refs: Vec<&CellResult> = rs.iter().collect();
                let refs = black_box(refs);
                rt.block_on(store.insert_results(run, build, Some(model), "llama-3.1-8b", 5, &refs))
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    // What `import` writes through: each cell names its build and model, found once.
    let engine = BackendBuild {
        name: "engine".into(),
        version: "b5000".into(),
        commit: None,
        accel: "cpu".into(),
        flags: String::new(),
    };
    let llama = ModelRecord {
        name: "llama-3.1-8b".into(),
        quant: "Q4_K_M".into(),
        file_sha256: "ab".repeat(32),
        ..Default::default()
    };
    g.bench_function("insert_batch/1000", |b| {
        b.iter_batched(
            || take_cells(BATCH),
            |rs| {
                let cells: Vec<BatchCell> = rs
                    .iter()
                    .map(|r| BatchCell {
                        build: &engine,
                        model: Some(&llama),
                        model_name: "llama-3.1-8b",
                        repetitions_expected: 5,
                        result: r,
                        rate_summary: None,
                    })
                    .collect();
                rt.block_on(store.insert_batch(run, black_box(&cells)))
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, insert);
criterion_main!(benches);
