//! Which results measure the same thing: [`SeriesKey`], the one definition of a series.
//!
//! Two results belong to one series when the same machine ran the same backend build
//! configuration on the same model file and quantization, with the same test and every
//! engine setting and server load the same. The machine is the host's identity (its name,
//! CPU, memory and GPUs); the hardware name a run records is a label of that machine, not
//! part of the key. The backend *version* is not part of it: it is
//! the x-axis a series is watched along (a nightly rebuild is the same series measured
//! again). `report` (its newest result per series, its pairings and plots), `check` and
//! `compare` group by this key; the store decodes it from its rows and never spells it in
//! SQL.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use serde::{Serialize, Serializer};

use crate::bench::{CacheType, MetricSource, TestSpec};
use crate::offload::{SplitMode, TensorOverrides, TensorSplit};

/// The engine settings of a result, as stored: `None` where the backend does not take the
/// setting or the source did not say (an imported row, a remote OpenAI endpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EngineSettings {
    pub n_threads: Option<u32>,
    pub n_batch: Option<u32>,
    pub n_ubatch: Option<u32>,
    /// Layers offloaded, as stored.
    pub n_gpu_layers: Option<i32>,
    /// The offload settings beyond the layer count: `None` at llama.cpp's default too, so
    /// results stored before these settings existed stay in their series.
    pub n_cpu_moe: Option<u32>,
    pub split_mode: Option<SplitMode>,
    pub main_gpu: Option<u32>,
    pub flash_attn: Option<bool>,
    pub type_k: Option<CacheType>,
    pub type_v: Option<CacheType>,
    pub tensor_split: Option<TensorSplit>,
    pub tensor_buft_overrides: Option<TensorOverrides>,
    pub use_mmap: Option<bool>,
}

/// One engine setting, the one place its names are spelled: `name`, llama-bench's word for
/// it (a table's column, `fa 1` in a label); `column`, the database's, CSV's and JSON's;
/// `short`, the prefix of the compact form in progress lines and legends (`fa1`, `ctk q8_0`);
/// `value`, the setting as plain text (booleans `1`/`0` as llama-bench prints them), `None`
/// where the backend does not take it or the source did not say.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub column: &'static str,
    pub short: &'static str,
    pub value: fn(&EngineSettings) -> Option<String>,
}

impl Setting {
    /// `fa1`, `ngl99`, `ctk q8_0`; `None` when not set.
    pub fn compact(&self, s: &EngineSettings) -> Option<String> {
        (self.value)(s).map(|v| format!("{}{v}", self.short))
    }

    /// `fa 1`, `threads 2`, or `fa default` when not set: what tells two rows apart.
    pub fn describe(&self, s: &EngineSettings) -> String {
        let v = (self.value)(s).unwrap_or_else(|| "default".into());
        format!("{} {v}", self.name)
    }
}

fn num<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

fn flag(v: Option<bool>) -> Option<String> {
    v.map(|b| u8::from(b).to_string())
}

/// Every engine setting, in llama-bench's column order; the offload settings added after
/// the others (after `mmap`) keep the earlier columns where they were.
pub const SETTINGS: [Setting; 13] = [
    Setting {
        name: "threads",
        column: "n_threads",
        short: "t",
        value: |s| num(s.n_threads),
    },
    Setting {
        name: "batch",
        column: "n_batch",
        short: "b",
        value: |s| num(s.n_batch),
    },
    Setting {
        name: "ubatch",
        column: "n_ubatch",
        short: "ub",
        value: |s| num(s.n_ubatch),
    },
    Setting {
        name: "ngl",
        column: "n_gpu_layers",
        short: "ngl",
        value: |s| num(s.n_gpu_layers),
    },
    Setting {
        name: "fa",
        column: "flash_attn",
        short: "fa",
        value: |s| flag(s.flash_attn),
    },
    Setting {
        name: "type_k",
        column: "type_k",
        short: "ctk ",
        value: |s| s.type_k.map(|t| t.name().to_string()),
    },
    Setting {
        name: "type_v",
        column: "type_v",
        short: "ctv ",
        value: |s| s.type_v.map(|t| t.name().to_string()),
    },
    Setting {
        name: "mmap",
        column: "use_mmap",
        short: "mmap",
        value: |s| flag(s.use_mmap),
    },
    Setting {
        name: "n_cpu_moe",
        column: "n_cpu_moe",
        short: "ncmoe",
        value: |s| num(s.n_cpu_moe),
    },
    Setting {
        name: "sm",
        column: "split_mode",
        short: "sm ",
        value: |s| num(s.split_mode),
    },
    Setting {
        name: "mg",
        column: "main_gpu",
        short: "mg",
        value: |s| num(s.main_gpu),
    },
    Setting {
        name: "ts",
        column: "tensor_split",
        short: "ts ",
        value: |s| num(s.tensor_split),
    },
    Setting {
        name: "ot",
        column: "tensor_buft_overrides",
        short: "ot ",
        value: |s| num(s.tensor_buft_overrides),
    },
];

impl EngineSettings {
    /// The settings whose value is not the same in all of `all` (none for fewer than two).
    pub fn varying<'a>(all: impl IntoIterator<Item = &'a EngineSettings>) -> Vec<&'static Setting> {
        let all: Vec<&EngineSettings> = all.into_iter().collect();
        SETTINGS
            .iter()
            .filter(|c| {
                all.first()
                    .is_some_and(|f| all.iter().any(|s| (c.value)(s) != (c.value)(f)))
            })
            .collect()
    }

    /// The compact form of `which` settings that are set, space separated:
    /// `b512 fa1 ctk q8_0`.
    pub fn compact(&self, which: &[&Setting]) -> String {
        which
            .iter()
            .filter_map(|c| c.compact(self))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl From<crate::EngineParams> for EngineSettings {
    fn from(p: crate::EngineParams) -> Self {
        let crate::EngineParams {
            n_threads,
            n_batch,
            n_ubatch,
            n_gpu_layers,
            flash_attn,
            type_k,
            type_v,
            use_mmap,
            offload,
            unset,
        } = p;
        // A field without a value (auto, or not stated) is not set: never its placeholder.
        let set = |column: &str| !unset.contains(column);
        EngineSettings {
            n_threads: set("n_threads").then_some(n_threads),
            n_batch: set("n_batch").then_some(n_batch),
            n_ubatch: set("n_ubatch").then_some(n_ubatch),
            n_gpu_layers: i32::try_from(n_gpu_layers)
                .ok()
                .filter(|_| set("n_gpu_layers")),
            flash_attn: set("flash_attn").then_some(flash_attn),
            type_k: set("type_k").then_some(type_k),
            type_v: set("type_v").then_some(type_v),
            use_mmap: set("use_mmap").then_some(use_mmap),
            // llama.cpp's default of each is stored as NULL (see the field's comment).
            n_cpu_moe: Some(offload.n_cpu_moe).filter(|&n| n != 0),
            split_mode: Some(offload.split_mode).filter(|&m| m != SplitMode::default()),
            main_gpu: Some(offload.main_gpu).filter(|&g| g != 0),
            tensor_split: Some(offload.tensor_split).filter(|t| !t.is_default()),
            tensor_buft_overrides: Some(offload.overrides).filter(|o| !o.is_default()),
        }
    }
}

/// A server cell's load: parallel streams (closed loop) or a Poisson request rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServeLoad {
    pub concurrency: Option<u32>,
    pub request_rate: Option<RequestRate>,
}

/// Requests per second, ordered and hashed by value so it can be part of a key (a rate is
/// finite and positive; validated suites never store anything else).
#[derive(Debug, Clone, Copy)]
pub struct RequestRate(pub f64);

impl PartialEq for RequestRate {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}

impl Eq for RequestRate {}

impl PartialOrd for RequestRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RequestRate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Hash for RequestRate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// As SQLite prints a REAL (`%!.15g`): 15 significant digits, at least one after the point
/// (`2.0`, `0.5`, `0.3`), exponent form below 1e-4 and from 1e15 (`5.0e-05`).
impl std::fmt::Display for RequestRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.0;
        if !r.is_finite() {
            return write!(f, "{r}");
        }
        // Rounded to 15 significant digits, then written in its shortest form.
        let r: f64 = format!("{r:.14e}").parse().unwrap_or(r);
        let exponent = if r == 0.0 {
            0
        } else {
            r.abs().log10().floor() as i32
        };
        if (-4..15).contains(&exponent) {
            let text = r.to_string();
            if text.contains('.') {
                f.write_str(&text)
            } else {
                write!(f, "{text}.0")
            }
        } else {
            let text = format!("{r:e}");
            let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            let dot = if mantissa.contains('.') { "" } else { ".0" };
            let sign = if exp < 0 { '-' } else { '+' };
            write!(f, "{mantissa}{dot}e{sign}{:02}", exp.abs())
        }
    }
}

impl Serialize for RequestRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

/// The backend as built, apart from its version: name, accelerator and build flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BackendIdentity {
    /// `engine`, `llama-bench`, `llama-server`, `vllm`, `ollama`, `openai`.
    pub name: String,
    /// `cpu`, `cuda`, `vulkan`, `metal`.
    pub accel: String,
    pub flags: String,
}

/// The model file: its name, quantization and, when known, the SHA-256 of its bytes (two
/// files of one name and quantization with different weights are different series).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ModelIdentity {
    /// `synth:tiny` or the file name.
    pub name: String,
    pub quant: String,
    pub sha256: Option<String>,
}

/// What a result measured, apart from when and with which backend version. (`Default` is
/// an empty key, for building one field by field.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SeriesKey {
    /// The host's identity ([`crate::HostInfo::identity`]): the machine, not its name alone.
    pub host: String,
    pub backend: BackendIdentity,
    pub metric_source: MetricSource,
    pub model: ModelIdentity,
    pub test: TestSpec,
    pub settings: EngineSettings,
    pub load: ServeLoad,
}

impl SeriesKey {
    /// The key as stable text, for the database (`verdict.series_key`,
    /// `change_point.series_key`): fields joined by U+001F, which no name contains.
    pub fn encode(&self) -> String {
        let SeriesKey {
            host,
            backend,
            metric_source,
            model,
            test,
            settings,
            load,
        } = self;
        let EngineSettings {
            n_threads,
            n_batch,
            n_ubatch,
            n_gpu_layers,
            n_cpu_moe,
            split_mode,
            main_gpu,
            flash_attn,
            type_k,
            type_v,
            tensor_split,
            tensor_buft_overrides,
            use_mmap,
        } = settings;
        fn opt<T: ToString>(v: Option<T>) -> String {
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        let flag = |b: Option<bool>| opt(b.map(u8::from));
        let mut s = [
            host.clone(),
            backend.name.clone(),
            backend.accel.clone(),
            backend.flags.clone(),
            model.name.clone(),
            model.quant.clone(),
            model.sha256.clone().unwrap_or_default(),
            test.label(),
            metric_source.as_str().to_string(),
            opt(*n_threads),
            opt(*n_batch),
            opt(*n_ubatch),
            opt(*n_gpu_layers),
            flag(*flash_attn),
            opt(type_k.map(CacheType::name)),
            opt(type_v.map(CacheType::name)),
            flag(*use_mmap),
        ]
        .join("\u{1f}");
        // The offload settings are appended only where set, as the load is: keys stored
        // before they existed (a verdict's `series_key`) keep their text.
        if let Some(n) = n_cpu_moe {
            let _ = write!(s, "\u{1f}ncmoe{n}");
        }
        if let Some(m) = split_mode {
            let _ = write!(s, "\u{1f}sm{m}");
        }
        if let Some(g) = main_gpu {
            let _ = write!(s, "\u{1f}mg{g}");
        }
        if let Some(t) = tensor_split {
            let _ = write!(s, "\u{1f}ts{t}");
        }
        if let Some(o) = tensor_buft_overrides {
            let _ = write!(s, "\u{1f}ot{o}");
        }
        if let Some(c) = load.concurrency {
            let _ = write!(s, "\u{1f}c{c}");
        }
        if let Some(rate) = load.request_rate {
            let _ = write!(s, "\u{1f}rate{rate}");
        }
        s
    }

    /// The same key with the test's prompt and generation sizes cleared (the depth kept):
    /// what a prefill result and a generation result share when they stand side by side.
    pub fn without_test_size(&self) -> SeriesKey {
        let mut k = self.clone();
        k.test.n_prompt = 0;
        k.test.n_gen = 0;
        k
    }

    /// Returns true if and only if `other` is this series at another quantization (and so
    /// another file): what a result and its Q8_0 counterpart share in the quantization
    /// table. Compares in place, without building keys.
    pub fn same_but_quant(&self, other: &SeriesKey) -> bool {
        let SeriesKey {
            host,
            backend,
            metric_source,
            model:
                ModelIdentity {
                    name,
                    quant: _,
                    sha256: _,
                },
            test,
            settings,
            load,
        } = self;
        *host == other.host
            && *backend == other.backend
            && *metric_source == other.metric_source
            && *name == other.model.name
            && *test == other.test
            && *settings == other.settings
            && *load == other.load
    }

    /// The same key without the machine and the build (host, accelerator, build flags):
    /// what pairs the results of two runs, two builds or two hosts in `tokbench compare`
    /// (a CUDA box beside a Mac is a comparison people make).
    pub fn without_machine(&self) -> SeriesKey {
        let mut k = self.clone();
        k.host.clear();
        k.backend.accel.clear();
        k.backend.flags.clear();
        k
    }

    /// The backend as people read it in a table: `engine`, and for a server cell the
    /// source of the figures and its load, `llama-server (client, c4)`.
    pub fn backend_label(&self) -> String {
        let name = &self.backend.name;
        if self.metric_source == MetricSource::Engine {
            return name.clone();
        }
        let mut s = format!("{name} ({}", self.metric_source.as_str());
        if let Some(c) = self.load.concurrency {
            let _ = write!(s, ", c{c}");
        }
        if let Some(rate) = self.load.request_rate {
            let _ = write!(s, ", {rate} req/s");
        }
        s.push(')');
        s
    }

    /// The engine settings as a short label (`t2 b2048 ub512 ngl99 fa0 ctk f16 ctv f16 mmap1`);
    /// unknown settings are left out.
    pub fn settings_label(&self) -> String {
        self.settings.compact(&SETTINGS.iter().collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SeriesKey {
        SeriesKey {
            host: "vm|EPYC|2|0|".into(),
            backend: BackendIdentity {
                name: "engine".into(),
                accel: "cpu".into(),
                flags: "".into(),
            },
            metric_source: MetricSource::Engine,
            model: ModelIdentity {
                name: "synth:tiny".into(),
                quant: "Q8_0".into(),
                sha256: Some("ab".into()),
            },
            test: TestSpec {
                n_prompt: 512,
                n_gen: 0,
                n_depth: 0,
            },
            settings: EngineSettings {
                n_threads: Some(2),
                n_batch: Some(2048),
                n_ubatch: Some(512),
                n_gpu_layers: Some(99),
                flash_attn: Some(false),
                type_k: Some(CacheType::F16),
                type_v: Some(CacheType::F16),
                use_mmap: Some(true),
                ..EngineSettings::default()
            },
            load: ServeLoad::default(),
        }
    }

    #[test]
    fn every_setting_changes_the_key_and_its_text() {
        let base = key();
        let variants: Vec<SeriesKey> = vec![
            SeriesKey {
                host: "other".into(),
                ..base.clone()
            },
            {
                let mut k = base.clone();
                k.backend.accel = "cuda".into();
                k
            },
            {
                let mut k = base.clone();
                k.backend.flags = "avx512".into();
                k
            },
            SeriesKey {
                metric_source: MetricSource::Client,
                ..base.clone()
            },
            {
                let mut k = base.clone();
                k.model.sha256 = Some("cd".into());
                k
            },
            {
                let mut k = base.clone();
                k.test.n_depth = 4096;
                k
            },
            {
                let mut k = base.clone();
                k.settings.n_threads = Some(4);
                k
            },
            {
                let mut k = base.clone();
                k.settings.n_batch = Some(1024);
                k
            },
            {
                let mut k = base.clone();
                k.settings.n_ubatch = Some(256);
                k
            },
            {
                let mut k = base.clone();
                k.settings.n_gpu_layers = Some(0);
                k
            },
            {
                let mut k = base.clone();
                k.settings.flash_attn = Some(true);
                k
            },
            {
                let mut k = base.clone();
                k.settings.type_k = Some(CacheType::Q8_0);
                k
            },
            {
                let mut k = base.clone();
                k.settings.type_v = Some(CacheType::Q8_0);
                k
            },
            {
                let mut k = base.clone();
                k.settings.use_mmap = Some(false);
                k
            },
            {
                let mut k = base.clone();
                k.settings.n_cpu_moe = Some(4);
                k
            },
            {
                let mut k = base.clone();
                k.settings.split_mode = Some(SplitMode::None);
                k
            },
            {
                let mut k = base.clone();
                k.settings.main_gpu = Some(1);
                k
            },
            {
                let mut k = base.clone();
                k.settings.tensor_split = Some("3/1".parse().unwrap());
                k
            },
            {
                let mut k = base.clone();
                k.settings.tensor_buft_overrides = Some("output=CPU".parse().unwrap());
                k
            },
            {
                let mut k = base.clone();
                k.load.concurrency = Some(4);
                k
            },
            {
                let mut k = base.clone();
                k.load.request_rate = Some(RequestRate(2.0));
                k
            },
        ];
        for v in &variants {
            assert_ne!(v, &base, "{v:?}");
            assert_ne!(v.encode(), base.encode(), "{v:?}");
        }
    }

    #[test]
    fn text_form_is_the_stored_one() {
        // The form change points were stored in: one field each, U+001F between them.
        let mut k = key();
        k.load.concurrency = Some(4);
        k.load.request_rate = Some(RequestRate(2.0));
        assert_eq!(
            k.encode(),
            "vm|EPYC|2|0|\u{1f}engine\u{1f}cpu\u{1f}\u{1f}synth:tiny\u{1f}Q8_0\u{1f}ab\u{1f}pp512\u{1f}engine\u{1f}2\u{1f}2048\u{1f}512\u{1f}99\u{1f}0\u{1f}f16\u{1f}f16\u{1f}1\u{1f}c4\u{1f}rate2.0"
        );
        // The offload settings, where set, come before the load.
        k.settings.split_mode = Some(SplitMode::Row);
        k.settings.tensor_split = Some("3/1".parse().unwrap());
        assert!(k
            .encode()
            .ends_with("\u{1f}1\u{1f}smrow\u{1f}ts3.00/1.00\u{1f}c4\u{1f}rate2.0"));
    }

    #[test]
    fn rates_print_as_sqlite_prints_a_real() {
        // What SQLite (3.40) prints for SELECT 2.0 || '', 0.5 || '', (0.1 + 0.2) || '', 0.00005 || '',
        // 1e15 || '', 12.25 || ''.
        for (rate, sqlite) in [
            (2.0, "2.0"),
            (0.5, "0.5"),
            (0.1 + 0.2, "0.3"),
            (0.00005, "5.0e-05"),
            (1e15, "1.0e+15"),
            (12.25, "12.25"),
            (0.0001, "0.0001"),
        ] {
            assert_eq!(RequestRate(rate).to_string(), sqlite, "{rate}");
        }
    }

    #[test]
    fn labels_name_the_source_load_and_settings() {
        let mut k = key();
        assert_eq!(k.backend_label(), "engine");
        assert_eq!(
            k.settings_label(),
            "t2 b2048 ub512 ngl99 fa0 ctk f16 ctv f16 mmap1"
        );
        k.backend.name = "llama-server".into();
        k.metric_source = MetricSource::Client;
        k.load.concurrency = Some(4);
        assert_eq!(k.backend_label(), "llama-server (client, c4)");
        k.settings = EngineSettings::default();
        assert_eq!(k.settings_label(), "");
    }

    #[test]
    fn one_table_names_every_setting_in_every_form() {
        let a = key().settings;
        let b = EngineSettings {
            flash_attn: Some(true),
            type_k: Some(CacheType::Q8_0),
            ..a
        };
        let varying = EngineSettings::varying([&a, &b, &a]);
        let names: Vec<&str> = varying.iter().map(|c| c.name).collect();
        assert_eq!(names, ["fa", "type_k"]);
        assert_eq!(b.compact(&varying), "fa1 ctk q8_0");
        assert_eq!(varying[0].describe(&b), "fa 1");
        assert_eq!(
            varying[0].describe(&EngineSettings::default()),
            "fa default"
        );
        assert!(EngineSettings::varying([&a]).is_empty());
        assert!(EngineSettings::varying([]).is_empty());
        // Every field of EngineSettings has one entry, named as the database names it.
        let columns: Vec<&str> = SETTINGS.iter().map(|c| c.column).collect();
        assert_eq!(
            columns,
            [
                "n_threads",
                "n_batch",
                "n_ubatch",
                "n_gpu_layers",
                "flash_attn",
                "type_k",
                "type_v",
                "use_mmap",
                "n_cpu_moe",
                "split_mode",
                "main_gpu",
                "tensor_split",
                "tensor_buft_overrides"
            ]
        );
        let params = crate::EngineParams {
            offload: crate::Offload {
                split_mode: SplitMode::Row,
                main_gpu: 1,
                tensor_split: "1/1".parse().unwrap(),
                overrides: "output=CPU".parse().unwrap(),
                n_cpu_moe: 2,
            },
            ..crate::EngineAxes::default().resolve(4)
        };
        let resolved = EngineSettings::from(params);
        assert!(SETTINGS.iter().all(|c| (c.value)(&resolved).is_some()));
        assert_eq!(
            resolved.compact(&SETTINGS.iter().collect::<Vec<_>>()),
            "t4 b2048 ub512 ngl99 fa0 ctk f16 ctv f16 mmap1 ncmoe2 sm row mg1 ts 1.00/1.00 ot output=CPU"
        );
        // At llama.cpp's defaults the offload settings are not set: older rows' NULLs.
        let plain = EngineSettings::from(crate::EngineParams {
            offload: crate::Offload::default(),
            ..params
        });
        assert_eq!(
            (
                plain.n_cpu_moe,
                plain.split_mode,
                plain.main_gpu,
                plain.tensor_split,
                plain.tensor_buft_overrides
            ),
            (None, None, None, None, None)
        );
    }

    #[test]
    fn pairing_keys_drop_only_what_they_say() {
        let k = key();
        let tg = SeriesKey {
            test: TestSpec {
                n_prompt: 0,
                n_gen: 128,
                n_depth: 0,
            },
            ..k.clone()
        };
        assert_eq!(k.without_test_size(), tg.without_test_size());
        let deeper = SeriesKey {
            test: TestSpec {
                n_depth: 1024,
                ..k.test
            },
            ..k.clone()
        };
        assert_ne!(k.without_test_size(), deeper.without_test_size());
        let mut q4 = k.clone();
        q4.model.quant = "Q4_K_M".into();
        q4.model.sha256 = Some("ef".into());
        assert!(k.same_but_quant(&q4));
        let mut q4_other_threads = q4.clone();
        q4_other_threads.settings.n_threads = Some(8);
        assert!(!k.same_but_quant(&q4_other_threads));
        let elsewhere = SeriesKey {
            host: "box".into(),
            ..k.clone()
        };
        assert_eq!(k.without_machine(), elsewhere.without_machine());
        let mut ub = k.clone();
        ub.settings.n_ubatch = Some(256);
        assert_ne!(k.without_machine(), ub.without_machine());
    }
}
