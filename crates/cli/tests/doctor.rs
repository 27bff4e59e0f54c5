//! `tokbench doctor` on real databases: a sound one, one with a run left `running` (its
//! tokbench killed), and a file that is not a database. It never changes what it checks.

mod common;

use common::*;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

fn doctor(db: &std::path::Path) -> (Option<i32>, String) {
    let out = tokbench(&["doctor", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn doctor_reports_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"tg8\"", ""),
    );
    let db = tmp.path().join("d.db");
    run_ok(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ]);

    let (code, text) = doctor(&db);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("integrity ok, 1 runs, 1 results"), "{text}");
    assert!(text.contains("up to date"), "{text}");
    assert!(text.contains("engine: built in"), "{text}");
    assert!(text.contains("telemetry can measure:"), "{text}");
    assert!(text.contains("nothing to fix"), "{text}");

    // A run its tokbench never finished (killed): doctor names it and the resume command.
    {
        let mut c = SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE run SET status = 'running', finished_at = NULL")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let uuid = s(&query(&db, "SELECT uuid FROM run")[0], "uuid").to_string();
    let before = std::fs::read(&db).unwrap();
    let (code, text) = doctor(&db);
    assert_eq!(code, Some(0), "a note, not a failure: {text}");
    assert!(
        text.contains(&format!("tokbench run --resume {uuid}")),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "doctor wrote to the database"
    );

    // Not a database at all: a fix, exit 1.
    let junk = tmp.path().join("junk.db");
    std::fs::write(&junk, b"this is not sqlite").unwrap();
    let (code, text) = doctor(&junk);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("[fix]") && text.contains("not a database"),
        "{text}"
    );
    assert_eq!(std::fs::read(&junk).unwrap(), b"this is not sqlite");

    // No database yet: a note.
    let (code, text) = doctor(&tmp.path().join("none.db"));
    assert_eq!(code, Some(0));
    assert!(text.contains("does not exist yet"), "{text}");
}

/// `doctor` says which accelerator the binary was built for and which GPUs the machine has:
/// this CPU build, on a machine whose NVML (replayed: the synthetic H200 recording) shows
/// an H200, is told how to rebuild, and doctor exits 1; without a GPU it is content.
#[test]
fn doctor_matches_the_build_against_the_gpus_it_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("none.db");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../telemetry/tests/fixtures/nvml/h200-synthetic.json");
    let out = tokbench(&["doctor", "--db", db.to_str().unwrap()])
        .env("TOKBENCH_NVML_REPLAY", &fixture)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if cfg!(feature = "cuda") {
        assert!(text.contains("engine built for: cuda"), "{text}");
        return;
    }
    assert!(text.contains("engine built for: cpu"), "{text}");
    assert!(text.contains("GPUs seen: NVIDIA H200"), "{text}");
    // What the engine's llama.cpp sees: the CPU (a CPU build lists no GPU device).
    let line = text
        .lines()
        .find(|l| l.contains("engine devices (llama.cpp): "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("[ok]") && line.contains("CPU ("), "{line}");
    assert!(
        text.contains("[fix] this is a CPU build on a machine with NVIDIA H200")
            && text.contains("--features cuda"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1), "{text}");

    if !std::path::Path::new("/proc/driver/nvidia").exists()
        && !std::path::Path::new("/sys/class/drm").exists()
    {
        let out = tokbench(&["doctor", "--db", db.to_str().unwrap()])
            .env_remove("TOKBENCH_NVML_REPLAY")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("GPUs seen: none (NVIDIA: no NVIDIA driver"),
            "{text}"
        );
        assert!(!text.contains("this is a CPU build"), "{text}");
    }
}
