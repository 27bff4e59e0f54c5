//! How a person names a run, the same for every command that takes one (`results --run`,
//! `check --run`, `check --accept`, `compare A B`): `latest`, `previous`, `latest~N`, a
//! UUID or a unique prefix of one, `run:UUID`, `host:NAME` (that host's newest run) or
//! `build:VERSION` (the newest run with a result from that backend build).

use std::fmt;
use std::str::FromStr;

/// A run, as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSelector {
    /// The newest run, skipping this many (`latest` is 0, `previous` and `latest~1` are 1).
    Newest { skip: u32 },
    /// A run UUID or a unique prefix of one (matched without regard to ASCII case).
    Uuid(String),
    /// The newest run on the host of this name.
    Host(String),
    /// The newest run with a result from the backend build of this version.
    Build(String),
}

/// A run selector that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` names no run: {why}; give `latest`, `previous`, `latest~N`, a run UUID or a unique prefix of one, `host:NAME` or `build:VERSION`")]
pub struct BadRunSelector {
    pub given: String,
    pub why: &'static str,
}

impl FromStr for RunSelector {
    type Err = BadRunSelector;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadRunSelector {
            given: s.to_string(),
            why,
        };
        let t = s.trim();
        match t {
            "" => return Err(bad("it is empty")),
            "latest" => return Ok(RunSelector::Newest { skip: 0 }),
            "previous" => return Ok(RunSelector::Newest { skip: 1 }),
            _ => {}
        }
        if let Some(n) = t.strip_prefix("latest~") {
            let skip = n
                .parse::<u32>()
                .map_err(|_| bad("N in `latest~N` is a whole number"))?;
            return Ok(RunSelector::Newest { skip });
        }
        if let Some(h) = t.strip_prefix("host:") {
            return match h.trim() {
                "" => Err(bad("`host:` needs a host name")),
                h => Ok(RunSelector::Host(h.to_string())),
            };
        }
        if let Some(v) = t.strip_prefix("build:") {
            return match v.trim() {
                "" => Err(bad("`build:` needs a build version")),
                v => Ok(RunSelector::Build(v.to_string())),
            };
        }
        let uuid = t.strip_prefix("run:").unwrap_or(t);
        if uuid.is_empty() || uuid.chars().any(|c| c.is_whitespace() || c == '%') {
            return Err(bad("a run UUID has no spaces"));
        }
        Ok(RunSelector::Uuid(uuid.to_string()))
    }
}

impl fmt::Display for RunSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunSelector::Newest { skip: 0 } => f.write_str("latest"),
            RunSelector::Newest { skip } => write!(f, "latest~{skip}"),
            RunSelector::Uuid(u) => f.write_str(u),
            RunSelector::Host(h) => write!(f, "host:{h}"),
            RunSelector::Build(v) => write!(f, "build:{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        for (given, want) in [
            ("latest", RunSelector::Newest { skip: 0 }),
            ("previous", RunSelector::Newest { skip: 1 }),
            ("latest~3", RunSelector::Newest { skip: 3 }),
            ("5f0c", RunSelector::Uuid("5f0c".into())),
            ("run:5f0c-11", RunSelector::Uuid("5f0c-11".into())),
            ("host:box-a", RunSelector::Host("box-a".into())),
            (
                "build:llama-cpp-2 0.1.160",
                RunSelector::Build("llama-cpp-2 0.1.160".into()),
            ),
        ] {
            assert_eq!(given.parse::<RunSelector>().unwrap(), want, "{given}");
        }
        assert_eq!(RunSelector::Newest { skip: 1 }.to_string(), "latest~1");
        assert_eq!(RunSelector::Host("a".into()).to_string(), "host:a");
    }

    #[test]
    fn a_typo_says_which_forms_exist() {
        for bad in ["", "latest~x", "host:", "build: ", "two words", "50%"] {
            let e = bad.parse::<RunSelector>().unwrap_err().to_string();
            assert!(
                e.contains("latest~N") && e.contains("host:NAME"),
                "{bad}: {e}"
            );
        }
    }
}
