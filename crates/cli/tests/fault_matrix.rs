//! The fault matrix: every backend kind made to fail at every phase it has, with every way
//! a backend fails on a nightly machine (exits non-zero, killed by SIGKILL, stopped with
//! SIGSTOP, grows past the memory limit, port taken, never healthy, binary missing, hangs at
//! shutdown). Each case runs the real `tokbench run` into a real SQLite file and checks that
//! the failing cell is stored with its status and reason, that the cells after it ran, that
//! no process tokbench started is left (the process table, by an environment marker), and
//! that the database is sound.
//!
//! The embedded engine fails on purpose through `TOKBENCH_ENGINE_FAULT` at a named phase.
//! llama-bench and llama-server are the real tools, failed from outside: bad arguments, a
//! signal sent once they are seen working (CPU time, `/slots`), a memory limit below what
//! they need, a port held by the test.
//!
//! With `TOKBENCH_FAULT_REPORT=FILE`, every case that passed appends a JSON line there;
//! `scripts/reliability.sh` counts them.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

fn mark(name: &str) -> String {
    format!("TOKBENCH_TEST_MARK=fault-{name}-{}", std::process::id())
}

fn assert_no_orphans(marker: &str, case: &str) {
    // tokbench has exited; what it started is gone at once (killed and reaped), but give
    // the kernel a bounded moment to tear a killed group down.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with_env(marker);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let who: Vec<String> = left.iter().map(|p| describe_process(*p)).collect();
            panic!("{case}: processes outlived tokbench: {}", who.join("; "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process as `ps` would show it: pid, state, parent and command line.
fn describe_process(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    format!(
        "{pid} state {} parent {} `{}`",
        f.first().unwrap_or(&"?"),
        f.get(1).unwrap_or(&"?"),
        cmd.trim()
    )
}

type Row = serde_json::Map<String, serde_json::Value>;

fn results(db: &Path) -> Vec<Row> {
    query(
        db,
        "SELECT backend, quant, test, status, error FROM v_results ORDER BY backend, quant, test",
    )
}

fn run(args: &[&str], envs: &[(&str, &str)], tools: bool) -> Output {
    let mut c = if tools {
        with_tools(args)
    } else {
        tokbench(args)
    };
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

// ---------------------------------------------------------------- the embedded engine

/// Two models (two engine processes), two tests each; the fault strikes cell 0 (Q4_K_M,
/// `pp32+tg16`) once, in the first engine process that reaches `phase`.
fn engine_case(phase: &str, mode: &str) {
    let case = format!("engine {phase} {mode}");
    let tmp = tempfile::tempdir().unwrap();
    // One thread: two engines spinning on two shared cores slow each other down by 100×.
    // A stopped or hung engine is waited for 8 s; the rest get 120.
    let timeout = if matches!(mode, "stop" | "hang") {
        8
    } else {
        120
    };
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &format!(
            "name = \"faults\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q4_K_M\", \"Q8_0\"]\n\
         [engine]\nthreads = 1\n[workload]\ntests = [\"pp32+tg16\", \"tg8\"]\nrepetitions = 2\n\
         warmup = true\ntimeout_s = {timeout}\nmemory_limit_mb = 1024\n"
        ),
    );
    let db = tmp.path().join("r.db");
    let rep = if phase == "prefill" { 1 } else { 0 };
    let spec = format!(
        "phase={phase},test=0,rep={rep},mode={mode},once={}",
        tmp.path().join("struck").display()
    );
    let marker = mark(&format!("engine-{phase}-{mode}"));
    let (mk, mv) = marker.split_once('=').unwrap();
    let out = run(
        &[
            "run",
            suite.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--plain",
        ],
        &[("TOKBENCH_ENGINE_FAULT", &spec), (mk, mv)],
        false,
    );
    assert!(
        tmp.path().join("struck").exists(),
        "{case}: the fault never struck"
    );
    let rows = results(&db);
    assert_eq!(rows.len(), 4, "{case}: {rows:?}");
    let (status, words) = match mode {
        "exit" => ("failed", "exited with code 3"),
        "kill" => ("crashed", "SIGKILL"),
        "stop" | "hang" => ("timeout", "within 8 s"),
        "oom" => ("oom", "memory_limit_mb = 1024"),
        "garbage" => ("failed", "malformed line"),
        "abort" => ("crashed", "SIGABRT"),
        other => panic!("no expectation for mode {other}"),
    };
    let victims: &[usize] = match phase {
        "start" | "load" => &[0, 1],
        "finish" | "shutdown" => &[],
        _ => &[0],
    };
    for (i, r) in rows.iter().enumerate() {
        let err = s(r, "error");
        if victims.contains(&i) {
            assert_eq!(s(r, "status"), status, "{case}: row {i}: {r:?}");
            assert!(err.contains(words), "{case}: row {i}: {err}");
        } else {
            assert_eq!(s(r, "status"), "ok", "{case}: row {i} must run: {r:?}");
        }
    }
    match phase {
        "prefill" => assert!(s(&rows[0], "error").contains("after 1 of 2"), "{case}"),
        "decode" => assert!(s(&rows[0], "error").contains("after 0 of 2"), "{case}"),
        "finish" | "shutdown" => {
            // The figures stand; the fault is written on the engine's last cell.
            let err = s(&rows[1], "error");
            let words = match (phase, mode) {
                ("shutdown", "stop" | "hang") => "did not exit",
                _ => words,
            };
            assert!(
                err.starts_with("measured; at shutdown") && err.contains(words),
                "{case}: {err}"
            );
        }
        _ => {}
    }
    let code = if victims.is_empty() { 0 } else { 4 };
    assert_eq!(out.status.code(), Some(code), "{case}: {}", stderr(&out));
    assert_no_orphans(&marker, &case);
    assert_eq!(integrity(&db), "ok", "{case}");
    let run_status = query(&db, "SELECT status FROM run");
    assert_eq!(
        s(&run_status[0], "status"),
        if victims.is_empty() { "ok" } else { "failed" },
        "{case}"
    );
    report_fault("engine", phase, mode, status);
}

const PHASES: [&str; 6] = ["start", "load", "warmup", "prefill", "decode", "shutdown"];

/// The phases a fault is injected at into the real engine: `sample` by default, every
/// phase with `TOKBENCH_FAULT_MATRIX=full` (`scripts/reliability.sh`). Every fault at every
/// phase is checked in-process, in milliseconds, by the runner's `in_process.rs`; here the
/// real engine, real signals, the real memory watchdog and the process table are checked.
fn phases<'a>(sample: &[&'a str]) -> Vec<&'a str> {
    if std::env::var("TOKBENCH_FAULT_MATRIX").as_deref() == Ok("full") {
        PHASES.to_vec()
    } else {
        sample.to_vec()
    }
}

#[test]
fn engine_exits_non_zero() {
    for phase in phases(&["load", "shutdown"]) {
        engine_case(phase, "exit");
    }
}

#[test]
fn engine_killed_with_sigkill() {
    for phase in phases(&["start", "prefill"]) {
        engine_case(phase, "kill");
    }
}

#[test]
fn engine_stopped_with_sigstop() {
    // Each case waits out the 8-second timeout.
    for phase in phases(&["decode"]) {
        engine_case(phase, "stop");
    }
}

#[test]
fn engine_passes_the_memory_limit() {
    for phase in phases(&["load", "decode"]) {
        engine_case(phase, "oom");
    }
}

#[test]
fn engine_hangs_aborts_or_talks_garbage() {
    engine_case("decode", "abort");
    engine_case("warmup", "garbage");
    engine_case("finish", "garbage");
    if std::env::var("TOKBENCH_FAULT_MATRIX").as_deref() == Ok("full") {
        engine_case("load", "hang");
        // After its last test, before it says done: the figures stand, the fault is written.
        engine_case("finish", "hang");
    }
}

// ---------------------------------------------------------- llama-bench and llama-server

/// Processes carrying `marker` whose command name is `comm` and that were given a model
/// (not tokbench's `--version` probe of the same program).
fn find(marker: &str, comm: &str) -> Vec<u32> {
    processes_with_env(marker)
        .into_iter()
        .filter(|p| {
            let named = std::fs::read_to_string(format!("/proc/{p}/comm"))
                .map(|c| c.trim() == comm)
                .unwrap_or(false);
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            named && String::from_utf8_lossy(&cmdline).contains(".gguf")
        })
        .collect()
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// Waits (bounded) for `ready` to name a pid, then sends it `sig`.
fn signal_when(what: &str, sig: nix::sys::signal::Signal, ready: impl Fn() -> Option<u32>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(pid) = ready() {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
            return;
        }
        assert!(Instant::now() < deadline, "{what} never got to work");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GET `path` on 127.0.0.1:`port`, the body (or empty on any error), within 2 s.
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    ) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tool_suite(
    dir: &Path,
    backend: &str,
    table: &str,
    tests: &str,
    workload: &str,
) -> std::path::PathBuf {
    write_suite(
        dir,
        "t.toml",
        &format!(
            "name = \"tool-faults\"\nbackends = [\"{backend}\", \"engine\"]\n[backend.{backend}]\n{table}\n\
             [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 1\n\
             [workload]\ntests = [{tests}]\nrepetitions = 2\nwarmup = false\n{workload}\n\
             [serve]\nrequests_per_stream = 2\n"
        ),
    )
}

/// One tool case: `inject` runs beside tokbench (it may signal the tool); then the tool's
/// row must carry `status` and `words`, the engine's row after it must be ok, and nothing
/// may be left running.
#[allow(clippy::too_many_arguments)]
fn tool_case(
    backend: &str,
    phase: &str,
    fault: &str,
    table: &str,
    tests: &str,
    workload: &str,
    expect: (&[&str], &str),
    inject: impl FnOnce(&str),
) {
    let case = format!("{backend} {phase} {fault}");
    let tmp = tempfile::tempdir().unwrap();
    let suite = tool_suite(tmp.path(), backend, table, tests, workload);
    let db = tmp.path().join("r.db");
    let marker = mark(&format!("{backend}-{phase}-{fault}"));
    let (mk, mv) = marker.split_once('=').unwrap();
    let child = with_tools(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .env(mk, mv)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    inject(&marker);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{case}: {}", stderr(&out));
    let rows = results(&db);
    let tool: Vec<&Row> = rows.iter().filter(|r| s(r, "backend") == backend).collect();
    let engine: Vec<&Row> = rows
        .iter()
        .filter(|r| s(r, "backend") == "engine")
        .collect();
    assert!(!tool.is_empty() && !engine.is_empty(), "{case}: {rows:?}");
    let (statuses, words) = expect;
    for r in &tool {
        assert!(statuses.contains(&s(r, "status")), "{case}: {r:?}");
        assert!(s(r, "error").contains(words), "{case}: {r:?}");
    }
    // The engine's cell after it ran (under a memory limit, it too passes 4 MiB).
    let next = if fault == "memory limit" { "oom" } else { "ok" };
    for r in &engine {
        assert_eq!(
            s(r, "status"),
            next,
            "{case}: the next cell must run: {r:?}"
        );
    }
    assert_no_orphans(&marker, &case);
    assert_eq!(integrity(&db), "ok", "{case}");
    report_fault(backend, phase, fault, s(tool[0], "status"));
}

#[test]
fn llama_bench_faults() {
    let bin = tools().join("llama-bench");
    let b = format!("binary = \"{}\"", bin.display());
    tool_case(
        "llama-bench",
        "start",
        "binary missing",
        "binary = \"/nonexistent/llama-bench\"",
        "\"tg8\"",
        "timeout_s = 60",
        (&["unavailable"], "/nonexistent/llama-bench"),
        |_| {},
    );
    tool_case(
        "llama-bench",
        "start",
        "exits non-zero",
        &format!("{b}\nargs = [\"--no-such-flag\"]"),
        "\"tg8\"",
        "timeout_s = 60",
        (&["failed"], "exited with code 1"),
        |_| {},
    );
    tool_case(
        "llama-bench",
        "load",
        "memory limit",
        &b,
        "\"tg8\"",
        "timeout_s = 60\nmemory_limit_mb = 4",
        (&["oom"], "memory_limit_mb = 4"),
        |_| {},
    );
    // Signalled once it has spent 0.2 s of CPU: loaded and measuring (tg512 × 2 runs for
    // seconds on this model).
    let working = |m: &str| {
        find(m, "llama-bench")
            .into_iter()
            .find(|p| cpu_ticks(*p) >= 20)
    };
    tool_case(
        "llama-bench",
        "decode",
        "SIGKILL",
        &b,
        "\"tg512\"",
        "timeout_s = 60",
        (&["crashed"], "(SIGKILL), not sent by tokbench"),
        |m| {
            signal_when("llama-bench", nix::sys::signal::Signal::SIGKILL, || {
                working(m)
            })
        },
    );
    // A stopped llama-bench times out as a hung one does (checked in-process, at once, by
    // the runner's `in_process.rs`); the real one waits out 15 s, so only the full matrix.
    if std::env::var("TOKBENCH_FAULT_MATRIX").as_deref() != Ok("full") {
        return;
    }
    tool_case(
        "llama-bench",
        "decode",
        "SIGSTOP",
        &b,
        "\"tg512\"",
        // The engine's cell after it (tg512 twice, about 3.5 s) fits well inside.
        "timeout_s = 15",
        (&["timeout"], "did not finish within 15 s"),
        |m| {
            signal_when("llama-bench", nix::sys::signal::Signal::SIGSTOP, || {
                working(m)
            })
        },
    );
}

#[test]
fn llama_server_faults_at_start() {
    let bin = tools().join("llama-server");
    let b = format!("binary = \"{}\"", bin.display());
    tool_case(
        "llama-server",
        "start",
        "binary missing",
        "binary = \"/nonexistent/llama-server\"",
        "\"tg8\"",
        "timeout_s = 60",
        (&["unavailable"], "/nonexistent/llama-server"),
        |_| {},
    );
    tool_case(
        "llama-server",
        "start",
        "exits non-zero",
        &format!("{b}\nargs = [\"--no-such-flag\"]"),
        "\"tg8\"",
        "timeout_s = 60",
        (&["failed"], "exited with code 1 before it was healthy"),
        |_| {},
    );
    // A port someone else holds.
    let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = held.local_addr().unwrap().port();
    tool_case(
        "llama-server",
        "start",
        "port taken",
        &format!("{b}\nport = {port}"),
        "\"tg8\"",
        "timeout_s = 60",
        (&["failed"], &format!("port {port} is already in use")),
        |_| {},
    );
    drop(held);
    tool_case(
        "llama-server",
        "load",
        "memory limit",
        &b,
        "\"tg8\"",
        "timeout_s = 60\nmemory_limit_mb = 4",
        (&["oom"], "memory_limit_mb = 4"),
        |_| {},
    );
    // Stopped while loading: never healthy.
    tool_case(
        "llama-server",
        "load",
        "SIGSTOP",
        &format!("{b}\nstartup_timeout_s = 3"),
        "\"tg8\"",
        "timeout_s = 60",
        (&["timeout"], "not healthy within"),
        |m| {
            signal_when("llama-server", nix::sys::signal::Signal::SIGSTOP, || {
                find(m, "llama-server").first().copied()
            })
        },
    );
}

#[test]
fn llama_server_faults_while_answering() {
    let bin = tools().join("llama-server");
    let b = format!("binary = \"{}\"", bin.display());
    // Killed and stopped while it answers: once `/slots` shows a slot working.
    let decoding = |m: &str, port: u16| {
        let pid = find(m, "llama-server").first().copied()?;
        http_get(port, "/slots")
            .contains("\"is_processing\":true")
            .then_some(pid)
    };
    let port = free_port();
    tool_case(
        "llama-server",
        "decode",
        "SIGKILL",
        &format!("{b}\nport = {port}"),
        "\"tg512\"",
        "timeout_s = 60",
        (&["crashed"], "(SIGKILL), not sent by tokbench"),
        |m| {
            signal_when("llama-server", nix::sys::signal::Signal::SIGKILL, || {
                decoding(m, port)
            })
        },
    );
    let port = free_port();
    tool_case(
        "llama-server",
        "decode",
        "SIGSTOP",
        &format!("{b}\nport = {port}"),
        "\"tg512\"",
        // Requests to the stopped server time out; the engine's tg512 cell fits well inside.
        "timeout_s = 15",
        (&["failed", "timeout"], "requests failed"),
        |m| {
            signal_when("llama-server", nix::sys::signal::Signal::SIGSTOP, || {
                decoding(m, port)
            })
        },
    );
}

/// A server that ignores SIGTERM on its way out (a wrapper that outlives the real server and
/// shrugs TERM off): the cell's figures stand, tokbench kills the rest after its grace.
#[test]
fn a_server_that_hangs_at_shutdown_is_killed_and_its_figures_kept() {
    let bin = tools().join("llama-server");
    let tmp = tempfile::tempdir().unwrap();
    let wrapper = tmp.path().join("stubborn-server.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ntrap '' TERM\n\"{}\" \"$@\"\nexec sleep 600\n",
            bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let suite = tool_suite(
        tmp.path(),
        "llama-server",
        &format!("binary = \"{}\"", wrapper.display()),
        "\"tg8\"",
        "timeout_s = 60",
    );
    let db = tmp.path().join("r.db");
    let marker = mark("server-shutdown");
    let (mk, mv) = marker.split_once('=').unwrap();
    let started = Instant::now();
    let out = run(
        &[
            "run",
            suite.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--plain",
        ],
        &[(mk, mv)],
        true,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(120));
    let rows = results(&db);
    assert!(rows.iter().all(|r| s(r, "status") == "ok"), "{rows:?}");
    assert_no_orphans(&marker, "llama-server shutdown");
    assert_eq!(integrity(&db), "ok");
    report_fault("llama-server", "shutdown", "ignores SIGTERM", "ok");
}
