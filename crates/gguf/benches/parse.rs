//! Parsing the header of a GGUF file shaped like Llama 3.1 405B Q4_K_M: 126 layers, 1,138
//! tensors, and the tokenizer arrays that make up most of the header (128,256 tokens and
//! their types, 280,147 merges). The header is built once in memory by [`GgufWriter`]; the
//! parse reads it from a byte slice, with the file size the full model would have.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokbench_gguf::{parse_reader, GgmlType, GgufWriter, Value};

const N_LAYER: u64 = 126;
const N_EMBD: u64 = 16_384;
const N_FF: u64 = 53_248;
const N_HEAD: u32 = 128;
const N_HEAD_KV: u32 = 8;
const HEAD_DIM: u64 = 128;
const N_VOCAB: usize = 128_256;
const N_MERGES: usize = 280_147;

/// A byte-level BPE piece: `Ġ` (a leading space) on about half, then 1 to 10 letters.
fn piece(rng: &mut ChaCha8Rng) -> String {
    let mut s = String::new();
    if rng.gen_bool(0.5) {
        s.push('Ġ');
    }
    for _ in 0..rng.gen_range(1..=10) {
        s.push(char::from(rng.gen_range(b'a'..=b'z')));
    }
    s
}

/// The header bytes and the size of the whole file they describe.
fn llama_405b_header() -> (Vec<u8>, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(405);
    let tokens: Vec<String> = (0..N_VOCAB).map(|_| piece(&mut rng)).collect();
    let merges: Vec<String> = (0..N_MERGES)
        .map(|_| format!("{} {}", piece(&mut rng), piece(&mut rng)))
        .collect();
    let token_types = (0..N_VOCAB).map(|i| if i >= 128_000 { 3 } else { 1 });
    let chat_template = "{%- for message in messages %}{{- '<|start_header_id|>' + \
                         message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim \
                         + '<|eot_id|>' }}{%- endfor %}\n"
        .repeat(40);

    let mut w = GgufWriter::new();
    let u32 = Value::U32;
    let string = |s: &str| Value::String(s.into());
    let metadata = [
        ("general.architecture", string("llama")),
        ("general.type", string("model")),
        ("general.name", string("Meta Llama 3.1 405B Instruct")),
        ("general.finetune", string("Instruct")),
        ("general.basename", string("Meta-Llama-3.1")),
        ("general.size_label", string("405B")),
        ("general.license", string("llama3.1")),
        (
            "general.tags",
            Value::string_array(["facebook", "meta", "pytorch", "llama", "llama-3"]),
        ),
        (
            "general.languages",
            Value::string_array(["en", "de", "fr", "it", "pt", "hi", "es", "th"]),
        ),
        ("llama.block_count", u32(N_LAYER as u32)),
        ("llama.context_length", u32(131_072)),
        ("llama.embedding_length", u32(N_EMBD as u32)),
        ("llama.feed_forward_length", u32(N_FF as u32)),
        ("llama.attention.head_count", u32(N_HEAD)),
        ("llama.attention.head_count_kv", u32(N_HEAD_KV)),
        ("llama.rope.freq_base", Value::F32(500_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("general.file_type", u32(15)),
        ("llama.vocab_size", u32(N_VOCAB as u32)),
        ("llama.rope.dimension_count", u32(HEAD_DIM as u32)),
        ("tokenizer.ggml.model", string("gpt2")),
        ("tokenizer.ggml.pre", string("llama-bpe")),
        ("tokenizer.ggml.tokens", Value::string_array(tokens)),
        ("tokenizer.ggml.token_type", Value::i32_array(token_types)),
        ("tokenizer.ggml.merges", Value::string_array(merges)),
        ("tokenizer.ggml.bos_token_id", u32(128_000)),
        ("tokenizer.ggml.eos_token_id", u32(128_009)),
        ("tokenizer.chat_template", Value::String(chat_template)),
        ("general.quantization_version", u32(2)),
    ];
    for (key, value) in metadata {
        w.add_metadata(key, value).unwrap();
    }

    let kv = u64::from(N_HEAD_KV) * HEAD_DIM;
    let mut tensor = |name: String, dims: &[u64], ty: GgmlType| {
        w.add_tensor(name, dims, ty).unwrap();
    };
    tensor(
        "token_embd.weight".into(),
        &[N_EMBD, N_VOCAB as u64],
        GgmlType::Q4_K,
    );
    tensor("rope_freqs.weight".into(), &[HEAD_DIM / 2], GgmlType::F32);
    for l in 0..N_LAYER {
        let b = |t: &str| format!("blk.{l}.{t}.weight");
        tensor(b("attn_norm"), &[N_EMBD], GgmlType::F32);
        tensor(b("attn_q"), &[N_EMBD, N_EMBD], GgmlType::Q4_K);
        tensor(b("attn_k"), &[N_EMBD, kv], GgmlType::Q4_K);
        tensor(b("attn_v"), &[N_EMBD, kv], GgmlType::Q6_K);
        tensor(b("attn_output"), &[N_EMBD, N_EMBD], GgmlType::Q4_K);
        tensor(b("ffn_norm"), &[N_EMBD], GgmlType::F32);
        tensor(b("ffn_gate"), &[N_EMBD, N_FF], GgmlType::Q4_K);
        tensor(b("ffn_up"), &[N_EMBD, N_FF], GgmlType::Q4_K);
        tensor(b("ffn_down"), &[N_FF, N_EMBD], GgmlType::Q6_K);
    }
    tensor("output_norm.weight".into(), &[N_EMBD], GgmlType::F32);
    tensor(
        "output.weight".into(),
        &[N_EMBD, N_VOCAB as u64],
        GgmlType::Q6_K,
    );

    let file_size = w.total_len();
    let mut header = Vec::new();
    // The tensor data writer is dropped unused: only the header is wanted.
    w.begin(&mut header).unwrap();
    (header, file_size)
}

fn parse(c: &mut Criterion) {
    let (header, file_size) = llama_405b_header();
    let parsed = parse_reader(header.as_slice(), file_size).unwrap();
    assert_eq!(parsed.tensors.len(), 1_138);
    assert_eq!(parsed.get_array_len("tokenizer.ggml.tokens"), Some(N_VOCAB));

    let mut g = c.benchmark_group("gguf");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(header.len() as u64));
    g.bench_function("parse_header/llama-3.1-405b", |b| {
        b.iter(|| parse_reader(black_box(header.as_slice()), file_size).unwrap())
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
