//! `tokbench compare` on two real runs of the engine that differ in one setting. Alone in
//! its test binary, so no other test loads the cores while it measures.

mod common;

use common::*;

#[test]
fn compare_tells_two_thread_counts_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    let dbs = db.to_str().unwrap();
    run_ok(&[
        "run",
        threads_suite(tmp.path(), 1).to_str().unwrap(),
        "--db",
        dbs,
    ]);
    run_ok(&[
        "run",
        threads_suite(tmp.path(), 2).to_str().unwrap(),
        "--db",
        dbs,
    ]);
    let out = run_ok(&[
        "compare", "previous", "latest", "--db", dbs, "--format", "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["series"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    let r = &rows[0];
    assert_eq!(r["series"], "synth:tiny Q8_0 tg16");
    assert_eq!(
        r["settings_a"],
        "t1 b2048 ub512 ngl99 fa0 ctk f16 ctv f16 mmap1"
    );
    assert_eq!(
        r["settings_b"],
        "t2 b2048 ub512 ngl99 fa0 ctk f16 ctv f16 mmap1"
    );
    let c = &r["comparison"];
    assert_eq!(c["metric"], "decode_tps");
    // Two threads on two cores decode faster than one, so anything but "better" would be
    // wrong — unless a side's repetitions scattered (a loaded machine), which must say so.
    if c["mark"] != "noisy" {
        assert_eq!(c["mark"], "better", "{c}");
        assert!(c["ratio"].as_f64().unwrap() > 1.05, "{c}");
        assert!(c["ci_low"].as_f64().unwrap() > 1.0, "{c}");
    }
    // Markdown for a job summary.
    let out = run_ok(&[
        "compare", "previous", "latest", "--db", dbs, "--format", "markdown",
    ]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.starts_with("### tokbench compare") && md.contains("| synth:tiny Q8_0 tg16 |"),
        "{md}"
    );
    // A selector that names nothing is a usage error.
    let out = tokbench(&["compare", "nope", "latest", "--db", dbs])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`nope` names no run"),
        "{}",
        stderr(&out)
    );
    // So is a build that measured nothing here.
    let out = tokbench(&["compare", "build:nope", "latest", "--db", dbs])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`build:nope` names no ok result"),
        "{}",
        stderr(&out)
    );
}
