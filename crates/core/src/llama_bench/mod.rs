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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::bench::{
    CacheType, EngineParams, MetricSource, ParamSet, ResultStatus, TestSpec, Unset,
};
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
    /// Settings the output does not state (a Markdown table leaves out the thread count of
    /// a GPU run): their fields above hold placeholders, stored as unknown.
    #[serde(skip_serializing_if = "ParamSet::is_empty")]
    pub unknown: ParamSet,
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
    /// `-o md` (the default), as printed or pasted: see [`markdown`].
    Markdown,
}

/// Why llama-bench output could not be read. Lines and columns count from 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlamaBenchError {
    #[error("input is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("input is empty")]
    Empty,
    #[error("line {line}: not llama-bench JSON, JSONL, SQL or Markdown output{hint}")]
    UnknownFormat { line: usize, hint: &'static str },
    /// A table from another llama.cpp tool, which reads like llama-bench's but is not.
    #[error("line {line}: this is {what}")]
    LookAlike { line: usize, what: &'static str },
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
            | Self::LookAlike { line, .. }
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
    } else if s.starts_with("--") && !s.starts_with("---")
        || s.starts_with("/*")
        || first_word == "CREATE"
        || first_word == "INSERT"
    {
        Some(LlamaBenchFormat::Sql)
    } else if markdown::looks_like_markdown(s) {
        Some(LlamaBenchFormat::Markdown)
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
        Some(LlamaBenchFormat::Markdown) => parse_markdown(body),
        None => {
            let skipped = body.len() - body.trim_start().len();
            let line = LineIndex::new(body).position(skipped).0;
            Err(LlamaBenchError::UnknownFormat { line, hint: "" })
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
/// Keys are borrowed from the input unless they hold an escape: allocating each of a
/// test's ~45 keys was a fifth of parsing it.
struct JsonObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// An object key, borrowed from the input where it can be.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object holding one llama-bench test")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(64);
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    if fields.len() == MAX_FIELDS {
                        return Err(de::Error::custom(format_args!(
                            "more than {MAX_FIELDS} fields"
                        )));
                    }
                    // At most MAX_FIELDS names to look through: cheaper than a set for the
                    // few dozen a test has.
                    if fields.iter().any(|(k, _)| *k == key) {
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
    let mut fields = Fields::new(index.line(start));
    fields.slots.reserve(object.0.len());
    // JsonObject has refused duplicate names: each is new.
    for (name, raw) in object.0 {
        let line = offset_in(input, raw.get()).map_or(fields.line, |o| index.line(o));
        fields.slots.push((
            name,
            Some(Field {
                line,
                value: Value::Json(raw),
            }),
        ));
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
    /// Each field by name in the order written, `None` once taken. A list, not a map: a
    /// test's ~45 names are taken in about the order llama-bench writes them, so the search
    /// from where the last one was found mostly stops at once (a BTreeMap's inserts and
    /// removes were a quarter of parsing a test).
    slots: Vec<(Cow<'a, str>, Option<Field<'a>>)>,
    /// Where the next search starts.
    next: usize,
}

impl<'a> Fields<'a> {
    fn new(line: usize) -> Self {
        Self {
            line,
            slots: Vec::new(),
            next: 0,
        }
    }

    /// Sets `name` (a later value of the same name replaces the earlier, as SQLite's last
    /// column of a name would be read).
    fn set(&mut self, name: Cow<'a, str>, field: Field<'a>) {
        match self.slots.iter_mut().find(|(n, _)| *n == name) {
            Some((_, slot)) => *slot = Some(field),
            None => self.slots.push((name, Some(field))),
        }
    }

    /// Takes the field `name`, if there is one not taken yet.
    fn take(&mut self, name: &str) -> Option<Field<'a>> {
        let n = self.slots.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let (slot_name, slot) = &mut self.slots[i];
            if slot.is_some() && slot_name == name {
                self.next = i + 1;
                return slot.take();
            }
        }
        None
    }

    /// A field some builds do not print: absent or null is `None`.
    fn opt<T: FieldType>(&mut self, name: &'static str) -> Result<Option<T>, LlamaBenchError> {
        match self.take(name) {
            Some(field) if !field.is_null() => convert(name, &field).map(Some),
            _ => Ok(None),
        }
    }

    /// A field every build prints: absent or null is an error.
    fn req<T: FieldType>(&mut self, name: &'static str) -> Result<T, LlamaBenchError> {
        match self.take(name) {
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
            unknown: ParamSet::default(),
        };
        // The fields left, by name (the first bad one reported is the first by name).
        let mut left: Vec<(Cow<'_, str>, Field<'_>)> = std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|(name, field)| Some((name, field?)))
            .collect();
        left.sort_by(|(a, _), (b, _)| a.cmp(b));
        let extra = left
            .into_iter()
            .map(|(name, field)| {
                let value = extra_value(&name, &field)?;
                Ok((name.into_owned(), value))
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

mod convert;
mod markdown;
mod sql;

pub use convert::*;
pub use markdown::{front_matter, parse_markdown, FrontMatter};
pub use sql::parse_sql;

#[cfg(test)]
mod tests;
