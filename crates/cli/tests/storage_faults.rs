//! A database that stops taking writes: a write failing mid-run (a file size limit, and a
//! real full disk: a tiny tmpfs), and a database the user cannot write. Each must give a
//! clear error that names the database and what to do, leave every result stored before
//! intact (whole cells, `integrity_check` ok), stop the backends, and let
//! `tokbench run --resume` finish the run once the cause is gone.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;

use common::*;

const ONE: &str =
    "name = \"one\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 1\n\
                   [workload]\ntests = [\"tg8\"]\nrepetitions = 2\n";
const SIX: &str = "name = \"six\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 1\n\
                   [workload]\ntests = [\"tg8\", \"tg16\", \"pp16\", \"pp32\", \"tg4\", \"pp8\"]\nrepetitions = 2\n";

/// A database holding one finished run of one cell.
fn seeded(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("r.db");
    let one = write_suite(dir, "one.toml", ONE);
    run_ok(&[
        "run",
        one.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ]);
    db
}

fn the_first_run_is_intact(db: &Path) {
    assert_eq!(integrity(db), "ok");
    let rows = query(
        db,
        "SELECT status, n_reps FROM v_results WHERE run_uuid = (SELECT uuid FROM run ORDER BY id LIMIT 1)",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(s(&rows[0], "status"), "ok");
    assert_eq!(f(&rows[0], "n_reps"), Some(2.0));
}

/// The run a failed `tokbench run` started, from its error message.
fn resume_uuid(out: &Output) -> String {
    let err = stderr(out);
    let at = err
        .find("--resume ")
        .unwrap_or_else(|| panic!("no resume command: {err}"));
    err[at + "--resume ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// After `--resume`: the run is finished with every cell once.
fn resume_finishes(db: &Path, uuid: &str) {
    let out = tokbench(&[
        "run",
        "--resume",
        uuid,
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = query(
        db,
        &format!("SELECT test, COUNT(*) AS n, MIN(status) AS st FROM v_results WHERE run_uuid = '{uuid}' GROUP BY test"),
    );
    assert_eq!(rows.len(), 6, "{rows:?}");
    for r in &rows {
        assert_eq!(f(r, "n"), Some(1.0), "each cell once: {r:?}");
        assert_eq!(s(r, "st"), "ok", "{r:?}");
    }
    let run = query(db, &format!("SELECT status FROM run WHERE uuid = '{uuid}'"));
    assert_eq!(s(&run[0], "status"), "ok");
    the_first_run_is_intact(db);
}

/// After a run stopped by its database: the first run intact, whole cells only (fewer
/// than six, each with its repetitions), then `--resume` finishes it.
fn stopped_then_resumed(db: &Path, out: &Output) {
    let uuid = resume_uuid(out);
    the_first_run_is_intact(db);
    let stored = query(
        db,
        &format!("SELECT status, n_reps FROM v_results WHERE run_uuid = '{uuid}'"),
    );
    assert!(stored.len() < 6, "{stored:?}");
    for r in &stored {
        assert_eq!((s(r, "status"), f(r, "n_reps")), ("ok", Some(2.0)), "{r:?}");
    }
    resume_finishes(db, &uuid);
}

#[test]
fn a_write_failing_mid_run_stops_it_keeps_what_was_stored_and_resume_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let db = seeded(tmp.path());
    let six = write_suite(tmp.path(), "six.toml", SIX);
    let marker = format!("TOKBENCH_TEST_MARK=fsize-{}", std::process::id());
    let (mk, mv) = marker.split_once('=').unwrap();
    // No file tokbench writes may grow past 96 KiB: the write-ahead log fills after the
    // run has begun and a cell or two are stored. SIGXFSZ is ignored, so the write fails
    // with EFBIG, as SQLite sees a failing disk.
    let mut cmd = tokbench(&[
        "run",
        six.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ]);
    cmd.env(mk, mv);
    // SAFETY: setrlimit and signal are async-signal-safe; they only change this child.
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::resource::{setrlimit, Resource};
            use nix::sys::signal::{signal, SigHandler, Signal};
            setrlimit(Resource::RLIMIT_FSIZE, 96 * 1024, 96 * 1024)?;
            signal(Signal::SIGXFSZ, SigHandler::SigIgn)?;
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("a result could not be stored in") && err.contains("a write failed"),
        "{err}"
    );
    assert!(
        processes_with_env(&marker).is_empty(),
        "a backend outlived tokbench"
    );
    stopped_then_resumed(&db, &out);
    report_fault(
        "database",
        "mid-run",
        "write fails (file size limit)",
        "run interrupted",
    );
}

/// A real full disk: the database on a 320 KiB tmpfs, in a mount namespace of its own
/// (nothing mounted is left behind, whatever happens).
#[test]
#[ignore = "needs root (a tmpfs mounted in a private mount namespace, with unshare(1))"]
fn a_full_disk_mid_run_stops_it_keeps_what_was_stored_and_resume_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = seeded(tmp.path());
    let six = write_suite(tmp.path(), "six.toml", SIX);
    let disk = tmp.path().join("disk");
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&disk).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    let script = "mount -t tmpfs -o size=320k tmpfs \"$DISK\" || exit 90\n\
                  cp \"$SEED\" \"$DISK/r.db\" || exit 91\n\
                  \"$TB\" run \"$SIX\" --db \"$DISK/r.db\" --plain\n\
                  rc=$?\n\
                  df -k \"$DISK\" >&2\n\
                  cp \"$DISK\"/r.db* \"$OUT\"/\n\
                  exit $rc\n";
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("DISK", &disk)
        .env("SEED", &seed)
        .env("TB", bin())
        .env("SIX", &six)
        .env("OUT", &out_dir)
        .env("TOKBENCH_CACHE", cache_dir())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        !matches!(out.status.code(), Some(90 | 91)),
        "could not set up the tmpfs: {err}"
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the disk holding it is full"),
        "SQLite's SQLITE_FULL, told as such: {err}"
    );
    let db = out_dir.join("r.db");
    stopped_then_resumed(&db, &out);
    report_fault(
        "database",
        "mid-run",
        "disk full (tmpfs)",
        "run interrupted",
    );
}

#[test]
fn a_read_only_database_is_refused_clearly_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let db = seeded(&dir);
    let one = write_suite(tmp.path(), "one.toml", ONE);
    // Read-only file in a read-only folder. Root writes through permissions, so as root
    // tokbench runs as `nobody` (who can still read the model cache and the suite).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = std::fs::read(&db).unwrap();
    let mut cmd = tokbench(&[
        "run",
        one.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ]);
    if nix::unistd::geteuid().is_root() {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot open the results database {}",
            db.display()
        )) && err.contains("read-only for this user"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "not a byte changed");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    the_first_run_is_intact(&db);
    report_fault("database", "open", "read-only", "refused");
}
