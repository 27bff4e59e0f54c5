//! A PostgreSQL `--db` as a SQLite file. The commands that read results (`results`,
//! `report`, `compare`, `fit --db`) run their one set of queries on SQLite; given a server,
//! they read a snapshot of it: its runs copied, in one REPEATABLE READ, READ ONLY
//! transaction, into a SQLite file in a temporary directory that goes when the command
//! ends. What they show is one consistent moment of the server, however many runners
//! write meanwhile, and nothing is written there. The copy costs about 5 s per 100,000
//! results here (see docs/database.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use tokbench_store::{PgStore, RunFilter, StoreError};

use crate::exit::BadInput;

/// A results database as a SQLite file to read: the file given, or a snapshot of a server.
pub struct Local {
    path: PathBuf,
    shown: String,
    /// Holds the snapshot's directory until the command ends.
    _dir: Option<tempfile::TempDir>,
}

impl Local {
    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database as messages name it: the file, or the server's URL without its
    /// password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// `db` as a SQLite file: the file itself, or for a PostgreSQL URL a snapshot of every run
/// on the server. `command` names the command in the line that says what was read.
pub async fn local(db: &Path, command: &str) -> anyhow::Result<Local> {
    let Some(url) = db.to_str().filter(|d| tokbench_store::is_postgres_url(d)) else {
        return Ok(Local {
            path: db.to_path_buf(),
            shown: db.display().to_string(),
            _dir: None,
        });
    };
    let dir = tempdir()?;
    let path = dir.path().join("snapshot.db");
    let t0 = Instant::now();
    let runs = export(url, &RunFilter::default(), &path).await?;
    let shown = tokbench_store::redacted_url(url);
    eprintln!(
        "{command}: {runs} runs of {shown} read in one snapshot ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    Ok(Local {
        path,
        shown,
        _dir: Some(dir),
    })
}

/// A new, empty SQLite file in a temporary directory, for a command that writes a server
/// through one (`import`): it fills the file, then merges it into the server.
pub fn scratch(url: &str) -> anyhow::Result<Local> {
    let dir = tempdir()?;
    Ok(Local {
        path: dir.path().join("scratch.db"),
        shown: tokbench_store::redacted_url(url),
        _dir: Some(dir),
    })
}

fn tempdir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("tokbench-snapshot-")
        .tempdir()
        .context("cannot create a temporary directory for the server's snapshot ($TMPDIR)")
}

/// The PostgreSQL database at `url`, opened to write (migrated): one at a newer schema than
/// this tokbench is bad input (exit 2), as a SQLite file's is.
pub async fn open_server(url: &str) -> anyhow::Result<PgStore> {
    PgStore::open(url).await.map_err(|e| match e {
        StoreError::NewerSchema { .. } => anyhow::Error::new(BadInput(e.to_string())),
        other => anyhow::Error::new(other),
    })
}

/// The runs `filter` picks out of the PostgreSQL database at `url`, into a new SQLite file
/// at `out` (removed again when the copy fails). Returns the runs copied.
pub async fn export(url: &str, filter: &RunFilter, out: &Path) -> anyhow::Result<u64> {
    let server = PgStore::open_read_only(url).await.map_err(|e| match e {
        StoreError::NoSchema { .. }
        | StoreError::OlderSchema { .. }
        | StoreError::NewerSchema { .. } => anyhow::Error::new(BadInput(e.to_string())),
        other => anyhow::Error::new(other),
    })?;
    let written = server.export_sqlite(filter, out).await;
    server.close().await;
    written.map_err(|e| {
        remove_db(out);
        e.into()
    })
}

/// A SQLite file and its -wal and -shm.
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}
