//! The statements of the ingest path, as SQL text and bound values, whichever driver runs
//! them: sqlx for PostgreSQL and in-memory SQLite, the catalog's own SQLite connection for a
//! SQLite file ([`super::sqlite_writer`]).

use super::rows::props_to_json;
use super::{BlockRow, ProcessRow, StreamRow, WriteRows};
use std::collections::HashSet;

/// Largest number of bound values per statement (both backends accept far more).
pub(super) const CHUNK: usize = 500;

/// One bound value.
#[derive(Debug)]
pub(super) enum Param<'a> {
    Text(&'a str),
    Owned(String),
    Int(i64),
    Bytes(&'a [u8]),
    Null,
}

/// One statement and its values. When `returning` is set, the statement returns one
/// `block_id` per row it touched.
#[derive(Debug)]
pub(super) struct Statement<'a> {
    pub sql: String,
    pub params: Vec<Param<'a>>,
    pub returning: bool,
}

impl<'a> Param<'a> {
    fn opt(text: Option<&'a str>) -> Self {
        text.map_or(Param::Null, Param::Text)
    }
}

/// Binds `params` to a sqlx query, in order.
pub(super) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    params: &'q [Param<'q>],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for p in params {
        q = match p {
            Param::Text(s) => q.bind(*s),
            Param::Owned(s) => q.bind(s.as_str()),
            Param::Int(i) => q.bind(*i),
            Param::Bytes(b) => q.bind(*b),
            Param::Null => q.bind(None::<String>),
        };
    }
    q
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Owned(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Int(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Param::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Param::Null => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// `($1, .., $width), ($width+1, ..), ..` for `rows` rows.
pub(super) fn value_rows(width: usize, rows: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(1 + r * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$start, .., $start+n-1`.
pub(super) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first item of each key, in order.
fn first_of_each<'a, T>(items: &'a [T], key: impl Fn(&'a T) -> &'a String) -> Vec<&'a T> {
    let mut seen = HashSet::new();
    items.iter().filter(|i| seen.insert(key(i))).collect()
}

/// Multi-row inserts of `rows`, `width` values per row, a few rows per statement.
fn inserts<'a, T>(
    rows: &[&'a T],
    width: usize,
    sql: impl Fn(&str) -> String,
    values: impl Fn(&'a T) -> Vec<Param<'a>>,
    returning: bool,
) -> Vec<Statement<'a>> {
    rows.chunks(CHUNK / width)
        .map(|chunk| Statement {
            sql: sql(&value_rows(width, chunk.len())),
            params: chunk.iter().flat_map(|r| values(r)).collect(),
            returning,
        })
        .collect()
}

fn process_values(p: &ProcessRow) -> Vec<Param<'_>> {
    vec![
        Param::Text(&p.process_id),
        Param::Text(&p.service_name),
        Param::Text(&p.exe),
        Param::Text(&p.username),
        Param::Text(&p.hostname),
        Param::Int(p.start_time),
        Param::Int(p.tsc_frequency),
        Param::Owned(props_to_json(&p.properties)),
        Param::Int(p.insert_time),
    ]
}

fn stream_values(s: &StreamRow) -> Vec<Param<'_>> {
    vec![
        Param::Text(&s.stream_id),
        Param::Text(&s.process_id),
        Param::Text(&s.kind),
        Param::Int(s.thread_id),
        Param::Text(&s.thread_name),
        Param::Owned(props_to_json(&s.properties)),
        Param::Int(s.insert_time),
    ]
}

fn block_values(b: &BlockRow) -> Vec<Param<'_>> {
    vec![
        Param::Text(&b.block_id),
        Param::Text(&b.stream_id),
        Param::Text(&b.process_id),
        Param::Text(&b.kind),
        Param::Int(b.sequence),
        Param::Int(b.begin_time),
        Param::Int(b.end_time),
        Param::Int(b.event_count),
        Param::Int(b.payload_size),
        Param::Text(&b.object_path),
        Param::Int(b.object_offset),
        Param::Int(b.object_len),
        Param::Int(b.insert_time),
        Param::opt(b.partition_id.as_deref()),
        Param::Text(&b.format),
    ]
}

/// The statements that insert one write's rows (rows already present, and repeated ids, are
/// left as the first had them), to run in one transaction. The blocks' statements return the
/// ids of the blocks that were new.
pub(super) fn write_rows(rows: &WriteRows, insert_time: i64) -> Vec<Statement<'_>> {
    let mut out = inserts(
        &first_of_each(&rows.processes, |p| &p.process_id),
        9,
        |values| {
            format!(
                "INSERT INTO processes (process_id, service_name, exe, username, hostname, \
                 start_time, tsc_frequency, properties, insert_time) VALUES {values} \
                 ON CONFLICT (process_id) DO NOTHING"
            )
        },
        process_values,
        false,
    );
    out.extend(inserts(
        &first_of_each(&rows.streams, |s| &s.stream_id),
        7,
        |values| {
            format!(
                "INSERT INTO streams (stream_id, process_id, kind, thread_id, thread_name, \
                 properties, insert_time) VALUES {values} ON CONFLICT (stream_id) DO NOTHING"
            )
        },
        stream_values,
        false,
    ));
    if let Some((path, min, max, size)) = &rows.object {
        out.push(Statement {
            sql: "INSERT INTO objects (object_path, min_time, max_time, size, insert_time) \
                  VALUES ($1, $2, $3, $4, $5) ON CONFLICT (object_path) DO NOTHING"
                .into(),
            params: vec![
                Param::Text(path),
                Param::Int(*min),
                Param::Int(*max),
                Param::Int(*size),
                Param::Int(insert_time),
            ],
            returning: false,
        });
    }
    out.extend(inserts(
        &first_of_each(&rows.blocks, |b| &b.block_id),
        15,
        |values| {
            format!(
                "INSERT INTO blocks ({}) VALUES {values} ON CONFLICT (block_id) DO NOTHING \
                 RETURNING block_id",
                BlockRow::COLUMNS
            )
        },
        block_values,
        true,
    ));
    out
}

/// The statement that stores `bytes` as the content of the object of `rows` (none without an
/// object).
pub(super) fn object_bytes<'a>(rows: &'a WriteRows, bytes: &'a [u8]) -> Option<Statement<'a>> {
    let (path, ..) = rows.object.as_ref()?;
    Some(Statement {
        sql: "INSERT INTO object_bytes (object_path, bytes) VALUES ($1, $2)".into(),
        params: vec![Param::Text(path), Param::Bytes(bytes)],
        returning: false,
    })
}

/// The statements that return which of `block_ids` the catalog already has.
pub(super) fn existing_blocks(block_ids: &[String]) -> Vec<Statement<'_>> {
    block_ids
        .chunks(CHUNK)
        .map(|chunk| Statement {
            sql: format!(
                "SELECT block_id FROM blocks WHERE block_id IN ({})",
                placeholders(1, chunk.len())
            ),
            params: chunk.iter().map(|id| Param::Text(id)).collect(),
            returning: true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_value_in_order() {
        assert_eq!(value_rows(2, 2), "($1, $2), ($3, $4)");
        let ids: Vec<String> = (0..CHUNK + 1).map(|i| i.to_string()).collect();
        let statements = existing_blocks(&ids);
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0].params.len(), CHUNK);
        assert!(statements[1].sql.ends_with("IN ($1)"));
    }

    #[test]
    fn repeated_ids_are_inserted_once() {
        let stream = StreamRow {
            stream_id: "s".into(),
            process_id: "p".into(),
            kind: "logs".into(),
            thread_id: 0,
            thread_name: String::new(),
            properties: vec![],
            insert_time: 0,
        };
        let rows = WriteRows {
            streams: vec![stream.clone(), stream],
            ..Default::default()
        };
        let statements = write_rows(&rows, 1);
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0].params.len(), 7);
        assert!(!statements[0].returning);
    }
}
