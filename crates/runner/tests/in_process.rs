//! The backends against scripted processes, in-process and with tokio's clock paused: every
//! fault at every phase of the engine's protocol, and llama-bench's faults, each checked in
//! milliseconds (an 8-second timeout passes at once). What only real processes show —
//! signals reaching a process group, orphans, the memory watchdog reading `/proc` — is
//! tested with real children in `scripted.rs` and in the CLI's `fault_matrix.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokbench_core::{
    BackendBuild, BackendKind, CellResult, ModelRecord, ModelSource, ResultStatus, Suite,
};
use tokbench_engine::protocol::{EngineEvent, EngineJob, PROTOCOL_VERSION};
use tokbench_runner::backend::BackendTarget;
use tokbench_runner::scripted::{exit_code, killed_by, Scripted, Spawned, Step};
use tokbench_runner::{
    run, EngineCommand, ModelProvider, ModelUnavailable, PreparedModel, RunEvent, RunOutcome,
    RunPlan,
};
use tokio::sync::{mpsc, watch};

/// Where, in the engine's protocol, a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before it says hello.
    Start,
    /// After hello, before the model is loaded.
    Load,
    /// Before the first test starts (its context and warm-up).
    Warmup,
    /// After the first test's first repetition.
    Prefill,
    /// After the first test started, before any repetition.
    Decode,
    /// After the last test finished, before `done`.
    Finish,
    /// After `done`, before it exits.
    Shutdown,
}

const PHASES: [Phase; 7] = [
    Phase::Start,
    Phase::Load,
    Phase::Warmup,
    Phase::Prefill,
    Phase::Decode,
    Phase::Finish,
    Phase::Shutdown,
];

/// What the fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Exits with code 3.
    Exit,
    /// Killed by SIGKILL (not by tokbench).
    Kill,
    /// Aborts (SIGABRT).
    Abort,
    /// Stops answering; only SIGKILL ends it (a SIGSTOPped process ignores TERM).
    Hang,
    /// Prints a line that is not an event.
    Garbage,
    /// Its resident memory passes the suite's limit.
    Oom,
}

const FAULTS: [Fault; 6] = [
    Fault::Exit,
    Fault::Kill,
    Fault::Abort,
    Fault::Hang,
    Fault::Garbage,
    Fault::Oom,
];

fn line(e: EngineEvent) -> Step {
    Step::Line(e.to_line())
}

fn fault_steps(fault: Fault) -> Vec<Step> {
    match fault {
        Fault::Exit => vec![
            Step::Log("fatal: out of luck".into()),
            Step::Exit(exit_code(3)),
        ],
        Fault::Kill => vec![Step::Exit(killed_by(libc::SIGKILL))],
        Fault::Abort => vec![Step::Exit(killed_by(libc::SIGABRT))],
        Fault::Hang => vec![Step::Hang { ignore_term: true }],
        Fault::Garbage => vec![Step::Line("ggml_init: not json".into())],
        // 2 GiB against the suite's 1024 MiB.
        Fault::Oom => vec![Step::Rss(2 << 30)],
    }
}

/// A well-behaved engine's answer to `job`, with `fault` at `phase` (if any).
fn engine_script(job: &EngineJob, fault: Option<(Phase, Fault)>) -> Vec<Step> {
    let at = |p: Phase| match fault {
        Some((phase, f)) if phase == p => fault_steps(f),
        _ => Vec::new(),
    };
    let mut s = at(Phase::Start);
    s.push(line(EngineEvent::Hello {
        protocol: PROTOCOL_VERSION,
        version: "scripted".into(),
        accel: "cpu".into(),
        system_info: String::new(),
        devices: Vec::new(),
        devices_free_bytes: Vec::new(),
    }));
    s.extend(at(Phase::Load));
    s.push(Step::Sleep(Duration::from_millis(30)));
    s.push(line(EngineEvent::Loaded {
        load_ms: 30.0,
        n_params: 1000,
        model_size_bytes: 4096,
        n_layer: 2,
        n_vocab: 32,
        rss_bytes: None,
        load_ns: None,
    }));
    for (i, t) in job.tests.iter().enumerate() {
        if i == 0 {
            s.extend(at(Phase::Warmup));
        }
        s.push(line(EngineEvent::TestStarted {
            id: t.id,
            context_ms: 1.0,
            warmup_ns: None,
        }));
        if i == 0 {
            s.extend(at(Phase::Decode));
        }
        for rep in 0..t.repetitions {
            s.push(Step::Sleep(Duration::from_millis(12)));
            s.push(line(EngineEvent::Rep {
                id: t.id,
                rep,
                prompt_ms: (t.n_prompt > 0).then_some(4.0),
                gen_ms: (t.n_gen > 0).then_some(8.0),
                first_token_ms: (t.n_gen > 0).then_some(2.0),
                ttft_ms: 6.0,
                prefill_ns: None,
                decode_ns: None,
            }));
            if i == 0 && rep == 0 {
                s.extend(at(Phase::Prefill));
            }
        }
        s.push(line(EngineEvent::TestFinished {
            id: t.id,
            rss_peak_bytes: Some(1 << 20),
            allocated: None,
        }));
    }
    s.extend(at(Phase::Finish));
    s.push(line(EngineEvent::Done));
    s.extend(at(Phase::Shutdown));
    s.push(Step::Exit(exit_code(0)));
    s
}

/// A launcher whose engines behave, except the first, which has `fault` at `phase`.
fn engines(fault: Option<(Phase, Fault)>) -> Scripted {
    let starts = AtomicUsize::new(0);
    Scripted::new(move |s: &Spawned| {
        let job: EngineJob = serde_json::from_str(&s.stdin).expect("the runner sends a job");
        let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
        Ok(engine_script(&job, fault.filter(|_| first)))
    })
}

/// Prepares any model as a dummy file record (nothing is read: the processes are scripts).
#[derive(Debug)]
struct Dummy;

impl ModelProvider for Dummy {
    fn prepare(&self, source: &ModelSource) -> Result<PreparedModel, ModelUnavailable> {
        let path = match source {
            ModelSource::File { path } => path.clone(),
            other => PathBuf::from(other.model_name()),
        };
        Ok(PreparedModel {
            record: ModelRecord {
                name: source.model_name(),
                architecture: "llama".into(),
                quant: "Q8_0".into(),
                n_params: 1000,
                file_bytes: 4096,
                file_sha256: "00".repeat(32),
                shape_json: "{}".into(),
                origin: path.display().to_string(),
            },
            path,
        })
    }
}

fn build() -> BackendBuild {
    BackendBuild {
        name: "engine".into(),
        version: "scripted".into(),
        commit: None,
        accel: "cpu".into(),
        flags: String::new(),
    }
}

/// Two models, two tests each (cells 0–3), as the CLI's fault matrix runs; `top` holds
/// top-level keys.
fn suite(top: &str) -> Suite {
    suite_of(top, r#""pp32+tg16", "tg8""#)
}

/// [`suite`] with other tests.
fn suite_of(top: &str, tests: &str) -> Suite {
    let text = format!(
        "name = \"in-process\"\n{top}[[model]]\npath = \"/models/a.gguf\"\n[[model]]\npath = \"/models/b.gguf\"\n\
         [engine]\nthreads = 1\n[workload]\ntests = [{tests}]\nrepetitions = 2\n\
         warmup = true\ntimeout_s = 8\nmemory_limit_mb = 1024\n"
    );
    Suite::from_toml(&text, Path::new("in-process.toml")).unwrap()
}

fn plan(suite: Suite, launcher: Scripted) -> RunPlan {
    RunPlan {
        suite,
        default_threads: 1,
        engine: EngineCommand {
            program: PathBuf::from("tokbench-engine"),
            args: Vec::new(),
            envs: Vec::new(),
        },
        skip: BTreeSet::new(),
        build: build(),
        telemetry_interval: None,
        idle_after: Duration::ZERO,
        backends: Default::default(),
        launcher: Arc::new(launcher),
    }
}

/// Runs `plan` to the end; the outcome, the results in the order reported, and how long it
/// took on tokio's (paused) clock.
async fn run_plan(plan: RunPlan) -> (RunOutcome, Vec<CellResult>, Duration) {
    run_cancelled_after(plan, None).await
}

async fn run_cancelled_after(
    plan: RunPlan,
    cancel_after: Option<Duration>,
) -> (RunOutcome, Vec<CellResult>, Duration) {
    let (tx, mut rx) = mpsc::channel(64);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let events = tokio::spawn(async move {
        let mut results = Vec::new();
        while let Some(e) = rx.recv().await {
            if let RunEvent::CellFinished { result, .. } = e {
                results.push(*result);
            }
        }
        results
    });
    if let Some(after) = cancel_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = cancel_tx.send(true);
        });
    } else {
        std::mem::forget(cancel_tx);
    }
    let t0 = tokio::time::Instant::now();
    let outcome = run(plan, Arc::new(Dummy), tx, cancel_rx).await;
    (outcome, events.await.unwrap(), t0.elapsed())
}

/// What the fault must read as: its status and words its reason contains.
fn expected(fault: Fault) -> (ResultStatus, &'static str) {
    match fault {
        Fault::Exit => (ResultStatus::Failed, "exited with code 3"),
        Fault::Kill => (ResultStatus::Crashed, "SIGKILL), not sent by tokbench"),
        Fault::Abort => (ResultStatus::Crashed, "SIGABRT"),
        Fault::Hang => (ResultStatus::Timeout, "within 8 s"),
        Fault::Garbage => (ResultStatus::Failed, "malformed line"),
        Fault::Oom => (ResultStatus::Oom, "memory_limit_mb = 1024"),
    }
}

#[tokio::test(start_paused = true)]
async fn every_fault_at_every_phase_fails_only_the_cells_it_struck() {
    for phase in PHASES {
        for fault in FAULTS {
            let case = format!("{fault:?} at {phase:?}");
            let launcher = engines(Some((phase, fault)));
            let (out, results, took) = run_plan(plan(suite(""), launcher.clone())).await;
            let (status, words) = expected(fault);
            let index: Vec<usize> = results.iter().map(|r| r.cell_index).collect();
            let mut sorted = index.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3], "{case}: each cell once");
            // Garbage after `done` is never read: the engine's work is complete.
            let harmless = fault == Fault::Garbage && phase == Phase::Shutdown;
            let victims: &[usize] = match phase {
                _ if harmless => &[],
                Phase::Start | Phase::Load => &[0, 1],
                Phase::Finish | Phase::Shutdown => &[],
                _ => &[0],
            };
            for r in &results {
                let err = r.error.as_deref().unwrap_or("");
                if victims.contains(&r.cell_index) {
                    assert_eq!(r.status, status, "{case}: cell {}: {err}", r.cell_index);
                    assert!(err.contains(words), "{case}: cell {}: {err}", r.cell_index);
                    assert!(
                        r.repetitions.is_empty(),
                        "{case}: a failed cell has no figures"
                    );
                } else {
                    assert_eq!(
                        r.status,
                        ResultStatus::Ok,
                        "{case}: cell {}: {err}",
                        r.cell_index
                    );
                    assert_eq!(r.repetitions.len(), 2, "{case}");
                }
            }
            let by_index = |i: usize| results.iter().find(|r| r.cell_index == i).unwrap();
            let err0 = by_index(0).error.clone().unwrap_or_default();
            match phase {
                Phase::Prefill => {
                    assert!(err0.ends_with("after 1 of 2 repetitions"), "{case}: {err0}")
                }
                Phase::Decode => {
                    assert!(err0.ends_with("after 0 of 2 repetitions"), "{case}: {err0}")
                }
                Phase::Finish | Phase::Shutdown if !harmless => {
                    // The figures stand; the fault is written on the engine's last cell.
                    let err = by_index(1).error.clone().unwrap_or_default();
                    let words = match (phase, fault) {
                        (Phase::Shutdown, Fault::Hang) => "did not exit after its last test",
                        _ => words,
                    };
                    assert!(
                        err.starts_with("measured; at shutdown") && err.contains(words),
                        "{case}: {err}"
                    );
                }
                _ => {}
            }
            if matches!(phase, Phase::Start | Phase::Load) {
                let err1 = by_index(1).error.clone().unwrap_or_default();
                assert!(!err1.contains("after"), "{case}: never started: {err1}");
            }
            // A fault mid-group costs one fresh engine for the rest of that group.
            let starts = launcher.spawned().len();
            let restarted = victims == [0];
            assert_eq!(starts, 2 + usize::from(restarted), "{case}: engine starts");
            assert_eq!(out.cells_ok + out.cells_failed, 4, "{case}");
            assert_eq!(out.cells_failed, victims.len(), "{case}");
            assert!(!out.interrupted, "{case}");
            // A hang is waited out once: the 8-second timeout, then the 3-second grace a
            // process that ignores SIGTERM gets before SIGKILL.
            let hung = fault == Fault::Hang;
            assert!(
                took < Duration::from_secs(if hung { 12 } else { 1 }),
                "{case}: took {took:?} on the paused clock"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_well_behaved_engine_is_started_once_per_model_with_every_test() {
    let launcher = engines(None);
    let (out, results, _) = run_plan(plan(suite(""), launcher.clone())).await;
    assert_eq!(out.cells_ok, 4);
    assert_eq!(
        results.iter().map(|r| r.cell_index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let spawned = launcher.spawned();
    assert_eq!(spawned.len(), 2);
    let jobs: Vec<EngineJob> = spawned
        .iter()
        .map(|s| serde_json::from_str(&s.stdin).unwrap())
        .collect();
    assert_eq!(jobs[0].model_path, Path::new("/models/a.gguf"));
    assert_eq!(jobs[1].model_path, Path::new("/models/b.gguf"));
    assert_eq!(
        jobs[0].tests.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![0, 1]
    );
    // The load belongs to the first cell of each model.
    assert_eq!(results[0].load_ms, Some(30.0));
    assert!(results.iter().all(|r| r.rss_peak_bytes == Some(1 << 20)));
}

#[tokio::test(start_paused = true)]
async fn resumed_cells_are_not_run_again() {
    let launcher = engines(None);
    let mut p = plan(suite(""), launcher.clone());
    p.skip = [0, 1, 3].into_iter().collect();
    let (out, results, _) = run_plan(p).await;
    assert_eq!(out.cells_ok, 1);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].cell_index, 2);
    let spawned = launcher.spawned();
    assert_eq!(spawned.len(), 1, "model a has nothing left to run");
    let job: EngineJob = serde_json::from_str(&spawned[0].stdin).unwrap();
    assert_eq!(job.tests.iter().map(|t| t.id).collect::<Vec<_>>(), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_during_a_hang_stops_at_once_and_runs_nothing_more() {
    let launcher = engines(Some((Phase::Decode, Fault::Hang)));
    let (out, results, took) = run_cancelled_after(
        plan(suite(""), launcher.clone()),
        Some(Duration::from_secs(2)),
    )
    .await;
    assert!(out.interrupted);
    // The cell in flight is stored as interrupted; the cells not begun are left for
    // `--resume`.
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].cell_index, 0);
    assert_eq!(results[0].status, ResultStatus::Interrupted);
    let err = results[0].error.as_deref().unwrap();
    assert!(err.ends_with("after 0 of 2 repetitions"), "{err}");
    assert_eq!(launcher.spawned().len(), 1, "no engine after the interrupt");
    // Two seconds in, then the grace a deaf process gets: never the 8-second timeout.
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn an_engine_that_cannot_start_makes_its_cells_unavailable() {
    let launcher = Scripted::new(|_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)));
    let (out, results, _) = run_plan(plan(suite(""), launcher)).await;
    assert_eq!(out.cells_failed, 4);
    for r in &results {
        assert_eq!(r.status, ResultStatus::Unavailable);
        assert!(
            r.error
                .as_deref()
                .unwrap()
                .starts_with("cannot start engine tokbench-engine"),
            "{:?}",
            r.error
        );
    }
}

// ---------------------------------------------------------------- llama-bench

/// llama-bench's JSON for one test of the suite, as it prints it (`-o json`): a record
/// captured from a real llama-bench (b6413-era fields), with this test's sizes and samples.
fn llama_bench_json(n_prompt: u32, n_gen: u32, samples: &[u64]) -> String {
    const CAPTURED: &str = include_str!("../../core/tests/fixtures/llama-bench/r6.json");
    let records: Vec<serde_json::Value> = serde_json::from_str(CAPTURED).unwrap();
    let mut r = records[0].clone();
    let tokens = f64::from(n_prompt + n_gen);
    let ts: Vec<f64> = samples.iter().map(|ns| tokens * 1e9 / *ns as f64).collect();
    r["build_commit"] = "233d773d0".into();
    r["build_number"] = 6413.into();
    r["n_threads"] = 1.into();
    r["n_prompt"] = n_prompt.into();
    r["n_gen"] = n_gen.into();
    r["avg_ns"] = (samples.iter().sum::<u64>() / samples.len() as u64).into();
    r["samples_ns"] = samples.into();
    r["avg_ts"] = (ts.iter().sum::<f64>() / ts.len() as f64).into();
    r["samples_ts"] = ts.into();
    serde_json::to_string_pretty(&vec![r]).unwrap()
}

/// The value after `flag` in llama-bench's arguments.
fn arg(s: &Spawned, flag: &str) -> u32 {
    let i = s.args.iter().position(|a| a == flag).expect("flag given");
    s.args[i + 1].parse().unwrap()
}

/// What a scripted llama-bench does wrong on its first start.
#[derive(Debug, Clone, Copy)]
enum BenchFault {
    Hang,
    Kill,
    Exit,
    NotJson,
    OtherTest,
    OneRepetition,
    Oom,
}

/// A launcher whose llama-bench answers each cell's arguments, except the first start.
fn llama_benches(fault: Option<BenchFault>) -> Scripted {
    let starts = AtomicUsize::new(0);
    Scripted::new(move |s: &Spawned| {
        let (p, n) = (arg(s, "-p"), arg(s, "-n"));
        let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
        let good = llama_bench_json(p, n, &[2_000_000, 2_100_000]);
        let mut steps = vec![
            Step::Log("llama-bench: loading".into()),
            Step::Sleep(Duration::from_millis(50)),
        ];
        match fault.filter(|_| first) {
            None => steps.push(Step::Line(good)),
            Some(BenchFault::Hang) => steps.push(Step::Hang { ignore_term: false }),
            Some(BenchFault::Kill) => steps.push(Step::Exit(killed_by(libc::SIGKILL))),
            Some(BenchFault::Exit) => {
                steps.push(Step::Log("error: failed to load model".into()));
                steps.push(Step::Exit(exit_code(1)));
            }
            Some(BenchFault::NotJson) => steps.push(Step::Line("| model | size |".into())),
            Some(BenchFault::OtherTest) => {
                steps.push(Step::Line(llama_bench_json(p + 1, n, &[1, 2])))
            }
            Some(BenchFault::OneRepetition) => steps.push(Step::Line(llama_bench_json(p, n, &[1]))),
            Some(BenchFault::Oom) => steps.push(Step::Rss(2 << 30)),
        }
        Ok(steps)
    })
}

fn llama_bench_plan(launcher: Scripted) -> RunPlan {
    let mut p = plan(
        suite_of("backends = [\"llama-bench\"]\n", r#""pp32", "tg16""#),
        launcher,
    );
    p.backends.insert(
        BackendKind::LlamaBench,
        BackendTarget::opaque(
            BackendKind::LlamaBench,
            Some(PathBuf::from("llama-bench")),
            Some("b6413".into()),
            String::new(),
        ),
    );
    p
}

#[tokio::test(start_paused = true)]
async fn llama_bench_runs_each_cell_and_each_fault_fails_only_its_cell() {
    let cases: [(Option<BenchFault>, ResultStatus, &str); 8] = [
        (None, ResultStatus::Ok, ""),
        (
            Some(BenchFault::Hang),
            ResultStatus::Timeout,
            "llama-bench did not finish within 8 s; it was stopped (killed by signal 15 (SIGTERM))",
        ),
        (
            Some(BenchFault::Kill),
            ResultStatus::Crashed,
            "llama-bench killed by signal 9 (SIGKILL), not sent by tokbench",
        ),
        (
            Some(BenchFault::Exit),
            ResultStatus::Failed,
            "llama-bench exited with code 1",
        ),
        (
            Some(BenchFault::NotJson),
            ResultStatus::Failed,
            "llama-bench output: ",
        ),
        (
            Some(BenchFault::OtherTest),
            ResultStatus::Failed,
            "llama-bench reported no pp32 test (1 records)",
        ),
        (
            Some(BenchFault::OneRepetition),
            ResultStatus::Failed,
            "llama-bench reported 1 of 2 repetitions",
        ),
        (
            Some(BenchFault::Oom),
            ResultStatus::Oom,
            "over the suite's memory_limit_mb = 1024",
        ),
    ];
    for (fault, status, words) in cases {
        let case = format!("{fault:?}");
        let launcher = llama_benches(fault);
        let (out, results, _) = run_plan(llama_bench_plan(launcher.clone())).await;
        assert_eq!(results.len(), 4, "{case}");
        assert_eq!(
            launcher.spawned().len(),
            4,
            "{case}: one llama-bench per cell"
        );
        let first = &launcher.spawned()[0];
        assert_eq!(
            (arg(first, "-p"), arg(first, "-n"), arg(first, "-r")),
            (32, 0, 2),
            "{case}"
        );
        for r in &results {
            let err = r.error.clone().unwrap_or_default();
            if r.cell_index == 0 {
                assert_eq!(r.status, status, "{case}: {err}");
                assert!(err.contains(words), "{case}: {err}");
                if status != ResultStatus::Ok {
                    // Its log goes with the reason.
                    assert!(
                        r.log_tail
                            .as_deref()
                            .unwrap_or("")
                            .contains("llama-bench: loading"),
                        "{case}"
                    );
                }
            } else {
                assert_eq!(
                    r.status,
                    ResultStatus::Ok,
                    "{case}: cell {}: {err}",
                    r.cell_index
                );
                assert_eq!(r.repetitions.len(), 2, "{case}");
                assert!(
                    r.backend_json.as_deref().unwrap().contains("233d773d0"),
                    "{case}"
                );
            }
        }
        assert_eq!(
            out.cells_failed,
            usize::from(status != ResultStatus::Ok),
            "{case}"
        );
    }
}
