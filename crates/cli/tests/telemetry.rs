//! Telemetry through the real binary on this machine (no GPU): the probe names what it
//! cannot see and why, a run stores per-phase process memory and raw samples, power stays
//! NULL with its reason, and telemetry can be turned off.

mod common;

use common::*;

#[test]
fn the_probe_says_what_this_machine_cannot_measure_and_why() {
    let out = run_ok(&["telemetry", "probe", "--format", "json"]);
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let by = |name: &str| {
        reports
            .iter()
            .find(|r| r["source"] == name)
            .unwrap_or_else(|| panic!("no {name} report: {reports:?}"))
    };
    assert_eq!(by("procfs")["metrics"]["rss_bytes"], "ok");
    // Whatever this machine is, every metric is either "ok" or has a kind and a reason.
    for r in &reports {
        for (metric, status) in r["metrics"].as_object().unwrap() {
            assert!(
                status == "ok"
                    || (status["kind"].is_string()
                        && !status["reason"].as_str().unwrap().is_empty()),
                "{} {metric}: {status}",
                r["source"]
            );
        }
    }
    if !std::path::Path::new("/proc/driver/nvidia").exists() {
        assert_eq!(
            by("nvml")["metrics"]["power_w"]["kind"],
            "no_device",
            "{}",
            by("nvml")
        );
    }
}

#[test]
fn a_run_stores_memory_per_phase_and_says_why_power_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp256\", \"tg64\"", ""),
    );
    let db = tmp.path().join("t.db");
    run_ok(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--telemetry-interval-ms",
        "20",
    ]);
    let phases = query(
        &db,
        "SELECT phase, COUNT(*) AS n, MAX(value) AS peak FROM telemetry_sample WHERE metric = 'rss_bytes' GROUP BY phase",
    );
    let n = |phase: &str| {
        phases
            .iter()
            .find(|r| s(r, "phase") == phase)
            .and_then(|r| f(r, "n"))
            .unwrap_or(0.0)
    };
    assert!(n("prefill") >= 1.0 && n("decode") >= 1.0, "{phases:?}");
    for r in phases
        .iter()
        .filter(|r| matches!(s(r, "phase"), "prefill" | "decode"))
    {
        // The engine's resident memory while it computes: at least the 59 MiB of Q8_0
        // weights it maps (during the load it is still growing).
        assert!(f(r, "peak").unwrap() > 50e6, "{r:?}");
    }
    let rows = query(
        &db,
        "SELECT v.test, v.decode_power_avg_w, v.decode_energy_j, r.telemetry_json,
                run.telemetry_unavailable_json
         FROM v_results v JOIN result r ON r.id = v.result_id JOIN run ON run.id = r.run_id",
    );
    for r in &rows {
        let t: serde_json::Value = serde_json::from_str(s(r, "telemetry_json")).unwrap();
        // What this machine cannot measure is stored once, on the run; a result repeats
        // it only where its own list differs, which no cell of this run has reason to.
        assert!(t.get("unavailable").is_none(), "{t}");
        let run_list: serde_json::Value =
            serde_json::from_str(s(r, "telemetry_unavailable_json")).unwrap();
        let unavailable: Vec<&str> = run_list
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap())
            .collect();
        // Figures nobody measured are left out of the phases, not stored as null.
        for p in t["phases"].as_array().unwrap() {
            assert!(p.as_object().unwrap().values().all(|x| !x.is_null()), "{p}");
        }
        if !std::path::Path::new("/proc/driver/nvidia").exists()
            && !std::path::Path::new("/sys/class/powercap").exists()
        {
            // No power source at all: NULL, never 0, and the reason is stored.
            assert!(
                r["decode_power_avg_w"].is_null() && r["decode_energy_j"].is_null(),
                "{r:?}"
            );
            assert!(
                unavailable.iter().any(|u| u.starts_with("power_w: ")),
                "{unavailable:?}"
            );
        }
        let phases: Vec<&str> = t["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["phase"].as_str().unwrap())
            .collect();
        let want = if s(r, "test") == "pp256" {
            "prefill"
        } else {
            "decode"
        };
        assert!(phases.contains(&want), "{} {phases:?}", s(r, "test"));
    }

    // The model's load is a phase of the first cell that ran on it.
    let loads = query(
        &db,
        "SELECT COUNT(*) AS n FROM telemetry_sample WHERE phase = 'load'",
    );
    let load_in_json = rows
        .iter()
        .any(|r| s(r, "telemetry_json").contains("\"phase\":\"load\""));
    assert!(load_in_json || f(&loads[0], "n") > Some(0.0), "{rows:?}");

    // The last cell on the model (tg64) also has the idle after it: the engine's exit, and
    // at least 500 ms where device power and memory can be watched falling back. The
    // engine's own memory is no longer sampled there, so a machine without such a source
    // (this VM) has no samples in it and is not kept waiting: the window is the exit alone.
    let last = rows.iter().find(|r| s(r, "test") == "tg64").unwrap();
    let t: serde_json::Value = serde_json::from_str(s(last, "telemetry_json")).unwrap();
    let idle = t["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "idle_after")
        .unwrap_or_else(|| panic!("no idle_after phase: {t}"));
    let idle_samples = query(
        &db,
        "SELECT COUNT(DISTINCT t_ms) AS n FROM telemetry_sample WHERE phase = 'idle_after'",
    );
    assert_eq!(
        idle["n_samples"].as_f64(),
        f(&idle_samples[0], "n"),
        "the summary counts the stored samples: {idle}"
    );
    if idle["n_samples"] == 0 {
        let gap = idle["max_gap_ms"].as_f64().unwrap();
        assert!(gap < 490.0, "waited to watch nothing: {idle}");
    }
    let first = rows.iter().find(|r| s(r, "test") == "pp256").unwrap();
    assert!(
        !s(first, "telemetry_json").contains("idle_after"),
        "only the last cell of a model's group"
    );

    // The run keeps what telemetry saw of the machine: every source, with its reasons.
    let env = query(&db, "SELECT environment_json FROM run");
    let env: Vec<serde_json::Value> = serde_json::from_str(s(&env[0], "environment_json")).unwrap();
    assert!(env.iter().any(|r| r["source"] == "procfs"), "{env:?}");
    assert!(env.iter().any(|r| r["source"] == "nvml"), "{env:?}");

    // Pruning: a run from today is kept at 1 day; at 0 days its samples become summaries,
    // and every result keeps its figures.
    let samples = |db: &std::path::Path| {
        f(
            &query(db, "SELECT COUNT(*) AS n FROM telemetry_sample")[0],
            "n",
        )
        .unwrap()
    };
    let n_samples = samples(&db);
    assert!(n_samples > 0.0);
    let results_before = query(&db, "SELECT * FROM v_results ORDER BY result_id");
    let kept = run_ok(&["prune", "--older-than", "1d", "--db", db.to_str().unwrap()]);
    assert!(
        stderr(&kept).contains("reduced 0 telemetry samples"),
        "{}",
        stderr(&kept)
    );
    assert_eq!(samples(&db), n_samples);
    let pruned = run_ok(&[
        "prune",
        "--older-than",
        "0",
        "--vacuum",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(stderr(&pruned).contains("vacuumed"), "{}", stderr(&pruned));
    assert_eq!(samples(&db), 0.0);
    assert_eq!(
        query(&db, "SELECT * FROM v_results ORDER BY result_id"),
        results_before
    );
    let t = query(&db, "SELECT telemetry_json FROM result");
    for row in &t {
        let j: serde_json::Value = serde_json::from_str(s(row, "telemetry_json")).unwrap();
        assert!(
            j["samples_pruned"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["metric"] == "rss_bytes" && x["n"].as_u64().unwrap() > 0),
            "{j}"
        );
    }
    let bad = tokbench(&[
        "prune",
        "--older-than",
        "soon",
        "--db",
        db.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("`soon` is not a number of days"),
        "{}",
        stderr(&bad)
    );

    // Off: no samples.
    let db2 = tmp.path().join("off.db");
    run_ok(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db2.to_str().unwrap(),
        "--telemetry-interval-ms",
        "0",
    ]);
    let n = query(&db2, "SELECT COUNT(*) AS n FROM telemetry_sample");
    assert_eq!(f(&n[0], "n"), Some(0.0));
    let t = query(
        &db2,
        "SELECT COUNT(*) AS n FROM result WHERE telemetry_json IS NULL",
    );
    assert_eq!(f(&t[0], "n"), Some(2.0));
}

/// The GPU telemetry path end to end on a machine without a GPU: NVML answered from the
/// synthetic H200 recording (`TOKBENCH_NVML_REPLAY`), from its 5th second on (the card
/// already computing), through the sampler, the phase windows and the database.
///
/// The recording computes for 110 s and then cools down; a run slower than that (CI once
/// took 120 s for this tg64, its 2 engine threads and another test's on 2 busy cores, each
/// barrier waiting for a descheduled spinner) measured the cool-down. So the loaded stretch
/// is played again and again, the energy counter carried on, for half an hour: the card
/// stays under load however long the run takes, and the engine runs on one thread.
#[test]
fn a_run_with_nvml_replayed_stores_gpu_power_energy_and_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../telemetry/tests/fixtures/nvml/h200-synthetic.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    // Start the recording at 5 s, its first entry carrying the state at that moment.
    let entries = rec["timeline"].as_array().unwrap().clone();
    let mut first = serde_json::Map::new();
    let mut kept = Vec::new();
    for e in entries {
        let t = e["t_ms"].as_u64().unwrap();
        let d = e["devices"][0].as_object().unwrap().clone();
        if t <= 5_000 {
            first.extend(d);
            if t == 5_000 {
                kept.push(serde_json::json!({ "t_ms": 0, "devices": [first.clone()] }));
            }
        } else {
            kept.push(serde_json::json!({ "t_ms": t - 5_000, "devices": [d] }));
        }
    }
    // Play the loaded stretch, 6 s (the 1 s power average settled) to 115 s of the
    // recording, again and again: each copy later by its length, its counter higher by
    // the energy of one copy plus one loaded step, so the counter never stalls or jumps.
    let energy = |e: &serde_json::Value| e["devices"][0]["total_energy_mj"].as_u64();
    let at = |t: u64| {
        kept.iter()
            .find(|e| e["t_ms"].as_u64() == Some(t - 5_000))
            .unwrap()
    };
    let loop_ms = 115_000 - 6_000;
    let loop_mj = energy(at(114_900)).unwrap() - energy(at(6_000)).unwrap()
        + (energy(at(6_100)).unwrap() - energy(at(6_000)).unwrap());
    let block: Vec<serde_json::Value> = kept
        .iter()
        .filter(|e| (1_000..110_000).contains(&e["t_ms"].as_u64().unwrap()))
        .cloned()
        .collect();
    kept.retain(|e| e["t_ms"].as_u64().unwrap() < 110_000);
    for k in 1..=16u64 {
        for e in &block {
            let mut e = e.clone();
            let t = e["t_ms"].as_u64().unwrap() - 1_000 + 110_000 + (k - 1) * loop_ms;
            e["t_ms"] = t.into();
            if let Some(mj) = energy(&e) {
                e["devices"][0]["total_energy_mj"] = (mj + k * loop_mj).into();
            }
            kept.push(e);
        }
    }
    rec["timeline"] = serde_json::Value::Array(kept);
    let replay = tmp.path().join("h200-from-5s.json");
    std::fs::write(&replay, rec.to_string()).unwrap();

    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp256\", \"tg64\"", "")
            .replace("threads = 2", "threads = 1")
            .replace("timeout_s = 120", "timeout_s = 600"),
    );
    let db = tmp.path().join("t.db");
    let out = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--telemetry-interval-ms",
        "50",
        "--plain",
    ])
    .env("TOKBENCH_NVML_REPLAY", &replay)
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = query(
        &db,
        "SELECT v.test, v.prefill_power_avg_w, v.decode_power_avg_w, r.prefill_energy_j,
                r.decode_energy_j, r.energy_method, r.vram_peak_bytes, r.vram_proc_peak_bytes,
                r.duration_ms, run.telemetry_unavailable_json, run.environment_json
         FROM v_results v JOIN result r ON r.id = v.result_id JOIN run ON run.id = r.run_id",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        let (power, energy) = if s(r, "test") == "pp256" {
            ("prefill_power_avg_w", "prefill_energy_j")
        } else {
            ("decode_power_avg_w", "decode_energy_j")
        };
        // The card under load: near its 700 W and never above it, from its energy counter
        // (or, for windows shorter than 20 of the counter's 100 ms steps, as these are, from
        // sampled power: the rule the telemetry crate's tests pin down).
        let w = f(r, power).unwrap_or_else(|| panic!("no {power}: {r:?}"));
        assert!((630.0..=700.0).contains(&w), "{power} {w} W: {r:?}");
        assert!(f(r, energy).unwrap() > 0.0, "{r:?}");
        assert!(
            matches!(s(r, "energy_method"), "counter" | "integrated"),
            "{r:?}"
        );
        // Device memory: the driver's, another process's and the backend's 20 GiB; the
        // backend's own, found by its PID.
        assert_eq!(
            f(r, "vram_peak_bytes"),
            Some(((560u64 + 512 + 20 * 1024) << 20) as f64),
            "{r:?}"
        );
        assert_eq!(
            f(r, "vram_proc_peak_bytes"),
            Some((20u64 << 30) as f64),
            "{r:?}"
        );
        let unavailable = s(r, "telemetry_unavailable_json");
        assert!(!unavailable.contains("power_w"), "{unavailable}");
        assert!(
            s(r, "environment_json").contains("NVIDIA H200"),
            "{}",
            s(r, "environment_json")
        );
    }
    // Raw samples were stored, from NVML, and none reads zero power.
    let n = query(
        &db,
        "SELECT COUNT(*) AS n, MIN(value) AS lo FROM telemetry_sample
         WHERE source = 'nvml' AND metric = 'power_w'",
    );
    assert!(f(&n[0], "n").unwrap() >= 5.0, "{n:?}");
    assert!(f(&n[0], "lo").unwrap() > 600.0, "{n:?}");
}

/// `telemetry nvml-record` writes what `TOKBENCH_NVML_REPLAY` plays: here recorded from the
/// replayed H200 itself (the command reads NVML the way a run does), and without a GPU
/// or a recording it says why in one line.
#[test]
fn nvml_record_writes_a_recording_the_replay_plays_back() {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("rec.json");
    let out_s = out_path.to_str().unwrap();
    if !std::path::Path::new("/proc/driver/nvidia").exists() {
        let out = tokbench(&[
            "telemetry",
            "nvml-record",
            "--seconds",
            "0.2",
            "--out",
            out_s,
        ])
        .env_remove("TOKBENCH_NVML_REPLAY")
        .output()
        .unwrap();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{e}");
        assert!(
            e.contains("cannot record NVML") && e.contains("NVIDIA driver"),
            "{e}"
        );
        assert!(!out_path.exists());
    }
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../telemetry/tests/fixtures/nvml/h200-synthetic.json");
    let out = tokbench(&[
        "telemetry",
        "nvml-record",
        "--seconds",
        "0.5",
        "--interval-ms",
        "100",
        "--out",
        out_s,
    ])
    .env("TOKBENCH_NVML_REPLAY", &fixture)
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(rec["recording"], "replayed");
    assert_eq!(rec["devices"][0]["name"], "NVIDIA H200");
    let timeline = rec["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 3, "{rec}");
    let mw = timeline[0]["devices"][0]["power_instant_mw"]
        .as_f64()
        .unwrap();
    assert!(
        (70_000.0..80_000.0).contains(&mw),
        "idle at the start: {mw} mW"
    );
    // And a run plays it back.
    let probe = tokbench(&["telemetry", "probe", "--format", "json"])
        .env("TOKBENCH_NVML_REPLAY", &out_path)
        .output()
        .unwrap();
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&probe.stdout).unwrap();
    let nvml = reports.iter().find(|r| r["source"] == "nvml").unwrap();
    assert_eq!(nvml["metrics"]["power_w"], "ok", "{nvml}");
    assert_eq!(nvml["environment"]["gpu0_name"], "NVIDIA H200", "{nvml}");
}
