//! The store on real SQLite files: migrations, a run written cell by cell and read back,
//! summaries computed from the repetitions, a newer schema refused, read-only enforced.
//! What is written is read back from the file and, in each test that `on_both!` names,
//! from a real PostgreSQL server too.

mod common;
#[path = "common/pg.rs"]
mod pg;

use tokbench_core::record::AllocatedMemory;
use tokbench_core::{
    BackendBuild, CellResult, EngineParams, HostInfo, MetricSource, ModelRecord, Repetition,
    ResultStatus, TestSpec,
};
use tokbench_store::{BuildId, NewRun, RunId, RunStatus, Store, StoreError};

fn host() -> HostInfo {
    HostInfo {
        hostname: "h".into(),
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

fn params() -> EngineParams {
    // llama-bench's defaults, as a suite that sets nothing resolves them.
    tokbench_core::EngineAxes::default().resolve(2)
}

fn result(cell: usize, status: ResultStatus, reps: &[f64]) -> CellResult {
    CellResult {
        cell_index: cell,
        test: TestSpec {
            n_prompt: 0,
            n_gen: 16,
            n_depth: 0,
        },
        params: params(),
        status,
        error: (status != ResultStatus::Ok).then(|| "engine killed by signal 9 (SIGKILL)".into()),
        metric_source: MetricSource::Engine,
        load_ms: Some(12.0),
        rss_peak_bytes: Some(1 << 20),
        allocated: Some(AllocatedMemory {
            model_bytes: Some(60 << 20),
            repack_bytes: None,
            kv_bytes: Some(8 << 20),
            compute_bytes: None,
            output_bytes: Some(1 << 17),
            ..Default::default()
        }),
        telemetry: None,
        repetitions: reps
            .iter()
            .map(|&t| Repetition {
                decode_tps: Some(t),
                ttft_ms: Some(5.0),
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

/// Takes a current database back to before migration 7, rows kept: the view goes first,
/// then migration 12's, 11's and 10's columns, 9's run column and 8's indexes (one covers two of 7's
/// columns), then 7's four added columns (migration 6, which a test may undo next, drops
/// the view and makes its own, so a placeholder stands in).
const UNDO_MIGRATION_7: [&str; 28] = [
    "DROP VIEW v_results",
    // 13, whose index is also 8's.
    "DROP INDEX result_report",
    "ALTER TABLE result DROP COLUMN n_cpu_moe",
    "ALTER TABLE result DROP COLUMN split_mode",
    "ALTER TABLE result DROP COLUMN main_gpu",
    "ALTER TABLE result DROP COLUMN tensor_split",
    "ALTER TABLE result DROP COLUMN tensor_buft_overrides",
    "DELETE FROM _sqlx_migrations WHERE version = 20261207000013",
    "ALTER TABLE result DROP COLUMN n_layers_offloaded",
    "ALTER TABLE result DROP COLUMN n_layers_total",
    "ALTER TABLE result DROP COLUMN placement_json",
    "DELETE FROM _sqlx_migrations WHERE version = 20261207000012",
    "DROP INDEX run_by_invocation",
    "ALTER TABLE run DROP COLUMN invocation",
    "ALTER TABLE run DROP COLUMN target",
    "DELETE FROM _sqlx_migrations WHERE version = 20261206000011",
    "ALTER TABLE result DROP COLUMN params_auto",
    "DELETE FROM _sqlx_migrations WHERE version = 20261206000010",
    "ALTER TABLE run DROP COLUMN telemetry_unavailable_json",
    "DELETE FROM _sqlx_migrations WHERE version = 20261205000009",
    "DROP INDEX run_by_started",
    "DELETE FROM _sqlx_migrations WHERE version = 20261205000008",
    "ALTER TABLE result DROP COLUMN noisy",
    "ALTER TABLE result DROP COLUMN throttled",
    "ALTER TABLE result DROP COLUMN throttle_reason",
    "ALTER TABLE result DROP COLUMN cpu_governor",
    "CREATE VIEW v_results AS SELECT id FROM result",
    "DELETE FROM _sqlx_migrations WHERE version = 20261129000007",
];

/// The embedded engine's build at `version` for `accel`.
fn engine_build(version: &str, accel: &str) -> BackendBuild {
    BackendBuild {
        name: "engine".into(),
        version: version.into(),
        commit: None,
        accel: accel.into(),
        flags: String::new(),
    }
}

/// Where a test reads back what it wrote: the SQLite file itself; or a PostgreSQL server,
/// written the way runs reach one (the file merged into it, as a run's journal is
/// forwarded) and read the way every command reads one (a snapshot of it in a SQLite file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Sqlite,
    Postgres,
}

/// What a test reads back from: the store, its file, and the server it came through.
struct ReadBack {
    store: Store,
    path: std::path::PathBuf,
    _server: Option<pg::PgCluster>,
}

/// The writes in `db` (its store closed), read back `on` SQLite or PostgreSQL.
async fn read_back(on: On, db: &std::path::Path) -> ReadBack {
    match on {
        On::Sqlite => ReadBack {
            store: Store::open(db).await.unwrap(),
            path: db.to_path_buf(),
            _server: None,
        },
        On::Postgres => {
            let pg = pg::PgCluster::start();
            let server = tokbench_store::PgStore::open(&pg.url("tokbench"))
                .await
                .unwrap();
            let merged = server.merge_sqlite(db).await.unwrap();
            assert!(merged.runs_added > 0, "{merged:?}");
            let path = db.with_file_name("from-server.db");
            server
                .export_sqlite(&tokbench_store::RunFilter::default(), &path)
                .await
                .unwrap();
            server.close().await;
            ReadBack {
                store: Store::open(&path).await.unwrap(),
                path,
                _server: Some(pg),
            }
        }
    }
}

/// Runs each named test, an `async fn(On)`, twice: reading back from SQLite, and from
/// PostgreSQL.
macro_rules! on_both {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn sqlite() {
                super::$test(super::On::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$test(super::On::Postgres).await
            }
        }
    )*};
}

on_both!(
    a_run_round_trips_through_v_results,
    telemetry_is_stored_per_phase_with_its_raw_samples,
    noisy_and_throttled_are_stored_and_older_results_get_the_flag_their_figures_imply,
    what_telemetry_cannot_measure_is_stored_once_per_run,
    long_runs_of_repetitions_and_samples_are_stored_whole_and_in_order,
    a_batch_of_many_statements_keeps_every_row_with_its_own_result,
    where_the_memory_went_is_stored_by_device_with_the_layers_offloaded,
    offload_settings_are_stored_null_at_their_defaults_and_keep_series_apart,
);

/// A temporary directory and the path of a database in it.
fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    (tmp, db)
}

/// A new store at `db` with run `u1` begun and the engine's build 1 recorded.
async fn one_run(db: &std::path::Path) -> (Store, RunId, BuildId) {
    let store = Store::open(db).await.unwrap();
    let run = store.begin_run(&new_run("u1"), &host()).await.unwrap();
    let build = store
        .backend_build(&engine_build("1", "cpu"))
        .await
        .unwrap();
    (store, run, build)
}

fn new_run(uuid: &str) -> NewRun {
    NewRun {
        uuid: uuid.into(),
        started_at: "2026-11-29T00:00:00Z".into(),
        suite_name: "t".into(),
        suite_path: None,
        config_text: None,
        tokbench_version: "0".into(),
        trigger: "test".into(),
        cells_total: 2,
        source: None,
        hardware: Some("2× GeForce RTX 3090".into()),
    }
}

async fn a_run_round_trips_through_v_results(on: On) {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let store = Store::open(&db).await.unwrap();
    assert!(store.schema_version().await.unwrap().is_some());
    let run = store.begin_run(&new_run("u1"), &host()).await.unwrap();
    let build = store
        .backend_build(&engine_build("1", "cpu"))
        .await
        .unwrap();
    // The same build and model are recorded once.
    let again = store
        .backend_build(&engine_build("1", "cpu"))
        .await
        .unwrap();
    assert_eq!(build, again);
    let m = ModelRecord {
        name: "synth:tiny".into(),
        quant: "Q8_0".into(),
        file_sha256: "ab".into(),
        ..Default::default()
    };
    let model = store.model(&m).await.unwrap();
    assert_eq!(model, store.model(&m).await.unwrap());

    store
        .insert_result(
            run,
            build,
            Some(model),
            "synth:tiny",
            3,
            &result(0, ResultStatus::Ok, &[10.0, 20.0, 30.0]),
        )
        .await
        .unwrap();
    store
        .insert_result(
            run,
            build,
            Some(model),
            "synth:tiny",
            3,
            &result(1, ResultStatus::Crashed, &[]),
        )
        .await
        .unwrap();
    // A cell is stored once per source.
    let dup = store
        .insert_result(
            run,
            build,
            Some(model),
            "synth:tiny",
            3,
            &result(1, ResultStatus::Ok, &[1.0]),
        )
        .await;
    assert!(dup.is_err());
    store
        .finish_run(run, RunStatus::Failed, "2026-11-29T00:01:00Z")
        .await
        .unwrap();
    store.close().await;

    let ReadBack { store, _server, .. } = read_back(on, &db).await;
    let run = store.run_by_uuid("u1").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let run = run.id;
    let rows = store.results(None).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].decode_tps, Some(20.0));
    assert_eq!(rows[0].decode_tps_sd, Some(10.0));
    assert_eq!(rows[0].prefill_tps, None);
    assert_eq!(rows[0].n_reps, 3);
    assert_eq!(rows[0].test, "tg16");
    assert_eq!(rows[1].status, ResultStatus::Crashed);
    assert_eq!(rows[1].decode_tps, None);
    assert!(rows[1].error.as_deref().unwrap().contains("SIGKILL"));
    assert_eq!(store.stored_cells(run).await.unwrap(), vec![0, 1]);
    // llama.cpp's own buffer sizes reach the view; an unreported one stays NULL.
    let q = store
        .query("SELECT model_buffer_bytes, kv_buffer_bytes, compute_buffer_bytes, output_buffer_bytes FROM v_results ORDER BY result_id LIMIT 1")
        .await
        .unwrap();
    assert_eq!(
        q.rows[0],
        vec![
            serde_json::json!(60 << 20),
            serde_json::json!(8 << 20),
            serde_json::Value::Null,
            serde_json::json!(1 << 17)
        ]
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;

    // Reopening migrates nothing and keeps everything.
    let store = Store::open(&db).await.unwrap();
    assert_eq!(store.results(Some("u1")).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_database_from_a_newer_tokbench_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    // Pretend a newer tokbench applied a migration we do not know.
    let raw = sqlx_sqlite_exec(&db, "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (99990101000000, 'future', CURRENT_TIMESTAMP, 1, x'00', 0)").await;
    assert!(raw.is_ok(), "{raw:?}");
    match Store::open(&db).await {
        Err(StoreError::NewerSchema { version, .. }) => assert_eq!(version, 99990101000000),
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[tokio::test]
async fn read_only_store_refuses_writes_and_attach() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    Store::open(&db).await.unwrap().close().await;
    let ro = Store::open_read_only(&db).await.unwrap();
    for sql in [
        "INSERT INTO hardware (name) VALUES ('x')",
        "ATTACH DATABASE ':memory:' AS m",
        "DELETE FROM run",
        "PRAGMA user_version = 3",
    ] {
        match ro.query(sql).await {
            Err(StoreError::Refused(why)) => assert!(why.contains("read-only"), "{why}"),
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
    let out = ro
        .query("SELECT COUNT(*) AS n FROM v_results")
        .await
        .unwrap();
    assert_eq!(out.columns, ["n"]);
    assert_eq!(out.rows, vec![vec![serde_json::json!(0)]]);
    assert!(matches!(
        Store::open_read_only(&tmp.path().join("missing.db")).await,
        Err(StoreError::Missing { .. })
    ));
}

/// Runs one statement on a plain connection (outside the store's guards).
#[tokio::test]
async fn a_query_streams_its_rows_with_every_type_and_says_what_is_wrong() {
    use std::ops::ControlFlow;
    use tokbench_store::{Cell, QueryEvent};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    Store::open(&db).await.unwrap().close().await;
    let ro = Store::open_read_only(&db).await.unwrap();
    // Every storage class comes back as SQLite holds it.
    let out = ro
        .query("SELECT 1 AS i, 2.5 AS r, 'a|b' AS t, x'00ff' AS b, NULL AS n")
        .await
        .unwrap();
    assert_eq!(out.columns, ["i", "r", "t", "b", "n"]);
    assert_eq!(
        out.rows,
        vec![vec![
            serde_json::json!(1),
            serde_json::json!(2.5),
            serde_json::json!("a|b"),
            serde_json::json!("x'00ff'"),
            serde_json::Value::Null
        ]]
    );
    // A query that matches nothing still names its columns.
    let out = ro
        .query("SELECT uuid, started_at FROM run WHERE 0")
        .await
        .unwrap();
    assert_eq!(out.columns, ["uuid", "started_at"]);
    assert!(out.rows.is_empty());
    // The caller stops a long statement when it has seen enough, and rows arrive one by one.
    let mut seen = Vec::new();
    ro.query_each(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k) SELECT i FROM k",
        |event| match event {
            QueryEvent::Columns(c) => {
                assert_eq!(c, ["i"]);
                ControlFlow::Continue(())
            }
            QueryEvent::Row(cells) => {
                let Cell::Int(i) = cells[0] else {
                    panic!("{cells:?}")
                };
                seen.push(i);
                if i == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    // A time limit stops a statement that would never end, as a timeout, after handing out
    // the rows it had; the connection it ran on has no limit left over afterwards.
    let limit = std::time::Duration::from_millis(200);
    let mut rows = 0u64;
    let t0 = std::time::Instant::now();
    let e = ro
        .query_each_within(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k) SELECT i FROM k",
            Some(limit),
            |event| {
                rows += matches!(event, QueryEvent::Row(_)) as u64;
                ControlFlow::Continue(())
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::TimedOut { limit: l } if l == limit),
        "{e}"
    );
    assert!(rows > 0);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t0.elapsed()
    );
    let count = "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 300000) SELECT COUNT(*) FROM k";
    for _ in 0..3 {
        assert_eq!(
            ro.query(count).await.unwrap().rows,
            vec![vec![serde_json::json!(300000)]]
        );
    }
    for (sql, says) in [
        ("SELEC 1", "syntax error"),
        (
            "SELECT * FROM no_such_table",
            "no such table: no_such_table",
        ),
        ("SELECT 1; SELECT 2", "one statement"),
        ("-- only a comment", "no statement"),
    ] {
        match ro.query(sql).await {
            Err(StoreError::BadQuery(why)) => assert!(why.contains(says), "{sql}: {why}"),
            other => panic!("{sql}: expected BadQuery, got {other:?}"),
        }
    }
    // A trailing comment or semicolon is not a second statement.
    assert_eq!(
        ro.query("SELECT 7 AS n; -- done").await.unwrap().rows.len(),
        1
    );
}

#[tokio::test]
async fn the_report_and_check_read_results_through_their_covering_index() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    Store::open(&db).await.unwrap().close().await;
    let ro = Store::open_read_only(&db).await.unwrap();
    let plan = |statement: String| {
        let ro = ro.clone();
        async move {
            let out = ro
                .query(&format!("EXPLAIN QUERY PLAN {statement}"))
                .await
                .unwrap();
            let detail = out.columns.iter().position(|c| c == "detail").unwrap();
            out.rows
                .iter()
                .map(|r| r[detail].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let filtered = tokbench_store::PointFilter {
        models: vec!["m".into()],
        since: Some("2026-01-01".into()),
        ..Default::default()
    };
    for (what, statement) in [
        (
            "report",
            tokbench_store::points_statement(&Default::default()).0,
        ),
        (
            "filtered report",
            tokbench_store::points_statement(&filtered).0,
        ),
        ("check's run", tokbench_store::run_statement()),
        ("check's history", tokbench_store::history_statement(2)),
    ] {
        let plan = plan(statement).await;
        // The result table is read through the covering index only: a column the statement
        // reads that the index lacks would turn this into a plain index or a table scan.
        let on_result: Vec<&String> = plan.iter().filter(|d| d.contains(" r ")).collect();
        assert_eq!(on_result.len(), 1, "{what}: {plan:?}");
        assert!(
            on_result[0].contains("USING COVERING INDEX result_report"),
            "{what}: {plan:?}"
        );
    }
    // A history over a date range starts from the runs in that range.
    let plan = plan(tokbench_store::history_statement(2)).await;
    assert!(
        plan.iter().any(|d| d.contains("run_by_started")),
        "{plan:?}"
    );
}

async fn sqlx_sqlite_exec(db: &std::path::Path, statement: &str) -> Result<(), String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(statement)
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn telemetry_is_stored_per_phase_with_its_raw_samples(on: On) {
    use tokbench_core::record::{CellTelemetry, PhaseFigures, TelemetrySample};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let store = Store::open(&db).await.unwrap();
    let run = store.begin_run(&new_run("tel"), &host()).await.unwrap();
    let build = store
        .backend_build(&engine_build("1", "cuda"))
        .await
        .unwrap();
    let mut r = result(0, ResultStatus::Ok, &[10.0, 11.0]);
    let decode = PhaseFigures {
        phase: "decode".into(),
        n_samples: 20,
        power_avg_w: Some(300.0),
        power_peak_w: Some(320.5),
        energy_j: Some(6.0),
        energy_method: Some("counter".into()),
        tokens: Some(32),
        tokens_per_joule: Some(32.0 / 6.0),
        vram_peak_bytes: Some(5 << 30),
        ..Default::default()
    };
    let prefill = PhaseFigures {
        phase: "prefill".into(),
        vram_peak_bytes: Some(6 << 30),
        flags: vec!["too_short".into()],
        ..Default::default()
    };
    r.telemetry = Some(CellTelemetry {
        phases: vec![prefill, decode],
        samples: vec![TelemetrySample {
            t_ms: 12.5,
            phase: "decode".into(),
            metric: "power_w".into(),
            value: 301.0,
            source: "nvml".into(),
        }],
        unavailable: vec!["cpu_energy_j: rapl: not supported (no /sys/class/powercap)".into()],
    });
    store
        .insert_result(run, build, None, "m", 2, &r)
        .await
        .unwrap();
    store.close().await;
    let ReadBack { store, _server, .. } = read_back(on, &db).await;
    let q = store
        .query("SELECT decode_power_avg_w, decode_power_peak_w, decode_energy_j, decode_tokens_per_joule, energy_method, vram_peak_bytes, prefill_power_avg_w FROM v_results")
        .await
        .unwrap();
    assert_eq!(
        q.rows[0],
        vec![
            serde_json::json!(300.0),
            serde_json::json!(320.5),
            serde_json::json!(6.0),
            serde_json::json!(32.0 / 6.0),
            serde_json::json!("counter"),
            // The peak over every phase.
            serde_json::json!(6u64 << 30),
            // Not measured: NULL, never 0.
            serde_json::Value::Null,
        ]
    );
    let q = store
        .query("SELECT t_ms, phase, metric, value, source FROM telemetry_sample")
        .await
        .unwrap();
    assert_eq!(q.rows.len(), 1);
    assert_eq!(q.rows[0][4], serde_json::json!("nvml"));
    let q = store
        .query("SELECT telemetry_json, run.telemetry_unavailable_json FROM result JOIN run ON run.id = result.run_id")
        .await
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(q.rows[0][0].as_str().unwrap()).unwrap();
    assert_eq!(j["phases"][0]["flags"][0], "too_short");
    let u: serde_json::Value = serde_json::from_str(q.rows[0][1].as_str().unwrap()).unwrap();
    assert!(u[0].as_str().unwrap().contains("rapl: not supported"));
    store.close().await;
}

#[tokio::test]
async fn a_cells_results_are_stored_together_or_not_at_all() {
    use tokbench_core::serving::{RequestTiming, ServingResult, ServingSummary};
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("t.db")).await.unwrap();
    let run = store.begin_run(&new_run("pair"), &host()).await.unwrap();
    let build = store
        .backend_build(&BackendBuild {
            name: "llama-server".into(),
            version: "1".into(),
            commit: None,
            accel: "cpu".into(),
            flags: String::new(),
        })
        .await
        .unwrap();
    let mut client = result(0, ResultStatus::Ok, &[10.0, 11.0]);
    client.metric_source = tokbench_core::MetricSource::Client;
    client.serving = Some(Box::new(ServingResult {
        summary: ServingSummary {
            concurrency: Some(4),
            n_requests: 1,
            ..Default::default()
        },
        requests: vec![RequestTiming {
            ttft_ms: Some(5.0),
            e2e_ms: Some(50.0),
            n_gen: Some(10),
            itl_ms: vec![5.0; 9],
            ..Default::default()
        }],
    }));
    let mut server = result(0, ResultStatus::Ok, &[12.0, 12.5]);
    server.metric_source = tokbench_core::MetricSource::Server;
    // The second row collides with the first (same cell, same source): neither is kept.
    let err = store
        .insert_results(run, build, None, "m", 2, &[&client, &client])
        .await;
    assert!(err.is_err());
    let n = store.query("SELECT COUNT(*) FROM result").await.unwrap();
    assert_eq!(n.rows[0][0], serde_json::json!(0), "half a cell was stored");
    let n = store.query("SELECT COUNT(*) FROM request").await.unwrap();
    assert_eq!(n.rows[0][0], serde_json::json!(0));
    // Client and server together: both, with the request and the level.
    store
        .insert_results(run, build, None, "m", 2, &[&client, &server])
        .await
        .unwrap();
    let q = store
        .query("SELECT metric_source, concurrency, workload_kind FROM v_results ORDER BY metric_source")
        .await
        .unwrap();
    assert_eq!(
        q.rows,
        vec![
            vec![
                serde_json::json!("client"),
                serde_json::json!(4),
                serde_json::json!("serve")
            ],
            vec![
                serde_json::json!("server"),
                serde_json::Value::Null,
                serde_json::json!("serve")
            ],
        ]
    );
    let q = store
        .query("SELECT tpot_ms, itl_json FROM request")
        .await
        .unwrap();
    assert_eq!(q.rows[0][0], serde_json::json!(5.0));
}

/// One scalar from a plain connection.
async fn sqlx_sqlite_count(db: &std::path::Path, statement: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    sqlx::query_scalar(statement)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_oom_migration_rebuilds_result_and_keeps_every_row_that_refers_to_it() {
    let (_tmp, db) = temp_db();
    let (store, run, build) = one_run(&db).await;
    for cell in 0..3 {
        store
            .insert_result(
                run,
                build,
                None,
                "m",
                3,
                &result(cell, ResultStatus::Ok, &[10.0, 20.0, 30.0]),
            )
            .await
            .unwrap();
    }
    store.close().await;
    // Back to the schema before migration 6 (the status CHECK without 'oom'), data kept.
    let reps_before = sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM repetition").await;
    assert_eq!(reps_before, 9);
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
        for statement in UNDO_MIGRATION_7.iter().chain(&[
            // ...then 6.
            "PRAGMA writable_schema = ON",
            "UPDATE sqlite_master SET sql = replace(sql, ', ''oom''', '') WHERE name = 'result'",
            "DELETE FROM _sqlx_migrations WHERE version = 20261129000006",
        ]) {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    }
    assert_eq!(
        sqlx_sqlite_count(
            &db,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'result' AND sql LIKE '%oom%'"
        )
        .await,
        0
    );
    // Opening migrates: the table is rebuilt, the rows referring to it are all there.
    let store = Store::open(&db).await.unwrap();
    let mut r = result(3, ResultStatus::Oom, &[]);
    r.error = Some("resident memory reached 1100 MiB".into());
    store
        .insert_result(run, build, None, "m", 3, &r)
        .await
        .unwrap();
    store.close().await;
    assert_eq!(
        sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM repetition").await,
        reps_before
    );
    assert_eq!(
        sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM result").await,
        4
    );
    assert_eq!(
        sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM v_results WHERE status = 'oom'").await,
        1
    );
    assert_eq!(
        sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM pragma_foreign_key_check").await,
        0
    );
    assert_eq!(
        sqlx_sqlite_count(
            &db,
            "SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check <> 'ok'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn read_only_opening_refuses_an_older_schema_and_migrate_brings_it_up() {
    let tmp = tempfile::tempdir().unwrap();
    let db = common::first_schema_db(tmp.path()).await;
    let before = std::fs::read(&db).unwrap();
    match Store::open_read_only(&db).await {
        Err(e @ StoreError::OlderSchema { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("tokbench migrate --db"), "{msg}");
            assert!(msg.contains(&db.display().to_string()), "{msg}");
        }
        other => panic!("expected OlderSchema, got {other:?}"),
    }
    // Refusing wrote nothing.
    assert_eq!(std::fs::read(&db).unwrap(), before);

    let applied = Store::migrate(&db).await.unwrap();
    assert_eq!(applied.len(), tokbench_store::MIGRATOR.iter().count() - 1);
    let ro = Store::open_read_only(&db).await.unwrap();
    let latest = tokbench_store::MIGRATOR.iter().map(|m| m.version).max();
    assert_eq!(ro.schema_version().await.unwrap(), latest);
    ro.close().await;
    // Current already: nothing to apply.
    assert!(Store::migrate(&db).await.unwrap().is_empty());
    assert!(matches!(
        Store::migrate(&tmp.path().join("missing.db")).await,
        Err(StoreError::Missing { .. })
    ));
    // Another program's SQLite file is refused, and left as it was.
    let other = tmp.path().join("other.db");
    {
        use sqlx::Connection;
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite:{}?mode=rwc", other.display()))
                .await
                .unwrap();
        sqlx::query("CREATE TABLE notes (body TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let before = std::fs::read(&other).unwrap();
    assert!(matches!(
        Store::migrate(&other).await,
        Err(StoreError::NotTokbench { .. })
    ));
    assert_eq!(std::fs::read(&other).unwrap(), before);
    // An empty file (a first open killed before its first migration committed) is finished.
    let empty = tmp.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        Store::migrate(&empty).await.unwrap().len(),
        tokbench_store::MIGRATOR.iter().count()
    );
    let ro = Store::open_read_only(&empty).await.unwrap();
    assert_eq!(ro.schema_version().await.unwrap(), latest);
    ro.close().await;
    // So is one killed after sqlx created its migration table but before the first
    // migration committed (a `merge --into NEW.db` killed early left this in CI).
    let begun = tmp.path().join("begun.db");
    {
        use sqlx::Connection;
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite:{}?mode=rwc", begun.display()))
                .await
                .unwrap();
        sqlx::query(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    assert_eq!(
        Store::migrate(&begun).await.unwrap().len(),
        tokbench_store::MIGRATOR.iter().count()
    );
}

async fn noisy_and_throttled_are_stored_and_older_results_get_the_flag_their_figures_imply(on: On) {
    let (_tmp, db) = temp_db();
    let (store, run, build) = one_run(&db).await;
    // Steady (CV 1%), noisy (CV ~58%), one repetition (cannot tell), throttled.
    let cases: [&[f64]; 4] = [
        &[99.0, 100.0, 101.0],
        &[10.0, 20.0, 30.0],
        &[50.0],
        &[80.0, 80.0, 80.0],
    ];
    for (cell, reps) in cases.iter().enumerate() {
        let mut r = result(cell, ResultStatus::Ok, reps);
        r.conditions = Some(tokbench_core::CellConditions {
            cpu_governor: Some("performance".into()),
            throttled: Some(cell == 3),
            throttle: (cell == 3).then(|| "gpu: sw power cap".into()),
        });
        store
            .insert_result(run, build, None, "m", 3, &r)
            .await
            .unwrap();
    }
    store.close().await;
    let ReadBack { store, _server, .. } = read_back(on, &db).await;
    let rows = store.results(Some("u1")).await.unwrap();
    let flags: Vec<_> = rows.iter().map(|r| (r.noisy, r.throttled)).collect();
    assert_eq!(
        flags,
        [
            (Some(false), Some(false)),
            (Some(true), Some(false)),
            (None, Some(false)),
            (Some(false), Some(true)),
        ]
    );
    assert_eq!(
        rows[3].throttle_reason.as_deref(),
        Some("gpu: sw power cap")
    );
    assert_eq!(rows[0].cpu_governor.as_deref(), Some("performance"));
    store.close().await;
    if on == On::Postgres {
        // What follows undoes a migration of the SQLite file.
        return;
    }

    // A database from before the flag: migration 7 undone, the rows kept.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
        for statement in UNDO_MIGRATION_7 {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    }
    let applied = Store::migrate(&db).await.unwrap();
    assert_eq!(applied.len(), 7, "migrations 7 to 13: {applied:?}");
    let store = Store::open_read_only(&db).await.unwrap();
    let rows = store.results(Some("u1")).await.unwrap();
    // The figures give the flag back; what the machine did is unknown for them.
    let flags: Vec<_> = rows.iter().map(|r| (r.noisy, r.throttled)).collect();
    assert_eq!(
        flags,
        [
            (Some(false), None),
            (Some(true), None),
            (None, None),
            (Some(false), None),
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn prune_reduces_old_samples_to_summaries_and_keeps_every_result_and_figure() {
    use tokbench_core::record::{CellTelemetry, PhaseFigures, TelemetrySample};
    use tokbench_store::{PointFilter, PruneReport};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let store = Store::open(&db).await.unwrap();
    let build = store
        .backend_build(&engine_build("1", "cuda"))
        .await
        .unwrap();
    let sample = |t_ms: f64, phase: &str, metric: &str, value: f64| TelemetrySample {
        t_ms,
        phase: phase.into(),
        metric: metric.into(),
        value,
        source: "nvml".into(),
    };
    // Three runs: one from January, one from November, one whose start is not a time.
    for (uuid, started_at) in [
        ("old", "2026-01-10T03:00:00Z"),
        ("new", "2026-11-29T03:00:00+01:00"),
        ("odd", "last tuesday"),
    ] {
        let mut run = new_run(uuid);
        run.started_at = started_at.into();
        let run = store.begin_run(&run, &host()).await.unwrap();
        let mut r = result(0, ResultStatus::Ok, &[10.0, 11.0]);
        // The phase figures lack decode power and device memory (as an older tokbench
        // wrote them): the reports read those from the samples.
        r.telemetry = Some(CellTelemetry {
            phases: vec![PhaseFigures {
                phase: "decode".into(),
                n_samples: 3,
                ..Default::default()
            }],
            samples: vec![
                sample(1.0, "prefill", "power_w", 200.0),
                sample(10.0, "decode", "power_w", 300.0),
                sample(20.0, "decode", "power_w", 310.0),
                sample(20.0, "decode", "vram_used_bytes", 5e9),
            ],
            unavailable: vec![],
        });
        store
            .insert_result(run, build, None, "m", 2, &r)
            .await
            .unwrap();
    }
    let points = |s: &Store| {
        let s = s.clone();
        async move { s.points(&PointFilter::default()).await.unwrap() }
    };
    let before = points(&store).await;
    assert_eq!(before[0].point.decode_power_w, Some(305.0));
    assert_eq!(before[0].point.vram_peak_bytes, Some(5_000_000_000));
    let count = |s: &Store, sql: &'static str| {
        let s = s.clone();
        async move { s.query(sql).await.unwrap().rows[0][0].as_i64().unwrap() }
    };

    let cutoff = "2026-06-01T00:00:00Z";
    let dry = store.prune_samples(cutoff, true).await.unwrap();
    let expected = PruneReport {
        runs: 1,
        results: 1,
        samples: 4,
        samples_kept: 8,
    };
    assert_eq!(dry, expected);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM telemetry_sample").await,
        12,
        "a dry run changes nothing"
    );

    assert_eq!(store.prune_samples(cutoff, false).await.unwrap(), expected);
    // Only January's samples went; every result, repetition and figure stayed.
    let left = store
        .query("SELECT run.uuid, COUNT(t.id) FROM run JOIN result r ON r.run_id = run.id LEFT JOIN telemetry_sample t ON t.result_id = r.id GROUP BY run.uuid ORDER BY run.uuid")
        .await
        .unwrap();
    assert_eq!(
        left.rows,
        vec![
            vec![serde_json::json!("new"), serde_json::json!(4)],
            vec![serde_json::json!("odd"), serde_json::json!(4)],
            vec![serde_json::json!("old"), serde_json::json!(0)],
        ]
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM repetition").await, 6);
    assert_eq!(
        points(&store).await,
        before,
        "the reports read the same figures"
    );
    let j = store
        .query("SELECT r.telemetry_json FROM result r JOIN run ON run.id = r.run_id WHERE run.uuid = 'old'")
        .await
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(j.rows[0][0].as_str().unwrap()).unwrap();
    assert_eq!(j["phases"][0]["n_samples"], 3, "the phase figures are kept");
    let pruned = j["samples_pruned"].as_array().unwrap();
    assert_eq!(pruned.len(), 3, "{pruned:?}");
    let decode_power = pruned
        .iter()
        .find(|s| s["phase"] == "decode" && s["metric"] == "power_w")
        .unwrap();
    assert_eq!(decode_power["n"], 2);
    assert_eq!(decode_power["min"], 300.0);
    assert_eq!(decode_power["mean"], 305.0);
    assert_eq!(decode_power["max"], 310.0);
    assert_eq!(decode_power["t_first_ms"], 10.0);
    assert_eq!(decode_power["t_last_ms"], 20.0);
    assert_eq!(decode_power["source"], "nvml");

    // Nothing left to prune: a second run changes nothing.
    let again = store.prune_samples(cutoff, false).await.unwrap();
    assert_eq!((again.results, again.samples), (0, 0));
    // VACUUM rebuilds every b-tree: a database this small may come out a page
    // larger or smaller, so what it promises is no free page left behind.
    let (before, after) = store.vacuum().await.unwrap();
    assert!(before > 0 && after > 0, "{before} → {after}");
    assert_eq!(
        count(&store, "SELECT freelist_count FROM pragma_freelist_count()").await,
        0
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

#[tokio::test]
async fn the_database_side_newest_per_series_keeps_what_reading_every_result_keeps() {
    use std::collections::BTreeMap;
    use tokbench_store::PointFilter;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("n.db")).await.unwrap();
    let build = |version: &'static str| {
        let store = store.clone();
        async move {
            store
                .backend_build(&engine_build(version, "cpu"))
                .await
                .unwrap()
        }
    };
    let (v1, v2) = (build("1").await, build("2").await);
    // Builds change between runs, two runs start in the same second, and one run measures
    // a series twice (cells 0 and 2): the ties go to the later result.
    for (uuid, started_at, b, base) in [
        ("a", "2026-11-01T00:00:00Z", v1, 10.0),
        ("b", "2026-11-02T00:00:00Z", v2, 20.0),
        ("c", "2026-11-02T00:00:00Z", v1, 30.0),
        ("d", "2026-10-01T00:00:00Z", v2, 40.0),
    ] {
        let mut run = new_run(uuid);
        run.started_at = started_at.into();
        let run = store.begin_run(&run, &host()).await.unwrap();
        for (cell, n_gen) in [(0, 16), (1, 32), (2, 16)] {
            let mut r = result(cell, ResultStatus::Ok, &[base + cell as f64]);
            r.test.n_gen = n_gen;
            store.insert_result(run, b, None, "m", 1, &r).await.unwrap();
        }
    }
    let newest = |points: Vec<tokbench_store::StoredPoint>| {
        let mut by_series = BTreeMap::new();
        for p in points {
            match by_series.get(&p.point.series) {
                Some(old) if old_is_newer(old, &p) => {}
                _ => {
                    by_series.insert(p.point.series.clone(), p);
                }
            }
        }
        by_series
            .into_values()
            .map(|p| (p.point.run_uuid, p.point.decode_tps))
            .collect::<Vec<_>>()
    };
    fn old_is_newer(old: &tokbench_store::StoredPoint, p: &tokbench_store::StoredPoint) -> bool {
        old.point.started_at > p.point.started_at
    }
    let all = store.points(&PointFilter::default()).await.unwrap();
    assert_eq!(all.len(), 12);
    let mut offered = Vec::new();
    let n = store
        .newest_points_each(&PointFilter::default(), |p| offered.push(p))
        .await
        .unwrap();
    assert_eq!(n, 12, "every selected result is counted");
    assert!(offered.len() < all.len(), "{} offered", offered.len());
    let expected = newest(all);
    assert_eq!(
        expected,
        vec![("c".to_string(), Some(32.0)), ("c".to_string(), Some(31.0)),]
    );
    assert_eq!(newest(offered), expected);
    // A filter applies before the grouping.
    let until = PointFilter {
        until: Some("2026-11-02".into()),
        ..Default::default()
    };
    let mut offered = Vec::new();
    let n = store
        .newest_points_each(&until, |p| offered.push(p))
        .await
        .unwrap();
    assert_eq!(n, 6);
    assert_eq!(newest(store.points(&until).await.unwrap()), newest(offered));
    store.close().await;
}

/// A cell's telemetry: one phase with a figure measured and the rest not, and what the
/// machine cannot measure.
fn with_telemetry(mut r: CellResult, unavailable: &[&str]) -> CellResult {
    r.telemetry = Some(tokbench_core::record::CellTelemetry {
        phases: vec![tokbench_core::record::PhaseFigures {
            phase: "decode".into(),
            n_samples: 12,
            rss_peak_bytes: Some(3 << 20),
            flags: vec!["too_short".into()],
            ..Default::default()
        }],
        samples: vec![],
        unavailable: unavailable.iter().map(|u| u.to_string()).collect(),
    });
    r
}

async fn telemetry_json_of(db: &std::path::Path) -> Vec<serde_json::Value> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT telemetry_json FROM result ORDER BY cell_index")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    rows.iter()
        .filter_map(|(t,)| t.as_ref().map(|t| serde_json::from_str(t).unwrap()))
        .collect()
}

async fn run_unavailable(db: &std::path::Path) -> Option<String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    let (u,): (Option<String>,) = sqlx::query_as("SELECT telemetry_unavailable_json FROM run")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    u
}

async fn what_telemetry_cannot_measure_is_stored_once_per_run(on: On) {
    let (_tmp, db) = temp_db();
    let (store, run, build) = one_run(&db).await;
    let usual = [
        "power_w: nvml: no device (no driver)",
        "cpu_energy_j: rapl: no powercap",
    ];
    let cells = [
        with_telemetry(result(0, ResultStatus::Ok, &[10.0]), &usual),
        with_telemetry(result(1, ResultStatus::Ok, &[10.0]), &usual),
        // A cell that lost a source keeps a list of its own.
        with_telemetry(result(2, ResultStatus::Ok, &[10.0]), &usual[..1]),
        result(3, ResultStatus::Ok, &[10.0]),
    ];
    for c in &cells {
        store
            .insert_result(run, build, None, "m", 1, c)
            .await
            .unwrap();
    }
    store.close().await;
    let back = read_back(on, &db).await;
    back.store.close().await;
    // PostgreSQL keeps JSON as parsed values: compared as values.
    let unavailable: serde_json::Value =
        serde_json::from_str(&run_unavailable(&back.path).await.unwrap()).unwrap();
    assert_eq!(unavailable, serde_json::json!(usual));
    let t = telemetry_json_of(&back.path).await;
    assert_eq!(t.len(), 3, "the cell without telemetry stores none");
    assert!(t[0].get("unavailable").is_none(), "{}", t[0]);
    assert!(t[1].get("unavailable").is_none(), "{}", t[1]);
    assert_eq!(t[2]["unavailable"], serde_json::json!(&usual[..1]));
    // The phase keeps what was measured (and its flags); what was not is absent.
    assert_eq!(
        t[0]["phases"],
        serde_json::json!([{"phase": "decode", "n_samples": 12, "rss_peak_bytes": 3 << 20,
                            "flags": ["too_short"]}])
    );
    if on == On::Postgres {
        // What follows undoes a migration of the SQLite file.
        return;
    }

    // A database written before migration 9 (the list in every result) is moved over:
    // put the lists back where they were, undo the column, and open it again.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
        for statement in [
            "UPDATE result SET telemetry_json = json_set(telemetry_json, '$.unavailable',
               json((SELECT telemetry_unavailable_json FROM run WHERE run.id = result.run_id)))
             WHERE json_type(telemetry_json, '$.unavailable') IS NULL",
            "ALTER TABLE run DROP COLUMN telemetry_unavailable_json",
            "DELETE FROM _sqlx_migrations WHERE version = 20261205000009",
        ] {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    }
    assert!(telemetry_json_of(&db)
        .await
        .iter()
        .all(|t| t["unavailable"].is_array()));
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    let migrated = telemetry_json_of(&db).await;
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&run_unavailable(&db).await.unwrap()).unwrap(),
        usual
    );
    assert_eq!(migrated, t, "the same rows as a current tokbench writes");
}

#[tokio::test]
async fn a_writing_command_checks_a_small_database_whole_and_says_when_it_did_not() {
    let (_tmp, db) = temp_db();
    let (store, run, build) = one_run(&db).await;
    store
        .insert_result(
            run,
            build,
            None,
            "m",
            1,
            &result(0, ResultStatus::Ok, &[10.0]),
        )
        .await
        .unwrap();
    let bytes = std::fs::metadata(&db).unwrap().len();
    assert_eq!(
        store
            .integrity_check_up_to(tokbench_store::CLOSING_CHECK_MAX_BYTES)
            .await
            .unwrap(),
        "ok"
    );
    // A database past the limit is not read whole; the line says so and where to check.
    let skipped = store.integrity_check_up_to(4096).await.unwrap();
    assert!(
        skipped.starts_with("not checked at ") && skipped.contains("tokbench doctor"),
        "{skipped} ({bytes} bytes on disk)"
    );
    // The closing check is SQLite's quick check: it still reads every page, so a page
    // gone bad (its header overwritten) is found. The page: the repetitions' table,
    // which opening the database does not read.
    let root = store
        .query("SELECT rootpage FROM sqlite_master WHERE name = 'repetition'")
        .await
        .unwrap()
        .rows[0][0]
        .as_u64()
        .unwrap();
    store.close().await;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db)
        .unwrap();
    let pages = file.metadata().unwrap().len() / 4096;
    use std::io::{Seek, Write};
    assert!(root < pages);
    file.seek(std::io::SeekFrom::Start(4096 * (root - 1)))
        .unwrap();
    file.write_all(&[0xff; 64]).unwrap();
    drop(file);
    let store = Store::open_read_only(&db).await.unwrap();
    // Found either way: a list of what is wrong, or SQLite stopping at the bad page.
    match store
        .integrity_check_up_to(tokbench_store::CLOSING_CHECK_MAX_BYTES)
        .await
    {
        Ok(found) => assert_ne!(found, "ok", "page {root} of {pages} overwritten"),
        Err(e) => assert!(format!("{e:?}").contains("malformed"), "{e:?}"),
    }
    store.close().await;
}

async fn long_runs_of_repetitions_and_samples_are_stored_whole_and_in_order(on: On) {
    // Repetitions and telemetry samples go in as multi-row statements of 64: 130 and 150
    // rows cross two chunk boundaries and end on a short chunk.
    use tokbench_core::record::{CellTelemetry, TelemetrySample};
    let (_tmp, db) = temp_db();
    let (store, run, build) = one_run(&db).await;
    let reps: Vec<f64> = (0..130).map(|i| 100.0 + i as f64).collect();
    let mut r = result(0, ResultStatus::Ok, &reps);
    r.telemetry = Some(CellTelemetry {
        phases: vec![],
        samples: (0..150)
            .map(|i| TelemetrySample {
                t_ms: i as f64 * 100.0,
                phase: "decode".into(),
                metric: "power_w".into(),
                value: 200.0 + i as f64,
                source: "nvml".into(),
            })
            .collect(),
        unavailable: vec![],
    });
    store
        .insert_result(run, build, None, "m", 130, &r)
        .await
        .unwrap();
    store.close().await;
    let ReadBack { store, _server, .. } = read_back(on, &db).await;
    let q = store
        .query("SELECT rep, decode_tps FROM repetition ORDER BY rep")
        .await
        .unwrap();
    let got: Vec<(i64, f64)> = q
        .rows
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_f64().unwrap()))
        .collect();
    let want: Vec<(i64, f64)> = reps
        .iter()
        .enumerate()
        .map(|(i, &t)| (i as i64, t))
        .collect();
    assert_eq!(got, want);
    let q = store
        .query("SELECT t_ms, value FROM telemetry_sample ORDER BY t_ms")
        .await
        .unwrap();
    assert_eq!(q.rows.len(), 150);
    for (i, row) in q.rows.iter().enumerate() {
        assert_eq!(row[0].as_f64(), Some(i as f64 * 100.0));
        assert_eq!(row[1].as_f64(), Some(200.0 + i as f64));
    }
    let rows = store.results(None).await.unwrap();
    assert_eq!(rows[0].n_reps, 130);
    store.close().await;
}

/// Cell `i` of the batch test: `i % 7` repetitions whose rate names the cell and the
/// repetition, and every third cell two telemetry samples likewise.
fn batch_result(i: usize) -> CellResult {
    use tokbench_core::record::{CellTelemetry, TelemetrySample};
    let reps: Vec<f64> = (0..i % 7).map(|k| (1000 * i + k) as f64).collect();
    let mut r = result(i, ResultStatus::Ok, &reps);
    if i.is_multiple_of(3) {
        r.telemetry = Some(CellTelemetry {
            phases: vec![],
            samples: (0..2)
                .map(|k| TelemetrySample {
                    t_ms: k as f64,
                    phase: "decode".into(),
                    metric: "power_w".into(),
                    value: (1000 * i + k) as f64,
                    source: "nvml".into(),
                })
                .collect(),
            unavailable: vec![],
        });
    }
    r
}

async fn a_batch_of_many_statements_keeps_every_row_with_its_own_result(on: On) {
    let (_tmp, db) = temp_db();
    let (store, run, _) = one_run(&db).await;
    let build = engine_build("1", "cpu");
    // A result stored before the batch: the batch's ids follow it, as SQLite's own would.
    let first = store
        .insert_result(
            run,
            store.backend_build(&build).await.unwrap(),
            None,
            "m",
            1,
            &result(0, ResultStatus::Ok, &[1.0]),
        )
        .await
        .unwrap();
    // More results and children than one multi-row statement holds, and a last statement
    // that is not full.
    let results: Vec<CellResult> = (1..=203).map(batch_result).collect();
    let cells: Vec<tokbench_store::BatchCell> = results
        .iter()
        .map(|r| tokbench_store::BatchCell {
            build: &build,
            model: None,
            model_name: "m",
            repetitions_expected: 6,
            result: r,
            rate_summary: None,
        })
        .collect();
    let ids = store.insert_batch(run, &cells).await.unwrap();
    assert_eq!(ids.len(), 203);
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(
            id.0,
            first.0 + 1 + k as i64,
            "ids in order, after the first"
        );
    }
    let written = db.clone();
    let back = read_back(on, &written).await;
    back.store.close().await;
    let db = back.path.clone();
    // Every repetition and sample belongs to the result whose cell its value names.
    let misplaced = |table: &str, column: &str| {
        format!(
            "SELECT COUNT(*) FROM {table} JOIN result ON result.id = {table}.result_id
             WHERE CAST({table}.{column} AS INTEGER) / 1000 != result.cell_index"
        )
    };
    assert_eq!(
        sqlx_sqlite_count(&db, &misplaced("repetition", "decode_tps")).await,
        0
    );
    assert_eq!(
        sqlx_sqlite_count(&db, &misplaced("telemetry_sample", "value")).await,
        0
    );
    let reps: usize = (1..=203).map(|i| i % 7).sum();
    assert_eq!(
        sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM repetition").await,
        1 + reps as i64
    );
    assert_eq!(
        sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM telemetry_sample").await,
        2 * (1..=203).filter(|i: &usize| i.is_multiple_of(3)).count() as i64
    );
    // Repetitions numbered from 0 within each result, and the summary from them.
    assert_eq!(
        sqlx_sqlite_count(
            &db,
            "SELECT COUNT(*) FROM repetition r JOIN result ON result.id = r.result_id
             WHERE result.cell_index > 0 AND CAST(r.decode_tps AS INTEGER) % 1000 != r.rep"
        )
        .await,
        0
    );
    assert_eq!(
        sqlx_sqlite_count(
            &db,
            "SELECT CAST(decode_tps AS INTEGER) FROM result WHERE cell_index = 201"
        )
        .await,
        201_002,
        "cell 201's five repetitions: the mean of 201000…201004"
    );

    // A batch that fails on its last row stores none of its rows.
    let db = written;
    let again: Vec<CellResult> = (300..340).chain([5]).map(batch_result).collect();
    let cells: Vec<tokbench_store::BatchCell> = again
        .iter()
        .map(|r| tokbench_store::BatchCell {
            build: &build,
            model: None,
            model_name: "m",
            repetitions_expected: 6,
            result: r,
            rate_summary: None,
        })
        .collect();
    let err = store.insert_batch(run, &cells).await.unwrap_err();
    assert!(format!("{err:?}").contains("UNIQUE"), "{err:?}");
    assert_eq!(
        sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM result").await,
        204
    );
    assert_eq!(
        sqlx_sqlite_count(&db, "SELECT COUNT(*) FROM repetition").await,
        1 + reps as i64
    );
    store.close().await;
}

async fn where_the_memory_went_is_stored_by_device_with_the_layers_offloaded(on: On) {
    use tokbench_core::record::{BufferBytes, DeviceUse};
    let (_tmp, db) = temp_db();
    let (store, run, build) = one_run(&db).await;
    let buffer = |buffer: &str, kind: &str, bytes: u64| BufferBytes {
        buffer: buffer.into(),
        kind: kind.into(),
        bytes,
    };
    let mut r = result(0, ResultStatus::Ok, &[10.0]);
    r.allocated = Some(AllocatedMemory {
        model_bytes: Some(30 + 20),
        kv_bytes: Some(4),
        buffers: vec![
            buffer("CPU_Mapped", "model", 30),
            buffer("Vulkan0", "model", 20),
            buffer("Vulkan0", "KV", 4),
        ],
        devices: vec![DeviceUse {
            name: "Vulkan0".into(),
            description: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            free_bytes: Some(2048 << 20),
        }],
        layers_offloaded: Some(4),
        layers_total: Some(9),
        device_memory: vec![tokbench_core::record::DeviceMemory {
            name: "Vulkan0".into(),
            total_bytes: 2048 << 20,
            free_before_load: 2048 << 20,
            free_after_load: 2048 << 20,
            free_in_test: Some(2048 << 20),
        }],
        ..Default::default()
    });
    store
        .insert_result(run, build, None, "m", 1, &r)
        .await
        .unwrap();
    // A CPU-only result says nothing of offload or devices.
    let mut cpu = result(1, ResultStatus::Ok, &[10.0]);
    cpu.allocated = Some(AllocatedMemory::default());
    store
        .insert_result(run, build, None, "m", 1, &cpu)
        .await
        .unwrap();
    store.close().await;
    let ReadBack { store, _server, .. } = read_back(on, &db).await;
    let q = store
        .query(
            "SELECT n_layers_offloaded, n_layers_total, placement_json FROM v_results
             ORDER BY result_id",
        )
        .await
        .unwrap();
    assert_eq!(q.rows[0][..2], [serde_json::json!(4), serde_json::json!(9)]);
    let placement: serde_json::Value =
        serde_json::from_str(q.rows[0][2].as_str().unwrap()).unwrap();
    assert_eq!(placement["buffers"][1]["buffer"], "Vulkan0");
    assert_eq!(placement["buffers"][1]["bytes"], 20);
    assert_eq!(placement["buffers"][2]["kind"], "KV");
    assert_eq!(
        placement["devices"][0]["description"],
        "llvmpipe (LLVM 15.0.6, 256 bits)"
    );
    assert_eq!(placement["devices"][0]["free_bytes"], 2048u64 << 20);
    // The device's own readings, and the verdict on them: lavapipe's never move.
    let seen = &placement["device_memory"][0];
    assert_eq!(seen["name"], "Vulkan0");
    assert_eq!(seen["free_in_test"], 2048u64 << 20);
    assert_eq!(seen["usage_visible"], false);
    assert_eq!(q.rows[1], vec![serde_json::Value::Null; 3]);
    store.close().await;
}

/// Issue 16, item 5: split mode, main GPU, tensor split, tensor overrides and `n_cpu_moe`
/// are stored in their columns (NULL at llama.cpp's defaults, as every result stored before
/// them is) and each makes a series of its own, on both stores.
async fn offload_settings_are_stored_null_at_their_defaults_and_keep_series_apart(on: On) {
    let (_tmp, db) = temp_db();
    let (store, run, build) = one_run(&db).await;
    let offloads = [
        tokbench_core::Offload::default(),
        tokbench_core::Offload {
            split_mode: tokbench_core::SplitMode::Row,
            main_gpu: 1,
            tensor_split: "3/1".parse().unwrap(),
            overrides: r"blk\.[0-3]\..*=CPU;output=CUDA1".parse().unwrap(),
            n_cpu_moe: 8,
        },
        tokbench_core::Offload {
            split_mode: tokbench_core::SplitMode::None,
            ..Default::default()
        },
    ];
    for (cell, offload) in offloads.iter().enumerate() {
        let mut r = result(cell, ResultStatus::Ok, &[10.0]);
        r.params.offload = *offload;
        store
            .insert_result(run, build, None, "m", 1, &r)
            .await
            .unwrap();
    }
    store.close().await;
    let ReadBack { store, _server, .. } = read_back(on, &db).await;
    let series = store.run_series("u1").await.unwrap();
    assert_eq!(series.len(), 3);
    let keys: std::collections::HashSet<String> =
        series.iter().map(|s| s.series_key.clone()).collect();
    assert_eq!(keys.len(), 3, "three series: {keys:?}");
    let by_cell = |cell: i64| series.iter().find(|s| s.cell_index == cell).unwrap();
    let plain = &by_cell(0).key.settings;
    assert_eq!(
        (
            plain.split_mode,
            plain.main_gpu,
            plain.tensor_split,
            plain.tensor_buft_overrides,
            plain.n_cpu_moe
        ),
        (None, None, None, None, None)
    );
    let all = &by_cell(1).key.settings;
    assert_eq!(all.split_mode, Some(tokbench_core::SplitMode::Row));
    assert_eq!(all.main_gpu, Some(1));
    assert_eq!(all.tensor_split.unwrap().to_string(), "3.00/1.00");
    assert_eq!(
        all.tensor_buft_overrides.unwrap().as_str(),
        r"blk\.[0-3]\..*=CPU;output=CUDA1"
    );
    assert_eq!(all.n_cpu_moe, Some(8));
    assert!(
        by_cell(1).settings.contains("sm row"),
        "{}",
        by_cell(1).settings
    );
    // The columns, as v_results shows them.
    let rows = store.results(Some("u1")).await.unwrap();
    assert_eq!(
        rows[2].settings.split_mode,
        Some(tokbench_core::SplitMode::None)
    );
    assert_eq!(rows[1].settings, *all);
}
