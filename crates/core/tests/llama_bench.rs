//! llama-bench output, captured from a real llama-bench run on synthetic models (see
//! `tests/fixtures/llama-bench/README.md`), read in all three machine formats: every file
//! parses, formats captured from one run agree, the numbers match llama-bench's own printed
//! table, and broken input is refused with the line (and field) to blame, never a panic.
//!
//! Fixtures from one run share a file stem: `r1.json` is stdout and `r1.md` stderr of one
//! `llama-bench -o json -oe md` run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tokbench_core::llama_bench::{
    detect_format, parse_any, parse_json, parse_jsonl, parse_sql, FlashAttn, LlamaBenchError,
    LlamaBenchFormat, LlamaBenchRecord, MAX_INPUT_BYTES, MAX_SAMPLES,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-bench")
}

/// Fixture files by run (file stem), then by extension.
fn fixtures() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut runs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in fs::read_dir(fixture_dir()).expect("fixture dir") {
        let path = entry.expect("dir entry").path();
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        if path.file_name().is_some_and(|n| n == "README.md") {
            continue;
        }
        let text = fs::read_to_string(&path).expect("fixture is UTF-8");
        runs.entry(stem.to_string_lossy().into_owned())
            .or_default()
            .insert(ext.to_string_lossy().into_owned(), text);
    }
    assert!(
        !runs.is_empty(),
        "no fixtures in {}",
        fixture_dir().display()
    );
    runs
}

const MACHINE: [&str; 3] = ["json", "jsonl", "sql"];

fn parse_as(ext: &str, text: &str) -> Result<Vec<LlamaBenchRecord>, LlamaBenchError> {
    match ext {
        "json" => parse_json(text),
        "jsonl" => parse_jsonl(text),
        "sql" => parse_sql(text),
        _ => unreachable!("not a machine format: {ext}"),
    }
}

/// What every format carries: the record without the per-repetition samples that SQL lacks.
fn without_samples(records: &[LlamaBenchRecord]) -> Vec<LlamaBenchRecord> {
    records
        .iter()
        .cloned()
        .map(|r| LlamaBenchRecord {
            samples_ns: None,
            samples_ts: None,
            ..r
        })
        .collect()
}

#[test]
fn every_fixture_parses() {
    let mut formats_seen = Vec::new();
    for (run, files) in fixtures() {
        for (ext, text) in &files {
            if !MACHINE.contains(&ext.as_str()) {
                continue;
            }
            let records = parse_as(ext, text).unwrap_or_else(|e| panic!("{run}.{ext}: {e}"));
            assert!(!records.is_empty(), "{run}.{ext}: no tests");
            assert_eq!(parse_any(text).unwrap(), records, "{run}.{ext}: parse_any");
            let expected = match ext.as_str() {
                "json" => LlamaBenchFormat::Json,
                "jsonl" => LlamaBenchFormat::Jsonl,
                _ => LlamaBenchFormat::Sql,
            };
            assert_eq!(detect_format(text), Some(expected), "{run}.{ext}");
            formats_seen.push(expected);
            for r in &records {
                assert!(!r.build_commit.is_empty(), "{run}.{ext}");
                assert!(r.model_filename.ends_with(".gguf"), "{run}.{ext}");
                assert!(r.model_size > 0 && r.model_n_params > 0, "{run}.{ext}");
                assert!(r.n_prompt + r.n_gen > 0, "{run}.{ext}");
                assert!(r.avg_ts > 0.0 && r.avg_ns > 0, "{run}.{ext}");
                assert!(r.stddev_ts >= 0.0, "{run}.{ext}");
                assert!(
                    r.extra.is_empty(),
                    "{run}.{ext}: unknown fields {:?}",
                    r.extra
                );
                if ext != "sql" {
                    check_samples(r, &format!("{run}.{ext}"));
                } else {
                    assert!(r.samples_ns.is_none() && r.samples_ts.is_none());
                }
            }
        }
    }
    for f in [
        LlamaBenchFormat::Json,
        LlamaBenchFormat::Jsonl,
        LlamaBenchFormat::Sql,
    ] {
        assert!(formats_seen.contains(&f), "no {f:?} fixture");
    }
}

/// `avg_ns` is the integer mean of `samples_ns`; `avg_ts` the mean of the per-repetition
/// speeds, which `samples_ts` prints to 6 significant digits.
fn check_samples(r: &LlamaBenchRecord, what: &str) {
    let ns = r.samples_ns.as_ref().expect("samples_ns");
    let ts = r.samples_ts.as_ref().expect("samples_ts");
    assert_eq!(ns.len(), ts.len(), "{what}");
    assert!(!ns.is_empty(), "{what}");
    let mean_ns = ns.iter().sum::<u64>() / ns.len() as u64;
    assert_eq!(r.avg_ns, mean_ns, "{what}: avg_ns");
    let tokens = f64::from(r.n_prompt + r.n_gen);
    for (t_ns, speed) in ns.iter().zip(ts) {
        let exact = 1e9 * tokens / *t_ns as f64;
        assert!(
            (speed - exact).abs() <= exact * 1e-5,
            "{what}: {speed} vs {exact}"
        );
    }
    let mean_ts = ts.iter().sum::<f64>() / ts.len() as f64;
    assert!(
        (r.avg_ts - mean_ts).abs() <= r.avg_ts * 1e-5,
        "{what}: avg_ts"
    );
}

#[test]
fn formats_of_one_run_agree() {
    let mut compared = 0;
    for (run, files) in fixtures() {
        let parsed: Vec<(&String, Vec<LlamaBenchRecord>)> = files
            .iter()
            .filter(|(ext, _)| MACHINE.contains(&ext.as_str()))
            .map(|(ext, text)| (ext, without_samples(&parse_as(ext, text).unwrap())))
            .collect();
        for pair in parsed.windows(2) {
            let ((ea, a), (eb, b)) = (&pair[0], &pair[1]);
            assert_eq!(a, b, "{run}: .{ea} and .{eb} differ");
            compared += 1;
        }
    }
    assert!(
        compared >= 2,
        "too few runs captured in two machine formats"
    );
}

/// One row of llama-bench's markdown table: model, test label, t/s mean and stddev.
#[derive(Debug)]
struct MdRow {
    model: String,
    test: String,
    avg_ts: f64,
    stddev_ts: f64,
}

/// The rows of the table llama-bench prints with `-o md`.
fn md_rows(text: &str) -> Vec<MdRow> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("| model"));
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = cells(lines.next().expect("markdown header"));
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (model, test, ts) = (col("model"), col("test"), col("t/s"));
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let c = cells(l);
            let (avg, sd) = c[ts].split_once('±').expect("mean ± stddev");
            MdRow {
                model: c[model].clone(),
                test: c[test].clone(),
                avg_ts: avg.trim().parse().expect("t/s mean"),
                stddev_ts: sd.trim().parse().expect("t/s stddev"),
            }
        })
        .collect()
}

#[test]
fn numbers_match_llama_bench_printed_table() {
    let mut rows_checked = 0;
    for (run, files) in fixtures() {
        let Some(md) = files.get("md") else { continue };
        let rows = md_rows(md);
        assert!(md.contains("\nbuild: "), "{run}.md has no build line");
        for (ext, text) in files.iter().filter(|(e, _)| MACHINE.contains(&e.as_str())) {
            let records = parse_as(ext, text).unwrap();
            assert_eq!(records.len(), rows.len(), "{run}.{ext}: row count");
            for (r, row) in records.iter().zip(&rows) {
                let what = format!("{run}.{ext} {}", row.test);
                assert_eq!(r.test_label(), row.test, "{what}");
                assert_eq!(r.model_type, row.model, "{what}");
                // The table prints `%.2f`; the machine formats `%f` of the same double.
                assert!(
                    (r.avg_ts - row.avg_ts).abs() <= 0.005 + 1e-9,
                    "{what}: {r:?}"
                );
                assert!(
                    (r.stddev_ts - row.stddev_ts).abs() <= 0.005 + 1e-9,
                    "{what}"
                );
                rows_checked += 1;
            }
            let build = format!(
                "\nbuild: {} ({})",
                records[0].build_commit, records[0].build_number
            );
            assert!(md.contains(&build), "{run}.md lacks {build:?}");
        }
    }
    assert!(
        rows_checked > 0,
        "no markdown table paired with a machine format"
    );
}

#[test]
fn depth_flash_attn_and_prompt_gen_tests_are_read() {
    let mut labels = Vec::new();
    let mut fa = Vec::new();
    for files in fixtures().values() {
        for (ext, text) in files.iter().filter(|(e, _)| MACHINE.contains(&e.as_str())) {
            for r in parse_as(ext, text).unwrap() {
                labels.push(r.test_label());
                fa.push(r.flash_attn);
            }
        }
    }
    for want in ["pp64", "tg16", "pp64 @ d256", "tg16 @ d256", "pp32+tg8"] {
        assert!(labels.iter().any(|l| l == want), "no {want} in {labels:?}");
    }
    assert!(fa.contains(&Some(FlashAttn::On)) && fa.contains(&Some(FlashAttn::Off)));
}

// ---------------------------------------------------------------- broken input

/// Some fixture in the given format.
fn some_fixture(ext: &str) -> String {
    fixtures()
        .into_values()
        .find_map(|mut files| files.remove(ext))
        .unwrap_or_else(|| panic!("no .{ext} fixture"))
}

fn line_count(text: &str) -> usize {
    text.lines().count().max(1)
}

#[test]
fn truncated_input_is_an_error_never_a_panic() {
    for ext in MACHINE {
        let text = some_fixture(ext);
        let full = parse_as(ext, &text).unwrap().len();
        let mut cut = 0;
        while cut < text.len() {
            let prefix = &text[..cut];
            let what = format!(".{ext} cut at byte {cut}");
            match parse_as(ext, prefix) {
                // A cut at a record boundary is a shorter, valid file.
                Ok(records) => assert!(
                    records.len() < full || prefix.trim_end() == text.trim_end(),
                    "{what}"
                ),
                Err(e) => {
                    let line = e
                        .line()
                        .unwrap_or_else(|| panic!("{what}: {e} has no line"));
                    assert!(line >= 1 && line <= line_count(prefix) + 1, "{what}: {e}");
                }
            }
            let _ = parse_any(prefix);
            cut += 1 + cut % 7;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
        }
    }
}

#[test]
fn truncated_json_names_the_last_line() {
    let text = some_fixture("json");
    let cut = text.len() / 2;
    let cut = (cut..text.len())
        .find(|&c| text.is_char_boundary(c))
        .unwrap();
    let prefix = &text[..cut];
    let err = parse_json(prefix).unwrap_err();
    assert!(matches!(err, LlamaBenchError::Json { .. }), "{err}");
    assert_eq!(err.line(), Some(line_count(prefix)), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("line {}", line_count(prefix))),
        "{err}"
    );
}

#[test]
fn wrong_json_type_names_line_and_field() {
    let text = some_fixture("json");
    let target = text.lines().position(|l| l.contains("\"avg_ts\"")).unwrap();
    let broken: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == target {
                "    \"avg_ts\": \"fast\",".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let err = parse_json(&broken).unwrap_err();
    assert_eq!(err.line(), Some(target + 1), "{err}");
    assert_eq!(err.field(), Some("avg_ts"), "{err}");
    assert!(err.to_string().contains("expected a number"), "{err}");

    let negative = text.replacen("\"n_prompt\": 64", "\"n_prompt\": -64", 1);
    let err = parse_json(&negative).unwrap_err();
    assert_eq!(err.field(), Some("n_prompt"), "{err}");
}

#[test]
fn missing_field_names_the_test_line() {
    let text = some_fixture("jsonl");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (before, after) = lines[1].split_once("\"model_type\": ").unwrap();
    let after = &after[after.find(", ").unwrap() + 2..];
    lines[1] = format!("{before}{after}");
    let err = parse_jsonl(&lines.join("\n")).unwrap_err();
    assert!(
        matches!(
            err,
            LlamaBenchError::MissingField {
                line: 2,
                field: "model_type"
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_jsonl_line_is_named() {
    let text = some_fixture("jsonl");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, "{\"build_commit\": ");
    let err = parse_jsonl(&lines.join("\n")).unwrap_err();
    assert!(
        matches!(err, LlamaBenchError::Json { line: 3, .. }),
        "{err}"
    );

    let dup = text
        .lines()
        .next()
        .unwrap()
        .replacen("{", "{\"n_gen\": 1, ", 1);
    let err = parse_jsonl(&dup).unwrap_err();
    assert!(err.to_string().starts_with("line 1"), "{err}");
    assert!(
        err.to_string().ends_with("duplicate field `n_gen`"),
        "{err}"
    );
}

#[test]
fn bad_sql_literals_name_the_line() {
    let text = some_fixture("sql");
    let insert_line = text.lines().position(|l| l.starts_with("INSERT")).unwrap() + 1;

    // A string literal left open at the end of the input.
    let cut = text.find("'f16'").unwrap() + 2;
    let err = parse_sql(&text[..cut]).unwrap_err();
    assert!(matches!(err, LlamaBenchError::Sql { .. }), "{err}");
    assert_eq!(err.line(), Some(insert_line), "{err}");
    assert!(err.to_string().contains("unterminated"), "{err}");

    // A quote dropped: the literals pair up wrongly, and the line says so.
    let dropped = text.replacen("'f16'", "'f16", 1);
    let err = parse_sql(&dropped).unwrap_err();
    assert_eq!(err.line(), Some(insert_line), "{err}");

    // A number that is not one.
    let lines: Vec<&str> = text.lines().collect();
    let row = &lines[insert_line - 1];
    let values = row.split_once("VALUES (").unwrap().1;
    let last = values.rsplit("', '").next().unwrap(); // stddev_ts, then `');`
    let bad_row = row.replacen(&format!("'{last}"), "'x.y');", 1);
    let mut bad = lines.clone();
    bad[insert_line - 1] = &bad_row;
    let err = parse_sql(&bad.join("\n")).unwrap_err();
    assert_eq!(err.line(), Some(insert_line), "{err}");
    assert_eq!(err.field(), Some("stddev_ts"), "{err}");

    // Too few values.
    let short = text.replacen("'f16', ", "", 1);
    let err = parse_sql(&short).unwrap_err();
    assert!(err.to_string().contains("values for"), "{err}");
    assert_eq!(err.line(), Some(insert_line), "{err}");

    // Anything but CREATE TABLE and INSERT is refused, not run.
    let err = parse_sql("DROP TABLE llama_bench;").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1, column 1: expected `CREATE TABLE` or `INSERT INTO`, found `DROP`"
    );
}

#[test]
fn appended_sql_runs_are_read_as_one() {
    // `llama-bench -o sql >> all.sql` run after run, as compare-commits.sh feeds sqlite3.
    let runs = fixtures();
    let (a, b) = (&runs["r3"]["sql"], &runs["r5"]["sql"]);
    let both = parse_sql(&format!("-- first run\n{a}/* second run */\n{b}")).unwrap();
    let (a, b) = (parse_sql(a).unwrap(), parse_sql(b).unwrap());
    assert_eq!(both, [a, b].concat());
}

#[test]
fn sql_escapes_nulls_and_unknown_columns() {
    let sql = "CREATE TABLE IF NOT EXISTS llama_bench (\n  build_commit TEXT,\n  future_count INTEGER,\n  future_note TEXT\n);\n\
        INSERT INTO llama_bench (build_commit, build_number, cpu_info, gpu_info, model_filename, model_type, model_size, model_n_params, n_batch, n_ubatch, n_threads, type_k, type_v, n_gpu_layers, split_mode, main_gpu, no_kv_offload, tensor_split, n_prompt, n_gen, test_time, avg_ns, stddev_ns, avg_ts, stddev_ts, backends, future_count, future_note) \
        VALUES ('abc', '7', 'cpu', '', 'it''s.gguf', 'llama 1B Q8_0', '10', '20', '2048', '512', '2', 'f16', 'f16', -1, 'layer', '0', '0', '0.00', '512', '0', '2026-01-01T00:00:00Z', '100', '1', '5.5', '0.1', NULL, '42', '42');\n";
    let r = &parse_sql(sql).unwrap()[0];
    assert_eq!(r.model_filename, "it's.gguf");
    assert_eq!(r.n_gpu_layers, -1);
    assert_eq!(r.backends, None);
    assert_eq!(r.n_depth, 0);
    assert_eq!(r.test_label(), "pp512");
    assert_eq!(r.extra["future_count"], serde_json::json!(42));
    assert_eq!(r.extra["future_note"], serde_json::json!("42"));
}

#[test]
fn unknown_json_fields_are_kept() {
    let text = some_fixture("jsonl");
    let line = text.lines().next().unwrap().replacen(
        "{",
        "{\"lazy_mode\": \"auto\", \"n_new\": [1, 2], ",
        1,
    );
    let r = &parse_jsonl(&line).unwrap()[0];
    assert_eq!(r.extra["lazy_mode"], serde_json::json!("auto"));
    assert_eq!(r.extra["n_new"], serde_json::json!([1, 2]));
}

#[test]
fn sizes_are_capped() {
    let huge = " ".repeat(MAX_INPUT_BYTES + 1);
    for result in [
        parse_any(&huge),
        parse_json(&huge),
        parse_jsonl(&huge),
        parse_sql(&huge),
    ] {
        assert!(matches!(result, Err(LlamaBenchError::TooLarge { .. })));
    }
    let text = some_fixture("jsonl");
    let many = vec!["1"; MAX_SAMPLES + 1].join(",");
    let line = text.lines().next().unwrap();
    let start = line.find("\"samples_ns\": [").unwrap();
    let end = start + line[start..].find(']').unwrap();
    let big = format!("{}\"samples_ns\": [{many}{}", &line[..start], &line[end..]);
    let err = parse_jsonl(&big).unwrap_err();
    assert_eq!(err.field(), Some("samples_ns"), "{err}");
}

#[test]
fn other_text_is_not_taken_for_output() {
    assert!(matches!(parse_any(""), Err(LlamaBenchError::Empty)));
    let err = parse_any("| a | b |\n| - | - |\n| 1 | 2 |\n").unwrap_err();
    assert!(
        matches!(err, LlamaBenchError::UnknownFormat { .. }),
        "{err}"
    );
    assert!(parse_any("\n\nhello")
        .unwrap_err()
        .to_string()
        .starts_with("line 3"));
    assert!(parse_json("{}").is_err());
    assert!(parse_json("[1]").is_err());
    assert!(parse_jsonl("[]").is_err());
}

/// The Markdown table of a run read beside the same run's JSON (the fixtures' `r1`, `r6`:
/// one llama-bench run printing both): every figure the table prints agrees with the JSON
/// to the table's rounding, and what it does not print is llama-bench's default or unknown.
#[test]
fn a_markdown_table_reads_as_its_json_to_the_printed_precision() {
    let fixtures = fixtures();
    let mut pairs = 0;
    for (run, files) in &fixtures {
        let (Some(md), Some(json)) = (files.get("md"), files.get("json")) else {
            continue;
        };
        pairs += 1;
        assert_eq!(detect_format(md), Some(LlamaBenchFormat::Markdown), "{run}");
        let table = parse_any(md).unwrap_or_else(|e| panic!("{run}.md: {e}"));
        let full = parse_json(json).unwrap();
        assert_eq!(table.len(), full.len(), "{run}");
        for (t, f) in table.iter().zip(&full) {
            let what = format!("{run}: {}", f.test_label());
            assert_eq!(t.model_type, f.model_type, "{what}");
            assert_eq!(t.test_spec(), f.test_spec(), "{what}");
            assert_eq!(t.backends, f.backends, "{what}");
            assert_eq!(t.n_threads, f.n_threads, "{what}");
            assert_eq!(t.flash_attn, f.flash_attn, "{what}");
            assert_eq!((t.n_batch, t.n_ubatch), (f.n_batch, f.n_ubatch), "{what}");
            assert_eq!((&t.type_k, &t.type_v), (&f.type_k, &f.type_v), "{what}");
            assert_eq!(t.n_gpu_layers, f.n_gpu_layers, "{what}");
            assert_eq!(t.use_mmap, f.use_mmap, "{what}");
            assert_eq!(
                (&t.build_commit, t.build_number),
                (&f.build_commit, f.build_number),
                "{what}"
            );
            // The CPU table prints threads; what it leaves out (batch sizes, ngl, mmap) is
            // unknown, whatever this build's defaults were.
            assert!(!t.unknown.contains("n_threads"), "{what}");
            for column in ["n_batch", "n_ubatch", "n_gpu_layers", "use_mmap"] {
                assert!(t.unknown.contains(column), "{what}: {column}");
            }
            assert_eq!(
                t.unknown.contains("flash_attn"),
                !md.lines().next().unwrap_or("").contains("| fa |"),
                "{what}: fa"
            );
            // `%.2f MiB`, `%.2f M`, `%.2f ± %.2f`: half a unit of the last digit.
            let size_err = (t.model_size as f64 - f.model_size as f64).abs();
            assert!(
                size_err <= 0.005 * (1 << 20) as f64,
                "{what}: size off by {size_err}"
            );
            let params_err = (t.model_n_params as f64 - f.model_n_params as f64).abs();
            assert!(params_err <= 0.005e6, "{what}: params off by {params_err}");
            assert!((t.avg_ts - f.avg_ts).abs() <= 0.005 + 1e-9, "{what}");
            assert!((t.stddev_ts - f.stddev_ts).abs() <= 0.005 + 1e-9, "{what}");
            // What a table cannot hold.
            assert!(t.samples_ts.is_none() && t.test_time.is_empty(), "{what}");
        }
    }
    assert!(pairs >= 2, "fixtures with both .md and .json: {pairs}");
}

/// A paste as people post them: in a quote and a `<details>` block, inside a code fence,
/// without outer pipes, older spellings, log lines between rows, two devices of which the
/// `dev` column picks one, and the build footer.
#[test]
fn a_pasted_table_in_every_spelling() {
    let paste = "\
Here are my numbers:
<details><summary>llama-bench</summary>

```
ggml_cuda_init: found 2 CUDA devices:
  Device 0: NVIDIA GeForce RTX 3090, compute capability 8.6, VMM: yes
  Device 1: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes
model | size | params | backend | ngl | dev | fa | test | t/s
--- | ---: | ---: | --- | --: | --- | -: | ---: | ---:
llama 8B Q4_K - Medium | 4.58 GiB | 8.03 B | CUDA | 99 | CUDA1 | 1 | pp 512 | 11234.56 ± 123.45
llama_kv_cache: size = 64.00 MiB
llama 8B Q4_K - Medium | 4.58 GiB | 8.03 B | CUDA | -1 | CUDA1 | -1 | tg128@d4096 | 140.12 ± 0.33

build: 233d773d0 (6413)
```
</details>
";
    let records = parse_any(paste).unwrap();
    assert_eq!(records.len(), 2);
    let (a, b) = (&records[0], &records[1]);
    assert_eq!(a.test_spec().label(), "pp512");
    assert_eq!(b.test_spec().label(), "tg128 @ d4096");
    assert_eq!((a.avg_ts, a.stddev_ts), (11234.56, 123.45));
    assert_eq!(a.model_size, (4.58 * (1u64 << 30) as f64).round() as u64);
    assert_eq!(a.model_n_params, 8_030_000_000);
    assert_eq!(
        (a.build_commit.as_str(), a.build_number),
        ("233d773d0", 6413)
    );
    // `dev` names device 1 only.
    assert_eq!(a.gpu_info, "NVIDIA GeForce RTX 4090");
    assert_eq!(a.flash_attn, Some(FlashAttn::On));
    assert_eq!(b.flash_attn, Some(FlashAttn::Auto));
    assert_eq!(b.n_gpu_layers, -1);
    // A GPU table does not print the thread count: unknown, not a number.
    assert!(a.unknown.contains("n_threads"));
    let cell = b.cell_result(1).unwrap();
    assert!(cell.params.unset.auto.contains("n_gpu_layers"));
    assert!(cell.params.unset.auto.contains("flash_attn"));
    assert!(cell.params.unset.unknown.contains("n_threads"));
}

#[test]
fn metal_and_vulkan_pastes_name_their_device() {
    let metal = "\
ggml_metal_init: GPU name:   Apple M2 Ultra
| model                          |       size |     params | backend    | threads |          test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | ------: | ------------: | -------------------: |
| llama 7B mostly Q4_0           |   3.56 GiB |     6.74 B | Metal,BLAS |      16 |         pp512 |       1238.48 ± 1.45 |
";
    let r = &parse_any(metal).unwrap()[0];
    assert_eq!(r.cpu_info, "Apple M2 Ultra");
    assert_eq!(tokbench_core::llama_bench::quant_of(&r.model_type), "Q4_0");
    assert_eq!(
        tokbench_core::llama_bench::accel_of(r.backends.as_deref()),
        "metal"
    );
    // Metal,BLAS counts as a CPU-type backend for llama-bench's columns: ngl at its default.
    assert_eq!(r.n_gpu_layers, 99);
    let vulkan = "\
ggml_vulkan: 0 = AMD Radeon RX 7900 XTX (RADV NAVI31) (radv) | uma: 0 | fp16: 1 | warp size: 64 | shared memory: 65536 | int dot: 1 | matrix cores: KHR_coopmat
| model                          |       size |     params | backend    | ngl |            test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | --: | --------------: | -------------------: |
| llama 7B Q4_0                  |   3.56 GiB |     6.74 B | Vulkan,RPC |  99 |           tg128 |        140.24 ± 0.12 |
";
    let r = &parse_any(vulkan).unwrap()[0];
    assert_eq!(r.gpu_info, "AMD Radeon RX 7900 XTX");
    assert_eq!(
        tokbench_core::llama_bench::accel_of(r.backends.as_deref()),
        "vulkan"
    );
}

#[test]
fn look_alike_tables_are_refused_by_name() {
    let compare = "\
| Model         | Test   |   t/s master |   t/s branch |   Speedup |
|:--------------|:-------|-------------:|-------------:|----------:|
| llama 7B Q4_0 | pp512  |      1000.00 |      1100.00 |      1.10 |
";
    let err = parse_any(compare).unwrap_err();
    assert!(
        matches!(err, LlamaBenchError::LookAlike { line: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("compare-llama-bench"), "{err}");
    let batched = "\
|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|   512 |    128 |    1 |    640 |    0.213 |  2403.81 |    1.051 |   121.79 |    1.264 |   506.33 |
";
    let err = parse_any(batched).unwrap_err();
    assert!(err.to_string().contains("batched-bench"), "{err}");
    let sweep = "\
|    PP |     TG |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |
|-------|--------|--------|----------|----------|----------|----------|
|   512 |    128 |      0 |    0.213 |  2403.81 |    1.051 |   121.79 |
";
    let err = parse_any(sweep).unwrap_err();
    assert!(err.to_string().contains("sweep-bench"), "{err}");
}

#[test]
fn a_bad_cell_names_its_line_and_column() {
    let paste = "\
| model | size | params | backend | ngl | test | t/s |
| --- | --: | --: | --- | --: | --: | --: |
| llama 7B Q4_0 | 3.56 GiB | 6.74 B | CUDA | 99 | pp512 | 100.0 ± 1.0 |
| llama 7B Q4_0 | 3.56 GiB | 6.74 B | CUDA | lots | tg128 | 10.0 ± 1.0 |
";
    let err = parse_any(paste).unwrap_err();
    assert_eq!(err.line(), Some(4), "{err}");
    assert_eq!(err.field(), Some("ngl"), "{err}");
    let front = "---\nsource: x\nbogus: y\n---\n";
    let err = tokbench_core::llama_bench::front_matter(front).unwrap_err();
    assert_eq!((err.line(), err.field()), (Some(3), Some("bogus")), "{err}");
}
