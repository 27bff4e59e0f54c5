//! A server's response stream: SSE (llama-server, vLLM, OpenAI) or NDJSON (Ollama), cut
//! into arbitrary chunks, then every event read as the matching API sends it.
//!
//! Input layout: byte 0 picks the framing and API, byte 1 seeds the chunk sizes; the rest
//! is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokbench_runner::serve::client::{event_info, Api};
use tokbench_runner::serve::sse::{NdjsonParser, SseEvent, SseParser, StreamParser};

fn read(api: Api, ev: SseEvent) {
    if let SseEvent::Data(d) = ev {
        let _ = event_info(api, &d);
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, seed, stream @ ..] = data else {
        return;
    };
    let (mut parser, api) = match mode % 4 {
        0 => (StreamParser::Sse(SseParser::new()), Api::LlamaNative),
        1 => (StreamParser::Sse(SseParser::new()), Api::OpenAiCompletions),
        // A small bound, so the too-long path is reached by small inputs.
        2 => (
            StreamParser::Sse(SseParser::with_limit(256)),
            Api::LlamaNative,
        ),
        _ => (
            StreamParser::Ndjson(NdjsonParser::new()),
            Api::OllamaGenerate,
        ),
    };
    // Chunk sizes from a tiny LCG: 1..=64 bytes, or the whole rest when seed is 0.
    let mut state = u32::from(*seed);
    let mut rest = stream;
    while !rest.is_empty() {
        let n = if *seed == 0 {
            rest.len()
        } else {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            1 + (state >> 16) as usize % 64
        };
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        match parser.push(chunk) {
            Ok(events) => events.into_iter().for_each(|e| read(api, e)),
            Err(_) => return,
        }
    }
    if let Ok(Some(e)) = parser.finish() {
        read(api, e);
    }
});
