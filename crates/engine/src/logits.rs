//! The logits of a fixed prompt, and how closely two builds agree on them: the check that a
//! GPU build computes what the CPU build computes (`tokbench model logits`), so a broken
//! offload cannot pass as merely fast.
//!
//! The file is a line of JSON ([`LogitsHeader`]) and then `positions × n_vocab` little-endian
//! `f32`s, position by position: 8 MB for 64 positions of a 32,000-token vocabulary, where
//! JSON text would be three times that and slow to read.

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

/// What a logits file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitsHeader {
    /// `tokbench-logits 1`: the format and its version.
    pub format: String,
    /// The model file evaluated, as given.
    pub model: String,
    /// The accelerator the engine was built with (`cpu`, `vulkan`, …).
    pub accel: String,
    pub n_gpu_layers: u32,
    /// The devices llama.cpp used (`Vulkan0 (llvmpipe …)`), from its load log.
    pub devices: Vec<String>,
    /// The layers llama.cpp said it offloaded, of how many.
    pub layers_offloaded: Option<u32>,
    pub layers_total: Option<u32>,
    pub n_threads: u32,
    /// One token at a time (generation's kernels), not the whole prompt in one batch.
    #[serde(default)]
    pub stepwise: bool,
    /// The seed of the prompt's tokens (BOS, then tokens drawn uniformly from the vocabulary).
    pub seed: u64,
    /// The prompt, one logits row per token.
    pub tokens: Vec<i32>,
    pub n_vocab: usize,
}

/// The magic value of [`LogitsHeader::format`].
pub const FORMAT: &str = "tokbench-logits 1";

/// A prompt's logits: `logits[p * n_vocab + v]` is token `v`'s logit after position `p`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    pub header: LogitsHeader,
    pub logits: Vec<f32>,
}

impl Logits {
    /// The row of position `p`.
    pub fn row(&self, p: usize) -> &[f32] {
        let n = self.header.n_vocab;
        &self.logits[p * n..(p + 1) * n]
    }

    pub fn positions(&self) -> usize {
        self.header.tokens.len()
    }

    pub fn write(&self, mut out: impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut out, &self.header)?;
        out.write_all(b"\n")?;
        let mut bytes = Vec::with_capacity(self.logits.len() * 4);
        for x in &self.logits {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        out.write_all(&bytes)?;
        out.flush()
    }

    /// Reads what [`Logits::write`] wrote; the error says what is wrong with it.
    pub fn read(input: impl Read) -> Result<Self, String> {
        let mut input = std::io::BufReader::new(input);
        let mut line = Vec::new();
        input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read: {e}"))?;
        let header: LogitsHeader = serde_json::from_slice(&line)
            .map_err(|e| format!("not a tokbench logits file (its first line: {e})"))?;
        if header.format != FORMAT {
            return Err(format!(
                "format `{}`, this tokbench reads `{FORMAT}`",
                header.format
            ));
        }
        let mut bytes = Vec::new();
        input
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
        let want = header.tokens.len() * header.n_vocab * 4;
        if bytes.len() != want {
            return Err(format!(
                "{} bytes of logits where {} positions × {} tokens × 4 bytes is {want}",
                bytes.len(),
                header.tokens.len(),
                header.n_vocab
            ));
        }
        let logits = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Self { header, logits })
    }
}

/// How closely one evaluation of a prompt agrees with a reference evaluation of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub positions: usize,
    /// Positions whose highest-scoring token is the same in both.
    pub top1_same: usize,
    /// The largest |a − b| over every position and token.
    pub max_abs_diff: f64,
    /// The root mean square of a − b, and of the reference's logits about each row's mean
    /// (its spread): their ratio is the relative error.
    pub rms_diff: f64,
    pub rms_ref: f64,
    /// Where the top tokens differ, how far below the reference's top token it scored the
    /// other's (the largest such gap; 0 when none differ): a near-tie flipped by rounding
    /// is a small fraction of the spread, a wrong computation is not.
    pub worst_top1_gap: f64,
}

impl Agreement {
    pub fn top1_fraction(&self) -> f64 {
        self.top1_same as f64 / self.positions.max(1) as f64
    }

    /// The difference as a fraction of the reference's spread.
    pub fn relative_rms(&self) -> f64 {
        self.rms_diff / self.rms_ref.max(f64::MIN_POSITIVE)
    }
}

/// Compares `got` with `reference`: the same prompt, the same vocabulary, or an error that
/// says which differs.
pub fn compare(reference: &Logits, got: &Logits) -> Result<Agreement, String> {
    let (r, g) = (&reference.header, &got.header);
    if r.n_vocab != g.n_vocab {
        return Err(format!(
            "vocabularies differ: {} tokens in the reference, {} here",
            r.n_vocab, g.n_vocab
        ));
    }
    if r.tokens != g.tokens {
        return Err(format!(
            "prompts differ (the reference has {} tokens with seed {}, this {} with seed {}): evaluate the same prompt",
            r.tokens.len(),
            r.seed,
            g.tokens.len(),
            g.seed
        ));
    }
    let (mut top1_same, mut max_abs, mut sq_diff, mut sq_ref) = (0, 0f64, 0f64, 0f64);
    let mut worst_gap = 0f64;
    for p in 0..reference.positions() {
        let (a, b) = (reference.row(p), got.row(p));
        let (ta, tb) = (argmax(a), argmax(b));
        if ta == tb {
            top1_same += 1;
        } else {
            worst_gap = worst_gap.max(f64::from(a[ta]) - f64::from(a[tb]));
        }
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / a.len().max(1) as f64;
        for (&x, &y) in a.iter().zip(b) {
            let d = f64::from(x) - f64::from(y);
            // A NaN on either side makes the difference infinite (max would drop it).
            max_abs = if d.is_nan() {
                f64::INFINITY
            } else {
                max_abs.max(d.abs())
            };
            sq_diff += d * d;
            sq_ref += (f64::from(x) - mean).powi(2);
        }
    }
    let n = (reference.positions() * r.n_vocab).max(1) as f64;
    let rms_diff = if max_abs.is_infinite() {
        f64::INFINITY
    } else {
        (sq_diff / n).sqrt()
    };
    Ok(Agreement {
        positions: reference.positions(),
        top1_same,
        max_abs_diff: max_abs,
        rms_diff,
        rms_ref: (sq_ref / n).sqrt(),
        worst_top1_gap: worst_gap,
    })
}

/// The index of the largest value (the first, on a tie; NaN never wins).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(rows: &[&[f32]]) -> Logits {
        Logits {
            header: LogitsHeader {
                format: FORMAT.into(),
                model: "m.gguf".into(),
                accel: "cpu".into(),
                n_gpu_layers: 0,
                devices: vec![],
                layers_offloaded: None,
                layers_total: None,
                n_threads: 1,
                stepwise: false,
                seed: 7,
                tokens: (0..rows.len() as i32).collect(),
                n_vocab: rows[0].len(),
            },
            logits: rows.iter().flat_map(|r| r.iter().copied()).collect(),
        }
    }

    #[test]
    fn a_file_reads_back_as_written_and_a_short_one_is_refused() {
        let l = logits(&[&[1.0, -2.5, 3.25], &[0.0, f32::MIN_POSITIVE, -7.0]]);
        let mut buf = Vec::new();
        l.write(&mut buf).unwrap();
        assert_eq!(Logits::read(&buf[..]).unwrap(), l);
        let e = Logits::read(&buf[..buf.len() - 4]).unwrap_err();
        assert!(
            e.contains("20 bytes of logits where 2 positions × 3 tokens × 4 bytes is 24"),
            "{e}"
        );
        let e = Logits::read(&b"{\"x\":1}\n"[..]).unwrap_err();
        assert!(e.starts_with("not a tokbench logits file"), "{e}");
    }

    #[test]
    fn agreement_counts_top1_and_measures_the_difference_against_the_spread() {
        let a = logits(&[&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0], &[0.0, 5.0, 1.0]]);
        // Position 1's top token moves (3.0 vs 3.5 at index 2); every value off by ≤ 0.5.
        let b = logits(&[&[1.0, 2.0, 3.5], &[3.0, 2.0, 3.5], &[0.0, 5.0, 1.0]]);
        let g = compare(&a, &b).unwrap();
        assert_eq!((g.positions, g.top1_same), (3, 2));
        assert!((g.top1_fraction() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(g.max_abs_diff, 2.5);
        // At position 1 the other build's top token (index 2) scored 1.0 in the reference,
        // whose top scored 3.0.
        assert_eq!(g.worst_top1_gap, 2.0);
        // Σd² = 0.25 + 6.25 over 9 values; the spread: rows 1 and 2 have variance 2/3 each,
        // row 3 (mean 2) 14/3: Σ = 2 + 2 + 14 = 18 over 9.
        assert!((g.rms_diff - (6.5f64 / 9.0).sqrt()).abs() < 1e-12, "{g:?}");
        assert!((g.rms_ref - (18.0f64 / 9.0).sqrt()).abs() < 1e-12, "{g:?}");
        assert_eq!(compare(&a, &a).unwrap().rms_diff, 0.0);
    }

    #[test]
    fn a_nan_disagrees_and_different_prompts_are_not_compared() {
        let a = logits(&[&[1.0, 2.0]]);
        let b = logits(&[&[f32::NAN, 2.0]]);
        let g = compare(&a, &b).unwrap();
        assert!(
            g.max_abs_diff.is_infinite() && g.rms_diff.is_infinite(),
            "{g:?}"
        );
        let mut c = logits(&[&[1.0, 2.0]]);
        c.header.tokens = vec![9];
        assert!(compare(&a, &c).unwrap_err().contains("prompts differ"));
        let d = logits(&[&[1.0, 2.0, 3.0]]);
        assert!(compare(&a, &d).unwrap_err().contains("vocabularies differ"));
    }
}
