//! The real engine on the synthesized tiny model into a real SQLite file, through the real
//! binary: what a user gets from `tokbench run`.

mod common;

use common::*;

#[test]
fn a_run_stores_real_measurements_in_v_results() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q4_K_M\"", "\"pp128\", \"tg32\"", ""),
    );
    let db = tmp.path().join("r.db");
    let out = run_ok(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(stderr(&out).contains("2 ok, 0 failed"), "{}", stderr(&out));

    let rows = query(&db, "SELECT * FROM v_results ORDER BY test");
    assert_eq!(rows.len(), 2);
    let (pp, tg) = (&rows[0], &rows[1]);
    assert_eq!(s(pp, "test"), "pp128");
    assert_eq!(s(tg, "test"), "tg32");
    for r in &rows {
        assert_eq!(s(r, "status"), "ok", "{r:?}");
        assert_eq!(s(r, "backend"), "engine");
        assert_eq!(s(r, "metric_source"), "engine");
        assert_eq!(s(r, "model"), "synth:tiny");
        assert_eq!(s(r, "quant"), "Q4_K_M");
        assert_eq!(f(r, "n_reps"), Some(2.0));
        assert_eq!(f(r, "n_reps_expected"), Some(2.0));
        assert_eq!(f(r, "n_threads"), Some(2.0));
        assert!(f(r, "ttft_ms").unwrap() > 0.0, "{r:?}");
        assert!(f(r, "load_ms").unwrap() > 0.0, "{r:?}");
        // The engine's resident set holds at least the mapped weights it touched.
        assert!(f(r, "rss_peak_bytes").unwrap() > 10e6, "{r:?}");
        assert!(r["error"].is_null());
    }
    let prefill = f(pp, "prefill_tps").unwrap();
    let decode = f(tg, "decode_tps").unwrap();
    assert!(
        prefill > decode && decode > 0.0,
        "prefill {prefill} decode {decode}"
    );
    // A pp test has no decode figure and a tg test no prefill figure: NULL, never 0.
    assert!(pp["decode_tps"].is_null() && tg["prefill_tps"].is_null());
    // The repetitions are stored raw and the summary is their mean.
    let reps = query(
        &db,
        "SELECT AVG(rep.prefill_tps) AS m, COUNT(*) AS n FROM repetition rep JOIN result r ON r.id = rep.result_id JOIN workload w ON w.id = r.workload_id WHERE w.label = 'pp128'",
    );
    assert_eq!(f(&reps[0], "n"), Some(2.0));
    assert!((f(&reps[0], "m").unwrap() - prefill).abs() < 1e-6 * prefill);
    assert_eq!(integrity(&db), "ok");

    // `tokbench results` shows the run as a table.
    let out = run_ok(&["results", "--db", db.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("pp128") && table.contains("tg32") && table.contains("Q4_K_M"),
        "{table}"
    );
    // The run is recorded with its host and the suite it ran.
    let runs = query(
        &db,
        "SELECT status, cells_total, config_text, (SELECT cpu_model FROM host) AS cpu FROM run",
    );
    assert_eq!(s(&runs[0], "status"), "ok");
    assert_eq!(f(&runs[0], "cells_total"), Some(2.0));
    assert!(s(&runs[0], "config_text").contains("tg32"));
    assert!(!s(&runs[0], "cpu").is_empty());
}

#[test]
fn a_killed_engine_fails_that_cell_and_the_next_still_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q4_K_M\"", "\"pp64\", \"tg16\"", ""),
    );
    let db = tmp.path().join("r.db");
    // Cell 0 is killed with SIGKILL in the middle of its second repetition.
    let out = tokbench(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()])
        .env("TOKBENCH_ENGINE_FAULT", "test=0,rep=1,mode=kill")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let rows = query(
        &db,
        "SELECT test, status, error, n_reps, prefill_tps, decode_tps FROM v_results ORDER BY test",
    );
    assert_eq!(s(&rows[0], "test"), "pp64");
    assert_eq!(s(&rows[0], "status"), "crashed");
    let err = s(&rows[0], "error");
    assert!(
        err.contains("SIGKILL") && err.contains("after 1 of 2 repetitions"),
        "{err}"
    );
    assert!(
        rows[0]["prefill_tps"].is_null(),
        "a failed cell has no figures"
    );
    // What telemetry saw up to the crash is kept with the crashed cell.
    let t = query(
        &db,
        "SELECT r.telemetry_json FROM result r JOIN workload w ON w.id = r.workload_id WHERE w.label = 'pp64'",
    );
    let t: serde_json::Value = serde_json::from_str(s(&t[0], "telemetry_json")).unwrap();
    assert!(t["phases"].as_array().is_some(), "{t}");
    assert_eq!(s(&rows[1], "test"), "tg16");
    assert_eq!(s(&rows[1], "status"), "ok");
    assert!(f(&rows[1], "decode_tps").unwrap() > 0.0);
    assert_eq!(
        s(&query(&db, "SELECT status FROM run")[0], "status"),
        "failed"
    );
    assert_eq!(integrity(&db), "ok");
}

#[test]
fn a_hung_engine_times_out_and_the_next_cell_runs() {
    let tmp = tempfile::tempdir().unwrap();
    // Long enough for the healthy cell on a loaded machine (a new engine, the model loaded
    // again): at 3 s a cold CI run once timed it out too.
    let text = quick_suite("\"Q4_K_M\"", "\"pp64\", \"tg16\"", "")
        .replace("timeout_s = 120", "timeout_s = 10");
    let suite = write_suite(tmp.path(), "s.toml", &text);
    let db = tmp.path().join("r.db");
    let out = tokbench(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()])
        .env("TOKBENCH_ENGINE_FAULT", "test=0,rep=0,mode=hang")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let rows = query(
        &db,
        "SELECT test, status, error FROM v_results ORDER BY test",
    );
    assert_eq!(s(&rows[0], "status"), "timeout");
    assert!(
        s(&rows[0], "error").contains("within 10 s"),
        "{:?}",
        rows[0]
    );
    assert_eq!(s(&rows[1], "status"), "ok");
}

#[test]
fn an_engine_that_exits_during_warmup_fails_only_that_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q4_K_M\"", "\"pp64\", \"tg16\"", ""),
    );
    let db = tmp.path().join("r.db");
    let out = tokbench(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()])
        .env("TOKBENCH_ENGINE_FAULT", "test=1,rep=warmup,mode=exit")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let rows = query(
        &db,
        "SELECT test, status, error FROM v_results ORDER BY test",
    );
    assert_eq!(s(&rows[0], "status"), "ok");
    assert_eq!(s(&rows[1], "status"), "failed");
    assert!(
        s(&rows[1], "error").contains("exited with code 3"),
        "{:?}",
        rows[1]
    );
}
