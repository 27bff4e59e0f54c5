//! `rocm-smi --json` (with `--showpower --showmeminfo vram --showtemp --showuse
//! --showproductname`, or `--showallinfo`): an object of `"card0"`, `"card1"`, … each
//! holding human-readable keys with string values, plus a `"system"` object. This module
//! owns reading the power, VRAM, temperature and use figures out of it.
//!
//! A value of `"N/A"`, or one that starts with it (`"N/A (Secondary die)"` on the second
//! die of a dual-die card), is `None`; so is a key the ROCm version does not print.

use serde_json::{Map, Value};

/// The largest input [`parse`] accepts, in bytes.
pub const MAX_INPUT_BYTES: usize = 16 << 20;
/// The most `cardN` entries [`parse`] reads.
pub const MAX_CARDS: usize = 1024;

const POWER_CURRENT_SOCKET: &str = "Current Socket Graphics Package Power (W)";
const POWER_AVERAGE: &str = "Average Graphics Package Power (W)";
const VRAM_TOTAL: &str = "VRAM Total Memory (B)";
const VRAM_USED: &str = "VRAM Total Used Memory (B)";
const TEMP_EDGE: &str = "Temperature (Sensor edge) (C)";
const TEMP_JUNCTION: &str = "Temperature (Sensor junction) (C)";
const GPU_USE: &str = "GPU use (%)";
/// Product name keys, best first: `Device Name` (ROCm 6.1+), `Card Series` (6.1.2+) and
/// `Card series` (before) — matched without regard to case.
const NAME_KEYS: [&str; 2] = ["Device Name", "Card Series"];

/// What went wrong reading rocm-smi output.
#[derive(Debug, thiserror::Error)]
pub enum RocmSmiError {
    #[error("input is {len} bytes, over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("rocm-smi output is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("rocm-smi output is not a JSON object of cards")]
    NotAnObject,
    #[error("rocm-smi output has no `cardN` entry")]
    NoCards,
    #[error("rocm-smi output has more than {limit} cards")]
    TooManyCards { limit: usize },
    #[error("`{card}` is not a JSON object")]
    CardNotAnObject { card: String },
    #[error("`{card}`: `{key}` is {value}, not a number or N/A")]
    BadValue {
        card: String,
        key: &'static str,
        value: String,
    },
}

/// Which rocm-smi power figure [`RocmSmiCard::power_w`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerKind {
    /// `Current Socket Graphics Package Power (W)`: printed by ROCm 6+ on devices that
    /// report an instantaneous socket power (MI300, APUs).
    CurrentSocket,
    /// `Average Graphics Package Power (W)`.
    Average,
}

/// One `cardN` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RocmSmiCard {
    /// The entry's key, e.g. `card0`.
    pub card: String,
    /// The number in the key: the DRM card index, not the HIP device index.
    pub index: u32,
    /// Product name, when the output has one.
    pub name: Option<String>,
    /// Graphics package power; current socket power when the card reports it, else the
    /// average.
    pub power_w: Option<f64>,
    /// Which figure [`Self::power_w`] is; `None` when there is none.
    pub power_kind: Option<PowerKind>,
    pub vram_total_bytes: Option<u64>,
    pub vram_used_bytes: Option<u64>,
    pub temp_edge_c: Option<f64>,
    pub temp_junction_c: Option<f64>,
    pub util_pct: Option<f64>,
}

/// A whole `rocm-smi --json` report.
#[derive(Debug, Clone, PartialEq)]
pub struct RocmSmiReport {
    /// Cards in index order.
    pub cards: Vec<RocmSmiCard>,
    /// `system` → `Driver version`, when printed.
    pub driver_version: Option<String>,
}

/// Reads one `rocm-smi --json` report.
pub fn parse(text: &str) -> Result<RocmSmiReport, RocmSmiError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(RocmSmiError::TooLarge {
            len: text.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    let value: Value = serde_json::from_str(text).map_err(RocmSmiError::NotJson)?;
    let Value::Object(top) = value else {
        return Err(RocmSmiError::NotAnObject);
    };
    let mut cards = Vec::new();
    for (key, entry) in &top {
        let Some(index) = card_index(key) else {
            continue;
        };
        if cards.len() == MAX_CARDS {
            return Err(RocmSmiError::TooManyCards { limit: MAX_CARDS });
        }
        let Value::Object(fields) = entry else {
            return Err(RocmSmiError::CardNotAnObject { card: key.clone() });
        };
        cards.push(read_card(key, index, fields)?);
    }
    if cards.is_empty() {
        return Err(RocmSmiError::NoCards);
    }
    cards.sort_by_key(|card| card.index);
    let driver_version = top
        .get("system")
        .and_then(Value::as_object)
        .and_then(|system| get_ci(system, "Driver version"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(RocmSmiReport {
        cards,
        driver_version,
    })
}

/// `card12` → 12; anything else (`system`) → `None`.
fn card_index(key: &str) -> Option<u32> {
    let digits = key.strip_prefix("card")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn read_card(
    card: &str,
    index: u32,
    fields: &Map<String, Value>,
) -> Result<RocmSmiCard, RocmSmiError> {
    let number = |key: &'static str| number(card, key, get_ci(fields, key));
    let (power_w, power_kind) = match number(POWER_CURRENT_SOCKET)? {
        Some(w) => (Some(w), Some(PowerKind::CurrentSocket)),
        None => match number(POWER_AVERAGE)? {
            Some(w) => (Some(w), Some(PowerKind::Average)),
            None => (None, None),
        },
    };
    let name = NAME_KEYS
        .iter()
        .filter_map(|key| get_ci(fields, key))
        .filter_map(Value::as_str)
        .map(str::trim)
        .find(|name| !name.is_empty() && !is_not_available(name))
        .map(str::to_owned);
    Ok(RocmSmiCard {
        card: card.to_owned(),
        index,
        name,
        power_w,
        power_kind,
        vram_total_bytes: bytes(card, VRAM_TOTAL, get_ci(fields, VRAM_TOTAL))?,
        vram_used_bytes: bytes(card, VRAM_USED, get_ci(fields, VRAM_USED))?,
        temp_edge_c: number(TEMP_EDGE)?,
        temp_junction_c: number(TEMP_JUNCTION)?,
        util_pct: number(GPU_USE)?,
    })
}

/// Looks `key` up without regard to ASCII case: rocm-smi has changed the case of keys
/// between versions (`Card series` → `Card Series`, `(c)` → `(C)`).
fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Returns true if and only if `text` is rocm-smi's "no reading" marker, with or without
/// a note after it (`N/A (Secondary die)`).
fn is_not_available(text: &str) -> bool {
    text.trim_start().starts_with("N/A")
}

fn bad(card: &str, key: &'static str, value: &Value) -> RocmSmiError {
    let mut shown = value.to_string();
    if shown.len() > 64 {
        let cut = (0..=64)
            .rev()
            .find(|&i| shown.is_char_boundary(i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    RocmSmiError::BadValue {
        card: card.to_owned(),
        key,
        value: shown,
    }
}

fn number(
    card: &str,
    key: &'static str,
    value: Option<&Value>,
) -> Result<Option<f64>, RocmSmiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| bad(card, key, v)),
        Some(v @ Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() || is_not_available(s) {
                return Ok(None);
            }
            match s.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(bad(card, key, v)),
            }
        }
        Some(v) => Err(bad(card, key, v)),
    }
}

fn bytes(
    card: &str,
    key: &'static str,
    value: Option<&Value>,
) -> Result<Option<u64>, RocmSmiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| bad(card, key, v)),
        Some(v @ Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() || is_not_available(s) {
                return Ok(None);
            }
            s.parse::<u64>().map(Some).map_err(|_| bad(card, key, v))
        }
        Some(v) => Err(bad(card, key, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_index_takes_only_card_keys() {
        assert_eq!(card_index("card0"), Some(0));
        assert_eq!(card_index("card12"), Some(12));
        assert_eq!(card_index("system"), None);
        assert_eq!(card_index("card"), None);
        assert_eq!(card_index("card-1"), None);
    }

    #[test]
    fn not_available_covers_the_noted_form() {
        assert!(is_not_available("N/A"));
        assert!(is_not_available("N/A (Secondary die)"));
        assert!(!is_not_available("0.0"));
    }
}
