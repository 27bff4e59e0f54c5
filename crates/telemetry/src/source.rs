//! The [`Source`] trait every sampler backend implements, and [`detect`], which builds every
//! source this platform could have and asks each what it can measure.

use std::collections::BTreeMap;

use crate::clock::Clock;
use crate::metric::{Availability, Metric, Sample, UnavailableKind};

/// One thing that reads the hardware: NVML, RAPL, amdgpu sysfs, powermetrics, `/proc`.
///
/// A source first says, metric by metric, what it can measure and why not
/// ([`Source::probe`]); it then emits only the available metrics from [`Source::sample`].
/// Sources are driven from one thread (the sampler's); `Send` lets them move there.
pub trait Source: Send {
    /// Stable name, stored in `telemetry_sample.source`: `nvml`, `rapl`, `amdgpu`,
    /// `powermetrics`, `procfs`, `amd_smi`, `rocm_smi`.
    fn name(&self) -> &'static str;

    /// Every metric this kind of source could give, each available or with the reason it is
    /// not. Cheap enough to call once per test; sources remember the answer.
    fn probe(&mut self) -> Vec<(Metric, Availability)>;

    /// Reads the available metrics once and appends them to `out`, each stamped with
    /// `clock` when it was read. `pids` is the backend's whole process tree (roots and
    /// descendants; empty while there is no backend). A metric that fails to read this
    /// time is left out, never written as zero.
    fn sample(&mut self, clock: &dyn Clock, pids: &[u32], out: &mut Vec<Sample>);

    /// What a reader needs to interpret the numbers, as read at probe time: driver
    /// version, power limits, clocks, which file or field power came from.
    fn environment(&self) -> BTreeMap<String, String>;
}

/// What one source said when probed. Serialises as `{"source", "metrics": {"power_w":
/// "ok" | {"kind", "reason"}}, "environment"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    pub source: &'static str,
    pub metrics: Vec<(Metric, Availability)>,
    pub environment: BTreeMap<String, String>,
}

impl serde::Serialize for SourceReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        #[derive(serde::Serialize)]
        #[serde(untagged)]
        enum Status<'a> {
            Ok(&'static str),
            Unavailable(&'a crate::metric::Unavailable),
        }
        let metrics: BTreeMap<&'static str, Status<'_>> = self
            .metrics
            .iter()
            .map(|(m, a)| {
                let status = match a {
                    Ok(()) => Status::Ok("ok"),
                    Err(u) => Status::Unavailable(u),
                };
                (m.name(), status)
            })
            .collect();
        let mut st = s.serialize_struct("SourceReport", 3)?;
        st.serialize_field("source", self.source)?;
        st.serialize_field("metrics", &metrics)?;
        st.serialize_field("environment", &self.environment)?;
        st.end()
    }
}

impl SourceReport {
    /// Probes `source` and records what it said.
    pub fn of(source: &mut dyn Source) -> SourceReport {
        let metrics = source.probe();
        SourceReport {
            source: source.name(),
            metrics,
            environment: source.environment(),
        }
    }

    /// The metrics this source can measure.
    pub fn available(&self) -> impl Iterator<Item = Metric> + '_ {
        self.metrics
            .iter()
            .filter(|(_, a)| a.is_ok())
            .map(|(m, _)| *m)
    }

    /// Returns true if and only if at least one metric is available.
    pub fn any_available(&self) -> bool {
        self.available().next().is_some()
    }

    /// One line per metric: `nvml power_w: no device: …` or `procfs rss_bytes: ok`.
    pub fn lines(&self) -> Vec<String> {
        self.metrics
            .iter()
            .map(|(m, a)| match a {
                Ok(()) => format!("{} {m}: ok", self.source),
                Err(u) => format!("{} {m}: {u}", self.source),
            })
            .collect()
    }
}

/// Every source built for this machine and what each said.
pub struct Detected {
    /// One report per source tried, available or not.
    pub reports: Vec<SourceReport>,
    /// The sources with at least one available metric, ready for the sampler.
    pub sources: Vec<Box<dyn Source>>,
}

impl std::fmt::Debug for Detected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detected")
            .field("reports", &self.reports)
            .field(
                "sources",
                &self.sources.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Detected {
    /// Probes `source`, records the report, and keeps the source if `keep_if` says so.
    fn keep(&mut self, mut source: Box<dyn Source>, keep_if: &dyn Fn(&SourceReport) -> bool) {
        let report = SourceReport::of(source.as_mut());
        if keep_if(&report) {
            self.sources.push(source);
        }
        self.reports.push(report);
    }
}

/// Builds every source that could exist on this platform, probes each, and keeps those that
/// can measure something. Never fails: what cannot be measured is in the reports.
///
/// AMD: amdgpu sysfs gives power, memory and the rest every tick; amd-smi (else rocm-smi) is
/// run only where there is an AMD card, and when sysfs works it is kept only for its energy
/// counter (with its own power beside it, for the counter-vs-integral check).
pub fn detect() -> Detected {
    use crate::smi::{SmiSource, SmiTool};

    let mut d = Detected {
        reports: Vec::new(),
        sources: Vec::new(),
    };
    let any = |r: &SourceReport| r.any_available();

    d.keep(Box::new(crate::procfs::ProcSource::real()), &any);
    d.keep(Box::new(crate::nvml::NvmlSource::new()), &any);

    let mut amdgpu = crate::amdgpu::AmdgpuSource::real();
    let amdgpu_report = SourceReport::of(&mut amdgpu);
    let no_card = amdgpu_report
        .metrics
        .iter()
        .all(|(_, a)| matches!(a, Err(u) if u.kind == UnavailableKind::NoDevice));
    let sysfs_works = amdgpu_report.any_available();
    let amd_reason = amdgpu_report
        .metrics
        .first()
        .and_then(|(_, a)| a.clone().err())
        .map(|u| u.reason)
        .unwrap_or_default();
    if sysfs_works {
        d.sources.push(Box::new(amdgpu));
    }
    d.reports.push(amdgpu_report);
    let tool = if crate::smi::which(SmiTool::AmdSmi.program()).is_none()
        && crate::smi::which(SmiTool::RocmSmi.program()).is_some()
    {
        SmiTool::RocmSmi
    } else {
        SmiTool::AmdSmi
    };
    if no_card {
        d.reports.push(SourceReport {
            source: SmiSource::new(tool).name(),
            metrics: all_unavailable(
                &crate::smi::SMI_METRICS,
                UnavailableKind::NoDevice,
                &amd_reason,
            ),
            environment: BTreeMap::new(),
        });
    } else if sysfs_works {
        let energy = |r: &SourceReport| r.available().any(|m| m == Metric::EnergyJ);
        d.keep(
            Box::new(SmiSource::new(tool).only(&[Metric::PowerW, Metric::EnergyJ])),
            &energy,
        );
    } else {
        d.keep(Box::new(SmiSource::new(tool)), &any);
    }

    d.keep(Box::new(crate::rapl::RaplSource::real()), &any);
    d.keep(
        Box::new(crate::powermetrics::PowermetricsSource::new()),
        &any,
    );
    d
}

/// What every source on this platform can measure, and why not.
pub fn probe_all() -> Vec<SourceReport> {
    detect().reports
}

/// The same reason for every metric of a source that cannot work at all.
pub(crate) fn all_unavailable(
    metrics: &[Metric],
    kind: UnavailableKind,
    reason: &str,
) -> Vec<(Metric, Availability)> {
    metrics
        .iter()
        .map(|m| {
            (
                *m,
                Err(crate::metric::Unavailable::new(kind, reason.to_string())),
            )
        })
        .collect()
}
