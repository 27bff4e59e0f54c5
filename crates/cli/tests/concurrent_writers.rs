//! Four `tokbench run` processes writing one database at once (a shared nightly database,
//! or two jobs that overlap): every result is stored once, none fails with "database is
//! locked", the file passes its integrity check.

mod common;

use common::*;

#[test]
fn four_runs_into_one_database_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp32\", \"tg8\", \"pp16\"", ""),
    );
    let db = tmp.path().join("shared.db");
    // The model is synthesized once, before the runs race.
    run_ok(&["model", "synth", "--arch", "tiny", "--quant", "Q8_0"]);
    let children: Vec<_> = (0..4)
        .map(|_| {
            tokbench(&[
                "run",
                suite.to_str().unwrap(),
                "--db",
                db.to_str().unwrap(),
                "--plain",
                "--telemetry-interval-ms",
                "10",
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("locked"), "{err}");
        assert!(err.contains("3 ok, 0 failed of 3"), "{err}");
    }
    let runs = query(&db, "SELECT uuid, status FROM run");
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| s(r, "status") == "ok"), "{runs:?}");
    let per_run = query(
        &db,
        "SELECT run_id, COUNT(*) AS n, COUNT(DISTINCT cell_index) AS cells FROM result GROUP BY run_id",
    );
    assert_eq!(per_run.len(), 4);
    for r in &per_run {
        assert_eq!((f(r, "n"), f(r, "cells")), (Some(3.0), Some(3.0)), "{r:?}");
    }
    let reps = query(&db, "SELECT COUNT(*) AS n FROM repetition");
    assert_eq!(f(&reps[0], "n"), Some(4.0 * 3.0 * 2.0));
    assert_eq!(integrity(&db), "ok");
    eprintln!(
        "concurrent writers: 4 tokbench runs into one database at once; 12 results and 24 repetitions stored once each, 0 'locked' failures, integrity ok"
    );
}
