//! `Store::merge_from` on real SQLite files: four databases written side by side merge into
//! one with every row once, a second merge changes nothing, a newer source is refused, a
//! merge that fails part way leaves the destination as it was, an older source is read
//! without being changed, and a run both databases have gains only its missing cells.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokbench_core::record::AllocatedMemory;
use tokbench_core::{
    BackendBuild, CellResult, HostInfo, MetricSource, ModelRecord, Repetition, ResultStatus,
    TestSpec,
};
use tokbench_store::{MergeReport, NewRun, RunStatus, Store, StoreError, MIGRATOR};

fn host(name: &str) -> HostInfo {
    HostInfo {
        hostname: name.into(),
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

fn build(name: &str) -> BackendBuild {
    BackendBuild {
        name: name.into(),
        version: "1".into(),
        commit: None,
        accel: "cpu".into(),
        flags: String::new(),
    }
}

fn model(name: &str) -> ModelRecord {
    ModelRecord {
        name: name.into(),
        quant: "Q8_0".into(),
        file_sha256: format!("sha-{name}"),
        ..Default::default()
    }
}

fn cell(index: usize, n_gen: u32, status: ResultStatus, reps: &[f64]) -> CellResult {
    CellResult {
        cell_index: index,
        test: TestSpec {
            n_prompt: 0,
            n_gen,
            n_depth: 0,
        },
        params: tokbench_core::EngineAxes::default().resolve(2),
        status,
        error: None,
        metric_source: MetricSource::Engine,
        load_ms: Some(12.0),
        rss_peak_bytes: Some(1 << 20),
        allocated: Some(AllocatedMemory {
            kv_bytes: Some(8 << 20),
            ..Default::default()
        }),
        telemetry: None,
        repetitions: reps
            .iter()
            .map(|&t| Repetition {
                decode_tps: Some(t),
                ..Default::default()
            })
            .collect(),
        serving: None,
        backend_json: None,
        log_tail: None,
        started_at: "2026-11-29T00:00:00Z".into(),
        duration_ms: 100.0,
        conditions: None,
    }
}

fn new_run(uuid: &str, cells_total: usize) -> NewRun {
    NewRun {
        uuid: uuid.into(),
        started_at: format!("2026-11-29T00:00:0{}Z", uuid.len() % 10),
        suite_name: "t".into(),
        suite_path: None,
        config_text: Some("[suite]".into()),
        tokbench_version: "0".into(),
        trigger: "test".into(),
        cells_total,
        source: None,
        hardware: Some("2× GeForce RTX 3090".into()),
    }
}

/// One run written through the Store API: each cell a result with repetitions and one
/// telemetry sample (written raw: the store has no telemetry writer yet).
struct RunSpec<'a> {
    uuid: &'a str,
    host: &'a str,
    build: &'a str,
    model: &'a str,
    /// (n_gen, status, decode tps per repetition)
    cells: &'a [(u32, ResultStatus, &'a [f64])],
    status: RunStatus,
}

async fn write_run(db: &Path, spec: &RunSpec<'_>) {
    let store = Store::open(db).await.unwrap();
    let run = store
        .begin_run(&new_run(spec.uuid, spec.cells.len()), &host(spec.host))
        .await
        .unwrap();
    let b = store.backend_build(&build(spec.build)).await.unwrap();
    let m = store.model(&model(spec.model)).await.unwrap();
    for (i, &(n_gen, status, reps)) in spec.cells.iter().enumerate() {
        let id = store
            .insert_result(
                run,
                b,
                Some(m),
                spec.model,
                3,
                &cell(i, n_gen, status, reps),
            )
            .await
            .unwrap();
        exec(
            db,
            &format!(
                "INSERT INTO telemetry_sample (result_id, t_ms, phase, metric, value, source)
                 VALUES ({}, 1.5, 'decode', 'power_w', {}, 'nvml')",
                id.0,
                100 + i
            ),
        )
        .await;
    }
    if spec.status != RunStatus::Running {
        store
            .finish_run(run, spec.status, "2026-11-29T00:05:00Z")
            .await
            .unwrap();
    }
    store.close().await;
}

/// Runs statements on a plain connection (outside the store's guards).
async fn exec(db: &Path, statements: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// The rows of `statement`, sorted, as text: comparable across databases.
async fn rows(store: &Store, statement: &str) -> Vec<String> {
    let out = store.query(statement).await.unwrap();
    let mut rows: Vec<String> = out
        .rows
        .iter()
        .map(|r| Value::Array(r.clone()).to_string())
        .collect();
    rows.sort();
    rows
}

/// What a database holds, independent of its row ids.
const VIEW: &str = "SELECT run_uuid, started_at, host, hardware, backend, backend_version, accel,
    model, quant, test, n_prompt, n_gen, n_depth, n_threads, status, error, decode_tps,
    decode_tps_sd, kv_buffer_bytes, metric_source, n_reps, n_reps_expected, source FROM v_results";
const TELEMETRY: &str = "SELECT run.uuid, r.cell_index, t.metric, t.value FROM telemetry_sample t
    JOIN result r ON r.id = t.result_id JOIN run ON run.id = r.run_id";
const REPS: &str = "SELECT run.uuid, r.cell_index, p.rep, p.decode_tps FROM repetition p
    JOIN result r ON r.id = p.result_id JOIN run ON run.id = r.run_id";
const HOSTS: &str =
    "SELECT h.identity, hw.name FROM host h LEFT JOIN hardware hw ON hw.id = h.hardware_id";
const RUNS: &str = "SELECT uuid, status, finished_at, host.identity, cells_total, hardware FROM run JOIN host ON host.id = run.host_id";

async fn count(store: &Store, table: &str) -> i64 {
    let out = store
        .query(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap();
    out.rows[0][0].as_i64().unwrap()
}

/// Everything compared when a destination must be unchanged.
async fn snapshot(store: &Store) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for q in [VIEW, TELEMETRY, REPS, HOSTS, RUNS] {
        all.push(rows(store, q).await);
    }
    for t in [
        "hardware",
        "host",
        "backend_build",
        "model",
        "workload",
        "run",
        "result",
        "repetition",
        "telemetry_sample",
    ] {
        all.push(vec![format!("{t}: {}", count(store, t).await)]);
    }
    all
}

async fn assert_valid(store: &Store) {
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    let fk = store.query("PRAGMA foreign_key_check").await.unwrap();
    assert!(fk.rows.is_empty(), "{fk:?}");
}

const OK: ResultStatus = ResultStatus::Ok;

/// Four databases as four concurrent runs would leave them: shared and distinct hosts,
/// builds and models; the first with two runs and a host tied to a hardware row.
async fn four_sources(dir: &Path) -> Vec<PathBuf> {
    let specs: [&[RunSpec]; 4] = [
        &[
            RunSpec {
                uuid: "run-a1",
                host: "alpha",
                build: "engine",
                model: "tiny",
                cells: &[(16, OK, &[10.0, 11.0]), (32, ResultStatus::Crashed, &[])],
                status: RunStatus::Failed,
            },
            RunSpec {
                uuid: "run-a2",
                host: "alpha",
                build: "engine",
                model: "small",
                cells: &[(16, OK, &[20.0, 21.0, 22.0])],
                status: RunStatus::Ok,
            },
        ],
        &[RunSpec {
            uuid: "run-b",
            host: "alpha",
            build: "engine",
            model: "tiny",
            cells: &[(16, OK, &[12.0]), (64, OK, &[13.0, 14.0])],
            status: RunStatus::Ok,
        }],
        &[RunSpec {
            uuid: "run-c",
            host: "beta",
            build: "llama-bench",
            model: "tiny",
            cells: &[(16, OK, &[30.0, 31.0])],
            status: RunStatus::Interrupted,
        }],
        &[RunSpec {
            uuid: "run-d",
            host: "beta",
            build: "engine",
            model: "medium",
            cells: &[(128, OK, &[40.0]), (16, OK, &[41.0]), (32, OK, &[42.0])],
            status: RunStatus::Ok,
        }],
    ];
    let mut paths = Vec::new();
    for (i, runs) in specs.iter().enumerate() {
        let db = dir.join(format!("src{i}.db"));
        for spec in *runs {
            write_run(&db, spec).await;
        }
        paths.push(db);
    }
    exec(
        &paths[0],
        "INSERT INTO hardware (name, vendor) VALUES ('Zen 4', 'AMD');
         UPDATE host SET hardware_id = (SELECT id FROM hardware WHERE name = 'Zen 4');",
    )
    .await;
    paths
}

#[tokio::test]
async fn four_databases_merge_into_one_with_every_row_once_and_twice_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = four_sources(tmp.path()).await;
    // The destination has a run of its own first, so its ids differ from every source's.
    let dst_path = tmp.path().join("dst.db");
    write_run(
        &dst_path,
        &RunSpec {
            uuid: "run-own",
            host: "gamma",
            build: "engine",
            model: "small",
            cells: &[(16, OK, &[1.0]), (256, OK, &[2.0])],
            status: RunStatus::Ok,
        },
    )
    .await;

    let dst = Store::open(&dst_path).await.unwrap();
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); 3];
    for db in std::iter::once(&dst_path).chain(&sources) {
        let store = Store::open_read_only(db).await.unwrap();
        for (i, q) in [VIEW, TELEMETRY, REPS].into_iter().enumerate() {
            expected[i].extend(rows(&store, q).await);
        }
        store.close().await;
    }
    for e in &mut expected {
        e.sort();
    }

    let mut total = MergeReport::default();
    for src in &sources {
        let r = dst.merge_from(src).await.unwrap();
        assert_eq!(&r.source, src);
        assert_eq!(r.runs_skipped, 0);
        total.runs_added += r.runs_added;
        total.results_added += r.results_added;
        total.repetitions_added += r.repetitions_added;
        total.telemetry_added += r.telemetry_added;
        total.hosts_added += r.hosts_added;
        total.models_added += r.models_added;
        total.builds_added += r.builds_added;
        total.hardware_added += r.hardware_added;
    }
    assert_eq!(total.runs_added, 5);
    assert_eq!(total.results_added, 9);
    assert_eq!(total.repetitions_added, 13);
    assert_eq!(total.telemetry_added, 9);
    assert_eq!(total.hosts_added, 2, "alpha and beta; gamma was there");
    assert_eq!(total.models_added, 2, "tiny and medium; small was there");
    assert_eq!(total.builds_added, 1, "llama-bench; engine was there");
    assert_eq!(total.hardware_added, 1);

    assert_valid(&dst).await;
    for (i, q) in [VIEW, TELEMETRY, REPS].into_iter().enumerate() {
        assert_eq!(rows(&dst, q).await, expected[i], "{q}");
    }
    assert_eq!(count(&dst, "run").await, 6);
    assert_eq!(count(&dst, "result").await, 11);
    assert_eq!(count(&dst, "host").await, 3);
    assert_eq!(count(&dst, "model").await, 3);
    assert_eq!(
        count(&dst, "workload").await,
        5,
        "tg16 tg32 tg64 tg128 tg256"
    );
    // The host keeps its hardware through the remapped id.
    assert!(rows(&dst, HOSTS)
        .await
        .iter()
        .any(|r| r.starts_with("[\"alpha|") && r.ends_with(",\"Zen 4\"]")));
    // Run fields travel as they were.
    let runs = rows(&dst, RUNS).await;
    assert!(runs
        .iter()
        .any(|r| r.starts_with("[\"run-c\",\"interrupted\"")));

    let before = snapshot(&dst).await;
    for src in &sources {
        let r = dst.merge_from(src).await.unwrap();
        assert!(r.is_noop(), "{r:?}");
        assert!(r.runs_skipped > 0);
    }
    assert_eq!(snapshot(&dst).await, before);
    assert_valid(&dst).await;
}

#[tokio::test]
async fn a_source_with_a_newer_schema_is_refused_and_the_destination_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = four_sources(tmp.path()).await;
    exec(
        &sources[1],
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES (99999999999999, 'future', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .await;
    let dst = Store::open(&tmp.path().join("dst.db")).await.unwrap();
    dst.merge_from(&sources[0]).await.unwrap();
    let before = snapshot(&dst).await;
    let err = dst.merge_from(&sources[1]).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("src1.db") && text.contains("99999999999999"),
        "{text}"
    );
    match err {
        StoreError::NewerSchema { path, version } => {
            assert_eq!(version, 99999999999999);
            assert_eq!(path, sources[1]);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_eq!(snapshot(&dst).await, before);
    assert_valid(&dst).await;
}

#[tokio::test]
async fn a_merge_that_fails_part_way_leaves_the_destination_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = four_sources(tmp.path()).await;
    let dst_path = tmp.path().join("dst.db");
    let dst = Store::open(&dst_path).await.unwrap();
    dst.merge_from(&sources[0]).await.unwrap();
    // Fault injection: the last table copied refuses its first row, after the catalogs,
    // runs, results and repetitions of this merge have been written.
    exec(
        &dst_path,
        "CREATE TRIGGER fail_midway BEFORE INSERT ON telemetry_sample
         BEGIN SELECT RAISE(ABORT, 'simulated crash'); END;",
    )
    .await;
    let before = snapshot(&dst).await;
    let err = dst.merge_from(&sources[3]).await.unwrap_err();
    assert!(
        format!("{err:?}").contains("simulated crash"),
        "expected the injected failure, got {err:?}"
    );
    assert_eq!(snapshot(&dst).await, before);
    assert_valid(&dst).await;

    // Nothing of the failed attempt lingers: the store still writes, and the same merge
    // goes through once the fault is gone.
    exec(&dst_path, "DROP TRIGGER fail_midway").await;
    let r = dst.merge_from(&sources[3]).await.unwrap();
    assert_eq!(
        (r.runs_added, r.results_added, r.telemetry_added),
        (1, 3, 3)
    );
    assert_eq!(
        dst.stored_cells(dst.run_by_uuid("run-d").await.unwrap().unwrap().id)
            .await
            .unwrap(),
        vec![0, 1, 2]
    );
    assert_valid(&dst).await;
}

#[tokio::test]
async fn a_database_is_not_merged_into_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    write_run(
        &db,
        &RunSpec {
            uuid: "u",
            host: "alpha",
            build: "engine",
            model: "tiny",
            cells: &[(16, OK, &[1.0])],
            status: RunStatus::Ok,
        },
    )
    .await;
    let store = Store::open(&db).await.unwrap();
    let sub = tmp.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let linked = tmp.path().join("hard.db");
    std::fs::hard_link(&db, &linked).unwrap();
    for other in [db.clone(), sub.join("../t.db"), linked] {
        match store.merge_from(&other).await {
            Err(StoreError::MergeIntoItself { path }) => assert_eq!(path, other),
            other => panic!("expected MergeIntoItself, got {other:?}"),
        }
    }
    assert_eq!(count(&store, "run").await, 1);
}

#[tokio::test]
async fn a_missing_or_foreign_source_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dst = Store::open(&tmp.path().join("dst.db")).await.unwrap();
    assert!(matches!(
        dst.merge_from(&tmp.path().join("missing.db")).await,
        Err(StoreError::Missing { .. })
    ));
    let foreign = tmp.path().join("foreign.db");
    std::fs::File::create(&foreign).unwrap();
    exec(&foreign, "CREATE TABLE t (x)").await;
    assert!(matches!(
        dst.merge_from(&foreign).await,
        Err(StoreError::NotTokbench { .. })
    ));
    let junk = tmp.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, not even close to one").unwrap();
    assert!(dst.merge_from(&junk).await.is_err());
    assert_valid(&dst).await;
}

#[tokio::test]
async fn an_older_source_is_read_as_it_is_and_never_changed() {
    let tmp = tempfile::tempdir().unwrap();
    // A database as the first tokbench left it: only the first migration applied.
    let old = common::first_schema_db(tmp.path()).await;
    exec(
        &old,
        "INSERT INTO host (identity, hostname, cpu_model, cpu_cores_logical, os, arch, first_seen_at)
           VALUES ('old|CPU|4|0|', 'old', 'CPU', 4, 'Linux', 'x86_64', '2026-01-01T00:00:00Z');
         INSERT INTO backend_build (name, version, accel) VALUES ('engine', '0', 'cpu');
         INSERT INTO workload (kind, label, n_prompt, n_gen, n_depth) VALUES ('bench', 'tg16', 0, 16, 0);
         INSERT INTO run (uuid, started_at, suite_name, tokbench_version, status, cells_total, host_id)
           VALUES ('old-run', '2026-01-01T00:00:00Z', 'old', '0.0.1', 'ok', 1, 1);
         INSERT INTO result (run_id, cell_index, backend_build_id, model_name, workload_id, status,
                             metric_source, repetitions_expected, decode_tps, started_at, duration_ms)
           VALUES (1, 0, 1, 'tiny', 1, 'ok', 'engine', 1, 9.5, '2026-01-01T00:00:00Z', 10);
         INSERT INTO result (run_id, cell_index, backend_build_id, model_name, workload_id, status,
                             metric_source, repetitions_expected, decode_tps, decode_tps_sd,
                             started_at, duration_ms)
           VALUES (1, 1, 1, 'tiny', 1, 'ok', 'engine', 3, 20.0, 8.0, '2026-01-01T00:00:00Z', 10);
         INSERT INTO repetition (result_id, rep, decode_tps) VALUES (1, 0, 9.5);",
    )
    .await;
    let bytes_before = std::fs::read(&old).unwrap();

    let dst = Store::open(&tmp.path().join("dst.db")).await.unwrap();
    let r = dst.merge_from(&old).await.unwrap();
    assert_eq!(
        (r.runs_added, r.results_added, r.repetitions_added),
        (1, 2, 1)
    );
    assert_valid(&dst).await;
    let out = dst
        .query(
            "SELECT run_uuid, hardware, kv_buffer_bytes, decode_tps, n_reps, noisy, throttled
             FROM v_results ORDER BY result_id",
        )
        .await
        .unwrap();
    // The source predates the noisy flag: its results get the flag their figures imply (a
    // CV of 40% is noisy; one repetition cannot tell), and no throttle record.
    assert_eq!(
        out.rows,
        vec![
            vec![
                Value::from("old-run"),
                Value::Null,
                Value::Null,
                Value::from(9.5),
                Value::from(1),
                Value::Null,
                Value::Null,
            ],
            vec![
                Value::from("old-run"),
                Value::Null,
                Value::Null,
                Value::from(20.0),
                Value::from(0),
                Value::from(1),
                Value::Null,
            ]
        ]
    );
    assert!(dst.merge_from(&old).await.unwrap().is_noop());

    // The source was neither migrated nor written.
    assert_eq!(std::fs::read(&old).unwrap(), bytes_before);
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&old)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let versions: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let first = MIGRATOR.iter().map(|m| m.version).min().unwrap();
    assert_eq!(versions, vec![(first,)]);
}

#[tokio::test]
async fn a_run_both_databases_have_gains_only_its_missing_cells() {
    let tmp = tempfile::tempdir().unwrap();
    // The destination stopped after cell 0 (cell 1 cut short); the source, a copy that
    // went on, has all three cells and finished.
    let dst_path = tmp.path().join("dst.db");
    write_run(
        &dst_path,
        &RunSpec {
            uuid: "shared",
            host: "alpha",
            build: "engine",
            model: "tiny",
            cells: &[(16, OK, &[1.0]), (32, ResultStatus::Interrupted, &[])],
            status: RunStatus::Interrupted,
        },
    )
    .await;
    let src_path = tmp.path().join("src.db");
    write_run(
        &src_path,
        &RunSpec {
            uuid: "shared",
            host: "alpha",
            build: "engine",
            model: "tiny",
            cells: &[
                (16, OK, &[100.0]),
                (32, OK, &[200.0, 201.0]),
                (64, OK, &[300.0]),
            ],
            status: RunStatus::Ok,
        },
    )
    .await;
    let dst = Store::open(&dst_path).await.unwrap();
    let r = dst.merge_from(&src_path).await.unwrap();
    assert_eq!(
        (
            r.runs_added,
            r.runs_skipped,
            r.runs_extended,
            r.results_added,
            r.results_replaced,
            r.repetitions_added,
            r.telemetry_added
        ),
        (0, 1, 1, 2, 1, 3, 2)
    );
    assert_valid(&dst).await;
    let out = dst
        .query("SELECT r.cell_index, r.status, r.decode_tps FROM result r ORDER BY r.cell_index")
        .await
        .unwrap();
    assert_eq!(
        out.rows,
        vec![
            // The destination's own measurement of cell 0 is kept.
            vec![Value::from(0), Value::from("ok"), Value::from(1.0)],
            // Its interrupted cell 1 gives way to the source's finished one.
            vec![Value::from(1), Value::from("ok"), Value::from(200.5)],
            vec![Value::from(2), Value::from("ok"), Value::from(300.0)],
        ]
    );
    let run = dst.run_by_uuid("shared").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Ok);
    assert_eq!(count(&dst, "run").await, 1);
    assert_eq!(count(&dst, "repetition").await, 4);

    let before = snapshot(&dst).await;
    assert!(dst.merge_from(&src_path).await.unwrap().is_noop());
    assert_eq!(snapshot(&dst).await, before);
}

#[tokio::test]
async fn verdicts_and_change_points_travel_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = four_sources(tmp.path()).await;
    let probe = Store::open(&sources[3]).await.unwrap();
    let has = probe
        .query("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('verdict', 'change_point')")
        .await
        .unwrap();
    probe.close().await;
    // The schema has both tables: the merge below must carry them.
    assert_eq!(has.rows[0][0], Value::from(2), "{:?}", has.rows);
    exec(
        &sources[3],
        "INSERT INTO verdict (check_uuid, checked_at, run_id, result_id, series_key, metric, kind,
                              value, baseline_n, reason)
           SELECT 'check-1', '2026-11-30T00:00:00Z', run_id, id, 'k', 'decode_tps', 'ok', 40, 3, 'fine'
           FROM result;
         INSERT INTO change_point (series_key, at, note, created_at)
           VALUES ('k', '2026-11-29T00:00:00Z', 'driver upgrade', '2026-11-30T00:00:00Z');",
    )
    .await;
    let dst = Store::open(&tmp.path().join("dst.db")).await.unwrap();
    let r = dst.merge_from(&sources[3]).await.unwrap();
    assert_eq!((r.verdicts_added, r.change_points_added), (3, 1));
    assert_valid(&dst).await;
    let out = dst
        .query(
            "SELECT COUNT(*) FROM verdict v JOIN result r ON r.id = v.result_id
             WHERE r.run_id = v.run_id",
        )
        .await
        .unwrap();
    assert_eq!(out.rows[0][0], Value::from(3));
    assert!(dst.merge_from(&sources[3]).await.unwrap().is_noop());
    assert_eq!(count(&dst, "verdict").await, 3);
    assert_eq!(count(&dst, "change_point").await, 1);
}

/// Cell `index` of run `uuid` in `db`, with telemetry that could not measure `unavailable`.
async fn write_cell_with_telemetry(db: &Path, uuid: &str, index: usize, unavailable: &[&str]) {
    let store = Store::open(db).await.unwrap();
    let run = match store.run_by_uuid(uuid).await.unwrap() {
        Some(r) => r.id,
        None => store
            .begin_run(&new_run(uuid, 4), &host("box"))
            .await
            .unwrap(),
    };
    let b = store.backend_build(&build("engine")).await.unwrap();
    let mut c = cell(index, 16, OK, &[10.0]);
    c.telemetry = Some(tokbench_core::record::CellTelemetry {
        phases: vec![],
        samples: vec![],
        unavailable: unavailable.iter().map(|u| u.to_string()).collect(),
    });
    store.insert_result(run, b, None, "m", 1, &c).await.unwrap();
    store.close().await;
}

/// Each result's list of what telemetry could not measure, as a reader takes it: its own,
/// else its run's.
async fn effective_unavailable(store: &Store) -> Vec<String> {
    rows(
        store,
        "SELECT run.uuid, r.cell_index, COALESCE(json_extract(r.telemetry_json, '$.unavailable'),
                                       run.telemetry_unavailable_json)
         FROM result r JOIN run ON run.id = r.run_id",
    )
    .await
}

#[tokio::test]
async fn cells_added_to_a_run_both_have_keep_what_their_telemetry_could_not_measure() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src.db"), tmp.path().join("dst.db"));
    let here = ["power_w: nvml: no device"];
    let there = [
        "power_w: nvml: no device",
        "cpu_energy_j: rapl: no powercap",
    ];
    // The source measured cells 0 and 1; the destination's copy of the run holds cell 2,
    // measured where RAPL was missing too, so its run's list differs from the source's.
    write_cell_with_telemetry(&src, "shared", 0, &here).await;
    write_cell_with_telemetry(&src, "shared", 1, &here).await;
    write_cell_with_telemetry(&dst, "shared", 2, &there).await;
    // A run whose destination copy has no list yet (taken before its first measured cell).
    write_cell_with_telemetry(&src, "early", 0, &here).await;
    let store = Store::open(&dst).await.unwrap();
    store
        .begin_run(&new_run("early", 4), &host("box"))
        .await
        .unwrap();
    let before = effective_unavailable(&store).await;
    store.merge_from(&src).await.unwrap();
    let src_store = Store::open(&src).await.unwrap();
    let mut want = effective_unavailable(&src_store).await;
    src_store.close().await;
    want.extend(before);
    want.sort();
    let got = effective_unavailable(&store).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got, want);
    assert_valid(&store).await;
    store.close().await;
}
