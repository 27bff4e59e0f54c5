//! `tokbench prune`: raw telemetry samples are the fastest-growing part of a database (a
//! sample per metric per 100 ms of every cell), and after a while nobody plots them again.
//! Pruning deletes the samples of runs started before a cutoff and keeps, on each of their
//! results, what the reports read: the result's own columns (decode power, device-memory
//! peak) are filled from the samples where they were empty, and `telemetry_json` gains a
//! `samples_pruned` list, one entry per (phase, metric, source) with the count, min, mean,
//! max and time span of the samples it replaces. Results, repetitions and runs are never
//! deleted. All of it is one transaction: a prune cut short changes nothing.

use serde::Serialize;
use sqlx::Row;

use crate::{sql, PgStore, Store, StoreError};

/// What a prune removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Runs that had samples before the cutoff.
    pub runs: u64,
    /// Results whose samples were reduced to their summaries.
    pub results: u64,
    /// Samples deleted.
    pub samples: u64,
    /// Samples kept (runs at or after the cutoff, or with a start time SQLite cannot read).
    pub samples_kept: u64,
}

/// Results of runs started before the cutoff (`?`, an RFC 3339 time) that have samples. A
/// run whose start SQLite cannot read as a time is kept: pruning never guesses.
const PRUNED_RESULTS: &str = "SELECT r.id FROM result r JOIN run ON run.id = r.run_id
     WHERE julianday(run.started_at) < julianday(?)
       AND EXISTS (SELECT 1 FROM telemetry_sample t WHERE t.result_id = r.id)";

impl Store {
    /// Reduces the telemetry samples of runs started before `cutoff` (RFC 3339) to their
    /// per-phase summaries, in one transaction; with `dry_run`, only counts them.
    pub async fn prune_samples(
        &self,
        cutoff: &str,
        dry_run: bool,
    ) -> Result<PruneReport, StoreError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin the prune"))?;
        let counts = sqlx::query(
            "SELECT COUNT(DISTINCT r.run_id) AS runs, COUNT(DISTINCT t.result_id) AS results,
                    COUNT(*) AS samples
             FROM telemetry_sample t
             JOIN result r ON r.id = t.result_id
             JOIN run ON run.id = r.run_id
             WHERE julianday(run.started_at) < julianday(?)",
        )
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await
        .map_err(sql("count the samples to prune"))?;
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM telemetry_sample")
            .fetch_one(&mut *tx)
            .await
            .map_err(sql("count the samples"))?;
        let count = |c: &str| counts.get::<i64, _>(c) as u64;
        let report = PruneReport {
            runs: count("runs"),
            results: count("results"),
            samples: count("samples"),
            samples_kept: total as u64 - count("samples"),
        };
        if dry_run || report.samples == 0 {
            return Ok(report);
        }
        // The summaries first, while the samples are there to summarise. The two figures
        // the reports fall back to samples for (see points.rs) become the result's own.
        sqlx::query(&format!(
            "UPDATE result SET
               decode_power_avg_w = COALESCE(decode_power_avg_w,
                 (SELECT AVG(t.value) FROM telemetry_sample t WHERE t.result_id = result.id
                    AND t.metric = 'power_w' AND t.phase = 'decode')),
               vram_peak_bytes = COALESCE(vram_peak_bytes,
                 (SELECT CAST(MAX(t.value) AS INTEGER) FROM telemetry_sample t
                  WHERE t.result_id = result.id AND t.metric = 'vram_used_bytes')),
               telemetry_json = json_set(
                 CASE WHEN telemetry_json IS NULL THEN '{{}}'
                      WHEN json_valid(telemetry_json) THEN telemetry_json
                      ELSE json_object('unparsed', telemetry_json) END,
                 '$.samples_pruned',
                 json((SELECT json_group_array(json_object(
                           'phase', phase, 'metric', metric, 'source', source, 'n', n,
                           'min', lo, 'mean', mean, 'max', hi,
                           't_first_ms', t_first, 't_last_ms', t_last))
                       FROM (SELECT phase, metric, source, COUNT(*) AS n, MIN(value) AS lo,
                                    AVG(value) AS mean, MAX(value) AS hi,
                                    MIN(t_ms) AS t_first, MAX(t_ms) AS t_last
                             FROM telemetry_sample WHERE result_id = result.id
                             GROUP BY phase, metric, source
                             ORDER BY MIN(t_ms), metric, source))))
             WHERE id IN ({PRUNED_RESULTS})"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(sql("summarise the samples to prune"))?;
        let deleted = sqlx::query(&format!(
            "DELETE FROM telemetry_sample WHERE result_id IN ({PRUNED_RESULTS})"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(sql("delete the pruned samples"))?
        .rows_affected();
        tx.commit().await.map_err(sql("commit the prune"))?;
        debug_assert_eq!(deleted, report.samples);
        Ok(PruneReport {
            samples: deleted,
            ..report
        })
    }

    /// Rewrites the file without its free pages (`VACUUM`): after a prune, SQLite keeps the
    /// freed pages for reuse and the file stays its size until this runs. Returns the
    /// file's size before and after, in bytes.
    pub async fn vacuum(&self) -> Result<(u64, u64), StoreError> {
        let before = self.size_bytes().await?;
        sqlx::query("VACUUM")
            .execute(&self.pool)
            .await
            .map_err(sql("vacuum the database"))?;
        Ok((before, self.size_bytes().await?))
    }

    /// The database's size in pages × page size (the WAL not counted).
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let (pages, page_size): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT page_count FROM pragma_page_count()),
                    (SELECT page_size FROM pragma_page_size())",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(sql("read the database size"))?;
        Ok((pages * page_size) as u64)
    }
}

/// [`PRUNED_RESULTS`] on PostgreSQL (`$1`: the cutoff, as `timestamptz`).
const PG_PRUNED_RESULTS: &str = "SELECT r.id FROM result r JOIN run ON run.id = r.run_id
     WHERE run.started_at < $1::timestamptz
       AND EXISTS (SELECT 1 FROM telemetry_sample t WHERE t.result_id = r.id)";

impl PgStore {
    /// [`Store::prune_samples`] on the server, with the same summaries in `telemetry_json`
    /// (as `jsonb`), in one transaction. Runners may write while it runs: the report counts
    /// the samples it deleted, which a concurrent forward of an old run's journal can make
    /// more than were counted first.
    pub async fn prune_samples(
        &self,
        cutoff: &str,
        dry_run: bool,
    ) -> Result<PruneReport, StoreError> {
        let shown = self.url().to_string();
        let fail = |what: &str| {
            let what = format!("{shown}: {what}");
            move |source| StoreError::Sql { what, source }
        };
        let mut tx = self.pool.begin().await.map_err(fail("begin the prune"))?;
        let (runs, results, samples): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(DISTINCT r.run_id), COUNT(DISTINCT t.result_id), COUNT(*)
             FROM telemetry_sample t
             JOIN result r ON r.id = t.result_id
             JOIN run ON run.id = r.run_id
             WHERE run.started_at < $1::timestamptz",
        )
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await
        .map_err(fail("count the samples to prune"))?;
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM telemetry_sample")
            .fetch_one(&mut *tx)
            .await
            .map_err(fail("count the samples"))?;
        let report = PruneReport {
            runs: runs as u64,
            results: results as u64,
            samples: samples as u64,
            samples_kept: (total - samples) as u64,
        };
        if dry_run || report.samples == 0 {
            return Ok(report);
        }
        // As on SQLite: the summaries first, while the samples are there. `trunc` as
        // SQLite's CAST to INTEGER (PostgreSQL's cast rounds).
        sqlx::query(&format!(
            "UPDATE result SET
               decode_power_avg_w = COALESCE(decode_power_avg_w,
                 (SELECT AVG(t.value) FROM telemetry_sample t WHERE t.result_id = result.id
                    AND t.metric = 'power_w' AND t.phase = 'decode')),
               vram_peak_bytes = COALESCE(vram_peak_bytes,
                 (SELECT trunc(MAX(t.value))::bigint FROM telemetry_sample t
                  WHERE t.result_id = result.id AND t.metric = 'vram_used_bytes')),
               telemetry_json = jsonb_set(
                 CASE WHEN telemetry_json IS NULL THEN '{{}}'::jsonb
                      WHEN jsonb_typeof(telemetry_json) = 'object' THEN telemetry_json
                      ELSE jsonb_build_object('unparsed', telemetry_json) END,
                 '{{samples_pruned}}',
                 (SELECT jsonb_agg(jsonb_build_object(
                           'phase', phase, 'metric', metric, 'source', source, 'n', n,
                           'min', lo, 'mean', mean, 'max', hi,
                           't_first_ms', t_first, 't_last_ms', t_last)
                         ORDER BY t_first, metric, source)
                  FROM (SELECT phase, metric, source, COUNT(*) AS n, MIN(value) AS lo,
                               AVG(value) AS mean, MAX(value) AS hi,
                               MIN(t_ms) AS t_first, MAX(t_ms) AS t_last
                        FROM telemetry_sample WHERE result_id = result.id
                        GROUP BY phase, metric, source) AS s))
             WHERE id IN ({PG_PRUNED_RESULTS})"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(fail("summarise the samples to prune"))?;
        let deleted = sqlx::query(&format!(
            "DELETE FROM telemetry_sample WHERE result_id IN ({PG_PRUNED_RESULTS})"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(fail("delete the pruned samples"))?
        .rows_affected();
        tx.commit().await.map_err(fail("commit the prune"))?;
        Ok(PruneReport {
            samples: deleted,
            ..report
        })
    }

    /// Gives the pruned samples' space back: `VACUUM FULL` rewrites the samples table
    /// (locking it for the rewrite: a runner's forward waits, its journal holds the cells),
    /// a plain `VACUUM` makes the results' old row versions reusable. Returns the
    /// database's size before and after.
    pub async fn vacuum(&self) -> Result<(u64, u64), StoreError> {
        let before = self.size_bytes().await?;
        for statement in ["VACUUM FULL telemetry_sample", "VACUUM result"] {
            sqlx::query(statement)
                .execute(&self.pool)
                .await
                .map_err(|source| StoreError::Sql {
                    what: format!("{}: {statement}", self.url()),
                    source,
                })?;
        }
        Ok((before, self.size_bytes().await?))
    }

    /// The database's size on the server's disk (`pg_database_size`).
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let (bytes,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await
            .map_err(|source| StoreError::Sql {
                what: format!("{}: read the database size", self.url()),
                source,
            })?;
        Ok(bytes as u64)
    }
}
