//! The runner against scripted engine doubles: small `/bin/sh` scripts that read the job
//! line and print canned protocol lines, so the supervision logic (respawn, timeouts,
//! crashes, malformed output, interrupts, probing) is tested without llama.cpp. The real
//! engine is tested beside these, in `crates/cli/tests/run_engine.rs`.
//!
//! Each script runs as `/bin/sh SCRIPT` rather than as the program itself: executing a
//! file this process has just written races with other test threads' forks, which still
//! hold the write descriptor until they exec (`ETXTBSY`, "text file busy").

#![cfg(unix)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokbench_core::{
    BackendBuild, CellResult, ModelRecord, ModelSource, Repetition, ResultStatus, Suite,
};
use tokbench_engine::protocol::EngineJob;
use tokbench_runner::{
    probe_engine, run, EngineCommand, ModelProvider, ModelUnavailable, PreparedModel, RunEvent,
    RunOutcome, RunPlan,
};
use tokio::sync::{mpsc, watch};

/// The longest any run here may take; runs that pass take a few seconds at most.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// The environment variable that tells a script its folder (and marks its processes).
const DIR_ENV: &str = "TOKBENCH_SCRIPT_DIR";

/// Shell functions every script starts with. The script reads the job, counts its starts
/// in `$D/starts`, keeps the job it got as `$D/job.N`, and knows the test ids as `$ids`.
const PRELUDE: &str = r#"
D="$TOKBENCH_SCRIPT_DIR"
read -r job
n=$(cat "$D/starts" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$D/starts"
printf '%s\n' "$job" > "$D/job.$n"
ids=$(printf '%s\n' "$job" | grep -o '"id":[0-9]*' | cut -d: -f2)
first=$(printf '%s\n' "$ids" | head -n 1)
hello() { printf '%s\n' '{"event":"hello","protocol":1,"version":"scripted","accel":"cpu","system_info":"","devices":[]}'; }
loaded() { printf '%s\n' '{"event":"loaded","load_ms":12.5,"n_params":1000,"model_size_bytes":4096,"n_layer":2,"n_vocab":32,"rss_bytes":null}'; }
started() { printf '{"event":"test_started","id":%s,"context_ms":1.0}\n' "$1"; }
rep() { printf '{"event":"rep","id":%s,"rep":%s,"prompt_ms":4.0,"gen_ms":8.0,"first_token_ms":2.0,"ttft_ms":6.0}\n' "$1" "$2"; }
finished() { printf '{"event":"test_finished","id":%s,"rss_peak_bytes":1048576}\n' "$1"; }
done_() { printf '%s\n' '{"event":"done"}'; }
good_test() { started "$1"; rep "$1" 0; rep "$1" 1; finished "$1"; }
behave() { hello; loaded; for id in $ids; do good_test "$id"; done; done_; }
"#;

/// A folder holding a dummy model file and the scripts.
#[derive(Debug)]
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        for name in ["model.gguf", "other.gguf"] {
            std::fs::write(dir.path().join(name), b"GGUF not really").unwrap();
        }
        Bench { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn model(&self) -> PathBuf {
        self.path().join("model.gguf")
    }

    /// The engine command for a script made of the prelude and `body`.
    fn script(&self, body: &str) -> EngineCommand {
        let path = self.path().join("engine.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{PRELUDE}\n{body}\n")).unwrap();
        EngineCommand {
            program: PathBuf::from("/bin/sh"),
            args: vec![path.to_str().unwrap().to_string()],
            envs: vec![(DIR_ENV.into(), self.path().to_str().unwrap().into())],
        }
    }

    /// A suite of `tests` on model.gguf (and other.gguf if `two_models`).
    fn suite(&self, tests: &str, timeout_s: u32, two_models: bool) -> Suite {
        let mut text = format!(
            "name = \"scripted\"\n[[model]]\npath = {:?}\n",
            self.model()
        );
        if two_models {
            text.push_str(&format!(
                "[[model]]\npath = {:?}\n",
                self.path().join("other.gguf")
            ));
        }
        text.push_str(&format!(
            "[workload]\ntests = [{tests}]\nrepetitions = 2\nwarmup = false\ntimeout_s = {timeout_s}\n"
        ));
        let file = self.path().join("suite.toml");
        Suite::from_toml(&text, &file).unwrap()
    }

    /// How many times the script was started.
    fn starts(&self) -> u32 {
        match std::fs::read_to_string(self.path().join("starts")) {
            Ok(s) => s.trim().parse().unwrap(),
            Err(_) => 0,
        }
    }

    /// The job the script got on its `n`th start.
    fn job(&self, n: u32) -> EngineJob {
        let text = std::fs::read_to_string(self.path().join(format!("job.{n}"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A pid the script wrote to `name`.
    fn pid(&self, name: &str) -> u32 {
        std::fs::read_to_string(self.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits (bounded) until no live process carries this bench's marker in its
    /// environment and none of `pids` is alive; panics naming the survivors otherwise.
    async fn assert_no_process_left(&self, pids: &[u32]) {
        let marker = format!("{DIR_ENV}={}", self.path().display());
        let mut survivors = Vec::new();
        for _ in 0..250 {
            survivors = processes_with(&marker);
            survivors.extend(pids.iter().copied().filter(|p| alive(*p)));
            if survivors.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("processes of the script outlived the run: {survivors:?}");
    }
}

/// Returns true if and only if `pid` is a process that has not exited (a zombie waiting
/// to be reaped by its new parent counts as exited).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                !matches!(state, Some('Z' | 'X'))
            }
        }
    } else {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
    }
}

/// Pids of live processes whose environment carries `marker` (Linux; empty elsewhere).
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(entry.path().join("environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) && alive(pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Prepares a file model: the file as it is, with a dummy record.
#[derive(Debug)]
struct FileProvider;

impl ModelProvider for FileProvider {
    fn prepare(&self, source: &ModelSource) -> Result<PreparedModel, ModelUnavailable> {
        let ModelSource::File { path } = source else {
            return Err("this provider only has files".into());
        };
        Ok(PreparedModel {
            path: path.clone(),
            record: record(path),
        })
    }
}

fn record(path: &Path) -> ModelRecord {
    ModelRecord {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        architecture: "llama".into(),
        quant: "F32".into(),
        n_params: 1000,
        file_bytes: 15,
        file_sha256: "00".repeat(32),
        shape_json: "{}".into(),
        origin: path.display().to_string(),
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

fn plan(suite: Suite, engine: EngineCommand) -> RunPlan {
    RunPlan {
        suite,
        default_threads: 4,
        engine,
        skip: BTreeSet::new(),
        build: build(),
        telemetry_interval: None,
        backends: Default::default(),
        idle_after: Duration::ZERO,
        launcher: Arc::new(tokbench_runner::child::RealProcesses),
    }
}

/// Collects every event until the runner drops its sender.
fn collect(mut rx: mpsc::Receiver<RunEvent>) -> tokio::task::JoinHandle<Vec<RunEvent>> {
    tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    })
}

/// Runs the plan to the end (bounded), returning the outcome and all events.
async fn run_plan(plan: RunPlan) -> (RunOutcome, Vec<RunEvent>) {
    let (tx, rx) = mpsc::channel(16);
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    let events = collect(rx);
    let outcome = tokio::time::timeout(RUN_LIMIT, run(plan, Arc::new(FileProvider), tx, cancel_rx))
        .await
        .expect("the run did not end within the limit");
    (outcome, events.await.unwrap())
}

/// The finished cells, in the order they were reported.
fn results(events: &[RunEvent]) -> Vec<&CellResult> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::CellFinished { result, .. } => Some(&**result),
            _ => None,
        })
        .collect()
}

fn outcome(cells_ok: usize, cells_failed: usize, interrupted: bool) -> RunOutcome {
    RunOutcome {
        cells_ok,
        cells_failed,
        interrupted,
    }
}

/// One repetition as the scripts report it (prompt 4 ms, gen 8 ms, first token 2 ms,
/// TTFT 6 ms) for the cell's test.
fn scripted_rep(r: &CellResult) -> Repetition {
    Repetition::from_timings(&r.test, Some(4.0), Some(8.0), Some(2.0), Some(6.0))
}

/// Asserts a cell was measured completely by the script's `good_test`.
fn assert_measured(r: &CellResult, index: usize) {
    assert_eq!(r.cell_index, index);
    assert_eq!(r.status, ResultStatus::Ok, "{:?}", r.error);
    assert_eq!(r.error, None);
    assert_eq!(r.load_ms, Some(12.5));
    assert_eq!(r.rss_peak_bytes, Some(1_048_576));
    assert_eq!(r.repetitions, vec![scripted_rep(r); 2]);
    assert_eq!(r.log_tail, None);
}

/// Asserts a cell was not measured, with this status and reason.
fn assert_unmeasured(r: &CellResult, index: usize, status: ResultStatus, error: &str) {
    assert_eq!(r.cell_index, index);
    assert_eq!(r.status, status);
    assert_eq!(r.error.as_deref(), Some(error));
    assert_eq!(r.repetitions, Vec::new());
    assert_eq!(r.rss_peak_bytes, None);
}

#[tokio::test]
async fn a_well_behaved_engine_measures_every_cell() {
    let bench = Bench::new();
    let engine = bench.script("behave");
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine)).await;

    assert_eq!(out, outcome(2, 0, false));
    assert_eq!(bench.starts(), 1, "one model, one load");
    let job = bench.job(1);
    assert_eq!(job.protocol, 1);
    assert_eq!(job.model_path, bench.model());
    let tests: Vec<(u64, u32, u32, u32, u32)> = job
        .tests
        .iter()
        .map(|t| (t.id, t.n_prompt, t.n_gen, t.repetitions, t.n_threads))
        .collect();
    assert_eq!(tests, vec![(0, 8, 0, 2, 4), (1, 0, 4, 2, 4)]);

    let started: Vec<(usize, String)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::CellStarted { index, label } => Some((*index, label.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        vec![
            (0, "model.gguf pp8 t4".to_string()),
            (1, "model.gguf tg4 t4".to_string())
        ]
    );
    let rs = results(&events);
    assert_eq!(rs.len(), 2);
    assert_measured(rs[0], 0);
    assert_measured(rs[1], 1);
    // pp8 in 4 ms; tg4: 3 tokens after the first in 8 - 2 ms.
    assert_eq!(rs[0].repetitions[0].prefill_tps, Some(8.0 / (4.0 / 1e3)));
    assert_eq!(rs[0].repetitions[0].decode_tps, None);
    assert_eq!(rs[1].repetitions[0].decode_tps, Some(3.0 / (6.0 / 1e3)));
    assert_eq!(rs[1].repetitions[0].ttft_ms, Some(6.0));
    // Each started cell reports its repetitions as they end, and carries what the CPUs'
    // clocks did (on this machine: whatever sysfs shows, read at its start and end).
    let reps: Vec<(usize, u32, u32)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Repetition { index, done, max } => Some((*index, *done, *max)),
            _ => None,
        })
        .collect();
    assert_eq!(reps, [(0, 1, 2), (0, 2, 2), (1, 1, 2), (1, 2, 2)]);
    let read_here = {
        let c = tokbench_telemetry::throttle::CpuClocks::read();
        tokbench_telemetry::throttle::conditions(&c, &c, None)
    };
    for r in &rs {
        let c = r
            .conditions
            .as_ref()
            .expect("a started cell records its conditions");
        assert_eq!(c.cpu_governor, read_here.cpu_governor);
        assert_eq!(c.throttled.is_some(), read_here.throttled.is_some());
    }
    for e in &events {
        if let RunEvent::CellFinished {
            model_name,
            model,
            build: b,
            repetitions_expected,
            ..
        } = e
        {
            assert_eq!(model_name, "model.gguf");
            assert_eq!(model.as_deref(), Some(&record(&bench.model())));
            assert_eq!(**b, build());
            assert_eq!(*repetitions_expected, 2);
        }
    }
    bench.assert_no_process_left(&[]).await;
}

#[tokio::test]
async fn a_malformed_line_fails_its_cell_and_a_fresh_engine_runs_the_rest() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
if [ "$n" = 1 ]; then
  echo $$ > "$D/pid.1"
  hello; loaded; started 0; rep 0 0
  printf '%s\n' 'this is not json'
  exec sleep 1000
fi
behave"#,
    );
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine)).await;

    assert_eq!(out, outcome(1, 1, false));
    assert_eq!(bench.starts(), 2);
    let second: Vec<u64> = bench.job(2).tests.iter().map(|t| t.id).collect();
    assert_eq!(second, vec![1], "the fresh engine gets only the cells left");
    let rs = results(&events);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].cell_index, 0);
    assert_eq!(rs[0].status, ResultStatus::Failed);
    let error = rs[0].error.as_deref().unwrap();
    assert!(
        error.starts_with("engine sent a malformed line (")
            && error.ends_with("): this is not json after 1 of 2 repetitions"),
        "{error}"
    );
    assert_eq!(rs[0].repetitions, Vec::new());
    assert_eq!(rs[0].load_ms, Some(12.5));
    assert_measured(rs[1], 1);
    let pid = bench.pid("pid.1");
    bench.assert_no_process_left(&[pid]).await;
}

#[tokio::test]
async fn an_engine_killed_mid_test_is_a_crash_and_the_next_cell_runs() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
if [ "$n" = 1 ]; then
  hello; loaded; started 0; rep 0 0
  kill -9 $$
fi
behave"#,
    );
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine)).await;

    assert_eq!(out, outcome(1, 1, false));
    assert_eq!(bench.starts(), 2);
    let rs = results(&events);
    assert_eq!(rs.len(), 2);
    assert_unmeasured(
        rs[0],
        0,
        ResultStatus::Crashed,
        "engine killed by signal 9 (SIGKILL), not sent by tokbench (the kernel's out-of-memory killer, or another process) after 1 of 2 repetitions",
    );
    assert_eq!(rs[0].load_ms, Some(12.5));
    assert_measured(rs[1], 1);
    bench.assert_no_process_left(&[]).await;
}

#[tokio::test]
async fn a_hung_test_times_out_and_the_engine_group_is_killed() {
    let bench = Bench::new();
    // The first engine ignores SIGTERM and has a grandchild that ignores it too: the runner
    // must escalate to SIGKILL for the whole process group.
    let engine = bench.script(
        r#"
if [ "$n" = 1 ]; then
  trap '' TERM
  echo $$ > "$D/pid.1"
  sleep 1000 &
  echo $! > "$D/grandchild.1"
  hello; loaded; started 0; rep 0 0
  wait
  exit 0
fi
behave"#,
    );
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 2, false), engine)).await;

    assert_eq!(out, outcome(1, 1, false));
    assert_eq!(bench.starts(), 2);
    let rs = results(&events);
    assert_eq!(rs.len(), 2);
    assert_unmeasured(
        rs[0],
        0,
        ResultStatus::Timeout,
        "the test did not finish within 2 s; the engine was stopped \
         (killed by signal 9 (SIGKILL)) after 1 of 2 repetitions",
    );
    assert_measured(rs[1], 1);
    let pids = [bench.pid("pid.1"), bench.pid("grandchild.1")];
    bench.assert_no_process_left(&pids).await;
}

#[tokio::test]
async fn a_hung_load_times_out_every_cell_of_the_group() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
echo $$ > "$D/pid.$n"
hello
exec sleep 1000"#,
    );
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 1, false), engine)).await;

    assert_eq!(out, outcome(0, 2, false));
    assert_eq!(bench.starts(), 1, "a load that hangs is not retried");
    let rs = results(&events);
    let reason = "loading the model did not finish within 1 s; \
                  the engine was stopped (killed by signal 15 (SIGTERM))";
    assert_eq!(rs.len(), 2);
    assert_unmeasured(rs[0], 0, ResultStatus::Timeout, reason);
    assert_unmeasured(rs[1], 1, ResultStatus::Timeout, reason);
    assert_eq!(rs[0].load_ms, None);
    bench.assert_no_process_left(&[bench.pid("pid.1")]).await;
}

#[tokio::test]
async fn a_fatal_error_fails_every_cell_of_the_group() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
hello
echo 'gguf: bad magic' >&2
printf '%s\n' '{"event":"fatal","error":"cannot load model: bad magic"}'
exit 1"#,
    );
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine)).await;

    assert_eq!(out, outcome(0, 2, false));
    assert_eq!(bench.starts(), 1, "a fatal error is not retried");
    let rs = results(&events);
    assert_eq!(rs.len(), 2);
    for (i, r) in rs.iter().enumerate() {
        assert_unmeasured(r, i, ResultStatus::Failed, "cannot load model: bad magic");
        assert_eq!(r.load_ms, None);
        assert!(r.log_tail.is_some());
    }
    bench.assert_no_process_left(&[]).await;
}

#[tokio::test]
async fn an_engine_that_dies_while_loading_fails_every_cell_once() {
    let bench = Bench::new();
    let engine = bench.script("echo 'cannot open model' >&2\nexit 3");
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine)).await;

    assert_eq!(out, outcome(0, 2, false));
    assert_eq!(bench.starts(), 1, "no respawn for cells that never started");
    let rs = results(&events);
    assert_eq!(rs.len(), 2);
    for (i, r) in rs.iter().enumerate() {
        assert_unmeasured(r, i, ResultStatus::Failed, "engine exited with code 3");
        assert_eq!(r.load_ms, None);
    }
    bench.assert_no_process_left(&[]).await;
}

#[tokio::test]
async fn an_engine_that_always_quits_between_tests_costs_one_start_per_cell() {
    let bench = Bench::new();
    // Loads, then exits without a word: the first cell gets the blame each time, the rest
    // go to a fresh engine, so the run ends after one start per cell.
    let engine = bench.script("hello; loaded; exit 0");
    let (out, events) = run_plan(plan(
        bench.suite(r#""pp8", "tg4", "pp16""#, 30, false),
        engine,
    ))
    .await;

    assert_eq!(out, outcome(0, 3, false));
    assert_eq!(bench.starts(), 3);
    let rs = results(&events);
    assert_eq!(rs.len(), 3);
    for (i, r) in rs.iter().enumerate() {
        assert_unmeasured(r, i, ResultStatus::Failed, "engine exited with code 0");
        assert_eq!(r.load_ms, Some(12.5));
    }
    let third: Vec<u64> = bench.job(3).tests.iter().map(|t| t.id).collect();
    assert_eq!(third, vec![2]);
}

#[tokio::test]
async fn an_incomplete_test_is_failed() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
hello; loaded
started 0; rep 0 0; finished 0
good_test 1
done_"#,
    );
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine)).await;

    assert_eq!(out, outcome(1, 1, false));
    assert_eq!(bench.starts(), 1);
    let rs = results(&events);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].cell_index, 0);
    assert_eq!(rs[0].status, ResultStatus::Failed);
    assert_eq!(
        rs[0].error.as_deref(),
        Some("engine reported 1 of 2 repetitions")
    );
    assert_measured(rs[1], 1);
}

#[tokio::test]
async fn a_missing_or_unrunnable_engine_makes_cells_unavailable() {
    let bench = Bench::new();
    let missing = bench.path().join("no-such-engine");
    let not_executable = bench.path().join("model.gguf");
    for (program, why) in [
        (&missing, "No such file or directory (os error 2)"),
        (&not_executable, "Permission denied (os error 13)"),
    ] {
        let engine = EngineCommand {
            program: program.clone(),
            args: Vec::new(),
            envs: Vec::new(),
        };
        let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, true), engine)).await;
        assert_eq!(out, outcome(0, 4, false));
        let rs = results(&events);
        assert_eq!(rs.len(), 4);
        let reason = format!("cannot start engine {}: {why}", program.display());
        for (i, r) in rs.iter().enumerate() {
            assert_unmeasured(r, i, ResultStatus::Unavailable, &reason);
            assert_eq!(r.load_ms, None);
            // Never started: nothing to say about the machine during it.
            assert_eq!(r.conditions, None);
        }
    }
}

#[tokio::test]
async fn cancelling_stops_the_test_in_flight_and_runs_nothing_more() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
echo $$ > "$D/pid.$n"
hello; loaded; started "$first"
exec sleep 1000"#,
    );
    // Two models: the second group must not even be prepared.
    let plan = plan(bench.suite(r#""pp8", "tg4""#, 30, true), engine);
    let (tx, mut rx) = mpsc::channel(16);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let runner = tokio::spawn(run(plan, Arc::new(FileProvider), tx, cancel_rx));

    let mut events = Vec::new();
    tokio::time::timeout(RUN_LIMIT, async {
        loop {
            let e = rx
                .recv()
                .await
                .expect("the run ended before cell 0 started");
            let started = matches!(e, RunEvent::CellStarted { index: 0, .. });
            events.push(e);
            if started {
                break;
            }
        }
    })
    .await
    .expect("cell 0 never started");
    cancel_tx.send(true).unwrap();
    let out = tokio::time::timeout(RUN_LIMIT, runner)
        .await
        .expect("the run did not stop after cancellation")
        .unwrap();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }

    assert_eq!(out, outcome(0, 1, true));
    assert_eq!(bench.starts(), 1);
    let preparing = events
        .iter()
        .filter(|e| matches!(e, RunEvent::Preparing { .. }))
        .count();
    assert_eq!(preparing, 1, "the second model was prepared: {events:?}");
    let rs = results(&events);
    assert_eq!(rs.len(), 1, "{events:?}");
    assert_unmeasured(
        rs[0],
        0,
        ResultStatus::Interrupted,
        "run interrupted (SIGINT/SIGTERM) while this cell was running after 0 of 2 repetitions",
    );
    assert_eq!(rs[0].load_ms, Some(12.5));
    bench.assert_no_process_left(&[bench.pid("pid.1")]).await;
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_runs_nothing() {
    let bench = Bench::new();
    let engine = bench.script("behave");
    let (tx, rx) = mpsc::channel(16);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    cancel_tx.send(true).unwrap();
    let events = collect(rx);
    let plan = plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine);
    let out = tokio::time::timeout(RUN_LIMIT, run(plan, Arc::new(FileProvider), tx, cancel_rx))
        .await
        .unwrap();

    assert_eq!(out, outcome(0, 0, true));
    assert_eq!(events.await.unwrap().len(), 0);
    assert_eq!(bench.starts(), 0);
}

#[tokio::test]
async fn probing_reads_the_hello() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
printf '%s\n' '{"event":"hello","protocol":1,"version":"llama-cpp-2 9","accel":"cuda","system_info":"AVX2 = 1","devices":["CUDA:CUDA0:NVIDIA H200:150000000000"]}'"#,
    );
    let got = tokio::time::timeout(RUN_LIMIT, probe_engine(&engine))
        .await
        .unwrap()
        .map_err(|e| e.to_string());
    assert_eq!(
        got,
        Ok(BackendBuild {
            name: "engine".into(),
            version: format!("tokbench {} / llama-cpp-2 9", env!("CARGO_PKG_VERSION")),
            commit: None,
            accel: "cuda".into(),
            flags: "AVX2 = 1 | devices: CUDA:CUDA0:NVIDIA H200:150000000000".into(),
        })
    );
    assert_eq!(bench.job(1).tests, Vec::new(), "a probe asks for no work");
    bench.assert_no_process_left(&[]).await;
}

#[tokio::test]
async fn probing_names_what_a_wrong_engine_said() {
    let bench = Bench::new();
    let cases = [
        (
            "printf '%s\\n' 'usage: llama-bench [options]'",
            "engine said something unexpected first: usage: llama-bench [options]",
        ),
        (
            r#"printf '%s\n' '{"event":"done"}'"#,
            r#"engine said something unexpected first: {"event":"done"}"#,
        ),
        (
            r#"printf '%s\n' '{"event":"hello","protocol":2,"version":"x","accel":"cpu","system_info":"","devices":[]}'"#,
            "engine speaks protocol 2, this runner 1",
        ),
    ];
    for (body, want) in cases {
        let engine = bench.script(body);
        let got = tokio::time::timeout(RUN_LIMIT, probe_engine(&engine))
            .await
            .unwrap()
            .map_err(|e| e.to_string());
        assert_eq!(got, Err(want.to_string()));
    }
    let missing = EngineCommand {
        program: bench.path().join("no-such-engine"),
        args: Vec::new(),
        envs: Vec::new(),
    };
    let got = tokio::time::timeout(RUN_LIMIT, probe_engine(&missing))
        .await
        .unwrap()
        .map_err(|e| e.to_string());
    assert_eq!(
        got,
        Err(format!(
            "cannot start engine {}: No such file or directory (os error 2)",
            missing.program.display()
        ))
    );
    let silent = bench.script("echo 'no GPU here' >&2; exit 1");
    let got = tokio::time::timeout(RUN_LIMIT, probe_engine(&silent))
        .await
        .unwrap();
    let err = got.unwrap_err().to_string();
    assert_eq!(
        err,
        "engine exited with code 1 before saying hello: no GPU here"
    );
    bench.assert_no_process_left(&[]).await;
}

// Runner bugs found with these doubles, fixed; each test keeps its fix honest.

/// An engine command for a bare script, without the prelude (it does not read its job).
fn bare_script(bench: &Bench, body: &str) -> EngineCommand {
    let path = bench.path().join("bare.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    EngineCommand {
        program: PathBuf::from("/bin/sh"),
        args: vec![path.to_str().unwrap().to_string()],
        envs: vec![(DIR_ENV.into(), bench.path().to_str().unwrap().into())],
    }
}

#[tokio::test]
async fn a_line_that_is_not_utf8_is_malformed_not_a_crash() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
if [ "$n" = 1 ]; then
  hello; loaded; started 0; rep 0 0
  printf '\377\376 not text\n'
  exec sleep 1000
fi
behave"#,
    );
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine)).await;
    assert_eq!(out, outcome(1, 1, false));
    let rs = results(&events);
    assert_eq!(rs[0].status, ResultStatus::Failed, "{:?}", rs[0].error);
    assert!(rs[0].error.as_deref().unwrap().contains("malformed"));
    assert_measured(rs[1], 1);
}

#[tokio::test]
async fn an_engine_that_closes_its_output_is_failed_not_crashed() {
    let bench = Bench::new();
    let engine = bench.script(
        r#"
if [ "$n" = 1 ]; then
  hello; loaded; started 0; rep 0 0
  exec sleep 1000 >&-
fi
behave"#,
    );
    let (out, events) = run_plan(plan(bench.suite(r#""pp8", "tg4""#, 30, false), engine)).await;
    assert_eq!(out, outcome(1, 1, false));
    let rs = results(&events);
    assert_eq!(rs[0].status, ResultStatus::Failed, "{:?}", rs[0].error);
    assert_measured(rs[1], 1);
}

#[tokio::test]
async fn an_engine_that_exits_without_reading_its_job_is_failed() {
    let bench = Bench::new();
    for _ in 0..20 {
        let engine = bare_script(&bench, "exit 3");
        let (out, events) = run_plan(plan(bench.suite(r#""pp8""#, 30, false), engine)).await;
        assert_eq!(out, outcome(0, 1, false));
        let rs = results(&events);
        assert_unmeasured(rs[0], 0, ResultStatus::Failed, "engine exited with code 3");
    }
}

#[tokio::test]
async fn a_large_job_to_an_engine_that_never_reads_it_times_out() {
    let bench = Bench::new();
    let engine = bare_script(&bench, "exec sleep 1000");
    // About 90 KiB of job, more than a pipe holds.
    let tests: Vec<String> = (1..=400).map(|i| format!("\"pp{i}\"")).collect();
    let (out, events) = run_plan(plan(bench.suite(&tests.join(", "), 1, false), engine)).await;
    assert_eq!(out, outcome(0, 400, false));
    for r in results(&events) {
        assert_eq!(r.status, ResultStatus::Timeout, "{:?}", r.error);
    }
    bench.assert_no_process_left(&[]).await;
}

#[tokio::test]
async fn an_engine_s_last_words_are_always_kept() {
    let bench = Bench::new();
    let engine = bench.script("echo 'libcuda.so.1: cannot open shared object file' >&2\nexit 1");
    for _ in 0..100 {
        let err = probe_engine(&engine).await.unwrap_err().to_string();
        assert!(err.contains("libcuda.so.1"), "{err}");
    }
    for _ in 0..20 {
        let (_, events) = run_plan(plan(bench.suite(r#""pp8""#, 30, false), engine.clone())).await;
        let tail = results(&events)[0].log_tail.clone().unwrap_or_default();
        assert!(tail.contains("libcuda.so.1"), "{tail:?}");
    }
}
