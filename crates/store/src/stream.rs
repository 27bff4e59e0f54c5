//! Stepping one statement on a raw SQLite handle and handing each row to a callback as
//! borrowed values: what `tokbench query` streams through, at the speed of SQLite itself.

use std::ffi::{c_int, CStr, CString};
use std::ops::ControlFlow;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

use crate::{readonly, Cell, QueryEvent, StoreError};

/// A prepared statement, finalized when dropped.
pub(crate) struct Prepared(pub(crate) *mut ffi::sqlite3_stmt);

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: the pointer came from sqlite3_prepare_v2 and is finalized once; a null
        // pointer is a no-op for sqlite3_finalize.
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

/// SQLite's message for the connection's last error.
pub(crate) fn last_error(db: *mut ffi::sqlite3) -> String {
    // SAFETY: db is an open connection; sqlite3_errmsg returns a valid C string owned by
    // SQLite until the next call on the connection, copied here at once.
    unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned()
}

/// An error from SQLite as the store reports it: the read-only guard's refusal, a
/// statement that is wrong (SQLITE_ERROR: syntax, unknown table or column), or a failure.
fn failure(db: *mut ffi::sqlite3, rc: c_int) -> StoreError {
    let msg = last_error(db);
    if let Some(why) = readonly::refusal_of(&msg) {
        return StoreError::Refused(why);
    }
    if rc & 0xff == ffi::SQLITE_ERROR {
        return StoreError::BadQuery(msg);
    }
    StoreError::Sql {
        what: format!("query failed: {msg}"),
        source: sqlx::Error::Protocol(format!("SQLite result code {rc}")),
    }
}

/// A time limit on a connection's statements: SQLite's progress handler, called every
/// [`Deadline::EVERY`] virtual-machine instructions, interrupts the statement once the
/// deadline has passed (its step returns `SQLITE_INTERRUPT`). Removed when dropped.
struct Deadline {
    db: *mut ffi::sqlite3,
    /// Boxed: SQLite holds its address until the handler is removed.
    at: Box<Instant>,
}

impl Deadline {
    /// About a millisecond of work between looks at the clock.
    const EVERY: c_int = 10_000;

    fn new(db: *mut ffi::sqlite3, limit: Duration) -> Deadline {
        let at = Box::new(Instant::now() + limit);
        // SAFETY: `db` is open and held by the caller for the deadline's life; `at` lives
        // until `drop` removes the handler.
        unsafe {
            ffi::sqlite3_progress_handler(
                db,
                Self::EVERY,
                Some(past_deadline),
                (&*at as *const Instant).cast_mut().cast(),
            )
        };
        Deadline { db, at }
    }

    fn passed(&self) -> bool {
        Instant::now() >= *self.at
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        // SAFETY: the connection is still held by the caller (see `step_each`).
        unsafe { ffi::sqlite3_progress_handler(self.db, 0, None, std::ptr::null_mut()) };
    }
}

/// SQLite's progress handler for [`Deadline`]: non-zero interrupts the statement.
extern "C" fn past_deadline(at: *mut std::ffi::c_void) -> c_int {
    // SAFETY: `at` is the `Instant` a live `Deadline` boxed.
    let at = unsafe { &*(at as *const Instant) };
    c_int::from(Instant::now() >= *at)
}

/// Prepares the first statement of `sql` (what `tail` points past); `None` for text that
/// holds no statement (only white space or comments).
///
/// # Safety
/// `db` is an open connection no other thread uses until the statement is finalized;
/// `sql` and `tail` point into one NUL-terminated string.
pub(crate) unsafe fn prepare(
    db: *mut ffi::sqlite3,
    sql: *const std::ffi::c_char,
    tail: &mut *const std::ffi::c_char,
) -> Result<Option<Prepared>, StoreError> {
    let mut stmt = std::ptr::null_mut();
    // SAFETY: as the caller promises; -1 reads up to the NUL.
    let rc = unsafe { ffi::sqlite3_prepare_v2(db, sql, -1, &mut stmt, tail) };
    if rc != ffi::SQLITE_OK {
        // SAFETY: null or a statement that failed to prepare; finalizing either is allowed.
        unsafe { ffi::sqlite3_finalize(stmt) };
        return Err(failure(db, rc));
    }
    Ok((!stmt.is_null()).then_some(Prepared(stmt)))
}

/// The value in column `i` of the row `stmt` stands on, borrowed until the next step.
///
/// # Safety
/// `stmt` stands on a row (the last step returned SQLITE_ROW) and `i` is below its column
/// count.
unsafe fn cell<'r>(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> Result<Cell<'r>, String> {
    // SAFETY (every call below): as the caller promises. The text and blob pointers stay
    // valid until the statement steps again or is finalized, which the borrow's lifetime
    // does not outlast (the callback gets them for one row only). The length is read after
    // the pointer, as SQLite documents.
    unsafe {
        Ok(match ffi::sqlite3_column_type(stmt, i) {
            ffi::SQLITE_INTEGER => Cell::Int(ffi::sqlite3_column_int64(stmt, i)),
            ffi::SQLITE_FLOAT => Cell::Real(ffi::sqlite3_column_double(stmt, i)),
            ffi::SQLITE_TEXT => {
                let p = ffi::sqlite3_column_text(stmt, i);
                let n = ffi::sqlite3_column_bytes(stmt, i) as usize;
                let bytes = if p.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(p, n)
                };
                Cell::Text(std::str::from_utf8(bytes).map_err(|e| {
                    let name = CStr::from_ptr(ffi::sqlite3_column_name(stmt, i));
                    format!(
                        "column `{}` holds text that is not UTF-8 ({e})",
                        name.to_string_lossy()
                    )
                })?)
            }
            ffi::SQLITE_BLOB => {
                let p = ffi::sqlite3_column_blob(stmt, i).cast::<u8>();
                let n = ffi::sqlite3_column_bytes(stmt, i) as usize;
                Cell::Blob(if p.is_null() {
                    &[]
                } else {
                    std::slice::from_raw_parts(p, n)
                })
            }
            _ => Cell::Null,
        })
    }
}

/// Runs `statement` (exactly one; comments and white space around it are fine) on `db`,
/// handing `each` the column names, then each row.
pub(crate) fn step_each<F>(
    db: NonNull<ffi::sqlite3>,
    statement: &str,
    limit: Option<Duration>,
    mut each: F,
) -> Result<(), StoreError>
where
    F: FnMut(QueryEvent<'_>) -> ControlFlow<()>,
{
    let db = db.as_ptr();
    // Declared before the statement, so it is dropped (the handler removed) after the
    // statement is finalized, and before the connection goes back to its pool.
    let deadline = limit.map(|l| Deadline::new(db, l));
    let text = CString::new(statement)
        .map_err(|_| StoreError::BadQuery("the statement holds a NUL character".into()))?;
    let mut tail = std::ptr::null();
    // SAFETY: the caller holds the connection's lock for the whole call; `text` outlives
    // every use of `tail`, which points into it.
    let Some(stmt) = (unsafe { prepare(db, text.as_ptr(), &mut tail) })? else {
        return Err(StoreError::BadQuery("no statement given".into()));
    };
    // SAFETY: as above; `tail` points into `text` (at its NUL when nothing follows).
    if let Some(_next) = unsafe { prepare(db, tail, &mut tail) }? {
        return Err(StoreError::BadQuery(
            "give one statement: text after the first `;` is another".into(),
        ));
    }
    // SAFETY: stmt.0 is a prepared statement; names are valid C strings until it is
    // finalized, copied here at once.
    let columns: Vec<String> = unsafe {
        (0..ffi::sqlite3_column_count(stmt.0))
            .map(|i| {
                let name = ffi::sqlite3_column_name(stmt.0, i);
                if name.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                }
            })
            .collect()
    };
    if each(QueryEvent::Columns(&columns)).is_break() {
        return Ok(());
    }
    let n = columns.len() as c_int;
    let mut cells: Vec<Cell<'_>> = Vec::with_capacity(columns.len());
    loop {
        // SAFETY: stmt.0 is prepared; `cells`, which borrows the previous row's values, is
        // empty here, so no borrow outlives this step.
        debug_assert!(cells.is_empty());
        let rc = unsafe { ffi::sqlite3_step(stmt.0) };
        match rc {
            ffi::SQLITE_ROW => {}
            ffi::SQLITE_DONE => return Ok(()),
            ffi::SQLITE_INTERRUPT if deadline.as_ref().is_some_and(|d| d.passed()) => {
                return Err(StoreError::TimedOut {
                    limit: limit.unwrap_or_default(),
                })
            }
            _ => return Err(failure(db, rc)),
        }
        for i in 0..n {
            // SAFETY: the step returned SQLITE_ROW and i < the column count.
            cells.push(unsafe { cell(stmt.0, i) }.map_err(StoreError::BadQuery)?);
        }
        let flow = each(QueryEvent::Row(&cells));
        cells.clear();
        if flow.is_break() {
            return Ok(());
        }
    }
}

/// Reading a row's columns by name, the same way from a sqlx row and from a row stepped
/// on the raw handle, so one decoder serves both.
pub(crate) trait Columns {
    fn int(&self, name: &str) -> Result<Option<i64>, sqlx::Error>;
    fn real(&self, name: &str) -> Result<Option<f64>, sqlx::Error>;
    /// The column's text, borrowed for `f`.
    fn with_text<T>(&self, name: &str, f: impl FnOnce(Option<&str>) -> T)
        -> Result<T, sqlx::Error>;

    fn text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        self.with_text(name, |t| t.map(str::to_string))
    }

    fn text_required(&self, name: &str) -> Result<String, sqlx::Error> {
        self.text(name)?.ok_or_else(|| sqlx::Error::ColumnDecode {
            index: name.to_string(),
            source: "NULL where a value is required".into(),
        })
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, sqlx::Error> {
        Ok(self.int(name)?.map(|v| v != 0))
    }
}

impl Columns for sqlx::sqlite::SqliteRow {
    fn int(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::Row::try_get(self, name)
    }

    fn real(&self, name: &str) -> Result<Option<f64>, sqlx::Error> {
        sqlx::Row::try_get(self, name)
    }

    fn with_text<T>(
        &self,
        name: &str,
        f: impl FnOnce(Option<&str>) -> T,
    ) -> Result<T, sqlx::Error> {
        Ok(f(sqlx::Row::try_get::<Option<&str>, _>(self, name)?))
    }
}

/// A row the raw handle stands on, its columns found by name through the statement's
/// index.
pub(crate) struct RawRow<'s> {
    stmt: *mut ffi::sqlite3_stmt,
    index: &'s std::collections::HashMap<String, c_int>,
}

impl RawRow<'_> {
    fn column(&self, name: &str) -> Result<c_int, sqlx::Error> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| sqlx::Error::ColumnNotFound(name.to_string()))
    }

    fn kind(&self, i: c_int) -> c_int {
        // SAFETY: the statement stands on a row (RawRow exists only between a step that
        // returned SQLITE_ROW and the next) and i came from its column index.
        unsafe { ffi::sqlite3_column_type(self.stmt, i) }
    }
}

impl Columns for RawRow<'_> {
    fn int(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        let i = self.column(name)?;
        Ok(match self.kind(i) {
            ffi::SQLITE_NULL => None,
            // SAFETY: as in `kind`.
            ffi::SQLITE_INTEGER => Some(unsafe { ffi::sqlite3_column_int64(self.stmt, i) }),
            other => return Err(mismatch(name, "an integer", other)),
        })
    }

    fn real(&self, name: &str) -> Result<Option<f64>, sqlx::Error> {
        let i = self.column(name)?;
        Ok(match self.kind(i) {
            ffi::SQLITE_NULL => None,
            // SAFETY: as in `kind`; an integer reads as its value, as sqlx decodes it.
            ffi::SQLITE_FLOAT | ffi::SQLITE_INTEGER => {
                Some(unsafe { ffi::sqlite3_column_double(self.stmt, i) })
            }
            other => return Err(mismatch(name, "a number", other)),
        })
    }

    fn with_text<T>(
        &self,
        name: &str,
        f: impl FnOnce(Option<&str>) -> T,
    ) -> Result<T, sqlx::Error> {
        let i = self.column(name)?;
        match self.kind(i) {
            ffi::SQLITE_NULL => Ok(f(None)),
            ffi::SQLITE_TEXT => {
                // SAFETY: as in `kind`; the text stays valid until the next step, and `f`
                // returns before that.
                let bytes = unsafe {
                    let p = ffi::sqlite3_column_text(self.stmt, i);
                    let n = ffi::sqlite3_column_bytes(self.stmt, i) as usize;
                    if p.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(p, n)
                    }
                };
                let text = std::str::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
                    index: name.to_string(),
                    source: Box::new(e),
                })?;
                Ok(f(Some(text)))
            }
            other => Err(mismatch(name, "text", other)),
        }
    }
}

fn mismatch(name: &str, wanted: &str, kind: c_int) -> sqlx::Error {
    let found = match kind {
        ffi::SQLITE_INTEGER => "an integer",
        ffi::SQLITE_FLOAT => "a real",
        ffi::SQLITE_TEXT => "text",
        ffi::SQLITE_BLOB => "a blob",
        _ => "something else",
    };
    sqlx::Error::ColumnDecode {
        index: name.to_string(),
        source: format!("expected {wanted}, found {found}").into(),
    }
}

/// Runs `statement` with `binds` (text, `?` in order) on `db` and hands `each` every row
/// as a [`RawRow`]. For the store's own statements, which are known to be one statement.
pub(crate) fn step_rows<F>(
    db: NonNull<ffi::sqlite3>,
    statement: &str,
    binds: &[&str],
    mut each: F,
) -> Result<(), StoreError>
where
    F: FnMut(&RawRow<'_>) -> Result<(), StoreError>,
{
    let db = db.as_ptr();
    let text = CString::new(statement)
        .map_err(|_| StoreError::BadQuery("the statement holds a NUL character".into()))?;
    let mut tail = std::ptr::null();
    // SAFETY: the caller holds the connection's lock for the whole call.
    let Some(stmt) = (unsafe { prepare(db, text.as_ptr(), &mut tail) })? else {
        return Ok(());
    };
    for (i, b) in binds.iter().enumerate() {
        // SAFETY: stmt.0 is prepared; SQLITE_TRANSIENT makes SQLite copy the text, so the
        // borrow need not outlive the call.
        let rc = unsafe {
            ffi::sqlite3_bind_text(
                stmt.0,
                i as c_int + 1,
                b.as_ptr().cast(),
                b.len() as c_int,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(failure(db, rc));
        }
    }
    // SAFETY: as in `step_each`.
    let index: std::collections::HashMap<String, c_int> = unsafe {
        (0..ffi::sqlite3_column_count(stmt.0))
            .filter_map(|i| {
                let name = ffi::sqlite3_column_name(stmt.0, i);
                (!name.is_null()).then(|| (CStr::from_ptr(name).to_string_lossy().into_owned(), i))
            })
            .collect()
    };
    loop {
        // SAFETY: stmt.0 is prepared; no RawRow of the previous step is alive.
        let rc = unsafe { ffi::sqlite3_step(stmt.0) };
        match rc {
            ffi::SQLITE_ROW => each(&RawRow {
                stmt: stmt.0,
                index: &index,
            })?,
            ffi::SQLITE_DONE => return Ok(()),
            _ => return Err(failure(db, rc)),
        }
    }
}
