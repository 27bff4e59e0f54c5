//! The run's ETA from what its cells really took. A remaining cell is expected to take the
//! mean of the finished cells of the same model and test; else of the same test on any
//! model (scaled by nothing: a guess is labelled as one by being rough, not hidden); else
//! of every finished cell. The cell in flight counts down from its own estimate, so the ETA
//! moves within a long cell and never runs away after the first short one (indicatif's
//! rate-based ETA went from 4 s to 3 min inside one long cell).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

#[derive(Debug, Default, Clone, Copy)]
struct Mean {
    sum: f64,
    n: u32,
}

impl Mean {
    fn add(&mut self, x: f64) {
        self.sum += x;
        self.n += 1;
    }

    fn get(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

/// A cell as the estimator sees it: its model and its test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CellKind {
    pub model: String,
    pub test: String,
}

/// Measured cell durations and the cells still to run.
#[derive(Debug, Default)]
pub struct Eta {
    pending: BTreeMap<usize, CellKind>,
    by_cell: HashMap<CellKind, Mean>,
    by_test: HashMap<String, Mean>,
    all: Mean,
    /// The cell in flight and how long it has run, seconds.
    current: Option<(usize, f64)>,
    /// The cell in flight's repetitions: (done, at most), and the seconds it had run when
    /// the last one ended.
    reps: Option<(u32, u32, f64)>,
}

impl Eta {
    /// The cells to run, by index.
    pub fn new(pending: impl IntoIterator<Item = (usize, CellKind)>) -> Self {
        Eta {
            pending: pending.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Cell `index` began; its elapsed time starts at 0.
    pub fn started(&mut self, index: usize) {
        self.current = Some((index, 0.0));
        self.reps = None;
    }

    /// The cell in flight finished its `done`th repetition of at most `max`, `at` into the
    /// cell: from then on its own pace (what a repetition took so far) tells its time left.
    pub fn repetition(&mut self, index: usize, done: u32, max: u32, at: Duration) {
        if self.current.is_some_and(|(i, _)| i == index) && done > 0 {
            self.reps = Some((done, max.max(done), at.as_secs_f64()));
        }
    }

    /// Time passed in the cell in flight.
    pub fn tick(&mut self, elapsed_in_cell: Duration) {
        if let Some((_, t)) = &mut self.current {
            *t = elapsed_in_cell.as_secs_f64();
        }
    }

    /// Cell `index` ended without being seen to start (a backend that was unavailable):
    /// no longer pending, and no duration to learn from.
    pub fn dropped(&mut self, index: usize) {
        self.pending.remove(&index);
    }

    /// Cell `index` ended after `took`.
    pub fn finished(&mut self, index: usize, took: Duration) {
        let s = took.as_secs_f64();
        if let Some(kind) = self.pending.remove(&index) {
            self.by_test.entry(kind.test.clone()).or_default().add(s);
            self.by_cell.entry(kind).or_default().add(s);
            self.all.add(s);
        }
        if self.current.is_some_and(|(i, _)| i == index) {
            self.current = None;
            self.reps = None;
        }
    }

    fn expected(&self, kind: &CellKind) -> Option<f64> {
        self.by_cell
            .get(kind)
            .and_then(Mean::get)
            .or_else(|| self.by_test.get(&kind.test).and_then(Mean::get))
            .or_else(|| self.all.get())
    }

    /// Time left: `None` until a cell has finished (nothing measured to go on).
    pub fn remaining(&self) -> Option<Duration> {
        self.all.get()?;
        let mut left = 0.0;
        for (index, kind) in &self.pending {
            let e = self.expected(kind)?;
            left += match (self.current, self.reps) {
                // Its repetitions so far, each as long as their mean, then the rest; the
                // time since the last one counts against the next.
                (Some((i, t)), Some((done, max, at))) if i == *index => {
                    let per_rep = at / f64::from(done);
                    (per_rep * f64::from(max - done) - (t - at)).max(0.0)
                }
                (Some((i, t)), _) if i == *index => (e - t).max(0.0),
                _ => e,
            };
        }
        Some(Duration::from_secs_f64(left))
    }

    /// `ETA 1m 05s`, or `ETA …` before anything was measured.
    pub fn text(&self) -> String {
        match self.remaining() {
            None => "ETA …".to_string(),
            Some(d) => format!("ETA {}", human(d)),
        }
    }
}

/// `45s`, `3m 05s`, `2h 07m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(model: &str, test: &str) -> CellKind {
        CellKind {
            model: model.into(),
            test: test.into(),
        }
    }

    #[test]
    fn each_remaining_cell_is_expected_to_take_what_its_kind_took() {
        let mut eta = Eta::new([
            (0, kind("a", "pp512")),
            (1, kind("a", "tg128")),
            (2, kind("b", "pp512")),
            (3, kind("b", "tg128")),
        ]);
        assert_eq!(eta.remaining(), None, "nothing measured yet");
        assert_eq!(eta.text(), "ETA …");
        eta.started(0);
        eta.finished(0, Duration::from_secs(2));
        // Every other cell: the only mean there is, 2 s.
        assert_eq!(eta.remaining(), Some(Duration::from_secs(6)));
        eta.started(1);
        eta.tick(Duration::from_secs(5));
        // The cell in flight has outrun its estimate: 0 left for it, not negative.
        assert_eq!(eta.remaining(), Some(Duration::from_secs(4)));
        eta.finished(1, Duration::from_secs(20));
        // b's pp512 like a's pp512 (2 s), b's tg128 like a's tg128 (20 s).
        assert_eq!(eta.remaining(), Some(Duration::from_secs(22)));
        eta.started(2);
        eta.tick(Duration::from_millis(500));
        assert_eq!(eta.remaining(), Some(Duration::from_millis(21_500)));
        eta.finished(2, Duration::from_secs(4));
        eta.finished(3, Duration::from_secs(1));
        assert_eq!(eta.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn the_cell_in_flight_counts_down_by_its_repetitions() {
        let mut eta = Eta::new([(0, kind("a", "pp512")), (1, kind("a", "pp512"))]);
        eta.started(0);
        eta.finished(0, Duration::from_secs(2));
        // The second cell is far slower than the first (a busy machine): its estimate of
        // 2 s would hit 0 and stay there; its repetitions say otherwise.
        eta.started(1);
        eta.repetition(1, 1, 5, Duration::from_secs(10));
        eta.tick(Duration::from_secs(10));
        assert_eq!(eta.remaining(), Some(Duration::from_secs(40)));
        eta.tick(Duration::from_secs(14));
        assert_eq!(eta.remaining(), Some(Duration::from_secs(36)));
        eta.repetition(1, 4, 5, Duration::from_secs(40));
        eta.tick(Duration::from_secs(40));
        assert_eq!(eta.remaining(), Some(Duration::from_secs(10)));
        // A repetition of another cell changes nothing.
        eta.repetition(0, 1, 5, Duration::from_secs(1));
        assert_eq!(eta.remaining(), Some(Duration::from_secs(10)));
        eta.finished(1, Duration::from_secs(50));
        assert_eq!(eta.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(185)), "3m 05s");
        assert_eq!(human(Duration::from_secs(7620)), "2h 07m");
    }
}
