//! OTLP requests → rows of the lake's tables, keeping the OpenTelemetry semantics: resource →
//! process (every resource attribute kept), scope → target, ids as lowercase hex; what has no
//! column of its own (span events and links, trace state, severity text, dropped counts) is kept
//! in the attributes/properties map under `otel.*` keys.

pub mod common;
pub mod logs;
pub mod metrics;
pub mod traces;

use micromegas_lake::catalog::ProcessRow;
use micromegas_lake::ViewTable;

/// The rows of one request, per resource, and what was rejected.
#[derive(Debug)]
pub struct Mapped<R> {
    /// The table the rows are for.
    pub table: ViewTable,
    /// Rows per resource (process).
    pub groups: Vec<(ProcessRow, Vec<R>)>,
    /// Number of invalid items skipped.
    pub rejected: u64,
    /// Why the first invalid item was skipped.
    pub first_error: Option<String>,
}

impl<R> Mapped<R> {
    fn new(table: ViewTable) -> Self {
        Self {
            table,
            groups: Vec::new(),
            rejected: 0,
            first_error: None,
        }
    }

    fn reject(&mut self, why: String) {
        self.rejected += 1;
        self.first_error.get_or_insert(why);
    }

    fn push(&mut self, process: ProcessRow, rows: Vec<R>) {
        if !rows.is_empty() {
            self.groups.push((process, rows));
        }
    }

    /// Number of valid rows.
    pub fn row_count(&self) -> usize {
        self.groups.iter().map(|(_, r)| r.len()).sum()
    }
}
