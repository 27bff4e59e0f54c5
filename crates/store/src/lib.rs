//! tokbench-store: the only crate that speaks SQL. It owns the migrations ([`MIGRATOR`]),
//! opens databases the way every command needs them (WAL, foreign keys, busy timeout; or
//! strictly read-only, never migrating, for the commands that only read), writes a run cell
//! by cell — each result in its own transaction, so a crash loses at most the cell in
//! flight — and reads results back, decoding each result's [`tokbench_core::SeriesKey`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Column, Row, TypeInfo, ValueRef};
use tokbench_core::{BackendBuild, CellResult, HostInfo, MetricSource, ModelRecord, ResultStatus};

mod columns;
mod merge;
mod points;
mod readonly;
mod series;

use columns::Insert;
pub use merge::MergeReport;
pub use points::{PointFilter, StoredPoint};
pub use series::{NewVerdict, SeriesColumn, SeriesResult};
pub use tokbench_core::fit::FitInput;

/// Every migration in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// The SQL row id of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RunId(pub i64);
/// The SQL row id of a backend build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct BuildId(pub i64);
/// The SQL row id of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ModelId(pub i64);
/// The SQL row id of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ResultId(pub i64);

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("database {path} does not exist")]
    Missing { path: PathBuf },
    #[error("{path} is not a tokbench database (it has no migration history)")]
    NotTokbench { path: PathBuf },
    #[error("database {path} has a newer schema (migration {version} is unknown to this tokbench); upgrade tokbench")]
    NewerSchema { path: PathBuf, version: i64 },
    #[error("database {path} is at schema {version}, older than this tokbench's {latest}; a read-only command does not migrate it: run `tokbench migrate --db {path}` first")]
    OlderSchema {
        path: PathBuf,
        version: i64,
        latest: i64,
    },
    #[error("cannot migrate database {path}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("cannot merge {path} into itself")]
    MergeIntoItself { path: PathBuf },
    #[error("query refused: {0}")]
    Refused(String),
    #[error("{what}")]
    Sql {
        what: String,
        #[source]
        source: sqlx::Error,
    },
}

fn sql(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Sql { what, source }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Ok,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [Self::Running, Self::Ok, Self::Failed, Self::Interrupted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = tokbench_core::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| tokbench_core::UnknownName {
                what: "run status",
                value: s.to_string(),
            })
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub uuid: String,
    pub started_at: String,
    pub suite_name: String,
    pub suite_path: Option<String>,
    pub config_text: Option<String>,
    pub tokbench_version: String,
    pub trigger: String,
    pub cells_total: usize,
    pub source: Option<String>,
    /// The hardware as the catalog names it (`2× GeForce RTX 3090`), when known.
    pub hardware: Option<String>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: RunId,
    pub uuid: String,
    pub suite_path: Option<String>,
    pub config_text: Option<String>,
    pub status: RunStatus,
}

/// One row of `v_results`, as `tokbench results` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    pub run_uuid: String,
    pub started_at: String,
    pub host: String,
    pub backend: String,
    pub model: String,
    pub quant: Option<String>,
    pub test: String,
    pub n_threads: Option<i64>,
    pub status: ResultStatus,
    pub error: Option<String>,
    pub prefill_tps: Option<f64>,
    pub prefill_tps_sd: Option<f64>,
    pub decode_tps: Option<f64>,
    pub decode_tps_sd: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub rss_peak_bytes: Option<i64>,
    pub metric_source: MetricSource,
    pub n_reps: i64,
    /// Parallel request streams (server backends).
    pub concurrency: Option<i64>,
    pub ttft_p99_ms: Option<f64>,
    /// Aggregate generated tokens/s over all streams (server backends, client figures).
    pub output_tps: Option<f64>,
}

/// A database's health (see [`Store::inspect`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DbHealth {
    pub schema_version: Option<i64>,
    /// The newest migration this tokbench knows.
    pub latest_version: i64,
    /// Migrations this tokbench would apply on the next write (`VERSION description`).
    pub pending: Vec<String>,
    /// Written by a newer tokbench.
    pub newer: bool,
    /// `PRAGMA integrity_check`: `ok`, or SQLite's findings.
    pub integrity: String,
    /// Runs still marked running: (uuid, started_at).
    pub running: Vec<(String, String)>,
    pub runs: i64,
    pub results: i64,
}

/// A row of [`Store::fit_inputs`]'s query as the [`FitInput`] it describes.
fn fit_input(row: &sqlx::sqlite::SqliteRow) -> Result<FitInput, sqlx::Error> {
    Ok(FitInput {
        model: row.try_get("model")?,
        architecture: row.try_get("architecture")?,
        quant: row.try_get("quant")?,
        test: row.try_get("test")?,
        n_prompt: row.try_get("n_prompt")?,
        n_gen: row.try_get("n_gen")?,
        n_depth: row.try_get("n_depth")?,
        n_ubatch: row.try_get("n_ubatch")?,
        flash_attn: row.try_get("flash_attn")?,
        type_k: row.try_get("type_k")?,
        type_v: row.try_get("type_v")?,
        shape_json: row.try_get("shape_json")?,
        rss_peak_bytes: row.try_get("rss_peak_bytes")?,
        accel: row.try_get("accel")?,
        model_buffer_bytes: row.try_get("model_buffer_bytes")?,
        repack_buffer_bytes: row.try_get("repack_buffer_bytes")?,
        kv_buffer_bytes: row.try_get("kv_buffer_bytes")?,
        compute_buffer_bytes: row.try_get("compute_buffer_bytes")?,
        output_buffer_bytes: row.try_get("output_buffer_bytes")?,
    })
}

/// The result of a read-only query: column names and JSON values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// An open results database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

/// An exclusive advisory lock on the database file while its schema is brought up to date
/// (released when dropped: the descriptor closes). Where it cannot be taken (no flock on
/// this platform or file system) migrating goes on unlocked, as before.
struct MigrationLock {
    _file: Option<std::fs::File>,
}

impl MigrationLock {
    async fn acquire(path: &Path) -> MigrationLock {
        let path = path.to_path_buf();
        let file = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).ok()?;
            #[cfg(unix)]
            {
                use std::os::fd::AsRawFd;
                // Another process migrating holds it for seconds at most; a stuck one for
                // two minutes, after which migrating goes on unlocked (SQLite's own locking
                // and busy timeout still apply) rather than hanging.
                let deadline = std::time::Instant::now() + Duration::from_secs(120);
                loop {
                    // SAFETY: flock on a descriptor we own, non-blocking.
                    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                    if r == 0 {
                        break;
                    }
                    if std::io::Error::last_os_error().raw_os_error() != Some(libc::EWOULDBLOCK)
                        || std::time::Instant::now() >= deadline
                    {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Some(file)
        })
        .await
        .ok()
        .flatten();
        MigrationLock { _file: file }
    }
}

impl Store {
    /// Brings an existing database's schema up to date (`tokbench migrate`): returns the
    /// migrations applied, `version description` each, none when it was current.
    pub async fn migrate(path: &Path) -> Result<Vec<String>, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing { path: path.into() });
        }
        let ro = Self::connect_read_only(path).await?;
        let applied = ro.applied_versions().await;
        let pending = ro.pending_migrations().await;
        let objects = ro.schema_objects().await;
        ro.close().await;
        // Another program's SQLite file is not made into a tokbench database. An empty one
        // (a first open interrupted before its first migration committed) is ours to finish.
        if applied?.is_empty() && objects? > 0 {
            return Err(StoreError::NotTokbench { path: path.into() });
        }
        let pending = pending?;
        // `open` refuses a newer schema and applies what is pending.
        Store::open(path).await?.close().await;
        Ok(pending)
    }

    /// The migrations this tokbench knows that `self` lacks, `version description` each.
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let applied = self.applied_versions().await?;
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// How many tables, indexes, views and triggers `self` holds (0 for an empty file).
    async fn schema_objects(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sqlite_master")
            .fetch_one(&self.pool)
            .await
            .map_err(sql("inspect the database"))?;
        Ok(n)
    }

    /// The migrations applied to `self` (none when it has no migration table).
    async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let (tables,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(sql("read the applied migrations"))?;
        if tables == 0 {
            return Ok(Vec::new());
        }
        let applied: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.pool)
                .await
                .map_err(sql("read the applied migrations"))?;
        Ok(applied.into_iter().map(|(v,)| v).collect())
    }

    /// Opens (creating if needed) a database for writing and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed result survives a power loss or reboot, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(60));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?;
        let store = Store {
            pool,
            path: path.to_path_buf(),
        };
        // Two tokbench processes opening a new database at once would both apply the first
        // migration ("table hardware already exists"): one migrates at a time, under an
        // advisory lock on the file (flock, apart from SQLite's own fcntl locks).
        let _lock = MigrationLock::acquire(path).await;
        store.check_not_newer().await?;
        let migrate_err = |source| StoreError::Migrate {
            path: path.into(),
            source,
        };
        // Foreign keys are off while migrating: a migration that rebuilds a table (SQLite
        // changes a CHECK constraint no other way) drops the old one, and with foreign keys
        // on that drop would cascade to every row referring to it. The pragma cannot change
        // inside a transaction, so it is set on the migrating connection around the run.
        let mut conn = store
            .pool
            .acquire()
            .await
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?;
        let pragma = |on: bool| format!("PRAGMA foreign_keys = {}", if on { "ON" } else { "OFF" });
        sqlx::query(&pragma(false))
            .execute(&mut *conn)
            .await
            .map_err(|e| migrate_err(sqlx::migrate::MigrateError::Execute(e)))?;
        let ran = MIGRATOR.run(&mut *conn).await;
        let restored = sqlx::query(&pragma(true)).execute(&mut *conn).await;
        ran.map_err(migrate_err)?;
        restored.map_err(|e| migrate_err(sqlx::migrate::MigrateError::Execute(e)))?;
        drop(conn);
        Ok(store)
    }

    /// Opens an existing database read-only: no statement can write to it or attach
    /// another database (an SQLite authorizer denies them), and it is never migrated: a
    /// database at an older schema is refused with [`StoreError::OlderSchema`].
    pub async fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing { path: path.into() });
        }
        let store = Self::connect_read_only(path).await?;
        let (tables,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&store.pool)
        .await
        .map_err(|source| StoreError::Open {
            path: path.into(),
            source,
        })?;
        if tables == 0 {
            return Err(StoreError::NotTokbench { path: path.into() });
        }
        // Never written here, not even to migrate: an older schema is refused with the
        // command that brings it up to date, a newer one with the advice to upgrade.
        if let Err(e) = store.check_not_newer().await {
            store.close().await;
            return Err(e);
        }
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let version = store.schema_version().await?.unwrap_or(0);
        if version < latest {
            store.close().await;
            return Err(StoreError::OlderSchema {
                path: path.into(),
                version,
                latest,
            });
        }
        Ok(store)
    }

    async fn connect_read_only(path: &Path) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(60));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    readonly::install_authorizer(conn).await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?;
        Ok(Store {
            pool,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What `tokbench doctor` reports about a database, read-only and without migrating
    /// it: its schema against this tokbench's, the migrations it lacks, SQLite's integrity
    /// check, and runs left `running` (a tokbench that was killed; `--resume` finishes them).
    pub async fn inspect(path: &Path) -> Result<DbHealth, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing { path: path.into() });
        }
        let store = Self::connect_read_only(path).await?;
        let (tables,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&store.pool)
        .await
        .map_err(sql("inspect the database"))?;
        if tables == 0 {
            return Err(StoreError::NotTokbench { path: path.into() });
        }
        let applied = store.applied_versions().await?;
        let pending = store.pending_migrations().await?;
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let newer = applied.iter().any(|v| *v > latest);
        let integrity = store.integrity_check().await?;
        let running: Vec<(String, String)> = if pending.is_empty() {
            sqlx::query_as(
                "SELECT uuid, started_at FROM run WHERE status = 'running' ORDER BY started_at",
            )
            .fetch_all(&store.pool)
            .await
            .map_err(sql("read unfinished runs"))?
        } else {
            Vec::new()
        };
        let (runs, results): (i64, i64) =
            sqlx::query_as("SELECT (SELECT COUNT(*) FROM run), (SELECT COUNT(*) FROM result)")
                .fetch_one(&store.pool)
                .await
                .map_err(sql("count runs"))?;
        store.close().await;
        Ok(DbHealth {
            schema_version: applied.iter().copied().max(),
            latest_version: latest,
            pending,
            newer,
            integrity,
            running,
            runs,
            results,
        })
    }

    /// Refuses a database that a newer tokbench has migrated past what we know.
    async fn check_not_newer(&self) -> Result<(), StoreError> {
        let exists: Option<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("read the schema version"))?;
        if exists.is_none() {
            return Ok(());
        }
        let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.pool)
            .await
            .map_err(sql("read the schema version"))?;
        for (version,) in applied {
            if !MIGRATOR.iter().any(|m| m.version == version) {
                return Err(StoreError::NewerSchema {
                    path: self.path.clone(),
                    version,
                });
            }
        }
        Ok(())
    }

    /// The newest migration applied, i.e. the schema version.
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let v: Option<(i64,)> =
            sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(sql("read the schema version"))?;
        Ok(v.map(|(v,)| v))
    }

    /// Records the host (once per identity) and a new run on it.
    pub async fn begin_run(&self, run: &NewRun, host: &HostInfo) -> Result<RunId, StoreError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin a run"))?;
        let HostInfo {
            hostname,
            cpu_model,
            cpu_cores_logical,
            cpu_cores_physical,
            memory_total_bytes,
            os,
            kernel,
            arch,
            gpus,
        } = host;
        let gpus_json = serde_json::to_string(gpus).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO host (identity, hostname, cpu_model, cpu_cores_logical, cpu_cores_physical,
                               memory_total_bytes, os, kernel, arch, gpus_json, first_seen_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (identity) DO UPDATE SET os = excluded.os, kernel = excluded.kernel",
        )
        .bind(host.identity())
        .bind(hostname)
        .bind(cpu_model)
        .bind(cpu_cores_logical)
        .bind(cpu_cores_physical)
        .bind(memory_total_bytes.map(|b| b as i64))
        .bind(os)
        .bind(kernel)
        .bind(arch)
        .bind(gpus_json)
        .bind(&run.started_at)
        .execute(&mut *tx)
        .await
        .map_err(sql("record the host"))?;
        let (host_id,): (i64,) = sqlx::query_as("SELECT id FROM host WHERE identity = ?")
            .bind(host.identity())
            .fetch_one(&mut *tx)
            .await
            .map_err(sql("record the host"))?;
        let id = sqlx::query(
            "INSERT INTO run (uuid, started_at, suite_name, suite_path, config_text,
                              tokbench_version, trigger, status, cells_total, host_id, source,
                              hardware)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
        )
        .bind(&run.uuid)
        .bind(&run.started_at)
        .bind(&run.suite_name)
        .bind(&run.suite_path)
        .bind(&run.config_text)
        .bind(&run.tokbench_version)
        .bind(&run.trigger)
        .bind(run.cells_total as i64)
        .bind(host_id)
        .bind(&run.source)
        .bind(&run.hardware)
        .execute(&mut *tx)
        .await
        .map_err(sql("record the run"))?
        .last_insert_rowid();
        tx.commit().await.map_err(sql("record the run"))?;
        Ok(RunId(id))
    }

    /// Marks a run finished.
    pub async fn finish_run(
        &self,
        run: RunId,
        status: RunStatus,
        finished_at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE run SET status = ?, finished_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(finished_at)
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(sql("finish the run"))?;
        Ok(())
    }

    /// A stored run, by UUID.
    pub async fn run_by_uuid(&self, uuid: &str) -> Result<Option<StoredRun>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            uuid: String,
            suite_path: Option<String>,
            config_text: Option<String>,
            status: String,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, uuid, suite_path, config_text, status FROM run WHERE uuid = ?",
        )
        .bind(uuid)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("look up the run"))?;
        let Some(Row {
            id,
            uuid,
            suite_path,
            config_text,
            status,
        }) = row
        else {
            return Ok(None);
        };
        let status = status.parse::<RunStatus>().map_err(|e| StoreError::Sql {
            what: format!("read run {uuid}"),
            source: sqlx::Error::Decode(Box::new(e)),
        })?;
        Ok(Some(StoredRun {
            id: RunId(id),
            uuid,
            suite_path,
            config_text,
            status,
        }))
    }

    /// The cell indices of a run that have a stored result.
    pub async fn stored_cells(&self, run: RunId) -> Result<Vec<usize>, StoreError> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT DISTINCT cell_index FROM result WHERE run_id = ? ORDER BY 1")
                .bind(run.0)
                .fetch_all(&self.pool)
                .await
                .map_err(sql("read the run's cells"))?;
        Ok(rows.into_iter().map(|(i,)| i as usize).collect())
    }

    /// Removes a run's results that were cut short by an interrupt, so a resume measures
    /// those cells again.
    pub async fn delete_unfinished_results(&self, run: RunId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM result WHERE run_id = ? AND status = 'interrupted'")
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(sql("clear interrupted results"))?;
        Ok(done.rows_affected())
    }

    /// Marks a run running again (for a resume).
    pub async fn reopen_run(&self, run: RunId) -> Result<(), StoreError> {
        sqlx::query("UPDATE run SET status = 'running', finished_at = NULL WHERE id = ?")
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(sql("reopen the run"))?;
        Ok(())
    }

    /// The id of a backend build, recorded on first sight.
    pub async fn backend_build(&self, b: &BackendBuild) -> Result<BuildId, StoreError> {
        let BackendBuild {
            name,
            version,
            commit,
            accel,
            flags,
        } = b;
        sqlx::query(
            "INSERT INTO backend_build (name, version, commit_sha, accel, flags)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(version)
        .bind(commit)
        .bind(accel)
        .bind(flags)
        .execute(&self.pool)
        .await
        .map_err(sql("record the backend build"))?;
        let (id,): (i64,) = sqlx::query_as(
            "SELECT id FROM backend_build WHERE name = ? AND version = ?
               AND IFNULL(commit_sha, '') = IFNULL(?, '') AND accel = ? AND flags = ?",
        )
        .bind(name)
        .bind(version)
        .bind(commit)
        .bind(accel)
        .bind(flags)
        .fetch_one(&self.pool)
        .await
        .map_err(sql("record the backend build"))?;
        Ok(BuildId(id))
    }

    /// The id of a model, recorded on first sight.
    pub async fn model(&self, m: &ModelRecord) -> Result<ModelId, StoreError> {
        let ModelRecord {
            name,
            architecture,
            quant,
            n_params,
            file_bytes,
            file_sha256,
            shape_json,
            origin,
        } = m;
        sqlx::query(
            "INSERT INTO model (name, architecture, quant, n_params, file_bytes, file_sha256,
                                shape_json, origin)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_sha256, name) DO NOTHING",
        )
        .bind(name)
        .bind(architecture)
        .bind(quant)
        .bind(*n_params as i64)
        .bind(*file_bytes as i64)
        .bind(file_sha256)
        .bind(shape_json)
        .bind(origin)
        .execute(&self.pool)
        .await
        .map_err(sql("record the model"))?;
        let (id,): (i64,) =
            sqlx::query_as("SELECT id FROM model WHERE file_sha256 = ? AND name = ?")
                .bind(file_sha256)
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(sql("record the model"))?;
        Ok(ModelId(id))
    }

    /// Stores one cell's result and its repetitions in one transaction.
    pub async fn insert_result(
        &self,
        run: RunId,
        build: BuildId,
        model: Option<ModelId>,
        model_name: &str,
        repetitions_expected: u32,
        r: &CellResult,
    ) -> Result<ResultId, StoreError> {
        let ids = self
            .insert_results(run, build, model, model_name, repetitions_expected, &[r])
            .await?;
        Ok(ids[0])
    }

    /// Stores the results of one cell (a server cell's client and server figures) in one
    /// transaction: a crash stores both or neither, so a resumed run never finds the cell
    /// half stored.
    pub async fn insert_results(
        &self,
        run: RunId,
        build: BuildId,
        model: Option<ModelId>,
        model_name: &str,
        repetitions_expected: u32,
        rs: &[&CellResult],
    ) -> Result<Vec<ResultId>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(sql("store a result"))?;
        let mut ids = Vec::with_capacity(rs.len());
        for r in rs {
            ids.push(
                insert_one(
                    &mut tx,
                    run,
                    build,
                    model,
                    model_name,
                    repetitions_expected,
                    r,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(sql("store a result"))?;
        Ok(ids)
    }
}

async fn insert_one(
    tx: &mut sqlx::SqliteConnection,
    run: RunId,
    build: BuildId,
    model: Option<ModelId>,
    model_name: &str,
    repetitions_expected: u32,
    r: &CellResult,
) -> Result<ResultId, StoreError> {
    {
        let CellResult {
            cell_index,
            test,
            params,
            status,
            error,
            metric_source,
            load_ms,
            rss_peak_bytes,
            allocated,
            telemetry,
            repetitions,
            serving,
            backend_json,
            log_tail,
            started_at,
            duration_ms,
        } = r;
        // A server backend's cells (client and server figures) are `serve` workloads: the
        // same pp/tg label means a request, not an engine test.
        let kind = if serving.is_some() || *metric_source != tokbench_core::MetricSource::Engine {
            "serve"
        } else {
            "bench"
        };
        let alloc = allocated.unwrap_or_default();
        let phase = |name: &str| {
            telemetry
                .as_ref()
                .and_then(|t| t.phase(name))
                .cloned()
                .unwrap_or_default()
        };
        let (t_prefill, t_decode) = (phase("prefill"), phase("decode"));
        let peak = |f: fn(&tokbench_core::record::PhaseFigures) -> Option<u64>| {
            telemetry
                .as_ref()
                .and_then(|t| t.phases.iter().filter_map(f).max())
        };
        let telemetry_json = telemetry.as_ref().map(|t| {
            serde_json::json!({"phases": t.phases, "unavailable": t.unavailable}).to_string()
        });
        let sv = serving.as_ref().map(|s| &s.summary);
        sqlx::query(
            "INSERT INTO workload (kind, label, n_prompt, n_gen, n_depth) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (kind, n_prompt, n_gen, n_depth) DO NOTHING",
        )
        .bind(kind)
        .bind(test.label())
        .bind(test.n_prompt)
        .bind(test.n_gen)
        .bind(test.n_depth)
        .execute(&mut *tx)
        .await
        .map_err(sql("store a result's workload"))?;
        let (workload_id,): (i64,) = sqlx::query_as(
            "SELECT id FROM workload WHERE kind = ? AND n_prompt = ? AND n_gen = ? AND n_depth = ?",
        )
        .bind(kind)
        .bind(test.n_prompt)
        .bind(test.n_gen)
        .bind(test.n_depth)
        .fetch_one(&mut *tx)
        .await
        .map_err(sql("store a result's workload"))?;
        let summary = r.summary();
        let telemetry_method = t_decode
            .energy_method
            .clone()
            .or(t_prefill.energy_method.clone());
        let id = Insert::into("result")
            .set("run_id", run.0)
            .set("cell_index", *cell_index as i64)
            .set("backend_build_id", build.0)
            .set("model_id", model.map(|m| m.0))
            .set("model_name", model_name)
            .set("workload_id", workload_id)
            .set("n_threads", params.n_threads)
            .set("n_batch", params.n_batch)
            .set("n_ubatch", params.n_ubatch)
            .set("n_gpu_layers", params.n_gpu_layers)
            .set("flash_attn", params.flash_attn)
            .set("type_k", params.type_k.name())
            .set("type_v", params.type_v.name())
            .set("use_mmap", params.use_mmap)
            .set("status", status.as_str())
            .set("error", error)
            .set("metric_source", metric_source.as_str())
            .set("repetitions_expected", repetitions_expected)
            .set("prefill_tps", summary.prefill_tps)
            .set("prefill_tps_sd", summary.prefill_tps_sd)
            .set("decode_tps", summary.decode_tps)
            .set("decode_tps_sd", summary.decode_tps_sd)
            .set("ttft_ms", summary.ttft_ms)
            .set("ttft_ms_sd", summary.ttft_ms_sd)
            .set("load_ms", *load_ms)
            .set("rss_peak_bytes", *rss_peak_bytes)
            .set("model_buffer_bytes", alloc.model_bytes)
            .set("repack_buffer_bytes", alloc.repack_bytes)
            .set("kv_buffer_bytes", alloc.kv_bytes)
            .set("compute_buffer_bytes", alloc.compute_bytes)
            .set("output_buffer_bytes", alloc.output_bytes)
            .set("log_tail", log_tail)
            .set("started_at", started_at.as_str())
            .set("duration_ms", *duration_ms)
            .set("vram_peak_bytes", peak(|p| p.vram_peak_bytes))
            .set("vram_proc_peak_bytes", peak(|p| p.vram_proc_peak_bytes))
            .set("prefill_power_avg_w", t_prefill.power_avg_w)
            .set("prefill_power_peak_w", t_prefill.power_peak_w)
            .set("prefill_energy_j", t_prefill.energy_j)
            .set("prefill_tokens_per_joule", t_prefill.tokens_per_joule)
            .set("decode_power_avg_w", t_decode.power_avg_w)
            .set("decode_power_peak_w", t_decode.power_peak_w)
            .set("decode_energy_j", t_decode.energy_j)
            .set("decode_tokens_per_joule", t_decode.tokens_per_joule)
            .set("energy_method", telemetry_method)
            .set("telemetry_json", telemetry_json)
            .set("concurrency", sv.and_then(|s| s.concurrency))
            .set("request_rate", sv.and_then(|s| s.request_rate))
            .set("n_requests", sv.map(|s| s.n_requests))
            .set("n_requests_failed", sv.map(|s| s.n_failed))
            .set("ttft_p50_ms", sv.and_then(|s| s.ttft_ms.p50))
            .set("ttft_p90_ms", sv.and_then(|s| s.ttft_ms.p90))
            .set("ttft_p99_ms", sv.and_then(|s| s.ttft_ms.p99))
            .set("tpot_ms", sv.and_then(|s| s.tpot_ms.mean))
            .set("tpot_p50_ms", sv.and_then(|s| s.tpot_ms.p50))
            .set("tpot_p90_ms", sv.and_then(|s| s.tpot_ms.p90))
            .set("tpot_p99_ms", sv.and_then(|s| s.tpot_ms.p99))
            .set("itl_ms", sv.and_then(|s| s.itl_ms.mean))
            .set("itl_p50_ms", sv.and_then(|s| s.itl_ms.p50))
            .set("itl_p90_ms", sv.and_then(|s| s.itl_ms.p90))
            .set("itl_p99_ms", sv.and_then(|s| s.itl_ms.p99))
            .set("e2e_ms", sv.and_then(|s| s.e2e_ms.mean))
            .set("e2e_p50_ms", sv.and_then(|s| s.e2e_ms.p50))
            .set("e2e_p90_ms", sv.and_then(|s| s.e2e_ms.p90))
            .set("e2e_p99_ms", sv.and_then(|s| s.e2e_ms.p99))
            .set("request_throughput", sv.and_then(|s| s.request_throughput))
            .set("output_tps", sv.and_then(|s| s.output_tps))
            .set("backend_json", backend_json)
            .execute(&mut *tx)
            .await
            .map_err(sql("store a result"))?
            .last_insert_rowid();
        for rq in serving.iter().flat_map(|s| &s.requests) {
            sqlx::query(
                "INSERT INTO request (result_id, idx, start_ms, ttft_ms, e2e_ms, tpot_ms, n_prompt, n_gen,
                    itl_json, server_json, error)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(rq.index)
            .bind(rq.start_ms)
            .bind(rq.ttft_ms)
            .bind(rq.e2e_ms)
            .bind(rq.tpot_ms())
            .bind(rq.n_prompt)
            .bind(rq.n_gen)
            .bind(serde_json::to_string(&rq.itl_ms).unwrap_or_else(|_| "[]".into()))
            .bind(rq.server.as_ref().and_then(|t| serde_json::to_string(t).ok()))
            .bind(&rq.error)
            .execute(&mut *tx)
            .await
            .map_err(sql("store a request"))?;
        }
        for (i, rep) in repetitions.iter().enumerate() {
            sqlx::query(
                "INSERT INTO repetition (result_id, rep, prefill_tps, decode_tps, ttft_ms, prompt_ms, gen_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(i as i64)
            .bind(rep.prefill_tps)
            .bind(rep.decode_tps)
            .bind(rep.ttft_ms)
            .bind(rep.prompt_ms)
            .bind(rep.gen_ms)
            .execute(&mut *tx)
            .await
            .map_err(sql("store a repetition"))?;
        }
        for t in telemetry.iter().flat_map(|t| &t.samples) {
            sqlx::query(
                "INSERT INTO telemetry_sample (result_id, t_ms, phase, metric, value, source)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(t.t_ms)
            .bind(&t.phase)
            .bind(&t.metric)
            .bind(t.value)
            .bind(&t.source)
            .execute(&mut *tx)
            .await
            .map_err(sql("store a telemetry sample"))?;
        }
        Ok(ResultId(id))
    }
}

impl Store {
    /// The results of the newest run (or of the run `run_uuid`), in cell order.
    pub async fn results(&self, run_uuid: Option<&str>) -> Result<Vec<ResultRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT v.* FROM v_results v JOIN result r ON r.id = v.result_id
             WHERE v.run_uuid = COALESCE(?, (SELECT uuid FROM run ORDER BY started_at DESC, id DESC LIMIT 1))
             ORDER BY r.cell_index, v.metric_source",
        )
        .bind(run_uuid)
        .fetch_all(&self.pool)
        .await
        .map_err(sql("read results"))?;
        rows.iter().map(result_row).collect()
    }

    /// What `tokbench fit --db` needs of each ok result of the newest run: the model's
    /// shape, the cell's context settings and the memory it took.
    pub async fn fit_inputs(&self) -> Result<Vec<FitInput>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.model_name AS model, m.architecture, m.quant, w.label AS test,
                    w.n_prompt, w.n_gen, w.n_depth, r.n_ubatch, r.flash_attn, r.type_k, r.type_v,
                    m.shape_json, r.rss_peak_bytes, bb.accel, r.model_buffer_bytes, r.repack_buffer_bytes,
                    r.kv_buffer_bytes, r.compute_buffer_bytes, r.output_buffer_bytes
             FROM result r
             JOIN model m ON m.id = r.model_id
             JOIN workload w ON w.id = r.workload_id
             JOIN backend_build bb ON bb.id = r.backend_build_id
             WHERE r.status = 'ok'
               AND r.run_id = (SELECT id FROM run ORDER BY started_at DESC, id DESC LIMIT 1)
             ORDER BY r.cell_index, r.metric_source",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql("read fit inputs"))?;
        rows.iter()
            .map(fit_input)
            .collect::<Result<_, _>>()
            .map_err(sql("read fit inputs"))
    }

    /// Records what telemetry saw of the machine for a run (drivers, power limits, clocks,
    /// and what it could not measure), as JSON.
    pub async fn set_run_environment(&self, run: RunId, json: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE run SET environment_json = ? WHERE id = ?")
            .bind(json)
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(sql("store the run's environment"))?;
        Ok(())
    }

    /// Sets a result's prefill or decode mean and sd to figures computed elsewhere (an
    /// imported tool's own, which its output may give without the repetitions behind them).
    pub async fn set_rate_summary(
        &self,
        id: ResultId,
        phase: &str,
        mean: f64,
        sd: Option<f64>,
    ) -> Result<(), StoreError> {
        let statement = match phase {
            "prefill" => "UPDATE result SET prefill_tps = ?, prefill_tps_sd = ? WHERE id = ?",
            "decode" => "UPDATE result SET decode_tps = ?, decode_tps_sd = ? WHERE id = ?",
            other => {
                return Err(StoreError::Refused(format!(
                    "no rate summary named `{other}` (prefill or decode)"
                )))
            }
        };
        sqlx::query(statement)
            .bind(mean)
            .bind(sd)
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(sql("set a result's summary"))?;
        Ok(())
    }

    /// Runs one read-only statement and returns its rows as JSON values.
    pub async fn query(&self, statement: &str) -> Result<QueryOutput, StoreError> {
        let rows = sqlx::query(statement)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| match readonly::refusal(&e) {
                Some(why) => StoreError::Refused(why),
                None => StoreError::Sql {
                    what: "query failed".into(),
                    source: e,
                },
            })?;
        let mut columns = Vec::new();
        if let Some(first) = rows.first() {
            columns = first
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
        }
        let rows = rows.iter().map(json_row).collect::<Result<_, _>>()?;
        Ok(QueryOutput { columns, rows })
    }

    /// `PRAGMA integrity_check`: "ok", or what is wrong.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await
            .map_err(sql("check integrity"))?;
        Ok(rows
            .into_iter()
            .map(|(s,)| s)
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// A column's text that names none of tokbench's values, as a decode error.
fn decode<T>(parsed: Result<T, tokbench_core::UnknownName>) -> Result<T, sqlx::Error> {
    parsed.map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn result_row(row: &SqliteRow) -> Result<ResultRow, StoreError> {
    let get = sql("decode a v_results row");
    (|| -> Result<ResultRow, sqlx::Error> {
        Ok(ResultRow {
            run_uuid: row.try_get("run_uuid")?,
            started_at: row.try_get("started_at")?,
            host: row.try_get("host")?,
            backend: row.try_get("backend")?,
            model: row.try_get("model")?,
            quant: row.try_get("quant")?,
            test: row.try_get("test")?,
            n_threads: row.try_get("n_threads")?,
            status: decode(row.try_get::<String, _>("status")?.parse::<ResultStatus>())?,
            error: row.try_get("error")?,
            prefill_tps: row.try_get("prefill_tps")?,
            prefill_tps_sd: row.try_get("prefill_tps_sd")?,
            decode_tps: row.try_get("decode_tps")?,
            decode_tps_sd: row.try_get("decode_tps_sd")?,
            ttft_ms: row.try_get("ttft_ms")?,
            rss_peak_bytes: row.try_get("rss_peak_bytes")?,
            metric_source: decode(
                row.try_get::<String, _>("metric_source")?
                    .parse::<MetricSource>(),
            )?,
            n_reps: row.try_get("n_reps")?,
            concurrency: row.try_get("concurrency")?,
            ttft_p99_ms: row.try_get("ttft_p99_ms")?,
            output_tps: row.try_get("output_tps")?,
        })
    })()
    .map_err(get)
}

fn json_row(row: &SqliteRow) -> Result<Vec<serde_json::Value>, StoreError> {
    use serde_json::Value;
    (0..row.columns().len())
        .map(|i| {
            let raw = row.try_get_raw(i).map_err(sql("decode a query row"))?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let ty = raw.type_info().name().to_string();
            let v = match ty.as_str() {
                "INTEGER" | "BOOLEAN" => {
                    Value::from(row.try_get::<i64, _>(i).map_err(sql("decode"))?)
                }
                "REAL" => Value::from(row.try_get::<f64, _>(i).map_err(sql("decode"))?),
                "BLOB" => {
                    let b: Vec<u8> = row.try_get(i).map_err(sql("decode"))?;
                    Value::from(format!(
                        "x'{}'",
                        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                    ))
                }
                _ => Value::from(row.try_get::<String, _>(i).map_err(sql("decode"))?),
            };
            Ok(v)
        })
        .collect()
}
