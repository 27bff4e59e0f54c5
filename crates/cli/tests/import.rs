//! `tokbench import` on real llama-bench output (the fixtures captured from a llama-bench
//! built on this machine): the stored numbers are llama-bench's own printed ones, a file
//! imported twice is stored once, the source travels to the reports, bad files are named.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/llama-bench")
        .join(name)
}

/// llama-bench's printed table: (quant, test) → "mean ± sd".
fn printed(md: &str) -> Vec<(String, String, String)> {
    md.lines()
        .filter(|l| l.starts_with("| llama"))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            let quant = if c[1].contains("Q4_K - Medium") {
                "Q4_K_M"
            } else {
                "Q8_0"
            };
            (quant.to_string(), c[6].to_string(), c[7].to_string())
        })
        .collect()
}

#[test]
fn llama_bench_json_and_sql_import_with_its_printed_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("i.db");
    let dbs = db.to_str().unwrap();
    // r1: JSON with llama-bench's table on stderr; r3: SQL (no per-repetition samples).
    for (data, table) in [("r1.json", "r1.md"), ("r3.sql", "r3.md")] {
        let out = run_ok(&[
            "import",
            fixture(data).to_str().unwrap(),
            "--db",
            dbs,
            "--host",
            "epyc-vm",
            "--source",
            data,
        ]);
        assert!(
            stderr(&out).contains("4 results as run"),
            "{}",
            stderr(&out)
        );
        let md = std::fs::read_to_string(fixture(table)).unwrap();
        for (quant, test, figure) in printed(&md) {
            let rows = query(
                &db,
                &format!(
                    "SELECT prefill_tps, prefill_tps_sd, decode_tps, decode_tps_sd, n_reps, backend, source
                     FROM v_results WHERE source = '{data}' AND quant = '{quant}' AND test = '{test}'"
                ),
            );
            assert_eq!(rows.len(), 1, "{data} {quant} {test}");
            let r = &rows[0];
            let (m, sd) = if test.starts_with("pp") {
                (f(r, "prefill_tps"), f(r, "prefill_tps_sd"))
            } else {
                (f(r, "decode_tps"), f(r, "decode_tps_sd"))
            };
            assert_eq!(
                format!("{:.2} ± {:.2}", m.unwrap(), sd.unwrap()),
                figure,
                "{data} {quant} {test}"
            );
            assert_eq!(s(r, "backend"), "llama-bench");
            // Repetitions are kept where llama-bench printed them (JSON), not invented (SQL).
            let reps = f(r, "n_reps").unwrap();
            assert_eq!(
                reps,
                if data.ends_with(".json") { 3.0 } else { 0.0 },
                "{data}"
            );
        }
    }
    // The same file again: nothing added.
    let out = run_ok(&["import", fixture("r1.json").to_str().unwrap(), "--db", dbs]);
    assert!(
        stderr(&out).contains("already imported"),
        "{}",
        stderr(&out)
    );
    let n = query(&db, "SELECT COUNT(*) AS n FROM result");
    assert_eq!(f(&n[0], "n"), Some(8.0));
    assert_eq!(integrity(&db), "ok");
    // The reports name where the numbers came from (r3 ran after r1: the newest of the
    // series is shown).
    let out_dir = tmp.path().join("reports");
    run_ok(&["report", "--db", dbs, "--out", out_dir.to_str().unwrap()]);
    let lb = std::fs::read_to_string(out_dir.join("leaderboard.md")).unwrap();
    assert!(lb.contains("| AMD EPYC (CPU) (from r3.sql) |"), "{lb}");
}

/// r1.json with its first `from` replaced by `to`, written as `name`, imported after the
/// files in `before` into a new database: the output, and where the database would be.
fn import_altered(
    tmp: &Path,
    name: &str,
    from: &str,
    to: &str,
    before: &[PathBuf],
) -> (std::process::Output, PathBuf) {
    let good = std::fs::read_to_string(fixture("r1.json")).unwrap();
    let altered = good.replacen(from, to, 1);
    assert_ne!(altered, good, "{from} is not in r1.json");
    let file = tmp.join(name);
    std::fs::write(&file, altered).unwrap();
    let db = tmp.join("i.db");
    let mut args: Vec<String> = vec!["import".into()];
    args.extend(before.iter().map(|p| p.display().to_string()));
    args.extend([
        file.display().to_string(),
        "--db".into(),
        db.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (tokbench(&args).output().unwrap(), db)
}

#[test]
fn a_bad_file_is_named_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = import_altered(
        tmp.path(),
        "bad.json",
        "\"avg_ts\": ",
        "\"avg_ts\": \"x\", \"was\": ",
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("bad.json") && e.contains("line ") && e.contains("avg_ts"),
        "{e}"
    );
}

#[test]
fn a_test_tokbench_cannot_store_is_refused_before_the_database_is_made() {
    // Parses, but names a KV cache type tokbench does not know: refused with the file and
    // the value, and nothing is written, not even from the good file given before it.
    let tmp = tempfile::tempdir().unwrap();
    let (out, db) = import_altered(
        tmp.path(),
        "odd.json",
        "\"type_k\": \"f16\"",
        "\"type_k\": \"q9_9\"",
        &[fixture("r1.json")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("odd.json") && e.contains("q9_9"), "{e}");
    assert!(!db.exists(), "a refused import made {}", db.display());
}

#[test]
fn the_same_results_as_json_and_as_jsonl_are_one_run() {
    // llama-bench's -o json and -o jsonl of one run hold the same records: deduplicated by
    // what they say, not by their bytes. A changed figure is another run.
    let tmp = tempfile::tempdir().unwrap();
    let json = std::fs::read_to_string(fixture("r1.json")).unwrap();
    let records: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    let jsonl = tmp.path().join("r1.jsonl");
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let db = tmp.path().join("i.db");
    let import = |file: &Path| {
        stderr(&run_ok(&[
            "import",
            file.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ]))
    };
    assert!(import(&fixture("r1.json")).contains("4 results as run"));
    let again = import(&jsonl);
    assert!(again.contains("already imported as run"), "{again}");
    let changed = tmp.path().join("changed.jsonl");
    std::fs::write(
        &changed,
        lines.join("\n").replacen("481.990998", "481.990997", 1),
    )
    .unwrap();
    assert_ne!(std::fs::read_to_string(&changed).unwrap(), lines.join("\n"));
    assert!(import(&changed).contains("4 results as run"));
    let runs = query(&db, "SELECT COUNT(*) AS n FROM run");
    assert_eq!(f(&runs[0], "n"), Some(2.0));
}

#[test]
fn a_file_imported_when_uuids_came_from_its_bytes_is_still_found() {
    use sha2::{Digest, Sha256};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("i.db");
    let file = fixture("r1.json");
    let args = [
        "import",
        file.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ];
    run_ok(&args);
    // Give the run the UUID an older tokbench derived from the file's bytes (a version-8
    // UUID from the first 16 bytes of their sha256), as such a database holds it.
    let mut b = [0u8; 16];
    b.copy_from_slice(&Sha256::digest(std::fs::read(&file).unwrap())[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let old = uuid::Uuid::from_bytes(b).to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::{ConnectOptions, Connection};
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE run SET uuid = ?")
            .bind(&old)
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let again = stderr(&run_ok(&args));
    assert!(
        again.contains(&format!("already imported as run {old}")),
        "{again}"
    );
    assert_eq!(
        f(&query(&db, "SELECT COUNT(*) AS n FROM run")[0], "n"),
        Some(1.0)
    );
}
