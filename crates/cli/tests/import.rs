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
    // Nor is anything left beside it: the new database was being written under another
    // name, removed when the import failed.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "odd.json")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_bad_file_after_good_ones_leaves_an_existing_database_as_it_was() {
    // Files are stored while later ones are still parsed, all in one transaction: a bad
    // last file undoes what the good ones before it wrote.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("i.db");
    let dbs = db.to_str().unwrap();
    run_ok(&["import", fixture("r3.sql").to_str().unwrap(), "--db", dbs]);
    let count = |db: &Path| {
        let n = query(
            db,
            "SELECT (SELECT COUNT(*) FROM run) AS runs, (SELECT COUNT(*) FROM result) AS results,
                    (SELECT COUNT(*) FROM repetition) AS reps, (SELECT COUNT(*) FROM model) AS models",
        );
        ["runs", "results", "reps", "models"].map(|c| f(&n[0], c).unwrap())
    };
    let before = count(&db);
    assert_eq!(before[..2], [1.0, 4.0]);
    let (out, same) = import_altered(
        tmp.path(),
        "odd.json",
        "\"type_k\": \"f16\"",
        "\"type_k\": \"q9_9\"",
        &[fixture("r1.json"), fixture("r4.json")],
    );
    assert_eq!(same, db);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("odd.json") && e.contains("q9_9"), "{e}");
    assert_eq!(count(&db), before, "{e}");
    assert_eq!(integrity(&db), "ok");
    // The good files alone import whole afterwards.
    let out = run_ok(&[
        "import",
        fixture("r1.json").to_str().unwrap(),
        fixture("r4.json").to_str().unwrap(),
        "--db",
        dbs,
    ]);
    assert_eq!(count(&db)[0], 3.0, "{}", stderr(&out));
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

/// A table as pasted into a discussion, with front matter saying where and when.
const PASTE: &str = "\
---
source: https://github.com/example/llama.cpp/discussions/1#comment-2
date: 2025-08-12
---
ggml_cuda_init: found 1 CUDA devices:
  Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes
| model                          |       size |     params | backend    | ngl | fa |            test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | --: | -: | --------------: | -------------------: |
| llama 8B Q4_K - Medium         |   4.58 GiB |     8.03 B | CUDA       |  99 |  1 |           pp512 |     11234.56 ± 12.34 |
| llama 8B Q4_K - Medium         |   4.58 GiB |     8.03 B | CUDA       |  -1 | -1 |           tg128 |        150.12 ± 0.33 |

build: 233d773d0 (6413)
";

#[test]
fn a_pasted_table_imports_with_its_source_hardware_and_auto_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("i.db");
    let paste = tmp.path().join("post.md");
    std::fs::write(&paste, PASTE).unwrap();
    let import = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "import",
            file.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ];
        args.extend(extra);
        stderr(&run_ok(&args))
    };
    let out = import(&paste, &[]);
    assert!(
        out.contains("2 results as run") && out.contains("GeForce RTX 4090"),
        "{out}"
    );
    let rows = query(
        &db,
        "SELECT v.*, run.hardware AS run_hardware FROM v_results v
         JOIN run ON run.uuid = v.run_uuid ORDER BY test",
    );
    assert_eq!(rows.len(), 2);
    let (pp, tg) = (&rows[0], &rows[1]);
    assert_eq!(s(pp, "run_hardware"), "GeForce RTX 4090");
    assert_eq!(
        s(pp, "source"),
        "https://github.com/example/llama.cpp/discussions/1#comment-2"
    );
    assert_eq!(s(pp, "started_at"), "2025-08-12T00:00:00Z");
    assert_eq!(s(pp, "backend_commit"), "233d773d0");
    assert!(s(pp, "host").starts_with("post-"), "{}", s(pp, "host"));
    assert_eq!(f(pp, "prefill_tps"), Some(11234.56));
    assert_eq!(f(tg, "decode_tps"), Some(150.12));
    assert_eq!(f(pp, "n_gpu_layers"), Some(99.0));
    assert_eq!(f(pp, "flash_attn"), Some(1.0));
    // The table prints no thread count for a GPU run, and -1 is llama.cpp's choice: NULL,
    // with the auto settings named.
    assert!(pp["n_threads"].is_null() && tg["n_threads"].is_null());
    assert!(tg["n_gpu_layers"].is_null() && tg["flash_attn"].is_null());
    assert_eq!(s(tg, "params_auto"), "n_gpu_layers,flash_attn");
    assert!(pp["params_auto"].is_null());
    // Model bytes and parameters as printed (to their rounding).
    assert_eq!(f(pp, "model_params"), Some(8.03e9));
    assert_eq!(
        f(pp, "model_bytes"),
        Some((4.58 * (1u64 << 30) as f64).round())
    );
    // `results` shows where the numbers came from and which settings were auto.
    let out = run_ok(&["results", "--db", db.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(table.contains("discussions/1#comment-2"), "{table}");
    assert!(table.contains("auto"), "{table}");
    // The same table pasted with other spacing is the same results.
    let respaced = tmp.path().join("respaced.md");
    let text: String = PASTE
        .lines()
        .map(|l| {
            if l.starts_with('|') {
                l.split('|').map(str::trim).collect::<Vec<_>>().join(" | ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&respaced, text).unwrap();
    let again = import(&respaced, &[]);
    assert!(again.contains("already imported"), "{again}");
    // Another post quoting the same table adds nothing (the same measurements); another
    // post's own table on the same GPU is another host: two series, not one.
    let quoted = tmp.path().join("quoted.md");
    std::fs::write(&quoted, PASTE.replace("comment-2", "comment-3")).unwrap();
    assert!(import(&quoted, &[]).contains("already imported"));
    let other = tmp.path().join("other.md");
    let theirs = PASTE
        .replace("comment-2", "comment-4")
        .replace("150.12 ± 0.33", "149.80 ± 0.41");
    std::fs::write(&other, theirs).unwrap();
    import(&other, &[]);
    let hosts = query(&db, "SELECT COUNT(DISTINCT host) AS n FROM v_results");
    assert_eq!(f(&hosts[0], "n"), Some(2.0));
    assert_eq!(integrity(&db), "ok");
}

#[test]
fn hardware_and_date_come_from_the_command_line_when_the_paste_has_none() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("i.db");
    let paste = tmp.path().join("bare.md");
    // No front matter, no device lines: a bare table.
    let bare: String = PASTE.lines().skip(6).collect::<Vec<_>>().join("\n");
    std::fs::write(&paste, &bare).unwrap();
    let dbs = db.to_str().unwrap();
    let file = paste.to_str().unwrap();
    // A hardware name the catalog lacks is refused, naming it.
    let out = tokbench(&[
        "import",
        file,
        "--db",
        dbs,
        "--hardware",
        "GeForce RTX 9999",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("RTX 9999"), "{}", stderr(&out));
    assert!(!db.exists());
    let out = tokbench(&["import", file, "--db", dbs, "--date", "12/08/2025"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("12/08/2025"), "{}", stderr(&out));
    let out = stderr(&run_ok(&[
        "import",
        file,
        "--db",
        dbs,
        "--hardware",
        "2x GeForce RTX 3090",
        "--date",
        "2025-01-02",
        "--source",
        "https://example.org/post",
    ]));
    assert!(out.contains("2× GeForce RTX 3090"), "{out}");
    let rows = query(
        &db,
        "SELECT DISTINCT run.hardware AS h, run.started_at AS t FROM run",
    );
    assert_eq!(s(&rows[0], "h"), "2× GeForce RTX 3090");
    assert_eq!(s(&rows[0], "t"), "2025-01-02T00:00:00Z");
    // The same post's table for another machine (another figure) is another host: the
    // hardware a post names is part of its host, so two GPUs never share a series.
    let other = tmp.path().join("other.md");
    std::fs::write(&other, bare.replace("150.12 ± 0.33", "90.00 ± 0.50")).unwrap();
    run_ok(&[
        "import",
        other.to_str().unwrap(),
        "--db",
        dbs,
        "--hardware",
        "GeForce RTX 4090",
        "--date",
        "2025-01-02",
        "--source",
        "https://example.org/post",
    ]);
    let hosts = query(&db, "SELECT COUNT(DISTINCT host) AS n FROM v_results");
    assert_eq!(f(&hosts[0], "n"), Some(2.0));
}

#[test]
fn llama_bench_auto_values_stay_auto() {
    // `-ngl -1` and `-fa -1` (auto) in llama-bench's JSON: NULL and named, never 0 or off.
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("r1.json")).unwrap();
    let auto = good
        .replace("\"n_gpu_layers\": 99", "\"n_gpu_layers\": -1")
        .replace("\"flash_attn\": false", "\"flash_attn\": -1");
    assert_ne!(auto, good);
    let file = tmp.path().join("auto.json");
    std::fs::write(&file, auto).unwrap();
    let db = tmp.path().join("i.db");
    run_ok(&[
        "import",
        file.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    let rows = query(
        &db,
        "SELECT n_gpu_layers, flash_attn, params_auto, n_threads FROM v_results",
    );
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert!(
            r["n_gpu_layers"].is_null() && r["flash_attn"].is_null(),
            "{r:?}"
        );
        assert_eq!(s(r, "params_auto"), "n_gpu_layers,flash_attn");
        assert_eq!(f(r, "n_threads"), Some(2.0));
    }
    // Each repetition keeps its wall time (samples_ns) beside its rate.
    let reps = query(
        &db,
        "SELECT COUNT(*) AS n FROM repetition WHERE prompt_ms > 0 OR gen_ms > 0",
    );
    assert_eq!(f(&reps[0], "n"), Some(12.0));
}

/// The community dataset in `bench-configs/community/`: every file imports, every row
/// lands with its post's source and date, and look-alike tables are refused by name.
#[test]
fn the_community_dataset_imports_whole() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-configs/community");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{} community files", files.len());
    // Rows each file holds (table lines after the header and separator).
    let mut expected = 0;
    let mut sources = std::collections::BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let source = text
            .lines()
            .find_map(|l| l.strip_prefix("source: "))
            .unwrap_or_else(|| panic!("{}: no source", f.display()));
        assert!(source.starts_with("https://"), "{}: {source}", f.display());
        assert!(
            text.lines().any(|l| l.starts_with("date: 20")),
            "{}: no date",
            f.display()
        );
        sources.insert(source.to_string());
        let rows = tokbench_core::llama_bench::parse_markdown(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        expected += rows.len();
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    let mut args = vec!["import".to_string()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    args.extend(["--db".into(), db.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_ok(&args);
    let n = query(
        &db,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT source) AS s FROM v_results",
    );
    assert_eq!(f(&n[0], "n"), Some(expected as f64), "{}", stderr(&out));
    assert!(expected >= 60, "{expected} community results");
    assert_eq!(f(&n[0], "s"), Some(sources.len() as f64));
    let undated = query(
        &db,
        "SELECT COUNT(*) AS n FROM run WHERE started_at NOT LIKE '20%'",
    );
    assert_eq!(f(&undated[0], "n"), Some(0.0));
    for look in std::fs::read_dir(dir.join("lookalike")).unwrap() {
        let path = look.unwrap().path();
        let out = tokbench(&[
            "import",
            path.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("compare-llama-bench") || stderr(&out).contains("-bench table")
        );
    }
}

#[test]
fn a_new_database_needs_its_directory_and_clears_what_killed_imports_left() {
    let tmp = tempfile::tempdir().unwrap();
    let r1 = fixture("r1.json");
    // A directory that is not there: said, exit 2, nothing made.
    let nowhere = tmp.path().join("nowhere").join("i.db");
    let out = tokbench(&[
        "import",
        r1.to_str().unwrap(),
        "--db",
        nowhere.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nowhere does not exist"),
        "{}",
        stderr(&out)
    );
    // What an import killed mid-way left (its process gone) is removed by the next import
    // of that database; a running import's files are not.
    let gone = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let stale = [
        tmp.path().join(format!(".i.db.import-{gone}")),
        tmp.path().join(format!(".i.db.import-{gone}-wal")),
    ];
    let live = tmp
        .path()
        .join(format!(".i.db.import-{}", std::process::id()));
    for f in stale.iter().chain([&live]) {
        std::fs::write(f, "half").unwrap();
    }
    let db = tmp.path().join("i.db");
    run_ok(&["import", r1.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert_eq!(integrity(&db), "ok");
    for f in &stale {
        assert!(!f.exists(), "{} stays", f.display());
    }
    assert!(live.exists());
}
