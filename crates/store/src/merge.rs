//! `tokbench merge`: copies the runs of another results database into this one. The
//! source is ATTACHed read-only (`mode=ro`) on a connection of its own and never written;
//! everything is copied in one `BEGIN IMMEDIATE` transaction on the destination, so a merge
//! that fails or is killed part way leaves the destination as it was.
//!
//! Identity, since row ids differ between databases: a run is its `uuid`, a host its
//! `identity`, hardware its `name`, a backend build (name, version, commit, accel, flags),
//! a model (file_sha256, name), a workload (kind, n_prompt, n_gen, n_depth), a result
//! (run, cell_index, metric_source). Every foreign key is remapped through temporary
//! tables from source ids to destination ids.
//!
//! Decisions:
//! - A source written by an older tokbench is read as it is: the columns it lacks are left
//!   out of the copy, so they take their default (NULL) in the destination, as a migration
//!   would have left them. The source is never migrated. A source with a migration this
//!   tokbench does not know is refused before anything is written.
//! - A run already in the destination is not copied again, but the cells the destination
//!   lacks are added (a copy of a database taken mid-run, a run resumed elsewhere). A cell
//!   both have keeps the destination's result, unless that one is `interrupted` and the
//!   source's is not: then the source's replaces it, as a resume would have. When the
//!   destination's run is still `running`/`interrupted` and the source's finished
//!   (`ok`/`failed`), the run takes the source's status and finish time. All of it is
//!   idempotent: a second merge finds nothing to do.
//! - Catalog rows (hardware, hosts, builds, models, workloads) are taken as a union; a row
//!   the destination already has keeps the destination's values.
//! - Verdicts and change points (`tokbench check`) are copied when both databases have
//!   those tables: a verdict once per (check, result, metric), a change point once per
//!   (series, time, note).

use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};

use crate::{sql, Store, StoreError, MIGRATOR};

/// What one merge added to the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// The source database.
    pub source: PathBuf,
    /// Runs copied (their UUID was new to the destination).
    pub runs_added: u64,
    /// Runs of the source the destination already had (by UUID), extended or not.
    pub runs_skipped: u64,
    /// Runs the destination already had that gained cells or the source's final status.
    pub runs_extended: u64,
    pub results_added: u64,
    /// Destination results `interrupted` that the source's finished result replaced
    /// (also counted in `results_added`).
    pub results_replaced: u64,
    pub repetitions_added: u64,
    pub telemetry_added: u64,
    pub verdicts_added: u64,
    pub change_points_added: u64,
    pub hardware_added: u64,
    pub hosts_added: u64,
    pub builds_added: u64,
    pub models_added: u64,
    pub workloads_added: u64,
}

impl MergeReport {
    /// Returns true if and only if the merge changed nothing in the destination.
    pub fn is_noop(&self) -> bool {
        let MergeReport {
            source: _,
            runs_added,
            runs_skipped: _,
            runs_extended,
            results_added,
            results_replaced,
            repetitions_added,
            telemetry_added,
            verdicts_added,
            change_points_added,
            hardware_added,
            hosts_added,
            builds_added,
            models_added,
            workloads_added,
        } = self;
        [
            runs_added,
            runs_extended,
            results_added,
            results_replaced,
            repetitions_added,
            telemetry_added,
            verdicts_added,
            change_points_added,
            hardware_added,
            hosts_added,
            builds_added,
            models_added,
            workloads_added,
        ]
        .iter()
        .all(|n| **n == 0)
    }
}

/// A catalog table: copied as a union, keyed by its natural key.
struct Catalog {
    table: &'static str,
    /// Joins a source row `s` with its destination row `d`.
    same: &'static str,
    /// Foreign keys to remap: (column, map table).
    remap: &'static [(&'static str, &'static str)],
}

const CATALOGS: [Catalog; 5] = [
    Catalog {
        table: "hardware",
        same: "d.name = s.name",
        remap: &[],
    },
    Catalog {
        table: "host",
        same: "d.identity = s.identity",
        remap: &[("hardware_id", "merge_map_hardware")],
    },
    Catalog {
        table: "backend_build",
        same: "d.name = s.name AND d.version = s.version
               AND IFNULL(d.commit_sha, '') = IFNULL(s.commit_sha, '')
               AND d.accel = s.accel AND d.flags = s.flags",
        remap: &[],
    },
    Catalog {
        table: "model",
        same: "d.file_sha256 = s.file_sha256 AND d.name = s.name",
        remap: &[],
    },
    Catalog {
        table: "workload",
        same: "d.kind = s.kind AND d.n_prompt = s.n_prompt AND d.n_gen = s.n_gen
               AND d.n_depth = s.n_depth",
        remap: &[],
    },
];

impl Store {
    /// Copies every run of the database at `src` that this one lacks, with its results,
    /// repetitions, telemetry and the catalog rows they use; see the module docs for what
    /// identifies a row and what happens to a run both databases have.
    ///
    /// The source is opened read-only and never changed. One transaction: on any error
    /// the destination is unchanged.
    pub async fn merge_from(&self, src: &Path) -> Result<MergeReport, StoreError> {
        self.merge_from_target(src, None).await
    }

    /// [`Store::merge_from`] of a remote target's database (what `tokbench targets sync`
    /// brought home): in the same transaction, every source run here that names no target
    /// yet is named as measured on `target`.
    pub async fn merge_from_target(
        &self,
        src: &Path,
        target: Option<&str>,
    ) -> Result<MergeReport, StoreError> {
        if !src.exists() {
            return Err(StoreError::Missing { path: src.into() });
        }
        if same_file(src, &self.path) {
            return Err(StoreError::MergeIntoItself { path: src.into() });
        }
        // A connection of our own (taken out of the pool, closed afterwards), so that the
        // ATTACH and the temporary tables never outlive the merge, even if it is cancelled.
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(sql("connect to the destination"))?
            .detach();
        let uri = read_only_uri(src);
        let merged = match sqlx::query("ATTACH DATABASE ? AS src")
            .bind(&uri)
            .execute(&mut conn)
            .await
        {
            Ok(_) => merge_attached(&mut conn, src, target).await,
            Err(source) => Err(StoreError::Open {
                path: src.into(),
                source,
            }),
        };
        let _ = conn.close().await;
        merged
    }
}

/// Writes a consistent copy of the database at `src` to `out` (which must not exist):
/// SQLite's `VACUUM INTO`, a read transaction, so a run writing to `src` meanwhile goes on
/// and the copy holds every cell committed before it began, whole. The source is opened
/// read-only; its -wal is read, never checkpointed. How `tokbench targets sync` reads a
/// target's database over SSH.
pub async fn snapshot(src: &Path, out: &Path) -> Result<(), StoreError> {
    if !src.is_file() {
        return Err(StoreError::Open {
            path: src.into(),
            source: sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no database there",
            )),
        });
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(src)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(60));
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(|source| StoreError::Open {
            path: src.into(),
            source,
        })?;
    sqlx::query("VACUUM INTO ?")
        .bind(out.to_string_lossy().as_ref())
        .execute(&mut conn)
        .await
        .map_err(sql("copy the database"))?;
    conn.close().await.map_err(sql("copy the database"))?;
    Ok(())
}

/// Returns true if and only if both paths name the same file (the same path once
/// canonical, or on Unix the same device and inode, which also catches hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(x), Ok(y)) = (a.canonicalize(), b.canonicalize()) {
        if x == y {
            return true;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

/// `file:` URI that opens `path` read-only; every byte outside the unreserved set is
/// percent-encoded, so `?`, `#` and `%` in a file name stay part of the name.
fn read_only_uri(path: &Path) -> String {
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for b in abs.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
                uri.push(*b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

async fn merge_attached(
    conn: &mut SqliteConnection,
    src: &Path,
    target: Option<&str>,
) -> Result<MergeReport, StoreError> {
    check_source_schema(conn, src).await?;
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(sql("begin the merge"))?;
    let mut report = MergeReport {
        source: src.into(),
        ..Default::default()
    };
    copy_rows(&mut tx, &mut report).await?;
    if let Some(target) = target {
        sqlx::query(
            "UPDATE main.run SET target = ? WHERE target IS NULL
             AND id IN (SELECT dst FROM temp.merge_map_run)",
        )
        .bind(target)
        .execute(&mut *tx)
        .await
        .map_err(sql("record the runs' target"))?;
    }
    tx.commit().await.map_err(sql("commit the merge"))?;
    Ok(report)
}

/// Refuses a source that is not a tokbench database or has a migration we do not know.
async fn check_source_schema(conn: &mut SqliteConnection, src: &Path) -> Result<(), StoreError> {
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM src.sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|source| StoreError::Open {
        path: src.into(),
        source,
    })?;
    if tables == 0 {
        return Err(StoreError::NotTokbench { path: src.into() });
    }
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM src._sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(sql("read the source's schema version"))?;
    for &(version, _) in &applied {
        if !MIGRATOR.iter().any(|m| m.version == version) {
            return Err(StoreError::NewerSchema {
                path: src.into(),
                version,
            });
        }
    }
    // Every table comes from the first migration; without it there is nothing to read.
    let first = MIGRATOR.iter().map(|m| m.version).min();
    if !applied.iter().any(|&(v, ok)| ok && Some(v) == first) {
        return Err(StoreError::NotTokbench { path: src.into() });
    }
    Ok(())
}

/// The columns of `schema.table`, in order.
async fn columns(
    conn: &mut SqliteConnection,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT name FROM pragma_table_info(?, ?) ORDER BY cid")
        .bind(table)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(sql(format!("read the columns of {schema}.{table}")))?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(sql(format!("read the columns of {schema}.{table}")))
}

/// `INSERT INTO main.table (…) SELECT … FROM src.table s <tail>`: the columns both
/// databases have, except `id` (the destination numbers its own rows) and the remapped
/// foreign keys, which come from `(column, expression over s)`. Returns the rows inserted.
/// [`tokbench_core::record::noisy`] in SQL, over a `result` row's columns.
pub(crate) fn noisy_sql() -> String {
    let cv = tokbench_core::stats::NOISY_CV;
    format!(
        "CASE
           WHEN decode_tps IS NOT NULL THEN
             CASE WHEN decode_tps_sd IS NULL OR decode_tps <= 0 THEN NULL
                  ELSE decode_tps_sd / decode_tps > {cv} END
           WHEN prefill_tps IS NOT NULL THEN
             CASE WHEN prefill_tps_sd IS NULL OR prefill_tps <= 0 THEN NULL
                  ELSE prefill_tps_sd / prefill_tps > {cv} END
         END"
    )
}

async fn insert_select(
    conn: &mut SqliteConnection,
    table: &str,
    remap: &[(&str, String)],
    tail: &str,
) -> Result<u64, StoreError> {
    let theirs = columns(conn, "src", table).await?;
    let ours = columns(conn, "main", table).await?;
    let mut names = Vec::new();
    let mut values = Vec::new();
    for c in &ours {
        if let Some((_, expr)) = remap.iter().find(|(r, _)| r == c) {
            names.push(format!("\"{c}\""));
            values.push(expr.clone());
        } else if c != "id" && theirs.contains(c) {
            names.push(format!("\"{c}\""));
            values.push(format!("s.\"{c}\""));
        }
    }
    let text = format!(
        "INSERT INTO main.\"{table}\" ({}) SELECT {} FROM src.\"{table}\" s {tail}",
        names.join(", "),
        values.join(", ")
    );
    let done = sqlx::query(&text)
        .execute(&mut *conn)
        .await
        .map_err(sql(format!("merge {table} rows")))?;
    Ok(done.rows_affected())
}

/// `(SELECT dst FROM temp.map WHERE src = s.column)`: NULL, and so refused by a NOT NULL
/// column, when the source row points at nothing.
fn mapped(map: &str, column: &str) -> String {
    format!("(SELECT m.dst FROM temp.{map} m WHERE m.src = s.\"{column}\")")
}

async fn exec(conn: &mut SqliteConnection, what: &str, text: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(text)
        .execute(&mut *conn)
        .await
        .map_err(sql(what.to_string()))?
        .rows_affected())
}

async fn copy_rows(
    conn: &mut SqliteConnection,
    report: &mut MergeReport,
) -> Result<(), StoreError> {
    // Catalogs: insert what is new, then map every source id to its destination id.
    for Catalog { table, same, remap } in &CATALOGS {
        let remap: Vec<(&str, String)> = remap
            .iter()
            .map(|(col, map)| (*col, mapped(map, col)))
            .collect();
        let added = insert_select(conn, table, &remap, "WHERE true ON CONFLICT DO NOTHING").await?;
        match *table {
            "hardware" => report.hardware_added = added,
            "host" => report.hosts_added = added,
            "backend_build" => report.builds_added = added,
            "model" => report.models_added = added,
            _ => report.workloads_added = added,
        }
        exec(
            conn,
            "map catalog rows",
            &format!(
                "CREATE TEMP TABLE merge_map_{table} (src INTEGER PRIMARY KEY, dst INTEGER NOT NULL);
                 INSERT INTO temp.merge_map_{table} (src, dst)
                   SELECT s.id, d.id FROM src.\"{table}\" s JOIN main.\"{table}\" d ON {same};"
            ),
        )
        .await?;
    }

    // Runs: new UUIDs are copied; every source run is mapped, flagged when it was there.
    exec(
        conn,
        "map runs",
        "CREATE TEMP TABLE merge_map_run (src INTEGER PRIMARY KEY, dst INTEGER, existed INTEGER NOT NULL);
         INSERT INTO temp.merge_map_run (src, dst, existed)
           SELECT s.id, d.id, d.id IS NOT NULL FROM src.run s LEFT JOIN main.run d ON d.uuid = s.uuid;",
    )
    .await?;
    let (skipped,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM temp.merge_map_run WHERE existed")
            .fetch_one(&mut *conn)
            .await
            .map_err(sql("map runs"))?;
    report.runs_skipped = skipped as u64;
    report.runs_added = insert_select(
        conn,
        "run",
        &[("host_id", mapped("merge_map_host", "host_id"))],
        "WHERE s.id IN (SELECT src FROM temp.merge_map_run WHERE NOT existed)",
    )
    .await?;
    exec(
        conn,
        "map runs",
        "UPDATE temp.merge_map_run SET dst = (SELECT d.id FROM main.run d JOIN src.run s
                                             ON d.uuid = s.uuid WHERE s.id = merge_map_run.src)
         WHERE NOT existed",
    )
    .await?;

    // Results: a destination result cut short by an interrupt gives way to the source's
    // finished one (its repetitions and telemetry go with it, ON DELETE CASCADE).
    report.results_replaced = exec(
        conn,
        "replace interrupted results",
        "DELETE FROM main.result WHERE status = 'interrupted' AND id IN (
           SELECT d.id FROM src.result s
           JOIN temp.merge_map_run mr ON mr.src = s.run_id AND mr.existed
           JOIN main.result d ON d.run_id = mr.dst AND d.cell_index = s.cell_index
                              AND d.metric_source = s.metric_source
           WHERE s.status <> 'interrupted')",
    )
    .await?;
    exec(
        conn,
        "choose the results to merge",
        "CREATE TEMP TABLE merge_new_result (src INTEGER PRIMARY KEY, run INTEGER NOT NULL, existed INTEGER NOT NULL);
         INSERT INTO temp.merge_new_result (src, run, existed)
           SELECT s.id, mr.dst, mr.existed FROM src.result s
           JOIN temp.merge_map_run mr ON mr.src = s.run_id
           WHERE NOT EXISTS (SELECT 1 FROM main.result d WHERE d.run_id = mr.dst
                               AND d.cell_index = s.cell_index AND d.metric_source = s.metric_source);",
    )
    .await?;
    report.results_added = insert_select(
        conn,
        "result",
        &[
            ("run_id", mapped("merge_map_run", "run_id")),
            (
                "backend_build_id",
                mapped("merge_map_backend_build", "backend_build_id"),
            ),
            ("model_id", mapped("merge_map_model", "model_id")),
            ("workload_id", mapped("merge_map_workload", "workload_id")),
        ],
        "WHERE s.id IN (SELECT src FROM temp.merge_new_result)",
    )
    .await?;
    // Every source result to its destination row: the new ones and those kept.
    exec(
        conn,
        "map results",
        "CREATE TEMP TABLE merge_map_result (src INTEGER PRIMARY KEY, dst INTEGER NOT NULL);
         INSERT INTO temp.merge_map_result (src, dst)
           SELECT s.id, d.id FROM src.result s
           JOIN temp.merge_map_run mr ON mr.src = s.run_id
           JOIN main.result d ON d.run_id = mr.dst AND d.cell_index = s.cell_index
                              AND d.metric_source = s.metric_source;",
    )
    .await?;

    // A source older than the noisy flag gives its results the flag their figures imply,
    // as the migration that added it did for the results already stored.
    exec(
        conn,
        "flag noisy results",
        &format!(
            "UPDATE main.result SET noisy = {}
             WHERE noisy IS NULL AND id IN (
               SELECT m.dst FROM temp.merge_map_result m
               JOIN temp.merge_new_result n ON n.src = m.src)",
            noisy_sql()
        ),
    )
    .await?;

    // What telemetry could not measure is kept once per run (migration 9), and a result
    // without a list of its own reads its run's. A run both databases have keeps the
    // destination's list, so results added to it from the source carry the source run's
    // list themselves where the two differ (the destination's copy was taken before its
    // first cell with telemetry, or the run went on on another machine).
    if columns(conn, "src", "run")
        .await?
        .iter()
        .any(|c| c == "telemetry_unavailable_json")
    {
        exec(
            conn,
            "carry what telemetry could not measure",
            "UPDATE main.run SET telemetry_unavailable_json = (
               SELECT s.telemetry_unavailable_json FROM src.run s
               JOIN temp.merge_map_run mr ON mr.src = s.id WHERE mr.dst = run.id)
             WHERE telemetry_unavailable_json IS NULL
               AND id IN (SELECT dst FROM temp.merge_map_run WHERE existed);
             CREATE TEMP TABLE merge_unavailable (result INTEGER PRIMARY KEY, list TEXT NOT NULL);
             INSERT INTO temp.merge_unavailable (result, list)
               SELECT m.dst, sr.telemetry_unavailable_json FROM temp.merge_map_result m
               JOIN temp.merge_new_result n ON n.src = m.src AND n.existed
               JOIN src.result s ON s.id = m.src JOIN src.run sr ON sr.id = s.run_id
               JOIN main.result d ON d.id = m.dst JOIN main.run dr ON dr.id = d.run_id
               WHERE sr.telemetry_unavailable_json IS NOT NULL
                 AND sr.telemetry_unavailable_json IS NOT dr.telemetry_unavailable_json;
             UPDATE main.result SET telemetry_json = json_set(telemetry_json, '$.unavailable',
               json((SELECT u.list FROM temp.merge_unavailable u WHERE u.result = result.id)))
             WHERE id IN (SELECT result FROM temp.merge_unavailable)
               AND json_valid(telemetry_json)
               AND json_type(telemetry_json, '$.unavailable') IS NULL;",
        )
        .await?;
    }

    // What hangs off the new results (a kept result keeps its own).
    let by_result = "WHERE s.result_id IN (SELECT src FROM temp.merge_new_result)";
    report.repetitions_added = insert_select(
        conn,
        "repetition",
        &[("result_id", mapped("merge_map_result", "result_id"))],
        by_result,
    )
    .await?;
    report.telemetry_added = insert_select(
        conn,
        "telemetry_sample",
        &[("result_id", mapped("merge_map_result", "result_id"))],
        by_result,
    )
    .await?;
    if has_table(conn, "src", "request").await? {
        insert_select(
            conn,
            "request",
            &[("result_id", mapped("merge_map_result", "result_id"))],
            by_result,
        )
        .await?;
    }

    // Runs both have: the destination's unfinished copy takes the source's ending.
    exec(
        conn,
        "finish merged runs",
        "CREATE TEMP TABLE merge_extended (run INTEGER PRIMARY KEY);
         INSERT OR IGNORE INTO temp.merge_extended (run)
           SELECT run FROM temp.merge_new_result WHERE existed;
         INSERT OR IGNORE INTO temp.merge_extended (run)
           SELECT d.id FROM main.run d
           JOIN temp.merge_map_run mr ON mr.dst = d.id AND mr.existed
           JOIN src.run s ON s.id = mr.src
           WHERE d.status IN ('running', 'interrupted') AND s.status IN ('ok', 'failed');
         UPDATE main.run SET
           status = (SELECT s.status FROM src.run s JOIN temp.merge_map_run mr ON mr.src = s.id
                     WHERE mr.dst = run.id),
           finished_at = (SELECT s.finished_at FROM src.run s JOIN temp.merge_map_run mr ON mr.src = s.id
                          WHERE mr.dst = run.id)
         WHERE status IN ('running', 'interrupted')
           AND id IN (SELECT mr.dst FROM temp.merge_map_run mr JOIN src.run s ON s.id = mr.src
                      WHERE mr.existed AND s.status IN ('ok', 'failed'));",
    )
    .await?;
    let (extended,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM temp.merge_extended")
        .fetch_one(&mut *conn)
        .await
        .map_err(sql("count merged runs"))?;
    report.runs_extended = extended as u64;

    // Regression-gating history, where both databases have it (a verdict is its check,
    // its result and its metric; a change point its series, time and note).
    if has_table(conn, "src", "verdict").await? && has_table(conn, "main", "verdict").await? {
        report.verdicts_added = insert_select(
            conn,
            "verdict",
            &[
                ("run_id", mapped("merge_map_run", "run_id")),
                ("result_id", mapped("merge_map_result", "result_id")),
            ],
            "WHERE s.result_id IN (SELECT src FROM temp.merge_map_result)
               AND NOT EXISTS (SELECT 1 FROM main.verdict d
                 WHERE d.check_uuid = s.check_uuid AND d.metric = s.metric
                   AND d.result_id = (SELECT m.dst FROM temp.merge_map_result m WHERE m.src = s.result_id))",
        )
        .await?;
    }
    if has_table(conn, "src", "change_point").await?
        && has_table(conn, "main", "change_point").await?
    {
        report.change_points_added = insert_select(
            conn,
            "change_point",
            &[],
            "WHERE NOT EXISTS (SELECT 1 FROM main.change_point d
               WHERE d.series_key = s.series_key AND d.at = s.at AND d.note = s.note)",
        )
        .await?;
    }
    Ok(())
}

/// Returns true if and only if `schema` has a table named `table`.
async fn has_table(
    conn: &mut SqliteConnection,
    schema: &str,
    table: &str,
) -> Result<bool, StoreError> {
    Ok(!columns(conn, schema, table).await?.is_empty())
}

/// Every table a merge copies; a table the schema gains must be added here (and copied),
/// which a unit test below enforces.
#[cfg(test)]
const MERGED_TABLES: [&str; 12] = [
    "hardware",
    "host",
    "backend_build",
    "model",
    "workload",
    "run",
    "result",
    "repetition",
    "telemetry_sample",
    "request",
    "verdict",
    "change_point",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_table_of_the_schema_is_merged() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("t.db")).await.unwrap();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT IN ('_sqlx_migrations') AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        for (t,) in tables {
            assert!(
                MERGED_TABLES.contains(&t.as_str()),
                "table {t} is not merged: handle it in merge.rs"
            );
        }
    }

    #[test]
    fn a_uri_keeps_odd_file_names() {
        let uri = read_only_uri(Path::new("/no/such dir/a?b#c%d.db"));
        assert_eq!(uri, "file:/no/such%20dir/a%3Fb%23c%25d.db?mode=ro");
    }
}
