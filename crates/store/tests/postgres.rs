//! The PostgreSQL store against a real server (a throwaway cluster, common/pg.rs): the
//! schema matches SQLite's table by table and column by column, migration is idempotent and
//! safe to race, a newer schema is refused, connection failures say what went wrong in one
//! line without the password, and `query` cannot write.

#[allow(dead_code)]
mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use pg::{PgCluster, PASSWORD};
use tokbench_store::{PgStore, QueryEvent, Store, StoreError};

/// Every table's columns, by name, in each dialect's own catalog.
async fn sqlite_columns(dir: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let db = dir.join("schema.db");
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    let mut out = BTreeMap::new();
    let tables = rows_sqlite(
        &db,
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'",
    )
    .await;
    for t in tables {
        let cols = rows_sqlite(&db, &format!("SELECT name FROM pragma_table_info('{t}')")).await;
        out.insert(t, cols);
    }
    out
}

async fn rows_sqlite(db: &std::path::Path, sql: &str) -> Vec<String> {
    let store = Store::open_read_only(db).await.unwrap();
    let mut out = Vec::new();
    store
        .query_each(sql, |e| {
            if let QueryEvent::Row(cells) = e {
                out.push(cells[0].to_json().as_str().unwrap().to_string());
            }
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    store.close().await;
    out
}

async fn rows_pg(store: &PgStore, sql: &str) -> Vec<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    store
        .query_each(sql, |e| {
            if let QueryEvent::Row(cells) = e {
                out.push(cells.iter().map(|c| c.to_json()).collect());
            }
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_schema_has_every_sqlite_table_and_column_and_migrating_is_idempotent() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    let tmp = tempfile::tempdir().unwrap();

    // Two runners starting at once on an empty database: both succeed, the schema is
    // applied once (sqlx's advisory lock), and a third open finds nothing to do.
    let (a, b) = tokio::join!(PgStore::open(&url), PgStore::open(&url));
    a.unwrap().close().await;
    b.unwrap().close().await;
    assert_eq!(
        pg.psql("tokbench", "SELECT COUNT(*) FROM _sqlx_migrations"),
        tokbench_store::PG_MIGRATOR.iter().count().to_string()
    );
    assert!(PgStore::migrate(&url).await.unwrap().is_empty());

    // The same version on both sides: the schemas are versioned together.
    let newest = |m: &sqlx::migrate::Migrator| m.iter().map(|m| m.version).max().unwrap();
    assert_eq!(
        newest(&tokbench_store::PG_MIGRATOR),
        newest(&tokbench_store::MIGRATOR)
    );

    let store = PgStore::open_read_only(&url).await.unwrap();
    let sqlite = sqlite_columns(tmp.path()).await;
    for (table, cols) in &sqlite {
        let pg_cols: Vec<String> = rows_pg(
            &store,
            &format!(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = '{table}'
                 ORDER BY ordinal_position"
            ),
        )
        .await
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
        if table == "v_results" {
            // The public view: the same columns in the same order.
            assert_eq!(&pg_cols, cols, "v_results");
        } else {
            let (mut a, mut b) = (pg_cols.clone(), cols.clone());
            a.sort();
            b.sort();
            assert_eq!(a, b, "columns of {table}");
        }
    }
    assert!(sqlite.contains_key("result") && sqlite.contains_key("v_results"));
    // PostgreSQL's own types where they help.
    let types = rows_pg(
        &store,
        "SELECT table_name::text || '.' || column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND column_name IN ('started_at', 'placement_json', 'decode_tps', 'rss_peak_bytes', 'backend_json')
           AND table_name = 'result'",
    )
    .await;
    let types: BTreeMap<String, String> = types
        .into_iter()
        .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
        .collect();
    assert_eq!(types["result.started_at"], "timestamp with time zone");
    assert_eq!(types["result.placement_json"], "jsonb");
    assert_eq!(types["result.decode_tps"], "double precision");
    assert_eq!(types["result.rss_peak_bytes"], "bigint");
    // A backend's raw record stays byte for byte.
    assert_eq!(types["result.backend_json"], "text");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_and_a_failed_connection_says_why_without_the_password() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    PgStore::open(&url).await.unwrap().close().await;
    let shown = format!("postgres://tokbench@127.0.0.1:{}/tokbench", pg.port);

    // Read-only on a database with no schema: says how to create it.
    pg.create_db("empty");
    let e = PgStore::open_read_only(&pg.url("empty")).await.unwrap_err();
    assert!(matches!(e, StoreError::NoSchema { .. }), "{e}");
    assert!(e.to_string().contains("tokbench migrate --db"), "{e}");

    // A migration this tokbench does not know (a newer tokbench's): refused, both ways.
    pg.psql(
        "tokbench",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (29991231000099, 'from the future', true, '\\x00', 0)",
    );
    for e in [
        PgStore::open(&url).await.unwrap_err(),
        PgStore::open_read_only(&url).await.unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                StoreError::NewerSchema {
                    version: 29991231000099,
                    ..
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&shown) && msg.contains("upgrade tokbench"),
            "{msg}"
        );
        assert!(!msg.contains(PASSWORD), "{msg}");
    }

    // Wrong password, a database that does not exist, nobody listening: one line each,
    // naming the URL without its password.
    let wrong = url.replace(PASSWORD, "not-the-password");
    let cases = [
        (wrong.as_str(), "password authentication failed"),
        (
            &*format!("postgres://tokbench:{PASSWORD}@127.0.0.1:{}/nope", pg.port),
            "database \"nope\" does not exist",
        ),
        (
            &*format!("postgres://tokbench:{PASSWORD}@127.0.0.1:1/tokbench"),
            "cannot reach the server",
        ),
    ];
    for (u, why) in cases {
        let e = PgStore::open(u).await.unwrap_err();
        let msg = format!("{e:#}");
        assert!(matches!(e, StoreError::Connect { .. }), "{msg}");
        assert!(msg.contains(why), "{u}: {msg}");
        assert!(
            msg.starts_with("cannot connect to postgres://tokbench@127.0.0.1:"),
            "{msg}"
        );
        assert!(
            !msg.contains(PASSWORD) && !msg.contains("not-the-password"),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_on_postgres_reads_and_never_writes() {
    let pg = PgCluster::start();
    let url = pg.url("tokbench");
    PgStore::open(&url).await.unwrap().close().await;
    pg.psql(
        "tokbench",
        "INSERT INTO hardware (name, memory_bytes, tdp_w, sources_json) VALUES ('X', 17179869184, 450.5, '{\"tdp_w\": \"https://example.org\"}')",
    );
    let store = PgStore::open_read_only(&url).await.unwrap();
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    store
        .query_each(
            "SELECT name, memory_bytes, tdp_w, sources_json, TIMESTAMPTZ '2026-12-07 01:02:03.123456+01' AS t, true AS yes, SUM(memory_bytes) AS total, name AS name, 100.0::float8 AS whole FROM hardware GROUP BY 1, 2, 3, 4; -- a comment after",
            |e| {
                match e {
                    QueryEvent::Columns(c) => columns = c.to_vec(),
                    QueryEvent::Row(cells) => rows.push(cells.iter().map(|c| c.to_json()).collect::<Vec<_>>()),
                }
                ControlFlow::Continue(())
            },
        )
        .await
        .unwrap();
    // Column order and duplicate names as written; integers exact, times in UTC, JSON as
    // text, booleans 0/1, a numeric sum printed without a cast.
    assert_eq!(
        columns,
        [
            "name",
            "memory_bytes",
            "tdp_w",
            "sources_json",
            "t",
            "yes",
            "total",
            "name",
            "whole"
        ]
    );
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r[0], "X");
    assert_eq!(r[1], 17179869184i64);
    assert_eq!(r[2], 450.5);
    let json: serde_json::Value = serde_json::from_str(r[3].as_str().unwrap()).unwrap();
    assert_eq!(json["tdp_w"], "https://example.org");
    assert_eq!(r[4], "2026-12-07T00:02:03.123456Z");
    assert_eq!(r[5], 1);
    assert_eq!(r[6], 17179869184i64);
    assert_eq!(r[7], "X");
    // A float with no fraction stays a float (row_to_json writes it as 100).
    assert!(r[8].is_f64() && r[8].as_f64() == Some(100.0), "{:?}", r[8]);

    // Refused before it runs (not a query), by the read-only transaction, or as a statement
    // PostgreSQL will not run where query puts it (a data-modifying WITH is only allowed at
    // the top level); none of them writes.
    for (sql, refused) in [
        ("DELETE FROM hardware", true),
        ("SELECT nextval('hardware_id_seq')", true),
        (
            "WITH gone AS (DELETE FROM hardware RETURNING *) SELECT * FROM gone",
            false,
        ),
        ("SELECT 1; DELETE FROM hardware", false),
        ("SELECT * FROM no_such_table", false),
    ] {
        let e = store
            .query_each(sql, |_| ControlFlow::Continue(()))
            .await
            .unwrap_err();
        match refused {
            true => assert!(matches!(e, StoreError::Refused(_)), "{sql}: {e}"),
            false => assert!(matches!(e, StoreError::BadQuery(_)), "{sql}: {e}"),
        }
    }
    assert_eq!(pg.psql("tokbench", "SELECT COUNT(*) FROM hardware"), "1");

    // A time limit: the server cancels a statement that runs past it, and says so as a
    // timeout; a quick statement under a limit runs whole; a later statement on the same
    // pool has no limit left over (SET LOCAL ends with the transaction).
    let limit = std::time::Duration::from_millis(300);
    let t0 = std::time::Instant::now();
    let e = store
        .query_each_within("SELECT pg_sleep(20)", Some(limit), |_| {
            ControlFlow::Continue(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::TimedOut { limit: l } if l == limit),
        "{e}"
    );
    assert!(e.to_string().contains("0.3 s"), "{e}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        t0.elapsed()
    );
    let mut n = 0;
    store
        .query_each_within(
            "SELECT generate_series(1, 1000)",
            Some(std::time::Duration::from_secs(60)),
            |e| {
                n += matches!(e, QueryEvent::Row(_)) as usize;
                ControlFlow::Continue(())
            },
        )
        .await
        .unwrap();
    assert_eq!(n, 1000);
    let mut timeout = String::new();
    store
        .query_each("SELECT current_setting('statement_timeout') AS t", |e| {
            if let QueryEvent::Row(cells) = e {
                timeout = cells[0].to_json().as_str().unwrap().to_string();
            }
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(timeout, "0");
    store.close().await;
}

/// A new SQLite database at `db` holding one model, `name`, whose shape_json is `shape` as
/// written (SQLite keeps any text there).
async fn model_with_shape(db: &std::path::Path, name: &str, shape: &str) {
    use sqlx::Connection;
    Store::open(db).await.unwrap().close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO model (name, architecture, quant, n_params, file_bytes, file_sha256, shape_json, origin)
         VALUES (?, 'llama', 'Q8_0', 1, 1, ?, ?, 'x')",
    )
    .bind(name)
    .bind(name)
    .bind(shape)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn text_that_is_not_json_is_refused_by_name_and_nothing_is_merged() {
    // SQLite keeps any text in a JSON column; the server's jsonb does not. The merge says
    // which column holds what, and stores nothing of the source.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    model_with_shape(&db, "m", "tensors: 9").await;
    let pg = PgCluster::start();
    let server = PgStore::open(&pg.url("tokbench")).await.unwrap();
    // Empty text (an older tokbench's model with no shape) is nothing known: `{}`.
    let older = tmp.path().join("older.db");
    model_with_shape(&older, "old", "").await;
    server.merge_sqlite(&older).await.unwrap();
    assert_eq!(
        pg.psql(
            "tokbench",
            "SELECT shape_json::text FROM model WHERE name = 'old'"
        ),
        "{}"
    );
    let err = server.merge_sqlite(&db).await.unwrap_err().to_string();
    assert!(
        err.contains("model.shape_json")
            && err.contains("`tensors: 9`")
            && err.contains("not JSON"),
        "{err}"
    );
    assert_eq!(pg.psql("tokbench", "SELECT COUNT(*) FROM model"), "1");
    server.close().await;
}
