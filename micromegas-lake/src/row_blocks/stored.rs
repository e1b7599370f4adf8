//! The stored form of a row block: the table's rows with what can be rebuilt exactly left
//! out of the bytes.
//!
//! - Only the table's stored columns ([`ViewTable::stored_schema`]), as in its Parquet
//!   partitions: a computed column (`duration_ns`) is computed when read.
//! - Id columns (`trace_id`, `span_id`, `parent_span_id`) hold lowercase hex text in the
//!   tables. When every value of such a column is lowercase hex of its id's length (32 or 16
//!   digits), the block stores the bytes instead (`FixedSizeBinary`): half the size, and
//!   random bytes that LZ4 cannot shrink either way. Any other value (upper case, another
//!   length) keeps the column as text.
//!
//! The schema's metadata says which ids are bytes, so [`from_stored`] gives the stored
//! columns back as text; blocks written before this form (no such metadata) read as they
//! are.

use crate::error::Result;
use crate::materialize::partition::stored_columns;
use crate::tables::ViewTable;
use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, FixedSizeBinaryBuilder, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use std::sync::Arc;

/// Id columns and their length in bytes.
const IDS: [(&str, usize); 3] = [("trace_id", 16), ("span_id", 8), ("parent_span_id", 8)];
/// The length in bytes of the ids in column `name`, if it is an id column.
fn id_len(name: &str) -> Option<usize> {
    IDS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}
/// Metadata: the id columns stored as bytes, comma-separated.
const HEX_IDS: &str = "micromegas.hex_ids";

/// The stored form of `rows`, a batch of `table`.
pub(super) fn to_stored(table: ViewTable, rows: &RecordBatch) -> Result<RecordBatch> {
    let rows = stored_columns(table, rows)?;
    let schema = rows.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(fields.capacity());
    let mut hex_ids = Vec::new();
    for (field, column) in schema.fields().iter().zip(rows.columns()) {
        let text = column.as_any().downcast_ref::<StringArray>();
        if let Some(bytes) = id_len(field.name())
            .zip(text)
            .and_then(|(len, t)| hex_to_bytes(t, len))
        {
            hex_ids.push(field.name().as_str());
            fields.push(Field::new(
                field.name(),
                bytes.data_type().clone(),
                field.is_nullable(),
            ));
            columns.push(Arc::new(bytes) as ArrayRef);
            continue;
        }
        fields.push(field.as_ref().clone());
        columns.push(column.clone());
    }
    if hex_ids.is_empty() {
        return Ok(rows);
    }
    let mut metadata = schema.metadata().clone();
    metadata.insert(HEX_IDS.into(), hex_ids.join(","));
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The stored columns with ids as text again; a block written before the stored form comes
/// back unchanged. An error names what does not match the metadata.
pub(super) fn from_stored(batch: RecordBatch) -> std::result::Result<RecordBatch, String> {
    let schema = batch.schema();
    let meta = schema.metadata();
    let Some(hex_ids) = meta.get(HEX_IDS) else {
        return Ok(batch);
    };
    let hex_ids: Vec<&str> = hex_ids.split(',').collect();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(fields.capacity());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !hex_ids.contains(&field.name().as_str()) {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let width = id_len(field.name());
        let bytes = column
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .filter(|b| width.is_some_and(|w| b.value_length() as usize == w))
            .ok_or_else(|| {
                format!(
                    "stored id column {} is not binary of its id's length",
                    field.name()
                )
            })?;
        fields.push(Field::new(
            field.name(),
            DataType::Utf8,
            field.is_nullable(),
        ));
        columns.push(Arc::new(bytes_to_hex(bytes)) as ArrayRef);
    }
    let mut rest = meta.clone();
    rest.remove(HEX_IDS);
    let schema = Arc::new(Schema::new_with_metadata(fields, rest));
    RecordBatch::try_new(schema, columns).map_err(|e| format!("stored row block: {e}"))
}

/// The bytes of a column of lowercase hex ids of `len` bytes; `None` if any value is not one.
fn hex_to_bytes(text: &StringArray, len: usize) -> Option<FixedSizeBinaryArray> {
    let mut out = FixedSizeBinaryBuilder::with_capacity(text.len(), len as i32);
    let mut buf = [0u8; 16];
    for value in text.iter() {
        let Some(value) = value else {
            out.append_null();
            continue;
        };
        let digits = value.as_bytes();
        if digits.len() != 2 * len {
            return None;
        }
        // Table lookups without a branch per digit; any digit that is not lowercase hex
        // leaves a high bit in `bad`.
        let mut bad = 0;
        for (b, pair) in buf.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
            bad |= hi | lo;
            *b = (hi << 4) | (lo & 0xf);
        }
        if bad & 0xf0 != 0 {
            return None;
        }
        out.append_value(&buf[..len]).ok()?;
    }
    Some(out.finish())
}

/// The value of each lowercase hex digit; 0xff for any other byte (upper case would not come
/// back the same).
const NIBBLES: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut d = 0;
    while d < 16 {
        table[b"0123456789abcdef"[d] as usize] = d as u8;
        d += 1;
    }
    table
};

/// Lowercase hex text of each id.
fn bytes_to_hex(bytes: &FixedSizeBinaryArray) -> StringArray {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let width = bytes.value_length().max(0) as usize * 2;
    let mut out = StringBuilder::with_capacity(bytes.len(), bytes.len() * width);
    let mut text = Vec::with_capacity(width);
    for value in bytes.iter() {
        let Some(value) = value else {
            out.append_null();
            continue;
        };
        text.clear();
        for b in value {
            text.push(DIGITS[usize::from(b >> 4)]);
            text.push(DIGITS[usize::from(b & 0xf)]);
        }
        // Only ASCII digits were written.
        out.append_value(std::str::from_utf8(&text).unwrap_or_default());
    }
    out.finish()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::row_blocks::{decode, encode};
    use crate::tables::{log_batch, span_batch, LogRow, SpanRow};
    use proptest::prelude::*;

    /// A span of 250 ns starting at `start`.
    pub(crate) fn span(trace: Option<&str>, id: &str, parent: Option<&str>, start: i64) -> SpanRow {
        SpanRow {
            trace_id: trace.map(str::to_owned),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_owned),
            name: "request".into(),
            target: "svc".into(),
            service_name: "svc".into(),
            process_id: "p".into(),
            thread_name: String::new(),
            start_time: start,
            end_time: start + 250,
            kind: "SERVER".into(),
            status_code: "UNSET".into(),
            status_message: None,
            attributes: vec![("k".into(), "v".into())],
            level: None,
            file: String::new(),
            line: None,
        }
    }

    pub(crate) const TRACE: &str = "0123456789abcdef0123456789abcdef";

    /// `batch` written as a block of `table` and read back.
    fn round_trip(table: ViewTable, batch: &RecordBatch) -> RecordBatch {
        let mut back = decode(&encode(table, batch).expect("encode")).expect("decode");
        assert_eq!(back.len(), 1);
        back.remove(0)
    }

    /// The columns of `batch` that `table`'s partitions keep.
    fn kept(table: ViewTable, batch: &RecordBatch) -> RecordBatch {
        stored_columns(table, batch).expect("stored columns")
    }

    #[test]
    fn span_ids_are_stored_as_bytes_and_computed_columns_left_out() {
        let rows = [
            span(Some(TRACE), "00000000000000aa", None, 10),
            span(
                Some(TRACE),
                "00000000000000bb",
                Some("00000000000000aa"),
                20,
            ),
            span(None, "ffffffffffffffff", None, 30),
        ];
        let batch = span_batch(&rows).expect("batch");
        let stored = to_stored(ViewTable::Spans, &batch).expect("stored");
        let schema = stored.schema();
        let type_of = |name: &str| schema.field_with_name(name).map(|f| f.data_type().clone());
        assert_eq!(
            type_of("trace_id").ok(),
            Some(DataType::FixedSizeBinary(16))
        );
        assert_eq!(type_of("span_id").ok(), Some(DataType::FixedSizeBinary(8)));
        assert_eq!(
            type_of("parent_span_id").ok(),
            Some(DataType::FixedSizeBinary(8))
        );
        assert!(schema.field_with_name("duration_ns").is_err());
        assert_eq!(stored.num_columns(), batch.num_columns() - 1);
        let back = round_trip(ViewTable::Spans, &batch);
        assert_eq!(back, kept(ViewTable::Spans, &batch));
        assert_eq!(
            back.schema().fields(),
            ViewTable::Spans.stored_schema().fields()
        );
    }

    #[test]
    fn ids_that_would_not_come_back_the_same_stay_text() {
        // Upper case, a short id, a non-hex id: each keeps its column as text.
        let rows = [
            span(Some(&TRACE.to_uppercase()), "00000000000000aa", None, 10),
            span(Some(TRACE), "aa", Some("00000000000000zz"), 20),
        ];
        let batch = span_batch(&rows).expect("batch");
        let stored = to_stored(ViewTable::Spans, &batch).expect("stored");
        for name in ["trace_id", "span_id", "parent_span_id"] {
            let field = stored.schema().field_with_name(name).cloned();
            assert_eq!(
                field.map(|f| f.data_type().clone()).ok(),
                Some(DataType::Utf8)
            );
        }
        assert_eq!(
            round_trip(ViewTable::Spans, &batch),
            kept(ViewTable::Spans, &batch)
        );
    }

    #[test]
    fn a_duration_that_is_not_end_minus_start_is_not_stored_either() {
        let batch = span_batch(&[span(Some(TRACE), "00000000000000aa", None, 10)]).expect("batch");
        let at = batch.schema().index_of("duration_ns").expect("duration");
        let mut columns = batch.columns().to_vec();
        columns[at] = Arc::new(arrow::array::Int64Array::from(vec![7]));
        let batch = RecordBatch::try_new(batch.schema(), columns).expect("batch");
        // The table computes it from the times when read, as for its partitions.
        let stored = to_stored(ViewTable::Spans, &batch).expect("stored");
        assert!(stored.schema().field_with_name("duration_ns").is_err());
        assert_eq!(
            round_trip(ViewTable::Spans, &batch),
            kept(ViewTable::Spans, &batch)
        );
    }

    #[test]
    fn log_ids_are_stored_as_bytes_nulls_kept() {
        let log = |trace: Option<&str>, span: Option<&str>| LogRow {
            time: 5,
            process_id: "p".into(),
            service_name: "svc".into(),
            thread_name: "main".into(),
            level: "INFO",
            severity_number: 9,
            target: "t".into(),
            msg: "m".into(),
            trace_id: trace.map(str::to_owned),
            span_id: span.map(str::to_owned),
            properties: Vec::new(),
            file: String::new(),
            line: None,
        };
        let batch = log_batch(&[log(Some(TRACE), Some("0102030405060708")), log(None, None)])
            .expect("batch");
        let stored = to_stored(ViewTable::LogEntries, &batch).expect("stored");
        let field = stored.schema().field_with_name("span_id").cloned();
        assert_eq!(
            field.map(|f| f.data_type().clone()).ok(),
            Some(DataType::FixedSizeBinary(8))
        );
        assert_eq!(round_trip(ViewTable::LogEntries, &batch), batch);
    }

    #[test]
    fn a_block_written_before_the_stored_form_reads_as_it_is() {
        let batch = span_batch(&[span(Some(TRACE), "00000000000000aa", None, 10)]).expect("batch");
        let mut bytes = Vec::new();
        let mut w =
            arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish");
        drop(w);
        assert_eq!(decode(&bytes).expect("decode"), vec![batch]);
    }

    #[test]
    fn metadata_that_does_not_match_the_columns_is_an_error() {
        let batch = span_batch(&[span(Some(TRACE), "00000000000000aa", None, 10)]).expect("batch");
        let stored = to_stored(ViewTable::Spans, &batch).expect("stored");
        let bad = |key: &str, value: &str| {
            let mut meta = stored.schema().metadata().clone();
            meta.insert(key.into(), value.into());
            let fields = stored.schema().fields().clone();
            let schema = Arc::new(Schema::new_with_metadata(fields, meta));
            from_stored(RecordBatch::try_new(schema, stored.columns().to_vec()).expect("batch"))
        };
        let err = bad(HEX_IDS, "name").expect_err("a text column named as an id");
        assert!(err.contains("not binary"), "{err}");
    }

    fn id_text(len: usize) -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), len).prop_map(|b| {
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            }),
            1 => "[0-9a-fA-F]{0,34}",
        ]
    }

    #[test]
    fn ids_stored_with_another_width_are_damage() {
        // Zero bytes per id: a column of any length in no bytes, which turned into text
        // would ask for that many offsets.
        let ids =
            FixedSizeBinaryArray::try_new(0, arrow::buffer::Buffer::from(Vec::<u8>::new()), None)
                .expect("empty");
        let field = Field::new("span_id", ids.data_type().clone(), false);
        let meta = [(HEX_IDS.to_string(), "span_id".to_string())].into();
        let schema = Arc::new(Schema::new_with_metadata(vec![field], meta));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ids) as ArrayRef]).expect("batch");
        let err = from_stored(batch).expect_err("zero-width ids");
        assert!(err.contains("not binary of its id's length"), "{err}");
    }

    proptest! {
        #[test]
        fn any_spans_come_back_the_same(
            spans in proptest::collection::vec(
                (
                    proptest::option::of(id_text(16)),
                    id_text(8),
                    proptest::option::of(id_text(8)),
                    any::<i64>(),
                    any::<i64>(),
                ),
                0..20,
            )
        ) {
            let rows: Vec<SpanRow> = spans
                .iter()
                .map(|(trace, id, parent, start, end)| SpanRow {
                    end_time: *end,
                    ..span(trace.as_deref(), id, parent.as_deref(), *start)
                })
                .collect();
            let batch = span_batch(&rows).expect("batch");
            prop_assert_eq!(round_trip(ViewTable::Spans, &batch), kept(ViewTable::Spans, &batch));
        }
    }
}
