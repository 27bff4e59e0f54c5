//! `amd-smi metric --json` and `amd-smi static --json`: one object per GPU, each reading
//! either `{"value": …, "unit": …}` or the string `"N/A"` (for a reading, or for a whole
//! section). This module owns reading power, use, VRAM, temperature and energy (and, from
//! `static`, the name and limits) out of them and converting units.
//!
//! The captures in `tests/fixtures/amd-smi` are a top-level array of GPU objects. ROCm 7
//! prints that array as `gpu_data` in an object; both shapes are read. A bare number with
//! no unit object (amd-smi before ROCm 6.1 printed no units) is read in the unit the key
//! is printed in since (W, MB, C, %, J).
//!
//! amd-smi's "MB" is MiB: the tool divides bytes by 1024 × 1024 and floors, so the byte
//! counts here are whole MiB, up to 1 MiB under the truth.

use serde_json::{Map, Value};

/// The largest input accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 16 << 20;
/// The most GPU entries read.
pub const MAX_GPUS: usize = 1024;

/// What went wrong reading amd-smi output.
#[derive(Debug, thiserror::Error)]
pub enum AmdSmiError {
    #[error("input is {len} bytes, over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("amd-smi output is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("amd-smi output is neither an array of GPUs nor an object with `gpu_data`")]
    UnknownShape,
    #[error("amd-smi output has no GPU entry")]
    NoGpus,
    #[error("amd-smi output has more than {limit} GPUs")]
    TooManyGpus { limit: usize },
    #[error("GPU entry {position} is not a JSON object")]
    GpuNotAnObject { position: usize },
    #[error("GPU entry {position} has no non-negative integer `gpu`")]
    MissingGpuIndex { position: usize },
    #[error("gpu {gpu}: `{path}` is {value}, not a reading")]
    BadValue {
        gpu: u32,
        path: &'static str,
        value: String,
    },
    #[error("gpu {gpu}: `{path}` has unit {unit:?}, expected one of {expected}")]
    BadUnit {
        gpu: u32,
        path: &'static str,
        unit: String,
        expected: &'static str,
    },
}

/// One GPU from `amd-smi metric --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct AmdSmiMetric {
    /// amd-smi's GPU index (not necessarily the HIP or DRM index).
    pub gpu: u32,
    /// `power.socket_power`.
    pub socket_power_w: Option<f64>,
    /// `usage.gfx_activity`.
    pub gfx_activity_pct: Option<f64>,
    /// `usage.umc_activity` (memory controller).
    pub umc_activity_pct: Option<f64>,
    /// `mem_usage.total_vram`.
    pub vram_total_bytes: Option<u64>,
    /// `mem_usage.used_vram`.
    pub vram_used_bytes: Option<u64>,
    /// `temperature.edge`.
    pub temp_edge_c: Option<f64>,
    /// `temperature.hotspot` (junction).
    pub temp_hotspot_c: Option<f64>,
    /// `energy.total_energy_consumption`, a counter since driver load. Consumer cards
    /// without the counter print 0.0 here rather than N/A; this is that figure as printed.
    pub energy_j: Option<f64>,
}

/// One GPU from `amd-smi static --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct AmdSmiStatic {
    pub gpu: u32,
    /// `asic.market_name` (amd-smi can cut it short, e.g. `Navi 23 [Radeon RX 6600/6600 XT`).
    pub market_name: Option<String>,
    /// `bus.bdf`.
    pub pci_bdf: Option<String>,
    /// `vram.size`.
    pub vram_total_bytes: Option<u64>,
    /// `limit.socket_power`: the power cap in force.
    pub power_cap_w: Option<f64>,
    /// `limit.max_power`.
    pub power_cap_max_w: Option<f64>,
    /// `driver.version`.
    pub driver_version: Option<String>,
}

/// Reads `amd-smi metric --json`.
pub fn parse_metric(text: &str) -> Result<Vec<AmdSmiMetric>, AmdSmiError> {
    let value = parse_json(text)?;
    gpu_entries(&value)?
        .into_iter()
        .map(|r| {
            Ok(AmdSmiMetric {
                gpu: r.gpu,
                socket_power_w: r.watts("power.socket_power", &["power", "socket_power"])?,
                gfx_activity_pct: r.percent("usage.gfx_activity", &["usage", "gfx_activity"])?,
                umc_activity_pct: r.percent("usage.umc_activity", &["usage", "umc_activity"])?,
                vram_total_bytes: r.bytes("mem_usage.total_vram", &["mem_usage", "total_vram"])?,
                vram_used_bytes: r.bytes("mem_usage.used_vram", &["mem_usage", "used_vram"])?,
                temp_edge_c: r.celsius("temperature.edge", &["temperature", "edge"])?,
                temp_hotspot_c: r.celsius("temperature.hotspot", &["temperature", "hotspot"])?,
                energy_j: r.joules(
                    "energy.total_energy_consumption",
                    &["energy", "total_energy_consumption"],
                )?,
            })
        })
        .collect()
}

/// Reads `amd-smi static --json`.
pub fn parse_static(text: &str) -> Result<Vec<AmdSmiStatic>, AmdSmiError> {
    let value = parse_json(text)?;
    gpu_entries(&value)?
        .into_iter()
        .map(|r| {
            Ok(AmdSmiStatic {
                gpu: r.gpu,
                market_name: r.string("asic.market_name", &["asic", "market_name"])?,
                pci_bdf: r.string("bus.bdf", &["bus", "bdf"])?,
                vram_total_bytes: r.bytes("vram.size", &["vram", "size"])?,
                power_cap_w: r.watts("limit.socket_power", &["limit", "socket_power"])?,
                power_cap_max_w: r.watts("limit.max_power", &["limit", "max_power"])?,
                driver_version: r.string("driver.version", &["driver", "version"])?,
            })
        })
        .collect()
}

fn parse_json(text: &str) -> Result<Value, AmdSmiError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(AmdSmiError::TooLarge {
            len: text.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    serde_json::from_str(text).map_err(AmdSmiError::NotJson)
}

/// A reader over each GPU object of either shape.
fn gpu_entries(value: &Value) -> Result<Vec<Reader<'_>>, AmdSmiError> {
    let list = match value {
        Value::Array(list) => list,
        Value::Object(top) => match top.get("gpu_data") {
            Some(Value::Array(list)) => list,
            _ => return Err(AmdSmiError::UnknownShape),
        },
        _ => return Err(AmdSmiError::UnknownShape),
    };
    if list.is_empty() {
        return Err(AmdSmiError::NoGpus);
    }
    if list.len() > MAX_GPUS {
        return Err(AmdSmiError::TooManyGpus { limit: MAX_GPUS });
    }
    list.iter()
        .enumerate()
        .map(|(position, entry)| {
            let Value::Object(entry) = entry else {
                return Err(AmdSmiError::GpuNotAnObject { position });
            };
            let gpu = entry
                .get("gpu")
                .and_then(Value::as_u64)
                .and_then(|g| u32::try_from(g).ok())
                .ok_or(AmdSmiError::MissingGpuIndex { position })?;
            Ok(Reader { gpu, entry })
        })
        .collect()
}

/// Reads the figures of one GPU object.
struct Reader<'a> {
    gpu: u32,
    entry: &'a Map<String, Value>,
}

/// A reading found at a path: its number and its unit, if it had one.
struct Reading<'u> {
    value: f64,
    unit: Option<&'u str>,
}

impl<'a> Reader<'a> {
    fn bad_value(&self, path: &'static str, value: &Value) -> AmdSmiError {
        let mut shown = value.to_string();
        if shown.len() > 64 {
            let cut = (0..=64)
                .rev()
                .find(|&i| shown.is_char_boundary(i))
                .unwrap_or(0);
            shown.truncate(cut);
            shown.push('…');
        }
        AmdSmiError::BadValue {
            gpu: self.gpu,
            path,
            value: shown,
        }
    }

    fn bad_unit(&self, path: &'static str, unit: &str, expected: &'static str) -> AmdSmiError {
        AmdSmiError::BadUnit {
            gpu: self.gpu,
            path,
            unit: unit.chars().take(16).collect(),
            expected,
        }
    }

    /// The value at `keys`; `None` when a key on the way is absent or holds "N/A".
    fn lookup(&self, keys: &[&str]) -> Option<&'a Value> {
        let (last, parents) = keys.split_last()?;
        let mut map = self.entry;
        for key in parents {
            match map.get(*key)? {
                Value::Object(inner) => map = inner,
                // A whole section can be "N/A" (`"usage": "N/A"` on a GPU that reports
                // nothing); a reading inside it is then absent.
                _ => return None,
            }
        }
        map.get(*last)
    }

    /// A number at `keys`: `{"value": x, "unit": u}`, a bare number, or "N/A".
    fn reading(
        &self,
        path: &'static str,
        keys: &[&str],
    ) -> Result<Option<Reading<'a>>, AmdSmiError> {
        let Some(found) = self.lookup(keys) else {
            return Ok(None);
        };
        let (value, unit) = match found {
            Value::Object(inner) => {
                let unit = match inner.get("unit") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(u)) => Some(u.as_str()),
                    Some(other) => return Err(self.bad_value(path, other)),
                };
                match inner.get("value") {
                    Some(value) => (value, unit),
                    None => return Err(self.bad_value(path, found)),
                }
            }
            other => (other, None),
        };
        match value {
            Value::Null => Ok(None),
            Value::String(s) if s.trim_start().starts_with("N/A") => Ok(None),
            Value::Number(n) => match n.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(Reading { value: x, unit })),
                _ => Err(self.bad_value(path, value)),
            },
            other => Err(self.bad_value(path, other)),
        }
    }

    fn scaled(
        &self,
        path: &'static str,
        keys: &[&str],
        units: &[(&str, f64)],
        expected: &'static str,
    ) -> Result<Option<f64>, AmdSmiError> {
        let Some(Reading { value, unit }) = self.reading(path, keys)? else {
            return Ok(None);
        };
        let Some(unit) = unit else {
            // No unit object: the unit the key has always been printed in.
            let default = units.first().map_or(1.0, |&(_, factor)| factor);
            return Ok(Some(value * default));
        };
        units
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, factor)| Some(value * factor))
            .ok_or_else(|| self.bad_unit(path, unit, expected))
    }

    fn watts(&self, path: &'static str, keys: &[&str]) -> Result<Option<f64>, AmdSmiError> {
        self.scaled(
            path,
            keys,
            &[("W", 1.0), ("mW", 1e-3), ("uW", 1e-6)],
            "W, mW, uW",
        )
    }

    fn percent(&self, path: &'static str, keys: &[&str]) -> Result<Option<f64>, AmdSmiError> {
        self.scaled(path, keys, &[("%", 1.0)], "%")
    }

    fn celsius(&self, path: &'static str, keys: &[&str]) -> Result<Option<f64>, AmdSmiError> {
        self.scaled(path, keys, &[("C", 1.0)], "C")
    }

    fn joules(&self, path: &'static str, keys: &[&str]) -> Result<Option<f64>, AmdSmiError> {
        self.scaled(
            path,
            keys,
            &[("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6)],
            "J, mJ, uJ",
        )
    }

    /// Memory in bytes. amd-smi's KB/MB/GB are binary (it divides by 1024 per step).
    fn bytes(&self, path: &'static str, keys: &[&str]) -> Result<Option<u64>, AmdSmiError> {
        const UNITS: [(&str, f64); 4] = [
            ("MB", (1u64 << 20) as f64),
            ("B", 1.0),
            ("KB", (1u64 << 10) as f64),
            ("GB", (1u64 << 30) as f64),
        ];
        let Some(x) = self.scaled(path, keys, &UNITS, "B, KB, MB, GB")? else {
            return Ok(None);
        };
        // A byte count is a whole, non-negative number that fits a u64.
        if !(0.0..u64::MAX as f64).contains(&x) {
            let shown = self.lookup(keys).cloned().unwrap_or(Value::Null);
            return Err(self.bad_value(path, &shown));
        }
        Ok(Some(x.round() as u64))
    }

    fn string(&self, path: &'static str, keys: &[&str]) -> Result<Option<String>, AmdSmiError> {
        match self.lookup(keys) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim_start().starts_with("N/A") => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.bad_value(path, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_take_the_unit_the_key_is_printed_in() {
        let gpus = parse_metric(
            r#"[{"gpu": 1, "power": {"socket_power": 12}, "mem_usage": {"used_vram": 3},
                 "usage": "N/A"}]"#,
        )
        .unwrap();
        assert_eq!(gpus[0].gpu, 1);
        assert_eq!(gpus[0].socket_power_w, Some(12.0));
        assert_eq!(gpus[0].vram_used_bytes, Some(3 << 20));
        assert_eq!(gpus[0].gfx_activity_pct, None);
    }
}
