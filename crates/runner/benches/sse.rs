//! Reading an OpenAI-compatible completion stream: 1,000 events (998 tokens, the final
//! usage and timings event, `data: [DONE]`) made by repeating the events of a captured
//! llama-server stream (`tests/fixtures/llama-server/v1-completions-stream.txt`) unchanged.
//! Each event arrives as its own chunk, as llama-server flushes them. Measured twice: the
//! SSE framing alone, and framing plus [`event_info`] on every event, which is the work
//! `timed_request` does per chunk.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tokbench_runner::serve::client::{event_info, Api};
use tokbench_runner::serve::sse::{SseEvent, SseParser};

const N_EVENTS: usize = 1_000;
const STREAM: &str = include_str!("../tests/fixtures/llama-server/v1-completions-stream.txt");

/// The stream's events, each with its blank-line terminator: token events repeated, then
/// the fixture's final event and `[DONE]`.
fn events() -> Vec<String> {
    let all: Vec<String> = STREAM
        .split_terminator("\n\n")
        .map(|e| format!("{e}\n\n"))
        .collect();
    let (tokens, tail): (Vec<&String>, Vec<&String>) = all
        .iter()
        .partition(|e| e.contains("\"finish_reason\":null"));
    assert_eq!(tail.len(), 2, "the final event and [DONE]");
    tokens
        .into_iter()
        .cycle()
        .take(N_EVENTS - tail.len())
        .chain(tail)
        .cloned()
        .collect()
}

fn parse(chunks: &[String]) -> usize {
    let mut parser = SseParser::new();
    let mut n = 0;
    for chunk in chunks {
        n += parser.push(chunk.as_bytes()).unwrap().len();
    }
    n
}

/// Returns the token events seen, as the client counts them.
fn parse_and_read(chunks: &[String]) -> usize {
    let mut parser = SseParser::new();
    let mut tokens = 0;
    for chunk in chunks {
        for ev in parser.push(chunk.as_bytes()).unwrap() {
            if let SseEvent::Data(d) = ev {
                let info = event_info(Api::OpenAiCompletions, &d).unwrap();
                tokens += usize::from(info.token);
            }
        }
    }
    tokens
}

fn sse(c: &mut Criterion) {
    let chunks = events();
    assert_eq!(parse(&chunks), N_EVENTS);
    assert_eq!(parse_and_read(&chunks), N_EVENTS - 2);

    let mut g = c.benchmark_group("sse");
    g.sample_size(50);
    g.throughput(Throughput::Elements(N_EVENTS as u64));
    g.bench_function("parse/1000_events", |b| {
        b.iter(|| parse(black_box(&chunks)))
    });
    g.bench_function("parse_and_event_info/1000_events", |b| {
        b.iter(|| parse_and_read(black_box(&chunks)))
    });
    g.finish();
}

criterion_group!(benches, sse);
criterion_main!(benches);
