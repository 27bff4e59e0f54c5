//! PostgreSQL beside SQLite: one shared results database for a fleet (issue 19, its first
//! part). What works on a `postgres://` URL so far: `migrate` (the schema of
//! `migrations/postgres/`, versioned with SQLite's), `query` (read-only) and `merge` of
//! SQLite files into it, so runners that write SQLite can pour their results into one
//! server that dashboards read. Writing runs directly, and reading reports, still need
//! SQLite.
//!
//! Decisions:
//! - A URL is shown without its password, everywhere ([`redacted_url`]); sqlx's own error
//!   messages never contain it.
//! - Migrations run under sqlx's advisory lock, so two new runners cannot migrate at once;
//!   a database migrated past what this tokbench knows is refused, as with SQLite.
//! - `query` runs in a `READ ONLY` transaction (the server refuses any write), as one
//!   statement (the extended protocol takes no more), which must be a `SELECT`, `WITH`,
//!   `VALUES` or `TABLE`: rows come back through `row_to_json`, so every type PostgreSQL
//!   has prints without a cast, in column order.
//! - `merge` from SQLite is one transaction (all or nothing) and idempotent: runs are their
//!   UUID, results (run, cell, metric source), catalog rows their natural keys, as in
//!   SQLite's merge. Values travel as text and are cast by PostgreSQL to each column's
//!   type, so a float keeps every bit (Rust prints the shortest text that reads back the
//!   same) and a time keeps its microseconds.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::de::{MapAccess, Visitor};
use serde::Deserialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Column, Connection, Executor, Row, TypeInfo};

use crate::{Cell, MergeReport, QueryEvent, Store, StoreError};

/// Every PostgreSQL migration in `migrations/postgres/`, embedded at build time.
pub static PG_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// True when `db` names a PostgreSQL database (`postgres://…` or `postgresql://…`, in any
/// case).
pub fn is_postgres_url(db: &str) -> bool {
    let lower = db.get(..13).unwrap_or(db).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `url` without its password (in the user part, or as a query parameter whose name ends
/// in `password`, percent-encoded or not): what every message shows. The user part ends at
/// the last `@`, so a password holding `/`, `?`, `#` or `@` is dropped whole.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (user, rest) = match rest.rsplit_once('@') {
        Some((userinfo, after)) => {
            let name = userinfo.split(':').next().unwrap_or("");
            (format!("{name}@"), after)
        }
        None => (String::new(), rest),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| {
                    let key = p.split('=').next().unwrap_or("");
                    !percent_decoded(key)
                        .to_ascii_lowercase()
                        .ends_with("password")
                })
                .collect();
            match kept.is_empty() {
                true => path.to_string(),
                false => format!("{path}?{}", kept.join("&")),
            }
        }
        None => rest.to_string(),
    };
    format!("{scheme}://{user}{rest}")
}

/// `%xx` escapes decoded (an invalid one kept as written).
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An open PostgreSQL results database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// The URL without its password.
    shown: String,
}

/// What a PostgreSQL error means, in one line, for a connection to `shown`.
fn connect_error(shown: &str, e: sqlx::Error) -> StoreError {
    let why = match &e {
        sqlx::Error::Database(d) => d.message().to_string(),
        sqlx::Error::Io(io) => format!("cannot reach the server: {io}"),
        sqlx::Error::Tls(t) => format!("TLS: {t}"),
        sqlx::Error::PoolTimedOut => "no connection within 10 s".into(),
        sqlx::Error::Configuration(c) => format!("not a usable PostgreSQL URL: {c}"),
        other => other.to_string(),
    };
    StoreError::Connect {
        url: shown.to_string(),
        why,
    }
}

impl PgStore {
    async fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = redacted_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| connect_error(&shown, e))?;
        // One connection first: the pool retries until its timeout and then reports only
        // that, where a single attempt says why (refused, no such database, bad password).
        // Bounded: a host that drops packets would otherwise hold a run before its first
        // cell for the system's TCP timeout (minutes).
        tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| StoreError::Connect {
            url: shown.clone(),
            why: "no answer within 10 s".into(),
        })?
        .map_err(|e| connect_error(&shown, e))?
        .close()
        .await
        .map_err(|e| connect_error(&shown, e))?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            // Times come back in UTC, whatever the server's default zone.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET TIME ZONE 'UTC'").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| connect_error(&shown, e))?;
        Ok(Self { pool, shown })
    }

    /// The URL this store was opened with, without its password.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// Opens the database at `url` for writing: refuses a newer schema, applies what is
    /// pending (under sqlx's advisory lock: concurrent runners migrate one at a time).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.check_not_newer().await?;
        PG_MIGRATOR
            .run(&store.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: PathBuf::from(&store.shown),
                source,
            })?;
        Ok(store)
    }

    /// Opens the database at `url` to read, never migrating: a database without tokbench's
    /// schema, or at an older or newer one, is refused with what to do.
    pub async fn open_read_only(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        let applied = store.applied_versions().await?;
        if applied.is_empty() {
            return Err(StoreError::NoSchema {
                url: store.shown.clone(),
            });
        }
        store.check_not_newer().await?;
        let latest = PG_MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let version = applied.iter().copied().max().unwrap_or(0);
        if version < latest {
            return Err(StoreError::OlderSchema {
                path: PathBuf::from(&store.shown),
                version,
                latest,
            });
        }
        Ok(store)
    }

    /// Brings the schema up to date (`tokbench migrate`): the migrations applied, `version
    /// description` each, none when it was current.
    pub async fn migrate(url: &str) -> Result<Vec<String>, StoreError> {
        let store = Self::connect(url).await?;
        let applied = store.applied_versions().await?;
        store.check_not_newer().await?;
        store.close().await;
        let pending = PG_MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect();
        Self::open(url).await?.close().await;
        Ok(pending)
    }

    /// The migrations applied (none when sqlx's migration table is missing).
    async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let (exists,): (bool,) =
            sqlx::query_as("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| connect_error(&self.shown, e))?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| connect_error(&self.shown, e))?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    async fn check_not_newer(&self) -> Result<(), StoreError> {
        let known: Vec<i64> = PG_MIGRATOR.iter().map(|m| m.version).collect();
        match self
            .applied_versions()
            .await?
            .into_iter()
            .find(|v| !known.contains(v))
        {
            Some(version) => Err(StoreError::NewerSchema {
                path: PathBuf::from(&self.shown),
                version,
            }),
            None => Ok(()),
        }
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    /// How many results the run with this UUID has here (0 for a run the server lacks).
    pub async fn run_results(&self, uuid: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM result JOIN run ON run.id = result.run_id WHERE run.uuid = $1",
        )
        .bind(uuid)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::Sql {
            what: format!("count the run's results on {}", self.shown),
            source: e,
        })
    }

    /// The status of the run with this UUID (`ok`, `running`, …), if the server has it.
    pub async fn run_status(&self, uuid: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT status FROM run WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::Sql {
                what: format!("read {}: find run {uuid}", self.shown),
                source: e,
            })
    }

    /// Runs one read-only statement, handing `each` the column names once, then every row
    /// (`each` stops early by returning `Break`). Values: integers, floats, text; `jsonb`
    /// and arrays as JSON text; booleans as 0/1; times as RFC 3339 in UTC.
    pub async fn query_each<F>(&self, statement: &str, each: F) -> Result<(), StoreError>
    where
        F: FnMut(QueryEvent<'_>) -> ControlFlow<()>,
    {
        self.query_each_within(statement, None, each).await
    }

    /// [`PgStore::query_each`], stopped with [`StoreError::TimedOut`] once `limit` has
    /// passed since it began: the server's own `statement_timeout`, set for this
    /// transaction only, cancels the statement there.
    pub async fn query_each_within<F>(
        &self,
        statement: &str,
        limit: Option<std::time::Duration>,
        mut each: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(QueryEvent<'_>) -> ControlFlow<()>,
    {
        let began = std::time::Instant::now();
        let statement = without_final_semicolon(statement);
        let first = statement
            .split(|c: char| c.is_whitespace() || c == '(')
            .find(|w| !w.is_empty())
            .unwrap_or("")
            .to_ascii_uppercase();
        if !matches!(first.as_str(), "SELECT" | "WITH" | "VALUES" | "TABLE") {
            return Err(StoreError::Refused(format!(
                "`tokbench query` is read-only: on PostgreSQL one SELECT, WITH, VALUES or TABLE statement, not `{first}`"
            )));
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| connect_error(&self.shown, e))?;
        // The server itself refuses any write from here on.
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(|e| connect_error(&self.shown, e))?;
        let described = (&mut *tx)
            .describe(statement)
            .await
            .map_err(|e| pg_query_error(&e, limit))?;
        let names: Vec<String> = described
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        // row_to_json writes a float with no fraction as an integer (100.0 as 100): the
        // column's type says it is a float, as SQLite would give it.
        let floats: Vec<bool> = described
            .columns()
            .iter()
            .map(|c| matches!(c.type_info().name(), "FLOAT4" | "FLOAT8"))
            .collect();
        let times: Vec<bool> = described
            .columns()
            .iter()
            .map(|c| matches!(c.type_info().name(), "TIMESTAMPTZ" | "TIMESTAMP"))
            .collect();
        if each(QueryEvent::Columns(&names)).is_break() {
            return Ok(());
        }
        // On lines of its own: a trailing `-- comment` must not swallow the parenthesis.
        let wrapped = format!("SELECT row_to_json(q)::text FROM (\n{statement}\n) AS q");
        if let Some(limit) = limit {
            // What is left of the limit; a whole millisecond at least (0 means none).
            let left = limit.saturating_sub(began.elapsed()).as_millis().max(1);
            sqlx::query(&format!("SET LOCAL statement_timeout = {left}"))
                .execute(&mut *tx)
                .await
                .map_err(|e| connect_error(&self.shown, e))?;
        }
        let mut rows = sqlx::query_scalar::<_, String>(&wrapped).fetch(&mut *tx);
        let mut texts: Vec<Option<String>> = Vec::with_capacity(names.len());
        while let Some(json) = rows
            .try_next()
            .await
            .map_err(|e| pg_query_error(&e, limit))?
        {
            let values = serde_json::from_str::<KeyedRow>(&json)
                .map(KeyedRow::values)
                .map_err(|e| {
                    StoreError::BadQuery(format!("a row PostgreSQL returned did not parse: {e}"))
                })?;
            texts.clear();
            for (i, v) in values.iter().enumerate() {
                texts.push(match v {
                    serde_json::Value::String(s) if times.get(i) == Some(&true) => {
                        Some(rfc3339_utc(s))
                    }
                    serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                        Some(v.to_string())
                    }
                    _ => None,
                });
            }
            let cells: Vec<Cell<'_>> = values
                .iter()
                .zip(&texts)
                .enumerate()
                .map(|(i, (v, text))| match (v, text) {
                    (_, Some(t)) => Cell::Text(t),
                    (serde_json::Value::Null, _) => Cell::Null,
                    (serde_json::Value::Bool(b), _) => Cell::Int(i64::from(*b)),
                    (serde_json::Value::Number(n), _) if floats.get(i) == Some(&true) => {
                        Cell::Real(n.as_f64().unwrap_or(f64::NAN))
                    }
                    (serde_json::Value::Number(n), _) => match n.as_i64() {
                        Some(i) => Cell::Int(i),
                        None => Cell::Real(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    (serde_json::Value::String(s), _) => Cell::Text(s),
                    _ => Cell::Null,
                })
                .collect();
            if each(QueryEvent::Row(&cells)).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Copies every run of the SQLite database at `src` into this one, in one transaction;
    /// what is already here (by run UUID, and result by cell) is left as it is.
    pub async fn merge_sqlite(&self, src: &Path) -> Result<MergeReport, StoreError> {
        self.merge_sqlite_run(src, None).await
    }

    /// [`PgStore::merge_sqlite`] of one run (by UUID), or of every run.
    pub async fn merge_sqlite_run(
        &self,
        src: &Path,
        only: Option<&str>,
    ) -> Result<MergeReport, StoreError> {
        self.merge_sqlite_as(src, only, None).await
    }

    /// [`PgStore::merge_sqlite`] of a remote target's database (what `tokbench targets
    /// sync` brought home): in the same transaction, every source run here that names no
    /// target yet is named as measured on `target` (as [`Store::merge_from_target`]).
    pub async fn merge_sqlite_from_target(
        &self,
        src: &Path,
        target: &str,
    ) -> Result<MergeReport, StoreError> {
        self.merge_sqlite_as(src, None, Some(target)).await
    }

    async fn merge_sqlite_as(
        &self,
        src: &Path,
        only: Option<&str>,
        target: Option<&str>,
    ) -> Result<MergeReport, StoreError> {
        let source = Store::open_read_only(src).await?;
        // A deadlock or serialization failure against another writer is retried: the
        // transaction was rolled back whole.
        let mut tries = 0;
        let result = loop {
            tries += 1;
            let mut attempt = MergeReport {
                source: src.to_path_buf(),
                ..MergeReport::default()
            };
            match self.merge_from(&source, only, target, &mut attempt).await {
                Err(StoreError::Sql {
                    source: sqlx::Error::Database(d),
                    ..
                }) if tries < 3 && matches!(d.code().as_deref(), Some("40P01" | "40001")) => {
                    continue
                }
                other => break other.map(|()| attempt),
            }
        };
        source.close().await;
        result
    }

    async fn merge_from(
        &self,
        source: &Store,
        only: Option<&str>,
        target: Option<&str>,
        report: &mut MergeReport,
    ) -> Result<(), StoreError> {
        let fail = |what: &str| {
            let what = format!("merge into {}: {what}", self.shown);
            move |e: sqlx::Error| StoreError::Sql { what, source: e }
        };
        let mut tx = self.pool.begin().await.map_err(fail("begin"))?;
        // Finding a catalog row again after another writer's insert won needs each
        // statement's own snapshot, whatever the server's default.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *tx)
            .await
            .map_err(fail("begin"))?;
        let mut copier = Copier::default();
        // Catalog rows by natural key: the source's id → ours.
        let hardware = copier
            .catalog(&mut tx, source, "hardware", &["name"], &HashMap::new())
            .await?;
        report.hardware_added = copier.added;
        let hosts = copier
            .catalog(
                &mut tx,
                source,
                "host",
                &["identity"],
                &HashMap::from([("hardware_id", &hardware)]),
            )
            .await?;
        report.hosts_added = copier.added;
        let builds = copier
            .catalog(
                &mut tx,
                source,
                "backend_build",
                &["name", "version", "commit_sha", "accel", "flags"],
                &HashMap::new(),
            )
            .await?;
        report.builds_added = copier.added;
        let models = copier
            .catalog(
                &mut tx,
                source,
                "model",
                &["file_sha256", "name"],
                &HashMap::new(),
            )
            .await?;
        report.models_added = copier.added;
        let workloads = copier
            .catalog(
                &mut tx,
                source,
                "workload",
                &["kind", "n_prompt", "n_gen", "n_depth"],
                &HashMap::new(),
            )
            .await?;
        report.workloads_added = copier.added;

        let runs = source_rows(source, "SELECT * FROM run ORDER BY id").await?;
        let runs: Vec<SourceRow> = runs
            .into_iter()
            .filter(|r| only.is_none() || r.text("uuid").as_deref() == only)
            .collect();
        let run_cols = copier.columns(&mut tx, "run").await?;
        let result_cols = copier.columns(&mut tx, "result").await?;
        // Every source run's id here, added or already here: a sync names them after its
        // target at the end, in one statement.
        let mut merged_runs = Vec::with_capacity(runs.len());
        for run in &runs {
            let src_run = run.int("id");
            let uuid = run.text("uuid").unwrap_or_default();
            let existing: Option<(i64, String)> =
                sqlx::query_as("SELECT id, status FROM run WHERE uuid = $1")
                    .bind(&uuid)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(fail("find a run"))?;
            let mut extended = false;
            let dst_run = match &existing {
                Some((id, status)) => {
                    report.runs_skipped += 1;
                    // Forwarded while it ran (or cut short) and finished since: it takes the
                    // source's status and finish time, as a resume would have.
                    let src_status = run.text("status").unwrap_or_default();
                    if matches!(status.as_str(), "running" | "interrupted")
                        && matches!(src_status.as_str(), "ok" | "failed")
                    {
                        sqlx::query(
                            "UPDATE run SET status = $1, finished_at = CAST($2 AS timestamptz) WHERE id = $3",
                        )
                        .bind(&src_status)
                        .bind(run.text("finished_at"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail("update a run's status"))?;
                        extended = true;
                    }
                    *id
                }
                None => {
                    let maps = HashMap::from([("host_id", &hosts)]);
                    let ids = insert_rows(
                        &mut tx,
                        "run",
                        &run_cols,
                        std::slice::from_ref(run),
                        &maps,
                        "",
                        "id",
                    )
                    .await?;
                    report.runs_added += 1;
                    ids[0].expect("a new run is inserted")
                }
            };
            merged_runs.push(dst_run);
            // A run the destination has whole (as many results as the source, finished in
            // both) is not read again: a nightly merge of a machine's whole history reads
            // only what is new.
            if let Some((id, status)) = &existing {
                let (have,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM result WHERE run_id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(fail("count a run's results"))?;
                let src_status = run.text("status").unwrap_or_default();
                let src_have = count(
                    source,
                    &format!("SELECT COUNT(*) FROM result WHERE run_id = {src_run}"),
                )
                .await?;
                let (have_verdicts,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM verdict WHERE run_id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(fail("count a run's verdicts"))?;
                let src_verdicts = count(
                    source,
                    &format!("SELECT COUNT(*) FROM verdict WHERE run_id = {src_run}"),
                )
                .await?;
                if have == src_have
                    && have_verdicts == src_verdicts
                    && !extended
                    && *status == src_status
                {
                    continue;
                }
            }
            // Its results the destination lacks.
            let results = source_rows(
                source,
                &format!("SELECT * FROM result WHERE run_id = {src_run} ORDER BY id"),
            )
            .await?;
            let run_map = HashMap::from([(src_run, dst_run)]);
            let maps = HashMap::from([
                ("run_id", &run_map),
                ("backend_build_id", &builds),
                ("model_id", &models),
                ("workload_id", &workloads),
            ]);
            // A cell the destination has as `interrupted` and the source finished (a run
            // forwarded, then resumed): the source's replaces it, as a resume would have.
            if existing.is_some() {
                let (cells, sources): (Vec<i64>, Vec<String>) = results
                    .iter()
                    .filter(|r| r.text("status").as_deref() != Some("interrupted"))
                    .map(|r| {
                        (
                            r.int("cell_index"),
                            r.text("metric_source").unwrap_or_default(),
                        )
                    })
                    .unzip();
                let replaced = sqlx::query(
                    "DELETE FROM result WHERE run_id = $1 AND status = 'interrupted'
                     AND (cell_index, metric_source) IN (SELECT * FROM unnest($2::bigint[], $3::text[]))",
                )
                .bind(dst_run)
                .bind(&cells)
                .bind(&sources)
                .execute(&mut *tx)
                .await
                .map_err(fail("replace interrupted results"))?
                .rows_affected();
                report.results_replaced += replaced;
            }
            let mut result_map = HashMap::new();
            let ids = copy_rows(
                &mut tx,
                "result",
                &result_cols,
                &results,
                &maps,
                "ON CONFLICT (run_id, cell_index, metric_source) DO NOTHING",
                true,
            )
            .await?;
            for (row, id) in results.iter().zip(ids) {
                if let Some(id) = id {
                    result_map.insert(row.int("id"), id);
                }
            }
            if existing.is_some() && (extended || !result_map.is_empty()) {
                report.runs_extended += 1;
            }
            report.results_added += result_map.len() as u64;
            // Verdicts belong to any of the run's results, new or not (a `check` after the
            // run was first forwarded): every source result's id here, by its cell.
            let mut all_results = result_map.clone();
            if existing.is_some() {
                let here: Vec<(i64, i64, String)> = sqlx::query_as(
                    "SELECT id, cell_index, metric_source FROM result WHERE run_id = $1",
                )
                .bind(dst_run)
                .fetch_all(&mut *tx)
                .await
                .map_err(fail("read a run's results"))?;
                let by_cell: HashMap<(i64, String), i64> =
                    here.into_iter().map(|(id, c, m)| ((c, m), id)).collect();
                for r in &results {
                    let key = (
                        r.int("cell_index"),
                        r.text("metric_source").unwrap_or_default(),
                    );
                    if let Some(id) = by_cell.get(&key) {
                        all_results.insert(r.int("id"), *id);
                    }
                }
            }
            let maps = HashMap::from([("result_id", &result_map), ("run_id", &run_map)]);
            let verdict_maps = HashMap::from([("result_id", &all_results), ("run_id", &run_map)]);
            for table in ["repetition", "telemetry_sample", "request", "verdict"] {
                let (maps, wanted, dedupe) = match table {
                    // Once per (check, result, metric), as SQLite's merge.
                    "verdict" => (
                        &verdict_maps,
                        &all_results,
                        "WHERE NOT EXISTS (SELECT 1 FROM verdict v WHERE v.check_uuid = s.check_uuid
                         AND v.result_id = s.result_id AND v.metric = s.metric)",
                    ),
                    _ => (&maps, &result_map, ""),
                };
                if wanted.is_empty() {
                    continue;
                }
                let cols = copier.columns(&mut tx, table).await?;
                let rows = source_rows(
                    source,
                    &format!(
                        "SELECT c.* FROM {table} c JOIN result r ON r.id = c.result_id WHERE r.run_id = {src_run}"
                    ),
                )
                .await?;
                let rows: Vec<SourceRow> = rows
                    .into_iter()
                    .filter(|r| wanted.contains_key(&r.int("result_id")))
                    .collect();
                let n = copy_rows(&mut tx, table, &cols, &rows, maps, dedupe, false)
                    .await?
                    .len() as u64;
                match table {
                    "repetition" => report.repetitions_added += n,
                    "telemetry_sample" => report.telemetry_added += n,
                    "verdict" => report.verdicts_added += n,
                    // Requests are counted with their results (MergeReport has no column).
                    _ => {}
                }
            }
        }
        // Change points: once per (series, time, note).
        let cols = copier.columns(&mut tx, "change_point").await?;
        for row in source_rows(source, "SELECT * FROM change_point ORDER BY id").await? {
            let (seen,): (bool,) = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM change_point WHERE series_key = $1 AND at = CAST($2 AS timestamptz) AND note = $3)",
            )
            .bind(row.text("series_key"))
            .bind(row.text("at"))
            .bind(row.text("note"))
            .fetch_one(&mut *tx)
            .await
            .map_err(fail("find a change point"))?;
            if !seen {
                insert_rows(
                    &mut tx,
                    "change_point",
                    &cols,
                    std::slice::from_ref(&row),
                    &HashMap::new(),
                    "",
                    "",
                )
                .await?;
                report.change_points_added += 1;
            }
        }
        if let Some(target) = target {
            sqlx::query("UPDATE run SET target = $1 WHERE target IS NULL AND id = ANY($2)")
                .bind(target)
                .bind(&merged_runs)
                .execute(&mut *tx)
                .await
                .map_err(fail("record the runs' target"))?;
        }
        tx.commit().await.map_err(fail("commit"))?;
        Ok(())
    }
}

/// Which runs `merge` copies out of a PostgreSQL database: all of them, or those with one
/// of `runs`' UUIDs, on one of `hosts`, started on or after `since` and on or before
/// `until` (days, `YYYY-MM-DD`, UTC). Empty lists and `None` do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub runs: Vec<String>,
    pub hosts: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

impl PgStore {
    /// Writes the runs `filter` picks, with everything they refer to, into a new SQLite
    /// database at `out` (the same ids, read in one snapshot): what `merge postgres://… --into
    /// FILE` then merges like any SQLite source. Returns the runs written.
    pub async fn export_sqlite(&self, filter: &RunFilter, out: &Path) -> Result<u64, StoreError> {
        let dst = Store::open(out).await?;
        let result = self.export_into(filter, &dst).await;
        dst.close().await;
        result
    }

    async fn export_into(&self, filter: &RunFilter, dst: &Store) -> Result<u64, StoreError> {
        let fail = |what: &str| {
            let what = format!("read {}: {what}", self.shown);
            move |e: sqlx::Error| StoreError::Sql { what, source: e }
        };
        let mut tx = self.pool.begin().await.map_err(fail("begin"))?;
        // One snapshot for every table, and nothing written on the server.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(fail("begin a snapshot"))?;
        let runs = "SELECT run.id FROM run WHERE \
             (cardinality($1::text[]) = 0 OR run.uuid = ANY($1)) \
             AND (cardinality($2::text[]) = 0 OR run.host_id IN (SELECT id FROM host WHERE hostname = ANY($2))) \
             AND ($3::text IS NULL OR run.started_at >= CAST($3 AS date)) \
             AND ($4::text IS NULL OR run.started_at < CAST($4 AS date) + 1)";
        let results = format!("SELECT id FROM result WHERE run_id IN ({runs})");
        let tables: [(&str, String); 12] = [
            (
                "hardware",
                format!("id IN (SELECT hardware_id FROM host WHERE id IN (SELECT host_id FROM run WHERE id IN ({runs})))"),
            ),
            ("host", format!("id IN (SELECT host_id FROM run WHERE id IN ({runs}))")),
            (
                "backend_build",
                format!("id IN (SELECT backend_build_id FROM result WHERE run_id IN ({runs}))"),
            ),
            ("model", format!("id IN (SELECT model_id FROM result WHERE run_id IN ({runs}))")),
            (
                "workload",
                format!("id IN (SELECT workload_id FROM result WHERE run_id IN ({runs}))"),
            ),
            ("run", format!("id IN ({runs})")),
            ("result", format!("run_id IN ({runs})")),
            ("repetition", format!("result_id IN ({results})")),
            ("telemetry_sample", format!("result_id IN ({results})")),
            ("request", format!("result_id IN ({results})")),
            ("verdict", format!("run_id IN ({runs})")),
            ("change_point", "true".to_string()),
        ];
        let mut sqlite = dst.pool.begin().await.map_err(crate::sql("begin"))?;
        let mut n_runs = 0;
        for (table, filter_sql) in &tables {
            // How each column comes back from row_to_json: jsonb as JSON (written as its
            // text), times as RFC 3339 with +00:00 (written with Z, as tokbench writes them).
            let kinds: Vec<(String, String)> = sqlx::query_as(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table)
            .fetch_all(&mut *tx)
            .await
            .map_err(fail("read the columns"))?;
            let kind_of: HashMap<String, String> = kinds.into_iter().collect();
            let sql = format!("SELECT row_to_json(t)::text FROM {table} t WHERE {filter_sql}");
            let mut rows = sqlx::query_scalar::<_, String>(&sql)
                .bind(&filter.runs)
                .bind(&filter.hosts)
                .bind(&filter.since)
                .bind(&filter.until)
                .fetch(&mut *tx);
            let mut batch: Vec<KeyedRow> = Vec::new();
            while let Some(json) = rows
                .try_next()
                .await
                .map_err(fail(&format!("read {table}")))?
            {
                if *table == "run" {
                    n_runs += 1;
                }
                let row: KeyedRow = serde_json::from_str(&json).map_err(|e| StoreError::Sql {
                    what: format!("read {table}: a row did not parse: {e}"),
                    source: sqlx::Error::Protocol(e.to_string()),
                })?;
                batch.push(row);
                if batch.len() * batch[0].0.len() >= 8_000 {
                    write_sqlite_rows(&mut sqlite, table, &batch, &kind_of).await?;
                    batch.clear();
                }
            }
            write_sqlite_rows(&mut sqlite, table, &batch, &kind_of).await?;
        }
        sqlite.commit().await.map_err(crate::sql("commit"))?;
        Ok(n_runs)
    }
}

/// A JSON object's entries in the order written: `row_to_json` writes a row's columns in
/// order, duplicate names included, which a map would merge.
struct KeyedRow(Vec<(String, serde_json::Value)>);

impl KeyedRow {
    fn values(self) -> Vec<serde_json::Value> {
        self.0.into_iter().map(|(_, v)| v).collect()
    }
}

impl<'de> Deserialize<'de> for KeyedRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyedRow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<KeyedRow, A::Error> {
                let mut entries = Vec::new();
                while let Some(e) = m.next_entry::<String, serde_json::Value>()? {
                    entries.push(e);
                }
                Ok(KeyedRow(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// Writes `rows` (all of one table, with the same columns) into the SQLite `table`, values
/// as SQLite keeps them: jsonb as its text, times as RFC 3339 UTC with Z.
async fn write_sqlite_rows(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    rows: &[KeyedRow],
    kind_of: &HashMap<String, String>,
) -> Result<(), StoreError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let cols: Vec<&str> = first.0.iter().map(|(c, _)| c.as_str()).collect();
    let one = format!("({})", vec!["?"; cols.len()].join(", "));
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES {}",
        cols.join(", "),
        vec![one.as_str(); rows.len()].join(", ")
    );
    let mut q = sqlx::query(&sql);
    for row in rows {
        for (c, v) in &row.0 {
            let kind = kind_of.get(c).map(String::as_str).unwrap_or("");
            q = match v {
                serde_json::Value::Null => q.bind(None::<String>),
                _ if kind == "jsonb" => q.bind(v.to_string()),
                serde_json::Value::String(t) if kind.starts_with("timestamp") => {
                    q.bind(rfc3339_utc(t))
                }
                serde_json::Value::String(t) => q.bind(t.clone()),
                serde_json::Value::Bool(b) => q.bind(i64::from(*b)),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => q.bind(i),
                    None => q.bind(n.as_f64().unwrap_or(f64::NAN)),
                },
                other => q.bind(other.to_string()),
            };
        }
    }
    q.execute(&mut *conn)
        .await
        .map_err(crate::sql(format!("write {table}")))?;
    Ok(())
}

/// `statement` without a final `;` and what follows it when that is only white space and
/// comments (`SELECT 1; -- done`): query wraps the statement in a subquery, where neither
/// may stand. A `;` followed by anything else (a second statement) stays, for the server
/// to refuse.
fn without_final_semicolon(statement: &str) -> &str {
    let mut s = statement.trim();
    while let Some(i) = s.rfind(';') {
        if !only_comments(&s[i + 1..]) {
            break;
        }
        s = s[..i].trim_end();
    }
    s
}

/// True when `tail` holds nothing but white space, `-- …` lines and `/* … */` blocks.
fn only_comments(tail: &str) -> bool {
    let mut t = tail.trim_start();
    while !t.is_empty() {
        if let Some(rest) = t.strip_prefix("--") {
            t = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(rest) = t.strip_prefix("/*") {
            match rest.split_once("*/") {
                Some((_, r)) => t = r.trim_start(),
                None => return false,
            }
        } else {
            return false;
        }
    }
    true
}

/// A PostgreSQL error from the user's statement: a refusal (a write in the read-only
/// transaction) or a bad query.
fn pg_query_error(e: &sqlx::Error, limit: Option<std::time::Duration>) -> StoreError {
    match e {
        // query_canceled: by the statement_timeout `limit` set (or by someone's
        // pg_cancel_backend, which the message then says).
        sqlx::Error::Database(d) if d.code().as_deref() == Some("57014") => match limit {
            Some(limit) if d.message().contains("statement timeout") => {
                StoreError::TimedOut { limit }
            }
            _ => StoreError::BadQuery(d.message().to_string()),
        },
        sqlx::Error::Database(d) if d.code().as_deref() == Some("25006") => {
            StoreError::Refused(format!(
                "`tokbench query` is read-only; PostgreSQL said: {}",
                d.message()
            ))
        }
        sqlx::Error::Database(d) => StoreError::BadQuery(d.message().to_string()),
        other => StoreError::BadQuery(other.to_string()),
    }
}

/// `2026-12-07T01:02:03.123456+00:00` (row_to_json's time in UTC) → `…03.123456Z`.
fn rfc3339_utc(s: &str) -> String {
    match s.strip_suffix("+00:00") {
        Some(t) => format!("{t}Z"),
        None => s.to_string(),
    }
}

/// One row of a source (SQLite) table: each column's value as the text PostgreSQL casts
/// to the destination column's type.
#[derive(Debug, Clone)]
struct SourceRow {
    /// The query's column names, shared by all its rows.
    names: std::sync::Arc<Vec<String>>,
    values: Vec<Option<String>>,
}

impl SourceRow {
    fn get(&self, column: &str) -> Option<&Option<String>> {
        self.names
            .iter()
            .position(|c| c == column)
            .map(|i| &self.values[i])
    }

    fn text(&self, column: &str) -> Option<String> {
        self.get(column).cloned().flatten()
    }

    fn int(&self, column: &str) -> i64 {
        self.text(column).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

async fn source_rows(source: &Store, sql: &str) -> Result<Vec<SourceRow>, StoreError> {
    // On SQLite's own handle (query_each): sqlx's row stream copies every value and wakes
    // another thread for each row, two thirds of the client's time in a merge.
    let mut names = std::sync::Arc::new(Vec::new());
    let mut rows = Vec::new();
    let mut bad = None;
    source
        .query_each(sql, |event| {
            match event {
                QueryEvent::Columns(c) => names = std::sync::Arc::new(c.to_vec()),
                QueryEvent::Row(cells) => {
                    let mut values = Vec::with_capacity(cells.len());
                    for (i, cell) in cells.iter().enumerate() {
                        values.push(match *cell {
                            Cell::Null => None,
                            Cell::Int(v) => Some(v.to_string()),
                            Cell::Real(f) => Some(float_text(f)),
                            Cell::Text(t) => Some(t.to_string()),
                            Cell::Blob(_) => {
                                bad = Some(format!(
                                    "column {} holds a blob, which no tokbench column stores",
                                    names.get(i).map(String::as_str).unwrap_or("?")
                                ));
                                return ControlFlow::Break(());
                            }
                        });
                    }
                    rows.push(SourceRow {
                        names: names.clone(),
                        values,
                    });
                }
            }
            ControlFlow::Continue(())
        })
        .await?;
    match bad {
        Some(what) => Err(StoreError::Sql {
            what: format!("read the source: {what}"),
            source: sqlx::Error::Protocol(what),
        }),
        None => Ok(rows),
    }
}

/// A float as the shortest text that reads back to the same bits (`Infinity`, `NaN`
/// spelled as PostgreSQL reads them).
fn float_text(f: f64) -> String {
    match f {
        f if f.is_nan() => "NaN".into(),
        f if f == f64::INFINITY => "Infinity".into(),
        f if f == f64::NEG_INFINITY => "-Infinity".into(),
        f => format!("{f:?}"),
    }
}

/// The single integer `sql` (a `SELECT COUNT(*) …`) gives on the source.
async fn count(source: &Store, sql: &str) -> Result<i64, StoreError> {
    Ok(source_rows(source, sql)
        .await?
        .first()
        .and_then(|r| r.values.first().cloned().flatten())
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1))
}

/// The destination's columns of each table, with their types; and how many rows the last
/// catalog copy added.
#[derive(Default)]
struct Copier {
    columns: HashMap<String, Vec<(String, String)>>,
    added: u64,
}

impl Copier {
    /// `table`'s columns in the destination but `id`, each with its type.
    async fn columns(
        &mut self,
        tx: &mut sqlx::PgConnection,
        table: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if let Some(c) = self.columns.get(table) {
            return Ok(c.clone());
        }
        let cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 AND column_name <> 'id'
             ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await
        .map_err(crate::sql(format!("read the columns of {table}")))?;
        self.columns.insert(table.to_string(), cols.clone());
        Ok(cols)
    }

    /// Copies `table`'s rows the destination lacks (by the `key` columns) and returns the
    /// source's id → the destination's for every row; `maps` remaps foreign keys.
    async fn catalog(
        &mut self,
        tx: &mut sqlx::PgConnection,
        source: &Store,
        table: &str,
        key: &[&str],
        maps: &HashMap<&str, &HashMap<i64, i64>>,
    ) -> Result<HashMap<i64, i64>, StoreError> {
        let cols = self.columns(tx, table).await?;
        // In the order of their keys: two writers adding the same rows take their locks in
        // the same order, so neither waits for the other while holding what it needs.
        let mut rows = source_rows(source, &format!("SELECT * FROM {table} ORDER BY id")).await?;
        rows.sort_by_key(|r| key.iter().map(|k| r.text(k)).collect::<Vec<_>>());
        let types: HashMap<&str, &str> =
            cols.iter().map(|(c, t)| (c.as_str(), t.as_str())).collect();
        let find = format!(
            "SELECT id FROM {table} WHERE {}",
            key.iter()
                .enumerate()
                .map(|(i, k)| format!(
                    "COALESCE({k}::text, '') = COALESCE(CAST(CAST(${} AS text) AS {})::text, '')",
                    i + 1,
                    types.get(k).copied().unwrap_or("text")
                ))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let mut ids = HashMap::new();
        self.added = 0;
        for row in &rows {
            let found = find_id(tx, &find, key, row, table).await?;
            let id = match found {
                Some(id) => id,
                None => {
                    // Another writer may add the same row meanwhile: its insert wins (ours
                    // waits for it, then does nothing) and both find the one row.
                    insert_rows(
                        tx,
                        table,
                        &cols,
                        std::slice::from_ref(row),
                        maps,
                        "ON CONFLICT DO NOTHING",
                        "",
                    )
                    .await?;
                    self.added += 1;
                    find_id(tx, &find, key, row, table)
                        .await?
                        .ok_or_else(|| StoreError::Sql {
                            what: format!("merge: the {table} row just inserted is not there"),
                            source: sqlx::Error::RowNotFound,
                        })?
                }
            };
            ids.insert(row.int("id"), id);
        }
        Ok(ids)
    }
}

/// The id of the row `find` (a statement over the `key` columns) finds for `row`.
async fn find_id(
    tx: &mut sqlx::PgConnection,
    find: &str,
    key: &[&str],
    row: &SourceRow,
    table: &str,
) -> Result<Option<i64>, StoreError> {
    let mut q = sqlx::query_as::<_, (i64,)>(find);
    for k in key {
        q = q.bind(row.text(k));
    }
    Ok(q.fetch_optional(&mut *tx)
        .await
        .map_err(crate::sql(format!("find a {table} row")))?
        .map(|(id,)| id))
}

/// A source value of column `c` of `table`, its foreign key mapped through `maps`.
fn mapped(
    table: &str,
    (c, ty): &(String, String),
    v: Option<String>,
    maps: &HashMap<&str, &HashMap<i64, i64>>,
) -> Result<Option<String>, StoreError> {
    // SQLite keeps any text in a JSON column; PostgreSQL's jsonb takes only JSON. Said here
    // with the column and value, not as the server's "invalid input syntax for type json".
    if let Some(text) = v.as_deref().filter(|_| ty == "jsonb") {
        // Empty text is nothing known: a model's shape `{}` (its default, what the store
        // writes since), any other JSON column NULL.
        if text.trim().is_empty() {
            return Ok((c == "shape_json").then(|| "{}".to_string()));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            let shown: String = text.chars().take(60).collect();
            return Err(StoreError::Sql {
                what: format!("merge: {table}.{c} holds `{shown}`, which is not JSON"),
                source: sqlx::Error::Protocol(
                    "PostgreSQL keeps this column as jsonb, which takes only JSON".into(),
                ),
            });
        }
    }
    let c = c.as_str();
    match (maps.get(c), v) {
        (Some(map), Some(v)) => {
            let src: i64 = v.parse().unwrap_or(-1);
            map.get(&src)
                .map(|id| Some(id.to_string()))
                .ok_or_else(|| StoreError::Sql {
                    what: format!("merge: {table}.{c} = {src} names no row the source has"),
                    source: sqlx::Error::RowNotFound,
                })
        }
        (_, v) => Ok(v),
    }
}

/// Bulk [`insert_rows`]: `rows` go to a temporary table by `COPY … FROM STDIN` (PostgreSQL
/// reads each value's text as its column's type, no statement to parse per row), then into
/// `table` by one `INSERT … SELECT` with `conflict`; with `keyed` (results), the ids of
/// the rows inserted, in `rows`' order (None where the conflict clause skipped one).
/// 100,000 results with 500,000 repetitions on a 2-core VM: 19.7 s by multi-row VALUES
/// of 200 results, 15.4 s this way (13.0 s with the source read on SQLite's own handle);
/// what is left is the server's (indexes, foreign-key checks).
async fn copy_rows(
    tx: &mut sqlx::PgConnection,
    table: &str,
    cols: &[(String, String)],
    rows: &[SourceRow],
    maps: &HashMap<&str, &HashMap<i64, i64>>,
    conflict: &str,
    keyed: bool,
) -> Result<Vec<Option<i64>>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let cols: Vec<&(String, String)> = cols
        .iter()
        .filter(|(c, _)| first.names.contains(c))
        .collect();
    let list = cols
        .iter()
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let stage = format!("tokbench_stage_{table}");
    for sql in [
        format!("DROP TABLE IF EXISTS {stage}"),
        format!(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {list} FROM {table} WITH NO DATA"
        ),
    ] {
        sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .map_err(crate::sql(format!("stage rows for {table}")))?;
    }
    let at: Vec<usize> = cols
        .iter()
        .map(|(c, _)| {
            first
                .names
                .iter()
                .position(|n| n == c)
                .unwrap_or(usize::MAX)
        })
        .collect();
    // COPY's text format: tab between values, \N for NULL, backslash escapes.
    let mut data = Vec::with_capacity(rows.len() * cols.len() * 8);
    for row in rows {
        for (k, (col, &i)) in cols.iter().zip(&at).enumerate() {
            if k > 0 {
                data.push(b'\t');
            }
            let v = mapped(table, col, row.values.get(i).cloned().flatten(), maps)?;
            match v {
                None => data.extend_from_slice(b"\\N"),
                Some(v) => {
                    for b in v.bytes() {
                        match b {
                            // PostgreSQL's text holds no NUL (a crashed tool's log might).
                            0 => {}
                            b'\\' => data.extend_from_slice(b"\\\\"),
                            b'\t' => data.extend_from_slice(b"\\t"),
                            b'\n' => data.extend_from_slice(b"\\n"),
                            b'\r' => data.extend_from_slice(b"\\r"),
                            b => data.push(b),
                        }
                    }
                }
            }
        }
        data.push(b'\n');
    }
    let mut copy = tx
        .copy_in_raw(&format!("COPY {stage} ({list}) FROM STDIN"))
        .await
        .map_err(crate::sql(format!("copy rows for {table}")))?;
    copy.send(data)
        .await
        .map_err(crate::sql(format!("copy rows for {table}")))?;
    copy.finish()
        .await
        .map_err(crate::sql(format!("copy rows for {table}")))?;
    let mut sql =
        format!("INSERT INTO {table} ({list}) SELECT {list} FROM {stage} AS s {conflict}");
    if !keyed {
        // Not keyed: as many Nones as rows inserted.
        let n = sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .map_err(crate::sql(format!("insert into {table}")))?
            .rows_affected();
        return Ok(vec![None; n as usize]);
    }
    sql.push_str(" RETURNING id, cell_index, metric_source");
    let out = sqlx::query(&sql)
        .fetch_all(&mut *tx)
        .await
        .map_err(crate::sql(format!("insert into {table}")))?;
    let mut by_key = HashMap::new();
    for r in &out {
        let id: i64 = r.try_get(0).map_err(crate::sql("read the ids inserted"))?;
        let cell: i64 = r.try_get(1).map_err(crate::sql("read the ids inserted"))?;
        let source: String = r.try_get(2).map_err(crate::sql("read the ids inserted"))?;
        by_key.insert((cell, source), id);
    }
    Ok(rows
        .iter()
        .map(|row| {
            by_key
                .get(&(
                    row.int("cell_index"),
                    row.text("metric_source").unwrap_or_default(),
                ))
                .copied()
        })
        .collect())
}

/// Inserts a few `rows` into `table` (the destination's columns `cols` the source has;
/// foreign keys through `maps`), with `conflict` after the values; returns `returning` of
/// each row inserted, or nothing when `returning` is "". Bulk rows go by [`copy_rows`].
async fn insert_rows(
    tx: &mut sqlx::PgConnection,
    table: &str,
    cols: &[(String, String)],
    rows: &[SourceRow],
    maps: &HashMap<&str, &HashMap<i64, i64>>,
    conflict: &str,
    returning: &str,
) -> Result<Vec<Option<i64>>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    // Only the columns the source has: an older source's missing ones take their default.
    let cols: Vec<&(String, String)> = cols
        .iter()
        .filter(|(c, _)| first.get(c).is_some())
        .collect();
    let mut sql = format!(
        "INSERT INTO {table} ({}) VALUES ",
        cols.iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut n = 0;
    for (r, _) in rows.iter().enumerate() {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, (_, ty)) in cols.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push_str(&format!("CAST(CAST(${n} AS text) AS {ty})"));
        }
        sql.push(')');
    }
    if !conflict.is_empty() {
        sql.push(' ');
        sql.push_str(conflict);
    }
    if !returning.is_empty() {
        sql.push_str(&format!(" RETURNING {returning}"));
    }
    let mut q = sqlx::query(&sql);
    for row in rows {
        for col in &cols {
            q = q.bind(mapped(table, col, row.text(&col.0), maps)?);
        }
    }
    let what = format!("insert into {table}");
    if returning.is_empty() {
        q.execute(&mut *tx).await.map_err(crate::sql(what))?;
        return Ok(Vec::new());
    }
    q.fetch_all(&mut *tx)
        .await
        .map_err(crate::sql(what))?
        .iter()
        .map(|r| r.try_get::<i64, _>(0).map(Some))
        .collect::<Result<_, _>>()
        .map_err(crate::sql("read the ids inserted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_keeps_every_bit_of_its_floats() {
        // Doubles as PostgreSQL's row_to_json writes them (the shortest text that reads
        // back exactly); serde_json's default parser read the first as 441.56958.
        let row: KeyedRow = serde_json::from_str(
            r#"{"ttft_ms": 441.56958000000003, "prefill_tps": 122.59035061783979, "x": 5e-324}"#,
        )
        .unwrap();
        let got: Vec<f64> = row.values().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(
            got.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            [441.56958000000003_f64, 122.59035061783979, 5e-324]
                .iter()
                .map(|f| f.to_bits())
                .collect::<Vec<_>>()
        );
        assert_ne!(441.56958000000003_f64.to_bits(), 441.56958_f64.to_bits());
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            redacted_url("postgres://tok:s3cr3t@db.example:5433/results"),
            "postgres://tok@db.example:5433/results"
        );
        assert_eq!(
            redacted_url("postgresql://tok:p%40ss@h/r?sslmode=require&password=x2"),
            "postgresql://tok@h/r?sslmode=require"
        );
        assert_eq!(redacted_url("postgres://h/r?password=x2"), "postgres://h/r");
        assert_eq!(redacted_url("postgres://tok@h/r"), "postgres://tok@h/r");
        // A /, ? or # in the password: the host is after the last @.
        assert_eq!(
            redacted_url("postgres://tok:ab/cd+e?f#g@h:1/r"),
            "postgres://tok@h:1/r"
        );
        // Parameter names percent-encoded, or other passwords (sslpassword).
        assert_eq!(
            redacted_url("postgres://h/r?%70assword=x&sslpassword=y&sslmode=require"),
            "postgres://h/r?sslmode=require"
        );
        assert!(is_postgres_url("POSTGRES://h/r"));
        // An @ in the password: the host is after the last one.
        assert_eq!(
            redacted_url("postgres://tok:a@b@h:1/r"),
            "postgres://tok@h:1/r"
        );
        assert!(is_postgres_url("postgresql://h/r") && !is_postgres_url("results.db"));
    }

    #[test]
    fn a_final_semicolon_and_comments_after_it_are_dropped_a_second_statement_is_not() {
        assert_eq!(without_final_semicolon("SELECT 1;"), "SELECT 1");
        assert_eq!(
            without_final_semicolon("SELECT 1; -- done\n /* really */ ;"),
            "SELECT 1"
        );
        assert_eq!(without_final_semicolon("SELECT ';'"), "SELECT ';'");
        assert_eq!(
            without_final_semicolon("SELECT 1; DELETE FROM run"),
            "SELECT 1; DELETE FROM run"
        );
        assert_eq!(
            without_final_semicolon("SELECT 1 -- note"),
            "SELECT 1 -- note"
        );
    }

    #[test]
    fn row_to_json_times_become_rfc3339_in_utc() {
        assert_eq!(
            rfc3339_utc("2026-12-07T01:02:03.123456+00:00"),
            "2026-12-07T01:02:03.123456Z"
        );
        let v = serde_json::from_str::<KeyedRow>(r#"{"b":1,"a":2,"b":3}"#)
            .unwrap()
            .values();
        assert_eq!(v, [1, 2, 3].map(serde_json::Value::from));
    }
}
