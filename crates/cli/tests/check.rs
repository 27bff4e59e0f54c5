//! `tokbench check`, `compare` and `merge` on real runs of the engine into real SQLite files.
//!
//! The gate's statistics are tested on simulated histories in tokbench-report; here the
//! whole command is: a real run is judged against a history written beside it (its rows
//! copied into earlier runs at a level the test sets, so no verdict depends on how fast or
//! how loaded this machine is), suspects are re-measured by really running their cells
//! again, verdicts are stored, exit codes say what happened.

mod common;

use std::path::Path;

use common::*;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Sets the newest real run's decode repetitions to `level × (1 ± 0.3%)`, so that what is
/// judged does not depend on how loaded this machine was while the test ran.
async fn set_tonight(db: &Path, level: f64) {
    let mut c = SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    let spread = [-0.003, -0.0015, 0.0, 0.0015, 0.003];
    for (rep, d) in spread.iter().enumerate() {
        sqlx::query(
            "UPDATE repetition SET decode_tps = ? WHERE rep = ? AND result_id =
               (SELECT r.id FROM result r JOIN run ON run.id = r.run_id
                WHERE run.uuid NOT LIKE 'hist-%' ORDER BY run.started_at DESC LIMIT 1)",
        )
        .bind(level * (1.0 + d))
        .bind(rep as i64)
        .execute(&mut c)
        .await
        .unwrap();
    }
    c.close().await.unwrap();
}

fn decode_of_newest(db: &Path) -> f64 {
    let rows = query(
        db,
        "SELECT decode_tps FROM v_results WHERE run_uuid NOT LIKE 'hist-%' ORDER BY started_at DESC LIMIT 1",
    );
    f(&rows[0], "decode_tps").unwrap()
}

fn check_json(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let out = tokbench(&all).output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    (out.status.code(), v)
}

fn decode_verdict(v: &serde_json::Value) -> &serde_json::Value {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["verdict"]["metric"] == "decode_tps")
        .unwrap_or_else(|| panic!("no decode verdict: {v}"))
}

#[tokio::test]
async fn a_slowdown_is_re_measured_confirmed_stored_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.db");
    let dbs = db.to_str().unwrap();
    run_ok(&[
        "run",
        threads_suite(tmp.path(), 2).to_str().unwrap(),
        "--db",
        dbs,
    ]);
    // The history ran ten times faster than this machine: tonight is a clear regression,
    // and so is each re-measurement. Noise is not what this test is about (a loaded machine can scatter by more than 100%): the noise gate is off.
    let level = decode_of_newest(&db) * 10.0;
    write_history(&db, 8, level).await;
    let (code, v) = check_json(&["--db", dbs, "--noisy-cv", "1000000"]);
    assert_eq!(code, Some(3), "{v}");
    let d = decode_verdict(&v);
    assert_eq!(d["final_kind"], "regression", "{d}");
    assert_eq!(d["verdict"]["kind"], "suspect");
    assert_eq!(d["verdict"]["baseline_n"], 8);
    assert_eq!(d["remeasured"].as_array().unwrap().len(), 2, "{d}");
    // The verdict and its inputs are stored, with the two re-measurement runs.
    let rows = query(
        &db,
        "SELECT kind, baseline_n, limit_value, remeasured_json FROM verdict WHERE metric = 'decode_tps'",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(s(&rows[0], "kind"), "regression");
    assert_eq!(f(&rows[0], "baseline_n"), Some(8.0));
    assert!(f(&rows[0], "limit_value").unwrap() < level);
    let again: Vec<serde_json::Value> =
        serde_json::from_str(s(&rows[0], "remeasured_json")).unwrap();
    assert_eq!(again.len(), 2);
    let rechecks = query(
        &db,
        "SELECT COUNT(*) AS n FROM run WHERE trigger LIKE 'recheck:%'",
    );
    assert_eq!(f(&rechecks[0], "n"), Some(2.0));

    // Accepting tonight as the new normal restarts the baseline: nothing to judge against.
    run_ok(&[
        "check",
        "--db",
        dbs,
        "--accept",
        "latest",
        "--note",
        "slower build accepted",
    ]);
    let (code, v) = check_json(&["--db", dbs, "--noisy-cv", "1000000", "--remeasure", "0"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(decode_verdict(&v)["final_kind"], "insufficient");
}

#[tokio::test]
async fn a_steady_series_passes_and_too_little_history_never_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.db");
    let dbs = db.to_str().unwrap();
    run_ok(&[
        "run",
        threads_suite(tmp.path(), 2).to_str().unwrap(),
        "--db",
        dbs,
    ]);
    // No history at all: insufficient, exit 0.
    let (code, v) = check_json(&["--db", dbs, "--noisy-cv", "1000000"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(decode_verdict(&v)["final_kind"], "insufficient");
    // Tonight 2% below a steady history: within the 5% floor, ok, no re-measurement.
    write_history(&db, 8, 500.0).await;
    set_tonight(&db, 490.0).await;
    let (code, v) = check_json(&["--db", dbs]);
    assert_eq!(code, Some(0), "{v}");
    let d = decode_verdict(&v);
    assert_eq!(d["final_kind"], "ok", "{d}");
    assert_eq!(d["verdict"]["baseline_n"], 8);
    assert!(d["remeasured"].as_array().unwrap().is_empty());
    // 20% above it: an improvement, reported, exit 0.
    set_tonight(&db, 600.0).await;
    let (code, v) = check_json(&["--db", dbs]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(decode_verdict(&v)["final_kind"], "improvement");
}

#[test]
fn four_concurrent_runs_merge_into_one_and_again_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = threads_suite(tmp.path(), 1);
    let dbs: Vec<std::path::PathBuf> = (0..4)
        .map(|i| tmp.path().join(format!("m{i}.db")))
        .collect();
    let children: Vec<_> = dbs
        .iter()
        .map(|db| {
            tokbench(&[
                "run",
                suite.to_str().unwrap(),
                "--db",
                db.to_str().unwrap(),
                "--plain",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let fleet = tmp.path().join("fleet.db");
    let mut args = vec!["merge"];
    args.extend(dbs.iter().map(|d| d.to_str().unwrap()));
    args.extend(["--into", fleet.to_str().unwrap()]);
    run_ok(&args);
    let count = |sql: &str| f(&query(&fleet, sql)[0], "n").unwrap();
    assert_eq!(count("SELECT COUNT(*) AS n FROM run"), 4.0);
    assert_eq!(count("SELECT COUNT(*) AS n FROM result"), 4.0);
    assert_eq!(count("SELECT COUNT(*) AS n FROM repetition"), 20.0);
    assert_eq!(count("SELECT COUNT(*) AS n FROM host"), 1.0);
    let out = run_ok(&args);
    assert!(
        stderr(&out).contains("0 runs added, 1 already there"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count("SELECT COUNT(*) AS n FROM result"), 4.0);
    assert_eq!(integrity(&fleet), "ok");
    // A database merged into itself is refused.
    let out = tokbench(&[
        "merge",
        fleet.to_str().unwrap(),
        "--into",
        fleet.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Copies the results of `db`'s only run `copies` times into new runs (new UUIDs), so a
/// merge of it has real work to do.
async fn grow(db: &Path, copies: u32) {
    let mut c = SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    let mut tx = c.begin().await.unwrap();
    for k in 0..copies {
        sqlx::query(
            "INSERT INTO run (uuid, started_at, finished_at, suite_name, tokbench_version, trigger,
                status, cells_total, host_id)
             SELECT uuid || '-' || ?1, started_at, finished_at, suite_name, tokbench_version,
                trigger, status, cells_total, host_id FROM run WHERE id = 1",
        )
        .bind(k)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO result (run_id, cell_index, backend_build_id, model_id, model_name,
                workload_id, status, metric_source, repetitions_expected, decode_tps, started_at,
                duration_ms)
             SELECT last_insert_rowid(), cell_index, backend_build_id, model_id, model_name,
                workload_id, status, metric_source, repetitions_expected, decode_tps, started_at,
                duration_ms FROM result WHERE run_id = 1",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_merge_killed_midway_leaves_the_destination_as_it_was() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.db");
    run_ok(&[
        "run",
        threads_suite(tmp.path(), 1).to_str().unwrap(),
        "--db",
        src.to_str().unwrap(),
    ]);
    grow(&src, 20_000).await;
    let dst = tmp.path().join("dst.db");
    let mut killed_midway = 0;
    // Kill the merge at moments spread over its work; each time the destination holds all
    // of the source or none of it, and passes the integrity check.
    for delay_ms in [40u64, 120, 250, 400, 600, 900] {
        let mut child = tokbench(&[
            "merge",
            src.to_str().unwrap(),
            "--into",
            dst.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap();
            killed_midway += 1;
        }
        child.wait().unwrap();
        if dst.exists() {
            assert_eq!(integrity(&dst), "ok", "after a kill at {delay_ms} ms");
            // A kill while the new destination was being migrated leaves it at an older
            // schema, which the read-only query refuses: finish the migration (it adds
            // tables, no rows), as a user would, then count.
            run_ok(&["migrate", "--db", dst.to_str().unwrap()]);
            let n = f(&query(&dst, "SELECT COUNT(*) AS n FROM run")[0], "n").unwrap();
            assert!(
                n == 0.0 || n == 20_001.0,
                "{n} runs after a kill at {delay_ms} ms"
            );
        }
    }
    assert!(
        killed_midway > 0,
        "every merge finished before its kill: nothing was tested"
    );
    // A merge left to finish afterwards brings everything, once.
    run_ok(&[
        "merge",
        src.to_str().unwrap(),
        "--into",
        dst.to_str().unwrap(),
    ]);
    let n = f(&query(&dst, "SELECT COUNT(*) AS n FROM result")[0], "n").unwrap();
    assert_eq!(n, 20_001.0);
}

#[tokio::test]
async fn a_run_without_a_stored_suite_keeps_its_suspects_unconfirmed() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.db");
    let dbs = db.to_str().unwrap();
    run_ok(&[
        "run",
        threads_suite(tmp.path(), 2).to_str().unwrap(),
        "--db",
        dbs,
    ]);
    let level = decode_of_newest(&db) * 10.0;
    write_history(&db, 8, level).await;
    // As an imported llama-bench run has: no suite to re-run.
    let mut c = SqliteConnectOptions::new()
        .filename(&db)
        .connect()
        .await
        .unwrap();
    sqlx::query("UPDATE run SET config_text = NULL WHERE uuid NOT LIKE 'hist-%'")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let (code, v) = check_json(&["--db", dbs, "--noisy-cv", "1000000"]);
    assert_eq!(code, Some(0), "{v}");
    let d = decode_verdict(&v);
    assert_eq!(d["final_kind"], "suspect", "{d}");
    assert!(d["remeasured"].as_array().unwrap().is_empty());
    let rows = query(&db, "SELECT kind FROM verdict WHERE metric = 'decode_tps'");
    assert_eq!(s(&rows[0], "kind"), "suspect");
}
