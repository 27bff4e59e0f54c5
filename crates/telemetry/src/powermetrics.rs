//! Apple Silicon power through `powermetrics` (macOS), which needs root. tokbench never
//! prompts for a password: it runs it directly when it is root, through `sudo -n` when a
//! sudoers rule allows that without a password, and otherwise says "no permission" with the
//! fix. On other platforms every metric is "not applicable".
//!
//! The tool runs as one long-lived child, `powermetrics --samplers cpu_power,gpu_power -f
//! plist -i <ms>`, writing NUL-separated plist reports. The sampler thread reads what has
//! arrived without blocking (the pipe is non-blocking), so the child costs no thread. Each
//! report covers its own `elapsed_ns` (a little longer than asked): its combined power is
//! stamped at the middle of that span, and its energy (CPU + GPU + ANE) is added to a
//! counter stamped at arrival, so phase energy can come from counter differences.
//!
//! Apple's man page warns these are estimates, not for comparing devices.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::metric::{Availability, Metric, Sample, Unavailable, UnavailableKind};
use crate::source::{all_unavailable, Source};

pub const POWERMETRICS: &str = "/usr/bin/powermetrics";

const PM_METRICS: [Metric; 3] = [Metric::PowerW, Metric::EnergyJ, Metric::VramUsedBytes];

/// One report reduced to what the sampler needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerReport {
    /// The span the report covers, as powermetrics measured it.
    pub elapsed_ns: u64,
    /// CPU + GPU + ANE power, watts.
    pub combined_power_w: Option<f64>,
    /// CPU + GPU + ANE energy over the span, joules.
    pub energy_j: Option<f64>,
}

/// Turns one plist document (without its NUL) into a report.
pub type ReportParser = fn(&[u8]) -> Result<PowerReport, ReportError>;

/// Why one powermetrics document gave no report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Plist(#[from] crate::parse::powermetrics::PowermetricsError),
    #[error("report has no elapsed_ns")]
    NoElapsed,
    /// A document a stand-in parser ([`PowermetricsSource::with_command`]) rejects.
    #[error("{0}")]
    Invalid(String),
}

/// How powermetrics may be run here, decided at probe time.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Launch {
    Direct,
    Sudo,
}

/// `powermetrics` as a source: `power_w` and `energy_j` for the whole SoC.
#[derive(Debug)]
pub struct PowermetricsSource {
    program: String,
    args: Vec<String>,
    report_interval: Duration,
    parser: Option<ReportParser>,
    launch: Result<Launch, Unavailable>,
    probed: bool,
    child: Option<Child>,
    buf: Vec<u8>,
    energy_total_j: f64,
    reports: u64,
    parse_errors: u64,
    last_error: Option<String>,
}

/// Returns true if and only if this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Default for PowermetricsSource {
    fn default() -> Self {
        PowermetricsSource::new()
    }
}

impl PowermetricsSource {
    /// The real tool, reporting every 250 ms.
    pub fn new() -> PowermetricsSource {
        PowermetricsSource {
            program: POWERMETRICS.to_string(),
            args: Vec::new(),
            report_interval: Duration::from_millis(250),
            parser: default_parser(),
            launch: Err(Unavailable::new(
                UnavailableKind::NotApplicable,
                "not probed",
            )),
            probed: false,
            child: None,
            buf: Vec::new(),
            energy_total_j: 0.0,
            reports: 0,
            parse_errors: 0,
            last_error: None,
        }
    }

    /// How often powermetrics reports (its `-i`). Shorter windows are noisier; its own
    /// default is 5 s.
    pub fn with_report_interval(mut self, interval: Duration) -> PowermetricsSource {
        self.report_interval = interval;
        self
    }

    /// A stand-in command that prints NUL-separated documents, with the parser for them:
    /// for tests of the reading pipeline on any platform.
    pub fn with_command(program: &str, args: &[&str], parser: ReportParser) -> PowermetricsSource {
        let mut s = PowermetricsSource::new();
        s.program = program.to_string();
        s.args = args.iter().map(|a| a.to_string()).collect();
        s.parser = Some(parser);
        s.launch = Ok(Launch::Direct);
        s.probed = true;
        s
    }

    fn decide_launch(&self) -> Result<Launch, Unavailable> {
        if !cfg!(target_os = "macos") {
            return Err(Unavailable::new(
                UnavailableKind::NotApplicable,
                format!(
                    "powermetrics is a macOS tool; this is {}",
                    std::env::consts::OS
                ),
            ));
        }
        if self.parser.is_none() {
            return Err(Unavailable::new(
                UnavailableKind::LibraryMissing,
                "this build has no powermetrics plist parser",
            ));
        }
        if !std::path::Path::new(&self.program).exists() {
            return Err(Unavailable::new(
                UnavailableKind::LibraryMissing,
                format!("{} not found", self.program),
            ));
        }
        if is_root() {
            return Ok(Launch::Direct);
        }
        // `sudo -n -l CMD` says whether CMD may run without a password, and never prompts.
        let allowed = Command::new("sudo")
            .args(["-n", "-l", &self.program])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if allowed {
            Ok(Launch::Sudo)
        } else {
            Err(Unavailable::new(
                UnavailableKind::NoPermission,
                format!(
                    "{} needs root and `sudo -n` would prompt: run tokbench as root, or add \
                     the sudoers rule `{} ALL=(root) NOPASSWD: {}`",
                    self.program,
                    std::env::var("USER").unwrap_or_else(|_| "<user>".to_string()),
                    self.program
                ),
            ))
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let interval_ms = self.report_interval.as_millis().max(1).to_string();
        let mut cmd = match self.launch {
            Ok(Launch::Sudo) => {
                let mut c = Command::new("sudo");
                c.args(["-n", &self.program]);
                c
            }
            _ => Command::new(&self.program),
        };
        if self.args.is_empty() {
            cmd.args([
                "--samplers",
                "cpu_power,gpu_power",
                "-f",
                "plist",
                "-i",
                &interval_ms,
            ]);
        } else {
            cmd.args(&self.args);
        }
        let child = cmd
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
        self.child = Some(child);
        Ok(())
    }

    /// Reads whatever has arrived; returns the complete documents.
    fn drain_pipe(&mut self) -> Vec<Vec<u8>> {
        let Some(child) = &mut self.child else {
            return Vec::new();
        };
        let Some(out) = &mut child.stdout else {
            return Vec::new();
        };
        let mut chunk = [0u8; 64 * 1024];
        let mut eof = false;
        loop {
            match out.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: nothing more for now.
            }
        }
        let mut docs = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == 0) {
            let doc: Vec<u8> = self.buf.drain(..=pos).take(pos).collect();
            if doc.iter().any(|b| !b.is_ascii_whitespace()) {
                docs.push(doc);
            }
        }
        // The child exited: its last document may have no NUL after it.
        if eof && self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
            docs.push(std::mem::take(&mut self.buf));
        }
        docs
    }

    /// Stops the child: SIGTERM (which sudo relays), a short grace, then SIGKILL.
    fn stop_child(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Already gone (and now reaped): its PID may belong to another process by now.
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: sending a signal to our own child, which has not been reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PowermetricsSource {
    fn drop(&mut self) {
        self.stop_child();
    }
}

impl Source for PowermetricsSource {
    fn name(&self) -> &'static str {
        "powermetrics"
    }

    fn probe(&mut self) -> Vec<(Metric, Availability)> {
        if !self.probed {
            self.launch = self.decide_launch();
            self.probed = true;
        }
        let unified = Err(Unavailable::new(
            UnavailableKind::NotApplicable,
            "unified memory: the backend's memory is its resident memory (procfs/rss)",
        ));
        match &self.launch {
            Ok(_) => vec![
                (Metric::PowerW, Ok(())),
                (Metric::EnergyJ, Ok(())),
                (Metric::VramUsedBytes, unified),
            ],
            Err(u) => all_unavailable(&PM_METRICS, u.kind, &u.reason),
        }
    }

    fn sample(&mut self, clock: &dyn Clock, _pids: &[u32], out: &mut Vec<Sample>) {
        if !self.probed {
            self.probe();
        }
        if self.launch.is_err() {
            return;
        }
        let Some(parser) = self.parser else {
            return;
        };
        if self.child.is_none() {
            if let Err(e) = self.spawn() {
                self.last_error = Some(format!("spawn {}: {e}", self.program));
                self.launch = Err(Unavailable::new(
                    UnavailableKind::LibraryMissing,
                    format!("cannot start {}: {e}", self.program),
                ));
                return;
            }
        }
        let docs = self.drain_pipe();
        if docs.is_empty() {
            return;
        }
        let t_ns = clock.now_ns();
        for doc in docs {
            match parser(&doc) {
                Ok(r) => {
                    self.reports += 1;
                    if let Some(w) = r.combined_power_w {
                        out.push(Sample {
                            t_ns: t_ns.saturating_sub(r.elapsed_ns / 2),
                            metric: Metric::PowerW,
                            value: w,
                            source: "powermetrics",
                        });
                    }
                    if let Some(j) = r.energy_j {
                        self.energy_total_j += j;
                        out.push(Sample {
                            t_ns,
                            metric: Metric::EnergyJ,
                            value: self.energy_total_j,
                            source: "powermetrics",
                        });
                    }
                }
                Err(e) => {
                    self.parse_errors += 1;
                    self.last_error = Some(e.to_string());
                }
            }
        }
    }

    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("powermetrics_program".to_string(), self.program.clone());
        env.insert(
            "powermetrics_interval_ms".to_string(),
            self.report_interval.as_millis().to_string(),
        );
        if let Ok(l) = &self.launch {
            env.insert(
                "powermetrics_launch".to_string(),
                match l {
                    Launch::Direct => "direct (root)",
                    Launch::Sudo => "sudo -n",
                }
                .to_string(),
            );
        }
        env.insert(
            "powermetrics_caveat".to_string(),
            "Apple: estimated values, not for comparing devices".to_string(),
        );
        env
    }
}

/// The plist parser of [`crate::parse::powermetrics`], reduced to a [`PowerReport`].
fn default_parser() -> Option<ReportParser> {
    Some(parse_report)
}

/// One plist report to a [`PowerReport`]: power is `combined_power` (else the sum of the CPU,
/// GPU and ANE powers); energy is the `processor` dictionary's CPU + GPU + ANE energy (one
/// sampler's figures throughout: the `gpu` dictionary's GPU energy can differ by ~1%). A
/// report without energy keys gives no energy rather than one derived from power.
pub fn parse_report(doc: &[u8]) -> Result<PowerReport, ReportError> {
    let sample = crate::parse::powermetrics::parse_sample(doc)?;
    let elapsed_ns = sample.elapsed_ns.ok_or(ReportError::NoElapsed)?;
    let sum = |xs: [Option<f64>; 3]| -> Option<f64> {
        (xs[0].is_some() || xs[1].is_some()).then(|| xs.iter().flatten().sum())
    };
    let (combined_mw, energy_mj) = match (&sample.processor, &sample.gpu) {
        (Some(p), _) => (
            p.combined_power_mw
                .or_else(|| sum([p.cpu_power_mw, p.gpu_power_mw, p.ane_power_mw])),
            sum([p.cpu_energy_mj, p.gpu_energy_mj, p.ane_energy_mj]),
        ),
        // Only the `gpu_power` sampler ran: the GPU alone.
        (None, Some(g)) => (
            g.energy_mj
                .filter(|_| elapsed_ns > 0)
                .map(|mj| mj / (elapsed_ns as f64 * 1e-9)),
            g.energy_mj,
        ),
        (None, None) => (None, None),
    };
    Ok(PowerReport {
        elapsed_ns,
        combined_power_w: combined_mw.map(|mw| mw / 1000.0),
        energy_j: energy_mj.map(|mj| mj / 1000.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MonotonicClock;

    #[test]
    fn not_applicable_off_macos() {
        let mut src = PowermetricsSource::new();
        let probe = src.probe();
        if !cfg!(target_os = "macos") {
            for (_, a) in probe {
                let u = a.unwrap_err();
                assert_eq!(u.kind, UnavailableKind::NotApplicable);
                assert!(u.reason.contains("macOS"), "{u}");
            }
        }
    }

    /// "elapsed_ns power_w energy_j" per document.
    fn fake_parser(doc: &[u8]) -> Result<PowerReport, ReportError> {
        let invalid = |e: String| ReportError::Invalid(e);
        let s = std::str::from_utf8(doc).map_err(|e| invalid(e.to_string()))?;
        let v: Vec<f64> = s
            .split_whitespace()
            .map(|x| x.parse::<f64>().map_err(|e| invalid(format!("{x:?}: {e}"))))
            .collect::<Result<Vec<f64>, ReportError>>()?;
        let [elapsed, w, j] = v[..] else {
            return Err(invalid(format!("bad doc {s:?}")));
        };
        Ok(PowerReport {
            elapsed_ns: elapsed as u64,
            combined_power_w: Some(w),
            energy_j: Some(j),
        })
    }

    fn fixture(name: &str) -> String {
        format!(
            "{}/tests/fixtures/powermetrics/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    /// Captured real output, piped through `cat` as the tool would write it.
    fn run_fixture(name: &str) -> (Vec<Sample>, PowermetricsSource) {
        let path = fixture(name);
        let mut src = PowermetricsSource::with_command("cat", &[&path], parse_report);
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while src
            .child
            .as_mut()
            .map(|c| c.try_wait().ok().flatten().is_none())
            != Some(false)
            && Instant::now() < deadline
        {
            src.sample(&MonotonicClock, &[], &mut out);
            std::thread::sleep(Duration::from_millis(5));
        }
        src.sample(&MonotonicClock, &[], &mut out);
        (out, src)
    }

    #[test]
    fn real_plist_reports_become_power_and_an_energy_counter() {
        // M1, cpu_power sampler: processor.{cpu,gpu,ane}_energy 3704 + 149 + 0 mJ over
        // 5.0048 s, combined_power 769.866 mW.
        let (out, src) = run_fixture("m1_14.3_cpu_power.plist");
        assert_eq!(src.parse_errors, 0, "{:?}", src.last_error);
        let get = |m: Metric| -> Vec<f64> {
            out.iter()
                .filter(|s| s.metric == m)
                .map(|s| s.value)
                .collect()
        };
        let (energy, power) = (get(Metric::EnergyJ), get(Metric::PowerW));
        assert_eq!((energy.len(), power.len()), (1, 1));
        assert!((energy[0] - 3.853).abs() < 1e-9, "{energy:?}");
        assert!((power[0] - 0.769866).abs() < 1e-9, "{power:?}");
        // M4 Pro, gpu_power sampler only, 5 NUL-separated reports (the last without NUL).
        let (out, src) = run_fixture("m4pro_15.5_gpu_power_5_samples.plist");
        assert_eq!(src.parse_errors, 0, "{:?}", src.last_error);
        let energy: Vec<f64> = out
            .iter()
            .filter(|s| s.metric == Metric::EnergyJ)
            .map(|s| s.value)
            .collect();
        assert_eq!(energy.len(), 5);
        assert!((energy[4] - 1.186).abs() < 1e-9, "{energy:?}");
        // The same stream cut off mid-document: four reports and one parse error.
        let (out, src) = run_fixture("m4pro_15.5_gpu_power_truncated.plist");
        assert_eq!(
            out.iter().filter(|s| s.metric == Metric::EnergyJ).count(),
            4
        );
        assert_eq!(src.parse_errors, 1);
    }

    #[test]
    fn reads_nul_separated_reports_without_blocking() {
        let script = r"printf '100000000 5.0 0.5\000200000000 7.0 1.4\000garbage\000'; \
                       sleep 0.2; printf '100000000 3.0 0.3\000100000000 4'; exec sleep 5";
        let mut src = PowermetricsSource::with_command("sh", &["-c", script], fake_parser);
        let mut out: Vec<Sample> = Vec::new();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(5);
        while out.iter().filter(|s| s.metric == Metric::EnergyJ).count() < 3 {
            src.sample(&MonotonicClock, &[], &mut out);
            assert!(Instant::now() < deadline, "reports never arrived: {out:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Each sample call returned at once though the child keeps running (`sleep 5`).
        assert!(start.elapsed() < Duration::from_secs(3));
        let energy: Vec<f64> = out
            .iter()
            .filter(|s| s.metric == Metric::EnergyJ)
            .map(|s| s.value)
            .collect();
        assert_eq!(energy.len(), 3);
        assert!((energy[2] - 2.2).abs() < 1e-9, "{energy:?}");
        let power: Vec<f64> = out
            .iter()
            .filter(|s| s.metric == Metric::PowerW)
            .map(|s| s.value)
            .collect();
        assert_eq!(power, vec![5.0, 7.0, 3.0]);
        assert_eq!(src.parse_errors, 1);
        let t0 = Instant::now();
        drop(src);
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
