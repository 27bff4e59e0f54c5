//! The hardware catalog: what each hardware target is on paper (memory, bandwidth, TDP,
//! MSRP), every figure with its source. The TOML a user writes (`Raw*`, unknown keys
//! rejected) becomes a validated [`Catalog`]; every error names the file, the line and the
//! key. This module owns lookups too: by name or alias ([`Catalog::find`]), from a device
//! name a driver reports ([`Catalog::match_device`]), and multi-device configurations such
//! as `2× GeForce RTX 5090` ([`Catalog::resolve`]).
//!
//! A figure nobody has a source for is absent (`None`), never 0 and never a guess: the
//! reports print "—" and the database stores NULL.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Bytes in a GiB: catalog memory is written in binary units (a "24 GB" card has 24 GiB).
const GIB: f64 = (1u64 << 30) as f64;
/// Bytes/s in a GB/s: bandwidth is written in decimal units, as vendors state it.
const GB: f64 = 1e9;

/// A catalog file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{at}: {message}", at = .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct CatalogError {
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    pub message: String,
}

/// A hardware name or configuration that the catalog cannot resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no hardware named")]
    Empty,
    #[error("unknown hardware `{name}`{}", close_hint(.close))]
    Unknown {
        name: String,
        /// Catalog names that look like what was asked for, closest first.
        close: Vec<String>,
    },
    #[error("`{spec}`: the device count must be a whole number of at least 1 (e.g. `2x NAME`)")]
    BadCount { spec: String },
}

fn close_hint(close: &[String]) -> String {
    if close.is_empty() {
        " (nothing in the catalog is close)".into()
    } else {
        format!("; close matches: {}", close.join(", "))
    }
}

/// What kind of memory system a part has, which decides how its memory is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardwareKind {
    /// A GPU or accelerator with its own memory (GeForce, Radeon, A100, MI300X …).
    DiscreteGpu,
    /// CPU and GPU sharing one memory (Apple silicon, GB10, Strix Halo).
    Unified,
    /// A CPU with system memory.
    Cpu,
}

impl HardwareKind {
    pub const ALL: [HardwareKind; 3] = [Self::DiscreteGpu, Self::Unified, Self::Cpu];

    /// The name as written in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiscreteGpu => "discrete_gpu",
            Self::Unified => "unified",
            Self::Cpu => "cpu",
        }
    }
}

impl fmt::Display for HardwareKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a power figure (`tdp_w`) measures, which decides what tok/s per 100 W compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerBasis {
    /// The card's board power (TBP/TGP/TDP): the default for a discrete GPU.
    Board,
    /// The whole system's published maximum (Apple's "maximum continuous power"): the
    /// default for unified memory.
    System,
    /// The processor package's configurable TDP (an APU, a SoC, a CPU): the default for a CPU.
    Package,
}

impl PowerBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Board => "board",
            Self::System => "system",
            Self::Package => "package",
        }
    }

    /// The basis a power figure has unless the entry says otherwise.
    pub fn default_for(kind: HardwareKind) -> PowerBasis {
        match kind {
            HardwareKind::DiscreteGpu => Self::Board,
            HardwareKind::Unified => Self::System,
            HardwareKind::Cpu => Self::Package,
        }
    }
}

impl std::str::FromStr for PowerBasis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Board, Self::System, Self::Package]
            .into_iter()
            .find(|b| b.as_str() == s.trim())
            .ok_or_else(|| format!("`{s}` is not a power basis (board, system or package)"))
    }
}

/// `kind == "discrete_gpu"`: compares with the name as written in the catalog.
impl PartialEq<str> for HardwareKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for HardwareKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A kind that is not one of [`HardwareKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind `{0}` (known: discrete_gpu, unified, cpu)")]
pub struct UnknownKind(pub String);

impl FromStr for HardwareKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// The catalog file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    #[serde(default)]
    pub hardware: Vec<Spanned<RawHardware>>,
}

/// One `[[hardware]]` as written: memory in GiB, bandwidth in decimal GB/s.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHardware {
    pub name: Spanned<String>,
    pub vendor: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(default)]
    pub aliases: Vec<Spanned<String>>,
    pub memory_gib: Option<Spanned<f64>>,
    pub memory_type: Option<Spanned<String>>,
    pub bandwidth_gbps: Option<Spanned<f64>>,
    pub tdp_w: Option<Spanned<f64>>,
    /// What `tdp_w` measures: `board`, `system` or `package` (default by `kind`).
    pub power_basis: Option<Spanned<String>>,
    pub msrp_usd: Option<Spanned<f64>>,
    pub msrp_date: Option<Spanned<String>>,
    pub notes: Option<String>,
    #[serde(default)]
    pub sources: RawSources,
}

/// `[hardware.sources]`: one source (text and/or URL) per figure given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSources {
    pub memory: Option<Spanned<String>>,
    pub bandwidth: Option<Spanned<String>>,
    pub tdp: Option<Spanned<String>>,
    pub msrp: Option<Spanned<String>>,
}

/// Where each figure of a [`Hardware`] comes from; `Some` exactly when the figure is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sources {
    /// For `memory_bytes` and `memory_type`.
    pub memory: Option<String>,
    pub bandwidth: Option<String>,
    pub tdp: Option<String>,
    /// For `msrp_usd` and `msrp_date`.
    pub msrp: Option<String>,
}

/// One validated catalog entry: a single device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hardware {
    pub name: String,
    pub vendor: String,
    pub kind: HardwareKind,
    /// Device names as drivers report them, for [`Catalog::match_device`].
    pub aliases: Vec<String>,
    /// DRAM capacity (for "up to N" unified parts, the largest configuration).
    pub memory_bytes: Option<u64>,
    pub memory_type: Option<String>,
    /// Peak DRAM bandwidth of one device.
    pub bandwidth_bytes_per_s: Option<f64>,
    /// Board/module power as the vendor states it (TBP/TGP for GeForce/Radeon), or a
    /// system's or package's: see `power_basis`.
    pub tdp_w: Option<f64>,
    /// What `tdp_w` measures; `Some` exactly when it is given.
    pub power_basis: Option<PowerBasis>,
    /// Launch price in US dollars.
    pub msrp_usd: Option<f64>,
    /// Launch date of that price: `YYYY-MM` or `YYYY-MM-DD`.
    pub msrp_date: Option<String>,
    pub sources: Sources,
    pub notes: Option<String>,
    /// The catalog file that defines the entry.
    #[serde(skip)]
    pub file: PathBuf,
    /// 1-based line of the entry in `file`.
    #[serde(skip)]
    pub line: usize,
}

impl Hardware {
    /// Memory in GiB, as the catalog writes it.
    pub fn memory_gib(&self) -> Option<f64> {
        self.memory_bytes.map(|b| b as f64 / GIB)
    }

    /// Bandwidth in decimal GB/s, as the catalog writes it.
    pub fn bandwidth_gbps(&self) -> Option<f64> {
        self.bandwidth_bytes_per_s.map(|b| b / GB)
    }

    /// `file:line` where the entry is defined.
    pub fn defined_at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// A number of identical devices used together, e.g. `2× GeForce RTX 5090`: memory, TDP
/// and price add up; bandwidth stays per device (tensor or pipeline parallelism does not
/// make one device's memory faster, and how much of the sum a model can use depends on the
/// split).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HardwareConfig {
    pub hardware: Hardware,
    pub count: u32,
    /// `GeForce RTX 5090`, or `2× GeForce RTX 5090` for more than one.
    pub display_name: String,
    /// Total over all devices.
    pub memory_bytes: Option<u64>,
    /// One device's bandwidth; not summed.
    pub bandwidth_bytes_per_s_per_device: Option<f64>,
    /// Total over all devices.
    pub tdp_w: Option<f64>,
    /// Total over all devices.
    pub msrp_usd: Option<f64>,
}

impl HardwareConfig {
    /// `count` devices of `hardware`; `None` if the count is 0 or the total memory does
    /// not fit in a `u64`.
    pub fn new(hardware: Hardware, count: u32) -> Option<HardwareConfig> {
        if count == 0 {
            return None;
        }
        let memory_bytes = match hardware.memory_bytes {
            Some(m) => Some(m.checked_mul(u64::from(count))?),
            None => None,
        };
        let n = f64::from(count);
        let display_name = if count == 1 {
            hardware.name.clone()
        } else {
            format!("{count}× {}", hardware.name)
        };
        Some(HardwareConfig {
            count,
            display_name,
            memory_bytes,
            bandwidth_bytes_per_s_per_device: hardware.bandwidth_bytes_per_s,
            tdp_w: hardware.tdp_w.map(|w| w * n),
            msrp_usd: hardware.msrp_usd.map(|p| p * n),
            hardware,
        })
    }
}

/// The validated catalog: entries in file order, names and aliases unique.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Catalog {
    pub entries: Vec<Hardware>,
}

impl Catalog {
    /// Parses and validates catalog text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &Path) -> Result<Catalog, CatalogError> {
        let ctx = Ctx { text, file };
        let raw: RawCatalog = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| ctx.line_of(&s));
            ctx.err_at(line, e.message().trim_end().to_string())
        })?;
        let mut catalog = Catalog::default();
        for h in raw.hardware {
            let hw = ctx.hardware(h)?;
            catalog.add(hw)?;
        }
        Ok(catalog)
    }

    /// Adds the entries of `other` (another file) after this catalog's. A name or alias
    /// that is already taken is an error naming both places.
    pub fn merge(mut self, other: Catalog) -> Result<Catalog, CatalogError> {
        for hw in other.entries {
            self.add(hw)?;
        }
        Ok(self)
    }

    fn add(&mut self, hw: Hardware) -> Result<(), CatalogError> {
        let mut taken: HashMap<String, &Hardware> = HashMap::new();
        for e in &self.entries {
            for n in e.names() {
                taken.insert(key(n), e);
            }
        }
        for n in hw.names() {
            if let Some(prev) = taken.get(&key(n)) {
                let what = if n == hw.name { "name" } else { "alias" };
                return Err(CatalogError {
                    file: hw.file.clone(),
                    line: Some(hw.line),
                    message: format!(
                        "hardware `{}`: {what} `{n}` is already used by `{}` at {} (names and aliases must be unique, ignoring case)",
                        hw.name,
                        prev.name,
                        prev.defined_at()
                    ),
                });
            }
        }
        self.entries.push(hw);
        Ok(())
    }

    /// The entry whose name or alias is `name`, ignoring case, spacing and a leading
    /// "NVIDIA "/"AMD ".
    pub fn find(&self, name: &str) -> Option<&Hardware> {
        let k = key(name);
        if k.is_empty() {
            return None;
        }
        self.entries.iter().find(|e| e.names().any(|n| key(n) == k))
    }

    /// The entry for a device name as a driver or the OS reports it (`NVIDIA GeForce RTX
    /// 4090`, `Apple M4 Max`, `NVIDIA H200 (driver 550.54)`): the longest name or alias
    /// found whole in it, ignoring case and spacing. Whole means it is not followed by
    /// more of a model name: `NVIDIA H200 NVL` and `NVIDIA GeForce RTX 3090 Ti` match
    /// nothing rather than a different part's figures.
    pub fn match_device(&self, detected: &str) -> Option<&Hardware> {
        let d = key(detected);
        let mut best: Option<(usize, &Hardware)> = None;
        for e in &self.entries {
            for n in e.names() {
                let k = key(n);
                if !k.is_empty()
                    && contains_whole(&d, &k)
                    && best.is_none_or(|(len, _)| k.len() > len)
                {
                    best = Some((k.len(), e));
                }
            }
        }
        best.map(|(_, e)| e)
    }

    /// A configuration from `NAME`, `2x NAME`, `2× NAME` or `2 x NAME`.
    pub fn resolve(&self, spec: &str) -> Result<HardwareConfig, ResolveError> {
        let (count, name) = split_count(spec)?;
        if name.is_empty() {
            return Err(ResolveError::Empty);
        }
        let hw = self.find(name).ok_or_else(|| ResolveError::Unknown {
            name: name.to_string(),
            close: self.close_matches(name),
        })?;
        HardwareConfig::new(hw.clone(), count).ok_or_else(|| ResolveError::BadCount {
            spec: spec.trim().to_string(),
        })
    }

    /// Up to five entry names that look like `name`, closest first.
    pub fn close_matches(&self, name: &str) -> Vec<String> {
        let q = key(name);
        let q_numbers: Vec<&str> = q
            .split(' ')
            .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
            .collect();
        let mut scored: Vec<(usize, &str)> = self
            .entries
            .iter()
            .filter_map(|e| {
                let score = e
                    .names()
                    .map(|n| {
                        let k = key(n);
                        if !q.is_empty() && (k.contains(&q) || q.contains(&k)) {
                            return 0;
                        }
                        let d = levenshtein(&q, &k);
                        let shares_number = k.split(' ').any(|t| q_numbers.contains(&t));
                        if d <= (q.chars().count() / 3).max(2) {
                            d
                        } else if shares_number {
                            // A model number in common (`4090`) is a good hint even when
                            // the rest is written differently.
                            d.min(1000) + 1000
                        } else {
                            usize::MAX
                        }
                    })
                    .min()?;
                (score != usize::MAX).then_some((score, e.name.as_str()))
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(5)
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

impl Hardware {
    /// The name, then the aliases.
    fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// Lowercase, single spaces, no leading vendor prefix: the form names are compared in.
fn key(s: &str) -> String {
    let mut k = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    for prefix in ["nvidia ", "amd "] {
        if let Some(rest) = k.strip_prefix(prefix) {
            k = rest.to_string();
            break;
        }
    }
    k
}

/// Returns true if and only if `needle` occurs in `hay` as a whole: not inside a longer
/// word on its left, and not followed by more words of a name (`3090` in `3090 ti`) —
/// only by the end or by punctuation such as `(` or `,`.
fn contains_whole(hay: &str, needle: &str) -> bool {
    let joins = |c: char| c.is_alphanumeric() || matches!(c, '+' | '-' | '_');
    hay.match_indices(needle).any(|(i, _)| {
        let left_ok = hay[..i].chars().next_back().is_none_or(|c| !joins(c));
        let right_ok = hay[i + needle.len()..]
            .trim_start()
            .chars()
            .next()
            .is_none_or(|c| !joins(c));
        left_ok && right_ok
    })
}

/// `2x NAME`, `2× NAME`, `2 x NAME`, `2*NAME` → (2, NAME); anything else → (1, spec).
fn split_count(spec: &str) -> Result<(u32, &str), ResolveError> {
    let spec = spec.trim();
    let digits_end = spec
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(spec.len());
    if digits_end == 0 {
        return Ok((1, spec));
    }
    let rest = spec[digits_end..].trim_start();
    let Some(times) = rest
        .chars()
        .next()
        .filter(|c| matches!(c, 'x' | 'X' | '×' | '*'))
    else {
        return Ok((1, spec));
    };
    let after = &rest[times.len_utf8()..];
    // `2x NAME` needs the space (`2xNAME` could be a name); `×` and `*` cannot start one.
    if matches!(times, 'x' | 'X') && !after.starts_with(char::is_whitespace) && !after.is_empty() {
        return Ok((1, spec));
    }
    let bad = || ResolveError::BadCount {
        spec: spec.to_string(),
    };
    let count: u32 = spec[..digits_end].parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(bad());
    }
    Ok((count, after.trim()))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Returns true if and only if `s` is `YYYY-MM` or `YYYY-MM-DD` with a plausible month
/// and day.
fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let num = |p: &str, len: usize, range: Range<u32>| {
        p.len() == len
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|v| range.contains(&v))
    };
    match parts.as_slice() {
        [y, m] => num(y, 4, 1900..2200) && num(m, 2, 1..13),
        [y, m, d] => num(y, 4, 1900..2200) && num(m, 2, 1..13) && num(d, 2, 1..32),
        _ => false,
    }
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Ctx<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        crate::config::line_at(self.text, span.start)
    }

    fn err_at(&self, line: Option<usize>, message: String) -> CatalogError {
        CatalogError {
            file: self.file.to_path_buf(),
            line,
            message,
        }
    }

    fn err(&self, span: &Range<usize>, message: String) -> CatalogError {
        self.err_at(Some(self.line_of(span)), message)
    }

    fn text_field(
        &self,
        entry: &str,
        key: &str,
        v: &Spanned<String>,
    ) -> Result<String, CatalogError> {
        let t = v.get_ref().trim();
        if t.is_empty() {
            return Err(self.err(&v.span(), format!("{entry}key `{key}`: empty")));
        }
        Ok(t.to_string())
    }

    /// A positive, finite figure; 0 is refused with a hint, since 0 is how "unknown"
    /// gets mistyped.
    fn figure(
        &self,
        entry: &str,
        key: &str,
        unit: &str,
        v: &Option<Spanned<f64>>,
    ) -> Result<Option<f64>, CatalogError> {
        let Some(v) = v else { return Ok(None) };
        let x = *v.get_ref();
        if x.is_finite() && x > 0.0 {
            return Ok(Some(x));
        }
        Err(self.err(
            &v.span(),
            format!(
                "{entry}key `{key}`: {x} is not a positive number of {unit}; leave `{key}` out when it is unknown (unknown is never 0)"
            ),
        ))
    }

    /// The source of a figure: required when the figure is given, refused when it is not.
    fn source(
        &self,
        entry: &str,
        figure_key: &str,
        figure_span: Option<Range<usize>>,
        source_key: &str,
        source: Option<Spanned<String>>,
    ) -> Result<Option<String>, CatalogError> {
        match (figure_span, source) {
            (None, None) => Ok(None),
            (Some(span), None) => Err(self.err(
                &span,
                format!(
                    "{entry}key `{figure_key}` has no source: add `{source_key} = \"…\"` (text or URL) under `[hardware.sources]`, or leave `{figure_key}` out"
                ),
            )),
            (None, Some(s)) => Err(self.err(
                &s.span(),
                format!(
                    "{entry}key `sources.{source_key}`: a source for `{figure_key}`, which is not given (put a caveat about a missing figure in `notes`)"
                ),
            )),
            (Some(_), Some(s)) => self
                .text_field(entry, &format!("sources.{source_key}"), &s)
                .map(Some),
        }
    }

    fn hardware(&self, h: Spanned<RawHardware>) -> Result<Hardware, CatalogError> {
        let entry_span = h.span();
        let RawHardware {
            name,
            vendor,
            kind,
            aliases,
            memory_gib,
            memory_type,
            bandwidth_gbps,
            tdp_w,
            power_basis,
            msrp_usd,
            msrp_date,
            notes,
            sources,
        } = h.into_inner();
        let RawSources {
            memory: memory_source,
            bandwidth: bandwidth_source,
            tdp: tdp_source,
            msrp: msrp_source,
        } = sources;

        let name_text = self.text_field("", "name", &name)?;
        let entry = format!("hardware `{name_text}`: ");
        let vendor = self.text_field(&entry, "vendor", &vendor)?;
        let kind_value = kind
            .get_ref()
            .parse::<HardwareKind>()
            .map_err(|e| self.err(&kind.span(), format!("{entry}key `kind`: {e}")))?;
        let aliases = aliases
            .iter()
            .map(|a| self.text_field(&entry, "aliases", a))
            .collect::<Result<Vec<_>, _>>()?;

        let memory_bytes = match self.figure(&entry, "memory_gib", "GiB", &memory_gib)? {
            None => None,
            Some(gib) => {
                let bytes = (gib * GIB).round();
                if bytes < 1.0 || bytes >= u64::MAX as f64 {
                    let span = memory_gib.as_ref().map(|m| m.span()).unwrap_or_default();
                    return Err(self.err(
                        &span,
                        format!("{entry}key `memory_gib`: {gib} GiB is not a memory size in bytes"),
                    ));
                }
                Some(bytes as u64)
            }
        };
        let memory_type_span = memory_type.as_ref().map(|t| t.span());
        let memory_type = memory_type
            .map(|t| self.text_field(&entry, "memory_type", &t))
            .transpose()?;
        let bandwidth_bytes_per_s = self
            .figure(&entry, "bandwidth_gbps", "GB/s", &bandwidth_gbps)?
            .map(|g| g * GB);
        let tdp = self.figure(&entry, "tdp_w", "watts", &tdp_w)?;
        let power_basis = match (power_basis, tdp) {
            (None, None) => None,
            (None, Some(_)) => Some(PowerBasis::default_for(kind_value)),
            (Some(b), None) => {
                return Err(self.err(
                    &b.span(),
                    format!("{entry}key `power_basis`: the basis of `tdp_w`, which is not given"),
                ))
            }
            (Some(b), Some(_)) => Some(
                b.get_ref()
                    .parse::<PowerBasis>()
                    .map_err(|e| self.err(&b.span(), format!("{entry}key `power_basis`: {e}")))?,
            ),
        };
        let msrp = self.figure(&entry, "msrp_usd", "US dollars", &msrp_usd)?;
        let msrp_date = match msrp_date {
            None => None,
            Some(d) if msrp_usd.is_none() => {
                return Err(self.err(
                    &d.span(),
                    format!("{entry}key `msrp_date`: a date for `msrp_usd`, which is not given"),
                ))
            }
            Some(d) if is_date(d.get_ref().trim()) => Some(d.get_ref().trim().to_string()),
            Some(d) => {
                return Err(self.err(
                    &d.span(),
                    format!(
                        "{entry}key `msrp_date`: `{}` is not a date as YYYY-MM or YYYY-MM-DD",
                        d.get_ref()
                    ),
                ))
            }
        };

        // A memory type is part of the memory figure and shares its source.
        let (memory_key, memory_span) = match (&memory_gib, &memory_type_span) {
            (Some(m), _) => ("memory_gib", Some(m.span())),
            (None, Some(span)) => ("memory_type", Some(span.clone())),
            (None, None) => ("memory_gib", None),
        };
        let sources = Sources {
            memory: self.source(&entry, memory_key, memory_span, "memory", memory_source)?,
            bandwidth: self.source(
                &entry,
                "bandwidth_gbps",
                bandwidth_gbps.as_ref().map(|b| b.span()),
                "bandwidth",
                bandwidth_source,
            )?,
            tdp: self.source(
                &entry,
                "tdp_w",
                tdp_w.as_ref().map(|t| t.span()),
                "tdp",
                tdp_source,
            )?,
            msrp: self.source(
                &entry,
                "msrp_usd",
                msrp_usd.as_ref().map(|m| m.span()),
                "msrp",
                msrp_source,
            )?,
        };
        Ok(Hardware {
            name: name_text,
            vendor,
            kind: kind_value,
            aliases,
            memory_bytes,
            memory_type,
            bandwidth_bytes_per_s,
            tdp_w: tdp,
            power_basis,
            msrp_usd: msrp,
            msrp_date,
            sources,
            notes: notes
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
            file: self.file.to_path_buf(),
            line: self.line_of(&entry_span),
        })
    }
}
