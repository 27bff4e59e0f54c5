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
        // identity becomes the new one.
        let identities: BTreeMap<&str, &str> = hosts
            .iter()
            .zip(&new_identities)
            .map(|((_, _, old), new)| (old.as_str(), new.as_str()))
            .collect();
        for table in SERIES_KEY_TABLES {
            let rows: Vec<(i64, String)> =
                sqlx::query(&format!("SELECT id, series_key FROM {table}"))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(sql(format!("read {table}.series_key to redact")))?
                    .into_iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect();
            for (id, key) in rows {
                let (host, rest) = key.split_once('\u{1f}').unwrap_or((key.as_str(), ""));
                let Some(new_host) = identities.get(host) else {
                    continue;
                };
                // The other fields (model name, its identity, …) as their own columns
                // are rewritten, one by one, so the key still names its rows.
                let new = if rest.is_empty() {
                    new_host.to_string()
                } else {
                    let fields: Vec<String> = rest.split('\u{1f}').map(|f| r.text(f)).collect();
                    format!("{new_host}\u{1f}{}", fields.join("\u{1f}"))
                };
                sqlx::query(&format!("UPDATE {table} SET series_key = ? WHERE id = ?"))
                    .bind(&new)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql(format!("redact {table}.series_key")))?;
                report.values += 1;
            }
        }
        for (table, column) in TEXT_COLUMNS {
            let id = "id";
            let rows: Vec<(i64, String)> = sqlx::query(&format!(
                "SELECT {id}, {column} FROM {table} WHERE {column} IS NOT NULL"
            ))
            .fetch_all(&mut *tx)
            .await
            .map_err(sql(format!("read {table}.{column} to redact")))?
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
            for (id, text) in rows {
                let new = r.text(&text);
                if new != text {
                    sqlx::query(&format!("UPDATE {table} SET {column} = ? WHERE {id} = ?"))
                        .bind(&new)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(sql(format!("redact {table}.{column}")))?;
                    report.values += 1;
                }
            }
        }
        // A server cell's request errors (`request` is keyed by result and index).
        let rows: Vec<(i64, i64, String)> =
            sqlx::query("SELECT result_id, idx, error FROM request WHERE error IS NOT NULL")
                .fetch_all(&mut *tx)
                .await
                .map_err(sql("read request errors to redact"))?
                .into_iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect();
        for (result_id, idx, text) in rows {
            let new = r.text(&text);
            if new != text {
                sqlx::query("UPDATE request SET error = ? WHERE result_id = ? AND idx = ?")
                    .bind(&new)
                    .bind(result_id)
                    .bind(idx)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql("redact a request error"))?;
                report.values += 1;
            }
        }
        tx.commit().await.map_err(sql("commit a redaction"))?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
