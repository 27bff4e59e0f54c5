//! Shared by the store's integration tests.

/// A database as the first tokbench left it: only the first migration applied.
pub async fn first_schema_db(dir: &std::path::Path) -> std::path::PathBuf {
    let first = tokbench_store::MIGRATOR
        .iter()
        .map(|m| m.version)
        .min()
        .unwrap();
    let mig_dir = dir.join("first-migration");
    std::fs::create_dir(&mig_dir).unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    for entry in std::fs::read_dir(&repo).unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&first.to_string())
        {
            std::fs::copy(entry.path(), mig_dir.join(entry.file_name())).unwrap();
        }
    }
    let db = dir.join("old.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::migrate::Migrator::new(mig_dir.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool.close().await;
    db
}
