//! Remote targets over a real OpenSSH server: Debian's `sshd`, started by the test on a free
//! port of 127.0.0.1 with its own host key, config and authorized_keys in a temporary
//! directory (no system configuration touched), and the system's `ssh` client pointed at
//! it through `TOKBENCH_SSH="ssh -F <test config>"`. Targets are workdirs on this machine,
//! reached through that server; their tokbench is this build, through a wrapper that shares
//! the tests' model cache.

mod common;
#[path = "../../store/tests/common/pg.rs"]
mod pg;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A running sshd and the client configuration that reaches it.
struct Sshd {
    child: Child,
    /// `ssh -F <config>`: what TOKBENCH_SSH is set to.
    ssh: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (openssh-client) is installed: .ci/run installs openssh-server");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Starts sshd in `dir`. The client config names three hosts: `good` (the authorized
    /// key, the right host key), `wrongkey` (a key the server does not know) and
    /// `badhostkey` (known_hosts holds another host key).
    fn start(dir: &Path) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "needs sshd: apt-get install openssh-server (.ci/run does)"
        );
        for k in ["host_key", "client_key", "stranger_key", "other_host_key"] {
            keygen(&dir.join(k));
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd run as root wants its privilege separation directory, which a container
        // without systemd may lack: an empty directory, as the package's own unit makes.
        if nix::unistd::geteuid().is_root() {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let user = String::from_utf8(sh("id -un").stdout)
            .unwrap()
            .trim()
            .to_string();
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 MaxStartups 100\nMaxSessions 100\nLogLevel VERBOSE\n"
            ),
        )
        .unwrap();
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let other_pub = std::fs::read_to_string(dir.join("other_host_key.pub")).unwrap();
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .unwrap();
        std::fs::write(
            dir.join("wrong_known_hosts"),
            format!("[127.0.0.1]:{port} {other_pub}"),
        )
        .unwrap();
        let host = |alias: &str, key: &str, known: &str| {
            format!(
                "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/{key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/{known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n"
            )
        };
        std::fs::write(
            dir.join("ssh_config"),
            [
                host("good", "client_key", "known_hosts"),
                host("wrongkey", "stranger_key", "known_hosts"),
                host("badhostkey", "client_key", "wrong_known_hosts"),
            ]
            .concat(),
        )
        .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sshd did not start: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd {
            child,
            ssh: format!("ssh -F {}/ssh_config", dir.display()),
        }
    }

    /// The pids of sshd's per-connection children (one per live connection).
    fn connections(&self) -> Vec<i32> {
        let out = sh(&format!("pgrep -P {}", self.child.id()));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

/// A tokbench for the targets: this build, sharing the tests' model cache (sshd gives a
/// remote command a clean environment).
fn target_tokbench(dir: &Path) -> PathBuf {
    let p = dir.join("tokbench-on-target");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nexport TOKBENCH_CACHE='{}'\nexec '{}' \"$@\"\n",
            cache_dir().display(),
            bin().display()
        ),
    )
    .unwrap();
    sh(&format!("chmod 755 '{}'", p.display()));
    p
}

fn controller(sshd: &Sshd, args: &[&str]) -> Command {
    let mut c = tokbench(args);
    c.env("TOKBENCH_SSH", &sshd.ssh);
    c
}

/// `tokbench run SUITE --target TARGET --targets FILE --db DB` on the controller.
fn run_on(sshd: &Sshd, suite: &Path, target: &str, targets: &Path, db: &Path) -> Command {
    controller(
        sshd,
        &[
            "run",
            suite.to_str().unwrap(),
            "--target",
            target,
            "--targets",
            targets.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ],
    )
}

/// A targets file in `dir` naming `names`, each reached as `good` with the tokbench `tb`
/// and working in `dir/w{name}`.
fn good_targets(dir: &Path, tb: &Path, names: &[&str]) -> PathBuf {
    let text: String = names
        .iter()
        .map(|n| {
            format!(
                "[target.{n}]\nssh = \"good\"\ntokbench = \"{}\"\nworkdir = \"{}\"\n\n",
                tb.display(),
                dir.join(format!("w{n}")).display()
            )
        })
        .collect();
    let p = dir.join("targets.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn count(db: &Path, sql: &str) -> i64 {
    query(db, sql)[0]
        .values()
        .next()
        .and_then(|v| v.as_i64())
        .unwrap()
}

#[test]
fn two_targets_run_in_parallel_into_one_database_and_a_dropped_link_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let tb = target_tokbench(tmp.path());
    // A workdir whose name a shell would otherwise run.
    let hostile = tmp.path().join("it's a $(touch pwned) dir; touch pwned2");
    let targets = tmp.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[target.a]\nssh = \"good\"\ntokbench = \"{tb}\"\nworkdir = \"{wa}\"\n\n[target.b]\nssh = \"good\"\ntokbench = \"{tb}\"\nworkdir = '''{wb}'''\n",
            tb = tb.display(),
            wa = tmp.path().join("wa").display(),
            wb = hostile.display(),
        ),
    )
    .unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp16\", \"tg4\"", ""),
    );
    let db = tmp.path().join("ctrl.db");
    let (dbs, ts) = (db.to_str().unwrap(), targets.to_str().unwrap());

    // `targets` lists both, reachable, with this tokbench.
    let out = controller(&sshd, &["targets", "--targets", ts])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{listed}{}", stderr(&out));
    assert_eq!(listed.matches("\treachable\t").count(), 2, "{listed}");

    let out = controller(
        &sshd,
        &[
            "run",
            suite.to_str().unwrap(),
            "--target",
            "all",
            "--targets",
            ts,
            "--db",
            dbs,
            "--trigger",
            "x; touch pwned3",
        ],
    )
    .output()
    .unwrap();
    let e = stderr(&out);
    eprintln!("{e}");
    assert!(out.status.success(), "{e}");
    assert!(e.contains("[a] [2/2]") && e.contains("[b] [2/2]"), "{e}");
    // Both targets are this machine: said once, naming the other target.
    assert_eq!(
        e.matches("reports the same host name as target ").count(),
        1,
        "{e}"
    );
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !tmp.path().join(f).exists() && !Path::new(f).exists(),
            "{f} was made"
        );
    }
    // Two runs, one invocation, two cells each, every cell once.
    let runs = query(
        &db,
        "SELECT uuid, invocation, status, trigger FROM run ORDER BY id",
    );
    assert_eq!(runs.len(), 2);
    assert_ne!(s(&runs[0], "uuid"), s(&runs[1], "uuid"));
    assert_eq!(s(&runs[0], "invocation"), s(&runs[1], "invocation"));
    assert!(runs
        .iter()
        .all(|r| s(r, "status") == "ok" && s(r, "trigger") == "x; touch pwned3"));
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM result WHERE status = 'ok'"),
        4
    );
    // Each target's own database holds its run under the same UUID.
    let mut theirs: Vec<String> = [tmp.path().join("wa"), hostile.clone()]
        .iter()
        .flat_map(|w| query(&w.join("tokbench.db"), "SELECT uuid FROM run"))
        .map(|r| s(&r, "uuid").to_string())
        .collect();
    let mut ours: Vec<String> = runs.iter().map(|r| s(r, "uuid").to_string()).collect();
    theirs.sort();
    ours.sort();
    assert_eq!(theirs, ours);
    // `results --run latest` shows the whole invocation: both runs.
    let out = run_ok(&["results", "--db", dbs, "--format", "jsonl"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);

    // Now a longer run on one target, its connection killed once a cell is home.
    let long = write_suite(
        tmp.path(),
        "long.toml",
        &quick_suite(
            "\"Q8_0\"",
            "\"pp16\", \"tg4\", \"pp32\", \"tg8\", \"pp48\", \"tg12\"",
            "",
        ),
    );
    let run = run_on(&sshd, &long, "a", &targets, &db)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while count(&db, "SELECT COUNT(*) FROM result") < 5 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no cell came home");
        std::thread::sleep(Duration::from_millis(100));
    }
    let live = sshd.connections();
    assert!(!live.is_empty());
    for pid in live {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let out = run.wait_with_output().unwrap();
    let e = stderr(&out);
    eprintln!("{e}");
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("targets sync a"), "{e}");
    // The run goes on there; once it has finished, sync brings every cell home once.
    let theirs = tmp.path().join("wa/tokbench.db");
    let t0 = Instant::now();
    while count(&theirs, "SELECT COUNT(*) FROM run WHERE status = 'running'") > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "the target's run never finished"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..2 {
        let out = controller(
            &sshd,
            &["targets", "--targets", ts, "sync", "a", "--db", dbs],
        )
        .output()
        .unwrap();
        eprintln!("{}", stderr(&out));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM result"), 4 + 6);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM (SELECT run_id, cell_index FROM result GROUP BY 1, 2 HAVING COUNT(*) > 1)"),
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM run WHERE status != 'ok'"),
        0
    );

    // The controller itself killed mid-run: its ssh connections die with it (none
    // outlives it), the target's run goes on, and a sync after a restart stores every
    // cell once.
    let marker = format!("TOKBENCH_TEST_MARK=remote-{}", std::process::id());
    let (k, v) = marker.split_once('=').unwrap();
    let mut run = run_on(&sshd, &long, "a", &targets, &db)
        .env(k, v)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while count(&db, "SELECT COUNT(*) FROM result") < 11 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no cell came home");
        std::thread::sleep(Duration::from_millis(50));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let t0 = Instant::now();
    while !processes_with_env(&marker).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "ssh outlived the controller: {:?}",
            processes_with_env(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    while count(&theirs, "SELECT COUNT(*) FROM run WHERE status = 'running'") > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "the target's run never finished"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A run made on the target by hand, never streamed: it comes home with the sync,
    // named as measured on that target.
    let out = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        theirs.to_str().unwrap(),
        "--plain",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = controller(&sshd, &["targets", "--targets", ts, "sync", "--db", dbs])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM result"), 4 + 6 + 6 + 2);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM run WHERE target IS NULL"),
        0,
        "every run came from a target"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM (SELECT run_id, cell_index FROM result GROUP BY 1, 2 HAVING COUNT(*) > 1)"),
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM run WHERE status != 'ok'"),
        0
    );
    assert_eq!(integrity(&db), "ok");
}

#[test]
fn each_broken_target_is_one_line_and_the_others_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let tb = target_tokbench(tmp.path());
    // An older tokbench: answers `remote info` with an older schema.
    let old = tmp.path().join("old-tokbench");
    std::fs::write(
        &old,
        "#!/bin/sh\necho '{\"protocol\":1,\"version\":\"0.0.1\",\"schema\":20261129000001,\"os\":\"linux\",\"arch\":\"x86_64\",\"hostname\":\"h\",\"accel\":\"cpu\",\"hardware\":null,\"workdir\":\"/\",\"workdir_error\":null}'\n",
    )
    .unwrap();
    sh(&format!("chmod 755 '{}'", old.display()));
    let w = |n: &str| tmp.path().join(n).display().to_string();
    let closed = free_port();
    let targets = tmp.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[target.ok]\nssh = \"good\"\ntokbench = \"{tb}\"\nworkdir = \"{}\"\n\
             [target.down]\nssh = \"127.0.0.1\"\nport = {closed}\ntokbench = \"{tb}\"\n\
             [target.stranger]\nssh = \"wrongkey\"\ntokbench = \"{tb}\"\n\
             [target.spoofed]\nssh = \"badhostkey\"\ntokbench = \"{tb}\"\n\
             [target.old]\nssh = \"good\"\ntokbench = \"{}\"\n\
             [target.missing]\nssh = \"good\"\ntokbench = \"{}\"\n\
             [target.readonly]\nssh = \"good\"\ntokbench = \"{tb}\"\nworkdir = \"/proc/tokbench-cannot-be-here\"\n",
            w("wok"),
            old.display(),
            w("no-such-tokbench"),
            tb = tb.display(),
        ),
    )
    .unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"tg4\"", ""),
    );
    let db = tmp.path().join("ctrl.db");
    let out = run_on(&sshd, &suite, "all", &targets, &db)
        .output()
        .unwrap();
    let e = stderr(&out);
    eprintln!("{e}");
    assert_eq!(out.status.code(), Some(1), "{e}");
    let line = |name: &str| -> String {
        let prefix = format!("target {name}: ");
        let found: Vec<&str> = e.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(found.len(), 1, "one line for {name}: {e}");
        found[0].to_string()
    };
    assert!(line("down").contains("cannot reach"), "{e}");
    assert!(line("stranger").contains("authorized_keys"), "{e}");
    assert!(line("spoofed").contains("known_hosts"), "{e}");
    assert!(line("old").contains("targets install old"), "{e}");
    assert!(line("missing").contains("targets install missing"), "{e}");
    assert!(line("readonly").contains("cannot be written"), "{e}");
    // The good target's run finished and came home.
    assert!(e.contains("[ok] done"), "{e}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM result WHERE status = 'ok'"),
        1
    );
    // No password was asked for or printed: ssh ran in batch mode.
    assert!(!e.to_lowercase().contains("password:"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn check_re_measures_a_remote_suspect_on_its_target() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let tb = target_tokbench(tmp.path());
    let wa = tmp.path().join("wa");
    let targets = good_targets(tmp.path(), &tb, &["a"]);
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"tg4\"", "").replace("repetitions = 2", "repetitions = 5"),
    );
    let db = tmp.path().join("ctrl.db");
    let (dbs, ts) = (db.to_str().unwrap(), targets.to_str().unwrap());
    let out = run_on(&sshd, &suite, "a", &targets, &db).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // A history far faster than anything this machine does (a million tokens/s): the run is
    // a clear suspect, and so is its re-measurement. Ten times the run's own rate was not
    // enough: on a loaded CI machine the run measured 31 t/s and its re-measurement 359 t/s,
    // an improvement on the history. Noise is not what this test is about (tiny cells on a
    // loaded machine scatter widely): the noise gate is off.
    let measured = count(&db, "SELECT CAST(decode_tps AS INTEGER) FROM result") as f64;
    write_history(&db, 8, (measured * 10.0).max(1e6)).await;
    let out = controller(
        &sshd,
        &[
            "check",
            "--db",
            dbs,
            "--targets",
            ts,
            "--remeasure",
            "1",
            "--format",
            "json",
            "--noisy-cv",
            "1000000",
        ],
    )
    .output()
    .unwrap();
    let e = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{e}");
    // Re-measured on the target (its database has the re-measurement), stored here too,
    // marked as a re-check and as the target's.
    let recheck = query(
        &db,
        "SELECT uuid, target FROM run WHERE trigger LIKE 'recheck:%'",
    );
    assert_eq!(recheck.len(), 1, "{e}");
    assert_eq!(s(&recheck[0], "target"), "a");
    let theirs = query(
        &wa.join("tokbench.db"),
        "SELECT uuid FROM run WHERE trigger LIKE 'recheck:%'",
    );
    assert_eq!(s(&theirs[0], "uuid"), s(&recheck[0], "uuid"));
}

/// On a terminal each target has one live line, which ends on the target's last word;
/// the per-cell lines of `--plain` are not printed. A real pseudo-terminal, from util-linux's
/// `script` (Debian's bsdutils, on every Debian system).
#[test]
fn on_a_terminal_each_target_keeps_one_live_line() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let tb = target_tokbench(tmp.path());
    let targets = tmp.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[target.left]\nssh = \"good\"\ntokbench = \"{tb}\"\nworkdir = \"{d}/wl\"\n\n\
             [target.right]\nssh = \"good\"\ntokbench = \"{tb}\"\nworkdir = \"{d}/wr\"\n\n\
             [target.gone]\nssh = \"good\"\ntokbench = \"{d}/no-tokbench\"\n",
            tb = tb.display(),
            d = tmp.path().display(),
        ),
    )
    .unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp16\", \"tg4\"", ""),
    );
    let db = tmp.path().join("ctrl.db");
    let q = |p: &Path| format!("'{}'", p.display());
    let cmd = format!(
        "TOKBENCH_CACHE={} TOKBENCH_SSH='{}' {} run {} --target all --targets {} --db {}",
        q(&cache_dir()),
        sshd.ssh,
        q(&bin()),
        q(&suite),
        q(&targets),
        q(&db)
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) is installed");
    let screen = String::from_utf8_lossy(&out.stdout).to_string();
    // 1, the worst of the three: the target without tokbench never began.
    assert_eq!(out.status.code(), Some(1), "{screen}");
    for name in ["left", "right"] {
        // The last word, whole, once; no per-cell lines.
        assert_eq!(
            screen
                .matches(&format!("[{name}] done: 2 of 2 cells stored here (run "))
                .count(),
            1,
            "{screen}"
        );
        assert!(!screen.contains(&format!("[{name}] [1/2]")), "{screen}");
    }
    assert_eq!(
        screen.matches("target gone: no tokbench at").count(),
        1,
        "{screen}"
    );
    assert!(
        screen.contains("\ninvocation ") || screen.contains("\rinvocation "),
        "the closing line starts a line: {screen}"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM result WHERE status = 'ok'"),
        4
    );
}

/// A run that dies on the target before it finishes (here: the suite names a model file the
/// target lacks, so `tokbench run` there exits 2 at once) ends the command with the target's
/// own reason and exit code; the watcher on the target notices its run is gone (it reaps
/// it: a zombie would look alive for ever).
#[test]
fn a_run_the_target_refuses_ends_the_command_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let tb = target_tokbench(tmp.path());
    let targets = good_targets(tmp.path(), &tb, &["a"]);
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        "name = \"q\"\n[[model]]\npath = \"models/only-on-the-controller.gguf\"\n[workload]\ntests = [\"tg4\"]\nrepetitions = 1\n",
    );
    let db = tmp.path().join("ctrl.db");
    let mut run = run_on(&sshd, &suite, "a", &targets, &db)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = run.kill();
            panic!("the controller still waits on a run that ended on the target");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let e = stderr(&run.wait_with_output().unwrap());
    assert_eq!(status.code(), Some(2), "{e}");
    assert!(
        e.lines().any(
            |l| l.starts_with("target a: the run ended without finishing:")
                && l.contains("model file not found")
        ),
        "{e}"
    );
}

/// `run --target … --db postgres://…`: each target's cells come home into the local
/// journal as they are measured, and each target's run is then forwarded to the server,
/// once; the password is never printed.
#[test]
fn a_run_on_two_targets_into_postgres_forwards_each_targets_run() {
    let pg = pg::PgCluster::start();
    let url = pg.url("tokbench");
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let tb = target_tokbench(tmp.path());
    let targets = good_targets(tmp.path(), &tb, &["a", "b"]);
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"tg4\"", ""),
    );
    let journal = tmp.path().join("journal.db");
    let out = controller(
        &sshd,
        &[
            "run",
            suite.to_str().unwrap(),
            "--target",
            "all",
            "--targets",
            targets.to_str().unwrap(),
            "--db",
            &url,
            "--journal",
            journal.to_str().unwrap(),
            "--plain",
        ],
    )
    .output()
    .unwrap();
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(!e.contains(pg::PASSWORD), "{e}");
    assert_eq!(e.matches("forwarded to postgres://").count(), 2, "{e}");
    // Two runs, one per target, of one invocation; each cell once.
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT COUNT(*), COUNT(DISTINCT invocation), (SELECT COUNT(*) FROM result WHERE status = 'ok')
             FROM run WHERE status = 'ok'"
        ),
        "2|1|2"
    );
    assert_eq!(count(&journal, "SELECT COUNT(*) AS n FROM result"), 2);

    // A run made on target a by hand, never streamed: `targets sync` into the server brings
    // it home once (twice run, nothing doubles), named as measured on a, and the runs the
    // server had keep their targets.
    let theirs = tmp.path().join("wa/tokbench.db");
    let out = tokbench(&[
        "run",
        suite.to_str().unwrap(),
        "--db",
        theirs.to_str().unwrap(),
        "--plain",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for round in 0..2 {
        let out = controller(
            &sshd,
            &[
                "targets",
                "--targets",
                targets.to_str().unwrap(),
                "sync",
                "--db",
                &url,
            ],
        )
        .output()
        .unwrap();
        let e = stderr(&out);
        assert!(out.status.success(), "{e}");
        assert!(!e.contains(pg::PASSWORD), "{e}");
        let new = if round == 0 {
            "1 runs new"
        } else {
            "0 runs new"
        };
        assert!(e.contains(&format!("target a: {new}")), "{e}");
        assert!(e.contains("target b: 0 runs new"), "{e}");
    }
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT target, COUNT(*) FROM run GROUP BY target ORDER BY target"
        ),
        "a|2\nb|1"
    );
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT COUNT(*) FROM (SELECT run_id, cell_index FROM result GROUP BY 1, 2 HAVING COUNT(*) > 1) d"
        ),
        "0"
    );
    assert_eq!(pg.psql("tokbench", "SELECT COUNT(*) FROM result"), "3");
}
