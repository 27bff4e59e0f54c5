//! Serving measurements: what a streaming client saw for each request sent to a server
//! backend (llama-server, vLLM, any OpenAI-compatible endpoint, Ollama), and their
//! summary per concurrency level — TTFT, time per output token, inter-token latency and
//! end-to-end latency as mean and p50/p90/p99, request throughput and aggregate output
//! tokens/s. Percentiles interpolate linearly between order statistics (numpy's default,
//! which vLLM's serving benchmark uses), so figures compare with theirs. No I/O here.

use serde::{Deserialize, Serialize};

use crate::stats::{mean, quantile_sorted};

/// One request as the client measured it. Times are milliseconds on the client's
/// monotonic clock.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RequestTiming {
    /// Order the request was sent in (0-based) within its concurrency level.
    pub index: u32,
    /// When it was sent, since the level began.
    pub start_ms: f64,
    /// Send → first generated token's bytes (`None` if none came).
    pub ttft_ms: Option<f64>,
    /// Send → the end of the response.
    pub e2e_ms: Option<f64>,
    /// Prompt tokens, as the server counted them where it said (else as sent).
    pub n_prompt: Option<u32>,
    /// Generated tokens, as the server counted them where it said (else stream events).
    pub n_gen: Option<u32>,
    /// Gaps between consecutive token-carrying stream events after the first, ms.
    pub itl_ms: Vec<f64>,
    /// Why the request failed; `None` when it completed.
    pub error: Option<String>,
    /// The server's own figures for this request (llama-server `timings`, Ollama's
    /// durations), as it sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerTimings>,
}

/// What a server reports about one request by itself.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerTimings {
    pub prompt_n: Option<u32>,
    pub prompt_ms: Option<f64>,
    pub predicted_n: Option<u32>,
    pub predicted_ms: Option<f64>,
    /// Model load time the server reports with the request (Ollama's `load_duration`).
    pub load_ms: Option<f64>,
    /// `predicted_ms` starts when the first token is sampled (llama-server): its decode rate
    /// is (tokens − 1) ÷ time, the metric vocabulary's. Otherwise (Ollama's
    /// `eval_duration`) it covers every generated token: tokens ÷ time.
    #[serde(default)]
    pub predicted_from_first_token: bool,
}

impl ServerTimings {
    /// Prompt tokens per second by the server's clock.
    pub fn prefill_tps(&self) -> Option<f64> {
        rate(self.prompt_n, self.prompt_ms)
    }
    /// Generated tokens per second by the server's clock (see
    /// [`Self::predicted_from_first_token`]).
    pub fn decode_tps(&self) -> Option<f64> {
        if self.predicted_from_first_token {
            rate(
                self.predicted_n.map(|n| n.saturating_sub(1)),
                self.predicted_ms,
            )
        } else {
            rate(self.predicted_n, self.predicted_ms)
        }
    }
}

fn rate(n: Option<u32>, ms: Option<f64>) -> Option<f64> {
    match (n, ms) {
        (Some(n), Some(ms)) if n > 0 && ms > 0.0 => Some(f64::from(n) / (ms / 1e3)),
        _ => None,
    }
}

impl RequestTiming {
    /// Mean time per output token after the first: (e2e − TTFT) ÷ (tokens − 1).
    pub fn tpot_ms(&self) -> Option<f64> {
        match (self.e2e_ms, self.ttft_ms, self.n_gen) {
            (Some(e2e), Some(ttft), Some(n)) if n > 1 && e2e >= ttft => {
                Some((e2e - ttft) / f64::from(n - 1))
            }
            _ => None,
        }
    }

    /// Generated tokens after the first ÷ time from the first to the last (the metric
    /// vocabulary's decode rate), as the client saw it: from the gaps between token events
    /// (the end of the response, a final stop or usage event, is not a token). Without
    /// gaps (one event carried several tokens), from TPOT.
    pub fn decode_tps(&self) -> Option<f64> {
        let span: f64 = self.itl_ms.iter().sum();
        if !self.itl_ms.is_empty() && span > 0.0 {
            return Some(self.itl_ms.len() as f64 / (span / 1e3));
        }
        self.tpot_ms().filter(|t| *t > 0.0).map(|t| 1e3 / t)
    }

    /// Time from the first token event to the last, ms.
    pub fn decode_ms(&self) -> Option<f64> {
        (!self.itl_ms.is_empty()).then(|| self.itl_ms.iter().sum())
    }

    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Mean and percentiles of one latency.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    /// Of the finite values; all `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Percentiles {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        Percentiles {
            mean: mean(&v),
            p50: Some(percentile(&v, 50.0)),
            p90: Some(percentile(&v, 90.0)),
            p99: Some(percentile(&v, 99.0)),
        }
    }
}

/// The `q`th percentile (0–100) of sorted, non-empty `v`: [`quantile_sorted`] at `q / 100`.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    quantile_sorted(v, q / 100.0)
}

/// One concurrency level's summary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServingSummary {
    /// Parallel streams (closed loop), or `None` with `request_rate` set.
    pub concurrency: Option<u32>,
    /// Poisson arrivals at this many requests per second, when the suite asked for it.
    pub request_rate: Option<f64>,
    pub n_requests: u32,
    pub n_failed: u32,
    pub ttft_ms: Percentiles,
    pub tpot_ms: Percentiles,
    pub itl_ms: Percentiles,
    pub e2e_ms: Percentiles,
    /// Completed requests ÷ the level's wall time.
    pub request_throughput: Option<f64>,
    /// Generated tokens of completed requests ÷ the level's wall time.
    pub output_tps: Option<f64>,
    /// The level's wall time: first send → last response's end, s.
    pub duration_s: f64,
}

impl ServingSummary {
    /// Summarizes the requests of one level that took `duration_s` of wall time.
    pub fn of(
        requests: &[RequestTiming],
        concurrency: Option<u32>,
        request_rate: Option<f64>,
        duration_s: f64,
    ) -> ServingSummary {
        let ok: Vec<&RequestTiming> = requests.iter().filter(|r| r.ok()).collect();
        let per_second = |x: f64| (duration_s > 0.0 && !ok.is_empty()).then(|| x / duration_s);
        let tokens: u64 = ok.iter().filter_map(|r| r.n_gen).map(u64::from).sum();
        ServingSummary {
            concurrency,
            request_rate,
            n_requests: requests.len() as u32,
            n_failed: (requests.len() - ok.len()) as u32,
            ttft_ms: Percentiles::of(ok.iter().filter_map(|r| r.ttft_ms)),
            tpot_ms: Percentiles::of(ok.iter().filter_map(|r| r.tpot_ms())),
            itl_ms: Percentiles::of(ok.iter().flat_map(|r| r.itl_ms.iter().copied())),
            e2e_ms: Percentiles::of(ok.iter().filter_map(|r| r.e2e_ms)),
            request_throughput: per_second(ok.len() as f64),
            output_tps: per_second(tokens as f64),
            duration_s,
        }
    }
}

/// A server backend's measurements of one cell: the summary and every request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServingResult {
    pub summary: ServingSummary,
    pub requests: Vec<RequestTiming>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ttft: f64, e2e: f64, n_gen: u32, itl: &[f64]) -> RequestTiming {
        RequestTiming {
            ttft_ms: Some(ttft),
            e2e_ms: Some(e2e),
            n_gen: Some(n_gen),
            itl_ms: itl.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn percentiles_of_the_finite_values() {
        // The interpolation itself is tested in `stats`.
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0], 90.0) - 3.7).abs() < 1e-12);
        let p = Percentiles::of([4.0, f64::NAN, 1.0, 3.0, 2.0]);
        assert_eq!(p.mean, Some(2.5));
        assert_eq!(p.p50, Some(2.5));
        assert_eq!(Percentiles::of([]), Percentiles::default());
    }

    #[test]
    fn tpot_counts_the_tokens_after_the_first() {
        // 11 tokens: the first at 100 ms, the last at 600 ms → 10 gaps of 50 ms.
        let r = req(100.0, 600.0, 11, &[]);
        assert_eq!(r.tpot_ms(), Some(50.0));
        assert_eq!(r.decode_tps(), Some(20.0));
        // With the gaps: 3 tokens after the first in 40 ms; the tail after the last token
        // (a final event) is not decode time.
        let r = req(100.0, 600.0, 4, &[10.0, 10.0, 20.0]);
        assert_eq!(r.decode_tps(), Some(75.0));
        assert_eq!(r.decode_ms(), Some(40.0));
        assert_eq!(req(100.0, 100.0, 1, &[]).tpot_ms(), None);
    }

    #[test]
    fn summary_by_hand() {
        let mut failed = req(0.0, 0.0, 0, &[]);
        failed.error = Some("HTTP 500".into());
        failed.ttft_ms = None;
        let rs = [
            req(100.0, 600.0, 11, &[40.0, 60.0]),
            req(200.0, 500.0, 4, &[100.0]),
            failed,
        ];
        let s = ServingSummary::of(&rs, Some(2), None, 2.0);
        assert_eq!((s.n_requests, s.n_failed), (3, 1));
        assert_eq!(s.ttft_ms.mean, Some(150.0));
        assert_eq!(s.ttft_ms.p50, Some(150.0));
        // TPOT 50 and 100 ms; ITL over every gap of the completed requests.
        assert_eq!(s.tpot_ms.mean, Some(75.0));
        assert_eq!(s.itl_ms.p50, Some(60.0));
        assert_eq!(s.request_throughput, Some(1.0));
        assert_eq!(s.output_tps, Some(7.5));
        let none = ServingSummary::of(&rs[2..], Some(1), None, 1.0);
        assert_eq!(none.request_throughput, None);
        assert_eq!(none.ttft_ms, Percentiles::default());
    }

    #[test]
    fn server_rates() {
        let t = ServerTimings {
            prompt_n: Some(512),
            prompt_ms: Some(256.0),
            predicted_n: Some(128),
            predicted_ms: Some(0.0),
            load_ms: None,
            predicted_from_first_token: true,
        };
        assert_eq!(t.prefill_tps(), Some(2000.0));
        assert_eq!(t.decode_tps(), None);
        // llama-server: 17 tokens, the clock from the first: 16 in 20 ms.
        let llama = ServerTimings {
            predicted_n: Some(17),
            predicted_ms: Some(20.0),
            ..t
        };
        assert_eq!(llama.decode_tps(), Some(800.0));
        // Ollama: eval_count ÷ eval_duration, as its docs define it.
        let ollama = ServerTimings {
            predicted_from_first_token: false,
            ..llama
        };
        assert_eq!(ollama.decode_tps(), Some(850.0));
    }
}
