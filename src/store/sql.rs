//! One small SQL surface over SQLite and PostgreSQL, so every query of the store is written once.
//!
//! Queries are written with SQLite's numbered placeholders (`?1`); for PostgreSQL they become
//! `$1`. Values cross as integers, reals, text, bytes or null, which is all the schema uses, and
//! the migrations are written in the common subset of both dialects (see [`postgres_dialect`]).
//!
//! PostgreSQL is reached through tokio-postgres, whose connection runs on a private one-thread
//! runtime owned by the store. The client's requests are plain channel messages, so they can be
//! awaited with a simple `block_on` from any thread, including one already inside the daemon's
//! runtime, where the blocking `postgres` crate would panic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;

use super::{Result, StoreError};

/// A value bound to a placeholder.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
    /// A PostgreSQL `text[]`: a whole column of a batch in one value, so a statement over
    /// thousands of rows has a handful of parameters (planning one with a parameter per
    /// value took most of the server's time). SQLite has no arrays.
    Texts(&'a [Option<&'a str>]),
}

pub trait ToParam {
    fn to_param(&self) -> Param<'_>;
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Param<'_> {
        (**self).to_param()
    }
}
impl ToParam for str {
    fn to_param(&self) -> Param<'_> {
        Param::Text(self)
    }
}
impl ToParam for String {
    fn to_param(&self) -> Param<'_> {
        Param::Text(self)
    }
}
impl ToParam for [u8] {
    fn to_param(&self) -> Param<'_> {
        Param::Bytes(self)
    }
}
impl ToParam for Vec<u8> {
    fn to_param(&self) -> Param<'_> {
        Param::Bytes(self)
    }
}
impl ToParam for f64 {
    fn to_param(&self) -> Param<'_> {
        Param::Real(*self)
    }
}
impl ToParam for bool {
    fn to_param(&self) -> Param<'_> {
        Param::Int(i64::from(*self))
    }
}
macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> Param<'_> {
                // Counts and ids never reach 2^63; saturate rather than wrap if one ever did.
                Param::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_param!(i64, i32, u32, u64, usize);
impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Param<'_> {
        match self {
            Some(v) => v.to_param(),
            None => Param::Null,
        }
    }
}

/// Placeholder values for one statement: `args![a, b, c]`.
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        &[$($crate::store::sql::ToParam::to_param(&$e)),*][..]
    };
}
pub(crate) use args;

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
        }
    }
}

pub trait FromValue: Sized {
    const EXPECTED: &'static str;
    fn from_value(v: Value) -> Option<Self>;
}

impl FromValue for String {
    const EXPECTED: &'static str = "text";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}
impl FromValue for i64 {
    const EXPECTED: &'static str = "integer";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }
}
impl FromValue for u64 {
    const EXPECTED: &'static str = "non-negative integer";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }
}
impl FromValue for f64 {
    const EXPECTED: &'static str = "real";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Real(r) => Some(r),
            Value::Int(i) => Some(i as f64),
            _ => None,
        }
    }
}
impl FromValue for bool {
    const EXPECTED: &'static str = "boolean";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(i != 0),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    const EXPECTED: &'static str = "bytes";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Bytes(b) => Some(b),
            // SQLite keeps whatever affinity the value arrived with.
            Value::Text(s) => Some(s.into_bytes()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let v = self.0.get(index).cloned().unwrap_or(Value::Null);
        let found = v.kind();
        T::from_value(v).ok_or(StoreError::Column {
            index,
            expected: T::EXPECTED,
            found,
        })
    }
}

/// A connection to either database.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Postgres>),
}

impl Conn {
    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Param]) -> Result<u64> {
        match self {
            Conn::Sqlite(c) => {
                let n = c
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))?;
                Ok(n as u64)
            }
            Conn::Postgres(pg) => pg.execute(sql, params),
        }
    }

    pub fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut values = Vec::with_capacity(columns);
                    for i in 0..columns {
                        values.push(sqlite_value(r.get_ref(i)?));
                    }
                    out.push(Row(values));
                }
                Ok(out)
            }
            Conn::Postgres(pg) => pg.query(sql, params),
        }
    }

    /// The first row, if there is one.
    pub fn query_opt(&self, sql: &str, params: &[Param]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query that always returns one (an aggregate, `RETURNING`).
    pub fn query_one(&self, sql: &str, params: &[Param]) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::NotFound(format!("no row from: {sql}")))
    }

    /// PostgreSQL's `COPY target FROM STDIN` with `rows` of values as an insert would take
    /// them; `None` on SQLite, which has no COPY (the caller inserts instead).
    ///
    /// The COPY is left open for the next rows of the same target: the server stores one batch
    /// while the caller prepares the next. It is finished before any other statement on the
    /// connection, which is also when an error in its rows is reported.
    pub fn copy_in(&self, target: &str, rows: &[Vec<Param>]) -> Option<Result<()>> {
        match self {
            Conn::Sqlite(_) => None,
            Conn::Postgres(pg) => Some(pg.copy_in(target, rows)),
        }
    }

    /// Runs several statements without parameters (migrations).
    pub fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(pg) => pg.batch(sql),
        }
    }

    /// Starts a transaction; it rolls back unless [`Tx::commit`] is called.
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        self.batch(self.begin_sql())?;
        Ok(Tx {
            conn: self,
            open: true,
            after: None,
        })
    }

    /// A transaction for loading a large file into an empty table. On SQLite it runs with a
    /// rollback journal instead of the write-ahead log when this is the only connection: a
    /// transaction of millions of rows makes a WAL of gigabytes, and every page read back from
    /// it (each page of the table, once per index built at the end) searches its index of
    /// frames: 18 % of a province's first registry load went to that search, and every page
    /// was written twice (log, then checkpoint). Pages appended to the file are not journaled,
    /// so the load writes each page once. The log is taken up again when the transaction ends.
    /// With other connections open the switch is refused and the load goes through the log.
    pub fn bulk_transaction(&mut self) -> Result<Tx<'_>> {
        let mut after = None;
        if let Conn::Sqlite(c) = self {
            let mode = c
                .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0));
            if mode.is_ok_and(|m| m.eq_ignore_ascii_case("delete")) {
                after = Some("PRAGMA journal_mode = WAL");
            }
        }
        if let Err(e) = self.batch(self.begin_sql()) {
            if let Some(sql) = after {
                let _ = self.batch(sql);
            }
            return Err(e);
        }
        Ok(Tx {
            conn: self,
            open: true,
            after,
        })
    }

    fn begin_sql(&self) -> &'static str {
        // Every transaction of the store writes: taking SQLite's write lock at the start lets a
        // second process wait out the busy timeout instead of failing on a lock upgrade.
        match self {
            Conn::Sqlite(_) => "BEGIN IMMEDIATE",
            Conn::Postgres(_) => "BEGIN",
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }
}

pub struct Tx<'a> {
    conn: &'a Conn,
    open: bool,
    /// Run once the transaction has ended, committed or not (to take the WAL up again).
    after: Option<&'static str>,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn.batch("COMMIT")?;
        match self.after.take() {
            Some(sql) => self.conn.batch(sql),
            None => Ok(()),
        }
    }
}

impl Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // An error here means the connection is gone, which ends the transaction anyway.
            let _ = self.conn.batch("ROLLBACK");
        }
        if let Some(sql) = self.after.take() {
            // Failing leaves the database in rollback-journal mode, which is still correct;
            // the next open takes the WAL up again.
            let _ = self.conn.batch(sql);
        }
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        // Checked the fast way first: the lossy check walked every stored record's text
        // byte by byte (5 % of a province's reconciliation).
        ValueRef::Text(t) => Value::Text(match std::str::from_utf8(t) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(t).into_owned(),
        }),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V, ValueRef};
        Ok(match *self {
            Param::Null => ToSqlOutput::Owned(V::Null),
            Param::Int(i) => ToSqlOutput::Owned(V::Integer(i)),
            Param::Real(r) => ToSqlOutput::Owned(V::Real(r)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Param::Texts(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "SQLite has no arrays".into(),
                ))
            }
        })
    }
}

/// A PostgreSQL connection with its own small runtime and a cache of prepared statements.
pub struct Postgres {
    client: tokio_postgres::Client,
    runtime: Option<tokio::runtime::Runtime>,
    statements: RefCell<HashMap<String, tokio_postgres::Statement>>,
    /// A COPY still taking rows, and the statement that opened it.
    copying: RefCell<Option<(String, CopySink)>>,
}

type CopySink = std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>;

impl Postgres {
    pub fn connect(url: &str) -> Result<Postgres> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vitalhub-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Connect(format!("starting the PostgreSQL runtime: {e}")))?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Connect(format!("database.url is not a PostgreSQL URL: {e}"))
        })?;
        // As libpq does: a password stays out of config files and command lines.
        if config.get_password().is_none() {
            if let Ok(password) = std::env::var("PGPASSWORD") {
                config.password(password);
            }
        }
        let connecting = runtime.spawn(async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "the PostgreSQL connection ended");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        let client = futures_lite::future::block_on(connecting)
            .map_err(|e| StoreError::Connect(format!("connecting to PostgreSQL: {e}")))??;
        let pg = Postgres {
            client,
            runtime: Some(runtime),
            statements: RefCell::new(HashMap::new()),
            copying: RefCell::new(None),
        };
        // A generic plan is made from the statistics of the table as last analysed, often
        // empty: a key lookup then scans the whole table, and an ingest into a table that is
        // growing within its transaction slows with every batch (0.8k records/s). Planning
        // each execution with its values and the table's current size keeps it on the index.
        pg.batch("SET plan_cache_mode = force_custom_plan")?;
        Ok(pg)
    }

    /// Finishes a COPY left open by [`Postgres::copy_in`]: the server has then stored (or
    /// refused) all its rows.
    fn finish_copy(&self) -> Result<()> {
        let open = self.copying.borrow_mut().take();
        if let Some((_, mut sink)) = open {
            futures_lite::future::block_on(sink.as_mut().finish())?;
        }
        Ok(())
    }

    fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement> {
        self.finish_copy()?;
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let translated = numbered_placeholders(sql);
        let stmt = futures_lite::future::block_on(self.client.prepare(&translated))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    fn execute(&self, sql: &str, params: &[Param]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        Ok(futures_lite::future::block_on(
            self.client.execute(&stmt, &refs),
        )?)
    }

    fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        let rows = futures_lite::future::block_on(self.client.query(&stmt, &refs))?;
        rows.iter().map(postgres_row).collect()
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        self.finish_copy()?;
        Ok(futures_lite::future::block_on(
            self.client.batch_execute(sql),
        )?)
    }

    /// `COPY target FROM STDIN` with `rows` of values in COPY's text format, into the COPY
    /// left open for `target` if there is one.
    fn copy_in(&self, target: &str, rows: &[Vec<Param>]) -> Result<()> {
        use futures_util::SinkExt;
        use std::fmt::Write as _;
        let text: usize = rows
            .iter()
            .flatten()
            .map(|v| match v {
                Param::Text(t) => t.len() + 1,
                _ => 24,
            })
            .sum();
        let mut data = String::with_capacity(text + text / 16);
        for row in rows {
            for (i, value) in row.iter().enumerate() {
                if i > 0 {
                    data.push('\t');
                }
                match value {
                    Param::Null => data.push_str("\\N"),
                    Param::Int(v) => write!(data, "{v}").expect("writing to a String"),
                    Param::Real(v) => write!(data, "{v}").expect("writing to a String"),
                    Param::Text(v) => copy_escape(v, &mut data),
                    Param::Bytes(_) | Param::Texts(_) => {
                        return Err(StoreError::Unsupported(
                            "COPY of binary values and arrays is not implemented".into(),
                        ))
                    }
                }
            }
            data.push('\n');
        }
        let statement = format!("COPY {target} FROM STDIN");
        if self
            .copying
            .borrow()
            .as_ref()
            .is_some_and(|(open, _)| *open != statement)
        {
            self.finish_copy()?;
        }
        let mut copying = self.copying.borrow_mut();
        if copying.is_none() {
            let sink = futures_lite::future::block_on(self.client.copy_in(&statement))?;
            *copying = Some((statement, Box::pin(sink)));
        }
        let (_, sink) = copying.as_mut().expect("opened above");
        // Sending hands the rows to the connection's task; the server's answer comes when the
        // COPY is finished.
        futures_lite::future::block_on(sink.send(bytes::Bytes::from(data)))?;
        Ok(())
    }
}

/// A value in COPY's text format: backslash, tab, newline and carriage return escaped.
fn copy_escape(value: &str, out: &mut String) {
    let mut rest = value;
    // These are ASCII, so never a byte inside a multi-byte character: slicing there is safe.
    while let Some(i) = rest
        .bytes()
        .position(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn postgres_row(row: &tokio_postgres::Row) -> Result<Row> {
    use tokio_postgres::types::Type;
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let v = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?.map(Value::Real)
        } else if *ty == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into()))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes)
        } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(StoreError::Unsupported(format!(
                "column {} has PostgreSQL type {ty}, which the store does not read",
                column.name()
            )));
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl tokio_postgres::types::ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use tokio_postgres::types::{IsNull, Type};
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
            Param::Real(r) => match *ty {
                Type::FLOAT4 => (r as f32).to_sql(ty, out),
                _ => r.to_sql(ty, out),
            },
            Param::Text(s) => s.to_sql(ty, out),
            Param::Bytes(b) => b.to_sql(ty, out),
            Param::Texts(values) => values.to_sql(ty, out),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        // Checked per value in `to_sql`, which converts to the column's own type.
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// `?1` -> `$1`. The store's SQL has no `?` inside string literals.
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// Migrations are written once, in SQLite's words for types; PostgreSQL gets its own for the
/// four that differ: an `INTEGER PRIMARY KEY` becomes an identity column, `INTEGER` a 64-bit
/// `BIGINT` (SQLite integers are 64-bit), `REAL` a `DOUBLE PRECISION`, `BLOB` a `BYTEA`.
/// Only whole upper-case words are replaced, so lower-case names are left alone. A line
/// `-- postgres: STATEMENT` (a comment to SQLite) is a statement for PostgreSQL alone.
pub fn postgres_dialect(sql: &str) -> String {
    // A line `-- postgres: STATEMENT` is a statement for PostgreSQL alone.
    let sql: String = sql
        .lines()
        .map(|line| {
            line.trim_start()
                .strip_prefix("-- postgres: ")
                .unwrap_or(line)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let sql = sql.as_str();
    let mut out = String::with_capacity(sql.len() + 64);
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &sql[start..i];
            let rest = sql[i..].trim_start();
            out.push_str(match word {
                "INTEGER" if rest.starts_with("PRIMARY KEY") => {
                    "BIGINT GENERATED BY DEFAULT AS IDENTITY"
                }
                "INTEGER" => "BIGINT",
                "REAL" => "DOUBLE PRECISION",
                "BLOB" => "BYTEA",
                other => other,
            });
        } else {
            let ch = sql[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered_placeholders(
                "SELECT a FROM t WHERE b = ?1 AND (?2 IS NULL OR c = ?2) LIMIT ?10"
            ),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $2) LIMIT $10"
        );
    }

    #[test]
    fn copy_text_escapes_only_its_four_specials() {
        let mut out = String::new();
        copy_escape("a\\b\tc\nd\re 张伟\\", &mut out);
        assert_eq!(out, "a\\\\b\\tc\\nd\\re 张伟\\\\");
        out.clear();
        copy_escape("张伟", &mut out);
        assert_eq!(out, "张伟");
    }

    #[test]
    fn a_statement_for_postgres_alone_is_a_comment_to_sqlite() {
        let sql = "-- why\n  -- postgres: ALTER TABLE t ALTER COLUMN k TYPE TEXT COLLATE \"C\";\nCREATE TABLE u (n INTEGER);";
        assert_eq!(
            postgres_dialect(sql),
            "-- why\nALTER TABLE t ALTER COLUMN k TYPE TEXT COLLATE \"C\";\nCREATE TABLE u (n BIGINT);"
        );
    }

    #[test]
    fn migrations_get_postgres_types_and_keep_lower_case_names() {
        let sql = "-- an integer id\nCREATE TABLE t (\n    id INTEGER PRIMARY KEY,\n    n INTEGER NOT NULL,\n    score   REAL NOT NULL,\n    body BLOB,\n    integer_note TEXT -- 签名 REAL\n);";
        assert_eq!(
            postgres_dialect(sql),
            "-- an integer id\nCREATE TABLE t (\n    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    n BIGINT NOT NULL,\n    score   DOUBLE PRECISION NOT NULL,\n    body BYTEA,\n    integer_note TEXT -- 签名 DOUBLE PRECISION\n);"
        );
    }
}
