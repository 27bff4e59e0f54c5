//! Faults the engine injects into itself, for the runner's fault-injection tests: a crash,
//! an exit, a hang, a stop, runaway memory or a malformed line at a chosen phase of a job.
//!
//! Only a build with the `fault-injection` feature (what the workspace's tests enable)
//! reads [`FAULT_ENV`](crate::protocol::FAULT_ENV); in any other build [`Fault::from_env`]
//! is always `None` and the fault code is not compiled in.

/// Where in a job a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPhase {
    /// Before the engine says hello.
    Start,
    /// Once the model is loaded, before the engine says so.
    Load,
    /// At the start of a test's warm-up.
    Warmup,
    /// At the start of a repetition's prompt.
    Prefill,
    /// Halfway through a repetition's generated tokens.
    Decode,
    /// After the last test, before the engine says `done`.
    Finish,
    /// After the engine said `done`, before it exits.
    Shutdown,
}

#[cfg(feature = "fault-injection")]
mod imp {
    use super::FaultPhase;
    use crate::protocol::FAULT_ENV;

    /// A fault to inject, parsed from [`FAULT_ENV`].
    #[derive(Debug, Clone, PartialEq)]
    pub struct Fault {
        phase: FaultPhase,
        test: u64,
        rep: u32,
        mode: String,
        /// Strike only in the first engine process that gets here: the one that creates this
        /// file (so the next engine of the run, and its cells, run clean).
        once: Option<std::path::PathBuf>,
    }

    /// `phase=P,test=ID,rep=N,mode=M`; every key is optional (prefill of test 0, repetition
    /// 0, kill). `rep=warmup` is the older spelling of `phase=warmup`.
    fn parse_fault(spec: &str) -> Option<Fault> {
        let mut fault = Fault {
            phase: FaultPhase::Prefill,
            test: 0,
            rep: 0,
            mode: "kill".into(),
            once: None,
        };
        for part in spec.split(',') {
            let (k, v) = part.split_once('=')?;
            let v = v.trim();
            match k.trim() {
                "phase" => {
                    fault.phase = match v {
                        "start" => FaultPhase::Start,
                        "load" => FaultPhase::Load,
                        "warmup" => FaultPhase::Warmup,
                        "prefill" => FaultPhase::Prefill,
                        "decode" => FaultPhase::Decode,
                        "finish" => FaultPhase::Finish,
                        "shutdown" => FaultPhase::Shutdown,
                        _ => return None,
                    }
                }
                "test" => fault.test = v.parse().ok()?,
                "once" => fault.once = Some(v.into()),
                "rep" if v == "warmup" => fault.phase = FaultPhase::Warmup,
                "rep" => fault.rep = v.parse().ok()?,
                "mode" => match v {
                    "kill" | "exit" | "abort" | "hang" | "stop" | "oom" | "garbage" => {
                        fault.mode = v.to_string()
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some(fault)
    }

    impl Fault {
        /// The fault [`FAULT_ENV`] asks for, if any (a spec that does not parse is none).
        pub fn from_env() -> Option<Fault> {
            parse_fault(&std::env::var(FAULT_ENV).ok()?)
        }

        /// Strikes if this fault names `phase` (and, inside a test, this test and repetition).
        pub fn trigger(&self, phase: FaultPhase, test: u64, rep: u32) {
            strike(self, phase, test, rep)
        }
    }

    fn strike(f: &Fault, phase: FaultPhase, test: u64, rep: u32) {
        let here = match phase {
            FaultPhase::Start | FaultPhase::Load | FaultPhase::Finish | FaultPhase::Shutdown => {
                f.phase == phase
            }
            FaultPhase::Warmup => f.phase == phase && f.test == test,
            FaultPhase::Prefill | FaultPhase::Decode => {
                f.phase == phase && f.test == test && f.rep == rep
            }
        };
        if !here {
            return;
        }
        if let Some(marker) = &f.once {
            let first = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(marker)
                .is_ok();
            if !first {
                return;
            }
        }
        match f.mode.as_str() {
            "hang" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "exit" => std::process::exit(3),
            "abort" => std::process::abort(),
            "stop" => {
                // SAFETY: stopping ourselves, as SIGSTOP from outside would; SIGCONT resumes.
                unsafe { libc::raise(libc::SIGSTOP) };
            }
            "garbage" => {
                println!("this is not an engine event");
            }
            "oom" => {
                // Grows its resident memory by 16 MiB every 10 ms until something stops it
                // (the suite's memory limit, the kernel). Bounded at 8 GiB, then hangs.
                let mut held: Vec<Vec<u8>> = Vec::new();
                for _ in 0..512 {
                    held.push(vec![1u8; 16 << 20]);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            _ => {
                // SAFETY: sending a signal to ourselves.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn fault_spec_parses() {
            assert_eq!(
                parse_fault("test=3,rep=warmup,mode=hang"),
                Some(Fault {
                    phase: FaultPhase::Warmup,
                    test: 3,
                    rep: 0,
                    mode: "hang".into(),
                    once: None,
                })
            );
            let f = parse_fault("test=1,rep=2").unwrap();
            assert_eq!(
                (f.phase, f.rep, f.mode.as_str()),
                (FaultPhase::Prefill, 2, "kill")
            );
            let f = parse_fault("phase=decode,mode=oom").unwrap();
            assert_eq!(
                (f.phase, f.test, f.mode.as_str()),
                (FaultPhase::Decode, 0, "oom")
            );
            assert_eq!(parse_fault("bogus"), None);
            assert_eq!(parse_fault("phase=lunch"), None);
            assert_eq!(parse_fault("mode=explode"), None);
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
mod imp {
    use super::FaultPhase;

    /// No fault: this build cannot inject one.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Fault {}

    impl Fault {
        /// Always `None`: fault injection is not compiled in.
        pub fn from_env() -> Option<Fault> {
            None
        }

        pub fn trigger(&self, _phase: FaultPhase, _test: u64, _rep: u32) {
            match *self {}
        }
    }
}

pub use imp::Fault;
