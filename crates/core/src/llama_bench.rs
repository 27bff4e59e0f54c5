//! Reads what llama.cpp's `llama-bench` prints with `-o json`, `-o jsonl` and `-o sql` into
//! one type, [`LlamaBenchRecord`], so that results measured by llama-bench itself can be
//! stored and compared beside tokbench's own. Parsing only: the caller reads the file.
//!
//! The field set of llama-bench changes from one llama.cpp build to the next (`use_mmap`
//! became `load_mode`, `n_depth` and `fit_*` were added, …). Fields that some builds do not
//! print are `Option`s here; fields this module does not know are kept, unchanged, in
//! [`LlamaBenchRecord::extra`].
//!
//! The SQL output (`CREATE TABLE IF NOT EXISTS llama_bench (…); INSERT INTO llama_bench (…)
//! VALUES ('…', …);`) is tokenized and read here, never executed. llama-bench quotes every
//! value, so a number arrives as the text `'4677120000'`; the column types declared in
//! `CREATE TABLE` decide how an unknown column's text lands in `extra`, as SQLite's type
//! affinity would.
//!
//! Every error names the 1-based line, and the field where one is to blame. Malformed or
//! truncated input is an error, never a panic, and what is allocated stays proportional to
//! the input, which is capped at [`MAX_INPUT_BYTES`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::bench::{CacheType, EngineParams, MetricSource, ResultStatus, TestSpec};
use crate::record::{CellResult, Repetition};

/// Largest input accepted, in bytes (a llama-bench JSON file holds about 1.5 KiB per test).
pub const MAX_INPUT_BYTES: usize = 16 << 20;
/// Most tests accepted in one input.
pub const MAX_RECORDS: usize = 100_000;
/// Most fields accepted in one test.
pub const MAX_FIELDS: usize = 512;
/// Most entries accepted in `samples_ns` or `samples_ts` (one per repetition).
pub const MAX_SAMPLES: usize = 100_000;
/// Largest unknown field value kept in [`LlamaBenchRecord::extra`], in bytes of its text.
pub const MAX_EXTRA_VALUE_BYTES: usize = 64 << 10;

/// One llama-bench test (one line of its markdown table), with the build, hardware, model
/// and parameters it ran under and its timing. Field names and units are llama-bench's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlamaBenchRecord {
    /// Short git hash of the llama.cpp build (`unknown` when built outside a git checkout).
    pub build_commit: String,
    /// `git rev-list --count HEAD` of the build (0 when unknown).
    pub build_number: i64,
    /// CPU and accelerator device descriptions, joined with `, `.
    pub cpu_info: String,
    /// GPU device descriptions, joined with `, ` (empty when there is none).
    pub gpu_info: String,
    /// Non-CPU backends in use, e.g. `CUDA`, `Vulkan,RPC`; `CPU` when none.
    pub backends: Option<String>,
    pub model_filename: String,
    /// `llama_model_desc`, e.g. `qwen2 7B Q4_K - Medium`.
    pub model_type: String,
    /// Model weights, in bytes.
    pub model_size: u64,
    pub model_n_params: u64,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub n_threads: u32,
    /// CPU affinity mask as given, e.g. `0x0`.
    pub cpu_mask: Option<String>,
    pub cpu_strict: Option<bool>,
    /// Busy-wait polling level, 0–100.
    pub poll: Option<u32>,
    /// KV cache K type, e.g. `f16`, `q8_0`.
    pub type_k: String,
    pub type_v: String,
    /// Layers offloaded to the GPU; negative means all.
    pub n_gpu_layers: i32,
    pub n_cpu_moe: Option<u32>,
    /// `none`, `layer`, `row` or `tensor`.
    pub split_mode: String,
    pub main_gpu: i32,
    pub no_kv_offload: bool,
    pub flash_attn: Option<FlashAttn>,
    /// Device list as given, e.g. `auto`, `none`, `CUDA0/CUDA1`.
    pub devices: Option<String>,
    /// Tensor split proportions, `/`-separated, e.g. `0.00`.
    pub tensor_split: String,
    /// `-ot` overrides, e.g. `none` or `blk\.1\.=CPU`.
    pub tensor_buft_overrides: Option<String>,
    pub use_mmap: Option<bool>,
    pub use_direct_io: Option<bool>,
    /// Newer builds print `load_mode` (`mmap`, `none`, `dio`, …) instead of `use_mmap`.
    pub load_mode: Option<String>,
    pub embeddings: Option<bool>,
    pub no_op_offload: Option<bool>,
    pub no_host: Option<bool>,
    pub repack: Option<bool>,
    /// `-fitt` margin per device, in MiB (0: fitting off).
    pub fit_target: Option<u64>,
    /// `-fitc` minimum context size for fitting, in tokens.
    pub fit_min_ctx: Option<u32>,
    pub n_prompt: u32,
    pub n_gen: u32,
    /// Tokens already in the KV cache before each repetition; 0 when the build has no `-d`.
    pub n_depth: u32,
    /// When the test started, RFC 3339 UTC.
    pub test_time: String,
    /// Mean wall time of one repetition, in nanoseconds.
    pub avg_ns: u64,
    pub stddev_ns: u64,
    /// Mean over repetitions of `(n_prompt + n_gen) / time`, in tokens per second.
    pub avg_ts: f64,
    /// Sample standard deviation of the per-repetition speeds, in tokens per second.
    pub stddev_ts: f64,
    /// Per-repetition wall times, in nanoseconds (JSON and JSONL only; `None` from SQL).
    pub samples_ns: Option<Vec<u64>>,
    /// Per-repetition speeds, in tokens per second, printed with 6 significant digits
    /// (JSON and JSONL only; `None` from SQL).
    pub samples_ts: Option<Vec<f64>>,
    /// Fields this module does not know, by name, as JSON values.
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl LlamaBenchRecord {
    /// The test as tokbench describes it.
    pub fn test_spec(&self) -> TestSpec {
        TestSpec {
            n_prompt: self.n_prompt,
            n_gen: self.n_gen,
            n_depth: self.n_depth,
        }
    }

    /// The test's label, as tokbench and llama-bench print it: `pp512`, `tg128`,
    /// `pp512+tg128`, with ` @ d4096` for a depth.
    pub fn test_label(&self) -> String {
        self.test_spec().label()
    }
}

/// llama-bench's `flash_attn`: an integer (-1 auto, 0, 1) in current builds, a boolean in
/// older ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashAttn {
    Auto,
    Off,
    On,
}

/// The three machine-readable output formats of llama-bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlamaBenchFormat {
    /// `-o json`: one array of objects.
    Json,
    /// `-o jsonl`: one object per line.
    Jsonl,
    /// `-o sql`: `CREATE TABLE` and `INSERT INTO` statements.
    Sql,
}

/// Why llama-bench output could not be read. Lines and columns count from 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlamaBenchError {
    #[error("input is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("input is empty")]
    Empty,
    #[error("line {line}: not llama-bench JSON, JSONL or SQL output{hint}")]
    UnknownFormat { line: usize, hint: &'static str },
    /// Bad JSON, or JSON that is not a list of tests; `problem` is serde_json's message
    /// without its position, which would count from the start of the test, not the file.
    #[error("line {line}, column {column}: {problem}")]
    Json {
        line: usize,
        column: usize,
        problem: String,
    },
    #[error("line {line}, column {column}: {problem}")]
    Sql {
        line: usize,
        column: usize,
        problem: String,
    },
    #[error("line {line}: more than {max} tests")]
    TooManyRecords { line: usize, max: usize },
    #[error("line {line}: test has no field `{field}`")]
    MissingField { line: usize, field: &'static str },
    #[error("line {line}: field `{field}`: expected {expected}, found {found}")]
    Field {
        line: usize,
        field: String,
        expected: &'static str,
        found: String,
    },
}

impl LlamaBenchError {
    /// The line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::TooLarge { .. } | Self::Empty => None,
            Self::UnknownFormat { line, .. }
            | Self::Json { line, .. }
            | Self::Sql { line, .. }
            | Self::TooManyRecords { line, .. }
            | Self::MissingField { line, .. }
            | Self::Field { line, .. } => Some(*line),
        }
    }

    /// The field the error names, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::MissingField { field, .. } => Some(field),
            Self::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Which format `input` is in, from its first non-blank characters; `None` when it is none
/// of the three.
pub fn detect_format(input: &str) -> Option<LlamaBenchFormat> {
    let s = input.trim_start_matches('\u{feff}').trim_start();
    let first_word: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .take(6)
        .collect::<String>()
        .to_ascii_uppercase();
    if s.starts_with('[') {
        Some(LlamaBenchFormat::Json)
    } else if s.starts_with('{') {
        Some(LlamaBenchFormat::Jsonl)
    } else if s.starts_with("--")
        || s.starts_with("/*")
        || first_word == "CREATE"
        || first_word == "INSERT"
    {
        Some(LlamaBenchFormat::Sql)
    } else {
        None
    }
}

/// Reads llama-bench output in whichever of the three formats it is.
pub fn parse_any(input: &str) -> Result<Vec<LlamaBenchRecord>, LlamaBenchError> {
    check_size(input)?;
    let body = input.trim_start_matches('\u{feff}');
    if body.trim().is_empty() {
        return Err(LlamaBenchError::Empty);
    }
    match detect_format(body) {
        Some(LlamaBenchFormat::Json) => parse_json(body),
        Some(LlamaBenchFormat::Jsonl) => parse_jsonl(body),
        Some(LlamaBenchFormat::Sql) => parse_sql(body),
        None => {
            let skipped = body.len() - body.trim_start().len();
            let line = LineIndex::new(body).position(skipped).0;
            let hint = if body.trim_start().starts_with('|') {
                " (this looks like the markdown table; run llama-bench with -o json)"
            } else {
                ""
            };
            Err(LlamaBenchError::UnknownFormat { line, hint })
        }
    }
}

/// Reads `llama-bench -o json` output: one JSON array of test objects.
pub fn parse_json(input: &str) -> Result<Vec<LlamaBenchRecord>, LlamaBenchError> {
    check_size(input)?;
    let index = LineIndex::new(input);
    let Capped(objects) = serde_json::from_str::<Capped<&RawValue, MAX_RECORDS>>(input)
        .map_err(|e| json_error(&index, input, 0, e))?;
    objects
        .into_iter()
        .map(|raw| {
            let start = offset_in(input, raw.get()).unwrap_or(0);
            let object = serde_json::from_str::<JsonObject<'_>>(raw.get())
                .map_err(|e| json_error(&index, input, start, e))?;
            record_from_json(&index, input, start, object)
        })
        .collect()
}

/// Reads `llama-bench -o jsonl` output: one test object per line. Blank lines are skipped.
pub fn parse_jsonl(input: &str) -> Result<Vec<LlamaBenchRecord>, LlamaBenchError> {
    check_size(input)?;
    let index = LineIndex::new(input);
    let mut records = Vec::new();
    let mut start = 0;
    for (i, raw_line) in input.split('\n').enumerate() {
        let line_start = start;
        start += raw_line.len() + 1;
        let text = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if text.trim().is_empty() {
            continue;
        }
        if records.len() == MAX_RECORDS {
            return Err(LlamaBenchError::TooManyRecords {
                line: i + 1,
                max: MAX_RECORDS,
            });
        }
        let object = serde_json::from_str::<JsonObject<'_>>(text)
            .map_err(|e| json_error(&index, input, line_start, e))?;
        records.push(record_from_json(&index, input, line_start, object)?);
    }
    Ok(records)
}

/// Reads `llama-bench -o sql` output: an optional `CREATE TABLE`, then `INSERT INTO … VALUES
/// (…);` statements, one test per row. Runs appended to one file (several `CREATE TABLE IF
/// NOT EXISTS`) are fine. Any other statement is an error.
pub fn parse_sql(input: &str) -> Result<Vec<LlamaBenchRecord>, LlamaBenchError> {
    check_size(input)?;
    let index = LineIndex::new(input);
    let mut parser = SqlParser {
        lexer: Lexer {
            src: input,
            pos: 0,
            index: &index,
        },
        peeked: None,
        tables: BTreeMap::new(),
    };
    let mut records = Vec::new();
    while let Some(tok) = parser.next_token()? {
        match tok.kind {
            TokKind::Semi => {}
            TokKind::Word(w) if w.eq_ignore_ascii_case("CREATE") => parser.create_table()?,
            TokKind::Word(w) if w.eq_ignore_ascii_case("INSERT") => parser.insert(&mut records)?,
            _ => {
                return Err(parser.unexpected(&tok, "`CREATE TABLE` or `INSERT INTO`"));
            }
        }
    }
    Ok(records)
}

fn check_size(input: &str) -> Result<(), LlamaBenchError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(LlamaBenchError::TooLarge {
            len: input.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    Ok(())
}

/// Byte offsets of line starts, to turn an offset into a line and column.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    /// 1-based line and byte column of `offset`.
    fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.starts[line - 1] + 1)
    }

    fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }
}

/// Where `part`, a slice borrowed from `whole`, starts in it.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len()).then_some(start)
}

/// A serde_json error from parsing `input[start..]`, positioned in the whole input.
fn json_error(
    index: &LineIndex,
    input: &str,
    start: usize,
    source: serde_json::Error,
) -> LlamaBenchError {
    let (rel_line, rel_col) = (source.line(), source.column());
    let offset = if rel_line == 0 {
        start
    } else {
        let rest = &input[start..];
        let line_start = rest
            .match_indices('\n')
            .nth(rel_line.saturating_sub(2))
            .map_or(0, |(i, _)| if rel_line == 1 { 0 } else { i + 1 });
        (start + line_start + rel_col.saturating_sub(1)).min(input.len())
    };
    let (line, column) = index.position(offset);
    let message = source.to_string();
    let suffix = format!(" at line {rel_line} column {rel_col}");
    LlamaBenchError::Json {
        line,
        column,
        problem: message
            .strip_suffix(&suffix)
            .unwrap_or(&message)
            .to_string(),
    }
}

/// A JSON array of at most `N` elements.
struct Capped<T, const N: usize>(Vec<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Capped<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of at most {N} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if items.len() == N {
                        return Err(de::Error::custom(format_args!("more than {N} elements")));
                    }
                    items.push(item);
                }
                Ok(Capped(items))
            }
        }
        deserializer.deserialize_seq(V(PhantomData))
    }
}

/// One JSON object's fields in order, values left unparsed; duplicate keys are an error.
struct JsonObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object holding one llama-bench test")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::new();
                let mut seen = BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: &'de RawValue = map.next_value()?;
                    if fields.len() == MAX_FIELDS {
                        return Err(de::Error::custom(format_args!(
                            "more than {MAX_FIELDS} fields"
                        )));
                    }
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    fields.push((key, value));
                }
                Ok(JsonObject(fields))
            }
        }
        deserializer.deserialize_map(V)
    }
}

fn record_from_json(
    index: &LineIndex,
    input: &str,
    start: usize,
    object: JsonObject<'_>,
) -> Result<LlamaBenchRecord, LlamaBenchError> {
    let mut fields = Fields {
        line: index.line(start),
        map: BTreeMap::new(),
    };
    for (name, raw) in object.0 {
        let line = offset_in(input, raw.get()).map_or(fields.line, |o| index.line(o));
        fields.map.insert(
            name,
            Field {
                line,
                value: Value::Json(raw),
            },
        );
    }
    fields.into_record()
}

/// A field's value before it is given its type.
enum Value<'a> {
    Json(&'a RawValue),
    Sql(SqlValue, Affinity),
}

enum SqlValue {
    /// A quoted literal, unescaped.
    Text(String),
    /// A bare numeric literal, with its sign.
    Number(String),
    Null,
}

/// The declared type of an SQL column, as SQLite reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Affinity {
    Text,
    Numeric,
    Integer,
    Real,
    Blob,
}

impl Affinity {
    /// SQLite's rules (<https://sqlite.org/datatype3.html>, 3.1).
    fn of(declared: &str) -> Self {
        let t = declared.to_ascii_uppercase();
        if t.contains("INT") {
            Self::Integer
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            Self::Text
        } else if t.contains("BLOB") || t.is_empty() {
            Self::Blob
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            Self::Real
        } else {
            Self::Numeric
        }
    }
}

struct Field<'a> {
    line: usize,
    value: Value<'a>,
}

impl Field<'_> {
    /// The value as printed, shortened, for error messages.
    fn found(&self) -> String {
        let s = match &self.value {
            Value::Json(raw) => raw.get().to_string(),
            Value::Sql(SqlValue::Text(t), _) => format!("'{}'", t.replace('\'', "''")),
            Value::Sql(SqlValue::Number(n), _) => n.clone(),
            Value::Sql(SqlValue::Null, _) => "NULL".to_string(),
        };
        const MAX: usize = 40;
        match s.char_indices().nth(MAX) {
            Some((cut, _)) => format!("`{}…`", &s[..cut]),
            None => format!("`{s}`"),
        }
    }

    fn is_null(&self) -> bool {
        match &self.value {
            Value::Json(raw) => raw.get() == "null",
            Value::Sql(v, _) => matches!(v, SqlValue::Null),
        }
    }
}

/// A value type a llama-bench field is read as.
trait FieldType: Sized {
    const EXPECTED: &'static str;
    fn from_json(raw: &RawValue) -> Option<Self>;
    /// From SQL text or a bare numeric literal.
    fn from_sql(text: &str) -> Option<Self>;
}

macro_rules! integer_field_type {
    ($($t:ty),*) => {$(
        impl FieldType for $t {
            const EXPECTED: &'static str = concat!("an integer that fits ", stringify!($t));
            fn from_json(raw: &RawValue) -> Option<Self> {
                serde_json::from_str(raw.get()).ok()
            }
            fn from_sql(text: &str) -> Option<Self> {
                text.trim().parse().ok()
            }
        }
    )*};
}
integer_field_type!(i32, u32, i64, u64);

impl FieldType for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_json(raw: &RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }
    fn from_sql(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
}

impl FieldType for String {
    const EXPECTED: &'static str = "a string";
    fn from_json(raw: &RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }
    fn from_sql(text: &str) -> Option<Self> {
        Some(text.to_string())
    }
}

impl FieldType for bool {
    const EXPECTED: &'static str = "a boolean (true, false, 0 or 1)";
    fn from_json(raw: &RawValue) -> Option<Self> {
        match raw.get() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }
    fn from_sql(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        }
    }
}

impl FieldType for FlashAttn {
    const EXPECTED: &'static str = "-1, 0, 1, true or false";
    fn from_json(raw: &RawValue) -> Option<Self> {
        Self::from_sql(raw.get())
    }
    fn from_sql(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "-1" | "auto" => Some(Self::Auto),
            "0" | "false" | "off" => Some(Self::Off),
            "1" | "true" | "on" => Some(Self::On),
            _ => None,
        }
    }
}

impl<T: for<'de> Deserialize<'de>> FieldType for Vec<T> {
    const EXPECTED: &'static str = "an array of numbers";
    fn from_json(raw: &RawValue) -> Option<Self> {
        serde_json::from_str::<Capped<T, MAX_SAMPLES>>(raw.get())
            .ok()
            .map(|c| c.0)
    }
    fn from_sql(_: &str) -> Option<Self> {
        None
    }
}

fn convert<T: FieldType>(name: &str, field: &Field<'_>) -> Result<T, LlamaBenchError> {
    let parsed = match &field.value {
        Value::Json(raw) => T::from_json(raw),
        Value::Sql(SqlValue::Text(s) | SqlValue::Number(s), _) => T::from_sql(s),
        Value::Sql(SqlValue::Null, _) => None,
    };
    parsed.ok_or_else(|| LlamaBenchError::Field {
        line: field.line,
        field: name.to_string(),
        expected: T::EXPECTED,
        found: field.found(),
    })
}

/// The fields of one test, taken out one by one as the record is built.
struct Fields<'a> {
    /// Where the test starts.
    line: usize,
    map: BTreeMap<String, Field<'a>>,
}

impl Fields<'_> {
    /// A field some builds do not print: absent or null is `None`.
    fn opt<T: FieldType>(&mut self, name: &'static str) -> Result<Option<T>, LlamaBenchError> {
        match self.map.remove(name) {
            Some(field) if !field.is_null() => convert(name, &field).map(Some),
            _ => Ok(None),
        }
    }

    /// A field every build prints: absent or null is an error.
    fn req<T: FieldType>(&mut self, name: &'static str) -> Result<T, LlamaBenchError> {
        match self.map.remove(name) {
            Some(field) => convert(name, &field),
            None => Err(LlamaBenchError::MissingField {
                line: self.line,
                field: name,
            }),
        }
    }

    fn into_record(mut self) -> Result<LlamaBenchRecord, LlamaBenchError> {
        let f = &mut self;
        let record = LlamaBenchRecord {
            build_commit: f.req("build_commit")?,
            build_number: f.req("build_number")?,
            cpu_info: f.req("cpu_info")?,
            gpu_info: f.req("gpu_info")?,
            backends: f.opt("backends")?,
            model_filename: f.req("model_filename")?,
            model_type: f.req("model_type")?,
            model_size: f.req("model_size")?,
            model_n_params: f.req("model_n_params")?,
            n_batch: f.req("n_batch")?,
            n_ubatch: f.req("n_ubatch")?,
            n_threads: f.req("n_threads")?,
            cpu_mask: f.opt("cpu_mask")?,
            cpu_strict: f.opt("cpu_strict")?,
            poll: f.opt("poll")?,
            type_k: f.req("type_k")?,
            type_v: f.req("type_v")?,
            n_gpu_layers: f.req("n_gpu_layers")?,
            n_cpu_moe: f.opt("n_cpu_moe")?,
            split_mode: f.req("split_mode")?,
            main_gpu: f.req("main_gpu")?,
            no_kv_offload: f.req("no_kv_offload")?,
            flash_attn: f.opt("flash_attn")?,
            devices: f.opt("devices")?,
            tensor_split: f.req("tensor_split")?,
            tensor_buft_overrides: f.opt("tensor_buft_overrides")?,
            use_mmap: f.opt("use_mmap")?,
            use_direct_io: f.opt("use_direct_io")?,
            load_mode: f.opt("load_mode")?,
            embeddings: f.opt("embeddings")?,
            no_op_offload: f.opt("no_op_offload")?,
            no_host: f.opt("no_host")?,
            repack: f.opt("repack")?,
            fit_target: f.opt("fit_target")?,
            fit_min_ctx: f.opt("fit_min_ctx")?,
            n_prompt: f.req("n_prompt")?,
            n_gen: f.req("n_gen")?,
            n_depth: f.opt("n_depth")?.unwrap_or(0),
            test_time: f.req("test_time")?,
            avg_ns: f.req("avg_ns")?,
            stddev_ns: f.req("stddev_ns")?,
            avg_ts: f.req("avg_ts")?,
            stddev_ts: f.req("stddev_ts")?,
            samples_ns: f.opt("samples_ns")?,
            samples_ts: f.opt("samples_ts")?,
            extra: BTreeMap::new(),
        };
        let extra = std::mem::take(&mut self.map)
            .into_iter()
            .map(|(name, field)| {
                let value = extra_value(&name, &field)?;
                Ok((name, value))
            })
            .collect::<Result<_, LlamaBenchError>>()?;
        Ok(LlamaBenchRecord { extra, ..record })
    }
}

/// An unknown field's value as JSON: as written in JSON; from SQL, as SQLite would store it.
fn extra_value(name: &str, field: &Field<'_>) -> Result<serde_json::Value, LlamaBenchError> {
    let bad = |expected| LlamaBenchError::Field {
        line: field.line,
        field: name.to_string(),
        expected,
        found: field.found(),
    };
    match &field.value {
        Value::Json(raw) => {
            if raw.get().len() > MAX_EXTRA_VALUE_BYTES {
                return Err(bad("a value of at most 64 KiB"));
            }
            serde_json::from_str(raw.get()).map_err(|_| bad("a JSON value nested less deeply"))
        }
        Value::Sql(SqlValue::Null, _) => Ok(serde_json::Value::Null),
        Value::Sql(SqlValue::Number(n), _) => Ok(sql_number(n).unwrap_or_else(|| n.clone().into())),
        Value::Sql(SqlValue::Text(t), affinity) => Ok(match affinity {
            Affinity::Integer | Affinity::Real | Affinity::Numeric => {
                sql_number(t).unwrap_or_else(|| t.clone().into())
            }
            Affinity::Text | Affinity::Blob => t.clone().into(),
        }),
    }
}

/// `text` as a JSON number when it is an integer or a finite real, as SQLite's numeric
/// affinity would convert it.
fn sql_number(text: &str) -> Option<serde_json::Value> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(i.into());
    }
    let f = t.parse::<f64>().ok().filter(|f| f.is_finite())?;
    serde_json::Number::from_f64(f).map(serde_json::Value::Number)
}

#[derive(Debug, Clone, PartialEq)]
enum TokKind<'a> {
    /// A bare word: keyword or identifier.
    Word(&'a str),
    /// A `"quoted"`, `` `quoted` `` or `[bracketed]` identifier, unescaped.
    QuotedIdent(String),
    /// A `'string'` literal, unescaped.
    Str(String),
    Number(&'a str),
    LParen,
    RParen,
    Comma,
    Semi,
    Minus,
    Plus,
}

#[derive(Debug, Clone)]
struct Tok<'a> {
    kind: TokKind<'a>,
    offset: usize,
}

impl Tok<'_> {
    fn describe(&self) -> String {
        match &self.kind {
            TokKind::Word(w) => format!("`{}`", shorten(w)),
            TokKind::QuotedIdent(s) => format!("identifier `{}`", shorten(s)),
            TokKind::Str(s) => format!("string '{}'", shorten(s)),
            TokKind::Number(n) => format!("number {}", shorten(n)),
            TokKind::LParen => "`(`".into(),
            TokKind::RParen => "`)`".into(),
            TokKind::Comma => "`,`".into(),
            TokKind::Semi => "`;`".into(),
            TokKind::Minus => "`-`".into(),
            TokKind::Plus => "`+`".into(),
        }
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

struct Lexer<'a, 'i> {
    src: &'a str,
    pos: usize,
    index: &'i LineIndex,
}

impl<'a> Lexer<'a, '_> {
    fn error(&self, offset: usize, problem: impl Into<String>) -> LlamaBenchError {
        let (line, column) = self.index.position(offset);
        LlamaBenchError::Sql {
            line,
            column,
            problem: problem.into(),
        }
    }

    fn next_token(&mut self) -> Result<Option<Tok<'a>>, LlamaBenchError> {
        let bytes = self.src.as_bytes();
        loop {
            while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            let rest = &self.src[self.pos..];
            if rest.starts_with("--") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.pos += end + 4,
                    None => return Err(self.error(self.pos, "unterminated comment")),
                }
            } else {
                break;
            }
        }
        let start = self.pos;
        let Some(c) = self.src[start..].chars().next() else {
            return Ok(None);
        };
        let single = |kind| Some((kind, start + 1));
        let (kind, end) = match c {
            '(' => single(TokKind::LParen),
            ')' => single(TokKind::RParen),
            ',' => single(TokKind::Comma),
            ';' => single(TokKind::Semi),
            '-' => single(TokKind::Minus),
            '+' => single(TokKind::Plus),
            '\'' => self
                .quoted(start, '\'', '\'')
                .map(|(s, e)| (TokKind::Str(s), e)),
            '"' => self
                .quoted(start, '"', '"')
                .map(|(s, e)| (TokKind::QuotedIdent(s), e)),
            '`' => self
                .quoted(start, '`', '`')
                .map(|(s, e)| (TokKind::QuotedIdent(s), e)),
            '[' => self
                .quoted(start, '[', ']')
                .map(|(s, e)| (TokKind::QuotedIdent(s), e)),
            c if c.is_ascii_digit()
                || (c == '.' && rest_starts_with_digit(&self.src[start + 1..])) =>
            {
                let end = number_end(self.src, start);
                Some((TokKind::Number(&self.src[start..end]), end))
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = self.src[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                    .unwrap_or(self.src.len() - start);
                Some((TokKind::Word(&self.src[start..start + len]), start + len))
            }
            _ => None,
        }
        .ok_or_else(|| {
            if matches!(c, '\'' | '"' | '`' | '[') {
                self.error(start, "unterminated quoted literal")
            } else {
                self.error(start, format!("unexpected character {c:?}"))
            }
        })?;
        self.pos = end;
        Ok(Some(Tok {
            kind,
            offset: start,
        }))
    }

    /// The text between `open` at `start` and the matching `close`, a doubled `close`
    /// standing for one; `None` when the input ends first.
    fn quoted(&self, start: usize, open: char, close: char) -> Option<(String, usize)> {
        let mut out = String::new();
        let mut i = start + open.len_utf8();
        loop {
            let rel = self.src[i..].find(close)?;
            out.push_str(&self.src[i..i + rel]);
            i += rel + close.len_utf8();
            if close != ']' && self.src[i..].starts_with(close) {
                out.push(close);
                i += close.len_utf8();
            } else {
                return Some((out, i));
            }
        }
    }
}

fn rest_starts_with_digit(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// The end of the numeric literal starting at `start`: digits, a fraction, an exponent.
fn number_end(src: &str, start: usize) -> usize {
    let b = src.as_bytes();
    let mut i = start;
    let digits = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
    };
    digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        digits(&mut i);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = j;
            digits(&mut i);
        }
    }
    i
}

struct SqlParser<'a, 'i> {
    lexer: Lexer<'a, 'i>,
    peeked: Option<Tok<'a>>,
    /// Declared column types by table and column, from `CREATE TABLE`.
    tables: BTreeMap<String, BTreeMap<String, Affinity>>,
}

impl<'a> SqlParser<'a, '_> {
    fn next_token(&mut self) -> Result<Option<Tok<'a>>, LlamaBenchError> {
        match self.peeked.take() {
            Some(t) => Ok(Some(t)),
            None => self.lexer.next_token(),
        }
    }

    fn peek(&mut self) -> Result<Option<&Tok<'a>>, LlamaBenchError> {
        if self.peeked.is_none() {
            self.peeked = self.lexer.next_token()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn unexpected(&self, tok: &Tok<'_>, expected: &str) -> LlamaBenchError {
        self.lexer.error(
            tok.offset,
            format!("expected {expected}, found {}", tok.describe()),
        )
    }

    /// The next token, which must exist.
    fn need(&mut self, expected: &str) -> Result<Tok<'a>, LlamaBenchError> {
        match self.next_token()? {
            Some(t) => Ok(t),
            None => Err(self.lexer.error(
                self.lexer.src.len(),
                format!("expected {expected}, found the end of the input"),
            )),
        }
    }

    fn expect(&mut self, kind: TokKind<'_>, expected: &str) -> Result<Tok<'a>, LlamaBenchError> {
        let tok = self.need(expected)?;
        if tok.kind == kind {
            Ok(tok)
        } else {
            Err(self.unexpected(&tok, expected))
        }
    }

    fn keyword(&mut self, word: &str) -> Result<(), LlamaBenchError> {
        let expected = format!("`{word}`");
        let tok = self.need(&expected)?;
        match tok.kind {
            TokKind::Word(w) if w.eq_ignore_ascii_case(word) => Ok(()),
            _ => Err(self.unexpected(&tok, &expected)),
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, LlamaBenchError> {
        let tok = self.need(what)?;
        match tok.kind {
            TokKind::Word(w) => Ok(w.to_string()),
            TokKind::QuotedIdent(s) => Ok(s),
            _ => Err(self.unexpected(&tok, what)),
        }
    }

    /// `CREATE TABLE [IF NOT EXISTS] name (column type, …);`, after `CREATE`.
    fn create_table(&mut self) -> Result<(), LlamaBenchError> {
        self.keyword("TABLE")?;
        if matches!(self.peek()?, Some(Tok { kind: TokKind::Word(w), .. }) if w.eq_ignore_ascii_case("IF"))
        {
            self.next_token()?;
            self.keyword("NOT")?;
            self.keyword("EXISTS")?;
        }
        let table = self.ident("a table name")?;
        self.expect(TokKind::LParen, "`(`")?;
        let mut columns = BTreeMap::new();
        loop {
            let column = self.ident("a column name")?;
            // The declared type: the words up to the `,` or `)` that ends the column; a
            // parenthesized size like `VARCHAR(10)` is skipped.
            let mut declared = Vec::new();
            let mut depth = 0usize;
            let end = loop {
                let tok = self.need("`,` or `)`")?;
                match tok.kind {
                    TokKind::LParen => depth += 1,
                    TokKind::RParen if depth > 0 => depth -= 1,
                    TokKind::RParen | TokKind::Comma if depth == 0 => break tok.kind,
                    TokKind::Word(w) if depth == 0 => declared.push(w),
                    TokKind::Semi => return Err(self.unexpected(&tok, "`,` or `)`")),
                    _ => {}
                }
            };
            if columns.len() == MAX_FIELDS {
                return Err(self
                    .lexer
                    .error(self.lexer.pos, format!("more than {MAX_FIELDS} columns")));
            }
            columns.insert(column, Affinity::of(&declared.join(" ")));
            if end == TokKind::RParen {
                break;
            }
        }
        self.expect(TokKind::Semi, "`;`")?;
        self.tables.insert(table, columns);
        Ok(())
    }

    /// `INSERT INTO name (columns) VALUES (values), …;`, after `INSERT`.
    fn insert(&mut self, records: &mut Vec<LlamaBenchRecord>) -> Result<(), LlamaBenchError> {
        self.keyword("INTO")?;
        let table = self.ident("a table name")?;
        self.expect(TokKind::LParen, "`(`")?;
        let mut columns: Vec<(String, usize)> = Vec::new();
        loop {
            let end = self.lexer.src.len();
            let offset = self.peek()?.map_or(end, |t| t.offset);
            let column = self.ident("a column name")?;
            if columns.iter().any(|(c, _)| *c == column) {
                return Err(self
                    .lexer
                    .error(offset, format!("column `{}` named twice", shorten(&column))));
            }
            if columns.len() == MAX_FIELDS {
                return Err(self
                    .lexer
                    .error(offset, format!("more than {MAX_FIELDS} columns")));
            }
            columns.push((column, offset));
            let tok = self.need("`,` or `)`")?;
            match tok.kind {
                TokKind::Comma => {}
                TokKind::RParen => break,
                _ => return Err(self.unexpected(&tok, "`,` or `)`")),
            }
        }
        self.keyword("VALUES")?;
        let declared = self.tables.get(&table);
        let affinities: Vec<Affinity> = columns
            .iter()
            .map(|(c, _)| {
                declared
                    .and_then(|t| t.get(c))
                    .copied()
                    .unwrap_or(Affinity::Text)
            })
            .collect();
        loop {
            let open = self.expect(TokKind::LParen, "`(`")?;
            let row_line = self.lexer.index.line(open.offset);
            let mut fields = Fields {
                line: row_line,
                map: BTreeMap::new(),
            };
            let mut n = 0;
            loop {
                let (value, offset) = self.value()?;
                if let (Some((name, _)), Some(affinity)) = (columns.get(n), affinities.get(n)) {
                    let line = self.lexer.index.line(offset);
                    fields.map.insert(
                        name.clone(),
                        Field {
                            line,
                            value: Value::Sql(value, *affinity),
                        },
                    );
                }
                n += 1;
                let tok = self.need("`,` or `)`")?;
                match tok.kind {
                    TokKind::Comma => {}
                    TokKind::RParen => break,
                    _ => return Err(self.unexpected(&tok, "`,` or `)`")),
                }
            }
            if n != columns.len() {
                return Err(self.lexer.error(
                    open.offset,
                    format!("{n} values for {} columns", columns.len()),
                ));
            }
            if records.len() == MAX_RECORDS {
                return Err(LlamaBenchError::TooManyRecords {
                    line: row_line,
                    max: MAX_RECORDS,
                });
            }
            records.push(fields.into_record()?);
            let tok = self.need("`,` or `;`")?;
            match tok.kind {
                TokKind::Comma => {}
                TokKind::Semi => return Ok(()),
                _ => return Err(self.unexpected(&tok, "`,` or `;`")),
            }
        }
    }

    /// One literal in a `VALUES` list, and where it starts.
    fn value(&mut self) -> Result<(SqlValue, usize), LlamaBenchError> {
        let tok = self.need("a value")?;
        let value = match &tok.kind {
            TokKind::Str(s) => SqlValue::Text(s.clone()),
            TokKind::Number(n) => SqlValue::Number((*n).to_string()),
            TokKind::Minus | TokKind::Plus => {
                let num = self.need("a number")?;
                let TokKind::Number(n) = num.kind else {
                    return Err(self.unexpected(&num, "a number"));
                };
                let sign = if tok.kind == TokKind::Minus { "-" } else { "" };
                SqlValue::Number(format!("{sign}{n}"))
            }
            TokKind::Word(w) if w.eq_ignore_ascii_case("NULL") => SqlValue::Null,
            TokKind::Word(w) if w.eq_ignore_ascii_case("TRUE") => SqlValue::Number("1".into()),
            TokKind::Word(w) if w.eq_ignore_ascii_case("FALSE") => SqlValue::Number("0".into()),
            _ => return Err(self.unexpected(&tok, "a value (a 'string', a number or NULL)")),
        };
        Ok((value, tok.offset))
    }
}

/// `Q4_K - Medium` (llama.cpp's file-type name in `model_type`) → `Q4_K_M`.
pub fn quant_of(model_type: &str) -> String {
    // `llama 8B Q4_K - Medium`: the architecture and size come first.
    let words: Vec<&str> = model_type.split_whitespace().collect();
    let tail = words.get(2..).map(|w| w.join(" ")).unwrap_or_default();
    let (base, size) = match tail.split_once(" - ") {
        Some((b, s)) => (b.to_string(), Some(s)),
        None => (tail.clone(), None),
    };
    let suffix = match size {
        Some("Small") => "_S",
        Some("Medium") => "_M",
        Some("Large") => "_L",
        Some(other) if !other.is_empty() => return format!("{base} - {other}"),
        _ => "",
    };
    if base.is_empty() {
        model_type.to_string()
    } else {
        format!("{base}{suffix}")
    }
}

/// The accelerator llama-bench ran on: the first backend that is not the CPU.
pub fn accel_of(backends: Option<&str>) -> String {
    backends
        .unwrap_or("CPU")
        .split(',')
        .map(|b| b.trim().to_ascii_lowercase())
        .find(|b| b != "cpu" && !b.is_empty())
        .map(|b| match b.as_str() {
            "blas" => "cpu".to_string(),
            "rpc" => "rpc".to_string(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| "cpu".into())
}

/// A llama-bench record that tokbench cannot store as a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {source}")]
pub struct RecordError {
    pub field: &'static str,
    pub source: crate::bench::UnknownCacheType,
}

fn cache_type(name: &str, field: &'static str) -> Result<CacheType, RecordError> {
    name.parse().map_err(|source| RecordError { field, source })
}

impl LlamaBenchRecord {
    /// One llama-bench record as a result: its settings, and each repetition's rate as the
    /// phase it measured (a `pp` test's rate is prefill, a `tg` test's decode; a `pp+tg` test's
    /// is over both phases together and is kept in the log only).
    pub fn cell_result(&self, index: usize) -> Result<CellResult, RecordError> {
        let r = self;
        let test = r.test_spec();
        let params = EngineParams {
            n_threads: r.n_threads,
            n_batch: r.n_batch,
            n_ubatch: r.n_ubatch,
            n_gpu_layers: u32::try_from(r.n_gpu_layers).unwrap_or(0),
            flash_attn: matches!(r.flash_attn, Some(FlashAttn::On)),
            type_k: cache_type(&r.type_k, "type_k")?,
            type_v: cache_type(&r.type_v, "type_v")?,
            use_mmap: r.use_mmap.unwrap_or(true),
        };
        let samples = r.samples_ts.clone().unwrap_or_default();
        let combined = test.n_prompt > 0 && test.n_gen > 0;
        let repetitions = if combined {
            Vec::new()
        } else {
            samples
                .iter()
                .map(|&ts| Repetition {
                    prefill_tps: (test.n_gen == 0).then_some(ts),
                    decode_tps: (test.n_gen > 0).then_some(ts),
                    ..Default::default()
                })
                .collect()
        };
        Ok(CellResult {
            cell_index: index,
            test,
            params,
            status: ResultStatus::Ok,
            error: None,
            metric_source: MetricSource::Engine,
            load_ms: None,
            rss_peak_bytes: None,
            allocated: None,
            telemetry: None,
            repetitions,
            serving: None,
            backend_json: None,
            log_tail: combined.then(|| {
                format!(
                    "llama-bench {}: {:.2} ± {:.2} t/s over prompt and generation together (not split into phases)",
                    test.label(),
                    r.avg_ts,
                    r.stddev_ts
                )
            }),
            started_at: r.test_time.clone(),
            duration_ms: r.avg_ns as f64 * samples.len().max(1) as f64 / 1e6,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantization_names_follow_llama_cpp() {
        assert_eq!(quant_of("llama ?B Q8_0"), "Q8_0");
        assert_eq!(quant_of("llama 8B Q4_K - Medium"), "Q4_K_M");
        assert_eq!(quant_of("llama 70B Q3_K - Small"), "Q3_K_S");
        assert_eq!(quant_of("qwen2 7B F16"), "F16");
        assert_eq!(accel_of(Some("CUDA")), "cuda");
        assert_eq!(accel_of(Some("CPU")), "cpu");
        assert_eq!(accel_of(Some("BLAS,CPU")), "cpu");
        assert_eq!(accel_of(Some("Metal,BLAS")), "metal");
        assert_eq!(accel_of(None), "cpu");
    }

    use super::*;

    fn record(n_prompt: u32, n_gen: u32, n_depth: u32) -> String {
        format!(
            r#"{{"build_commit": "abc", "build_number": 1, "cpu_info": "cpu", "gpu_info": "",
            "model_filename": "m.gguf", "model_type": "llama 1B Q8_0", "model_size": 10,
            "model_n_params": 20, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2,
            "type_k": "f16", "type_v": "f16", "n_gpu_layers": -1, "split_mode": "layer",
            "main_gpu": 0, "no_kv_offload": false, "tensor_split": "0.00",
            "n_prompt": {n_prompt}, "n_gen": {n_gen}, "n_depth": {n_depth},
            "test_time": "2026-01-01T00:00:00Z", "avg_ns": 100, "stddev_ns": 1,
            "avg_ts": 5.5, "stddev_ts": 0.1}}"#
        )
    }

    #[test]
    fn labels_are_tokbench_labels() {
        let label =
            |p, g, d| parse_json(&format!("[{}]", record(p, g, d))).unwrap()[0].test_label();
        assert_eq!(label(512, 0, 0), "pp512");
        assert_eq!(label(0, 128, 0), "tg128");
        assert_eq!(label(512, 128, 0), "pp512+tg128");
        assert_eq!(label(512, 0, 4096), "pp512 @ d4096");
    }

    #[test]
    fn line_index_positions() {
        let idx = LineIndex::new("ab\ncd\n");
        assert_eq!(idx.position(0), (1, 1));
        assert_eq!(idx.position(1), (1, 2));
        assert_eq!(idx.position(3), (2, 1));
        assert_eq!(idx.position(6), (3, 1));
    }

    #[test]
    fn lexer_reads_escaped_strings_and_numbers() {
        let src = "'it''s' -- note\n 12.5e3 .5 \"col\"\"x\" [a b]";
        let idx = LineIndex::new(src);
        let mut lx = Lexer {
            src,
            pos: 0,
            index: &idx,
        };
        let mut kinds = Vec::new();
        while let Some(t) = lx.next_token().unwrap() {
            kinds.push(t.kind);
        }
        assert_eq!(
            kinds,
            vec![
                TokKind::Str("it's".into()),
                TokKind::Number("12.5e3"),
                TokKind::Number(".5"),
                TokKind::QuotedIdent("col\"x".into()),
                TokKind::QuotedIdent("a b".into()),
            ]
        );
    }

    #[test]
    fn affinity_follows_sqlite() {
        assert_eq!(Affinity::of("INTEGER"), Affinity::Integer);
        assert_eq!(Affinity::of("TEXT"), Affinity::Text);
        assert_eq!(Affinity::of("REAL"), Affinity::Real);
        assert_eq!(Affinity::of("VARCHAR"), Affinity::Text);
        assert_eq!(Affinity::of(""), Affinity::Blob);
        assert_eq!(Affinity::of("DECIMAL"), Affinity::Numeric);
    }
}
