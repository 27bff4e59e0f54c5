//! Real backends on the synthesized tiny model: llama-bench and llama-server built by
//! `tokbench backends build` from the vendored llama.cpp (the first test to need them builds
//! them, minutes, into the test cache), driven by the real binary into a real SQLite file.

mod common;

use std::process::Command;

use common::*;

#[test]
fn backends_lists_the_built_tools() {
    let out = with_tools(&["backends", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["backend"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"))
            .clone()
    };
    for name in ["llama-bench", "llama-server"] {
        let r = found(name);
        assert_eq!(r["found"], "yes", "{r}");
        assert!(
            r["where"].as_str().unwrap().contains("tokbench build"),
            "{r}"
        );
    }
    assert_eq!(found("engine")["found"], "yes");
}

#[test]
fn engine_llama_bench_and_llama_server_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "cc.toml",
        "name = \"cc\"\nbackends = [\"engine\", \"llama-bench\", \"llama-server\"]\n\
         [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 2\n\
         [workload]\ntests = [\"pp64\", \"tg16\"]\nrepetitions = 2\nwarmup = true\ntimeout_s = 120\n\
         [serve]\nconcurrency = [1, 2]\nrequests_per_stream = 2\n",
    );
    let db = tmp.path().join("cc.db");
    let mark = format!("cc-{}", std::process::id());
    let out = with_tools(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .env("TOKBENCH_TEST_MARK", &mark)
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("8 ok, 0 failed of 8"), "{err}");
    let rows = query(
        &db,
        "SELECT * FROM v_results ORDER BY backend, test, concurrency, metric_source",
    );
    // engine 2 + llama-bench 2 + llama-server (2 tests × 2 levels × client/server).
    assert_eq!(rows.len(), 12, "{rows:?}");
    for r in &rows {
        assert_eq!(s(r, "status"), "ok", "{r:?}");
    }
    let of = |backend: &str, test: &str| -> Vec<&serde_json::Map<String, serde_json::Value>> {
        rows.iter()
            .filter(|r| s(r, "backend") == backend && s(r, "test") == test)
            .collect()
    };
    let lb_pp = of("llama-bench", "pp64")[0];
    assert_eq!(s(lb_pp, "metric_source"), "engine");
    assert_eq!(f(lb_pp, "n_reps"), Some(2.0));
    assert!(f(lb_pp, "prefill_tps").unwrap() > 0.0);
    // llama-bench's own record, every field of it, is kept.
    let raw = query(&db, "SELECT backend_json FROM result r JOIN backend_build b ON b.id = r.backend_build_id WHERE b.name = 'llama-bench'");
    let j: serde_json::Value = serde_json::from_str(s(&raw[0], "backend_json")).unwrap();
    for k in [
        "build_commit",
        "cpu_info",
        "model_type",
        "samples_ns",
        "n_threads",
    ] {
        assert!(j.get(k).is_some(), "{k} in {j}");
    }
    // llama-server: client and server figures side by side, per concurrency level.
    let srv_tg = of("llama-server", "tg16");
    assert_eq!(srv_tg.len(), 4);
    for r in &srv_tg {
        assert_eq!(s(r, "workload_kind"), "serve");
        assert!(f(r, "decode_tps").unwrap() > 0.0, "{r:?}");
    }
    let client_c2 = srv_tg
        .iter()
        .find(|r| s(r, "metric_source") == "client" && f(r, "concurrency") == Some(2.0))
        .unwrap();
    assert_eq!(f(client_c2, "n_requests"), Some(4.0));
    assert_eq!(f(client_c2, "n_requests_failed"), Some(0.0));
    for k in [
        "ttft_p50_ms",
        "ttft_p99_ms",
        "tpot_ms",
        "itl_p50_ms",
        "itl_p99_ms",
        "e2e_p50_ms",
        "request_throughput",
        "output_tps",
    ] {
        assert!(f(client_c2, k).unwrap() > 0.0, "{k}: {client_c2:?}");
    }
    assert!(f(client_c2, "ttft_p99_ms").unwrap() >= f(client_c2, "ttft_p50_ms").unwrap());
    let server_pp = of("llama-server", "pp64")
        .into_iter()
        .find(|r| s(r, "metric_source") == "server")
        .unwrap();
    assert!(
        f(server_pp, "prefill_tps").unwrap() > 0.0,
        "the server's own prompt rate"
    );
    assert_eq!(
        f(server_pp, "decode_tps"),
        None,
        "one generated token is not a decode rate"
    );
    assert!(
        f(server_pp, "concurrency").is_some(),
        "a server row belongs to its level's series"
    );
    assert_eq!(
        f(server_pp, "ttft_p50_ms"),
        None,
        "latencies are the client's"
    );
    // Every request's raw timings, with the exact prompt length the tokenizer built.
    let reqs = query(&db, "SELECT q.* FROM request q JOIN result r ON r.id = q.result_id JOIN workload w ON w.id = r.workload_id WHERE w.label = 'pp64'");
    assert_eq!(reqs.len(), 2 + 4);
    for q in &reqs {
        assert_eq!(f(q, "n_prompt"), Some(64.0), "{q:?}");
        assert!(q["error"].is_null());
        assert!(s(q, "server_json").contains("prompt_ms"));
    }
    // The server was stopped with its process group: nothing tokbench started is left.
    assert!(processes_with_env(&format!("TOKBENCH_TEST_MARK={mark}")).is_empty());
    let shown = with_tools(&["results", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("llama-bench") && text.contains("llama-server") && text.contains("client"),
        "{text}"
    );
    // The report keeps every series apart: the client's and the server's figures, and each
    // concurrency level, are rows of their own (not collapsed into the newest).
    let out_dir = tmp.path().join("report");
    let rep = with_tools(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).unwrap();
    for label in [
        "llama-server (client, c1)",
        "llama-server (client, c2)",
        "llama-server (server, c1)",
        "llama-server (server, c2)",
        "llama-bench",
        "engine",
    ] {
        assert!(csv.contains(label), "{label} in {csv}");
    }
    assert_eq!(
        csv.lines().count(),
        1 + 12,
        "one row per stored result: {csv}"
    );
}

#[test]
fn the_openai_client_against_llama_server_v1_keeps_the_key_out() {
    let bin = tools().join("llama-server");
    let model = {
        // The tiny model, synthesized into the shared cache.
        run_ok(&["model", "synth", "--arch", "tiny", "--quant", "Q8_0"]);
        std::fs::read_dir(cache_dir().join("models"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("synth-tiny-s0-") && n.contains("-Q8_0-") && n.ends_with(".gguf")
            })
            .unwrap()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(&bin)
        .args([
            "-m",
            model.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "-t",
            "2",
            "-c",
            "1024",
            "--api-key",
            "sekrit-key-123",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "oa.toml",
        &format!(
            "name = \"oa\"\nbackends = [\"openai\"]\n[backend.openai]\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
             model = \"tiny\"\napi_key_env = \"TB_TEST_KEY\"\nstartup_timeout_s = 60\n\
             [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[workload]\ntests = [\"pp32\", \"tg8\"]\n\
             repetitions = 2\ntimeout_s = 60\n"
        ),
    );
    let db = tmp.path().join("oa.db");
    let out = with_tools(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .env("TB_TEST_KEY", "sekrit-key-123")
    .output()
    .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let rows = query(
        &db,
        "SELECT * FROM v_results WHERE metric_source = 'client' ORDER BY test",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(s(r, "status"), "ok", "{r:?}");
        assert_eq!(s(r, "backend"), "openai");
        assert!(f(r, "ttft_ms").unwrap() > 0.0);
    }
    // The key authenticated every request and is nowhere in what tokbench kept.
    assert!(!err.contains("sekrit-key-123"));
    let mut bytes = std::fs::read(&db).unwrap();
    if let Ok(w) = std::fs::read(db.with_extension("db-wal")) {
        bytes.extend(w);
    }
    assert!(
        !bytes.windows(14).any(|w| w == b"sekrit-key-123"),
        "the API key reached the database"
    );
}

#[test]
fn a_server_that_never_becomes_healthy_fails_and_the_suite_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    // A "server" that ignores its arguments and never listens.
    let fake = tmp.path().join("never-healthy.sh");
    std::fs::write(&fake, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&fake).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let suite = write_suite(
        tmp.path(),
        "nh.toml",
        &format!(
            "name = \"nh\"\nbackends = [\"llama-server\", \"engine\"]\n[backend.llama-server]\nbinary = \"{}\"\n\
             startup_timeout_s = 1.5\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 2\n\
             [workload]\ntests = [\"tg8\"]\nrepetitions = 2\ntimeout_s = 60\n",
            fake.display()
        ),
    );
    let db = tmp.path().join("nh.db");
    let mark = format!("nh-{}", std::process::id());
    let started = std::time::Instant::now();
    let out = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .env("TOKBENCH_TEST_MARK", &mark)
    .output()
    .unwrap();
    assert!(started.elapsed().as_secs() < 60);
    assert_eq!(
        out.status.code(),
        Some(4),
        "some cells failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = query(
        &db,
        "SELECT backend, status, error FROM v_results ORDER BY backend",
    );
    assert_eq!(s(&rows[0], "backend"), "engine");
    assert_eq!(s(&rows[0], "status"), "ok", "the next cell ran");
    assert_eq!(s(&rows[1], "status"), "timeout");
    assert!(
        s(&rows[1], "error").contains("not healthy within"),
        "{rows:?}"
    );
    assert!(
        processes_with_env(&format!("TOKBENCH_TEST_MARK={mark}")).is_empty(),
        "the server outlived tokbench"
    );
}

#[test]
fn a_server_that_exits_at_start_and_a_missing_binary() {
    let bin = tools().join("llama-server");
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "bad.toml",
        &format!(
            "name = \"bad\"\nbackends = [\"llama-server\", \"llama-bench\"]\n\
             [backend.llama-server]\nbinary = \"{}\"\nargs = [\"--no-such-flag\"]\n\
             [backend.llama-bench]\nbinary = \"/nonexistent/llama-bench\"\n\
             [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 2\n\
             [workload]\ntests = [\"tg8\"]\nrepetitions = 2\ntimeout_s = 60\n",
            bin.display()
        ),
    );
    let db = tmp.path().join("bad.db");
    let out = with_tools(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = query(&db, "SELECT r.status, r.error, r.log_tail, v.backend, v.n_reps_expected, v.concurrency FROM result r JOIN v_results v ON v.result_id = r.id ORDER BY v.backend");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(s(&rows[0], "backend"), "llama-bench");
    assert_eq!(s(&rows[0], "status"), "unavailable");
    assert!(
        s(&rows[0], "error").contains("/nonexistent/llama-bench"),
        "{rows:?}"
    );
    assert_eq!(s(&rows[1], "status"), "failed");
    assert!(
        s(&rows[1], "error").contains("before it was healthy"),
        "{rows:?}"
    );
    assert!(
        s(&rows[1], "log_tail").contains("no-such-flag"),
        "the server's own words: {rows:?}"
    );
    // Expected as when it runs: 2 repetitions for llama-bench, 2 requests × 1 stream for
    // the server cell, which keeps its concurrency level (its series).
    assert_eq!(f(&rows[0], "n_reps_expected"), Some(2.0), "{rows:?}");
    assert_eq!(f(&rows[1], "n_reps_expected"), Some(2.0), "{rows:?}");
    assert_eq!(f(&rows[1], "concurrency"), Some(1.0), "{rows:?}");
}

/// Where vLLM is installed: `TOKBENCH_VLLM_MODEL` names a model it can serve
/// (e.g. `facebook/opt-125m`).
#[test]
#[ignore = "needs vllm (and TOKBENCH_VLLM_MODEL)"]
fn vllm_live() {
    let model = std::env::var("TOKBENCH_VLLM_MODEL").expect("TOKBENCH_VLLM_MODEL");
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "v.toml",
        &format!(
            "name = \"v\"\nbackends = [\"vllm\"]\n[backend.vllm]\nmodel = \"{model}\"\nstartup_timeout_s = 600\n\
             [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[workload]\ntests = [\"pp128\", \"tg32\"]\n\
             repetitions = 2\ntimeout_s = 120\n[serve]\nconcurrency = [1, 4]\n"
        ),
    );
    let db = tmp.path().join("v.db");
    let out = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = query(
        &db,
        "SELECT * FROM v_results WHERE metric_source = 'client'",
    );
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .all(|r| s(r, "status") == "ok" && f(r, "ttft_p50_ms").is_some()));
}

/// Where Ollama runs (`OLLAMA_HOST` or localhost:11434) with `TOKBENCH_OLLAMA_MODEL`
/// pulled (e.g. `llama3.2:1b`).
#[test]
#[ignore = "needs ollama (and TOKBENCH_OLLAMA_MODEL pulled)"]
fn ollama_live() {
    let model = std::env::var("TOKBENCH_OLLAMA_MODEL").expect("TOKBENCH_OLLAMA_MODEL");
    let host = std::env::var("OLLAMA_HOST").unwrap_or_else(|_| "127.0.0.1:11434".into());
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "o.toml",
        &format!(
            "name = \"o\"\nbackends = [\"ollama\"]\n[backend.ollama]\nbase_url = \"http://{host}\"\nmodel = \"{model}\"\n\
             [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[workload]\ntests = [\"tg32\"]\n\
             repetitions = 2\ntimeout_s = 120\n"
        ),
    );
    let db = tmp.path().join("o.db");
    let out = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = query(&db, "SELECT * FROM v_results ORDER BY metric_source");
    assert_eq!(rows.len(), 2, "client and server rows");
    let ps = query(&db, "SELECT json_extract(backend_json, '$.models[0].size_vram') AS vram FROM result WHERE metric_source = 'client'");
    assert!(
        f(&ps[0], "vram").is_some(),
        "/api/ps size_vram kept: {ps:?}"
    );
}

/// A scripted Ollama on loopback (std threads): `/api/version`, `/api/generate` answered
/// with the captured stream in crates/runner/tests/fixtures/ollama, `/api/ps`.
fn fake_ollama() -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runner/tests/fixtures/ollama"
    );
    let stream = std::fs::read(format!("{fixtures}/generate-stream.ndjson")).unwrap();
    let ps = std::fs::read(format!("{fixtures}/ps.json")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let (stream, ps) = (stream.clone(), ps.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                let (ctype, payload): (&str, Vec<u8>) = if request_line.contains("/api/generate") {
                    ("application/x-ndjson", stream)
                } else if request_line.contains("/api/ps") {
                    ("application/json", ps)
                } else {
                    ("application/json", br#"{"version":"0.0.0-fake"}"#.to_vec())
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    payload.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&payload);
            });
        }
    });
    port
}

#[test]
fn an_attached_ollama_is_measured_with_its_native_durations_and_ps() {
    let port = fake_ollama();
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "o.toml",
        &format!(
            "name = \"o\"\nbackends = [\"ollama\"]\n[backend.ollama]\nbase_url = \"http://127.0.0.1:{port}\"\nmodel = \"granite3.3:2b\"\n\
             [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\", \"Q4_K_M\"]\n[workload]\ntests = [\"pp16+tg64\"]\n\
             repetitions = 2\ntimeout_s = 30\n"
        ),
    );
    let db = tmp.path().join("o.db");
    let out = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Once, not once per suite model: Ollama serves its own model, stored under its name.
    let rows = query(&db, "SELECT * FROM v_results ORDER BY metric_source");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (client, server) = (&rows[0], &rows[1]);
    assert_eq!(s(client, "model"), "granite3.3:2b");
    assert_eq!(s(client, "backend_version"), "0.0.0-fake");
    assert_eq!(s(client, "metric_source"), "client");
    assert_eq!(s(server, "metric_source"), "server");
    // Ollama's own figures: 64 tokens in 608.6536 ms, 51 prompt tokens in 107.1611 ms.
    assert!(
        (f(server, "decode_tps").unwrap() - 64.0 / 0.6086536).abs() < 1e-6,
        "{server:?}"
    );
    assert!(
        (f(server, "prefill_tps").unwrap() - 51.0 / 0.1071611).abs() < 1e-6,
        "{server:?}"
    );
    assert!(
        client["load_ms"].is_null(),
        "an attached server's start is not a load time"
    );
    let ps = query(&db, "SELECT json_extract(backend_json, '$.models[0].size_vram') AS vram FROM result WHERE metric_source = 'client'");
    assert_eq!(f(&ps[0], "vram"), Some(8372905984.0));
    let reqs = query(&db, "SELECT n_gen, n_prompt FROM request");
    assert_eq!(reqs.len(), 2, "repetitions = 2 requests, once: {reqs:?}");
    assert!(reqs
        .iter()
        .all(|r| f(r, "n_gen") == Some(64.0) && f(r, "n_prompt") == Some(51.0)));
}

#[test]
fn sigterm_during_a_server_cell_stops_the_server_and_marks_the_run() {
    let bin = tools().join("llama-server");
    let tmp = tempfile::tempdir().unwrap();
    // Long enough that SIGTERM surely lands while requests stream.
    let suite = write_suite(
        tmp.path(),
        "long.toml",
        &format!(
            "name = \"long\"\nbackends = [\"llama-server\"]\n[backend.llama-server]\nbinary = \"{}\"\n\
             [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 2\n\
             [workload]\ntests = [\"tg512\"]\nrepetitions = 200\ntimeout_s = 120\n",
            bin.display()
        ),
    );
    let db = tmp.path().join("long.db");
    let marker = format!("TOKBENCH_TEST_MARK=term-{}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    let mut child = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .env(k, v)
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait (bounded) until llama-server runs under this tokbench and the cell has started.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "llama-server never started"
        );
        let servers: Vec<u32> = processes_with_env(&marker)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .map(|c| c.trim() == "llama-server")
                    .unwrap_or(false)
            })
            .collect();
        if !servers.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Let it become healthy and stream for a moment.
    std::thread::sleep(std::time::Duration::from_secs(3));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        started.elapsed().as_secs() < 30,
        "stopping took {:?}",
        started.elapsed()
    );
    assert!(
        processes_with_env(&marker).is_empty(),
        "a process outlived tokbench: {err}"
    );
    let runs = query(&db, "SELECT status FROM run");
    assert_eq!(s(&runs[0], "status"), "interrupted");
    let rows = query(&db, "SELECT status, error FROM result");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(s(&rows[0], "status"), "interrupted", "{rows:?}");
    report_fault(
        "tokbench",
        "llama-server cell",
        "SIGTERM",
        "interrupted, exit 130",
    );
}

/// Backends are started from argument vectors: a model path and extra arguments full of
/// shell syntax reach llama-bench and llama-server as plain strings, and nothing runs them.
#[test]
fn shell_syntax_in_paths_and_arguments_is_never_run() {
    let out = run_ok(&["model", "synth", "--arch", "tiny", "--quant", "Q8_0"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let model = stdout.trim().rsplit('\t').next().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let pwned = tmp.path().join("pwned");
    // Relative: a shell would create `pwned` in tokbench's working directory, `tmp`.
    let evil = tmp.path().join("m;touch pwned;$(touch pwned).gguf");
    std::fs::copy(&model, &evil).unwrap();
    let suite = write_suite(
        tmp.path(),
        "evil.toml",
        &format!(
            "name = \"evil\"\nbackends = [\"llama-bench\", \"llama-server\"]\n\
             [backend.llama-server]\nargs = [\"--alias\", \"x`touch pwned`\"]\n\
             [[model]]\npath = {evil:?}\n[engine]\nthreads = 1\n\
             [workload]\ntests = [\"tg8\"]\nrepetitions = 2\nwarmup = false\ntimeout_s = 60\n",
            evil = evil.display().to_string(),
        ),
    );
    let db = tmp.path().join("evil.db");
    let out = with_tools(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .current_dir(tmp.path())
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!pwned.exists(), "a shell ran something from the suite");
    let rows = query(&db, "SELECT backend, status FROM v_results");
    assert_eq!(
        rows.len(),
        3,
        "llama-bench, and the server's two rows: {rows:?}"
    );
    assert!(rows.iter().all(|r| s(r, "status") == "ok"), "{rows:?}");
}

/// Issue 16, item 5: the offload settings beyond `n_gpu_layers` reach each backend as its
/// own flags, are stored in their columns and make series of their own. On a CPU build
/// every weight is on the CPU whatever they say (the same bytes in the same buffers, Q4_0's
/// repacked ones included): that an override moves weights off a device is checked on
/// lavapipe by scripts/vulkan-check.sh.
#[test]
fn offload_settings_reach_every_backend_and_are_series_of_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "ot.toml",
        "name = \"ot\"\nbackends = [\"engine\", \"llama-bench\", \"llama-server\"]\n\
         [[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\nthreads = 2\n\
         split_mode = [\"layer\", \"none\"]\noverride_tensor = [\"\", 'blk\\.[0-3]\\..*=CPU']\n\
         [workload]\ntests = [\"pp32\"]\nrepetitions = 1\nwarmup = false\ntimeout_s = 120\n\
         [serve]\nconcurrency = [1]\nrequests_per_stream = 1\n",
    );
    let db = tmp.path().join("ot.db");
    let out = with_tools(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--plain",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("12 ok, 0 failed of 12"), "{err}");
    let rows = query(
        &db,
        "SELECT backend, metric_source, split_mode, tensor_buft_overrides, model_buffer_bytes,
                repack_buffer_bytes, status FROM v_results ORDER BY result_id",
    );
    let pattern = r"blk\.[0-3]\..*=CPU";
    for r in &rows {
        assert_eq!(s(r, "status"), "ok", "{r:?}");
        assert!(
            r["split_mode"].is_null() || s(r, "split_mode") == "none",
            "layer is llama.cpp's default, stored as NULL: {r:?}"
        );
        assert!(
            r["tensor_buft_overrides"].is_null() || s(r, "tensor_buft_overrides") == pattern,
            "{r:?}"
        );
    }
    // Each backend and source: four series, one per setting pair.
    let series = query(
        &db,
        "SELECT backend, metric_source, COUNT(DISTINCT IFNULL(split_mode, '-') || IFNULL(tensor_buft_overrides, '-')) AS n
         FROM v_results GROUP BY backend, metric_source",
    );
    assert_eq!(series.len(), 4, "{series:?}");
    for r in &series {
        assert_eq!(f(r, "n"), Some(4.0), "{r:?}");
    }
    // llama-bench ran with the flags: its own record echoes them.
    let echoed = query(
        &db,
        "SELECT r.split_mode AS ours, json_extract(r.backend_json, '$.split_mode') AS sm,
                json_extract(r.backend_json, '$.tensor_buft_overrides') AS ot,
                r.tensor_buft_overrides AS our_ot
         FROM result r JOIN backend_build b ON b.id = r.backend_build_id WHERE b.name = 'llama-bench'",
    );
    assert_eq!(echoed.len(), 4);
    for r in &echoed {
        let sm = if r["ours"].is_null() { "layer" } else { "none" };
        assert_eq!(s(r, "sm"), sm, "{r:?}");
        let ot = if r["our_ot"].is_null() {
            "none"
        } else {
            pattern
        };
        assert_eq!(s(r, "ot"), ot, "{r:?}");
    }
    // The results table names the settings that vary.
    let shown = with_tools(&["results", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(pattern) && text.contains("none"), "{text}");
}
