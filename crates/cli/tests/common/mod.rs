//! Shared by the CLI's integration tests: the real `tokbench` binary, a model cache shared
//! by every test (the tiny model is synthesized once), suites written to temp dirs, and
//! reading the real SQLite file back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tokbench"))
}

/// One cache for all tests, inside cargo's target dir.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tokbench-cache")
}

pub fn tokbench(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env("TOKBENCH_CACHE", cache_dir())
        .env_remove("TOKBENCH_ENGINE_FAULT");
    c
}

pub fn run_ok(args: &[&str]) -> Output {
    let out = tokbench(args).output().expect("tokbench runs");
    assert!(
        out.status.success(),
        "tokbench {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn write_suite(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A quick suite on the tiny model: small tests, 2 repetitions.
pub fn quick_suite(quants: &str, tests: &str, extra: &str) -> String {
    format!(
        "name = \"quick\"\n[[model]]\nsynth = \"tiny\"\nquants = [{quants}]\n[engine]\nthreads = 2\n{extra}\n[workload]\ntests = [{tests}]\nrepetitions = 2\nwarmup = true\ntimeout_s = 120\n"
    )
}

/// `tokbench query --format json` on `db`, parsed.
pub fn query(db: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = run_ok(&[
        "query",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
        sql,
    ]);
    serde_json::from_slice(&out.stdout).expect("query prints JSON")
}

pub fn f(row: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<f64> {
    row.get(key).and_then(|v| v.as_f64())
}

pub fn s<'a>(row: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> &'a str {
    row.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `PRAGMA integrity_check` through the read-only query path.
/// The first column of `sql`'s rows as text, read from the file as it is: a plain read-only
/// SQLite connection, no migration (a kill during a new database's migrations leaves an
/// older schema, which tokbench's read-only commands refuse). On its own thread and
/// runtime, so sync and async tests alike can call it.
pub fn raw_column(db: &Path, sql: &str) -> Result<Vec<String>, String> {
    let (db, sql) = (db.to_path_buf(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use sqlx::{ConnectOptions, Connection, Row};
            let mut c = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .read_only(true)
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let rows = sqlx::query(&sql)
                .fetch_all(&mut c)
                .await
                .map_err(|e| e.to_string());
            let _ = c.close().await;
            rows?
                .iter()
                .map(|r| {
                    r.try_get::<String, _>(0)
                        .or_else(|_| r.try_get::<i64, _>(0).map(|v| v.to_string()))
                        .map_err(|e| e.to_string())
                })
                .collect()
        })
    })
    .join()
    .unwrap()
}

/// `PRAGMA integrity_check` of the file as it is (see [`raw_column`]).
pub fn integrity(db: &Path) -> String {
    raw_column(db, "PRAGMA integrity_check")
        .unwrap_or_else(|e| panic!("integrity check of {}: {e}", db.display()))
        .join(";")
}

/// Returns true if and only if every migration this tokbench knows is applied to `db`
/// (a run begins only after that, so an older schema holds no run yet).
pub fn schema_is_current(db: &Path) -> bool {
    let applied = raw_column(
        db,
        "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1",
    )
    .ok()
    .and_then(|v| v.first().and_then(|n| n.parse::<usize>().ok()))
    .unwrap_or(0);
    applied == tokbench_store::MIGRATOR.iter().count()
}

/// The tiny model at Q8_0, `tg16` with 5 repetitions, on `threads` threads: a suite whose
/// runs `check` and `compare` judge.
pub fn threads_suite(dir: &Path, threads: u32) -> PathBuf {
    write_suite(
        dir,
        &format!("t{threads}.toml"),
        &format!(
            "name = \"gate\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = {threads}\n[workload]\ntests = [\"tg16\"]\nrepetitions = 5\nwarmup = true\ntimeout_s = 120\n"
        ),
    )
}

/// Where the tests build llama.cpp's tools (shared by every test binary; a finished build
/// is reused).
pub fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("llama-tools")
}

/// The tools' bin dir, built (minutes, the first time) once per test binary.
pub fn tools() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = tokbench(&["backends", "build"])
            .env("TOKBENCH_TOOLS_DIR", tools_dir())
            .output()
            .expect("tokbench runs");
        assert!(
            out.status.success(),
            "tokbench backends build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// `tokbench ARGS` that finds the tools built by [`tools`] (and no others).
pub fn with_tools(args: &[&str]) -> Command {
    tools();
    let mut c = tokbench(args);
    c.env("TOKBENCH_TOOLS_DIR", tools_dir())
        .env_remove("TOKBENCH_LLAMA_BENCH")
        .env_remove("TOKBENCH_LLAMA_SERVER");
    c
}

/// Appends a fault a test injected and survived to `$TOKBENCH_FAULT_REPORT`, if set
/// (`scripts/reliability.sh` counts them). Called once every assertion of the case held.
pub fn report_fault(backend: &str, phase: &str, fault: &str, status: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("TOKBENCH_FAULT_REPORT") else {
        return;
    };
    let line = serde_json::json!({
        "backend": backend, "phase": phase, "fault": fault, "status": status, "survived": true,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// Pids of live processes whose environment carries `marker` (`KEY=VALUE`): a test sets a
/// marker on tokbench, every process it starts inherits it, and none may outlive it.
pub fn processes_with_env(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(entry.path().join("environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Writes `nights` earlier runs of the newest run's series, one per day before it, whose
/// decode repetitions are `level × (1 ± 0.4%)` (a quiet machine), by copying the run's own
/// rows: same host, build, model, workload and settings, so the same series.
pub async fn write_history(db: &Path, nights: u32, level: f64) {
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    let (run_id, started): (i64, String) =
        sqlx::query_as("SELECT id, started_at FROM run ORDER BY started_at DESC LIMIT 1")
            .fetch_one(&mut c)
            .await
            .unwrap();
    for k in 1..=nights {
        let mut tx = c.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO run (uuid, started_at, finished_at, suite_name, suite_path, config_text,
                tokbench_version, trigger, status, cells_total, host_id, source, hardware)
             SELECT 'hist-' || ?1, strftime('%Y-%m-%dT%H:%M:%SZ', started_at, '-' || ?1 || ' days'),
                NULL, suite_name, suite_path, config_text, tokbench_version, 'nightly', 'ok',
                cells_total, host_id, source, hardware FROM run WHERE id = ?2",
        )
        .bind(k)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .unwrap();
        let new_run: i64 = sqlx::query_scalar("SELECT id FROM run WHERE uuid = 'hist-' || ?")
            .bind(k)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO result (run_id, cell_index, backend_build_id, model_id, model_name,
                workload_id, n_threads, n_batch, n_ubatch, n_gpu_layers, flash_attn, type_k, type_v,
                use_mmap, status, error, metric_source, repetitions_expected, prefill_tps,
                prefill_tps_sd, decode_tps, decode_tps_sd, ttft_ms, ttft_ms_sd, load_ms,
                rss_peak_bytes, log_tail, started_at, duration_ms)
             SELECT ?1, cell_index, backend_build_id, model_id, model_name, workload_id, n_threads,
                n_batch, n_ubatch, n_gpu_layers, flash_attn, type_k, type_v, use_mmap, status, error,
                metric_source, repetitions_expected, prefill_tps, prefill_tps_sd, ?3, 0, ttft_ms,
                ttft_ms_sd, load_ms, rss_peak_bytes, log_tail, started_at, duration_ms
             FROM result WHERE run_id = ?2",
        )
        .bind(new_run)
        .bind(run_id)
        .bind(level)
        .execute(&mut *tx)
        .await
        .unwrap();
        // Nights differ by up to ±0.3%; five repetitions spread ±0.4% around each night.
        let night = level * (1.0 + 0.003 * (f64::from(k % 3) - 1.0));
        let spread = [-0.004, -0.002, 0.0, 0.002, 0.004];
        for rep in 0..5usize {
            let v = night * (1.0 + spread[(rep + k as usize) % 5]);
            sqlx::query(
                "INSERT INTO repetition (result_id, rep, decode_tps)
                 SELECT id, ?, ? FROM result WHERE run_id = ?",
            )
            .bind(rep as i64)
            .bind(v)
            .bind(new_run)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let _ = started;
    c.close().await.unwrap();
}
