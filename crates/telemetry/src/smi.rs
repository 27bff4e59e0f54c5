//! AMD GPUs through ROCm's command-line tools: `amd-smi metric --json` (ROCm 6.1+) or, where
//! only it exists, `rocm-smi --json`. Their parsers are [`crate::parse::amd_smi`] and
//! [`crate::parse::rocm_smi`].
//!
//! What they add to amdgpu sysfs is amd-smi's energy counter (`total_energy_consumption`,
//! from the firmware accumulator), which sysfs does not expose; a card that prints 0.0 there
//! has no counter and is "not supported". A tool run takes up to a second (amd-smi is a
//! Python program), so it is never waited on from a sampler tick: a tick starts a run when
//! none is in flight and at least [`SmiSource::min_period`] passed since the last one, and a
//! later tick collects the output. Readings are stamped at the middle of the run.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::metric::{Availability, Metric, Sample, Unavailable, UnavailableKind};
use crate::source::{all_unavailable, Source};

pub(crate) const SMI_METRICS: [Metric; 5] = [
    Metric::PowerW,
    Metric::EnergyJ,
    Metric::VramUsedBytes,
    Metric::TempC,
    Metric::UtilGpuPct,
];

/// Which tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmiTool {
    AmdSmi,
    RocmSmi,
}

impl SmiTool {
    pub fn program(self) -> &'static str {
        match self {
            SmiTool::AmdSmi => "amd-smi",
            SmiTool::RocmSmi => "rocm-smi",
        }
    }

    fn source_name(self) -> &'static str {
        match self {
            SmiTool::AmdSmi => "amd_smi",
            SmiTool::RocmSmi => "rocm_smi",
        }
    }

    fn args(self) -> Vec<String> {
        let a: &[&str] = match self {
            SmiTool::AmdSmi => &["metric", "-p", "-E", "-m", "-u", "-t", "--json"],
            SmiTool::RocmSmi => &[
                "--showpower",
                "--showmeminfo",
                "vram",
                "--showtemp",
                "--showuse",
                "--json",
            ],
        };
        a.iter().map(|s| s.to_string()).collect()
    }
}

/// One run's figures, over all GPUs: power, energy and memory summed, temperature and
/// utilisation maxed. `None` where any GPU lacks the figure.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SmiReading {
    pub power_w: Option<f64>,
    pub energy_j: Option<f64>,
    pub vram_used_bytes: Option<f64>,
    pub temp_c: Option<f64>,
    pub util_gpu_pct: Option<f64>,
}

impl SmiReading {
    fn get(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::PowerW => self.power_w,
            Metric::EnergyJ => self.energy_j,
            Metric::VramUsedBytes => self.vram_used_bytes,
            Metric::TempC => self.temp_c,
            Metric::UtilGpuPct => self.util_gpu_pct,
            _ => None,
        }
    }
}

fn sum(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    xs.sum()
}

fn max(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    xs.collect::<Option<Vec<f64>>>()?
        .into_iter()
        .reduce(f64::max)
}

/// Why one run's output gave no reading: the tool's parser's error.
#[derive(Debug, thiserror::Error)]
pub enum SmiParseError {
    #[error(transparent)]
    AmdSmi(#[from] crate::parse::amd_smi::AmdSmiError),
    #[error(transparent)]
    RocmSmi(#[from] crate::parse::rocm_smi::RocmSmiError),
}

/// Parses one run's output with the tool's parser.
pub fn parse_output(tool: SmiTool, text: &str) -> Result<SmiReading, SmiParseError> {
    match tool {
        SmiTool::AmdSmi => {
            let gpus = crate::parse::amd_smi::parse_metric(text)?;
            Ok(SmiReading {
                power_w: sum(gpus.iter().map(|g| g.socket_power_w)),
                energy_j: sum(gpus.iter().map(|g| g.energy_j)),
                vram_used_bytes: sum(gpus.iter().map(|g| g.vram_used_bytes.map(|b| b as f64))),
                temp_c: max(gpus.iter().map(|g| g.temp_edge_c)),
                util_gpu_pct: max(gpus.iter().map(|g| g.gfx_activity_pct)),
            })
        }
        SmiTool::RocmSmi => {
            let r = crate::parse::rocm_smi::parse(text)?;
            let cards = &r.cards;
            Ok(SmiReading {
                power_w: sum(cards.iter().map(|c| c.power_w)),
                energy_j: None,
                vram_used_bytes: sum(cards.iter().map(|c| c.vram_used_bytes.map(|b| b as f64))),
                temp_c: max(cards.iter().map(|c| c.temp_edge_c)),
                util_gpu_pct: max(cards.iter().map(|c| c.util_pct)),
            })
        }
    }
}

/// Finds `program` in `PATH`.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// amd-smi or rocm-smi as a source.
#[derive(Debug)]
pub struct SmiSource {
    tool: SmiTool,
    program: String,
    args: Vec<String>,
    /// The metrics to emit when available (a subset when amdgpu sysfs gives the rest).
    wanted: Vec<Metric>,
    min_period: Duration,
    probe_timeout: Duration,
    available: BTreeMap<Metric, Availability>,
    env: BTreeMap<String, String>,
    running: Option<(Child, u64, Vec<u8>)>,
    last_start: Option<Instant>,
    errors: u64,
}

impl SmiSource {
    /// The real tool, looked up in `PATH` at probe time.
    pub fn new(tool: SmiTool) -> SmiSource {
        SmiSource {
            tool,
            program: tool.program().to_string(),
            args: tool.args(),
            wanted: SMI_METRICS.to_vec(),
            min_period: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(15),
            available: BTreeMap::new(),
            env: BTreeMap::new(),
            running: None,
            last_start: None,
            errors: 0,
        }
    }

    /// A stand-in command that prints the tool's output (for tests).
    pub fn with_command(tool: SmiTool, program: &str, args: &[&str]) -> SmiSource {
        let mut s = SmiSource::new(tool);
        s.program = program.to_string();
        s.args = args.iter().map(|a| a.to_string()).collect();
        s
    }

    /// Emit only these metrics (others are reported "not applicable": another source has
    /// them).
    pub fn only(mut self, metrics: &[Metric]) -> SmiSource {
        self.wanted = metrics.to_vec();
        self
    }

    /// The shortest time between two runs (default 1 s).
    pub fn min_period(mut self, period: Duration) -> SmiSource {
        self.min_period = period;
        self
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        if let Some(out) = &child.stdout {
            use std::os::fd::AsRawFd;
            let fd = out.as_raw_fd();
            // SAFETY: `fd` is the open read end of the child's stdout pipe, owned by `child`.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        Ok(child)
    }

    /// Moves whatever the child wrote into `buf`.
    fn pump(child: &mut Child, buf: &mut Vec<u8>) {
        let Some(out) = &mut child.stdout else {
            return;
        };
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match out.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// Runs the tool once and waits (probe time only).
    fn run_blocking(&self) -> Result<String, String> {
        let mut child = self.spawn().map_err(|e| format!("{}: {e}", self.program))?;
        let mut buf = Vec::new();
        let deadline = Instant::now() + self.probe_timeout;
        loop {
            Self::pump(&mut child, &mut buf);
            match child.try_wait() {
                Ok(Some(status)) => {
                    Self::pump(&mut child, &mut buf);
                    if !status.success() {
                        return Err(format!("{} exited with {status}", self.program));
                    }
                    return String::from_utf8(buf).map_err(|e| e.to_string());
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} gave no answer within {:?}",
                        self.program, self.probe_timeout
                    ));
                }
            }
        }
    }

    fn ok(&self, m: Metric) -> bool {
        matches!(self.available.get(&m), Some(Ok(())))
    }
}

impl Drop for SmiSource {
    fn drop(&mut self) {
        if let Some((mut child, _, _)) = self.running.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Source for SmiSource {
    fn name(&self) -> &'static str {
        self.tool.source_name()
    }

    fn probe(&mut self) -> Vec<(Metric, Availability)> {
        self.available.clear();
        let program = self.program.clone();
        let found = if program.contains('/') {
            Some(PathBuf::from(&program)).filter(|p| p.is_file())
        } else {
            which(&program)
        };
        let result = match found {
            None => all_unavailable(
                &SMI_METRICS,
                UnavailableKind::LibraryMissing,
                &format!("{program} not found in PATH (ROCm not installed)"),
            ),
            Some(path) => {
                self.env.insert(
                    format!("{}_path", self.tool.source_name()),
                    path.display().to_string(),
                );
                match self
                    .run_blocking()
                    .and_then(|t| parse_output(self.tool, &t).map_err(|e| e.to_string()))
                {
                    Err(e) => all_unavailable(
                        &SMI_METRICS,
                        UnavailableKind::NotSupported,
                        &format!("{program}: {e}"),
                    ),
                    Ok(r) => SMI_METRICS
                        .iter()
                        .map(|&m| {
                            let a = if !self.wanted.contains(&m) {
                                Err(Unavailable::new(
                                    UnavailableKind::NotApplicable,
                                    "read from amdgpu sysfs instead",
                                ))
                            } else {
                                match (m, r.get(m)) {
                                    (Metric::EnergyJ, Some(e)) if e <= 0.0 => {
                                        Err(Unavailable::new(
                                            UnavailableKind::NotSupported,
                                            format!(
                                                "{program} prints total_energy_consumption \
                                                 {e}: no energy counter on this GPU"
                                            ),
                                        ))
                                    }
                                    (_, Some(_)) => Ok(()),
                                    (_, None) => Err(Unavailable::new(
                                        UnavailableKind::NotSupported,
                                        format!("{program} prints no {m} for every GPU"),
                                    )),
                                }
                            };
                            (m, a)
                        })
                        .collect(),
                }
            }
        };
        self.available.extend(result.iter().cloned());
        result
    }

    fn sample(&mut self, clock: &dyn Clock, _pids: &[u32], out: &mut Vec<Sample>) {
        if self.available.is_empty() {
            self.probe();
        }
        if !SMI_METRICS.iter().any(|m| self.ok(*m)) {
            return;
        }
        if let Some((child, started_ns, buf)) = &mut self.running {
            Self::pump(child, buf);
            match child.try_wait() {
                Ok(None) => return,
                Ok(Some(status)) => {
                    Self::pump(child, buf);
                    let now = clock.now_ns();
                    let t_ns = *started_ns + now.saturating_sub(*started_ns) / 2;
                    let text = String::from_utf8_lossy(buf).into_owned();
                    self.running = None;
                    match parse_output(self.tool, &text) {
                        Ok(r) if status.success() => {
                            for m in SMI_METRICS {
                                if let (true, Some(value)) = (self.ok(m), r.get(m)) {
                                    out.push(Sample {
                                        t_ns,
                                        metric: m,
                                        value,
                                        source: self.tool.source_name(),
                                    });
                                }
                            }
                        }
                        _ => self.errors += 1,
                    }
                }
                Err(_) => {
                    self.running = None;
                    self.errors += 1;
                }
            }
        }
        let due = self
            .last_start
            .map(|t| t.elapsed() >= self.min_period)
            .unwrap_or(true);
        if self.running.is_none() && due {
            self.last_start = Some(Instant::now());
            match self.spawn() {
                Ok(child) => self.running = Some((child, clock.now_ns(), Vec::new())),
                Err(_) => self.errors += 1,
            }
        }
    }

    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        env.insert(
            format!("{}_period_ms", self.tool.source_name()),
            self.min_period.as_millis().to_string(),
        );
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MonotonicClock;

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn missing_tool_is_library_missing() {
        let mut src = SmiSource::with_command(SmiTool::AmdSmi, "tokbench-no-such-smi", &[]);
        for (_, a) in src.probe() {
            let u = a.unwrap_err();
            assert_eq!(u.kind, UnavailableKind::LibraryMissing);
            assert!(u.reason.contains("tokbench-no-such-smi"), "{u}");
        }
    }

    #[test]
    fn amd_smi_output_is_read_without_blocking_and_zero_energy_is_no_counter() {
        let path = fixture("amd-smi/rx6600_metric.json");
        let mut src = SmiSource::with_command(SmiTool::AmdSmi, "cat", &[&path])
            .min_period(Duration::from_millis(20));
        let probe: BTreeMap<Metric, Availability> = src.probe().into_iter().collect();
        assert!(probe[&Metric::PowerW].is_ok(), "{probe:?}");
        assert!(probe[&Metric::VramUsedBytes].is_ok());
        let energy = probe[&Metric::EnergyJ].clone().unwrap_err();
        assert_eq!(energy.kind, UnavailableKind::NotSupported);
        assert!(energy.reason.contains("no energy counter"), "{energy}");

        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.len() < 8 && Instant::now() < deadline {
            let t = Instant::now();
            src.sample(&MonotonicClock, &[], &mut out);
            assert!(t.elapsed() < Duration::from_millis(200), "a tick blocked");
            std::thread::sleep(Duration::from_millis(5));
        }
        let get = |m: Metric| out.iter().find(|s| s.metric == m).map(|s| s.value);
        assert_eq!(get(Metric::PowerW), Some(6.0));
        assert_eq!(get(Metric::VramUsedBytes), Some(202.0 * 1024.0 * 1024.0));
        assert_eq!(get(Metric::TempC), Some(36.0));
        assert_eq!(get(Metric::EnergyJ), None);
        assert!(out.iter().all(|s| s.source == "amd_smi"));
    }

    #[test]
    fn only_restricts_to_the_named_metrics() {
        let path = fixture("amd-smi/rx6600_metric.json");
        let mut src =
            SmiSource::with_command(SmiTool::AmdSmi, "cat", &[&path]).only(&[Metric::PowerW]);
        let probe: BTreeMap<Metric, Availability> = src.probe().into_iter().collect();
        assert!(probe[&Metric::PowerW].is_ok());
        assert_eq!(
            probe[&Metric::VramUsedBytes].clone().unwrap_err().kind,
            UnavailableKind::NotApplicable
        );
    }
}
