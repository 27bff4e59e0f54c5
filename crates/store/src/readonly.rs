//! The guard behind `tokbench query`: an SQLite authorizer on the connection that allows
//! reading and nothing else — no writes, no schema changes, no ATTACH, no pragma that sets
//! a value — on top of opening the file read-only.

use std::ffi::{c_char, c_int, c_void};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

/// The message SQLite reports for a denied statement ("not authorized").
const DENIED: &str = "not authorized";

unsafe extern "C" fn authorize(
    _user: *mut c_void,
    action: c_int,
    _arg1: *const c_char,
    arg2: *const c_char,
    _db: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    match action {
        ffi::SQLITE_SELECT | ffi::SQLITE_READ | ffi::SQLITE_FUNCTION | ffi::SQLITE_RECURSIVE => {
            ffi::SQLITE_OK
        }
        // `PRAGMA name` and `PRAGMA name(table)` read; `PRAGMA name = value` would set.
        // Table-valued pragma functions pass the argument in arg2 too, so allow those that
        // only read (table_info and friends) by name.
        ffi::SQLITE_PRAGMA if arg2.is_null() => ffi::SQLITE_OK,
        ffi::SQLITE_PRAGMA => {
            // SAFETY: arg1 is the pragma name, a valid C string for the callback's duration.
            let name = unsafe { std::ffi::CStr::from_ptr(_arg1) }.to_string_lossy();
            match name.as_ref() {
                "table_info" | "table_xinfo" | "index_list" | "index_info" | "foreign_key_list" => {
                    ffi::SQLITE_OK
                }
                _ => ffi::SQLITE_DENY,
            }
        }
        _ => ffi::SQLITE_DENY,
    }
}

/// Installs the read-only authorizer on a freshly opened connection.
pub(crate) async fn install_authorizer(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: db is a valid open connection for as long as the handle lock is held; the
    // callback is a plain function with no user data.
    let rc = unsafe { ffi::sqlite3_set_authorizer(db, Some(authorize), std::ptr::null_mut()) };
    if rc != ffi::SQLITE_OK {
        return Err(sqlx::Error::Protocol(format!(
            "sqlite3_set_authorizer failed with code {rc}"
        )));
    }
    Ok(())
}

/// Why a statement was refused, from SQLite's message, when it is the authorizer's or the
/// read-only file's refusal.
pub(crate) fn refusal_of(msg: &str) -> Option<String> {
    if msg.contains(DENIED) || msg.contains("readonly") || msg.contains("read-only") {
        Some(format!(
            "`tokbench query` is read-only: only SELECT and reading PRAGMAs are allowed (no writes, no ATTACH); SQLite said: {msg}"
        ))
    } else {
        None
    }
}
