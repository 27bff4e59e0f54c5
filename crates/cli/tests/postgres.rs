//! PostgreSQL as the shared database, through the real binary and a real server (a
//! throwaway cluster): a run stored in SQLite and merged into PostgreSQL reads back the same
//! through `v_results`, column by column and value by value, at the precision both hold
//! (times to the microsecond, JSON as parsed values); merging again adds nothing; the
//! password is never printed.

mod common;
#[path = "../../store/tests/common/pg.rs"]
mod pg;

use common::*;
use pg::{PgCluster, PASSWORD};

fn rows_of(out: &std::process::Output) -> Vec<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// Nanoseconds since the epoch of an RFC 3339 time.
fn ns(t: &str) -> i128 {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .unix_timestamp_nanos()
}

/// `got` holds the same `v_results` rows as `want`, column by column and value by value, at
/// the precision both databases hold; `what` says where `got` came from.
fn assert_same_results(
    want: &[serde_json::Map<String, serde_json::Value>],
    got: &[serde_json::Map<String, serde_json::Value>],
    what: &str,
) {
    assert_eq!(want.len(), got.len(), "{what}");
    for (a, b) in want.iter().zip(got) {
        let (ka, kb): (Vec<&String>, Vec<&String>) = (a.keys().collect(), b.keys().collect());
        assert_eq!(ka, kb, "v_results columns {what}");
        for (col, va) in a {
            let vb = &b[col];
            match col.as_str() {
                // Row ids are each database's own.
                "result_id" => assert!(vb.as_i64().is_some(), "{col} {what}: {vb}"),
                // SQLite keeps the nanoseconds written, PostgreSQL microseconds.
                "started_at" => {
                    let (ta, tb) = (ns(va.as_str().unwrap()), ns(vb.as_str().unwrap()));
                    assert!((ta - tb).abs() <= 500, "{col} {what}: {va} vs {vb}");
                }
                // JSON as parsed values (jsonb normalises the text).
                c if c.ends_with("_json") && !va.is_null() => {
                    let pa: serde_json::Value = serde_json::from_str(va.as_str().unwrap()).unwrap();
                    let pb: serde_json::Value = serde_json::from_str(vb.as_str().unwrap()).unwrap();
                    assert!(same_json(&pa, &pb), "{col} {what}:\n{pa}\n{pb}");
                }
                _ => assert_eq!(va, vb, "{col} of {} {what}", a["test"]),
            }
        }
    }
}

/// JSON values equal as values: a number is its value, whether written `100` or `100.0`
/// (jsonb writes a whole float without its fraction; SQLite's JSON keeps it).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    close_json(a, b, 0.0)
}

/// [`same_json`], numbers equal to within `rel` of their size: SQLite's JSON functions write
/// a float with 15 significant digits (`6088021.33333333`), PostgreSQL's jsonb with all 17.
fn close_json(a: &serde_json::Value, b: &serde_json::Value, rel: f64) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= rel * x.abs().max(y.abs()),
            _ => false,
        },
        (Array(x), Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close_json(x, y, rel))
        }
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| close_json(v, w, rel)))
        }
        _ => a == b,
    }
}

#[test]
fn same_json_takes_numbers_as_values_and_nothing_else() {
    let v = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    assert!(same_json(
        &v(r#"{"a": [100.0, "x"]}"#),
        &v(r#"{"a": [100, "x"]}"#)
    ));
    assert!(!same_json(&v(r#"{"a": [100.5]}"#), &v(r#"{"a": [100]}"#)));
    assert!(!same_json(&v(r#"{"a": 1}"#), &v(r#"{"a": 1, "b": 1}"#)));
    assert!(!same_json(&v(r#"[1, 2]"#), &v(r#"[2, 1]"#)));
    assert!(!same_json(&v(r#""1""#), &v("1")));
    let (fifteen, seventeen) = (v("6088021.33333333"), v("6088021.333333333"));
    assert!(!same_json(&fifteen, &seventeen));
    assert!(close_json(&fifteen, &seventeen, 1e-14));
    assert!(!close_json(&v("6088021.3333"), &seventeen, 1e-14));
}

#[test]
fn a_run_merged_into_postgres_reads_back_the_same_and_merging_again_adds_nothing() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\", \"Q4_K_M\"", "\"pp16\", \"tg4\"", ""),
    );
    let db = tmp.path().join("box-a.db");
    let db_s = db.to_str().unwrap();
    run_ok(&["run", suite.to_str().unwrap(), "--db", db_s, "--plain"]);

    let merge = run_ok(&["merge", db_s, "--into", &url]);
    let said = stderr(&merge);
    assert!(
        said.contains("1 runs added") && said.contains("4 results added"),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "{said}");
    assert!(
        said.contains(&format!(
            "postgres://tokbench@127.0.0.1:{}/tokbench",
            pg.port
        )),
        "{said}"
    );

    let order = "SELECT * FROM v_results ORDER BY run_uuid, quant, test";
    let sqlite = query(&db, order);
    let out = run_ok(&["query", "--db", &url, "--format", "json", order]);
    assert!(!stderr(&out).contains(PASSWORD));
    let postgres = rows_of(&out);
    assert_eq!(sqlite.len(), 4);
    assert_eq!(postgres.len(), sqlite.len());
    assert_same_results(&sqlite, &postgres, "in PostgreSQL");
    // The rows behind the view came too: every repetition and telemetry sample.
    for table in [
        "repetition",
        "telemetry_sample",
        "result",
        "run",
        "host",
        "model",
    ] {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let n_sqlite = f(&query(&db, &sql)[0], "n");
        let n_pg = f(
            &rows_of(&run_ok(&["query", "--db", &url, "--format", "json", &sql]))[0],
            "n",
        );
        assert_eq!(n_sqlite, n_pg, "{table}");
        assert!(n_pg.unwrap() > 0.0, "{table}");
    }

    // And back: the server's runs into a SQLite file (one snapshot, merged like any
    // source), the same v_results as the file they came from, to the microsecond.
    let back = tmp.path().join("back.db");
    let out = run_ok(&["merge", &url, "--into", back.to_str().unwrap()]);
    assert!(!stderr(&out).contains(PASSWORD), "{}", stderr(&out));
    let returned = query(&back, order);
    assert_eq!(returned.len(), sqlite.len());
    assert_same_results(&sqlite, &returned, "back from PostgreSQL");
    let uuid = s(&sqlite[0], "run_uuid").to_string();
    for (flags, runs) in [
        (vec!["--run", uuid.as_str()], 1),
        (vec!["--host", "no-such-host"], 0),
        (vec!["--since", "2000-01-01", "--until", "2000-12-31"], 0),
    ] {
        let part = tmp.path().join(format!("part-{}.db", flags.join("_")));
        let mut args = vec!["merge", url.as_str(), "--into", part.to_str().unwrap()];
        args.extend(flags.iter().copied());
        run_ok(&args);
        let n = query(&part, "SELECT COUNT(*) AS n FROM run");
        assert_eq!(f(&n[0], "n"), Some(runs as f64), "{flags:?}");
    }
    let out = tokbench(&[
        "merge",
        db_s,
        "--into",
        back.to_str().unwrap(),
        "--host",
        "x",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // No snapshot file is left beside the destination.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("from-postgres"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Again: nothing to add; and a read-only query cannot write.
    let again = run_ok(&["merge", db_s, "--into", &url]);
    let said = stderr(&again);
    assert!(
        said.contains("0 runs added, 1 already there (0 extended), 0 results added"),
        "{said}"
    );
    let out = tokbench(&["query", "--db", &url, "DELETE FROM run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(PASSWORD));
    assert_eq!(pg.psql("tokbench", "SELECT COUNT(*) FROM run"), "1");

    // All or nothing: a value PostgreSQL will not take (a time SQLite kept as any text),
    // in the last result, after the catalog rows and the run went in: nothing stays.
    let bad = tmp.path().join("bad.db");
    std::fs::copy(&db, &bad).unwrap();
    sqlite_exec(
        &bad,
        "UPDATE result SET started_at = 'not a time' WHERE id = (SELECT MAX(id) FROM result)",
    );
    pg.create_db("atomic");
    let out = tokbench(&["merge", bad.to_str().unwrap(), "--into", &pg.url("atomic")])
        .output()
        .unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("not a time"), "{e}");
    assert_eq!(
        pg.psql(
            "atomic",
            "SELECT (SELECT COUNT(*) FROM run), (SELECT COUNT(*) FROM host), (SELECT COUNT(*) FROM model), (SELECT COUNT(*) FROM result)"
        ),
        "0|0|0|0"
    );
}

/// Runs one writing statement on a SQLite file.
fn sqlite_exec(db: &std::path::Path, sql: &str) {
    let (db, sql) = (db.to_path_buf(), sql.to_string());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            use sqlx::{ConnectOptions, Connection};
            let mut c = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .connect()
                .await
                .unwrap();
            sqlx::query(&sql).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        });
}

#[test]
fn migrate_creates_the_schema_and_a_bad_url_fails_in_one_line_without_the_password() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    let out = run_ok(&["migrate", "--db", &url]);
    let said = String::from_utf8_lossy(&out.stdout);
    let all = tokbench_store::PG_MIGRATOR.iter().count();
    assert!(
        said.contains(&format!("applied {all} migration(s)")),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "{said}");
    let out = run_ok(&["migrate", "--db", &url]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to migrate"));
    let out = tokbench(&["doctor", "--db", &url]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        said.contains("PostgreSQL, schema current, 0 runs, 0 results"),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "{said}");

    let wrong = url.replace(PASSWORD, "wrong-one");
    let out = tokbench(&["query", "--db", &wrong, "SELECT 1"])
        .output()
        .unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("wrong-one") && !e.contains(PASSWORD), "{e}");
    // An empty database: query says how to create the schema.
    pg.create_db("fresh");
    let out = tokbench(&["query", "--db", &pg.url("fresh"), "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tokbench migrate --db postgres://tokbench@"),
        "{}",
        stderr(&out)
    );
    let out = tokbench(&["doctor", "--db", &pg.url("fresh")])
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(said.contains("has no tokbench schema"), "{said}");
}

/// A suite of one quick cell: 8 of these run at once on 2 cores.
fn one_cell_suite(dir: &std::path::Path) -> std::path::PathBuf {
    write_suite(
        dir,
        "one.toml",
        "name = \"one\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 1\n[workload]\ntests = [\"tg2\"]\nrepetitions = 1\nwarmup = false\ntimeout_s = 120\n",
    )
}

#[test]
fn eight_runners_write_into_one_postgres_at_once_none_lost_none_doubled() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    let tmp = tempfile::tempdir().unwrap();
    let suite = one_cell_suite(tmp.path());
    // The model synthesized once, before the runners race for it.
    run_ok(&["model", "synth", "--arch", "tiny", "--quant", "Q8_0"]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let journal = tmp.path().join(format!("journal-{i}.db"));
            tokbench(&[
                "run",
                suite.to_str().unwrap(),
                "--db",
                &url,
                "--journal",
                journal.to_str().unwrap(),
                "--plain",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let e = stderr(&out);
        assert!(out.status.success(), "{e}");
        assert!(
            e.contains("forwarded to postgres://tokbench@127.0.0.1:"),
            "{e}"
        );
        assert!(!e.contains(PASSWORD), "{e}");
    }
    // 8 runs of one cell each, every one once; one host, one model, one workload.
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT COUNT(DISTINCT uuid), COUNT(*), (SELECT COUNT(*) FROM result),
                    (SELECT COUNT(*) FROM host), (SELECT COUNT(*) FROM model),
                    (SELECT COUNT(*) FROM workload), (SELECT COUNT(*) FROM repetition)
             FROM run WHERE status = 'ok'"
        ),
        "8|8|8|1|1|1|8"
    );
}

/// `journal` merged into the server at `url` twice: the second time adds nothing, and finds
/// its `runs` runs there.
fn merge_twice(journal: &str, url: &str, runs: usize) {
    run_ok(&["merge", journal, "--into", url]);
    let again = stderr(&run_ok(&["merge", journal, "--into", url]));
    assert!(
        again.contains(&format!("0 runs added, {runs} already there")),
        "{again}"
    );
}

#[test]
fn a_run_while_the_server_is_down_is_kept_in_the_journal_and_forwarded_once() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    run_ok(&["migrate", "--db", &url]);
    let tmp = tempfile::tempdir().unwrap();
    let suite = one_cell_suite(tmp.path());
    let journal = tmp.path().join("journal.db");
    let j = journal.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            suite.to_str().unwrap(),
            "--db",
            &url,
            "--journal",
            j,
            "--plain",
        ];
        a.extend_from_slice(extra);
        tokbench(&a).output().unwrap()
    };

    // Down for the whole run: measured and kept, exit 1, and how to forward it.
    pg.stop_server();
    let out = run(&[]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("cannot reach the server"), "{e}");
    assert!(
        e.contains(&format!(
            "tokbench merge {j} --into postgres://tokbench@127.0.0.1:"
        )),
        "{e}"
    );
    assert!(!e.contains(PASSWORD), "{e}");
    assert_eq!(
        f(
            &query(
                &journal,
                "SELECT COUNT(*) AS n FROM v_results WHERE status = 'ok'"
            )[0],
            "n"
        ),
        Some(1.0)
    );

    // Down when the run starts, back before it ends: forwarded at the end (the test's
    // half second is shorter than the run, and the forward tries for 4 s more).
    let child = {
        let a = [
            "run",
            suite.to_str().unwrap(),
            "--db",
            &url,
            "--journal",
            j,
            "--plain",
        ];
        tokbench(&a)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    pg.start_server();
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("storing in the journal"), "{e}");
    // Forwarded when its cell was stored, or at the end, if the server was not back yet.
    assert!(
        e.contains("its 1 results are there") || e.contains("1 results added"),
        "{e}"
    );

    // The first run, forwarded by hand; then everything again: nothing doubles.
    merge_twice(j, &url, 2);
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT COUNT(*), (SELECT COUNT(*) FROM result), (SELECT COUNT(*) FROM repetition) FROM run WHERE status = 'ok'"
        ),
        "2|2|2"
    );
}

/// A run of six quick cells with `reps` repetitions each into the server at `url`, through
/// a journal in `dir`, started: the process and the journal's path.
fn start_six_cells(
    dir: &std::path::Path,
    url: &str,
    reps: u32,
) -> (std::process::Child, std::path::PathBuf) {
    let suite = write_suite(
        dir,
        "six.toml",
        &format!("name = \"six\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 1\n[workload]\ntests = [\"pp16\", \"tg4\", \"pp32\", \"tg8\", \"pp64\", \"tg16\"]\nrepetitions = {reps}\nwarmup = false\ntimeout_s = 120\n"),
    );
    let journal = dir.join("journal.db");
    let child = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        url,
        "--journal",
        journal.to_str().unwrap(),
        "--plain",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    (child, journal)
}

/// Polls `done` every 20 ms until it holds; fails the test, naming `what`, after `secs`.
fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(t0.elapsed().as_secs() < secs, "waited {secs} s for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn each_cell_reaches_the_server_while_the_run_goes_on() {
    // A run of six cells: the server shows it running, with its results so far, before it
    // ends; at the end, every cell once, and the run finished there too.
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    run_ok(&["migrate", "--db", &url]);
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, journal) = start_six_cells(tmp.path(), &url, 2);
    // What the server holds of a running run, looked at until the run ends.
    let mut seen_running = std::collections::BTreeSet::new();
    while child.try_wait().unwrap().is_none() {
        let n = pg.psql(
            "tokbench",
            "SELECT COUNT(*) FROM result JOIN run ON run.id = result.run_id WHERE run.status = 'running'",
        );
        seen_running.insert(n.trim().parse::<u32>().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(
        seen_running.iter().any(|&n| (1..6).contains(&n)),
        "the server never showed the run part done: {seen_running:?}\n{e}"
    );
    assert!(e.contains("its 6 results are there"), "{e}");
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT COUNT(*), (SELECT COUNT(*) FROM result), (SELECT COUNT(DISTINCT cell_index) FROM result), (SELECT COUNT(*) FROM repetition) FROM run WHERE status = 'ok' AND finished_at IS NOT NULL"
        ),
        "1|6|6|12"
    );
    // Merging the journal again adds nothing.
    merge_twice(journal.to_str().unwrap(), &url, 1);
}

#[test]
fn a_server_that_stops_mid_run_and_comes_back_ends_with_every_cell_once() {
    // The server stops after the first cell reaches it and restarts once another cell was
    // stored: the run is not disturbed, the cells stored meanwhile wait in the journal, and
    // the run's end forwards them; nothing is doubled.
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    run_ok(&["migrate", "--db", &url]);
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, journal) = start_six_cells(tmp.path(), &url, 3);
    wait_until("a cell reached the server", 120, || {
        pg.psql("tokbench", "SELECT COUNT(*) FROM result") != "0"
    });
    // Back once a cell was stored while it was down (or the run ended).
    let stored = || {
        raw_column(&journal, "SELECT COUNT(*) FROM result").unwrap()[0]
            .parse::<u32>()
            .unwrap()
    };
    let at_stop = stored();
    pg.stop_server();
    wait_until(
        "a cell stored after the stop, or the run's end",
        120,
        || stored() != at_stop || child.try_wait().unwrap().is_some(),
    );
    pg.start_server();
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    // The cell stored while the server was down was forwarded once it came back (a
    // forward waits up to 10 s for a connection), or at the run's end.
    assert!(e.contains("its 6 results are there"), "{e}");
    assert!(!e.contains(PASSWORD), "{e}");
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT COUNT(*), (SELECT COUNT(*) FROM result), (SELECT COUNT(DISTINCT cell_index) FROM result), (SELECT COUNT(*) FROM repetition) FROM run WHERE status = 'ok'"
        ),
        "1|6|6|18"
    );
}

#[test]
fn a_finished_cell_replaces_an_interrupted_one_and_later_verdicts_follow() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp16\", \"tg4\"", ""),
    );
    let db = tmp.path().join("box.db");
    let db_s = db.to_str().unwrap();
    run_ok(&["run", suite.to_str().unwrap(), "--db", db_s, "--plain"]);

    // What a forward of the run cut short held: the run and its last cell interrupted,
    // that cell without repetitions.
    let cut = tmp.path().join("cut.db");
    std::fs::copy(&db, &cut).unwrap();
    for sql in [
        "UPDATE run SET status = 'interrupted', finished_at = NULL",
        "DELETE FROM repetition WHERE result_id = (SELECT MAX(id) FROM result)",
        "UPDATE result SET status = 'interrupted', decode_tps = NULL, prefill_tps = NULL WHERE id = (SELECT MAX(id) FROM result)",
    ] {
        sqlite_exec(&cut, sql);
    }
    run_ok(&["merge", cut.to_str().unwrap(), "--into", &url]);
    assert_eq!(pg.psql("tokbench", "SELECT status FROM run"), "interrupted");

    // The run resumed and finished: its finished cell replaces the interrupted one.
    let out = run_ok(&["merge", db_s, "--into", &url]);
    assert!(
        stderr(&out).contains("1 already there (1 extended)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT (SELECT status FROM run), (SELECT COUNT(*) FROM result WHERE status = 'ok'),
                    (SELECT COUNT(*) FROM result), (SELECT COUNT(*) FROM repetition)"
        ),
        format!(
            "ok|2|2|{}",
            raw_column(&db, "SELECT COUNT(*) FROM repetition").unwrap()[0]
        )
    );

    // A check after the run was forwarded: its verdicts follow, once.
    let _ = tokbench(&["check", "--db", db_s]).output().unwrap();
    let verdicts = raw_column(&db, "SELECT COUNT(*) FROM verdict").unwrap()[0].clone();
    assert_ne!(verdicts, "0");
    run_ok(&["merge", db_s, "--into", &url]);
    run_ok(&["merge", db_s, "--into", &url]);
    assert_eq!(
        pg.psql("tokbench", "SELECT COUNT(*) FROM verdict"),
        verdicts
    );
}

#[test]
fn prune_on_the_server_leaves_what_prune_on_the_file_leaves() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp64\", \"tg16\"", ""),
    );
    let db = tmp.path().join("box.db");
    let db_s = db.to_str().unwrap();
    run_ok(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db_s,
        "--plain",
        "--telemetry-interval-ms",
        "20",
    ]);
    run_ok(&["merge", db_s, "--into", &url]);
    let samples = raw_column(&db, "SELECT COUNT(*) FROM telemetry_sample").unwrap()[0].clone();
    assert_ne!(samples, "0", "the run took no telemetry samples");
    assert_eq!(
        pg.psql("tokbench", "SELECT COUNT(*) FROM telemetry_sample"),
        samples
    );

    // A dry run counts and changes nothing; its count is the file's.
    let dry = |db: &str| {
        let out = run_ok(&["prune", "--older-than", "0", "--dry-run", "--db", db]);
        let said = stderr(&out);
        said[said.find("would reduce").expect(&said)..]
            .split(" started before")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(dry(&url), dry(db_s));
    assert!(dry(&url).contains(&format!("would reduce {samples} telemetry samples")));
    assert_eq!(
        pg.psql("tokbench", "SELECT COUNT(*) FROM telemetry_sample"),
        samples
    );

    // Pruned on each side, the two read back the same (the summaries included), and no
    // sample is left on either.
    run_ok(&["prune", "--older-than", "0", "--db", db_s]);
    let out = run_ok(&["prune", "--older-than", "0", "--vacuum", "--db", &url]);
    let said = stderr(&out);
    assert!(said.contains("vacuumed"), "{said}");
    assert!(!said.contains(PASSWORD), "{said}");
    assert_eq!(
        pg.psql("tokbench", "SELECT COUNT(*) FROM telemetry_sample"),
        "0"
    );
    assert_eq!(
        raw_column(&db, "SELECT COUNT(*) FROM telemetry_sample").unwrap()[0],
        "0"
    );
    let order = "SELECT * FROM v_results ORDER BY run_uuid, quant, test";
    let file = rows_of(&run_ok(&["query", "--db", db_s, "--format", "json", order]));
    let server = rows_of(&run_ok(&["query", "--db", &url, "--format", "json", order]));
    assert_same_results(&file, &server, "after prune on each");
    // The summaries themselves (not in v_results): the same entries, in the same order, the
    // same figures at the 15 digits SQLite's JSON keeps.
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    let file_summaries = raw_column(
        &db,
        "SELECT json_extract(telemetry_json, '$.samples_pruned') FROM result ORDER BY cell_index",
    )
    .unwrap();
    let server_summaries = pg.psql(
        "tokbench",
        "SELECT telemetry_json->'samples_pruned' FROM result ORDER BY cell_index",
    );
    let server_summaries: Vec<&str> = server_summaries.lines().collect();
    assert_eq!(file_summaries.len(), 2);
    assert_eq!(file_summaries.len(), server_summaries.len());
    for (a, b) in file_summaries.iter().zip(&server_summaries) {
        let (a, b) = (parse(a), parse(b));
        assert!(!a.as_array().unwrap().is_empty(), "{a}");
        assert!(close_json(&a, &b, 1e-14), "\n{a}\n{b}");
    }
    // A second prune finds nothing to do.
    let out = run_ok(&["prune", "--older-than", "0", "--db", &url]);
    assert!(
        stderr(&out).contains("reduced 0 telemetry samples"),
        "{}",
        stderr(&out)
    );
}

/// `s` with every time's fraction of a second dropped (`12:34:56.789Z` → `12:34:56Z`):
/// SQLite keeps the nanoseconds tokbench wrote, PostgreSQL rounds them to microseconds.
fn whole_seconds(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let is_fraction = b[i] == b'.'
            && i >= 3
            && b[i - 3] == b':'
            && b[i - 2].is_ascii_digit()
            && b[i - 1].is_ascii_digit()
            && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if is_fraction {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        let c = s[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

#[test]
fn whole_seconds_drops_only_the_fractions_of_times() {
    assert_eq!(
        whole_seconds("2026-12-07T05:30:01.123456789Z,0.5,12:3.25,t 01:02:03.5+00:00"),
        "2026-12-07T05:30:01Z,0.5,12:3.25,t 01:02:03+00:00"
    );
}

/// `tokbench ARGS` with `$TMPDIR` at `tmpdir` (where a server's snapshot goes): its
/// output, after checking it succeeded (or exited `code`) and never printed the password.
fn on(tmpdir: &std::path::Path, args: &[&str], code: i32) -> std::process::Output {
    let out = tokbench(args).env("TMPDIR", tmpdir).output().unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {e}");
    assert!(!e.contains(PASSWORD), "{args:?}: {e}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));
    out
}

#[test]
fn every_command_reads_a_server_as_it_reads_the_file_it_came_from() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    let tmp = tempfile::tempdir().unwrap();
    let snapshots = tmp.path().join("tmpdir");
    std::fs::create_dir(&snapshots).unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp16\", \"tg4\"", ""),
    );
    let db = tmp.path().join("box.db");
    let db_s = db.to_str().unwrap();
    // Two runs (for compare and check) and a llama-bench import, in the file; the import
    // into the server directly, then the file merged there.
    for _ in 0..2 {
        run_ok(&["run", suite.to_str().unwrap(), "--db", db_s, "--plain"]);
    }
    let imported = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/llama-bench/r1.json");
    let imported = imported.to_str().unwrap();
    run_ok(&["import", imported, "--db", db_s]);
    let out = on(&snapshots, &["import", imported, "--db", &url], 0);
    let said = stderr(&out);
    assert!(said.contains("1 runs added"), "{said}");
    let out = on(&snapshots, &["import", imported, "--db", &url], 0);
    assert!(
        stderr(&out).contains("already imported"),
        "{}",
        stderr(&out)
    );
    let out = run_ok(&["merge", db_s, "--into", &url]);
    let said = stderr(&out);
    assert!(said.contains("2 runs added, 1 already there"), "{said}");

    // The same answer from the server as from the file, command by command.
    let same = |args: &[&str]| {
        let mut on_file = args.to_vec();
        on_file.extend(["--db", db_s]);
        let mut on_server = args.to_vec();
        on_server.extend(["--db", url.as_str()]);
        let a = run_ok(&on_file);
        let b = on(&snapshots, &on_server, 0);
        let (a, b) = (
            whole_seconds(&String::from_utf8_lossy(&a.stdout)),
            whole_seconds(&String::from_utf8_lossy(&b.stdout)),
        );
        assert!(!a.trim().is_empty(), "{args:?}");
        assert_eq!(a, b, "{args:?}");
        assert!(
            stderr(&on(&snapshots, &on_server, 0)).contains("read in one snapshot"),
            "{args:?}"
        );
    };
    same(&["results", "-o", "csv"]);
    same(&["results", "--run", "previous", "-o", "md"]);
    same(&["compare", "previous", "latest", "-o", "json"]);
    same(&["fit", "-o", "json"]);

    // report: the same results and tables, from the server's name instead of the file's.
    let (dir_a, dir_b) = (tmp.path().join("rep-file"), tmp.path().join("rep-server"));
    run_ok(&["report", "--db", db_s, "--out", dir_a.to_str().unwrap()]);
    on(
        &snapshots,
        &["report", "--db", &url, "--out", dir_b.to_str().unwrap()],
        0,
    );
    let shown = format!("postgres://tokbench@127.0.0.1:{}/tokbench", pg.port);
    for file in ["results.csv", "leaderboard.md", "results.json"] {
        let a = std::fs::read_to_string(dir_a.join(file)).unwrap();
        let b = std::fs::read_to_string(dir_b.join(file)).unwrap();
        assert!(!b.contains(PASSWORD), "{file}");
        assert_eq!(
            whole_seconds(&a.replace(db_s, &shown)),
            whole_seconds(&b),
            "{file}"
        );
    }

    // check: judged on the server's snapshot, its verdicts stored on the server, the same
    // as the file's own check stores there.
    let code = tokbench(&["check", "--db", db_s, "--remeasure", "0"])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap();
    let out = on(
        &snapshots,
        &["check", "--db", &url, "--remeasure", "0", "-o", "json"],
        code,
    );
    assert!(stderr(&out).contains("verdicts"), "{}", stderr(&out));
    let verdicts = "SELECT metric, kind FROM verdict ORDER BY metric, kind";
    let want: Vec<String> = raw_column(
        &db,
        &verdicts.replace("metric, kind", "metric || '|' || kind"),
    )
    .unwrap();
    assert!(!want.is_empty());
    assert_eq!(
        pg.psql("tokbench", verdicts).lines().collect::<Vec<_>>(),
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
    on(
        &snapshots,
        &["check", "--db", &url, "--accept", "latest"],
        0,
    );
    assert_eq!(
        pg.psql("tokbench", "SELECT COUNT(*) FROM change_point"),
        "2"
    );
    // A run the server lacks is named with the server's URL, not the snapshot's file.
    let out = on(
        &snapshots,
        &["results", "--db", &url, "--run", "ffffffff"],
        2,
    );
    assert!(stderr(&out).contains(&shown), "{}", stderr(&out));
    // Every snapshot is gone.
    let left: Vec<_> = std::fs::read_dir(&snapshots).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A runner SIGKILLed while it forwards its cell (held mid-transaction by another session's
/// lock on `result`): nothing of the run is on the server, the journal holds what was
/// measured, and forwarding it again stores it once, as it was when the runner died.
#[test]
fn a_runner_killed_mid_forward_leaves_nothing_half_stored_and_forwards_once_later() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    let tmp = tempfile::tempdir().unwrap();
    let suite = one_cell_suite(tmp.path());
    let journal = tmp.path().join("journal.db");
    let j = journal.to_str().unwrap();
    run_ok(&["migrate", "--db", &url]);
    // SHARE blocks inserts, not reads: the runner starts, measures, and stops at its
    // forward's first insert into `result`.
    let mut holder = pg.psql_child(
        "tokbench",
        "BEGIN; LOCK TABLE result IN SHARE MODE; SELECT pg_sleep(300); COMMIT;",
    );
    let mut runner = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        &url,
        "--journal",
        j,
        "--plain",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'";
    wait_until("the forward to wait on the lock", 120, || {
        assert!(
            runner.try_wait().unwrap().is_none(),
            "the runner ended before its forward waited on the lock"
        );
        pg.psql("tokbench", waiting) == "1"
    });
    runner.kill().unwrap();
    runner.wait().unwrap();
    pg.psql(
        "tokbench",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300)%' AND pid <> pg_backend_pid()",
    );
    let _ = holder.wait();
    // The killed runner's session ends (its transaction rolled back) once it gets the lock
    // and finds its client gone.
    let others = "SELECT COUNT(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
    wait_until("the killed runner's session to end", 60, || {
        pg.psql("tokbench", others) == "0"
    });
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT (SELECT COUNT(*) FROM run), (SELECT COUNT(*) FROM result), (SELECT COUNT(*) FROM repetition)"
        ),
        "0|0|0"
    );
    assert_eq!(
        raw_column(&journal, "SELECT COUNT(*) FROM result WHERE status = 'ok'").unwrap(),
        ["1"]
    );
    // Killed before it could mark the run finished: the journal says it is still running.
    assert_eq!(
        raw_column(&journal, "SELECT status FROM run").unwrap(),
        ["running"]
    );
    // Restarted: the forward the message names, twice.
    merge_twice(j, &url, 1);
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT (SELECT COUNT(*) FROM run WHERE status = 'running'), (SELECT COUNT(*) FROM result), (SELECT COUNT(*) FROM repetition)"
        ),
        "1|1|1"
    );
}
