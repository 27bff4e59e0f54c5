//! One server event's JSON (llama-server's final `timings`, an Ollama final chunk, an
//! OpenAI/vLLM completion chunk), read as each API would read it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokbench_runner::serve::client::{event_info, Api};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for api in [
        Api::LlamaNative,
        Api::OpenAiCompletions,
        Api::OllamaGenerate,
    ] {
        if let Ok(info) = event_info(api, text) {
            if let Some(t) = info.timings {
                let _ = (t.decode_tps(), t.prefill_tps());
            }
        }
    }
});
