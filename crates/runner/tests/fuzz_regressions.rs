//! Inputs the `serve_stream` and `serve_event` fuzz targets (fuzz/fuzz_targets/) or their
//! review found troublesome; each must give events or an error, and in work linear in the
//! stream.

use tokbench_runner::serve::client::{event_info, Api};
use tokbench_runner::serve::sse::{NdjsonParser, SseError, SseEvent, SseParser};

/// 300,000 events in one 3 MB chunk: each event used to be drained off the front of the
/// buffer on its own, moving the rest every time (8 s in the fuzz build; now one move).
#[test]
fn many_events_in_one_chunk_all_come_out() {
    let mut p = SseParser::new();
    let events = p.push(&b"data: {}\n\n".repeat(300_000)).unwrap();
    assert_eq!(events.len(), 300_000);
    assert!(events.iter().all(|e| *e == SseEvent::Data("{}".into())));
    assert_eq!(p.finish().unwrap(), None);

    let mut p = NdjsonParser::new();
    let lines = p.push(&b"{\"done\":false}\n".repeat(300_000)).unwrap();
    assert_eq!(lines.len(), 300_000);
}

/// One long event fed a byte at a time used to be searched from its start on every push.
#[test]
fn a_long_event_fed_byte_by_byte_is_found_once_it_ends() {
    let mut event = b"data: ".to_vec();
    event.extend(std::iter::repeat_n(b'x', 200_000));
    event.extend_from_slice(b"\r\n\r\ndata: [DONE]\n\n");
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for b in &event {
        out.extend(p.push(std::slice::from_ref(b)).unwrap());
    }
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[0], SseEvent::Data(d) if d.len() == 200_000));
    assert_eq!(out[1], SseEvent::Done);

    let mut p = NdjsonParser::new();
    let mut n = 0;
    for b in b"{\"a\":1}\r\n\n{\"b\":2}\n" {
        n += p.push(std::slice::from_ref(b)).unwrap().len();
    }
    assert_eq!(n, 2);
}

/// Separators cut at every point by a chunk boundary, and bad UTF-8 after good events.
#[test]
fn separators_split_across_chunks_and_bad_text() {
    let stream = b"data: a\r\n\r\ndata: b\n\ndata: c\r\n\r\n";
    for cut in 0..=stream.len() {
        let mut p = SseParser::new();
        let mut out = p.push(&stream[..cut]).unwrap();
        out.extend(p.push(&stream[cut..]).unwrap());
        out.extend(p.finish().unwrap());
        let want: Vec<SseEvent> = ["a", "b", "c"]
            .iter()
            .map(|s| SseEvent::Data(s.to_string()))
            .collect();
        assert_eq!(out, want, "cut at {cut}");
    }
    let mut p = SseParser::new();
    assert_eq!(
        p.push(b"data: ok\n\ndata: \xff\n\n"),
        Err(SseError::NotText)
    );
    let mut p = NdjsonParser::new();
    assert_eq!(p.push(b"{}\n\xff\n"), Err(SseError::NotText));
}

/// Event bodies of the wrong shapes: errors or empty infos, never a panic.
#[test]
fn odd_event_bodies_are_read_without_panicking() {
    for body in [
        "",
        "null",
        "[]",
        "{\"timings\":null}",
        "{\"timings\":{\"prompt_n\":-1,\"predicted_n\":1e400,\"predicted_ms\":\"x\"}}",
        "{\"choices\":{\"0\":1},\"usage\":[]}",
        "{\"choices\":[null],\"usage\":{\"prompt_tokens\":18446744073709551616}}",
        "{\"done\":true,\"eval_count\":4294967296,\"eval_duration\":-1}",
        "{\"stop\":true,\"tokens_predicted\":{}}",
        "{\"error\":null}",
    ] {
        for api in [
            Api::LlamaNative,
            Api::OpenAiCompletions,
            Api::OllamaGenerate,
        ] {
            let _ = event_info(api, body);
        }
    }
    let info = event_info(
        Api::OllamaGenerate,
        "{\"done\":true,\"eval_count\":4294967296}",
    )
    .unwrap();
    assert_eq!(info.completion_tokens, None, "out of u32 range is no count");
}
