//! tokbench itself killed with SIGKILL at random moments of a run, again and again, each
//! time resumed: the database passes its integrity check after every kill, no result is
//! half written, nothing stored is lost, and `--resume` finishes the remaining cells
//! without storing a finished one twice. Rounds: `TOKBENCH_KILL_ROUNDS` (default 10;
//! `scripts/kill-test.sh` runs 50 and prints the figures).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

/// (cell, source) pairs stored for `uuid`, and whether any is duplicated or incomplete.
fn stored(db: &std::path::Path, uuid: &str) -> (BTreeSet<(i64, String)>, usize, usize) {
    let rows = query(
        db,
        &format!(
            "SELECT r.cell_index AS cell, r.metric_source AS src, r.status,
                    (SELECT COUNT(*) FROM repetition p WHERE p.result_id = r.id) AS reps,
                    r.repetitions_expected AS expected
             FROM result r JOIN run ON run.id = r.run_id WHERE run.uuid = '{uuid}'"
        ),
    );
    let mut set = BTreeSet::new();
    let mut dup = 0;
    let mut half = 0;
    for r in &rows {
        if !set.insert((f(r, "cell").unwrap() as i64, s(r, "src").to_string())) {
            dup += 1;
        }
        if s(r, "status") == "ok" && f(r, "reps") != f(r, "expected") {
            half += 1;
        }
    }
    (set, dup, half)
}

fn rounds(default: u32) -> u32 {
    std::env::var("TOKBENCH_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigkill_at_random_moments_then_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "k.toml",
        &quick_suite(
            "\"Q8_0\"",
            "\"pp64\", \"tg16\", \"pp32\", \"tg8\", \"pp16\"",
            "",
        ),
    );
    run_ok(&["model", "synth", "--arch", "tiny", "--quant", "Q8_0"]);
    kill_and_resume("engine", &suite, 5, rounds(10), 1200, false);
}

/// The same with llama-bench and llama-server cells in the suite: tokbench killed while a
/// server starts, while it answers, while llama-bench measures. A server cell is two rows
/// (client and server), stored together or not at all.
#[test]
fn sigkill_at_random_moments_with_llama_bench_and_llama_server_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "k.toml",
        "name = \"kill-tools\"\nbackends = [\"engine\", \"llama-bench\", \"llama-server\"]\n\
         [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 1\n\
         [workload]\ntests = [\"pp32\", \"tg8\"]\nrepetitions = 2\nwarmup = false\ntimeout_s = 60\n\
         [serve]\nrequests_per_stream = 2\n",
    );
    run_ok(&["model", "synth", "--arch", "tiny", "--quant", "Q8_0"]);
    // 2 engine + 2 llama-bench + 2 server cells × (client, server) rows.
    kill_and_resume("tools", &suite, 8, rounds(10), 1500, true);
}

/// Kills `tokbench run SUITE` (or its `--resume`) at pseudo-random moments below
/// `max_ms`, `rounds` times, checking the database after each kill; `rows` is how many
/// (cell, source) rows a finished run holds.
fn kill_and_resume(
    name: &str,
    suite: &std::path::Path,
    rows: usize,
    rounds: u32,
    max_ms: u64,
    tools: bool,
) {
    let cells = rows;
    let db = suite.with_extension("db");
    let marker = format!("TOKBENCH_TEST_MARK=kill-{name}-{}", std::process::id());
    let (mk, mv) = marker.split_once('=').unwrap();
    // A fixed sequence of moments (a linear congruential generator: reproducible).
    let mut seed: u64 = 0x5eed;
    let mut next_ms = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % max_ms
    };
    let (mut kills, mut integrity_failures, mut lost, mut duplicated, mut half_written) =
        (0u32, 0u32, 0usize, 0usize, 0usize);
    let mut finished_runs = 0u32;
    let mut current: Option<String> = None;
    let mut before: BTreeSet<(i64, String)> = BTreeSet::new();
    for _ in 0..rounds {
        let mut args = vec!["run".to_string()];
        match &current {
            Some(u) => args.extend(["--resume".into(), u.clone()]),
            None => args.push(suite.to_str().unwrap().into()),
        }
        args.extend(["--db".into(), db.to_str().unwrap().into(), "--plain".into()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = if tools {
            with_tools(&argv)
        } else {
            tokbench(&argv)
        };
        let mut child = child
            .env(mk, mv)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let at = Duration::from_millis(next_ms());
        let t = Instant::now();
        let mut exited = None;
        while t.elapsed() < at {
            if let Some(s) = child.try_wait().unwrap() {
                exited = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if exited.is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // The engine child dies with tokbench (PR_SET_PDEATHSIG): give the kernel a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !processes_with_env(&marker).is_empty() {
            assert!(
                Instant::now() < deadline,
                "a process outlived tokbench's SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if !db.exists() {
            continue;
        }
        if integrity(&db) != "ok" {
            integrity_failures += 1;
        }
        // Killed while a new database was being migrated: no run began yet.
        if !schema_is_current(&db) {
            continue;
        }
        let newest = query(&db, "SELECT uuid, status FROM run ORDER BY id DESC LIMIT 1");
        let Some(run) = newest.first() else { continue };
        let uuid = s(run, "uuid").to_string();
        if current.as_deref() != Some(uuid.as_str()) {
            before.clear();
        }
        let (now, dup, half) = stored(&db, &uuid);
        lost += before.difference(&now).count();
        duplicated += dup;
        half_written += half;
        if s(run, "status") == "ok" || s(run, "status") == "failed" {
            assert_eq!(now.len(), cells, "a finished run holds every cell once");
            finished_runs += 1;
            current = None;
            before.clear();
        } else {
            current = Some(uuid);
            before = now;
        }
    }
    // Finish the last one.
    if let Some(u) = &current {
        let out = if tools {
            with_tools(&[
                "run",
                "--resume",
                u,
                "--db",
                db.to_str().unwrap(),
                "--plain",
            ])
        } else {
            tokbench(&[
                "run",
                "--resume",
                u,
                "--db",
                db.to_str().unwrap(),
                "--plain",
            ])
        }
        .output()
        .unwrap();
        assert!(out.status.success(), "resume: {}", stderr(&out));
        let (now, dup, half) = stored(&db, u);
        lost += before.difference(&now).count();
        duplicated += dup;
        half_written += half;
        assert_eq!(now.len(), cells);
        finished_runs += 1;
    }
    eprintln!(
        "kill test ({name}): {rounds} rounds, {kills} SIGKILLs of tokbench, {finished_runs} runs finished; \
         integrity failures {integrity_failures}, results lost {lost}, duplicated {duplicated}, half written {half_written}"
    );
    assert_eq!(
        (integrity_failures, lost, duplicated, half_written),
        (0, 0, 0, 0)
    );
    assert!(kills > 0);
    assert_eq!(integrity(&db), "ok");
}
