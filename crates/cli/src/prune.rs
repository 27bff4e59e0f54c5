//! `tokbench prune --older-than DAYS`: the raw telemetry samples of runs older than DAYS
//! reduced to their per-phase summaries (see the store's `prune_samples`), so a years-long
//! fleet history stays small, in a SQLite file or on a PostgreSQL server. Results are never
//! deleted.

use std::path::PathBuf;

use anyhow::Context;
use tokbench_store::{PgStore, PruneReport, Store, StoreError};

use crate::exit::{BadInput, ExitCode};

/// `tokbench prune`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Prune the samples of runs that started more than this many days ago (`90` or `90d`).
    #[arg(long, value_name = "DAYS", value_parser = parse_days)]
    pub older_than: f64,
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: PathBuf,
    /// Count what would be pruned; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Then rewrite the file without its freed pages (`VACUUM`), so it shrinks on disk.
    #[arg(long)]
    pub vacuum: bool,
}

fn parse_days(s: &str) -> Result<f64, String> {
    let n = s.strip_suffix('d').unwrap_or(s);
    match n.parse::<f64>() {
        Ok(d) if d.is_finite() && d >= 0.0 => Ok(d),
        _ => Err(format!(
            "`{s}` is not a number of days (0 or more, as `90` or `90d`)"
        )),
    }
}

pub async fn command(args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .db
        .to_str()
        .filter(|d| tokbench_store::is_postgres_url(d));
    // Pruning a database that is not there would create an empty one and report nothing.
    if url.is_none() && !args.db.exists() {
        return Err(BadInput(format!("no database at {}", args.db.display())).into());
    }
    let cutoff =
        time::OffsetDateTime::now_utc() - time::Duration::seconds_f64(args.older_than * 86_400.0);
    let cutoff = cutoff
        .format(&time::format_description::well_known::Rfc3339)
        .context("format the cutoff time")?;
    let shown = crate::output::display_db(&args.db);
    let say = |r: &PruneReport| {
        let verb = match args.dry_run {
            true => "would reduce",
            false => "reduced",
        };
        eprintln!(
            "prune {shown}: {verb} {} telemetry samples of {} results in {} runs started before {cutoff} to per-phase summaries; {} samples kept; no result deleted",
            r.samples, r.results, r.runs, r.samples_kept,
        );
    };
    let vacuumed = |(before, after): (u64, u64)| {
        eprintln!(
            "prune {shown}: vacuumed, {:.1} MB → {:.1} MB",
            before as f64 / 1e6,
            after as f64 / 1e6
        )
    };
    let vacuum = args.vacuum && !args.dry_run;
    match url {
        Some(url) => {
            let store = PgStore::open(url).await.map_err(|e| match e {
                StoreError::NewerSchema { .. } => anyhow::Error::new(BadInput(e.to_string())),
                other => anyhow::Error::new(other),
            })?;
            let r = store.prune_samples(&cutoff, args.dry_run).await?;
            say(&r);
            if vacuum {
                vacuumed(store.vacuum().await?);
            } else if !args.dry_run && r.samples > 0 {
                eprintln!(
                    "prune {shown}: the server's autovacuum makes the freed space reusable; `--vacuum` rewrites the samples table now (VACUUM FULL, which holds runners' forwards until it is done)"
                );
            }
            store.close().await;
        }
        None => {
            let store = Store::open(&args.db).await.with_context(|| {
                format!("cannot open the results database {}", args.db.display())
            })?;
            let r = store.prune_samples(&cutoff, args.dry_run).await?;
            say(&r);
            if vacuum {
                vacuumed(store.vacuum().await?);
            } else if !args.dry_run && r.samples > 0 {
                eprintln!(
                    "prune {shown}: the freed pages are reused by later runs; `--vacuum` shrinks the file now"
                );
            }
            store.close().await;
        }
    }
    Ok(ExitCode::Ok)
}
