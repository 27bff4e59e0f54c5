//! `tokbench prune --older-than DAYS`: the raw telemetry samples of runs older than DAYS
//! reduced to their per-phase summaries (see the store's `prune_samples`), so a years-long
//! fleet history stays small, in a SQLite file or on a PostgreSQL server. Results are never
//! deleted.

use std::path::PathBuf;

use anyhow::Context;
use tokbench_store::{PgStore, PruneReport, Store};

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

/// The database a prune works on: a SQLite file or a PostgreSQL server.
enum Db {
    File(Store),
    Server(PgStore),
}

impl Db {
    async fn open(db: &std::path::Path) -> anyhow::Result<Db> {
        match db.to_str().filter(|d| tokbench_store::is_postgres_url(d)) {
            Some(url) => crate::snapshot::open_server(url).await.map(Db::Server),
            None => {
                // Pruning a file that is not there would create an empty one and report
                // nothing.
                if !db.exists() {
                    return Err(BadInput(format!("no database at {}", db.display())).into());
                }
                Store::open(db)
                    .await
                    .map(Db::File)
                    .with_context(|| format!("cannot open the results database {}", db.display()))
            }
        }
    }

    async fn prune_samples(&self, cutoff: &str, dry_run: bool) -> anyhow::Result<PruneReport> {
        Ok(match self {
            Db::File(s) => s.prune_samples(cutoff, dry_run).await?,
            Db::Server(s) => s.prune_samples(cutoff, dry_run).await?,
        })
    }

    async fn vacuum(&self) -> anyhow::Result<(u64, u64)> {
        Ok(match self {
            Db::File(s) => s.vacuum().await?,
            Db::Server(s) => s.vacuum().await?,
        })
    }

    /// What becomes of the freed space without `--vacuum`.
    fn without_vacuum(&self) -> &'static str {
        match self {
            Db::File(_) => "the freed pages are reused by later runs; `--vacuum` shrinks the file now",
            Db::Server(_) => "the server's autovacuum makes the freed space reusable; `--vacuum` rewrites the samples table now (VACUUM FULL, which holds runners' forwards until it is done)",
        }
    }

    async fn close(self) {
        match self {
            Db::File(s) => s.close().await,
            Db::Server(s) => s.close().await,
        }
    }
}

pub async fn command(args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let db = Db::open(&args.db).await?;
    let shown = crate::output::display_db(&args.db);
    let cutoff =
        time::OffsetDateTime::now_utc() - time::Duration::seconds_f64(args.older_than * 86_400.0);
    let cutoff = cutoff
        .format(&time::format_description::well_known::Rfc3339)
        .context("format the cutoff time")?;
    let r = db.prune_samples(&cutoff, args.dry_run).await?;
    let verb = match args.dry_run {
        true => "would reduce",
        false => "reduced",
    };
    eprintln!(
        "prune {shown}: {verb} {} telemetry samples of {} results in {} runs started before {cutoff} to per-phase summaries; {} samples kept; no result deleted",
        r.samples, r.results, r.runs, r.samples_kept,
    );
    if args.vacuum && !args.dry_run {
        let (before, after) = db.vacuum().await?;
        eprintln!(
            "prune {shown}: vacuumed, {:.1} MB → {:.1} MB",
            before as f64 / 1e6,
            after as f64 / 1e6
        );
    } else if !args.dry_run && r.samples > 0 {
        eprintln!("prune {shown}: {}", db.without_vacuum());
    }
    db.close().await;
    Ok(ExitCode::Ok)
}
