//! Runs an [`EngineJob`] through llama.cpp the way llama-bench does: load the model once;
//! per test a fresh context with the test's parameters, a warm-up, then repetitions of
//! random-token prompt processing (in `n_batch` chunks) and one-token-at-a-time generation,
//! each repetition starting from an empty KV cache filled to `n_depth` (untimed).

use std::ffi::CString;
use std::io::Write;
use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::time::Instant;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::{LlamaModelParams, LlamaSplitMode};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokbench_core::clock::monotonic_ns;
use tokbench_core::record::{AllocatedMemory, BufferBytes, DeviceMemory, DeviceUse};
use tokbench_core::CacheType;

use crate::fault::{Fault, FaultPhase};
use crate::logits::Logits;
use crate::protocol::{EngineEvent, EngineJob, EngineTest, PROTOCOL_VERSION};

static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();

/// Initializes llama.cpp once per process.
pub fn backend() -> &'static LlamaBackend {
    BACKEND.get_or_init(|| LlamaBackend::init().expect("llama backend initializes once"))
}

unsafe extern "C" fn drop_log(
    _level: llama_cpp_sys_2::ggml_log_level,
    _text: *const std::os::raw::c_char,
    _user_data: *mut std::os::raw::c_void,
) {
}

/// What llama.cpp said it allocated, summed over devices and buffer by buffer, from its log
/// lines `<fn>: <buffer> {model|KV|compute|output} buffer size = <X> MiB`, and where: the
/// devices it used and the layers it offloaded.
static ALLOCATED: std::sync::Mutex<AllocatedMemory> = std::sync::Mutex::new(AllocatedMemory {
    model_bytes: None,
    repack_bytes: None,
    kv_bytes: None,
    compute_bytes: None,
    output_bytes: None,
    buffers: Vec::new(),
    devices: Vec::new(),
    layers_offloaded: None,
    layers_total: None,
    device_memory: Vec::new(),
});

/// llama.cpp's and ggml's last error lines, newest last: their own words for why a load,
/// a context or a decode failed (`alloc_tensor_range: failed to allocate Vulkan0 buffer of
/// size 17432576`), which the generic error the bindings return does not carry.
static LLAMA_ERRORS: std::sync::Mutex<std::collections::VecDeque<String>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// How many error lines [`LLAMA_ERRORS`] keeps: a failed load logs three or four.
const KEPT_ERRORS: usize = 6;

/// `error`, followed by what llama.cpp logged as errors since the last call (which it
/// clears): `llama.cpp could not load m.gguf: null result from llama cpp; llama.cpp said:
/// alloc_tensor_range: failed to allocate Vulkan0 buffer of size 17432576 | …`.
fn with_llama_errors(error: String) -> String {
    let lines: Vec<String> = llama_errors().drain(..).collect();
    if lines.is_empty() {
        error
    } else {
        format!("{error}; llama.cpp said: {}", lines.join(" | "))
    }
}

fn llama_errors() -> std::sync::MutexGuard<'static, std::collections::VecDeque<String>> {
    LLAMA_ERRORS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adds what one log line reports to `into`: a buffer's size, a device used, or the layers
/// offloaded; false if the line reports none of them.
fn note_log_line(line: &str, into: &mut AllocatedMemory) -> bool {
    note_buffer_line(line, into) || note_offload_line(line, into) || note_device_line(line, into)
}

/// `load_tensors: offloaded 9/9 layers to GPU`.
fn note_offload_line(line: &str, into: &mut AllocatedMemory) -> bool {
    let Some((_, tail)) = line.split_once(": offloaded ") else {
        return false;
    };
    let Some((n, m)) = tail
        .trim_end()
        .strip_suffix(" layers to GPU")
        .and_then(|f| f.split_once('/'))
    else {
        return false;
    };
    match (n.parse(), m.parse()) {
        (Ok(n), Ok(m)) => {
            (into.layers_offloaded, into.layers_total) = (Some(n), Some(m));
            true
        }
        _ => false,
    }
}

/// `llama_model_load_from_file_impl: using device Vulkan0 (llvmpipe (LLVM 15.0.6, 256
/// bits)) (unknown id) - 7934 MiB free`: the device's name, its description (the id after
/// it is dropped) and its free memory.
fn note_device_line(line: &str, into: &mut AllocatedMemory) -> bool {
    let Some((_, tail)) = line.split_once(": using device ") else {
        return false;
    };
    let (what, free) = match tail.trim_end().rsplit_once(" - ") {
        Some((what, free)) => (
            what,
            free.strip_suffix(" MiB free")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .map(|mib| mib << 20),
        ),
        None => (tail.trim_end(), None),
    };
    let Some((name, rest)) = what.split_once(' ') else {
        return false;
    };
    // "(description) (id)", or "(description)" from an older llama.cpp: the description
    // is the first group, whose parentheses may nest.
    let rest = rest.trim();
    let mut depth = 0usize;
    let end = rest.char_indices().find_map(|(i, c)| {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        (depth == 0).then_some(i)
    });
    let description = match (rest.starts_with('('), end) {
        (true, Some(end)) => &rest[1..end],
        _ => rest,
    };
    into.devices.push(DeviceUse {
        name: name.to_string(),
        description: description.to_string(),
        free_bytes: free,
    });
    true
}

/// Adds one log line's buffer size to `into`; false if the line reports none.
fn note_buffer_line(line: &str, into: &mut AllocatedMemory) -> bool {
    let Some((head, tail)) = line.split_once(" buffer size = ") else {
        return false;
    };
    let Some(mib) = tail
        .trim()
        .strip_suffix("MiB")
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite() && *n >= 0.0)
    else {
        return false;
    };
    let bytes = (mib * 1024.0 * 1024.0).round() as u64;
    let mut words = head.split_whitespace().rev();
    let (kind, buffer) = (words.next(), words.next().unwrap_or(""));
    let slot = match kind {
        // The CPU backend's interleaved second copy of some quantized weights.
        Some("model") if buffer.ends_with("_REPACK") => &mut into.repack_bytes,
        Some("model") => &mut into.model_bytes,
        Some("KV") => &mut into.kv_bytes,
        Some("compute") => &mut into.compute_bytes,
        Some("output") => &mut into.output_bytes,
        _ => return false,
    };
    *slot = Some(slot.unwrap_or(0) + bytes);
    into.buffers.push(BufferBytes {
        buffer: buffer.to_string(),
        kind: kind.unwrap_or_default().to_string(),
        bytes,
    });
    true
}

/// llama.cpp's log, passed on to stderr (the runner keeps its tail) and read for the
/// buffer sizes it reports.
unsafe extern "C" fn capture_log(
    level: llama_cpp_sys_2::ggml_log_level,
    text: *const std::os::raw::c_char,
    _user_data: *mut std::os::raw::c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for the call.
    let bytes = unsafe { std::ffi::CStr::from_ptr(text) }.to_bytes();
    if ECHO_LOG.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(bytes);
    }
    if level == llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR {
        let mut kept = llama_errors();
        for line in String::from_utf8_lossy(bytes).lines() {
            let line = line.trim();
            if !line.is_empty() {
                if kept.len() == KEPT_ERRORS {
                    kept.pop_front();
                }
                kept.push_back(line.to_string());
            }
        }
    }
    // Buffer sizes, devices and offload are logged at load and context creation only:
    // other lines (llama.cpp may log while it computes) pass without taking the lock or
    // being parsed.
    if !LOG_MARKS
        .iter()
        .any(|mark| bytes.windows(mark.len()).any(|w| w == *mark))
    {
        return;
    }
    let mut a = allocated();
    for line in String::from_utf8_lossy(bytes).lines() {
        note_log_line(line, &mut a);
    }
}

/// Whether llama.cpp's log goes on to stderr (the engine child's always does; `model
/// logits` shows it only with `--verbose`).
static ECHO_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

const LOG_MARKS: [&[u8]; 3] = [b" buffer size = ", b": offloaded ", b": using device "];

/// The allocation record; a panic elsewhere while it was held does not make it unusable.
fn allocated() -> std::sync::MutexGuard<'static, AllocatedMemory> {
    ALLOCATED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Initializes llama.cpp with its log silenced (for the quantizer inside `model synth`).
pub fn init_backend_quietly() {
    // SAFETY: drop_log is a valid callback for the process lifetime and ignores its args.
    unsafe { llama_cpp_sys_2::llama_log_set(Some(drop_log), std::ptr::null_mut()) };
    backend();
}

fn kv_type(t: CacheType) -> KvCacheType {
    match t {
        CacheType::F32 => KvCacheType::F32,
        CacheType::F16 => KvCacheType::F16,
        CacheType::Bf16 => KvCacheType::BF16,
        CacheType::Q8_0 => KvCacheType::Q8_0,
        CacheType::Q4_0 => KvCacheType::Q4_0,
        CacheType::Q4_1 => KvCacheType::Q4_1,
        CacheType::Iq4Nl => KvCacheType::IQ4_NL,
        CacheType::Q5_0 => KvCacheType::Q5_0,
        CacheType::Q5_1 => KvCacheType::Q5_1,
    }
}

/// Resident memory now and at peak (Linux `/proc/self/status` VmRSS / VmHWM), bytes.
fn rss() -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kb * 1024)
        })
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the kernel's peak-RSS mark so VmHWM measures one test (Linux ≥ 4.0).
fn reset_rss_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Strikes if `fault` names this phase (a build without `fault-injection` has none).
fn trigger(fault: &Option<Fault>, phase: FaultPhase, test: u64, rep: u32) {
    if let Some(f) = fault {
        f.trigger(phase, test, rep);
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

struct Tokens {
    rng: ChaCha8Rng,
    n_vocab: i32,
    bos: Option<LlamaToken>,
}

impl Tokens {
    fn random(&mut self) -> LlamaToken {
        LlamaToken(self.rng.gen_range(0..self.n_vocab))
    }
}

fn decode(ctx: &mut LlamaContext<'_>, tokens: &[LlamaToken]) -> Result<(), String> {
    let mut batch = LlamaBatch::get_one(tokens).map_err(|e| e.to_string())?;
    ctx.decode(&mut batch)
        .map_err(|e| format!("llama_decode failed: {e}"))
}

/// Processes `n` random tokens in `n_batch` chunks (llama-bench `test_prompt`).
fn prompt(
    ctx: &mut LlamaContext<'_>,
    tok: &mut Tokens,
    n: u32,
    n_batch: u32,
) -> Result<(), String> {
    let mut done = 0;
    let mut buf = Vec::with_capacity(n_batch.min(n) as usize);
    while done < n {
        let len = (n - done).min(n_batch);
        buf.clear();
        for i in 0..len {
            let t = match (done, i, tok.bos) {
                (0, 0, Some(bos)) => bos,
                _ => tok.random(),
            };
            buf.push(t);
        }
        decode(ctx, &buf)?;
        done += len;
    }
    ctx.synchronize();
    Ok(())
}

/// Decodes one token and waits for it (one step of llama-bench `test_gen`).
fn step(ctx: &mut LlamaContext<'_>, token: LlamaToken) -> Result<(), String> {
    decode(ctx, &[token])?;
    ctx.synchronize();
    Ok(())
}

/// Runs a job, writing events to `out`. Returns when the job is done or cannot go on.
pub fn run_job(job: &EngineJob, out: &mut impl Write) -> std::io::Result<()> {
    let mut emit = |ev: EngineEvent| -> std::io::Result<()> {
        writeln!(out, "{}", ev.to_line())?;
        out.flush()
    };
    // The probe (a job with no tests) never faults: it is not a cell.
    let fault = Fault::from_env().filter(|_| !job.tests.is_empty());
    trigger(&fault, FaultPhase::Start, 0, 0);
    // SAFETY: capture_log is a valid callback for the process lifetime.
    unsafe { llama_cpp_sys_2::llama_log_set(Some(capture_log), std::ptr::null_mut()) };
    let backend = backend();
    let listed = llama_cpp_2::list_llama_ggml_backend_devices();
    let devices = listed
        .iter()
        .map(|d| {
            format!(
                "{}:{}:{}:{}",
                d.backend, d.name, d.description, d.memory_total
            )
        })
        .collect();
    let devices_free_bytes = listed.iter().map(|d| d.memory_free as u64).collect();
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let system_info =
        unsafe { std::ffi::CStr::from_ptr(llama_cpp_sys_2::llama_print_system_info()) }
            .to_string_lossy()
            .trim()
            .to_string();
    emit(EngineEvent::Hello {
        protocol: PROTOCOL_VERSION,
        version: crate::LLAMA_BINDINGS.to_string(),
        accel: crate::accel().to_string(),
        system_info,
        devices,
        devices_free_bytes,
    })?;
    if job.protocol != PROTOCOL_VERSION {
        emit(EngineEvent::Fatal {
            error: format!(
                "job speaks protocol {}, this engine speaks {PROTOCOL_VERSION}",
                job.protocol
            ),
        })?;
        return Ok(());
    }
    if !job.model_path.is_file() {
        emit(EngineEvent::Fatal {
            error: format!("model file not found: {}", job.model_path.display()),
        })?;
        return Ok(());
    }
    let patterns = match cpu_override_patterns(&job.offload) {
        Ok(p) => p,
        Err(error) => {
            emit(EngineEvent::Fatal { error })?;
            return Ok(());
        }
    };
    let params = LlamaModelParams::default()
        .with_n_gpu_layers(job.n_gpu_layers)
        .with_use_mmap(job.use_mmap)
        .with_split_mode(split_mode(job.offload.split_mode))
        .with_main_gpu(i32::try_from(job.offload.main_gpu).unwrap_or(i32::MAX));
    // The overrides point into `patterns`, which outlives the load below.
    let mut params = std::pin::pin!(params);
    for p in &patterns {
        params.as_mut().add_cpu_buft_override(p);
    }
    llama_errors().clear();
    let free_before_load = accelerator_memory();
    let t_load = Instant::now();
    let load_start = monotonic_ns();
    let model = match LlamaModel::load_from_file(backend, &job.model_path, &params) {
        Ok(m) => m,
        Err(e) => {
            emit(EngineEvent::Fatal {
                error: with_llama_errors(format!(
                    "llama.cpp could not load {} (n_gpu_layers {}): {e}",
                    job.model_path.display(),
                    job.n_gpu_layers
                )),
            })?;
            return Ok(());
        }
    };
    let load_ms = ms(t_load);
    trigger(&fault, FaultPhase::Load, 0, 0);
    emit(EngineEvent::Loaded {
        load_ms,
        n_params: model.n_params(),
        model_size_bytes: model.size(),
        n_layer: model.n_layer(),
        n_vocab: model.n_vocab().max(0) as u32,
        rss_bytes: rss().0,
        load_ns: Some([load_start, monotonic_ns()]),
    })?;
    // What loading the model allocated; each test's context adds its own KV cache,
    // compute and output buffers.
    let loaded = {
        let a = allocated();
        AllocatedMemory {
            model_bytes: a.model_bytes,
            repack_bytes: a.repack_bytes,
            buffers: a
                .buffers
                .iter()
                .filter(|b| b.kind == "model")
                .cloned()
                .collect(),
            devices: a.devices.clone(),
            layers_offloaded: a.layers_offloaded,
            layers_total: a.layers_total,
            device_memory: device_memory(&free_before_load, &accelerator_memory()),
            ..AllocatedMemory::default()
        }
    };
    for test in &job.tests {
        reset_rss_peak();
        llama_errors().clear();
        *allocated() = loaded.clone();
        match run_test(&model, test, &fault, &mut emit) {
            Ok(()) => emit(EngineEvent::TestFinished {
                id: test.id,
                rss_peak_bytes: rss().1,
                allocated: Some(allocated().clone()),
            })?,
            Err(TestError::Io(e)) => return Err(e),
            Err(TestError::Llama(error)) => emit(EngineEvent::TestFailed {
                id: test.id,
                error: with_llama_errors(error),
            })?,
        }
    }
    trigger(&fault, FaultPhase::Finish, 0, 0);
    emit(EngineEvent::Done)?;
    trigger(&fault, FaultPhase::Shutdown, 0, 0);
    Ok(())
}

enum TestError {
    Io(std::io::Error),
    Llama(String),
}

impl From<String> for TestError {
    fn from(e: String) -> Self {
        Self::Llama(e)
    }
}

impl From<std::io::Error> for TestError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn run_test(
    model: &LlamaModel,
    t: &EngineTest,
    fault: &Option<Fault>,
    emit: &mut impl FnMut(EngineEvent) -> std::io::Result<()>,
) -> Result<(), TestError> {
    let t_ctx = Instant::now();
    // Room for the depth, the prompt, the generated tokens and the TTFT token.
    // (A suite's tests are refused past llama.cpp's 2^31 - 1 positions; a job from
    // elsewhere gets llama.cpp's own refusal, not a wrapped size.)
    let n_ctx = u32::try_from(tokbench_core::bench::engine_ctx(
        t.n_depth, t.n_prompt, t.n_gen,
    ))
    .unwrap_or(u32::MAX);
    let threads = i32::try_from(t.n_threads).unwrap_or(i32::MAX);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(t.n_batch)
        .with_n_ubatch(t.n_ubatch)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_flash_attention_policy(if t.flash_attn {
            llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED
        } else {
            llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED
        })
        .with_type_k(kv_type(t.type_k))
        .with_type_v(kv_type(t.type_v));
    let mut ctx = model
        .new_context(backend(), params)
        .map_err(|e| format!("llama.cpp could not create a context (n_ctx {n_ctx}, type_k {}, type_v {}, flash_attn {}): {e}", t.type_k, t.type_v, t.flash_attn))?;
    let vocab = model.vocab();
    let mut tok = Tokens {
        rng: ChaCha8Rng::seed_from_u64(t.seed),
        n_vocab: model.n_vocab(),
        bos: vocab.should_add_bos().then(|| vocab.bos()),
    };
    let first_gen_token = |tok: &mut Tokens| tok.bos.unwrap_or_else(|| tok.random());
    let warmup_start = monotonic_ns();
    if t.warmup {
        trigger(fault, FaultPhase::Warmup, t.id, 0);
        if t.n_prompt > 0 {
            prompt(
                &mut ctx,
                &mut tok,
                t.n_prompt.min(t.n_batch).min(32),
                t.n_batch,
            )?;
        }
        if t.n_gen > 0 {
            let first = first_gen_token(&mut tok);
            step(&mut ctx, first)?;
        }
        ctx.clear_kv_cache();
    }
    let warmup_ns = t.warmup.then(|| [warmup_start, monotonic_ns()]);
    emit(EngineEvent::TestStarted {
        id: t.id,
        context_ms: ms(t_ctx),
        warmup_ns,
    })?;
    let max_reps = t.auto.map_or(t.repetitions, |a| a.max.max(1));
    // The figure `auto` watches: generation speed where the test generates, else prompt.
    let mut rates: Vec<f64> = Vec::new();
    let mut timed_s = 0.0;
    for rep in 0..max_reps {
        ctx.clear_kv_cache();
        if t.n_depth > 0 {
            prompt(&mut ctx, &mut tok, t.n_depth, t.n_batch)?;
        }
        trigger(fault, FaultPhase::Prefill, t.id, rep);
        let start = Instant::now();
        let mut prompt_ms = None;
        let mut prefill_ns = None;
        if t.n_prompt > 0 {
            let t0 = monotonic_ns();
            prompt(&mut ctx, &mut tok, t.n_prompt, t.n_batch)?;
            prompt_ms = Some(ms(start));
            prefill_ns = Some([t0, monotonic_ns()]);
        }
        let mut decode_ns = None;
        let mut gen_ms = None;
        let mut first_token_ms = None;
        let ttft_ms;
        if t.n_gen > 0 {
            let t_gen = Instant::now();
            let t0 = monotonic_ns();
            let mut token = first_gen_token(&mut tok);
            for i in 0..t.n_gen {
                if i == t.n_gen / 2 {
                    trigger(fault, FaultPhase::Decode, t.id, rep);
                }
                step(&mut ctx, token)?;
                if i == 0 {
                    first_token_ms = Some(ms(t_gen));
                }
                token = tok.random();
            }
            gen_ms = Some(ms(t_gen));
            decode_ns = Some([t0, monotonic_ns()]);
            ttft_ms = prompt_ms.unwrap_or(0.0) + first_token_ms.unwrap_or(0.0);
        } else {
            // A pp-only test still answers "when would the first token be there": decode
            // one more token after the prompt, timed apart from the prompt.
            let t_first = Instant::now();
            let token = tok.random();
            step(&mut ctx, token)?;
            ttft_ms = prompt_ms.unwrap_or(0.0) + ms(t_first);
        }
        emit(EngineEvent::Rep {
            id: t.id,
            rep,
            prompt_ms,
            gen_ms,
            first_token_ms,
            ttft_ms,
            prefill_ns,
            decode_ns,
        })?;
        if let Some(auto) = &t.auto {
            timed_s += (prompt_ms.unwrap_or(0.0) + gen_ms.unwrap_or(0.0)) / 1000.0;
            let rate = match (gen_ms, prompt_ms) {
                (Some(g), _) if g > 0.0 => f64::from(t.n_gen) / (g / 1000.0),
                (_, Some(p)) if p > 0.0 => f64::from(t.n_prompt) / (p / 1000.0),
                _ => 0.0,
            };
            rates.push(rate);
            if auto.enough(&rates, timed_s) {
                break;
            }
        }
    }
    // The device's own account with this test's KV cache and compute buffers in place.
    let now = accelerator_memory();
    for d in &mut allocated().device_memory {
        d.free_in_test = now.iter().find(|r| r.name == d.name).map(|r| r.free);
    }
    Ok(())
}

/// One accelerator's memory as its backend reports it at one moment.
struct MemoryReading {
    name: String,
    free: u64,
    total: u64,
}

/// Every GPU's free and total memory now (`ggml_backend_dev_memory`, through the device's
/// properties). The CPU and CPU-side accelerators (BLAS, AMX) report the host's memory,
/// which the runner's own telemetry reads: they are left out.
fn accelerator_memory() -> Vec<MemoryReading> {
    use llama_cpp_2::LlamaBackendDeviceType as Type;
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .filter(|d| matches!(d.device_type, Type::Gpu | Type::IntegratedGpu))
        .map(|d| MemoryReading {
            name: d.name,
            free: d.memory_free as u64,
            total: d.memory_total as u64,
        })
        .collect()
}

/// The readings before and after the load, device by device (a device read once only is
/// left out).
fn device_memory(before: &[MemoryReading], after: &[MemoryReading]) -> Vec<DeviceMemory> {
    before
        .iter()
        .filter_map(|b| {
            let a = after.iter().find(|a| a.name == b.name)?;
            Some(DeviceMemory {
                name: b.name.clone(),
                total_bytes: b.total,
                free_before_load: b.free,
                free_after_load: a.free,
                free_in_test: None,
            })
        })
        .collect()
}

/// Evaluates a fixed prompt — BOS, then `n_tokens − 1` tokens drawn from the vocabulary
/// with `seed` — and returns every position's logits, with the devices and offload llama.cpp
/// reported. In one batch (prompt processing's kernels: matrix × matrix), or with `stepwise`
/// one token at a time against the KV cache (generation's: matrix × vector). `verbose`
/// passes llama.cpp's log on to stderr.
pub fn eval_logits(
    model_path: &std::path::Path,
    n_gpu_layers: u32,
    n_tokens: u32,
    seed: u64,
    n_threads: u32,
    stepwise: bool,
    verbose: bool,
) -> Result<Logits, String> {
    use crate::logits::{LogitsHeader, FORMAT};
    ECHO_LOG.store(verbose, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: capture_log is a valid callback for the process lifetime.
    unsafe { llama_cpp_sys_2::llama_log_set(Some(capture_log), std::ptr::null_mut()) };
    *allocated() = AllocatedMemory::default();
    if n_tokens == 0 {
        return Err("a prompt of 0 tokens has no logits".into());
    }
    if !model_path.is_file() {
        return Err(format!("model file not found: {}", model_path.display()));
    }
    let params = LlamaModelParams::default().with_n_gpu_layers(n_gpu_layers);
    llama_errors().clear();
    let model = LlamaModel::load_from_file(backend(), model_path, &params).map_err(|e| {
        with_llama_errors(format!(
            "llama.cpp could not load {}: {e}",
            model_path.display()
        ))
    })?;
    let threads = i32::try_from(n_threads).unwrap_or(i32::MAX);
    let ctx_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_tokens))
        .with_n_batch(n_tokens)
        .with_n_ubatch(n_tokens)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(backend(), ctx_params).map_err(|e| {
        with_llama_errors(format!(
            "llama.cpp could not create a context of {n_tokens} tokens: {e}"
        ))
    })?;
    let vocab = model.vocab();
    let mut tok = Tokens {
        rng: ChaCha8Rng::seed_from_u64(seed),
        n_vocab: model.n_vocab(),
        bos: vocab.should_add_bos().then(|| vocab.bos()),
    };
    let tokens: Vec<LlamaToken> = (0..n_tokens)
        .map(|i| match (i, tok.bos) {
            (0, Some(bos)) => bos,
            _ => tok.random(),
        })
        .collect();
    let n_vocab = model.n_vocab().max(0) as usize;
    let mut logits = Vec::with_capacity(tokens.len() * n_vocab);
    if stepwise {
        let mut batch = LlamaBatch::new(1, 1);
        for (pos, &t) in tokens.iter().enumerate() {
            batch.clear();
            batch
                .add(t, pos as i32, &[0], true)
                .map_err(|e| e.to_string())?;
            ctx.decode(&mut batch)
                .map_err(|e| format!("llama_decode failed at position {pos}: {e}"))?;
            logits.extend_from_slice(&ctx.get_logits_ith(0)[..n_vocab]);
        }
    } else {
        let mut batch = LlamaBatch::new(tokens.len(), 1);
        for (pos, &t) in tokens.iter().enumerate() {
            batch
                .add(t, pos as i32, &[0], true)
                .map_err(|e| e.to_string())?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| format!("llama_decode failed: {e}"))?;
        for p in 0..tokens.len() {
            logits.extend_from_slice(&ctx.get_logits_ith(p as i32)[..n_vocab]);
        }
    }
    let a = allocated().clone();
    Ok(Logits {
        header: LogitsHeader {
            format: FORMAT.into(),
            model: model_path.display().to_string(),
            accel: crate::accel().into(),
            n_gpu_layers,
            devices: a
                .devices
                .iter()
                .map(|d| format!("{} ({})", d.name, d.description))
                .collect(),
            layers_offloaded: a.layers_offloaded,
            layers_total: a.layers_total,
            n_threads,
            stepwise,
            seed,
            tokens: tokens.iter().map(|t| t.0).collect(),
            n_vocab,
        },
        logits,
    })
}

#[cfg(test)]
mod buffer_log_tests {
    use super::*;

    #[test]
    fn buffer_sizes_are_read_from_llama_cpp_log_lines() {
        let mut a = AllocatedMemory::default();
        // Lines as llama.cpp 0.1.161 prints them (llama-model.cpp, llama-kv-cache.cpp,
        // llama-context.cpp).
        for line in [
            "load_tensors:   CPU_Mapped model buffer size =    58.74 MiB",
            "load_tensors:   CPU_REPACK model buffer size =    81.25 MiB",
            "llama_kv_cache:        CPU KV buffer size =     8.00 MiB",
            "llama_context:  CPU  output buffer size =     0.12 MiB",
            "sched_reserve:        CPU compute buffer size =    66.50 MiB",
            "sched_reserve:      CUDA0 compute buffer size =   100.00 MiB",
        ] {
            assert!(note_buffer_line(line, &mut a), "{line}");
        }
        assert!(!note_buffer_line("llama_context: n_ctx = 512", &mut a));
        assert!(!note_buffer_line(
            "graph_reserve: compute buffer size is 1.0 MiB, matches",
            &mut a
        ));
        assert_eq!(a.model_bytes, Some((58.74f64 * 1048576.0).round() as u64));
        assert_eq!(a.repack_bytes, Some((81.25f64 * 1048576.0).round() as u64));
        assert_eq!(a.kv_bytes, Some(8 << 20));
        assert_eq!(a.compute_bytes, Some((166.5f64 * 1048576.0) as u64));
        assert_eq!(a.output_bytes, Some((0.12f64 * 1048576.0).round() as u64));
        assert_eq!(a.buffers.len(), 6);
        assert_eq!(
            a.buffers[5],
            BufferBytes {
                buffer: "CUDA0".into(),
                kind: "compute".into(),
                bytes: 100 << 20,
            }
        );
    }

    #[test]
    fn devices_and_offloaded_layers_are_read_from_a_vulkan_load() {
        let mut a = AllocatedMemory::default();
        // llama-bench -v of the Vulkan build (llama-cpp-sys-2 0.1.161) on lavapipe, the tiny
        // synthetic model at -ngl 4: its load and first context, captured (the per-tensor,
        // per-key and graph debug lines left out).
        for line in VULKAN_LOAD.lines() {
            note_log_line(line, &mut a);
        }
        assert_eq!(
            a.devices,
            vec![DeviceUse {
                name: "Vulkan0".into(),
                description: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
                free_bytes: Some(2048 << 20),
            }]
        );
        assert_eq!((a.layers_offloaded, a.layers_total), (Some(4), Some(9)));
        let on = |buffer: &str, kind: &str| {
            a.buffers
                .iter()
                .filter(|b| b.buffer == buffer && b.kind == kind)
                .map(|b| b.bytes)
                .sum::<u64>()
        };
        assert!(on("Vulkan0", "model") > 0 && on("CPU_Mapped", "model") > 0);
        assert_eq!(
            a.model_bytes,
            Some(on("Vulkan0", "model") + on("CPU_Mapped", "model"))
        );
        assert!(on("Vulkan0", "KV") > 0 && on("CPU", "KV") > 0, "{a:?}");
        // Not a device, not an offload.
        assert!(!note_log_line(
            "load_tensors: offloading 3 repeating layers to GPU",
            &mut a
        ));
        assert!(!note_log_line("load_tensors: offloaded all to GPU", &mut a));
        // Without the id an older llama.cpp printed no group after the description.
        assert!(note_device_line(
            "llama_model_load_from_file_impl: using device CUDA0 (NVIDIA H200 (PCIe)) - 140386 MiB free",
            &mut a
        ));
        assert_eq!(a.devices[1].description, "NVIDIA H200 (PCIe)");
        assert_eq!(a.devices[1].free_bytes, Some(140386 << 20));
    }

    const VULKAN_LOAD: &str = include_str!("../tests/fixtures/vulkan-load.log");

    #[test]
    fn llama_cpp_error_lines_follow_the_error_they_explain() {
        let log = |level, text: &str| {
            let c = std::ffi::CString::new(text).unwrap();
            // SAFETY: a valid NUL-terminated string, as llama.cpp passes.
            unsafe { capture_log(level, c.as_ptr(), std::ptr::null_mut()) };
        };
        ECHO_LOG.store(false, std::sync::atomic::Ordering::Relaxed);
        llama_errors().clear();
        // Lines of other levels are not kept; error lines are, one per line, newest last,
        // the oldest dropped past KEPT_ERRORS.
        log(
            llama_cpp_sys_2::GGML_LOG_LEVEL_INFO,
            "llama_model_loader: loaded meta data with 30 key-value pairs\n",
        );
        log(
            llama_cpp_sys_2::GGML_LOG_LEVEL_WARN,
            "llama_context: n_ctx_seq (65) < n_ctx_train\n",
        );
        for i in 0..KEPT_ERRORS {
            log(
                llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR,
                &format!("old error {i}\n"),
            );
        }
        log(
            llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR,
            "ggml_backend_buft_alloc_buffer_n_default: failed to allocate Vulkan0 buffer of size 26773504\n",
        );
        log(
            llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR,
            "llama_model_load: error loading model: unable to allocate Vulkan0 buffer\nllama_model_load_from_file_impl: failed to load model\n",
        );
        let said = with_llama_errors("llama.cpp could not load m.gguf: null result".into());
        assert_eq!(
            said,
            "llama.cpp could not load m.gguf: null result; llama.cpp said: old error 3 | old error 4 | old error 5 | ggml_backend_buft_alloc_buffer_n_default: failed to allocate Vulkan0 buffer of size 26773504 | llama_model_load: error loading model: unable to allocate Vulkan0 buffer | llama_model_load_from_file_impl: failed to load model"
        );
        // Taken once: the next failure does not repeat them.
        assert_eq!(with_llama_errors("decode failed".into()), "decode failed");
        ECHO_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// llama.cpp's split mode for ours.
fn split_mode(m: tokbench_core::SplitMode) -> LlamaSplitMode {
    match m {
        tokbench_core::SplitMode::None => LlamaSplitMode::None,
        tokbench_core::SplitMode::Layer => LlamaSplitMode::Layer,
        tokbench_core::SplitMode::Row => LlamaSplitMode::Row,
        tokbench_core::SplitMode::Tensor => LlamaSplitMode::Tensor,
    }
}

/// The tensor-name patterns to keep on the CPU: the suite's `-ot` pairs, then `n_cpu_moe`'s,
/// in llama-bench's order; or what the engine cannot place ([`tokbench_core::Offload::engine_cannot_place`],
/// which the suite refuses first; checked again for any job that carries it).
fn cpu_override_patterns(o: &tokbench_core::Offload) -> Result<Vec<CString>, String> {
    if let Some((key, why)) = o.engine_cannot_place() {
        return Err(format!(
            "{key}: {why} (llama-cpp-2 cannot set it): run it with backend llama-bench or llama-server"
        ));
    }
    let mut out = Vec::new();
    for (pattern, _) in o.overrides.pairs() {
        out.push(
            CString::new(pattern)
                .map_err(|_| format!("tensor override `{pattern}` holds a NUL byte"))?,
        );
    }
    for p in o.cpu_moe_patterns() {
        out.push(CString::new(p).expect("no NUL in a generated pattern"));
    }
    Ok(out)
}

#[cfg(test)]
mod offload_tests {
    use super::*;

    #[test]
    fn the_engine_keeps_tensors_on_the_cpu_and_refuses_what_the_bindings_cannot_set() {
        let o = tokbench_core::Offload {
            overrides: r"blk\.0\..*=CPU".parse().unwrap(),
            n_cpu_moe: 1,
            ..Default::default()
        };
        let got: Vec<String> = cpu_override_patterns(&o)
            .unwrap()
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(
            got,
            [
                r"blk\.0\..*",
                r"blk\.0\.ffn_(up|down|gate|gate_up)_(ch|)exps"
            ]
        );
        let to_gpu = tokbench_core::Offload {
            overrides: "output=Vulkan0".parse().unwrap(),
            ..Default::default()
        };
        let e = cpu_override_patterns(&to_gpu).unwrap_err();
        assert!(
            e.contains("`output=Vulkan0`") && e.contains("llama-bench"),
            "{e}"
        );
        let split = tokbench_core::Offload {
            tensor_split: "3/1".parse().unwrap(),
            ..Default::default()
        };
        let e = cpu_override_patterns(&split).unwrap_err();
        assert!(
            e.contains("tensor_split: the engine cannot split tensors (3.00/1.00)"),
            "{e}"
        );
        assert!(cpu_override_patterns(&Default::default())
            .unwrap()
            .is_empty());
    }
}
