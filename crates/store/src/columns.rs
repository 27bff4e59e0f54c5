//! A row to insert, written as column–value pairs: each value sits on the line that names
//! its column, so two values cannot trade places the way two positional `?` binds of the
//! same type can. The statement's column list and its binds come from the same pairs.

use crate::raw::Writer;
use crate::StoreError;

/// One value as SQLite stores it. `None` is NULL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(Some(i64::from(v)))
    }
}

impl From<Option<u32>> for Value {
    fn from(v: Option<u32>) -> Self {
        Value::Int(v.map(i64::from))
    }
}

/// Bytes and counts past `i64::MAX` cannot be stored; they are NULL (unknown), never wrapped.
impl From<Option<u64>> for Value {
    fn from(v: Option<u64>) -> Self {
        Value::Int(v.and_then(|v| i64::try_from(v).ok()))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(Some(v))
    }
}

impl From<Option<f64>> for Value {
    fn from(v: Option<f64>) -> Self {
        Value::Real(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(Some(v))
    }
}

impl From<Option<bool>> for Value {
    fn from(v: Option<bool>) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_string()))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_string))
    }
}

impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        Value::Text(v.clone())
    }
}

/// `INSERT INTO table (columns…) VALUES (?…)` from column–value pairs.
#[derive(Debug, Clone)]
pub(crate) struct Insert {
    table: &'static str,
    columns: Vec<(&'static str, Value)>,
    or_nothing: bool,
}

impl Insert {
    pub(crate) fn into(table: &'static str) -> Insert {
        Insert::with_capacity(table, 8)
    }

    /// A row with room for `columns` columns (a result's ~90 would grow the list 4 times).
    pub(crate) fn with_capacity(table: &'static str, columns: usize) -> Insert {
        Insert {
            table,
            columns: Vec::with_capacity(columns),
            or_nothing: false,
        }
    }

    /// Adds `column = value`.
    pub(crate) fn set(mut self, column: &'static str, value: impl Into<Value>) -> Insert {
        debug_assert!(
            !self.columns.iter().any(|(c, _)| *c == column),
            "column {column} set twice"
        );
        self.columns.push((column, value.into()));
        self
    }

    /// Makes the statement `INSERT … ON CONFLICT DO NOTHING`: a row whose unique key is
    /// already there is left as it is.
    pub(crate) fn on_conflict_do_nothing(mut self) -> Insert {
        self.or_nothing = true;
        self
    }

    /// The statement text.
    #[cfg(test)]
    pub(crate) fn sql(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
        spell(self.table, &names, 1, self.or_nothing)
    }

    /// Runs the insert on `w`'s connection; returns the new row's id (the connection's
    /// last insert, so not a row of this statement's when a conflict skipped it).
    pub(crate) fn execute_raw(self, w: &mut Writer, what: &str) -> Result<i64, StoreError> {
        // The statement's shape by the address and length of each static name: the same
        // call site gives the same figures, and two shapes with the same figures name the
        // same bytes, so they spell the same text.
        let mut shape = Vec::with_capacity(2 * self.columns.len() + 3);
        shape.extend([
            self.table.as_ptr() as usize,
            self.table.len(),
            usize::from(self.or_nothing),
        ]);
        let mut names = Vec::with_capacity(self.columns.len());
        let mut values = Vec::with_capacity(self.columns.len());
        for (name, value) in self.columns {
            shape.extend([name.as_ptr() as usize, name.len()]);
            names.push(name);
            values.push(value);
        }
        let (table, or_nothing) = (self.table, self.or_nothing);
        w.insert(shape, || spell(table, &names, 1, or_nothing), &values, what)
    }

    /// Inserts `rows`, which name the same table and columns in the same order, in one
    /// statement: a result's repetitions cost one step instead of one each, about 2 µs a
    /// row here. Returns the last row's id; nothing is done for no rows.
    pub(crate) fn execute_rows(
        rows: Vec<Insert>,
        w: &mut Writer,
        what: &str,
    ) -> Result<Option<i64>, StoreError> {
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let (table, or_nothing) = (first.table, first.or_nothing);
        let names: Vec<&'static str> = first.columns.iter().map(|(c, _)| *c).collect();
        let mut shape = Vec::with_capacity(2 * names.len() + 4);
        shape.extend([
            table.as_ptr() as usize,
            table.len(),
            usize::from(or_nothing),
            rows.len(),
        ]);
        for name in &names {
            shape.extend([name.as_ptr() as usize, name.len()]);
        }
        let n = rows.len();
        let mut values = Vec::with_capacity(names.len() * n);
        for row in rows {
            if row.table != table
                || row.or_nothing != or_nothing
                || row.columns.len() != names.len()
                || row.columns.iter().zip(&names).any(|((c, _), n)| c != n)
            {
                return Err(StoreError::Sql {
                    what: what.to_string(),
                    source: sqlx::Error::Protocol(format!(
                        "rows of one insert into {table} name different columns"
                    )),
                });
            }
            values.extend(row.columns.into_iter().map(|(_, v)| v));
        }
        w.insert(shape, || spell(table, &names, n, or_nothing), &values, what)
            .map(Some)
    }
}

/// `INSERT INTO table (names…) VALUES (?…), …` with `rows` rows, and `ON CONFLICT DO
/// NOTHING` when asked.
fn spell(table: &str, names: &[&str], rows: usize, or_nothing: bool) -> String {
    let row = format!("({})", vec!["?"; names.len()].join(", "));
    format!(
        "INSERT INTO {table} ({}) VALUES {}{}",
        names.join(", "),
        vec![row; rows].join(", "),
        if or_nothing {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_placeholders_come_from_the_same_pairs() {
        let i = Insert::into("t")
            .set("a", 1i64)
            .set("b", Some(2.5))
            .set("c", "x")
            .set("d", None::<String>);
        assert_eq!(i.sql(), "INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, ?)");
        assert_eq!(
            i.on_conflict_do_nothing().sql(),
            "INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
        );
        assert_eq!(Value::from(Some(u64::MAX)), Value::Int(None));
        assert_eq!(
            spell("t", &["a", "b"], 3, false),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }
}
