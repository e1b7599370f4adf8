//! The catalog schema, as versioned migrations valid on both SQLite and PostgreSQL.
//!
//! Times are i64 nanoseconds since the Unix epoch; ids are UUID text; properties are JSON
//! objects as text. A migration is never edited once released: add a new one.

/// `(version, statements)`, in order.
pub const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE processes (
            process_id TEXT PRIMARY KEY,
            service_name TEXT NOT NULL,
            exe TEXT NOT NULL,
            username TEXT NOT NULL,
            hostname TEXT NOT NULL,
            start_time BIGINT NOT NULL,
            tsc_frequency BIGINT NOT NULL,
            properties TEXT NOT NULL,
            insert_time BIGINT NOT NULL)",
            "CREATE INDEX processes_insert_time ON processes (insert_time)",
            "CREATE TABLE streams (
            stream_id TEXT PRIMARY KEY,
            process_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            thread_id BIGINT NOT NULL,
            thread_name TEXT NOT NULL,
            properties TEXT NOT NULL,
            insert_time BIGINT NOT NULL)",
            "CREATE INDEX streams_process ON streams (process_id)",
            "CREATE TABLE objects (
            object_path TEXT PRIMARY KEY,
            min_time BIGINT NOT NULL,
            max_time BIGINT NOT NULL,
            size BIGINT NOT NULL,
            insert_time BIGINT NOT NULL)",
            "CREATE INDEX objects_max_time ON objects (max_time)",
            "CREATE TABLE blocks (
            block_id TEXT PRIMARY KEY,
            stream_id TEXT NOT NULL,
            process_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            sequence BIGINT NOT NULL,
            begin_time BIGINT NOT NULL,
            end_time BIGINT NOT NULL,
            event_count BIGINT NOT NULL,
            payload_size BIGINT NOT NULL,
            object_path TEXT NOT NULL,
            object_offset BIGINT NOT NULL,
            object_len BIGINT NOT NULL,
            insert_time BIGINT NOT NULL,
            partition_id TEXT)",
            "CREATE INDEX blocks_pending ON blocks (kind, partition_id, begin_time)",
            "CREATE INDEX blocks_end_time ON blocks (end_time)",
            "CREATE INDEX blocks_process ON blocks (process_id)",
            "CREATE TABLE partitions (
            partition_id TEXT PRIMARY KEY,
            table_name TEXT NOT NULL,
            min_time BIGINT NOT NULL,
            max_time BIGINT NOT NULL,
            file_path TEXT NOT NULL,
            file_size BIGINT NOT NULL,
            row_count BIGINT NOT NULL,
            block_count BIGINT NOT NULL,
            insert_time BIGINT NOT NULL)",
            "CREATE INDEX partitions_range ON partitions (table_name, max_time, min_time)",
            "CREATE TABLE span_carry (
            process_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            version BIGINT NOT NULL)",
        ],
    ),
    (
        2,
        // Blocks of rows already shaped for a table (Arrow IPC), beside native transit blocks.
        &["ALTER TABLE blocks ADD COLUMN format TEXT NOT NULL DEFAULT 'transit'"],
    ),
    (
        3,
        // SQL-defined views and their materialized hours.
        &[
            "CREATE TABLE sql_views (
            name TEXT PRIMARY KEY,
            base_table TEXT NOT NULL,
            sql TEXT NOT NULL,
            insert_time BIGINT NOT NULL)",
            "CREATE TABLE view_hours (
            view_name TEXT NOT NULL,
            hour BIGINT NOT NULL,
            source_version TEXT NOT NULL,
            file_path TEXT NOT NULL,
            file_size BIGINT NOT NULL,
            row_count BIGINT NOT NULL,
            insert_time BIGINT NOT NULL,
            PRIMARY KEY (view_name, hour))",
        ],
    ),
    (
        4,
        // Raw retention finds the objects whose blocks are all materialized.
        &["CREATE INDEX blocks_object ON blocks (object_path)"],
    ),
    (
        5,
        // The bytes of raw objects kept in the catalog (keys starting with `catalog:`): a
        // local lake with a SQLite-file catalog commits them with their rows. `BYTEA` is
        // PostgreSQL's binary type; SQLite stores blobs as they are under any declared type.
        &["CREATE TABLE object_bytes (
            object_path TEXT PRIMARY KEY,
            bytes BYTEA NOT NULL)"],
    ),
    (
        6,
        // Garbage collection: the objects of the store that no row refers to, with when a
        // pass first saw each (deleted once unreferenced for a grace period), and the indexes
        // that tell whether a key is referenced.
        &[
            "CREATE TABLE unreferenced_objects (
            object_path TEXT PRIMARY KEY,
            first_seen BIGINT NOT NULL)",
            "CREATE INDEX partitions_file ON partitions (file_path)",
            "CREATE INDEX view_hours_file ON view_hours (file_path)",
        ],
    ),
];
