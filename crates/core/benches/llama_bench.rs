//! Reading llama-bench output: 100 records of `-o json`, of `-o sql` and of the Markdown
//! table, made by repeating the records of the captured fixtures
//! (`tests/fixtures/llama-bench/r6.json`, `r7.sql`, `r6.md`) unchanged, so the input is real
//! llama-bench text at the size of a long sweep.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tokbench_core::llama_bench::{parse_json, parse_markdown, parse_sql};

const N_RECORDS: usize = 100;
const JSON: &str = include_str!("../tests/fixtures/llama-bench/r6.json");
const SQL: &str = include_str!("../tests/fixtures/llama-bench/r7.sql");
const MD: &str = include_str!("../tests/fixtures/llama-bench/r6.md");

/// The fixture's header and separator, then its rows repeated to `N_RECORDS`, then its
/// build line.
fn md_input() -> String {
    let lines: Vec<&str> = MD.lines().collect();
    let rows: Vec<&str> = lines[2..]
        .iter()
        .copied()
        .filter(|l| l.starts_with("| "))
        .collect();
    let mut out = format!("{}\n{}\n", lines[0], lines[1]);
    for row in rows.iter().cycle().take(N_RECORDS) {
        out.push_str(row);
        out.push('\n');
    }
    out.push_str("\nbuild: unknown (0)\n");
    out
}

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
    let md = md_input();
    assert_eq!(parse_json(&json).unwrap().len(), N_RECORDS);
    assert_eq!(parse_markdown(&md).unwrap().len(), N_RECORDS);
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
    g.bench_function("parse_markdown/100", |b| {
        b.iter(|| parse_markdown(black_box(&md)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, llama_bench);
criterion_main!(benches);
