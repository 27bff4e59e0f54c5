//! `tokbench merge SRC.db… --into DST.db`: every source's runs into one database, each in
//! one transaction (a merge cut short leaves the destination as it was), idempotent.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokbench_store::{Store, StoreError};

use crate::exit::{BadInput, ExitCode};

/// `tokbench merge`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Source databases.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The destination (created if missing).
    #[arg(long)]
    pub into: PathBuf,
}

/// `tokbench merge`: every source into the destination.
pub async fn command(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    merge_command(&args.sources, &args.into).await
}

async fn merge_command(sources: &[PathBuf], into: &Path) -> anyhow::Result<ExitCode> {
    let dst = Store::open(into)
        .await
        .with_context(|| format!("cannot open the destination {}", into.display()))?;
    for src in sources {
        let report = dst.merge_from(src).await.map_err(|e| match e {
            StoreError::Missing { .. }
            | StoreError::NotTokbench { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::MergeIntoItself { .. } => anyhow::Error::new(BadInput(e.to_string())),
            other => anyhow::Error::new(other).context(format!("cannot merge {}", src.display())),
        })?;
        eprintln!(
            "merge {} → {}: {} runs added, {} already there ({} extended), {} results added, {} replaced, {} repetitions, {} telemetry samples",
            src.display(),
            into.display(),
            report.runs_added,
            report.runs_skipped,
            report.runs_extended,
            report.results_added,
            report.results_replaced,
            report.repetitions_added,
            report.telemetry_added,
        );
    }
    let integrity = dst
        .integrity_check_up_to(tokbench_store::CLOSING_CHECK_MAX_BYTES)
        .await?;
    dst.close().await;
    eprintln!(
        "merge: {} (database integrity: {integrity})",
        into.display()
    );
    Ok(ExitCode::Ok)
}
