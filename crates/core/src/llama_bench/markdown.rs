//! llama-bench's Markdown table, as printed and as people paste it into issues and
//! discussions: columns found by their header name (llama-bench prints only the settings
//! that differ from its defaults), older spellings (`pp 512`, `mostly Q4_0`), tables without
//! outer pipes, inside code fences, `<details>` or quotes, with log lines between rows; the
//! hardware from the device lines CUDA, ROCm, Vulkan and Metal print, and the build from the
//! `build: 233d773d0 (6413)` footer.
//!
//! A table is not the JSON output: sizes are rounded (`3.56 GiB`, `6.74 B`), there are no
//! repetitions, times or CPU name, and a column left out means llama-bench's default, which
//! is known for every setting except the thread count (the machine's core count): a thread
//! count that is not printed is marked unknown, never guessed. Look-alike tables from
//! llama.cpp's other tools (compare-llama-bench, batched-bench, sweep-bench) are refused by
//! name.

use super::*;
use crate::bench::ParamSet;

/// The metadata block a community file starts with (`---`, `key: value` lines, `---`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontMatter {
    /// Where the table was published (a URL).
    pub source: Option<String>,
    /// When it was published, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// The hardware as the post states it (`2x GeForce RTX 3090`).
    pub hardware: Option<String>,
    /// The machine's name, when a post names one.
    pub host: Option<String>,
    /// Which of the post's rows were copied.
    pub rows: Option<String>,
    pub note: Option<String>,
}

/// Reads the front matter at the start of `input`, if there is one: its fields, and the
/// number of lines it spans. Unknown keys are an error naming the line.
pub fn front_matter(input: &str) -> Result<Option<(FrontMatter, usize)>, LlamaBenchError> {
    let mut lines = input.trim_start_matches('\u{feff}').lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == "---" => {}
        _ => return Ok(None),
    }
    let mut meta = FrontMatter::default();
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line.trim_end();
        if line == "---" {
            return Ok(Some((meta, line_no)));
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(LlamaBenchError::Field {
                line: line_no,
                field: "front matter".into(),
                expected: "`key: value`",
                found: line.to_string(),
            });
        };
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        let slot = match key.trim() {
            "source" => &mut meta.source,
            "date" => &mut meta.date,
            "hardware" => &mut meta.hardware,
            "host" => &mut meta.host,
            "rows" => &mut meta.rows,
            "note" => &mut meta.note,
            other => {
                return Err(LlamaBenchError::Field {
                    line: line_no,
                    field: other.to_string(),
                    expected: "one of source, date, hardware, host, rows, note",
                    found: line.to_string(),
                })
            }
        };
        *slot = value;
    }
    Err(LlamaBenchError::Field {
        line: 1,
        field: "front matter".into(),
        expected: "a closing `---` line",
        found: "the end of the input".into(),
    })
}

/// Whether `input` holds a llama-bench Markdown table (a header with `model`, `test` and
/// `t/s`), or one of the look-alike tables [`parse_markdown`] refuses.
pub fn looks_like_markdown(input: &str) -> bool {
    input
        .lines()
        .take(10_000)
        .any(|l| header_kind(&cells(l)).is_some())
}

/// The tables of llama.cpp's tools that a header can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderKind {
    LlamaBench,
    LookAlike(&'static str),
}

fn header_kind(cells: &[String]) -> Option<HeaderKind> {
    let has = |name: &str| cells.iter().any(|c| c.eq_ignore_ascii_case(name));
    let starts = |prefix: &str| cells.iter().any(|c| c.starts_with(prefix));
    if has("N_KV") && (has("S_PP t/s") || has("S_TG t/s")) {
        let what = if has("B") {
            "a llama-batched-bench table (columns PP, TG, B, N_KV, S_PP t/s …), not llama-bench's"
        } else {
            "a llama-sweep-bench table (columns PP, TG, N_KV, S_PP t/s …), not llama-bench's"
        };
        return Some(HeaderKind::LookAlike(what));
    }
    if !(has("model") || has("Model")) || !(has("test") || has("Test")) {
        return None;
    }
    if has("Speedup") || starts("t/s ") || cells.iter().filter(|c| c.contains("t/s")).count() > 1 {
        return Some(HeaderKind::LookAlike(
            "a compare-llama-bench table (t/s of two builds side by side), not llama-bench's own output; import each build's llama-bench output instead",
        ));
    }
    has("t/s").then_some(HeaderKind::LlamaBench)
}

/// A line's table cells: split at `|`, trimmed, without the empty cells outer pipes make;
/// quote markers (`> `) and indentation are dropped first. A line without `|` has none.
fn cells(line: &str) -> Vec<String> {
    let mut l = line.trim();
    while let Some(rest) = l.strip_prefix('>') {
        l = rest.trim_start();
    }
    if !l.contains('|') {
        return Vec::new();
    }
    let l = l.strip_prefix('|').unwrap_or(l);
    let l = l.strip_suffix('|').unwrap_or(l);
    l.split('|').map(|c| c.trim().to_string()).collect()
}

/// Whether a table line starts with a pipe (after quote markers).
fn piped(line: &str) -> bool {
    line.trim_start()
        .trim_start_matches(['>', ' '])
        .starts_with('|')
}

/// A log line that happens to hold pipes (`ggml_vulkan: 0 = … | uma: 0 | fp16: 1`).
fn is_log(cells: &[String]) -> bool {
    let first = cells.first().map_or("", String::as_str);
    [
        "ggml_",
        "llama_",
        "load_",
        "print_info",
        "main:",
        "system_info",
    ]
    .iter()
    .any(|p| first.starts_with(p))
}

/// `| --- | ---: |`: the line under a header.
fn is_separator(cells: &[String]) -> bool {
    !cells.is_empty()
        && cells.iter().all(|c| {
            let c = c.trim_matches(':');
            !c.is_empty() && c.chars().all(|ch| ch == '-')
        })
}

/// What a header names, as llama-bench's markdown printer spells it (and its field names,
/// which some pastes use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Model,
    Size,
    Params,
    Backend,
    Ngl,
    Threads,
    NBatch,
    NUbatch,
    TypeK,
    TypeV,
    Fa,
    Mmap,
    Devices,
    TensorSplit,
    SplitMode,
    MainGpu,
    Nkvo,
    NCpuMoe,
    Overrides,
    Test,
    Rate,
    /// Any other setting (`cpu_mask`, `poll`, `embd`, `ot`, …): kept in `extra`.
    Other,
}

fn column(name: &str) -> Column {
    match name.to_ascii_lowercase().as_str() {
        "model" => Column::Model,
        "size" => Column::Size,
        "params" => Column::Params,
        "backend" => Column::Backend,
        "ngl" | "n_gpu_layers" => Column::Ngl,
        "threads" | "n_threads" => Column::Threads,
        "n_batch" | "batch" => Column::NBatch,
        "n_ubatch" | "ubatch" => Column::NUbatch,
        "type_k" | "ctk" => Column::TypeK,
        "type_v" | "ctv" => Column::TypeV,
        "fa" | "flash_attn" => Column::Fa,
        "mmap" | "use_mmap" => Column::Mmap,
        "dev" | "devices" => Column::Devices,
        "ts" | "tensor_split" => Column::TensorSplit,
        "sm" | "split_mode" => Column::SplitMode,
        "mg" | "main_gpu" => Column::MainGpu,
        "nkvo" | "no_kv_offload" => Column::Nkvo,
        "n_cpu_moe" | "ncmoe" => Column::NCpuMoe,
        "ot" | "tensor_buft_overrides" => Column::Overrides,
        "test" => Column::Test,
        "t/s" => Column::Rate,
        _ => Column::Other,
    }
}

/// The devices and build a paste names outside its tables.
#[derive(Debug, Default)]
struct Context {
    /// `(index, name)` from `Device 0: …`, `ggml_vulkan: 0 = …` lines, in order, once each.
    devices: Vec<(u32, String)>,
    /// The Apple chip from Metal's `GPU name:` line.
    metal_chip: Option<String>,
}

impl Context {
    fn read(&mut self, line: &str) {
        let l = line.trim();
        // CUDA and ROCm: `Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes`.
        if let Some(rest) = l.find("Device ").map(|i| &l[i + 7..]) {
            if let Some((index, tail)) = rest.split_once(':') {
                if let Ok(index) = index.trim().parse::<u32>() {
                    let name = tail.split(',').next().unwrap_or("").trim();
                    self.add(index, name);
                    return;
                }
            }
        }
        // `ggml_vulkan: 0 = AMD Radeon RX 7900 XTX (RADV NAVI31) (radv) | uma: 0 | …`.
        if let Some(rest) = l.strip_prefix("ggml_vulkan:") {
            if let Some((index, tail)) = rest.split_once('=') {
                if let Ok(index) = index.trim().parse::<u32>() {
                    let mut name = tail.split('|').next().unwrap_or("").trim();
                    // The driver's own names in parentheses: `(RADV NAVI31) (radv)`.
                    while let Some(open) = name.rfind(" (") {
                        if !name.ends_with(')') {
                            break;
                        }
                        name = name[..open].trim_end();
                    }
                    self.add(index, name);
                }
            }
            return;
        }
        // Metal: `ggml_metal_init: GPU name:   Apple M3 Max` or `GPU name: MTL0 (Apple M3 Max)`.
        if let Some(i) = l.find("GPU name:") {
            let name = l[i + 9..].trim();
            let name = match (name.find('('), name.rfind(')')) {
                (Some(a), Some(b)) if a < b => name[a + 1..b].trim(),
                _ => name,
            };
            if !name.is_empty() && self.metal_chip.is_none() {
                self.metal_chip = Some(name.to_string());
            }
        }
    }

    fn add(&mut self, index: u32, name: &str) {
        let name = name.trim();
        if name.is_empty() || self.devices.iter().any(|(i, _)| *i == index) {
            return;
        }
        self.devices.push((index, name.to_string()));
    }
}

/// A table being read: its columns, and the line of its header.
struct Table {
    columns: Vec<(Column, String)>,
    header_line: usize,
    /// Whether the header had outer pipes (`| model | … |`): its rows have them too.
    piped: bool,
    /// Indices into the records of the rows read under this header.
    first_record: usize,
}

/// Reads every llama-bench table in a paste. A front matter block, prose, code fences and
/// log lines around and between rows are skipped; each table takes the `build:` line that
/// follows it (llama-bench prints it last), else the one before it.
pub fn parse_markdown(input: &str) -> Result<Vec<LlamaBenchRecord>, LlamaBenchError> {
    check_size(input)?;
    let skip = front_matter(input)?.map_or(0, |(_, lines)| lines);
    let mut context = Context::default();
    let mut records: Vec<LlamaBenchRecord> = Vec::new();
    let mut table: Option<Table> = None;
    // (first record, one past the last) of each table, and each build line's position.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut builds: Vec<(usize, (String, i64))> = Vec::new();
    let lines: Vec<&str> = input.trim_start_matches('\u{feff}').lines().collect();
    let mut i = skip;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i];
        let row = cells(line);
        if let Some(kind) = header_kind(&row) {
            let next = lines.get(i + 1).map(|l| cells(l)).unwrap_or_default();
            if is_separator(&next) {
                if let HeaderKind::LookAlike(what) = kind {
                    return Err(LlamaBenchError::LookAlike {
                        line: line_no,
                        what,
                    });
                }
                if let Some(t) = table.take() {
                    spans.push((t.first_record, records.len()));
                }
                table = Some(Table {
                    columns: row.iter().map(|c| (column(c), c.clone())).collect(),
                    header_line: line_no,
                    piped: piped(line),
                    first_record: records.len(),
                });
                i += 2;
                continue;
            }
        }
        if let Some(b) = build_line(line) {
            builds.push((records.len(), b));
            i += 1;
            continue;
        }
        match &table {
            Some(t)
                if row.len() == t.columns.len()
                    && piped(line) == t.piped
                    && !is_separator(&row)
                    && !is_log(&row) =>
            {
                if records.len() >= MAX_RECORDS {
                    return Err(LlamaBenchError::TooManyRecords {
                        line: line_no,
                        max: MAX_RECORDS,
                    });
                }
                records.push(record(&t.columns, &row, line_no)?);
            }
            _ => context.read(line),
        }
        i += 1;
    }
    if let Some(t) = &table {
        spans.push((t.first_record, records.len()));
        if records.len() == t.first_record {
            return Err(LlamaBenchError::Field {
                line: t.header_line,
                field: "table".into(),
                expected: "rows under the header",
                found: "none".into(),
            });
        }
    }
    // Each table's build: the first `build:` line after its last row, else the last before.
    for &(first, end) in &spans {
        let build = builds
            .iter()
            .find(|(at, _)| *at >= end && *at > first)
            .or_else(|| builds.iter().rev().find(|(at, _)| *at <= first))
            .map(|(_, b)| b.clone());
        for r in &mut records[first..end] {
            if let Some((commit, number)) = &build {
                r.build_commit = commit.clone();
                r.build_number = *number;
            }
        }
    }
    for r in &mut records {
        apply_devices(r, &context);
    }
    Ok(records)
}

/// `build: 233d773d0 (6413)` → the commit and build number.
fn build_line(line: &str) -> Option<(String, i64)> {
    let rest = line.trim().strip_prefix("build:")?.trim();
    let (commit, number) = rest.split_once(' ')?;
    // `(8833)`, possibly followed by what a fork appends (`, GGML_SYCL_F16=ON`).
    let (number, _) = number.trim().strip_prefix('(')?.split_once(')')?;
    let number = number.trim().parse().ok()?;
    Some((commit.trim().to_string(), number))
}

/// The devices a row ran on: those its `dev` column names (`CUDA0/CUDA1`), else every
/// device the paste lists; an Apple chip for a Metal backend.
fn apply_devices(r: &mut LlamaBenchRecord, context: &Context) {
    // `-dev none`: no GPU took part.
    if r.devices
        .as_deref()
        .is_some_and(|d| d.trim().eq_ignore_ascii_case("none"))
    {
        r.gpu_info = String::new();
        return;
    }
    let named: Option<Vec<u32>> = r.devices.as_deref().and_then(|d| {
        let picked: Vec<u32> = d
            .split('/')
            .filter_map(|dev| {
                let digits = dev.trim_start_matches(|c: char| !c.is_ascii_digit());
                digits.parse().ok()
            })
            .collect();
        (!picked.is_empty()).then_some(picked)
    });
    let gpus: Vec<&str> = context
        .devices
        .iter()
        .filter(|(i, _)| named.as_ref().is_none_or(|n| n.contains(i)))
        .map(|(_, name)| name.as_str())
        .collect();
    r.gpu_info = gpus.join(", ");
    let metal = r
        .backends
        .as_deref()
        .is_some_and(|b| b.to_ascii_lowercase().contains("metal"));
    if metal {
        if let Some(chip) = &context.metal_chip {
            r.cpu_info = chip.clone();
            if r.gpu_info.is_empty() {
                r.gpu_info = chip.clone();
            }
        }
    }
}

fn bad(line: usize, field: &str, expected: &'static str, found: &str) -> LlamaBenchError {
    LlamaBenchError::Field {
        line,
        field: field.to_string(),
        expected,
        found: found.to_string(),
    }
}

/// `3.56 GiB`, `788.03 MiB` → bytes (to the rounding of the two decimals printed).
fn size_bytes(text: &str) -> Option<u64> {
    let (num, unit) = text.trim().split_once(' ')?;
    let n: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "GiB" => (1u64 << 30) as f64,
        "MiB" => (1u64 << 20) as f64,
        "KiB" => 1024.0,
        "GB" => 1e9,
        "MB" => 1e6,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then(|| (n * scale).round() as u64)
}

/// `6.74 B`, `494.03 M` → parameters (to the rounding printed).
fn param_count(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = match t.split_once(' ') {
        Some((n, u)) => (n, u.trim()),
        None => t.split_at(t.find(|c: char| c.is_ascii_alphabetic())?),
    };
    let n: f64 = num.trim().parse().ok()?;
    let scale = match unit {
        "B" => 1e9,
        "M" => 1e6,
        "K" => 1e3,
        "T" => 1e12,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then(|| (n * scale).round() as u64)
}

/// `pp512`, `tg128`, `pp512+tg128`, `pp 512` (older builds), with ` @ d4096` or `@d4096`.
fn test_of(text: &str) -> Option<(u32, u32, u32)> {
    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (test, depth) = match t.split_once('@') {
        Some((test, d)) => (test.to_string(), d.strip_prefix('d')?.parse().ok()?),
        None => (t, 0),
    };
    let part = |p: &str, prefix: &str| -> Option<u32> { p.strip_prefix(prefix)?.parse().ok() };
    let (n_prompt, n_gen) = match test.split_once('+') {
        Some((pp, tg)) => (part(pp, "pp")?, part(tg, "tg")?),
        None => match (part(&test, "pp"), part(&test, "tg")) {
            (Some(p), None) => (p, 0),
            (None, Some(g)) => (0, g),
            _ => return None,
        },
    };
    (n_prompt > 0 || n_gen > 0).then_some((n_prompt, n_gen, depth))
}

/// `1234.56 ± 12.34` → mean and sd (a paste may have lost the `±` to `+-` or `�`).
fn rate_of(text: &str) -> Option<(f64, f64)> {
    let mut nums = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E'))
        .filter(|s| !s.is_empty() && s.chars().next().is_some_and(|c| c.is_ascii_digit()));
    let mean: f64 = nums.next()?.parse().ok()?;
    let sd: f64 = match nums.next() {
        Some(s) => s.parse().ok()?,
        None => return None,
    };
    (mean.is_finite() && sd.is_finite()).then_some((mean, sd))
}

fn int<T: std::str::FromStr>(line: usize, field: &str, text: &str) -> Result<T, LlamaBenchError> {
    text.trim()
        .parse()
        .map_err(|_| bad(line, field, "an integer", text))
}

fn flag(line: usize, field: &str, text: &str) -> Result<bool, LlamaBenchError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(bad(line, field, "0 or 1", text)),
    }
}

fn seen_column(columns: &[(Column, String)], c: Column) -> bool {
    columns.iter().any(|(col, _)| *col == c)
}

/// One table row as a record: printed columns read; those left out hold llama-bench's
/// current defaults as placeholders and are marked unknown (see the end).
fn record(
    columns: &[(Column, String)],
    row: &[String],
    line: usize,
) -> Result<LlamaBenchRecord, LlamaBenchError> {
    let d = crate::config::EngineAxes::default();
    let mut r = LlamaBenchRecord {
        build_commit: "unknown".into(),
        build_number: 0,
        cpu_info: String::new(),
        gpu_info: String::new(),
        backends: None,
        model_filename: String::new(),
        model_type: String::new(),
        model_size: 0,
        model_n_params: 0,
        // llama-bench's defaults: a column is printed only where a value differs from them.
        n_batch: d.n_batch,
        n_ubatch: d.n_ubatch,
        n_threads: 0,
        cpu_mask: None,
        cpu_strict: None,
        poll: None,
        type_k: d.type_k.name().into(),
        type_v: d.type_v.name().into(),
        n_gpu_layers: d.n_gpu_layers as i32,
        n_cpu_moe: None,
        split_mode: "layer".into(),
        main_gpu: 0,
        no_kv_offload: false,
        flash_attn: Some(FlashAttn::Off),
        devices: None,
        tensor_split: "0.00".into(),
        tensor_buft_overrides: None,
        use_mmap: Some(true),
        use_direct_io: None,
        load_mode: None,
        embeddings: None,
        no_op_offload: None,
        no_host: None,
        repack: None,
        fit_target: None,
        fit_min_ctx: None,
        n_prompt: 0,
        n_gen: 0,
        n_depth: 0,
        test_time: String::new(),
        avg_ns: 0,
        stddev_ns: 0,
        avg_ts: 0.0,
        stddev_ts: 0.0,
        samples_ns: None,
        samples_ts: None,
        extra: BTreeMap::new(),
        unknown: ParamSet::default(),
    };
    let mut threads_seen = false;
    let (mut test_seen, mut rate_seen, mut model_seen) = (false, false, false);
    for ((col, name), value) in columns.iter().zip(row) {
        let v = value.as_str();
        match col {
            Column::Model => {
                model_seen = true;
                r.model_type = v.to_string();
                r.model_filename = v.to_string();
            }
            Column::Size => {
                r.model_size =
                    size_bytes(v).ok_or_else(|| bad(line, name, "a size like `3.56 GiB`", v))?
            }
            Column::Params => {
                r.model_n_params =
                    param_count(v).ok_or_else(|| bad(line, name, "a count like `6.74 B`", v))?
            }
            Column::Backend => r.backends = Some(v.to_string()),
            Column::Ngl => r.n_gpu_layers = int(line, name, v)?,
            Column::Threads => {
                threads_seen = true;
                // `4,8` cannot be one row's value; llama-bench prints one number per row.
                r.n_threads = int(line, name, v)?;
            }
            Column::NBatch => r.n_batch = int(line, name, v)?,
            Column::NUbatch => r.n_ubatch = int(line, name, v)?,
            Column::TypeK => r.type_k = v.to_string(),
            Column::TypeV => r.type_v = v.to_string(),
            Column::Fa => {
                r.flash_attn = Some(match v.trim().to_ascii_lowercase().as_str() {
                    "-1" | "auto" => FlashAttn::Auto,
                    _ => {
                        if flag(line, name, v)? {
                            FlashAttn::On
                        } else {
                            FlashAttn::Off
                        }
                    }
                })
            }
            Column::Mmap => r.use_mmap = Some(flag(line, name, v)?),
            Column::Devices => r.devices = Some(v.to_string()),
            Column::TensorSplit => r.tensor_split = v.to_string(),
            Column::SplitMode => r.split_mode = v.to_string(),
            Column::MainGpu => r.main_gpu = int(line, name, v)?,
            Column::Nkvo => r.no_kv_offload = flag(line, name, v)?,
            Column::NCpuMoe => r.n_cpu_moe = Some(int(line, name, v)?),
            Column::Overrides => r.tensor_buft_overrides = Some(v.to_string()),
            Column::Test => {
                test_seen = true;
                let (p, g, d) = test_of(v).ok_or_else(|| {
                    bad(
                        line,
                        name,
                        "a test like `pp512`, `tg128` or `pp512 @ d4096`",
                        v,
                    )
                })?;
                (r.n_prompt, r.n_gen, r.n_depth) = (p, g, d);
            }
            Column::Rate => {
                rate_seen = true;
                let (mean, sd) =
                    rate_of(v).ok_or_else(|| bad(line, name, "a rate like `123.45 ± 1.23`", v))?;
                (r.avg_ts, r.stddev_ts) = (mean, sd);
            }
            Column::Other => {
                r.extra
                    .insert(name.clone(), serde_json::Value::String(v.to_string()));
            }
        }
    }
    for (seen, field) in [
        (model_seen, "model"),
        (test_seen, "test"),
        (rate_seen, "t/s"),
    ] {
        if !seen {
            return Err(LlamaBenchError::MissingField { line, field });
        }
    }
    // A column the table leaves out is llama-bench's default, which builds changed
    // (n_batch was 512 before n_ubatch existed; later builds default flash attention and
    // n_gpu_layers to auto; a CPU backend's table never prints ngl): unknown, not a guess.
    // The KV cache types alone have defaulted to f16 in every build.
    for (seen, column) in [
        (threads_seen, "n_threads"),
        (seen_column(columns, Column::NBatch), "n_batch"),
        (seen_column(columns, Column::NUbatch), "n_ubatch"),
        (seen_column(columns, Column::Ngl), "n_gpu_layers"),
        (seen_column(columns, Column::Fa), "flash_attn"),
        (seen_column(columns, Column::Mmap), "use_mmap"),
    ] {
        if !seen {
            r.unknown = r.unknown.with(column);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_come_with_or_without_outer_pipes_and_quotes() {
        assert_eq!(cells("| a | b |"), ["a", "b"]);
        assert_eq!(cells("a | b"), ["a", "b"]);
        assert_eq!(cells("> | a | b |"), ["a", "b"]);
        assert!(cells("no table here").is_empty());
    }

    #[test]
    fn tests_in_every_spelling() {
        assert_eq!(test_of("pp512"), Some((512, 0, 0)));
        assert_eq!(test_of("pp 512"), Some((512, 0, 0)));
        assert_eq!(test_of("tg 128"), Some((0, 128, 0)));
        assert_eq!(test_of("pp512+tg128"), Some((512, 128, 0)));
        assert_eq!(test_of("pp512 @ d4096"), Some((512, 0, 4096)));
        assert_eq!(test_of("tg128@d4096"), Some((0, 128, 4096)));
        assert_eq!(test_of("pp"), None);
        assert_eq!(test_of("xx512"), None);
    }

    #[test]
    fn build_lines_with_what_forks_append() {
        assert_eq!(
            build_line("build: 233d773d0 (6413)"),
            Some(("233d773d0".into(), 6413))
        );
        assert_eq!(
            build_line("build: 45cac7ca7 (8833), GGML_SYCL_F16=ON"),
            Some(("45cac7ca7".into(), 8833))
        );
        assert_eq!(build_line("build: unknown"), None);
    }

    #[test]
    fn dev_none_ran_on_no_gpu() {
        let paste = "\
  Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes
| model | size | params | backend | ngl | dev | test | t/s |
| --- | --: | --: | --- | --: | --- | --: | --: |
| llama 8B Q4_0 | 4.33 GiB | 8.03 B | CUDA | 99 | none | tg128 | 10.00 ± 0.10 |
| llama 8B Q4_0 | 4.33 GiB | 8.03 B | CUDA | 99 | CUDA0 | tg128 | 150.00 ± 0.10 |
";
        let r = parse_markdown(paste).unwrap();
        assert_eq!(r[0].gpu_info, "");
        assert_eq!(r[1].gpu_info, "NVIDIA GeForce RTX 4090");
    }

    #[test]
    fn offload_columns_are_kept_and_make_their_own_series() {
        // llama-bench prints a column only where a setting is off its default: `sm`, `ts`,
        // `ot` (its own headers for split_mode, tensor_split, tensor_buft_overrides).
        let paste = "\
| model | size | params | backend | ngl | sm | ts | ot | test | t/s |
| --- | --: | --: | --- | --: | --- | --- | --- | --: | --: |
| llama 8B Q4_0 | 4.33 GiB | 8.03 B | CUDA | 99 | row | 3.00/1.00 | blk\\.[0-3]\\..*=CPU | tg128 | 10.00 ± 0.10 |
| llama 8B Q4_0 | 4.33 GiB | 8.03 B | CUDA | 99 | layer | 0.00 | none | tg128 | 12.00 ± 0.10 |
";
        let r = parse_markdown(paste).unwrap();
        let o = r[0].offload().unwrap();
        assert_eq!(o.split_mode, crate::SplitMode::Row);
        assert_eq!(o.tensor_split.to_string(), "3.00/1.00");
        assert_eq!(o.overrides.as_str(), r"blk\.[0-3]\..*=CPU");
        assert!(r[1].offload().unwrap().is_default());
        let settings = |i: usize| crate::EngineSettings::from(r[i].cell_result(i).unwrap().params);
        assert_ne!(settings(0), settings(1));
        assert_eq!(settings(1).tensor_buft_overrides, None);
    }

    #[test]
    fn sizes_params_and_rates() {
        assert_eq!(size_bytes("3.56 GiB"), Some(3_822_520_893));
        assert_eq!(size_bytes("36.04 MiB"), Some(37_790_679));
        assert_eq!(size_bytes("3.56"), None);
        assert_eq!(param_count("6.74 B"), Some(6_740_000_000));
        assert_eq!(param_count("57.94 M"), Some(57_940_000));
        assert_eq!(rate_of("570.11 ± 449.96"), Some((570.11, 449.96)));
        assert_eq!(rate_of("570.11 +- 449.96"), Some((570.11, 449.96)));
        assert_eq!(rate_of("570.11"), None);
    }

    #[test]
    fn device_lines_of_each_backend() {
        let mut c = Context::default();
        for l in [
            "  Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes",
            "  Device 1: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes",
            "ggml_vulkan: 0 = AMD Radeon RX 7900 XTX (RADV NAVI31) (radv) | uma: 0 | fp16: 1",
        ] {
            c.read(l);
        }
        assert_eq!(
            c.devices,
            [
                (0, "NVIDIA GeForce RTX 4090".to_string()),
                (1, "NVIDIA GeForce RTX 4090".to_string())
            ]
        );
        let mut v = Context::default();
        v.read("ggml_vulkan: 0 = AMD Radeon RX 7900 XTX (RADV NAVI31) (radv) | uma: 0 | fp16: 1");
        assert_eq!(v.devices, [(0, "AMD Radeon RX 7900 XTX".to_string())]);
        let mut m = Context::default();
        m.read("ggml_metal_init: GPU name:   Apple M2 Ultra");
        assert_eq!(m.metal_chip.as_deref(), Some("Apple M2 Ultra"));
        let mut m = Context::default();
        m.read("ggml_metal_device_init: GPU name: MTL0 (Apple M3 Max)");
        assert_eq!(m.metal_chip.as_deref(), Some("Apple M3 Max"));
    }
}
