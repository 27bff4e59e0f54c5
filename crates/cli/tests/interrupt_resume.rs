//! SIGINT stops the engine child, marks the run interrupted and exits 130; `--resume`
//! finishes the remaining cells without measuring finished ones again.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigint_interrupts_and_resume_finishes_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q4_K_M\"", "\"pp32\", \"tg8\", \"pp16\"", ""),
    );
    let db = tmp.path().join("r.db");
    let marker = format!("TOKBENCH_TEST_MARK={}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    // Cell 1 hangs in its first repetition, so the run is surely busy when SIGINT comes.
    let child = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .env("TOKBENCH_ENGINE_FAULT", "test=1,rep=0,mode=hang")
    .env(k, v)
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait (bounded) until the first cell is stored.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the first cell was never stored");
        if db.exists() {
            let out = tokbench(&[
                "query",
                "--db",
                db.to_str().unwrap(),
                "--format",
                "csv",
                "SELECT COUNT(*) FROM result",
            ])
            .output()
            .unwrap();
            if String::from_utf8_lossy(&out.stdout).lines().nth(1) == Some("1") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tokbench run --resume"),
        "{}",
        stderr(&out)
    );
    // No engine child outlives tokbench (bounded wait for the kernel to reap it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_with_env(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            processes_with_env(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = &query(&db, "SELECT uuid, status FROM run")[0];
    assert_eq!(s(run, "status"), "interrupted");
    let uuid = s(run, "uuid").to_string();
    let before = query(
        &db,
        "SELECT cell_index, status FROM result ORDER BY cell_index",
    );
    // Cell 0 measured; nothing measured after the interrupt. The cells after it are either
    // absent or marked interrupted: when SIGINT comes before the engine has started cell 1
    // (the test waits only for cell 0's row), no cell is in flight and every cell still
    // queued for that engine is marked (seen 1 run in 6 with another test beside it).
    assert_eq!(s(&before[0], "status"), "ok");
    assert!(before.len() <= 3, "{before:?}");
    assert!(
        before[1..].iter().all(|r| s(r, "status") == "interrupted"),
        "{before:?}"
    );

    // Resume: only what is missing runs; the interrupted cell is measured again.
    let out = run_ok(&[
        "run",
        "--resume",
        &uuid,
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ]);
    assert!(
        stderr(&out).contains("1 already stored"),
        "{}",
        stderr(&out)
    );
    let after = query(&db, "SELECT cell_index, status, n FROM (SELECT cell_index, status, COUNT(*) OVER (PARTITION BY cell_index) AS n FROM result) ORDER BY cell_index");
    assert_eq!(after.len(), 3, "{after:?}");
    for (i, r) in after.iter().enumerate() {
        assert_eq!(f(r, "cell_index"), Some(i as f64));
        assert_eq!(s(r, "status"), "ok");
        assert_eq!(f(r, "n"), Some(1.0));
    }
    assert_eq!(s(&query(&db, "SELECT status FROM run")[0], "status"), "ok");
    assert_eq!(integrity(&db), "ok");
    report_fault("tokbench", "engine cell", "SIGINT", "interrupted, exit 130");
}

#[test]
fn sigint_during_synthesis_leaves_no_half_written_model() {
    let tmp = tempfile::tempdir().unwrap();
    // A cache of its own, so the model is surely synthesized here; `small` (~246M
    // parameters, ~0.5 GB at F16) takes long enough to be caught in the middle.
    let cache = tmp.path().join("cache");
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"tg8\"", "").replace("synth = \"tiny\"", "synth = \"small\""),
    );
    let db = tmp.path().join("r.db");
    let child = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .env("TOKBENCH_CACHE", &cache)
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let models = cache.join("models");
    let partials = || -> Vec<String> {
        std::fs::read_dir(&models)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".partial"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while partials().is_empty() {
        assert!(Instant::now() < deadline, "synthesis never began");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("removed the unfinished"),
        "{}",
        stderr(&out)
    );
    assert_eq!(partials(), Vec::<String>::new());
    // Nor a finished-looking model that is not whole.
    let done: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(done.iter().all(|n| !n.contains("Q8_0")), "{done:?}");
}
