//! Writing a run: its host, build and models, then each cell's results, repetitions and
//! telemetry in one transaction per cell, every column bound by name ([`crate::columns::Insert`]).

use super::*;
use crate::columns::{Insert, Value};
use crate::raw::Writer;
use sqlx::SqliteConnection;

impl Store {
    /// Records the host (once per identity) and a new run on it.
    pub async fn begin_run(&self, run: &NewRun, host: &HostInfo) -> Result<RunId, StoreError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin a run"))?;
        let id = begin_run(&mut tx, run, host).await?;
        tx.commit().await.map_err(sql("record the run"))?;
        Ok(id)
    }

    /// Marks a run finished.
    pub async fn finish_run(
        &self,
        run: RunId,
        status: RunStatus,
        finished_at: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(sql("finish the run"))?;
        finish_run(&mut conn, run, status, finished_at).await
    }

    /// Records where a run came from: the command that started it with others (one run
    /// per remote target), and the target of targets.toml it ran on (for a controller).
    pub async fn set_run_origin(
        &self,
        run: RunId,
        invocation: Option<&str>,
        target: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE run SET invocation = COALESCE(?, invocation), target = COALESCE(?, target)
             WHERE id = ?",
        )
        .bind(invocation)
        .bind(target)
        .bind(run.0)
        .execute(&self.pool)
        .await
        .map_err(sql("record where the run came from"))?;
        Ok(())
    }

    /// The remote target (its name in targets.toml) run `uuid` was measured on, if a
    /// controller ran it there.
    pub async fn run_target(&self, uuid: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT target FROM run WHERE uuid = ?")
                .bind(uuid)
                .fetch_optional(&self.pool)
                .await
                .map_err(sql("read the run's target"))?;
        Ok(row.and_then(|(t,)| t))
    }

    /// The UUIDs of the runs started by the command that started run `uuid` (itself
    /// included), oldest first; just `uuid` for a run started on its own.
    pub async fn invocation_runs(&self, uuid: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT r.uuid FROM run r JOIN run me ON me.invocation = r.invocation
             WHERE me.uuid = ? ORDER BY r.started_at, r.id",
        )
        .bind(uuid)
        .fetch_all(&self.pool)
        .await
        .map_err(sql("find the runs of the invocation"))?;
        Ok(match rows.is_empty() {
            true => vec![uuid.to_string()],
            false => rows.into_iter().map(|(u,)| u).collect(),
        })
    }

    /// A stored run, by UUID.
    pub async fn run_by_uuid(&self, uuid: &str) -> Result<Option<StoredRun>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(sql("look up the run"))?;
        run_by_uuid(&mut conn, uuid).await
    }

    /// The cell indices of a run that have a stored result.
    pub async fn stored_cells(&self, run: RunId) -> Result<Vec<usize>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(sql("read the run's cells"))?;
        stored_cells(&mut conn, run).await
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
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(sql("record the backend build"))?;
        let mut handle = conn
            .lock_handle()
            .await
            .map_err(sql("record the backend build"))?;
        build_id(&mut Writer::new(handle.as_raw_handle()), b)
    }

    /// The id of a model, recorded on first sight.
    pub async fn model(&self, m: &ModelRecord) -> Result<ModelId, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(sql("record the model"))?;
        let mut handle = conn.lock_handle().await.map_err(sql("record the model"))?;
        model_id(&mut Writer::new(handle.as_raw_handle()), m)
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
        // IMMEDIATE: the write lock first, since [`ResultRows`] reads the largest id before
        // it writes (a deferred transaction's read could go stale under another writer).
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("store a result"))?;
        let ids = {
            let mut handle = tx.lock_handle().await.map_err(sql("store a result"))?;
            let mut w = Writer::new(handle.as_raw_handle());
            let mut batch = ResultRows::new(&mut w)?;
            let ids = rs
                .iter()
                .map(|r| {
                    batch.push(
                        &mut w,
                        run,
                        build,
                        model,
                        Row {
                            model_name,
                            repetitions_expected,
                            result: r,
                            rate_summary: None,
                        },
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            batch.finish(&mut w)?;
            ids
        };
        tx.commit().await.map_err(sql("store a result"))?;
        Ok(ids)
    }

    /// Stores many cells of one run, each with the build and model it ran on, in one
    /// transaction (all or none), every statement prepared once.
    pub async fn insert_batch(
        &self,
        run: RunId,
        cells: &[BatchCell<'_>],
    ) -> Result<Vec<ResultId>, StoreError> {
        let mut batch = self.begin_batch().await?;
        let ids = batch.insert_cells(run, cells).await?;
        batch.commit().await?;
        Ok(ids)
    }

    /// A transaction for many runs' writes, all or none: what `import` writes through, so
    /// that a bad file among many leaves the database as it was. It holds the store's one
    /// connection, and SQLite's write lock, until [`Batch::commit`] or until dropped (which
    /// rolls back): no other call on this store may be made meanwhile.
    pub async fn begin_batch(&self) -> Result<Batch, StoreError> {
        // IMMEDIATE: the write lock first, since [`ResultRows`] reads the largest id before
        // it writes (a deferred transaction's read could go stale under another writer).
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("store results"))?;
        Ok(Batch { tx })
    }
}

/// Writes of many runs in one transaction: see [`Store::begin_batch`].
pub struct Batch {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl Batch {
    /// [`Store::run_by_uuid`], seeing what this batch wrote.
    pub async fn run_by_uuid(&mut self, uuid: &str) -> Result<Option<StoredRun>, StoreError> {
        run_by_uuid(&mut self.tx, uuid).await
    }

    /// [`Store::begin_run`], in this batch.
    pub async fn begin_run(&mut self, run: &NewRun, host: &HostInfo) -> Result<RunId, StoreError> {
        begin_run(&mut self.tx, run, host).await
    }

    /// [`Store::stored_cells`], seeing what this batch wrote.
    pub async fn stored_cells(&mut self, run: RunId) -> Result<Vec<usize>, StoreError> {
        stored_cells(&mut self.tx, run).await
    }

    /// [`Store::finish_run`], in this batch.
    pub async fn finish_run(
        &mut self,
        run: RunId,
        status: RunStatus,
        finished_at: &str,
    ) -> Result<(), StoreError> {
        finish_run(&mut self.tx, run, status, finished_at).await
    }

    /// Stores many cells of one run, each with the build and model it ran on, every
    /// statement prepared once (for this call).
    pub async fn insert_cells(
        &mut self,
        run: RunId,
        cells: &[BatchCell<'_>],
    ) -> Result<Vec<ResultId>, StoreError> {
        let mut handle = self.tx.lock_handle().await.map_err(sql("store results"))?;
        let mut w = Writer::new(handle.as_raw_handle());
        let mut ids = Vec::with_capacity(cells.len());
        let mut batch = ResultRows::new(&mut w)?;
        // A batch names a few builds and models, each found or recorded once.
        let mut builds = Vec::new();
        let mut models = Vec::new();
        for c in cells {
            let build = seen(&mut builds, c.build, || build_id(&mut w, c.build))?;
            let model = c
                .model
                .map(|m| seen(&mut models, m, || model_id(&mut w, m)))
                .transpose()?;
            ids.push(batch.push(
                &mut w,
                run,
                build,
                model,
                Row {
                    model_name: c.model_name,
                    repetitions_expected: c.repetitions_expected,
                    result: c.result,
                    rate_summary: c.rate_summary,
                },
            )?);
        }
        batch.finish(&mut w)?;
        Ok(ids)
    }

    /// Makes every write of the batch durable at once.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(sql("store results"))
    }
}

/// [`Store::begin_run`] on `conn`, in the caller's transaction.
async fn begin_run(
    conn: &mut SqliteConnection,
    run: &NewRun,
    host: &HostInfo,
) -> Result<RunId, StoreError> {
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
    .execute(&mut *conn)
    .await
    .map_err(sql("record the host"))?;
    let (host_id,): (i64,) = sqlx::query_as("SELECT id FROM host WHERE identity = ?")
        .bind(host.identity())
        .fetch_one(&mut *conn)
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
    .execute(&mut *conn)
    .await
    .map_err(sql("record the run"))?
    .last_insert_rowid();
    Ok(RunId(id))
}

/// [`Store::finish_run`] on `conn`.
async fn finish_run(
    conn: &mut SqliteConnection,
    run: RunId,
    status: RunStatus,
    finished_at: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE run SET status = ?, finished_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(finished_at)
        .bind(run.0)
        .execute(conn)
        .await
        .map_err(sql("finish the run"))?;
    Ok(())
}

/// [`Store::run_by_uuid`] on `conn`.
async fn run_by_uuid(
    conn: &mut SqliteConnection,
    uuid: &str,
) -> Result<Option<StoredRun>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        uuid: String,
        suite_path: Option<String>,
        config_text: Option<String>,
        status: String,
    }
    let row: Option<Row> =
        sqlx::query_as("SELECT id, uuid, suite_path, config_text, status FROM run WHERE uuid = ?")
            .bind(uuid)
            .fetch_optional(conn)
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

/// [`Store::stored_cells`] on `conn`.
async fn stored_cells(conn: &mut SqliteConnection, run: RunId) -> Result<Vec<usize>, StoreError> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT DISTINCT cell_index FROM result WHERE run_id = ? ORDER BY 1")
            .bind(run.0)
            .fetch_all(conn)
            .await
            .map_err(sql("read the run's cells"))?;
    Ok(rows.into_iter().map(|(i,)| i as usize).collect())
}

/// One cell of [`Store::insert_batch`]: its result, with the build and model it ran on.
#[derive(Debug, Clone, Copy)]
pub struct BatchCell<'a> {
    pub build: &'a BackendBuild,
    pub model: Option<&'a ModelRecord>,
    pub model_name: &'a str,
    pub repetitions_expected: u32,
    pub result: &'a CellResult,
    /// The backend's own mean and sd of a rate, stored in place of the one computed from
    /// the repetitions (llama-bench's SQL output has none).
    pub rate_summary: Option<(Rate, f64, Option<f64>)>,
}

/// A rate a result summarises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Prefill,
    Decode,
}

/// The id `find` gives for `item`, asked once per distinct item: `known` holds the answers
/// so far (a batch has a few builds and models, so a scan beats hashing whole rows).
fn seen<'a, T: PartialEq, I: Copy>(
    known: &mut Vec<(&'a T, I)>,
    item: &'a T,
    find: impl FnOnce() -> Result<I, StoreError>,
) -> Result<I, StoreError> {
    if let Some((_, id)) = known.iter().find(|(k, _)| *k == item) {
        return Ok(*id);
    }
    let id = find()?;
    known.push((item, id));
    Ok(id)
}

/// The id of the catalog row `select` finds with `key` once `insert` (which does nothing
/// where the row is already there) has run.
fn find_or_insert(
    w: &mut Writer,
    insert: impl FnOnce(&mut Writer) -> Result<(), StoreError>,
    select: &str,
    key: &[Value],
    what: &str,
) -> Result<i64, StoreError> {
    insert(w)?;
    w.query_i64(select, key, what)?
        .ok_or_else(|| StoreError::Sql {
            what: format!("{what}: the row is missing after its insert"),
            source: sqlx::Error::RowNotFound,
        })
}

/// The id of a backend build, recorded on first sight.
pub(crate) fn build_id(w: &mut Writer, b: &BackendBuild) -> Result<BuildId, StoreError> {
    let BackendBuild {
        name,
        version,
        commit,
        accel,
        flags,
    } = b;
    let key = [
        Value::from(name.as_str()),
        Value::from(version.as_str()),
        Value::from(commit),
        Value::from(accel.as_str()),
        Value::from(flags.as_str()),
    ];
    let what = "record the backend build";
    find_or_insert(
        w,
        |w| {
            w.execute(
                "INSERT INTO backend_build (name, version, commit_sha, accel, flags)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                &key,
                what,
            )
        },
        "SELECT id FROM backend_build WHERE name = ? AND version = ?
           AND IFNULL(commit_sha, '') = IFNULL(?, '') AND accel = ? AND flags = ?",
        &key,
        what,
    )
    .map(BuildId)
}

/// The id of a model, recorded on first sight.
pub(crate) fn model_id(w: &mut Writer, m: &ModelRecord) -> Result<ModelId, StoreError> {
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
    let what = "record the model";
    let insert = Insert::into("model")
        .set("name", name.as_str())
        .set("architecture", architecture.as_str())
        .set("quant", quant.as_str())
        .set("n_params", not_past_i64("n_params", *n_params)?)
        .set("file_bytes", not_past_i64("file_bytes", *file_bytes)?)
        .set("file_sha256", file_sha256.as_str())
        // Nothing known of the shape is `{}` (the column's default), never empty text,
        // which is not JSON (a server's jsonb refuses it).
        .set(
            "shape_json",
            match shape_json.trim() {
                "" => "{}",
                shape => shape,
            },
        )
        .set("origin", origin.as_str())
        .on_conflict_do_nothing();
    find_or_insert(
        w,
        |w| insert.execute_raw(w, what).map(|_| ()),
        "SELECT id FROM model WHERE file_sha256 = ? AND name = ?",
        &[
            Value::from(file_sha256.as_str()),
            Value::from(name.as_str()),
        ],
        what,
    )
    .map(ModelId)
}

/// A model's count or size for a NOT NULL column: one past `i64::MAX` is refused, naming the
/// model's field, rather than stored wrapped or as NULL.
fn not_past_i64(field: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Sql {
        what: format!("record the model: {field} = {v} is past what SQLite stores (2^63 - 1)"),
        source: sqlx::Error::Protocol(format!("{field} out of range")),
    })
}

/// What one result row is made of besides its run, build and model.
pub(crate) struct Row<'a> {
    pub(crate) model_name: &'a str,
    pub(crate) repetitions_expected: u32,
    pub(crate) result: &'a CellResult,
    /// Overrides the summary computed from the result's repetitions (see [`BatchCell`]).
    pub(crate) rate_summary: Option<(Rate, f64, Option<f64>)>,
}

/// Results and the rows that name them (requests, repetitions, telemetry samples), written
/// as multi-row inserts of [`RESULTS_PER_INSERT`] results and [`CHILDREN_PER_INSERT`] other
/// rows: a statement's own work (its cursors, its statement journal, its foreign-key
/// cursors) cost more than the rows it wrote. Here 100,000 results and their 500,000
/// repetitions, in a statement per result and one per result's repetitions, took 3.3-3.7 s
/// to store; the sqlite3 shell's `INSERT … SELECT` of the same rows takes 0.65 s.
/// Each result's id is given, not taken from `last_insert_rowid`: one past the largest
/// when the writer's transaction began (what SQLite itself picks for an `INTEGER PRIMARY
/// KEY`), so its rows can be written after it, in later statements. Only valid inside the
/// one write transaction the writer lives in; [`ResultRows::finish`] writes what is left.
pub(crate) struct ResultRows {
    next_id: i64,
    results: Vec<Insert>,
    requests: Vec<Insert>,
    repetitions: Vec<Insert>,
    samples: Vec<Insert>,
}

/// Results per multi-row insert: 32 of about 90 columns is some 2,900 parameters, well
/// inside SQLite's 32,766.
const RESULTS_PER_INSERT: usize = 32;
/// Requests, repetitions or samples per multi-row insert.
const CHILDREN_PER_INSERT: usize = 64;

impl ResultRows {
    pub(crate) fn new(w: &mut Writer) -> Result<ResultRows, StoreError> {
        let last = w
            .query_i64(
                "SELECT IFNULL(MAX(id), 0) FROM result",
                &[],
                "store results",
            )?
            .unwrap_or(0);
        Ok(ResultRows {
            next_id: last + 1,
            results: Vec::new(),
            requests: Vec::new(),
            repetitions: Vec::new(),
            samples: Vec::new(),
        })
    }

    /// Writes every full statement's worth; the results first, which the other rows name.
    fn flush_full(&mut self, w: &mut Writer) -> Result<(), StoreError> {
        if self.results.len() >= RESULTS_PER_INSERT {
            flush(&mut self.results, RESULTS_PER_INSERT, w, "store results")?;
        }
        for (rows, what) in [
            (&mut self.requests, "store requests"),
            (&mut self.repetitions, "store results' repetitions"),
            (&mut self.samples, "store telemetry samples"),
        ] {
            if rows.len() >= CHILDREN_PER_INSERT {
                flush(&mut self.results, RESULTS_PER_INSERT, w, "store results")?;
                flush(rows, CHILDREN_PER_INSERT, w, what)?;
            }
        }
        Ok(())
    }

    /// Writes every row still held.
    pub(crate) fn finish(mut self, w: &mut Writer) -> Result<(), StoreError> {
        flush(&mut self.results, RESULTS_PER_INSERT, w, "store results")?;
        for (rows, what) in [
            (&mut self.requests, "store requests"),
            (&mut self.repetitions, "store results' repetitions"),
            (&mut self.samples, "store telemetry samples"),
        ] {
            flush(rows, CHILDREN_PER_INSERT, w, what)?;
        }
        Ok(())
    }

    /// Adds one result and its rows; returns the id it is stored under.
    pub(crate) fn push(
        &mut self,
        w: &mut Writer,
        run: RunId,
        build: BuildId,
        model: Option<ModelId>,
        row: Row<'_>,
    ) -> Result<ResultId, StoreError> {
        let id = self.next_id;
        self.next_id += 1;
        let Row {
            model_name,
            repetitions_expected,
            result: r,
            rate_summary,
        } = row;
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
                conditions,
            } = r;
            // A server backend's cells (client and server figures) are `serve` workloads: the
            // same pp/tg label means a request, not an engine test.
            let kind = if serving.is_some() || *metric_source != tokbench_core::MetricSource::Engine
            {
                "serve"
            } else {
                "bench"
            };
            let unreported = tokbench_core::record::AllocatedMemory::default();
            let alloc = allocated.as_ref().unwrap_or(&unreported);
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
            let telemetry_json = match telemetry {
                Some(t) => Some(telemetry_json(w, run, t)?),
                None => None,
            };
            let sv = serving.as_ref().map(|s| &s.summary);
            let cache_key = format!(
                "workload\0{kind}\0{}\0{}\0{}",
                test.n_prompt, test.n_gen, test.n_depth
            );
            // Every result names its workload, and a transaction's results share a few: the
            // writer remembers each one's id.
            let workload_id = match w.cached(&cache_key) {
                Some(id) => id,
                None => {
                    let what = "store a result's workload";
                    let key = [
                        Value::from(kind),
                        Value::from(test.n_prompt),
                        Value::from(test.n_gen),
                        Value::from(test.n_depth),
                    ];
                    let id = find_or_insert(
                        w,
                        |w| {
                            w.execute(
                                "INSERT INTO workload (kind, n_prompt, n_gen, n_depth, label)
                             VALUES (?, ?, ?, ?, ?)
                             ON CONFLICT (kind, n_prompt, n_gen, n_depth) DO NOTHING",
                                &[key.as_slice(), &[Value::from(test.label())]].concat(),
                                what,
                            )
                        },
                        "SELECT id FROM workload
                     WHERE kind = ? AND n_prompt = ? AND n_gen = ? AND n_depth = ?",
                        &key,
                        what,
                    )?;
                    w.cache(cache_key, id)
                }
            };
            let mut summary = r.summary();
            match rate_summary {
                Some((Rate::Prefill, mean, sd)) => {
                    (summary.prefill_tps, summary.prefill_tps_sd) = (Some(mean), sd)
                }
                Some((Rate::Decode, mean, sd)) => {
                    (summary.decode_tps, summary.decode_tps_sd) = (Some(mean), sd)
                }
                None => {}
            }
            let telemetry_method = t_decode
                .energy_method
                .clone()
                .or(t_prefill.energy_method.clone());
            // A setting without a value (auto, or not stated by an import) is NULL.
            let settings = tokbench_core::EngineSettings::from(*params);
            let result = Insert::with_capacity("result", 96)
                .set("id", id)
                .set("run_id", run.0)
                .set("cell_index", *cell_index as i64)
                .set("backend_build_id", build.0)
                .set("model_id", model.map(|m| m.0))
                .set("model_name", model_name)
                .set("workload_id", workload_id)
                .set("n_threads", settings.n_threads)
                .set("n_batch", settings.n_batch)
                .set("n_ubatch", settings.n_ubatch)
                .set("n_gpu_layers", settings.n_gpu_layers.map(i64::from))
                .set("flash_attn", settings.flash_attn)
                .set("type_k", settings.type_k.map(|t| t.name()))
                .set("type_v", settings.type_v.map(|t| t.name()))
                .set("use_mmap", settings.use_mmap)
                .set("n_cpu_moe", settings.n_cpu_moe)
                .set("split_mode", settings.split_mode.map(|m| m.name()))
                .set("main_gpu", settings.main_gpu)
                .set("tensor_split", settings.tensor_split.map(|t| t.to_string()))
                .set(
                    "tensor_buft_overrides",
                    settings.tensor_buft_overrides.map(|o| o.as_str()),
                )
                .set(
                    "params_auto",
                    (!params.unset.auto.is_empty()).then(|| params.unset.auto.to_string()),
                )
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
                .set("n_layers_offloaded", alloc.layers_offloaded)
                .set("n_layers_total", alloc.layers_total)
                .set("placement_json", placement_json(alloc))
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
                .set("noisy", r.noisy())
                .set("throttled", conditions.as_ref().and_then(|c| c.throttled))
                .set(
                    "throttle_reason",
                    conditions.as_ref().and_then(|c| c.throttle.as_deref()),
                )
                .set(
                    "cpu_governor",
                    conditions.as_ref().and_then(|c| c.cpu_governor.as_deref()),
                );
            self.results.push(result);
            for rq in serving.iter().flat_map(|s| &s.requests) {
                let request = Insert::into("request")
                    .set("result_id", id)
                    .set("idx", rq.index)
                    .set("start_ms", rq.start_ms)
                    .set("ttft_ms", rq.ttft_ms)
                    .set("e2e_ms", rq.e2e_ms)
                    .set("tpot_ms", rq.tpot_ms())
                    .set("n_prompt", rq.n_prompt)
                    .set("n_gen", rq.n_gen)
                    .set(
                        "itl_json",
                        serde_json::to_string(&rq.itl_ms).unwrap_or_else(|_| "[]".into()),
                    )
                    .set(
                        "server_json",
                        rq.server
                            .as_ref()
                            .and_then(|t| serde_json::to_string(t).ok()),
                    )
                    .set("error", &rq.error);
                self.requests.push(request);
            }
            for (i, rep) in repetitions.iter().enumerate() {
                self.repetitions.push(
                    Insert::into("repetition")
                        .set("result_id", id)
                        .set("rep", i as i64)
                        .set("prefill_tps", rep.prefill_tps)
                        .set("decode_tps", rep.decode_tps)
                        .set("ttft_ms", rep.ttft_ms)
                        .set("prompt_ms", rep.prompt_ms)
                        .set("gen_ms", rep.gen_ms),
                );
            }
            for t in telemetry.iter().flat_map(|t| &t.samples) {
                self.samples.push(
                    Insert::into("telemetry_sample")
                        .set("result_id", id)
                        .set("t_ms", t.t_ms)
                        .set("phase", t.phase.as_str())
                        .set("metric", t.metric.as_str())
                        .set("value", t.value)
                        .set("source", t.source.as_str()),
                );
            }
            self.flush_full(w)?;
            Ok(ResultId(id))
        }
    }
}

/// Writes `rows` (one table, the same columns) in inserts of up to `per` rows, and empties
/// it.
fn flush(rows: &mut Vec<Insert>, per: usize, w: &mut Writer, what: &str) -> Result<(), StoreError> {
    let mut rows = std::mem::take(rows).into_iter().peekable();
    while rows.peek().is_some() {
        Insert::execute_rows(rows.by_ref().take(per).collect(), w, what)?;
    }
    Ok(())
}

/// A result's `placement_json`: each buffer by device and the devices used, as llama.cpp
/// reported them (migration 12), and where the engine read them, each accelerator's own
/// account of its free memory (`device_memory`: before and after the load and during the
/// test, with `usage_visible` false where the readings cannot show a process's use); NULL
/// where there is none of these.
fn placement_json(a: &tokbench_core::record::AllocatedMemory) -> Option<String> {
    if a.buffers.is_empty() && a.devices.is_empty() && a.device_memory.is_empty() {
        return None;
    }
    let mut json = serde_json::json!({ "buffers": a.buffers, "devices": a.devices });
    if !a.device_memory.is_empty() {
        json["device_memory"] = a
            .device_memory
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["usage_visible"] = d.usage_visible().into();
                v
            })
            .collect();
    }
    Some(json.to_string())
}

/// A cell's `telemetry_json`: its phases without the figures nobody measured (a key that is
/// absent reads as NULL, as `null` did), and the metrics this machine cannot measure only
/// where they differ from its run's list, which the run's first cell with telemetry sets
/// (`run.telemetry_unavailable_json`, migration 9).
fn telemetry_json(
    w: &mut Writer,
    run: RunId,
    t: &tokbench_core::record::CellTelemetry,
) -> Result<String, StoreError> {
    let unavailable = serde_json::to_string(&t.unavailable).unwrap_or_else(|_| "[]".into());
    let binds = [Value::from(unavailable.as_str()), Value::from(run.0)];
    w.execute(
        "UPDATE run SET telemetry_unavailable_json = ?
         WHERE id = ? AND telemetry_unavailable_json IS NULL",
        &binds,
        "record what telemetry cannot measure",
    )?;
    let same = w.query_i64(
        "SELECT telemetry_unavailable_json IS ? FROM run WHERE id = ?",
        &binds,
        "record what telemetry cannot measure",
    )? == Some(1);
    let phases: Vec<serde_json::Value> = t
        .phases
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            if let Some(fields) = v.as_object_mut() {
                fields.retain(|_, x| !x.is_null());
            }
            v
        })
        .collect();
    let mut json = serde_json::json!({ "phases": phases });
    if !same {
        json["unavailable"] = serde_json::json!(t.unavailable);
    }
    Ok(json.to_string())
}
