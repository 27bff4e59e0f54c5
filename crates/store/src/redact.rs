//! Sharing a database without what identifies its owner: host names and user paths
//! replaced by stable anonymous ids. The ids are keyed (a secret the caller keeps), so the
//! same host or user gives the same id in every database redacted with one key, and a
//! guess at a host name cannot be checked against an id without the key.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{sql, Store, StoreError};

/// Replaces host names and user paths in text by keyed ids.
#[derive(Debug, Clone)]
pub struct Redactor {
    key: Vec<u8>,
    /// Host names seen, longest first once [`Redactor::learn_hosts`] ran, with their ids.
    hosts: Vec<(String, String)>,
}

impl Redactor {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: key.to_vec(),
            hosts: Vec::new(),
        }
    }

    /// `kind-` and 8 hex digits of SHA-256 over the key, the kind and the value.
    pub fn id(&self, kind: &str, value: &str) -> String {
        let mut h = Sha256::new();
        h.update((self.key.len() as u64).to_le_bytes());
        h.update(&self.key);
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        let d = h.finalize();
        let hex: String = d[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{kind}-{hex}")
    }

    /// Remembers host names to replace wherever they appear in text.
    pub fn learn_hosts<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for n in names {
            // Short names ("a", "pc") would replace inside ordinary words.
            if n.chars().count() >= 3 && !self.hosts.iter().any(|(h, _)| h == n) {
                let id = self.id("host", n);
                self.hosts.push((n.to_string(), id));
            }
        }
        self.hosts
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    }

    /// `text` with every learned host name and every user's home directory
    /// (`/home/NAME`, `/Users/NAME`, `C:\Users\NAME`) replaced by its id.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (name, id) in &self.hosts {
            if out.contains(name.as_str()) {
                out = replace_whole(&out, name, id);
            }
        }
        for prefix in [
            "/home/",
            "/Users/",
            "/users/",
            "\\Users\\",
            "\\users\\",
            "\\\\Users\\\\",
            "\\\\users\\\\",
        ] {
            out = self.user_paths(&out, prefix);
        }
        out
    }

    fn user_paths(&self, text: &str, prefix: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let (before, after) = rest.split_at(at + prefix.len());
            out.push_str(before);
            let end = after
                .find(|c: char| {
                    matches!(
                        c,
                        '/' | '\\' | '"' | '\'' | '`' | ')' | ']' | '}' | ',' | ':'
                    ) || c.is_whitespace()
                })
                .unwrap_or(after.len());
            let (user, tail) = after.split_at(end);
            if user.is_empty() || user.starts_with("user-") {
                out.push_str(user);
            } else {
                out.push_str(&self.id("user", user));
            }
            rest = tail;
        }
        out.push_str(rest);
        out
    }
}

/// `text` with every occurrence of `name` that stands as a whole name replaced by `id`:
/// not inside a longer name (a host called `llama` leaves `llama-bench` alone), where a
/// name is letters, digits, `-`, `_` and `.`.
fn replace_whole(text: &str, name: &str, id: &str) -> String {
    let is_name = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + name.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(is_name) || after.is_some_and(is_name) {
            out.push_str(name);
        } else {
            out.push_str(id);
        }
        rest = &rest[at + name.len()..];
    }
    out.push_str(rest);
    out
}

/// What [`Store::redact`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedactReport {
    pub hosts: usize,
    /// Text values rewritten (paths, logs, environments, suites).
    pub values: usize,
}

/// The text columns that can hold a host name or a user's path: (table, column).
const TEXT_COLUMNS: [(&str, &str); 15] = [
    ("run", "suite_path"),
    // An imported model's identity: `llama-bench:<-m path>:<size>`.
    ("model", "file_sha256"),
    ("run", "config_text"),
    ("run", "environment_json"),
    ("run", "telemetry_unavailable_json"),
    ("run", "source"),
    ("model", "origin"),
    ("model", "name"),
    ("result", "model_name"),
    ("result", "log_tail"),
    ("result", "error"),
    ("result", "telemetry_json"),
    ("result", "backend_json"),
    ("verdict", "reason"),
    ("change_point", "note"),
];

/// The tables whose `series_key` starts with a host's identity (fields joined by U+001F).
const SERIES_KEY_TABLES: [&str; 2] = ["verdict", "change_point"];

/// Rows read and rewritten at a time: memory stays bounded at a million results.
const REWRITE_BATCH: i64 = 5000;

/// Passes every non-NULL `table.column` through `f`, in batches in the order of the integer
/// key columns `keys`, and writes back the values it changes; returns how many.
async fn rewrite_column(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    column: &str,
    keys: &[&str],
    f: &dyn Fn(&str) -> String,
) -> Result<usize, StoreError> {
    rewrite_in_batches(conn, table, column, keys, f, REWRITE_BATCH).await
}

async fn rewrite_in_batches(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    column: &str,
    keys: &[&str],
    f: &dyn Fn(&str) -> String,
    batch: i64,
) -> Result<usize, StoreError> {
    let key_list = keys.join(", ");
    let marks = vec!["?"; keys.len()].join(", ");
    let select = format!(
        "SELECT {key_list}, {column} FROM {table}
         WHERE {column} IS NOT NULL AND ({key_list}) > ({marks})
         ORDER BY {key_list} LIMIT {batch}"
    );
    let update = format!("UPDATE {table} SET {column} = ? WHERE ({key_list}) = ({marks})");
    let mut after = vec![i64::MIN; keys.len()];
    let mut changed = 0;
    loop {
        let mut q = sqlx::query(&select);
        for k in &after {
            q = q.bind(*k);
        }
        let rows = q
            .fetch_all(&mut *conn)
            .await
            .map_err(sql(format!("read {table}.{column} to redact")))?;
        let Some(last) = rows.last() else {
            return Ok(changed);
        };
        after = (0..keys.len()).map(|i| last.get(i)).collect();
        for row in &rows {
            let text: String = row.get(keys.len());
            let new = f(&text);
            if new == text {
                continue;
            }
            let mut q = sqlx::query(&update).bind(&new);
            for i in 0..keys.len() {
                q = q.bind(row.get::<i64, _>(i));
            }
            q.execute(&mut *conn)
                .await
                .map_err(sql(format!("redact {table}.{column}")))?;
            changed += 1;
        }
    }
}

impl Store {
    /// Rewrites the whole database for sharing, in one transaction: every host's name (and
    /// the identity built from it) becomes `host-` and a keyed id, and host names and
    /// users' home directories in paths, suites, logs, errors and telemetry environments
    /// become ids too. Measurements, hardware and settings are left as they are.
    pub async fn redact(&self, key: &[u8]) -> Result<RedactReport, StoreError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin a redaction"))?;
        let hosts: Vec<(i64, String, String)> =
            sqlx::query("SELECT id, hostname, identity FROM host")
                .fetch_all(&mut *tx)
                .await
                .map_err(sql("read the hosts to redact"))?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
        let mut r = Redactor::new(key);
        r.learn_hosts(hosts.iter().map(|(_, name, _)| name.as_str()));
        let mut report = RedactReport::default();
        let mut new_identities = Vec::with_capacity(hosts.len());
        for (id, name, identity) in &hosts {
            let new_name = r.id("host", name);
            // The identity starts with the host name (`name|cpu|cores|memory|gpus`).
            let new_identity = match identity.split_once('|') {
                Some((_, rest)) => format!("{new_name}|{}", r.text(rest)),
                None => new_name.clone(),
            };
            sqlx::query("UPDATE host SET hostname = ?, identity = ? WHERE id = ?")
                .bind(&new_name)
                .bind(&new_identity)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(sql("redact a host"))?;
            report.hosts += 1;
            new_identities.push(new_identity);
        }
        // Verdicts and change points name their series by the host's identity: each old
        // identity becomes the new one; the other fields (model name, its identity, …) are
        // rewritten one by one, as their own columns are, so the key still names its rows.
        let identities: BTreeMap<&str, &str> = hosts
            .iter()
            .zip(&new_identities)
            .map(|((_, _, old), new)| (old.as_str(), new.as_str()))
            .collect();
        let series_key = |key: &str| {
            let mut fields = key.split('\u{1f}');
            let host = fields.next().unwrap_or("");
            let host = identities
                .get(host)
                .map_or_else(|| r.text(host), |h| h.to_string());
            std::iter::once(host)
                .chain(fields.map(|f| r.text(f)))
                .collect::<Vec<_>>()
                .join("\u{1f}")
        };
        for table in SERIES_KEY_TABLES {
            report.values +=
                rewrite_column(&mut tx, table, "series_key", &["id"], &series_key).await?;
        }
        for (table, column) in TEXT_COLUMNS {
            report.values +=
                rewrite_column(&mut tx, table, column, &["id"], &|t| r.text(t)).await?;
        }
        // A server cell's request errors (`request` is keyed by result and index).
        report.values += rewrite_column(&mut tx, "request", "error", &["result_id", "idx"], &|t| {
            r.text(t)
        })
        .await?;
        tx.commit().await.map_err(sql("commit a redaction"))?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_row_is_rewritten_across_batches_of_a_two_column_key() {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE t (a INTEGER, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID",
        )
        .execute(&mut c)
        .await
        .unwrap();
        for (a, b, v) in [
            (1, 1, "x"),
            (1, 2, "y"),
            (1, 3, "keep"),
            (2, 0, "z"),
            (3, 5, "w"),
        ] {
            sqlx::query("INSERT INTO t VALUES (?, ?, ?)")
                .bind(a)
                .bind(b)
                .bind(v)
                .execute(&mut c)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO t VALUES (4, 0, NULL)")
            .execute(&mut c)
            .await
            .unwrap();
        let upper = |t: &str| {
            if t == "keep" {
                t.to_string()
            } else {
                t.to_uppercase()
            }
        };
        let n = rewrite_in_batches(&mut c, "t", "v", &["a", "b"], &upper, 2)
            .await
            .unwrap();
        assert_eq!(n, 4);
        let all: Vec<Option<String>> = sqlx::query_scalar("SELECT v FROM t ORDER BY a, b")
            .fetch_all(&mut c)
            .await
            .unwrap();
        let want = [
            Some("X"),
            Some("Y"),
            Some("keep"),
            Some("Z"),
            Some("W"),
            None,
        ];
        assert_eq!(all, want.map(|v| v.map(String::from)));
    }

    #[test]
    fn ids_are_stable_per_key_and_differ_between_keys() {
        let a = Redactor::new(b"k1");
        let b = Redactor::new(b"k2");
        assert_eq!(a.id("host", "tower"), a.id("host", "tower"));
        assert_ne!(a.id("host", "tower"), b.id("host", "tower"));
        assert_ne!(a.id("host", "tower"), a.id("user", "tower"));
        assert!(a.id("host", "tower").starts_with("host-"));
        assert_eq!(a.id("host", "tower").len(), "host-".len() + 8);
    }

    #[test]
    fn a_host_name_inside_a_longer_name_is_left_alone() {
        let mut r = Redactor::new(b"k");
        r.learn_hosts(["llama"]);
        let t = r.text("llama-bench on llama, llama.cpp; at llama");
        let id = r.id("host", "llama");
        assert_eq!(t, format!("llama-bench on {id}, llama.cpp; at {id}"));
        // Windows paths, as written and as JSON escapes them.
        let t = r.text(r#"C:\Users\alice\m.gguf and "C:\\Users\\bob\\m.gguf""#);
        assert!(!t.contains("alice") && !t.contains("bob"), "{t}");
    }

    #[test]
    fn host_names_and_home_directories_are_replaced() {
        let mut r = Redactor::new(b"k");
        r.learn_hosts(["tower-3090", "pc"]);
        let t = r.text("ran on tower-3090: /home/alice/models/x.gguf, \"/Users/bob\" and C:\\Users\\carol\\m.gguf; pc stays");
        assert!(
            !t.contains("tower-3090")
                && !t.contains("alice")
                && !t.contains("bob")
                && !t.contains("carol"),
            "{t}"
        );
        assert!(t.contains(&r.id("host", "tower-3090")), "{t}");
        assert!(
            t.contains(&format!("/home/{}/models/x.gguf", r.id("user", "alice"))),
            "{t}"
        );
        assert!(t.contains(" pc stays"), "{t}");
        // Redacting again changes nothing.
        assert_eq!(r.text(&t), t);
    }
}
