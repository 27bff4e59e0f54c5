//! A throwaway PostgreSQL cluster for the tests: Debian's `postgresql` server, `initdb` into
//! a temporary directory and `pg_ctl` on a free port of 127.0.0.1, with password
//! (scram-sha-256) authentication over TCP. Run as the `postgres` user where the tests run
//! as root (the server refuses root). Stopped, immediately, when dropped. Shared by the
//! store's and the CLI's tests (`#[path]`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The password of the test role; tests check it never shows.
pub const PASSWORD: &str = "tb-Secret-8c1f";
pub const USER: &str = "tokbench";

pub struct PgCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
    /// Run the server's programs as this user (the tests run as root).
    as_user: Option<&'static str>,
}

/// The newest installed server's programs (`/usr/lib/postgresql/N/bin`).
fn bindir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl PgCluster {
    /// Starts a new cluster with a database `tokbench` owned by the role `tokbench`.
    pub fn start() -> PgCluster {
        let bindir =
            bindir().expect("needs a PostgreSQL server: apt-get install postgresql (.ci/run does)");
        let as_user = is_root().then_some("postgres");
        let dir = tempfile::tempdir().unwrap();
        let cluster = PgCluster {
            dir,
            bindir,
            port: free_port(),
            as_user,
        };
        let pwfile = cluster.dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if as_user.is_some() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let data = cluster.data();
        cluster.tool(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.start_server();
        cluster.create_db("tokbench");
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of the server's programs with `args`, to run as the postgres user when root.
    fn command(&self, name: &str, args: &[&str]) -> Command {
        let program = self.bindir.join(name);
        let mut cmd = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args)
            .env("PGPASSWORD", PASSWORD)
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs one of the server's programs (as the postgres user when root); panics with its
    /// output if it fails.
    fn tool(&self, name: &str, args: &[&str]) -> Output {
        let out = self.command(name, args).output().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// (Re)starts the server on its port, waiting until it accepts connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.tool(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (what a crash or a pulled cable looks like to a client).
    pub fn stop_server(&self) {
        self.tool(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    pub fn create_db(&self, name: &str) {
        self.tool(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                name,
            ],
        );
    }

    /// psql running `sql` on `db`, unaligned, stopping at the first error.
    fn psql_command(&self, db: &str, sql: &str) -> Command {
        let port = self.port.to_string();
        self.command(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                USER,
                "-d",
                db,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }

    /// Runs SQL through psql on `db`, returning its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_command(db, sql).output().unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// psql running `sql` on `db` in the background (a session that holds a lock, say);
    /// the caller waits for it or ends its session.
    pub fn psql_child(&self, db: &str, sql: &str) -> std::process::Child {
        self.psql_command(db, sql)
            .stdout(std::process::Stdio::null())
            // Its FATAL when the test ends its session is expected.
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The URL of database `db`, with the password.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = Command::new(match self.as_user {
            Some(_) => "runuser".into(),
            None => self.bindir.join("pg_ctl"),
        })
        .args(match self.as_user {
            Some(user) => vec![
                "-u".to_string(),
                user.to_string(),
                "--".to_string(),
                self.bindir.join("pg_ctl").display().to_string(),
            ],
            None => vec![],
        })
        .args([
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .output();
    }
}
