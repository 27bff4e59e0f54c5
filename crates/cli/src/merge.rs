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
    /// Write a database to share: host names and users' home directories become stable
    /// anonymous ids (the destination must be a new file).
    #[arg(long)]
    pub redact: bool,
    /// The secret the ids are derived from (default: $TOKBENCH_REDACT_KEY, else a random key
    /// kept in ~/.config/tokbench/redact.key): the same key gives the same ids.
    #[arg(long, requires = "redact")]
    pub redact_key: Option<PathBuf>,
    /// From a PostgreSQL source: only the run with this UUID (repeatable).
    #[arg(long = "run", value_name = "UUID")]
    pub runs: Vec<String>,
    /// From a PostgreSQL source: only runs on this host (repeatable).
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// From a PostgreSQL source: only runs started on or after this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// From a PostgreSQL source: only runs started on or before this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
}

/// `tokbench merge`: every source into the destination.
pub async fn command(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let key = match args.redact {
        true => {
            if args.into.exists() {
                return Err(BadInput(format!(
                    "--redact: {} exists; redaction writes a new database to share (redacting it in place would rename the hosts of results already there): give --into a new file",
                    args.into.display()
                ))
                .into());
            }
            Some(redact_key(args.redact_key.as_deref())?)
        }
        false => None,
    };
    let filter = tokbench_store::RunFilter {
        runs: args.runs.clone(),
        hosts: args.hosts.clone(),
        since: args
            .since
            .as_deref()
            .map(|d| day(d, "--since"))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|d| day(d, "--until"))
            .transpose()?,
    };
    let from_postgres = args
        .sources
        .iter()
        .any(|s| s.to_str().is_some_and(tokbench_store::is_postgres_url));
    if filter != tokbench_store::RunFilter::default() && !from_postgres {
        return Err(BadInput(
            "--run, --host, --since and --until pick runs out of a PostgreSQL source; merge copies every run of a SQLite file".into(),
        )
        .into());
    }
    merge_command(&args.sources, &args.into, key, &filter).await
}

/// A day as `YYYY-MM-DD`, checked.
fn day(d: &str, flag: &str) -> anyhow::Result<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(d.trim(), &format)
        .map(|_| d.trim().to_string())
        .map_err(|_| BadInput(format!("{flag} {d}: a day, YYYY-MM-DD")).into())
}

/// A PostgreSQL source, as a SQLite file beside the destination (removed when done):
/// the runs `filter` picks, read in one snapshot.
async fn postgres_snapshot(
    url: &str,
    into: &Path,
    filter: &tokbench_store::RunFilter,
) -> anyhow::Result<PathBuf> {
    let name = format!(
        "{}.from-postgres-{}.db",
        into.file_name().and_then(|n| n.to_str()).unwrap_or("merge"),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = into.with_file_name(name);
    crate::snapshot::export(url, filter, &tmp).await?;
    Ok(tmp)
}

/// The redaction key: the file given, else `$TOKBENCH_REDACT_KEY`, else the user's key file
/// (`$XDG_CONFIG_HOME/tokbench/redact.key` or `~/.config/tokbench/redact.key`, 32 random
/// bytes written on first use, readable by the user only). Returns the key and where it
/// came from.
pub fn redact_key(file: Option<&Path>) -> anyhow::Result<(Vec<u8>, String)> {
    if let Some(f) = file {
        let key =
            std::fs::read(f).map_err(|e| BadInput(format!("--redact-key {}: {e}", f.display())))?;
        if key.is_empty() {
            return Err(
                BadInput(format!("--redact-key {}: the file is empty", f.display())).into(),
            );
        }
        return Ok((key, f.display().to_string()));
    }
    if let Some(k) = std::env::var_os("TOKBENCH_REDACT_KEY").filter(|k| !k.is_empty()) {
        return Ok((
            k.to_string_lossy().into_owned().into_bytes(),
            "$TOKBENCH_REDACT_KEY".into(),
        ));
    }
    let dir = crate::machine::user_dir("XDG_CONFIG_HOME", ".config", "TOKBENCH_REDACT_KEY")?;
    let path = dir.join("redact.key");
    if let Ok(key) = std::fs::read(&path) {
        if !key.is_empty() {
            return Ok((key, path.display().to_string()));
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| *u.as_bytes())
        .collect();
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write the redaction key {}", path.display()))?;
        f.write_all(&key)
            .with_context(|| format!("cannot write the redaction key {}", path.display()))?;
    }
    Ok((key, path.display().to_string()))
}

/// `tokbench merge … --into postgres://…`: each SQLite source into the shared database,
/// each in one transaction.
async fn merge_into_postgres(sources: &[PathBuf], url: &str) -> anyhow::Result<ExitCode> {
    let dst = tokbench_store::PgStore::open(url).await?;
    for src in sources {
        if src.to_str().is_some_and(tokbench_store::is_postgres_url) {
            return Err(BadInput(format!(
                "merge: {} is a PostgreSQL database; merge reads SQLite files into PostgreSQL so far",
                tokbench_store::redacted_url(&src.display().to_string())
            ))
            .into());
        }
        let report = dst.merge_sqlite(src).await.map_err(|e| match e {
            StoreError::Missing { .. }
            | StoreError::NotTokbench { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::OlderSchema { .. } => anyhow::Error::new(BadInput(e.to_string())),
            other => anyhow::Error::new(other).context(format!("cannot merge {}", src.display())),
        })?;
        eprintln!(
            "merge {} → {}: {} runs added, {} already there ({} extended), {} results added, {} repetitions, {} telemetry samples",
            src.display(),
            dst.url(),
            report.runs_added,
            report.runs_skipped,
            report.runs_extended,
            report.results_added,
            report.repetitions_added,
            report.telemetry_added,
        );
    }
    eprintln!("merge: {}", dst.url());
    dst.close().await;
    Ok(ExitCode::Ok)
}

async fn merge_command(
    sources: &[PathBuf],
    into: &Path,
    redact: Option<(Vec<u8>, String)>,
    filter: &tokbench_store::RunFilter,
) -> anyhow::Result<ExitCode> {
    if let Some(url) = into.to_str().filter(|d| tokbench_store::is_postgres_url(d)) {
        if redact.is_some() {
            return Err(BadInput(
                "--redact writes a new SQLite file to share: merge into a file, not PostgreSQL"
                    .into(),
            )
            .into());
        }
        return merge_into_postgres(sources, url).await;
    }
    let dst = Store::open(into)
        .await
        .with_context(|| format!("cannot open the destination {}", into.display()))?;
    for src in sources {
        let url = src.to_str().filter(|s| tokbench_store::is_postgres_url(s));
        let snapshot = match url {
            Some(url) => Some(postgres_snapshot(url, into, filter).await?),
            None => None,
        };
        let merged = dst.merge_from(snapshot.as_deref().unwrap_or(src)).await;
        if let Some(tmp) = &snapshot {
            crate::snapshot::remove_db(tmp);
        }
        let shown = match url {
            Some(url) => tokbench_store::redacted_url(url),
            None => src.display().to_string(),
        };
        let report = merged.map_err(|e| match e {
            StoreError::Missing { .. }
            | StoreError::NotTokbench { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::MergeIntoItself { .. } => anyhow::Error::new(BadInput(e.to_string())),
            other => anyhow::Error::new(other).context(format!("cannot merge {shown}")),
        })?;
        eprintln!(
            "merge {} → {}: {} runs added, {} already there ({} extended), {} results added, {} replaced, {} repetitions, {} telemetry samples",
            shown,
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
    if let Some((key, from)) = redact {
        let r = dst
            .redact(&key)
            .await
            .with_context(|| format!("cannot redact {}", into.display()))?;
        // The old text would stay readable in the file's freed pages: rewrite it.
        dst.vacuum()
            .await
            .with_context(|| format!("cannot vacuum {}", into.display()))?;
        eprintln!(
            "merge --redact: {} hosts renamed, {} paths, logs and keys rewritten (ids from the key in {from})",
            r.hosts, r.values
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
