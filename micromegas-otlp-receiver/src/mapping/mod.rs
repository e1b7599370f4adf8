//! OTLP requests → rows of the lake's tables, keeping the OpenTelemetry semantics: resource →
//! process (every resource attribute kept), scope → target, ids as lowercase hex; what has no
//! column of its own (span events and links, trace state, severity text, dropped counts) is kept
//! in the attributes/properties map under `otel.*` keys.

pub mod common;
pub mod envelope;
pub mod logs;
pub mod metrics;
pub mod traces;
pub mod values;
pub mod wire;

use micromegas_lake::arrow::array::RecordBatch;
use micromegas_lake::arrow::error::ArrowError;
use micromegas_lake::catalog::ProcessRow;
use micromegas_lake::ViewTable;

/// The rows of one request, per resource, and what was rejected.
#[derive(Debug)]
pub struct Mapped {
    /// The table the rows are for.
    pub table: ViewTable,
    /// Rows per resource (process), as a batch of the table.
    pub groups: Vec<(ProcessRow, RecordBatch)>,
    /// Number of invalid items skipped.
    pub rejected: u64,
    /// Why the first invalid item was skipped.
    pub first_error: Option<String>,
}

impl Mapped {
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

    /// Adds the rows built in `columns` for `process`. Columns appended row by row always
    /// match their table's schema; should building the batch still fail, the rows are counted
    /// as rejected rather than lost silently.
    fn push_columns<C>(
        &mut self,
        process: ProcessRow,
        columns: C,
        len: impl Fn(&C) -> usize,
        finish: impl FnOnce(C) -> Result<RecordBatch, ArrowError>,
    ) {
        let rows = len(&columns);
        if rows == 0 {
            return;
        }
        match finish(columns) {
            Ok(batch) => self.groups.push((process, batch)),
            Err(e) => {
                for _ in 0..rows {
                    self.reject(format!("{} batch: {e}", self.table.name()));
                }
            }
        }
    }

    /// Number of valid rows.
    pub fn row_count(&self) -> usize {
        self.groups.iter().map(|(_, r)| r.num_rows()).sum()
    }
}

/// The rows of a decoded request (one read from JSON, say), through the same path as its
/// bytes: encoded, then mapped by `from_bytes`. Should it not map at all (values nested deeper
/// than prost reads), each of its `items` items is counted as rejected.
fn map_decoded(
    req: &impl prost::Message,
    table: ViewTable,
    items: usize,
    from_bytes: impl FnOnce(&[u8]) -> Result<Mapped, wire::WireError>,
) -> Mapped {
    match from_bytes(&req.encode_to_vec()) {
        Ok(mapped) => mapped,
        Err(e) => {
            let mut mapped = Mapped::new(table);
            for _ in 0..items {
                mapped.reject(e.to_string());
            }
            mapped
        }
    }
}
