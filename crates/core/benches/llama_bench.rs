//! Reading llama-bench output: 100 records of `-o json` and of `-o sql`, made by repeating
//! the records of the captured fixtures (`tests/fixtures/llama-bench/r6.json`, `r7.sql`)
//! unchanged, so the input is real llama-bench text at the size of a long sweep.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tokbench_core::llama_bench::{parse_json, parse_sql};

const N_RECORDS: usize = 100;
const JSON: &str = include_str!("../tests/fixtures/llama-bench/r6.json");
const SQL: &str = include_str!("../tests/fixtures/llama-bench/r7.sql");

/// The fixture's array elements (each `  {` … `  }` block), repeated to `N_RECORDS`.
fn json_input() -> String {
    let mut records = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in JSON.lines() {
        if line == "  {" {
            current = Some(vec![line]);
        } else if let Some(lines) = current.as_mut() {
            if line.starts_with("  }") {
                lines.push("  }");
                records.push(lines.join("\n"));
                current = None;
            } else {
                lines.push(line);
            }
        }
    }
    let body: Vec<&str> = records
        .iter()
        .map(String::as_str)
        .cycle()
        .take(N_RECORDS)
        .collect();
    format!("[\n{}\n]\n", body.join(",\n"))
}

/// The fixture's `CREATE TABLE`, then its `INSERT` lines repeated to `N_RECORDS`.
fn sql_input() -> String {
    let (create, inserts): (Vec<&str>, Vec<&str>) =
        SQL.lines().partition(|l| !l.starts_with("INSERT INTO"));
    let mut out = create.join("\n");
    out.push('\n');
    for line in inserts.iter().cycle().take(N_RECORDS) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn llama_bench(c: &mut Criterion) {
    let json = json_input();
    let sql = sql_input();
    assert_eq!(parse_json(&json).unwrap().len(), N_RECORDS);
    assert_eq!(parse_sql(&sql).unwrap().len(), N_RECORDS);

    let mut g = c.benchmark_group("llama_bench");
    g.sample_size(50);
    g.throughput(Throughput::Elements(N_RECORDS as u64));
    g.bench_function("parse_json/100", |b| {
        b.iter(|| parse_json(black_box(&json)).unwrap())
    });
    g.bench_function("parse_sql/100", |b| {
        b.iter(|| parse_sql(black_box(&sql)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, llama_bench);
criterion_main!(benches);
