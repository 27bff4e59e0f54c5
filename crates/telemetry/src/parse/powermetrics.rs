//! `powermetrics --format plist` on macOS: one XML property list per sample, each followed
//! by a NUL byte. This module owns splitting that stream and reading the power, energy and
//! GPU residency figures out of each document; running `powermetrics` is the sampler's job.
//!
//! Units are the tool's own: power in mW, energy in mJ over the sample's `elapsed_ns`. A key
//! that a macOS version or a sampler set does not print stays `None`, never 0.

use std::time::SystemTime;

use plist::{Dictionary, Value};

/// The largest stream [`parse_stream`] accepts, in bytes.
pub const MAX_STREAM_BYTES: usize = 64 << 20;
/// The largest single document [`parse_sample`] accepts, in bytes. A sample with the
/// `tasks` sampler on a busy machine is a few hundred KiB.
pub const MAX_DOCUMENT_BYTES: usize = 16 << 20;
/// The most documents [`parse_stream`] reads from one stream.
pub const MAX_DOCUMENTS: usize = 100_000;

/// What went wrong reading powermetrics output.
#[derive(Debug, thiserror::Error)]
pub enum PowermetricsError {
    /// The input is over [`MAX_STREAM_BYTES`] or [`MAX_DOCUMENT_BYTES`].
    #[error("input is {len} bytes, over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    /// The input holds more than [`MAX_DOCUMENTS`] documents.
    #[error("input holds more than {limit} plist documents")]
    TooManyDocuments { limit: usize },
    /// Nothing but whitespace and NUL separators.
    #[error("no plist document in the input")]
    Empty,
    /// A document does not start like XML.
    #[error("document {index} at byte {offset} is not a plist: it starts with {start:?}")]
    NotPlist {
        index: usize,
        offset: usize,
        start: String,
    },
    /// A complete document (it has its `</plist>`) that the XML reader rejects.
    #[error("document {index} at byte {offset} is not a valid XML plist")]
    Xml {
        index: usize,
        offset: usize,
        #[source]
        source: plist::Error,
    },
    /// A document that is cut off before its end, other than the last one of a stream.
    #[error("document {index} at byte {offset} ends before its </plist>")]
    Incomplete { index: usize, offset: usize },
    /// The top-level value is not a dictionary.
    #[error("document {index}: the top-level value is not a dictionary")]
    NotDictionary { index: usize },
    /// A known key holds a value of another type.
    #[error("document {index}: `{key}` is not {expected}")]
    WrongType {
        index: usize,
        /// The key's path, e.g. `processor.cpu_power`.
        key: String,
        expected: &'static str,
    },
}

/// One powermetrics sample.
#[derive(Debug, Clone, PartialEq)]
pub struct PowermetricsSample {
    /// Length of the interval the figures cover.
    pub elapsed_ns: Option<u64>,
    /// Wall-clock end of the interval, to the second (`timestamp`).
    pub timestamp: Option<SystemTime>,
    /// `hw_model`, e.g. `Mac16,8`.
    pub hw_model: Option<String>,
    /// `kern_osversion`, the macOS build, e.g. `24F74`.
    pub os_build: Option<String>,
    /// The `processor` dictionary (the `cpu_power` sampler); `None` when it is absent.
    pub processor: Option<ProcessorPower>,
    /// The `gpu` dictionary (the `gpu_power` sampler); `None` when it is absent.
    pub gpu: Option<GpuResidency>,
}

/// Package power and energy from the `processor` dictionary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessorPower {
    pub cpu_power_mw: Option<f64>,
    pub gpu_power_mw: Option<f64>,
    pub ane_power_mw: Option<f64>,
    /// CPU + GPU + ANE as powermetrics sums it.
    pub combined_power_mw: Option<f64>,
    pub cpu_energy_mj: Option<f64>,
    pub gpu_energy_mj: Option<f64>,
    pub ane_energy_mj: Option<f64>,
}

/// GPU residency from the `gpu` dictionary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuResidency {
    /// Average active frequency. The key is `freq_hz` but the value is in MHz (the same
    /// numbers as the `dvfm_states` frequencies, which are MHz).
    pub freq_mhz: Option<f64>,
    /// Share of the interval the GPU was idle, 0..=1.
    pub idle_ratio: Option<f64>,
    /// GPU energy over the interval as the `gpu_power` sampler counts it. It can differ
    /// from [`ProcessorPower::gpu_energy_mj`] in the same document.
    pub energy_mj: Option<f64>,
}

impl GpuResidency {
    /// The share of the interval the GPU was active (`1 - idle_ratio`), what the text
    /// output calls "GPU HW active residency".
    pub fn active_ratio(&self) -> Option<f64> {
        self.idle_ratio.map(|idle| 1.0 - idle)
    }
}

/// A stream read as far as it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct PowermetricsStream {
    /// Every complete document, in order.
    pub samples: Vec<PowermetricsSample>,
    /// The last document, when it was cut off before its `</plist>`.
    pub truncated: Option<Truncation>,
}

/// A last document that ends before its `</plist>` (powermetrics killed mid-write, or a
/// read that has not seen the rest yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Position of the document among the stream's documents, from 0.
    pub index: usize,
    /// Byte offset of its first byte in the stream.
    pub offset: usize,
    /// How many bytes of it the stream holds.
    pub len: usize,
}

/// Splits the first NUL-terminated document off `buf`: the document's bytes and how many
/// bytes of `buf` it used, separator included. `None` while no NUL has arrived, so a
/// reader of the live pipe can wait for more.
pub fn next_document(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.iter().position(|&b| b == 0)?;
    Some((&buf[..end], end + 1))
}

/// Reads a whole stream: documents separated by NUL bytes, the last one with or without
/// its separator. A last document cut off before `</plist>` is reported in
/// [`PowermetricsStream::truncated`] rather than failing the stream; any other bad
/// document is an error.
pub fn parse_stream(bytes: &[u8]) -> Result<PowermetricsStream, PowermetricsError> {
    if bytes.len() > MAX_STREAM_BYTES {
        return Err(PowermetricsError::TooLarge {
            len: bytes.len(),
            limit: MAX_STREAM_BYTES,
        });
    }
    let mut chunks = split_chunks(bytes)
        .filter(|(_, chunk)| !chunk.is_empty())
        .enumerate()
        .peekable();
    let mut samples = Vec::new();
    let mut truncated = None;
    while let Some((index, (offset, chunk))) = chunks.next() {
        if index == MAX_DOCUMENTS {
            return Err(PowermetricsError::TooManyDocuments {
                limit: MAX_DOCUMENTS,
            });
        }
        let is_last = chunks.peek().is_none();
        match parse_document(chunk, index, offset) {
            Ok(sample) => samples.push(sample),
            Err(PowermetricsError::Incomplete { .. }) if is_last => {
                truncated = Some(Truncation {
                    index,
                    offset,
                    len: chunk.len(),
                });
            }
            Err(err) => return Err(err),
        }
    }
    if samples.is_empty() && truncated.is_none() {
        return Err(PowermetricsError::Empty);
    }
    Ok(PowermetricsStream { samples, truncated })
}

/// Reads one document (a trailing NUL and surrounding whitespace are allowed).
pub fn parse_sample(doc: &[u8]) -> Result<PowermetricsSample, PowermetricsError> {
    let doc = doc.strip_suffix(&[0]).unwrap_or(doc);
    let (offset, trimmed) = trim_ascii(doc, 0);
    if trimmed.is_empty() {
        return Err(PowermetricsError::Empty);
    }
    parse_document(trimmed, 0, offset)
}

/// The NUL-separated pieces of `bytes`, each trimmed, with the offset of its first byte.
fn split_chunks(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    bytes.split(|&b| b == 0).map(move |piece| {
        let here = start;
        start += piece.len() + 1;
        trim_ascii(piece, here)
    })
}

fn trim_ascii(bytes: &[u8], offset: usize) -> (usize, &[u8]) {
    let lead = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let rest = &bytes[lead..];
    let tail = rest
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    (offset + lead, &rest[..rest.len() - tail])
}

fn parse_document(
    chunk: &[u8],
    index: usize,
    offset: usize,
) -> Result<PowermetricsSample, PowermetricsError> {
    if chunk.len() > MAX_DOCUMENT_BYTES {
        return Err(PowermetricsError::TooLarge {
            len: chunk.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    if b"<?xml".starts_with(chunk) || b"<plist".starts_with(chunk) {
        // Cut off inside the very first tag.
        return Err(PowermetricsError::Incomplete { index, offset });
    }
    if !(chunk.starts_with(b"<?xml") || chunk.starts_with(b"<plist")) {
        let start = String::from_utf8_lossy(&chunk[..chunk.len().min(24)]).into_owned();
        return Err(PowermetricsError::NotPlist {
            index,
            offset,
            start,
        });
    }
    if !chunk.ends_with(b"</plist>") {
        return Err(PowermetricsError::Incomplete { index, offset });
    }
    let value = Value::from_reader_xml(chunk).map_err(|source| PowermetricsError::Xml {
        index,
        offset,
        source,
    })?;
    let Some(top) = value.as_dictionary() else {
        return Err(PowermetricsError::NotDictionary { index });
    };
    read_sample(top, index)
}

fn read_sample(top: &Dictionary, index: usize) -> Result<PowermetricsSample, PowermetricsError> {
    let fields = Fields {
        dict: top,
        index,
        section: "",
    };
    let processor = fields
        .dict("processor")?
        .map(|dict| {
            let fields = Fields {
                dict,
                index,
                section: "processor.",
            };
            Ok::<_, PowermetricsError>(ProcessorPower {
                cpu_power_mw: fields.number("cpu_power")?,
                gpu_power_mw: fields.number("gpu_power")?,
                ane_power_mw: fields.number("ane_power")?,
                combined_power_mw: fields.number("combined_power")?,
                cpu_energy_mj: fields.number("cpu_energy")?,
                gpu_energy_mj: fields.number("gpu_energy")?,
                ane_energy_mj: fields.number("ane_energy")?,
            })
        })
        .transpose()?;
    let gpu = fields
        .dict("gpu")?
        .map(|dict| {
            let fields = Fields {
                dict,
                index,
                section: "gpu.",
            };
            Ok::<_, PowermetricsError>(GpuResidency {
                freq_mhz: fields.number("freq_hz")?,
                idle_ratio: fields.number("idle_ratio")?,
                energy_mj: fields.number("gpu_energy")?,
            })
        })
        .transpose()?;
    Ok(PowermetricsSample {
        elapsed_ns: fields.unsigned("elapsed_ns")?,
        timestamp: fields.date("timestamp")?,
        hw_model: fields.string("hw_model")?,
        os_build: fields.string("kern_osversion")?,
        processor,
        gpu,
    })
}

/// Typed reads of one dictionary: absent is `None`, a wrong type is an error.
struct Fields<'a> {
    dict: &'a Dictionary,
    index: usize,
    /// Path of `dict` inside the document, with a trailing dot, for error messages.
    section: &'static str,
}

impl<'a> Fields<'a> {
    fn wrong(&self, key: &'static str, expected: &'static str) -> PowermetricsError {
        PowermetricsError::WrongType {
            index: self.index,
            key: format!("{}{key}", self.section),
            expected,
        }
    }

    fn number(&self, key: &'static str) -> Result<Option<f64>, PowermetricsError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Real(x)) => Ok(Some(*x)),
            Some(Value::Integer(i)) => match (i.as_signed(), i.as_unsigned()) {
                (Some(s), _) => Ok(Some(s as f64)),
                (None, Some(u)) => Ok(Some(u as f64)),
                (None, None) => Err(self.wrong(key, "a number")),
            },
            Some(_) => Err(self.wrong(key, "a number")),
        }
    }

    fn unsigned(&self, key: &'static str) -> Result<Option<u64>, PowermetricsError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_unsigned_integer()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
        }
    }

    fn string(&self, key: &'static str) -> Result<Option<String>, PowermetricsError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_string()
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| self.wrong(key, "a string")),
        }
    }

    fn date(&self, key: &'static str) -> Result<Option<SystemTime>, PowermetricsError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_date()
                .map(|d| Some(SystemTime::from(d)))
                .ok_or_else(|| self.wrong(key, "a date")),
        }
    }

    fn dict(&self, key: &'static str) -> Result<Option<&'a Dictionary>, PowermetricsError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_dictionary()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a dictionary")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_document_waits_for_the_separator() {
        assert_eq!(next_document(b"<plist>"), None);
        assert_eq!(next_document(b"<a/>\0<b"), Some((&b"<a/>"[..], 5)));
    }

    #[test]
    fn split_chunks_reports_offsets_past_whitespace() {
        let chunks: Vec<_> = split_chunks(b" a \0\nbc\0").collect();
        assert_eq!(chunks, vec![(1, &b"a"[..]), (5, &b"bc"[..]), (8, &b""[..])]);
    }
}
