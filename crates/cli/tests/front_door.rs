//! The everyday loop as a new user types it: `tokbench run` anywhere (the built-in suite),
//! `tokbench run model.gguf` with llama-bench's flags, results that show which settings
//! produced each row, one run selector, pipes that close early, and failed commands that
//! leave nothing behind.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;

/// The tiny Q8_0 model, synthesized once into the shared cache.
fn tiny_model() -> PathBuf {
    let out = run_ok(&["model", "synth", "--arch", "tiny", "--quant", "Q8_0"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.trim().rsplit('\t').next().unwrap())
}

fn csv_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn db_arg(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

#[test]
fn a_model_with_llama_bench_flags_runs_and_every_setting_that_varies_is_a_column() {
    let model = tiny_model();
    let tmp = tempfile::tempdir().unwrap();
    let db = db_arg(tmp.path(), "r.db");
    // llama-bench's spellings as typed: multi-letter short options and comma lists.
    let out = tokbench(&[
        "run",
        model.to_str().unwrap(),
        "--db",
        &db,
        "--plain",
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "2",
        "-t",
        "2",
        "-fa",
        "0,1",
        "-ub",
        "64",
        "-o",
        "csv",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // stdout is the results alone (progress went to stderr), as numbers.
    let rows = csv_rows(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        rows.len(),
        4,
        "pp16 and tg4, each without and with flash attention"
    );
    let mut fa: Vec<&str> = rows.iter().map(|r| r["flash_attn"].as_str()).collect();
    fa.sort();
    assert_eq!(fa, ["0", "0", "1", "1"]);
    for r in &rows {
        assert_eq!(r["n_ubatch"], "64");
        assert_eq!(r["n_threads"], "2");
        assert_eq!(r["n_reps"], "2");
        assert_eq!(r["status"], "ok");
        let speed = if r["test"] == "pp16" {
            &r["prefill_tps"]
        } else {
            &r["decode_tps"]
        };
        let v: f64 = speed
            .parse()
            .expect("a rate is a number in CSV, not display text");
        assert!(v > 0.0, "{r:?}");
        let rss: i64 = r["rss_peak_bytes"].parse().expect("bytes as an integer");
        assert!(rss > 1 << 20, "{r:?}");
    }

    // The table gives flash attention a column (it varies); ubatch is shared, so it is
    // named once in the heading instead.
    let table = String::from_utf8(run_ok(&["results", "--db", &db]).stdout).unwrap();
    let header = table
        .lines()
        .find(|l| l.starts_with("model"))
        .expect("a header row");
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert!(columns.contains(&"fa"), "{table}");
    assert!(!columns.contains(&"ubatch"), "{table}");
    assert!(table.contains("ubatch 64"), "{table}");

    // SQL as llama-bench's -o sql writes it: it loads into SQLite, numbers as numbers.
    let sql =
        String::from_utf8(run_ok(&["results", "--db", &db, "--format", "sql"]).stdout).unwrap();
    let (n, fa_on, min_rate): (i64, i64, f64) = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
            sqlx::raw_sql(&sql).execute(&mut c).await.unwrap();
            sqlx::query_as(
                "SELECT COUNT(*), SUM(flash_attn), MIN(COALESCE(decode_tps, prefill_tps)) FROM tokbench_results",
            )
            .fetch_one(&mut c)
            .await
            .unwrap()
        });
    assert_eq!((n, fa_on), (4, 2));
    assert!(min_rate > 0.0);
    // One vocabulary: `markdown` is `md`; a format a command cannot write is named.
    let md = String::from_utf8(run_ok(&["results", "--db", &db, "--format", "markdown"]).stdout)
        .unwrap();
    assert!(md.contains("| model |"), "{md}");
    let jsonl = String::from_utf8(run_ok(&["results", "--db", &db, "-o", "jsonl"]).stdout).unwrap();
    assert_eq!(jsonl.lines().count(), 4);
    let out = tokbench(&["check", "--db", &db, "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("table, md, json"), "{}", stderr(&out));

    // JSON carries every setting too.
    let json: Vec<serde_json::Value> =
        serde_json::from_slice(&run_ok(&["results", "--db", &db, "--format", "json"]).stdout)
            .unwrap();
    assert_eq!(json.len(), 4);
    assert!(json.iter().all(|r| r["n_ubatch"] == 64));
    assert!(json.iter().any(|r| r["flash_attn"] == true));
}

#[test]
fn the_default_suite_is_built_in_and_runs_outside_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tokbench(&[
        "run", "--db", "here.db", "--plain", "-p", "16", "-n", "4", "-r", "1",
    ])
    .current_dir(tmp.path())
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let db = tmp.path().join("here.db");
    let runs = query(&db, "SELECT suite_name, config_text FROM run");
    assert_eq!(runs.len(), 1);
    assert_eq!(s(&runs[0], "suite_name"), "smoke");
    let tests = query(&db, "SELECT DISTINCT test FROM v_results ORDER BY test");
    let tests: Vec<&str> = tests.iter().map(|r| s(r, "test")).collect();
    assert_eq!(
        tests,
        ["pp16", "tg4"],
        "the flags replaced the suite's tests"
    );
    // The stored suite text is the one that ran, so `--resume` can re-read it.
    assert!(s(&runs[0], "config_text").contains("pp16"));
}

#[test]
fn the_built_in_suite_is_the_file_in_the_repository() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-configs/smoke.toml");
    let text = std::fs::read_to_string(file).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // `run --help` cannot show the text; a run that fails validation can: give it a
    // conflicting flag and the error names the built-in suite's file name.
    let out = tokbench(&["run", "--db", "x.db", "-ctv", "q8_0"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bench-configs/smoke.toml"),
        "{}",
        stderr(&out)
    );
    assert!(
        !tmp.path().join("x.db").exists(),
        "a refused suite creates no database"
    );
    assert!(text.contains("name = \"smoke\""));
}

#[test]
fn one_run_selector_for_results_check_and_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db_arg(tmp.path(), "s.db");
    let suite = write_suite(
        tmp.path(),
        "q.toml",
        &quick_suite("\"Q8_0\"", "\"tg4\"", ""),
    );
    let mut uuids = Vec::new();
    for _ in 0..2 {
        run_ok(&[
            "run",
            suite.to_str().unwrap(),
            "--db",
            &db,
            "--plain",
            "-r",
            "1",
        ]);
        let runs = query(
            Path::new(&db),
            "SELECT uuid FROM run ORDER BY started_at DESC LIMIT 1",
        );
        uuids.push(s(&runs[0], "uuid").to_string());
    }
    let shown = |sel: &str| -> String {
        let out = run_ok(&["results", "--db", &db, "--run", sel, "--format", "csv"]);
        let rows = csv_rows(&String::from_utf8(out.stdout).unwrap());
        rows[0]["run_uuid"].clone()
    };
    assert_eq!(shown("latest"), uuids[1]);
    assert_eq!(shown("previous"), uuids[0]);
    assert_eq!(shown("latest~1"), uuids[0]);
    assert_eq!(shown(&uuids[0][..8]), uuids[0]);
    assert_eq!(shown(&format!("run:{}", &uuids[1][..8])), uuids[1]);
    let host = query(Path::new(&db), "SELECT host FROM v_results LIMIT 1");
    let host = s(&host[0], "host");
    assert_eq!(shown(&format!("host:{host}")), uuids[1]);

    // A selector that names nothing, or is no selector: exit 2 with the forms listed.
    for bad in ["latest~5", "zz", "host:nowhere"] {
        let out = tokbench(&["results", "--db", &db, "--run", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("latest~N"), "{bad}: {}", stderr(&out));
    }
    // check and compare take the same forms.
    run_ok(&["compare", "latest~1", &uuids[1][..8], "--db", &db]);
    let out = tokbench(&[
        "check",
        "--db",
        &db,
        "--run",
        "latest~1",
        "--remeasure",
        "0",
    ])
    .output()
    .unwrap();
    assert!(out.status.code() == Some(0), "{}", stderr(&out));
}

#[test]
fn a_reader_that_goes_away_ends_a_printing_command_quietly() {
    for args in [
        &["hardware"][..],
        &["fit", "--arch", "llama-3.1-8b"][..],
        &["model", "synth", "--list"][..],
    ] {
        let mut child = tokbench(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the pipe before the command has written anything (it is still starting),
        // so every write it makes meets a closed pipe, as under `| head -0`.
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn a_run_whose_reader_goes_away_keeps_measuring_and_storing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db_arg(tmp.path(), "gone.db");
    let model = tiny_model();
    let mut child = tokbench(&[
        "run",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "2",
        "--db",
        &db,
        "-o",
        "jsonl",
        "--plain",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Whoever reads the results (a remote controller, `| head`) goes away at once.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("2 ok, 0 failed of 2"), "{err}");
    let stored = query(Path::new(&db), "SELECT COUNT(*) AS n FROM result");
    assert_eq!(f(&stored[0], "n"), Some(2.0));
}

#[test]
fn failed_commands_leave_no_database_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("typo.db");
    let dbs = db.to_str().unwrap();
    let bad_suite = write_suite(
        tmp.path(),
        "bad.toml",
        "name = \"x\"\n[workload]\ntests = [\"pp1\"]\nrepetitions = \"three\"\n",
    );
    let model_dir = tmp.path().join("models");
    std::fs::create_dir(&model_dir).unwrap();
    let out_dir = tmp.path().join("out");
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", bad_suite.to_str().unwrap(), "--db", dbs],
        vec!["run", "-m", model_dir.to_str().unwrap(), "--db", dbs],
        vec!["run", model_dir.to_str().unwrap(), "--db", dbs],
        vec!["run", "-m", "/nonexistent/model.gguf", "--db", dbs],
        vec!["run", "-p", "0", "-n", "0", "--db", dbs],
        vec!["run", "--resume", "5f0c", "--db", dbs],
        vec!["check", "--db", dbs],
        vec!["check", "--accept", "latest", "--db", dbs],
        vec!["results", "--db", dbs],
        vec!["compare", "previous", "latest", "--db", dbs],
        vec!["import", bad_suite.to_str().unwrap(), "--db", dbs],
        vec!["report", "--db", dbs, "--out", out_dir.to_str().unwrap()],
        vec!["prune", "--older-than", "90", "--db", dbs],
    ];
    for args in cases {
        let out = tokbench(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

#[test]
fn another_run_on_the_machine_is_seen_whatever_database_it_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("runtime");
    std::fs::create_dir_all(runtime.join("tokbench")).unwrap();
    // A run measuring elsewhere (another database): a process holding its claim, the same
    // exclusive lock on `run-PID.lock` a tokbench run holds.
    let claim = runtime.join("tokbench/run-4242.lock");
    let mut other = std::process::Command::new("flock")
        .arg("-x")
        .arg(&claim)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock (util-linux) runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !claim.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let db = tmp.path().join("mine.db");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--db",
            db.to_str().unwrap(),
            "--plain",
            "-p",
            "16",
            "-n",
            "0",
            "-r",
            "1",
        ];
        args.extend_from_slice(extra);
        tokbench(&args)
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .unwrap()
    };
    let refused = run(&["--exclusive"]);
    let created_by_refused = db.exists();
    let warned = run(&[]);
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("pid 4242"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !created_by_refused,
        "--exclusive refuses before creating the database"
    );
    assert!(warned.status.success(), "{}", stderr(&warned));
    assert!(
        stderr(&warned)
            .contains("warning: another tokbench run is measuring on this machine (pid 4242)"),
        "{}",
        stderr(&warned)
    );
    // The run's own claim is gone when it ends.
    let left: Vec<_> = std::fs::read_dir(runtime.join("tokbench"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "run-4242.lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn auto_repetitions_stop_between_three_and_thirty() {
    let model = tiny_model();
    let tmp = tempfile::tempdir().unwrap();
    let db = db_arg(tmp.path(), "auto.db");
    run_ok(&[
        "run",
        model.to_str().unwrap(),
        "--db",
        &db,
        "--plain",
        "-p",
        "32",
        "-n",
        "0",
        "-t",
        "2",
        "-r",
        "auto",
    ]);
    let rows = query(
        Path::new(&db),
        "SELECT v.status, v.n_reps, r.repetitions_expected, v.prefill_tps_sd / v.prefill_tps AS cv
         FROM v_results v JOIN result r ON r.id = v.result_id",
    );
    assert_eq!(rows.len(), 1);
    let n = f(&rows[0], "n_reps").unwrap();
    assert_eq!(s(&rows[0], "status"), "ok");
    assert!((3.0..=30.0).contains(&n), "{rows:?}");
    assert_eq!(f(&rows[0], "repetitions_expected"), Some(n));
    // It stopped early only with the interval within 1% (t(0.975, n−1)·CV/√n ≤ 0.01), so
    // a run that stopped before 30 has a CV below 1% × √n / t.
    let cv = f(&rows[0], "cv").unwrap();
    if n < 30.0 {
        assert!(cv < 0.01 * n.sqrt() / 1.9, "stopped at {n} with CV {cv}");
    }
    // The stored suite says auto, so a resumed run repeats the same way.
    let suite = query(Path::new(&db), "SELECT config_text FROM run");
    assert!(s(&suite[0], "config_text").contains("repetitions = \"auto\""));
}
