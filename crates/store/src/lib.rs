//! tokbench-store: the only crate that speaks SQL. It owns the migrations ([`MIGRATOR`]),
//! opens databases the way every command needs them (WAL, foreign keys, busy timeout; or
//! strictly read-only, never migrating, for the commands that only read), writes a run cell
//! by cell — each result in its own transaction, so a crash loses at most the cell in
//! flight — and reads results back, decoding each result's [`tokbench_core::SeriesKey`].

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use tokbench_core::{BackendBuild, CellResult, HostInfo, MetricSource, ModelRecord, ResultStatus};

mod columns;
mod merge;
mod pg;
mod points;
mod prune;
mod raw;
mod read;
mod readonly;
mod redact;
mod series;
mod stream;
mod write;

pub use merge::{snapshot, MergeReport};
pub use pg::{is_postgres_url, redacted_url, PgStore, RunFilter, PG_MIGRATOR};
pub use points::{newest_points_statement, points_statement, PointFilter, StoredPoint};
pub use prune::PruneReport;
pub use redact::{RedactReport, Redactor};
pub use series::{history_statement, run_statement, NewVerdict, SeriesColumn, SeriesResult};
pub use tokbench_core::fit::FitInput;
pub use write::{Batch, BatchCell, Rate};

/// The largest database that `run`, `import` and `merge` check whole when they finish (see
/// [`Store::integrity_check_up_to`]): about 0.4 s of SQLite's integrity check here, some
/// 85,000 results.
pub const CLOSING_CHECK_MAX_BYTES: u64 = 64 << 20;

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
    /// A PostgreSQL server that would not take the connection; `url` has no password.
    #[error("cannot connect to {url}: {why}")]
    Connect { url: String, why: String },
    #[error("{url} has no tokbench schema: `tokbench migrate --db {url}` creates it")]
    NoSchema { url: String },
    #[error("query refused: {0}")]
    Refused(String),
    /// The statement is not valid SQL, or names no table or column there is.
    #[error("query failed: {0}")]
    BadQuery(String),
    /// The statement ran past the time it was given and was stopped (its rows so far were
    /// handed out).
    #[error("query stopped: it ran past its time limit of {}", crate::shown_seconds(*limit))]
    TimedOut { limit: std::time::Duration },
    #[error("{what}")]
    Sql {
        what: String,
        #[source]
        source: sqlx::Error,
    },
}

/// A duration as people write it in a message: "2.5 s", "30 s".
pub(crate) fn shown_seconds(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs_f64())
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
    /// Every engine setting of the cell (flattened into the JSON: `n_threads`, `n_batch`, …).
    #[serde(flatten)]
    pub settings: tokbench_core::EngineSettings,
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
    /// The headline rate's repetitions scattered past a CV of 5% (`None`: fewer than two).
    pub noisy: Option<bool>,
    /// The machine throttled during the cell (`None`: nothing could be read).
    pub throttled: Option<bool>,
    /// What throttled, and how it was seen.
    pub throttle_reason: Option<String>,
    /// The CPU frequency governor during the cell.
    pub cpu_governor: Option<String>,
    /// Settings left to the tool at run time (`n_gpu_layers,flash_attn`): their columns in
    /// `settings` are `None` because the tool chose, not because the source was silent.
    pub params_auto: Option<String>,
    /// Where imported numbers came from (a URL, a file); `None`: measured here.
    pub source: Option<String>,
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
        placement_json: row.try_get("placement_json")?,
    })
}

/// One value of a query's row, borrowed from the row SQLite stepped to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'r> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'r str),
    Blob(&'r [u8]),
}

impl Cell<'_> {
    /// As JSON: numbers stay numbers, a blob becomes its `x'…'` literal.
    pub fn to_json(&self) -> serde_json::Value {
        match *self {
            Cell::Null => serde_json::Value::Null,
            Cell::Int(i) => i.into(),
            Cell::Real(f) => f.into(),
            Cell::Text(s) => s.into(),
            Cell::Blob(b) => blob_literal(b).into(),
        }
    }
}

/// A blob as SQL writes it: `x'00ff'`.
pub fn blob_literal(b: &[u8]) -> String {
    let mut out = String::with_capacity(3 + 2 * b.len());
    out.push_str("x'");
    for x in b {
        out.push_str(&format!("{x:02x}"));
    }
    out.push('\'');
    out
}

/// What [`Store::query_each`] hands its caller: the column names once, then each row.
#[derive(Debug)]
pub enum QueryEvent<'a> {
    Columns(&'a [String]),
    Row(&'a [Cell<'a>]),
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

    /// How many tables, indexes, views and triggers `self` holds besides sqlx's own
    /// migration table: 0 for an empty file, and for one whose first open was killed after
    /// sqlx created `_sqlx_migrations` but before the first migration committed.
    async fn schema_objects(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master \
             WHERE name <> '_sqlx_migrations' AND tbl_name <> '_sqlx_migrations'",
        )
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
        // Two tokbench processes opening a new database at once would both apply the first
        // migration ("table hardware already exists"), and turning a new file into WAL takes
        // an exclusive lock SQLite's busy timeout does not wait for ("database is locked"
        // at connect): one process connects and migrates at a time, under an advisory lock
        // on the file (flock, apart from SQLite's own fcntl locks), created empty if needed
        // (SQLite takes an empty file as a new database).
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| StoreError::Open {
                    path: path.into(),
                    source: sqlx::Error::Io(e),
                })?;
        }
        let _lock = MigrationLock::acquire(path).await;
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
            // 64 MiB of page cache (SQLite's default is 2 MiB), taken only as pages are
            // read: a merge or import of 100,000 results otherwise evicts the indexes'
            // pages while it writes the rows, and spent half its time re-reading them.
            .pragma("cache_size", "-65536")
            // Statement journals in memory: a multi-row insert journals the pages it
            // changes that earlier statements of its transaction wrote, and on disk that
            // was a tenth of an import's storing (a write(2) per page). Bounded by what
            // one statement touches.
            .pragma("temp_store", "MEMORY")
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
}
