use super::*;

fn parse(text: &str) -> Result<Suite, SuiteError> {
    Suite::from_toml(text, Path::new("bench-configs/t.toml"))
}

const GOOD: &str = r#"
name = "t"
[[model]]
synth = "tiny"
quants = ["Q8_0", "Q4_K_M"]

[engine]
threads = [1, 2]

[workload]
tests = ["pp512", "tg128"]
repetitions = 3
"#;

#[test]
fn backends_multiply_the_matrix_and_servers_get_concurrency_levels() {
    // `backends` is a top-level key: it comes before the tables.
    let text = format!(
        "backends = [\"engine\", \"llama-server\", \"openai\"]\n{GOOD}\n\
         [backend.openai]\nbase_url = \"http://h:8000/v1/\"\nmodel = \"m\"\napi_key_env = \"KEY\"\n\
         [serve]\nconcurrency = [1, 4]\n"
    );
    let s = parse(&text).unwrap();
    let cells = s.cells();
    // Per model (2): engine 2 threads × 2 tests; llama-server 2 × 2 × 2 levels; and
    // once (it serves its own model, not the suite's): openai, no engine axes, 2 × 2.
    assert_eq!(cells.len(), 2 * (4 + 8) + 4);
    assert_eq!(
        cells
            .iter()
            .filter(|c| c.backend == BackendKind::OpenAi)
            .count(),
        4
    );
    let server: Vec<_> = cells
        .iter()
        .filter(|c| c.backend == BackendKind::LlamaServer)
        .collect();
    assert_eq!(server[0].concurrency, Some(1));
    assert_eq!(server[1].concurrency, Some(4));
    assert!(cells
        .iter()
        .filter(|c| c.backend == BackendKind::Engine)
        .all(|c| c.concurrency.is_none()));
    let oa = s.settings(BackendKind::OpenAi);
    assert_eq!(
        oa.base_url.as_deref(),
        Some("http://h:8000/v1"),
        "trailing slash dropped"
    );
    assert_eq!(oa.api_key_env.as_deref(), Some("KEY"));
    // Without `backends`, the engine alone: the old matrix, the old cell indices.
    assert_eq!(parse(GOOD).unwrap().cells().len(), 8);
}

#[test]
fn tests_a_backend_cannot_measure_are_refused() {
    let depth = GOOD.replace(
        "tests = [\"pp512\", \"tg128\"]",
        "tests = [\"pp512 @ d4096\"]",
    );
    let e = parse(&format!(
        "backends = [\"engine\", \"llama-server\"]\n{depth}"
    ))
    .unwrap_err();
    assert!(e.to_string().contains("Use `pp4608`"), "{e}");
    let pg = GOOD.replace(
        "tests = [\"pp512\", \"tg128\"]",
        "tests = [\"pp512+tg128\"]",
    );
    let e = parse(&format!("backends = [\"llama-bench\"]\n{pg}")).unwrap_err();
    assert!(
        e.to_string()
            .contains("give `pp512` and `tg128` as separate tests"),
        "{e}"
    );
    // A server takes pp+tg gladly: a prompt, then generation.
    assert!(parse(&format!("backends = [\"llama-server\"]\n{pg}")).is_ok());
}

#[test]
fn bad_backend_settings_name_the_key() {
    let cases = [
        ("backends = [\"llamacpp\"]\n", "unknown backend `llamacpp`"),
        ("backends = [\"engine\", \"engine\"]\n", "listed twice"),
        ("backends = []\n", "the list is empty"),
        (
            "backends = [\"openai\"]\n",
            "needs a `[backend.openai]` table",
        ),
        (
            "backends = [\"openai\"]\n[backend.openai]\nmodel = \"m\"\n",
            "needs `base_url",
        ),
        (
            "backends = [\"openai\"]\n[backend.openai]\nbase_url = \"ftp://x\"\nmodel = \"m\"\n",
            "not an http:// or https:// URL",
        ),
        (
            "backends = [\"ollama\"]\n[backend.ollama]\nbase_url = \"http://x\"\n",
            "needs `model",
        ),
        (
            "backends = [\"vllm\"]\n[backend.vllm]\nbase_url = \"http://x/v1\"\n",
            "`[backend.vllm]` needs `model",
        ),
        (
            "[backend.tgi]\nbinary = \"x\"\n",
            "table `[backend.tgi]`: unknown backend",
        ),
        (
            "[backend.llama-server]\nstartup_timeout_s = 0\n",
            "not a positive number of seconds",
        ),
        ("[serve]\nconcurrency = [0]\n", "not between 1 and 4096"),
        ("[serve]\nconcurrency = 2\nrequest_rate = 1.5\n", "not both"),
        (
            "[serve]\nrequest_rate = -1.0\n",
            "not a positive number of requests",
        ),
        (
            "[backend.llama-server]\nport = 70000\n",
            "key `port`: 70000 is not a TCP port",
        ),
        (
            "[backend.llama-server]\nport = 8080\nbase_url = \"http://h:1\"\n",
            "give one or the other",
        ),
        (
            "[backend.llama-bench]\nport = 8080\n",
            "only a server tokbench starts",
        ),
        (
            "[backend.llama-server]\nargs = [\"--port=9\"]\n",
            "`--port=9` is tokbench's to set",
        ),
    ];
    for (extra, want) in cases {
        // Top-level keys first, tables after the rest of the suite.
        let (top, tables) = match extra.find('[') {
            Some(0) => ("", extra),
            _ if extra.starts_with("backends") => match extra.find("\n[") {
                Some(i) => (&extra[..=i], &extra[i + 1..]),
                None => (extra, ""),
            },
            _ => ("", extra),
        };
        let text = format!("{top}{GOOD}\n{tables}");
        let e = parse(&text).unwrap_err();
        assert!(e.to_string().contains(want), "{extra:?}: {e}");
        assert!(e.to_string().contains("t.toml"), "{e}");
    }
}

#[test]
fn memory_limit_is_a_positive_number_of_mib() {
    let with = |v: &str| {
        GOOD.replace(
            "[workload]\n",
            &format!("[workload]\nmemory_limit_mb = {v}\n"),
        )
    };
    assert_eq!(parse(&with("2048")).unwrap().memory_limit_mb, Some(2048));
    assert_eq!(parse(GOOD).unwrap().memory_limit_mb, None);
    for bad in ["0", "-5"] {
        let e = parse(&with(bad)).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "key `memory_limit_mb`: {bad} is not a positive number of MiB"
            )),
            "{e}"
        );
    }
}

#[test]
fn expands_the_matrix_model_major() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.models.len(), 2);
    assert_eq!(s.engines.len(), 2);
    let cells = s.cells();
    assert_eq!(cells.len(), 8);
    assert_eq!(cells[0].test.label(), "pp512");
    assert_eq!(cells[1].test.label(), "tg128");
    assert_eq!(cells[0].engine.n_threads, Some(1));
    assert_eq!(cells[2].engine.n_threads, Some(2));
    assert!(matches!(
        cells[4].model,
        ModelSource::Synth {
            quant: QuantPreset::Q4_K_M,
            ..
        }
    ));
    assert_eq!(s.repetitions, 3);
    assert!(s.warmup);
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = GOOD.replace("repetitions = 3", "repetitions = 3\nrepetiton = 4");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line, Some(13), "{e}");
    assert!(e.to_string().contains("repetiton"), "{e}");
    assert!(e.to_string().starts_with("bench-configs/t.toml:13:"), "{e}");
}

#[test]
fn wrong_type_names_line() {
    let text = GOOD.replace("repetitions = 3", "repetitions = \"three\"");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line, Some(12), "{e}");
}

#[test]
fn impossible_values_name_line_and_key() {
    let cases = [
        ("repetitions = 3", "repetitions = 0", 12, "repetitions"),
        ("threads = [1, 2]", "threads = [1, -2]", 8, "threads"),
        ("\"Q4_K_M\"", "\"Q4_K_Z\"", 5, "quants"),
        ("\"tg128\"", "\"tg0\"", 11, "tests"),
        ("synth = \"tiny\"", "synth = \"huge\"", 4, "synth"),
    ];
    for (from, to, line, key) in cases {
        let e = parse(&GOOD.replace(from, to)).unwrap_err();
        assert_eq!(e.line, Some(line), "{to}: {e}");
        assert!(e.message.contains(key), "{to}: {e}");
    }
}

#[test]
fn quantized_v_cache_needs_flash_attention() {
    let text = GOOD.replace("threads = [1, 2]", "cache_type_v = \"q8_0\"");
    let e = parse(&text).unwrap_err();
    assert!(e.message.contains("flash_attn"), "{e}");
    let ok = GOOD.replace(
        "threads = [1, 2]",
        "cache_type_v = \"q8_0\"\nflash_attn = true",
    );
    assert_eq!(parse(&ok).unwrap().engines[0].type_v, CacheType::Q8_0);
}

#[test]
fn depths_multiply_tests_and_files_resolve_relative_to_the_suite() {
    let text = r#"
[[model]]
path = "../models/m.gguf"
[workload]
tests = ["pp512", "tg128 @ d64"]
depths = [0, 1024]
"#;
    let s = parse(text).unwrap();
    let labels: Vec<String> = s.tests.iter().map(|t| t.label()).collect();
    assert_eq!(labels, ["pp512", "pp512 @ d1024", "tg128 @ d64"]);
    assert_eq!(
        s.models[0],
        ModelSource::File {
            path: PathBuf::from("bench-configs/../models/m.gguf")
        }
    );
}

#[test]
fn a_model_needs_exactly_one_source() {
    let e = parse("[[model]]\nseed = 1\n[workload]\ntests=[\"pp8\"]\n").unwrap_err();
    assert!(e.message.contains("exactly one"), "{e}");
    assert!(parse("[workload]\ntests=[\"pp8\"]\n")
        .unwrap_err()
        .message
        .contains("[[model]]"));
}

#[test]
fn a_type_error_names_its_key() {
    let text = "name = \"x\"\n[workload]\ntests = [\"pp1\"]\nwarmup = \"yes\"\n";
    let e = Suite::from_toml(text, Path::new("s.toml")).unwrap_err();
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("key `warmup`"), "{e}");
    assert!(e.message.contains("yes"), "{e}");
    // repetitions takes a number or "auto", and says so.
    let e = parse(&GOOD.replace("repetitions = 3", "repetitions = \"three\"")).unwrap_err();
    assert!(
        e.message.contains("key `repetitions`") && e.message.contains("auto"),
        "{e}"
    );
    let text = "name = \"x\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[workload]\ntests = [\"pp1\"]\nrepetitions = \"auto\"\n";
    let s = Suite::from_toml(text, Path::new("s.toml")).unwrap();
    assert_eq!(s.auto_repetitions, Some(crate::AutoRepetitions::default()));
}

#[test]
fn offload_keys_are_axes_after_the_others() {
    let text = r#"name = "x"
backends = ["llama-bench"]
[[model]]
synth = "tiny"
quants = ["Q8_0"]
[engine]
threads = [1, 2]
split_mode = ["layer", "none"]
main_gpu = 1
tensor_split = ["3/1"]
override_tensor = ["", 'blk\.0\..*=CPU']
n_cpu_moe = 2
[workload]
tests = ["pp1"]
"#;
    let s = Suite::from_toml(text, Path::new("s.toml")).unwrap();
    let got: Vec<(Option<u32>, &str, &str)> = s
        .engines
        .iter()
        .map(|e| {
            (
                e.n_threads,
                e.offload.split_mode.name(),
                e.offload.overrides.as_str(),
            )
        })
        .collect();
    // The earlier keys vary slowest: a suite without the new keys keeps its cell order.
    assert_eq!(
        got,
        [
            (Some(1), "layer", ""),
            (Some(1), "layer", r"blk\.0\..*=CPU"),
            (Some(1), "none", ""),
            (Some(1), "none", r"blk\.0\..*=CPU"),
            (Some(2), "layer", ""),
            (Some(2), "layer", r"blk\.0\..*=CPU"),
            (Some(2), "none", ""),
            (Some(2), "none", r"blk\.0\..*=CPU"),
        ]
    );
    assert!(s
        .engines
        .iter()
        .all(|e| e.offload.main_gpu == 1 && e.offload.n_cpu_moe == 2));
    assert_eq!(s.engines[0].offload.tensor_split.to_string(), "3.00/1.00");
    // A suite without them runs at llama.cpp's defaults.
    let plain = parse(GOOD).unwrap();
    assert!(plain.engines.iter().all(|e| e.offload.is_default()));

    for (key, value, says) in [
        ("split_mode", "\"rows\"", "none, layer, row or tensor"),
        ("tensor_split", "\"3/x\"", "`x` is not a number"),
        ("override_tensor", "\"blk.0\"", "PATTERN=BUFFER"),
        ("main_gpu", "16", "main_gpu"),
        ("n_cpu_moe", "-1", "n_cpu_moe"),
    ] {
        let text = format!(
            "name = \"x\"\n[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\n{key} = {value}\n[workload]\ntests = [\"pp1\"]\n"
        );
        let e = Suite::from_toml(&text, Path::new("s.toml")).unwrap_err();
        assert_eq!(e.line, Some(6), "{key}: {e}");
        assert!(e.message.contains(says), "{key}: {e}");
        assert!(e.message.contains(key), "{key}: {e}");
    }
}

#[test]
fn what_the_engine_cannot_place_is_refused_before_a_run_and_left_to_llama_bench() {
    let suite = |backends: &str, key: &str| {
        format!(
            "name = \"x\"\n{backends}[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n[engine]\n{key}\n[workload]\ntests = [\"pp1\"]\n"
        )
    };
    for (key, says) in [
        ("tensor_split = \"3/1\"", "cannot split tensors (3.00/1.00)"),
        ("override_tensor = 'output=Vulkan0'", "not `output=Vulkan0`"),
        ("override_tensor = 'output=cpu'", "only on `CPU`"),
    ] {
        let e = Suite::from_toml(&suite("", key), Path::new("s.toml")).unwrap_err();
        assert!(
            e.message.contains(says) && e.message.contains("llama-bench"),
            "{e}"
        );
        assert_eq!(e.line, Some(6), "{e}");
        let fine = suite("backends = [\"llama-bench\"]\n", key);
        assert!(
            Suite::from_toml(&fine, Path::new("s.toml")).is_ok(),
            "{key}"
        );
    }
    // Kept on the CPU, the engine takes it.
    assert!(Suite::from_toml(
        &suite("", "override_tensor = 'output=CPU'"),
        Path::new("s.toml")
    )
    .is_ok());
}
