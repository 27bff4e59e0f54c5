//! Writing through SQLite's own handle: each statement is prepared once per batch and
//! reused, its values bound and stepped in place. Going through sqlx instead costs a hop to
//! its worker thread and back for every statement, which at eight statements a result
//! (workload, result, repetitions, a rate summary) capped an import near 10,000 results/s;
//! see docs/database.md, "Scale".

use std::collections::HashMap;
use std::ffi::{c_int, CString};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;

use crate::columns::Value;
use crate::stream::{last_error, prepare, Prepared};
use crate::StoreError;

/// Prepared statements on one connection, by their text; finalized when dropped.
pub(crate) struct Writer {
    db: NonNull<ffi::sqlite3>,
    statements: Vec<Prepared>,
    /// Where in `statements` each statement text is.
    by_text: HashMap<String, usize>,
    /// Where in `statements` each [`crate::columns::Insert`] shape is (its table, columns
    /// and conflict clause, by the addresses of their static names): an insert is found
    /// without spelling its statement, which for a result's 80 columns cost more than
    /// SQLite's own work.
    by_shape: HashMap<Vec<usize>, usize>,
    /// Row ids of catalog rows (workloads) looked up or inserted through this writer, by a
    /// key its caller spells: valid for the writer's life, which is one transaction.
    ids: HashMap<String, i64>,
}

impl Writer {
    /// A writer on `db`, which the caller keeps locked (sqlx's `lock_handle`) for as long
    /// as the writer lives.
    pub(crate) fn new(db: NonNull<ffi::sqlite3>) -> Writer {
        Writer {
            db,
            statements: Vec::new(),
            by_text: HashMap::new(),
            by_shape: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    /// The row id remembered under `key`.
    pub(crate) fn cached(&self, key: &str) -> Option<i64> {
        self.ids.get(key).copied()
    }

    /// Remembers `id` under `key`; returns it.
    pub(crate) fn cache(&mut self, key: String, id: i64) -> i64 {
        self.ids.insert(key, id);
        id
    }

    fn failure(&self, what: &str, rc: c_int) -> StoreError {
        StoreError::Sql {
            what: what.to_string(),
            source: sqlx::Error::Protocol(format!(
                "{} (SQLite result code {rc})",
                last_error(self.db.as_ptr())
            )),
        }
    }

    /// Prepares `statement`; returns its place in `statements`.
    fn prepare(&mut self, statement: &str, what: &str) -> Result<usize, StoreError> {
        let text = CString::new(statement).map_err(|_| StoreError::Sql {
            what: what.to_string(),
            source: sqlx::Error::Protocol("the statement holds a NUL character".into()),
        })?;
        let mut tail = std::ptr::null();
        // SAFETY: the connection is locked for the writer's life; `text` outlives the call
        // and `tail` is not used after it.
        let prepared = unsafe { prepare(self.db.as_ptr(), text.as_ptr(), &mut tail) }
            .map_err(|e| StoreError::Sql {
                what: what.to_string(),
                source: sqlx::Error::Protocol(e.to_string()),
            })?
            .ok_or_else(|| StoreError::Sql {
                what: what.to_string(),
                source: sqlx::Error::Protocol("an empty statement".into()),
            })?;
        self.statements.push(prepared);
        Ok(self.statements.len() - 1)
    }

    /// The place of `statement` in `statements`, prepared on first use.
    fn by_text(&mut self, statement: &str, what: &str) -> Result<usize, StoreError> {
        if let Some(&at) = self.by_text.get(statement) {
            return Ok(at);
        }
        let at = self.prepare(statement, what)?;
        self.by_text.insert(statement.to_string(), at);
        Ok(at)
    }

    /// Runs the insert whose shape is `shape` (see `by_shape`), spelled by `sql` the first
    /// time, with `values`; returns the new row's id.
    pub(crate) fn insert(
        &mut self,
        shape: Vec<usize>,
        sql: impl FnOnce() -> String,
        values: &[Value],
        what: &str,
    ) -> Result<i64, StoreError> {
        let at = match self.by_shape.get(&shape) {
            Some(&at) => at,
            None => {
                let at = self.prepare(&sql(), what)?;
                self.by_shape.insert(shape, at);
                at
            }
        };
        self.step(at, values, what, |_| ())?;
        Ok(self.last_insert_rowid())
    }

    /// Binds `values` to the statement at `at` and steps it once: the row it stands on, if
    /// any, is read by `row` before the statement is reset.
    fn step<T>(
        &mut self,
        at: usize,
        values: &[Value],
        what: &str,
        row: impl FnOnce(Option<*mut ffi::sqlite3_stmt>) -> T,
    ) -> Result<T, StoreError> {
        let stmt = self.statements[at].0;
        for (i, v) in values.iter().enumerate() {
            let at = i as c_int + 1;
            // SAFETY: stmt is prepared on db; SQLITE_TRANSIENT makes SQLite copy text, so
            // nothing bound outlives `values`.
            let rc = unsafe {
                match v {
                    Value::Int(Some(x)) => ffi::sqlite3_bind_int64(stmt, at, *x),
                    Value::Real(Some(x)) => ffi::sqlite3_bind_double(stmt, at, *x),
                    Value::Bool(Some(x)) => ffi::sqlite3_bind_int64(stmt, at, i64::from(*x)),
                    Value::Text(Some(s)) => ffi::sqlite3_bind_text64(
                        stmt,
                        at,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Value::Int(None)
                    | Value::Real(None)
                    | Value::Bool(None)
                    | Value::Text(None) => ffi::sqlite3_bind_null(stmt, at),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.failure(what, rc));
            }
        }
        // SAFETY: stmt is prepared and every parameter is bound.
        let rc = unsafe { ffi::sqlite3_step(stmt) };
        let out = match rc {
            ffi::SQLITE_ROW => Ok(row(Some(stmt))),
            ffi::SQLITE_DONE => Ok(row(None)),
            _ => Err(self.failure(what, rc)),
        };
        // SAFETY: stmt is prepared; resetting makes it ready for the next use (its error,
        // already read above, is returned again and ignored).
        unsafe { ffi::sqlite3_reset(stmt) };
        out
    }

    /// Runs a statement that returns no rows.
    pub(crate) fn execute(
        &mut self,
        statement: &str,
        values: &[Value],
        what: &str,
    ) -> Result<(), StoreError> {
        let at = self.by_text(statement, what)?;
        self.step(at, values, what, |_| ())
    }

    /// The first column of the first row as an integer: `None` without a row or for NULL.
    pub(crate) fn query_i64(
        &mut self,
        statement: &str,
        values: &[Value],
        what: &str,
    ) -> Result<Option<i64>, StoreError> {
        let at = self.by_text(statement, what)?;
        self.step(at, values, what, |row| {
            row.and_then(|stmt| {
                // SAFETY: stmt stands on a row with at least one column (the caller's
                // statement selects one).
                unsafe {
                    (ffi::sqlite3_column_type(stmt, 0) != ffi::SQLITE_NULL)
                        .then(|| ffi::sqlite3_column_int64(stmt, 0))
                }
            })
        })
    }

    /// The row id of the connection's last insert.
    pub(crate) fn last_insert_rowid(&self) -> i64 {
        // SAFETY: db is open and locked by the caller.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db.as_ptr()) }
    }
}
