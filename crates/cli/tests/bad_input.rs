//! Bad input gets a clear error naming the file, line or value, and exit code 2; nothing
//! already stored is lost.

mod common;

use common::*;

fn fails_with_2(args: &[&str]) -> String {
    let out = tokbench(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    stderr(&out)
}

#[test]
fn an_invalid_suite_names_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = quick_suite("\"Q4_K_M\"", "\"pp64\"", "")
        .replace("repetitions = 2", "repetitions = 2\nrepetitons = 3");
    let suite = write_suite(tmp.path(), "bad.toml", &text);
    let db = tmp.path().join("r.db");
    let err = fails_with_2(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml:11") && err.contains("repetitons"),
        "{err}"
    );

    let text = quick_suite("\"Q4_K_Q\"", "\"pp64\"", "");
    let suite = write_suite(tmp.path(), "bad2.toml", &text);
    let err = fails_with_2(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(
        err.contains("bad2.toml:4") && err.contains("Q4_K_Q"),
        "{err}"
    );

    // A depth past llama.cpp's 32-bit positions (a typo of a few zeros): refused before
    // anything runs, where it once made the engine allocate until memory ran out.
    let text = quick_suite("\"Q8_0\"", "\"pp16 @ d4000000000\"", "");
    let suite = write_suite(tmp.path(), "deep.toml", &text);
    let err = fails_with_2(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(
        err.contains("deep.toml")
            && err.contains("pp16 @ d4000000000")
            && err.contains("4000000017 tokens"),
        "{err}"
    );

    let err = fails_with_2(&[
        "run",
        tmp.path().join("nope.toml").to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(err.contains("nope.toml"), "{err}");
}

#[test]
fn a_missing_or_corrupt_model_file_is_refused_before_running() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("r.db");
    let text = "[[model]]\npath = \"missing.gguf\"\n[workload]\ntests = [\"pp8\"]\n";
    let suite = write_suite(tmp.path(), "s.toml", text);
    let err = fails_with_2(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(
        err.contains("missing.gguf") && err.contains("not found"),
        "{err}"
    );

    // A GGUF cut short in its header.
    std::fs::write(tmp.path().join("cut.gguf"), b"GGUF\x03\x00\x00\x00\x05\x00").unwrap();
    let suite = write_suite(
        tmp.path(),
        "s2.toml",
        &text.replace("missing.gguf", "cut.gguf"),
    );
    let err = fails_with_2(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(err.contains("cut.gguf") && err.contains("offset"), "{err}");
    let err = fails_with_2(&[
        "model",
        "inspect",
        tmp.path().join("cut.gguf").to_str().unwrap(),
    ]);
    assert!(err.contains("cut.gguf"), "{err}");
}

#[test]
fn query_is_read_only_and_keeps_what_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q4_K_M\"", "\"pp32\"", "").replace("repetitions = 2", "repetitions = 1"),
    );
    let db = tmp.path().join("r.db");
    run_ok(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    let dbs = db.to_str().unwrap();
    for sql in [
        "DELETE FROM result",
        "UPDATE run SET status = 'ok'",
        "DROP VIEW v_results",
        "CREATE TABLE x (a)",
        "ATTACH DATABASE 'other.db' AS o",
        "PRAGMA journal_mode = DELETE",
    ] {
        let err = fails_with_2(&["query", "--db", dbs, sql]);
        assert!(err.contains("read-only"), "{sql}: {err}");
    }
    assert!(!tmp.path().join("other.db").exists());
    assert_eq!(query(&db, "SELECT COUNT(*) AS n FROM result")[0]["n"], 1);
    // Reading pragmas and table-valued pragma functions still works.
    assert!(!query(&db, "SELECT name FROM pragma_table_info('result')").is_empty());
    let err = fails_with_2(&[
        "query",
        "--db",
        tmp.path().join("none.db").to_str().unwrap(),
        "SELECT 1",
    ]);
    assert!(err.contains("does not exist"), "{err}");
    // A time limit: a statement that would never end is stopped, with a line that says so
    // and the rows printed by then; a limit that is not a number of seconds is refused.
    let out = tokbench(&[
        "query",
        "--db",
        dbs,
        "--format",
        "csv",
        "--timeout",
        "0.3",
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k) SELECT i FROM k",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("time limit of 0.3 s"), "{err}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with("i\n1\n2\n"),
        "{}",
        &printed[..printed.len().min(40)]
    );
    for bad in ["0", "-1", "soon", "inf"] {
        let flag = format!("--timeout={bad}");
        let err = fails_with_2(&["query", "--db", dbs, &flag, "SELECT 1"]);
        assert!(err.contains("number of seconds"), "{bad}: {err}");
    }
}

#[test]
fn synthesizing_a_model_that_does_not_fit_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    // Llama 3.1 405B needs 2 × 811 GB (F16 plus the quantized copy). The test assumes the
    // temp dir's disk has less than that free; it says so instead of writing 1.6 TB.
    let st = nix::sys::statvfs::statvfs(tmp.path()).unwrap();
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    assert!(
        free < 1_500_000_000_000,
        "this disk has {free} bytes free; the test needs a smaller one"
    );
    let out = tokbench(&[
        "model",
        "synth",
        "--arch",
        "llama-3.1-405b",
        "--quant",
        "Q4_K_M",
        "--cache-dir",
        tmp.path().to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("needs up to") && err.contains("not enough disk space"),
        "{err}"
    );
    let written: Vec<_> = std::fs::read_dir(tmp.path().join("models"))
        .unwrap()
        .collect();
    assert!(written.is_empty(), "wrote {written:?}");
}
