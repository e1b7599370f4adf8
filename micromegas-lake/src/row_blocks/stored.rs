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
//! - Other text with few distinct values is stored as dictionaries, the values once, then one
//!   `Int8` key per row: columns such as a process id, a service name, a target or a span
//!   kind repeated on every row, and the keys and the values of attribute maps (the same
//!   few attribute names on every span). As text, each value costs an offset that grows from
//!   row to row (4 bytes LZ4 cannot shrink) even when every value is the same; a request of
//!   512 spans from one service takes less than half the bytes this way (BENCHMARKS.md §5).
//!
//! The schema's metadata says which ids are bytes and which columns are dictionaries, so
//! [`from_stored`] gives the stored columns back as text; blocks written before this form
//! (no such metadata) read as they are.

use crate::error::Result;
use crate::hex;
use crate::materialize::partition::stored_columns;
use crate::tables::ViewTable;
use arrow::array::{
    Array, ArrayRef, DictionaryArray, FixedSizeBinaryArray, Int8Array, MapArray, RecordBatch,
    StringArray, StringBuilder, StructArray,
};
use arrow::datatypes::{DataType, Field, Int8Type, Schema};
use std::sync::Arc;

/// Id columns and their length in bytes.
const IDS: [(&str, usize); 3] = [("trace_id", 16), ("span_id", 8), ("parent_span_id", 8)];
/// The length in bytes of the ids in column `name`, if it is an id column.
fn id_len(name: &str) -> Option<usize> {
    IDS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}
/// Metadata: the id columns stored as bytes, comma-separated.
const HEX_IDS: &str = "micromegas.hex_ids";
/// Metadata: the text stored as dictionaries, comma-separated: a text column's name, or a map
/// column's name followed by `.keys` or `.values`.
const DICT_TEXT: &str = "micromegas.dict_text";
/// Most distinct values of a text column stored as a dictionary (what an `Int8` key holds).
const MAX_DICT_VALUES: usize = i8::MAX as usize;
/// Fewest rows per distinct value for a dictionary to pay: each dictionary is a message of
/// its own in the stream (about 200 bytes of metadata).
const MIN_ROWS_PER_DICT_VALUE: usize = 4;

/// The stored form of `rows`, a batch of `table`.
pub(super) fn to_stored(table: ViewTable, rows: &RecordBatch) -> Result<RecordBatch> {
    let rows = stored_columns(table, rows)?;
    let schema = rows.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(fields.capacity());
    let (mut hex_ids, mut dict_text) = (Vec::new(), Vec::new());
    for (field, column) in schema.fields().iter().zip(rows.columns()) {
        let name = field.name().as_str();
        let text = column.as_any().downcast_ref::<StringArray>();
        let map = column.as_any().downcast_ref::<MapArray>();
        let stored: Option<ArrayRef> = match (id_len(name), text, map) {
            (Some(len), Some(text), _) => hex_to_bytes(text, len).map(|bytes| {
                hex_ids.push(name.to_string());
                Arc::new(bytes) as ArrayRef
            }),
            (None, Some(text), _) => dictionary_of(text).map(|dict| {
                dict_text.push(name.to_string());
                Arc::new(dict) as ArrayRef
            }),
            (None, None, Some(map)) => map_of_dictionaries(map, name, &mut dict_text)?,
            _ => None,
        };
        let (field, column) = replaced(field, column, stored);
        fields.push(field);
        columns.push(column);
    }
    if hex_ids.is_empty() && dict_text.is_empty() {
        return Ok(rows);
    }
    let mut metadata = schema.metadata().clone();
    for (key, names) in [(HEX_IDS, hex_ids), (DICT_TEXT, dict_text)] {
        if !names.is_empty() {
            metadata.insert(key.into(), names.join(","));
        }
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The stored columns with ids as text again; a block written before the stored form comes
/// back unchanged. An error names what does not match the metadata.
pub(super) fn from_stored(batch: RecordBatch) -> std::result::Result<RecordBatch, String> {
    let schema = batch.schema();
    let meta = schema.metadata();
    if !meta.contains_key(HEX_IDS) && !meta.contains_key(DICT_TEXT) {
        return Ok(batch);
    }
    let named = |key: &str| -> Vec<&str> {
        meta.get(key)
            .map_or_else(Vec::new, |names| names.split(',').collect())
    };
    let (hex_ids, dict_text) = (named(HEX_IDS), named(DICT_TEXT));
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(fields.capacity());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let text = restored(field.name(), column, &hex_ids, &dict_text)?;
        let (field, column) = replaced(field, column, text);
        fields.push(field);
        columns.push(column);
    }
    let mut rest = meta.clone();
    rest.remove(HEX_IDS);
    rest.remove(DICT_TEXT);
    let schema = Arc::new(Schema::new_with_metadata(fields, rest));
    RecordBatch::try_new(schema, columns).map_err(|e| format!("stored row block: {e}"))
}

/// The field and column of a batch, with `new` in place of the column when there is one (the
/// field then takes its type).
fn replaced(field: &Field, column: &ArrayRef, new: Option<ArrayRef>) -> (Field, ArrayRef) {
    match new {
        Some(new) => (
            Field::new(field.name(), new.data_type().clone(), field.is_nullable()),
            new,
        ),
        None => (field.clone(), column.clone()),
    }
}

/// The text of stored column `name`, which the metadata lists in `hex_ids` or `dict_text`;
/// `None` for a column stored as it is. An error names what does not match the metadata.
fn restored(
    name: &str,
    column: &ArrayRef,
    hex_ids: &[&str],
    dict_text: &[&str],
) -> std::result::Result<Option<ArrayRef>, String> {
    if dict_text.contains(&name) {
        let text = text_of(column.as_ref())
            .map_err(|e| format!("stored dictionary column {name}: {e}"))?;
        return Ok(Some(Arc::new(text)));
    }
    let part = |p: &str| {
        dict_text
            .iter()
            .any(|n| n.strip_prefix(name).and_then(|r| r.strip_prefix('.')) == Some(p))
    };
    let map_parts = [part("keys"), part("values")];
    if map_parts.contains(&true) {
        let map = map_of_text(column.as_ref(), map_parts)
            .map_err(|e| format!("stored map column {name}: {e}"))?;
        return Ok(Some(Arc::new(map)));
    }
    if !hex_ids.contains(&name) {
        return Ok(None);
    }
    let width = id_len(name);
    let bytes = column
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .filter(|b| width.is_some_and(|w| b.value_length() as usize == w))
        .ok_or_else(|| format!("stored id column {name} is not binary of its id's length"))?;
    Ok(Some(Arc::new(bytes_to_hex(bytes))))
}

/// `text` as a dictionary of its distinct values with an `Int8` key per row; `None` when it
/// has more distinct values than a key holds, too few rows per value for the dictionary to
/// pay, or no value at all.
///
/// Not Arrow's cast to a dictionary, which hashes every value: on a request of 512 spans,
/// this took 27 µs and the cast 86 µs for the same columns (BENCHMARKS.md §5), on a path
/// where the dictionaries only pay through the catalog's smaller writes.
fn dictionary_of(text: &StringArray) -> Option<DictionaryArray<Int8Type>> {
    /// Slots of the open-addressing table from a value's hash to its key (twice the most
    /// values, so that probes stay short).
    const SLOTS: usize = 256;
    let rows = text.len();
    if rows < MIN_ROWS_PER_DICT_VALUE || text.null_count() == rows {
        return None;
    }
    if let Some(value) = constant(text) {
        let keys = Int8Array::new(vec![0; rows].into(), None);
        return DictionaryArray::try_new(keys, Arc::new(StringArray::from(vec![value]))).ok();
    }
    let most = MAX_DICT_VALUES.min(rows / MIN_ROWS_PER_DICT_VALUE);
    let mut values: Vec<Probe<'_>> = Vec::new();
    let mut slots = [None::<i8>; SLOTS];
    let mut keys = Vec::with_capacity(rows);
    // Runs of one value are common (spans of one kind in a row): the previous row's value is
    // compared before the table is probed.
    let mut previous: Option<(Probe<'_>, i8)> = None;
    for (i, value) in text.iter().enumerate() {
        let Some(value) = value else {
            keys.push(0);
            continue;
        };
        let probe = Probe::new(value);
        if let Some((p, key)) = previous {
            if p == probe {
                keys.push(key);
                continue;
            }
        }
        let mut slot = probe.hash() % SLOTS;
        let key = loop {
            match slots[slot] {
                None => {
                    if values.len() == most {
                        return None;
                    }
                    let key = values.len() as i8;
                    slots[slot] = Some(key);
                    values.push(probe);
                    break key;
                }
                Some(key) if values[key as usize] == probe => break key,
                Some(_) => slot = (slot + 1) % SLOTS,
            }
        };
        debug_assert_eq!(keys.len(), i);
        keys.push(key);
        previous = Some((probe, key));
    }
    let values = StringArray::from_iter_values(values.iter().map(|p| p.text));
    let keys = Int8Array::new(keys.into(), text.nulls().cloned());
    DictionaryArray::try_new(keys, Arc::new(values)).ok()
}

/// The one value of a text column with no nulls whose rows all hold the same text (the
/// lengths from the offsets, the bytes as one comparison of the data with itself shifted by
/// one value), else `None`.
fn constant(text: &StringArray) -> Option<&str> {
    if text.null_count() > 0 {
        return None;
    }
    let offsets = text.value_offsets();
    let first = offsets.first().copied()?;
    let len = offsets.get(1)? - first;
    let same_lengths = offsets
        .windows(2)
        .fold(true, |same, w| same & (w[1] - w[0] == len));
    if !same_lengths {
        return None;
    }
    let data = &text.value_data()[first as usize..offsets[offsets.len() - 1] as usize];
    let len = len as usize;
    (data[len..] == data[..data.len() - len]).then(|| text.value(0))
}

/// A text value with what tells values apart fastest: its length and its first and last
/// (up to) 8 bytes, which together are the whole value up to 16 bytes long.
#[derive(Clone, Copy)]
struct Probe<'a> {
    text: &'a str,
    head: u64,
    tail: u64,
}

impl<'a> Probe<'a> {
    #[inline]
    fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let (head, tail) = match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
            (Some(head), Some(tail)) => (u64::from_le_bytes(*head), u64::from_le_bytes(*tail)),
            _ => {
                // Under 8 bytes: the value itself, as one word.
                let word = bytes
                    .iter()
                    .rev()
                    .fold(0u64, |w, b| (w << 8) | u64::from(*b));
                (word, word)
            }
        };
        Probe { text, head, tail }
    }

    #[inline]
    fn hash(&self) -> usize {
        let mixed = self.head ^ self.tail.rotate_left(29) ^ self.text.len() as u64;
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
    }
}

impl PartialEq for Probe<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head
            && self.tail == other.tail
            && self.text.len() == other.text.len()
            && (self.text.len() <= 16 || self.text == other.text)
    }
}

/// `map` with its text keys and values each stored as a dictionary when [`dictionary_of`]
/// takes them (their stored names added to `dict_text`); `None` when neither is, or the map is
/// not one of text.
fn map_of_dictionaries(
    map: &MapArray,
    name: &str,
    dict_text: &mut Vec<String>,
) -> Result<Option<ArrayRef>> {
    let entries = map.entries();
    let mut parts: Vec<ArrayRef> = entries.columns().to_vec();
    let mut changed = false;
    for (part, column) in ["keys", "values"].iter().zip(parts.iter_mut()) {
        let Some(text) = column.as_any().downcast_ref::<StringArray>() else {
            return Ok(None);
        };
        if let Some(dict) = dictionary_of(text) {
            *column = Arc::new(dict);
            dict_text.push(format!("{name}.{part}"));
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(Arc::new(map_with_entries(map, parts)?)))
}

/// The text of a stored map whose keys and values (`[keys, values]`) are dictionaries.
fn map_of_text(column: &dyn Array, dict: [bool; 2]) -> std::result::Result<MapArray, String> {
    let map = column
        .as_any()
        .downcast_ref::<MapArray>()
        .ok_or("not a map")?;
    let mut parts: Vec<ArrayRef> = map.entries().columns().to_vec();
    for (part, stored) in parts.iter_mut().zip(dict) {
        if stored {
            *part = Arc::new(text_of(part.as_ref())?);
        }
    }
    map_with_entries(map, parts).map_err(|e| e.to_string())
}

/// `map` with other arrays for its entries' keys and values (same lengths, any types).
fn map_with_entries(map: &MapArray, parts: Vec<ArrayRef>) -> Result<MapArray> {
    let (DataType::Map(entries_field, sorted), entries) = (map.data_type(), map.entries()) else {
        return Err(arrow::error::ArrowError::InvalidArgumentError("not a map".into()).into());
    };
    let fields: Vec<Field> = entries
        .fields()
        .iter()
        .zip(&parts)
        .map(|(f, part)| f.as_ref().clone().with_data_type(part.data_type().clone()))
        .collect();
    let entries = StructArray::try_new(fields.into(), parts, entries.nulls().cloned())?;
    let entries_field = Arc::new(
        entries_field
            .as_ref()
            .clone()
            .with_data_type(entries.data_type().clone()),
    );
    Ok(MapArray::try_new(
        entries_field,
        map.offsets().clone(),
        entries,
        map.nulls().cloned(),
        *sorted,
    )?)
}

/// The text of a dictionary column as stored (`Int8` keys, text values); an error if it is
/// not one or a key is past its values.
fn text_of(column: &dyn Array) -> std::result::Result<StringArray, String> {
    let dict = column
        .as_any()
        .downcast_ref::<DictionaryArray<Int8Type>>()
        .ok_or("not a dictionary of Int8 keys")?;
    let (keys, values) = (dict.keys(), dict.values());
    let count = values.len();
    // Checked here rather than by `take`'s own bounds check, which lets negative keys through.
    let past = keys
        .iter()
        .flatten()
        .find(|k| usize::try_from(*k).map_or(true, |k| k >= count));
    if let Some(key) = past {
        return Err(format!("key {key} past its {count} values"));
    }
    let text = arrow::compute::take(values.as_ref(), keys, None).map_err(|e| e.to_string())?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| "dictionary values are not text".into())
}

/// The bytes of a column of lowercase hex ids of `len` bytes; `None` if any value is not one.
///
/// Eight digits are read as one word ([`hex::decode_word`]) straight from the column's data,
/// with no table lookup per digit nor builder call per value.
fn hex_to_bytes(text: &StringArray, len: usize) -> Option<FixedSizeBinaryArray> {
    // Ids are 8 or 16 bytes; a length that is not a whole number of words keeps its text.
    if len == 0 || !len.is_multiple_of(4) {
        return None;
    }
    let width = 2 * len;
    let data = text.value_data();
    let mut out = vec![0u8; text.len() * len];
    for (i, (ends, bytes)) in text
        .value_offsets()
        .windows(2)
        .zip(out.chunks_exact_mut(len))
        .enumerate()
    {
        if text.is_null(i) {
            continue;
        }
        let range = usize::try_from(ends[0]).ok()?..usize::try_from(ends[1]).ok()?;
        let digits = data.get(range)?;
        if digits.len() != width {
            return None;
        }
        let mut not_hex = 0;
        for (word, four) in digits.chunks_exact(8).zip(bytes.chunks_exact_mut(4)) {
            let (value, bad) = hex::decode_word(u64::from_le_bytes(word.try_into().ok()?));
            four.copy_from_slice(&value.to_le_bytes());
            not_hex |= bad;
        }
        if not_hex != 0 {
            return None;
        }
    }
    FixedSizeBinaryArray::try_new(len as i32, out.into(), text.nulls().cloned()).ok()
}

/// Lowercase hex text of each id.
fn bytes_to_hex(bytes: &FixedSizeBinaryArray) -> StringArray {
    let width = bytes.value_length().max(0) as usize * 2;
    let mut out = StringBuilder::with_capacity(bytes.len(), bytes.len() * width);
    let mut text = vec![0; width];
    for value in bytes.iter() {
        match value {
            Some(value) => out.append_value(hex::encode_into(value, &mut text)),
            None => out.append_null(),
        }
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
    fn hex_ids_with_nulls_are_stored_as_their_bytes() {
        let text = StringArray::from(vec![
            Some("00112233445566778899aabbccddeeff"),
            None,
            Some("ffeeddccbbaa99887766554433221100"),
        ]);
        let bytes = hex_to_bytes(&text, 16).expect("hex ids");
        assert_eq!(
            bytes.value(0),
            (0..16).map(|i| i * 0x11).collect::<Vec<u8>>()
        );
        assert!(bytes.is_null(1));
        assert_eq!(bytes_to_hex(&bytes), text);
        // A null that still has digits under it (Arrow allows it) is a null all the same.
        let offsets = arrow::buffer::OffsetBuffer::new(vec![0, 16, 32].into());
        let digits = arrow::buffer::Buffer::from(b"00112233445566770011223344556677".to_vec());
        let nulls = arrow::buffer::NullBuffer::from(vec![true, false]);
        let text = StringArray::new(offsets, digits, Some(nulls));
        let bytes = hex_to_bytes(&text, 8).expect("hex ids");
        assert!(bytes.is_null(1) && !bytes.is_null(0));
        // Not a whole number of words: kept as text.
        assert!(hex_to_bytes(&StringArray::from(vec!["001122"]), 3).is_none());
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

    #[test]
    fn repeated_text_is_stored_as_a_dictionary_and_read_back_as_text() {
        let kinds = ["SERVER", "CLIENT", "INTERNAL"];
        let rows: Vec<SpanRow> = (0..64)
            .map(|i| SpanRow {
                name: format!("request {i}"),
                kind: kinds[i % 3].into(),
                status_message: (i % 5 == 0).then(|| "timeout".into()),
                attributes: vec![("k".into(), "v".into()), ("i".into(), format!("{i}"))],
                ..span(Some(TRACE), &format!("{i:016x}"), None, i as i64)
            })
            .collect();
        let batch = span_batch(&rows).expect("batch");
        let stored = to_stored(ViewTable::Spans, &batch).expect("stored");
        let schema = stored.schema();
        let type_of = |name: &str| schema.field_with_name(name).map(|f| f.data_type().clone());
        let dictionary = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
        for name in [
            "target",
            "service_name",
            "process_id",
            "kind",
            "status_message",
        ] {
            assert_eq!(type_of(name).ok(), Some(dictionary.clone()), "{name}");
        }
        // One distinct value per row: as text.
        assert_eq!(type_of("name").ok(), Some(DataType::Utf8));
        // Attribute names repeat, their values (one distinct per row) do not.
        let Ok(DataType::Map(entries, _)) = type_of("attributes") else {
            panic!("attributes are a map");
        };
        let DataType::Struct(parts) = entries.data_type() else {
            panic!("map entries are a struct");
        };
        assert_eq!(parts[0].data_type(), &dictionary);
        assert_eq!(parts[1].data_type(), &DataType::Utf8);
        assert_eq!(
            schema
                .metadata()
                .get(DICT_TEXT)
                .map(|n| n.contains("attributes.keys")),
            Some(true)
        );
        let back = round_trip(ViewTable::Spans, &batch);
        assert_eq!(back, kept(ViewTable::Spans, &batch));
        assert_eq!(
            back.schema().fields(),
            ViewTable::Spans.stored_schema().fields()
        );
        assert!(back.schema().metadata().is_empty());
    }

    #[test]
    fn a_dictionary_column_that_is_not_one_is_damage() {
        let rows: Vec<SpanRow> = (0..8)
            .map(|i| SpanRow {
                name: format!("request {i}"),
                ..span(Some(TRACE), &format!("{i:016x}"), None, i)
            })
            .collect();
        let stored =
            to_stored(ViewTable::Spans, &span_batch(&rows).expect("batch")).expect("stored");
        let mut meta = stored.schema().metadata().clone();
        assert_eq!(
            meta.get(DICT_TEXT).map(|names| names.contains("target")),
            Some(true)
        );
        // `name` is text: naming it a dictionary does not hold.
        meta.insert(DICT_TEXT.into(), "target,name".into());
        let fields = stored.schema().fields().clone();
        let schema = Arc::new(Schema::new_with_metadata(fields, meta));
        let err =
            from_stored(RecordBatch::try_new(schema, stored.columns().to_vec()).expect("batch"))
                .expect_err("a text column named as a dictionary");
        assert!(err.contains("stored dictionary column name"), "{err}");
    }

    #[test]
    fn dictionary_text_reads_back_and_anything_else_is_refused() {
        let keys = Int8Array::from(vec![Some(0), Some(1), None, Some(0)]);
        let values = StringArray::from(vec![Some("a"), None]);
        let dict = DictionaryArray::<Int8Type>::try_new(keys, Arc::new(values)).expect("dict");
        assert_eq!(
            text_of(&dict).expect("text"),
            StringArray::from(vec![Some("a"), None, None, Some("a")])
        );
        let err = text_of(&Int8Array::from(vec![1])).expect_err("not a dictionary");
        assert!(err.contains("not a dictionary"), "{err}");
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(vec!["", "GET /", "SELECT users", "é"]).prop_map(String::from),
            1 => ".{0,20}",
        ]
    }

    proptest! {
        #[test]
        fn text_comes_back_from_its_dictionary(
            text in proptest::collection::vec(
                proptest::option::of(prop_oneof![
                    3 => proptest::sample::select(vec![
                        "", "a", "abcdefgh", "abcdefghi", "abcdefghijklmnop",
                        "abcdefghijklmnopq", "abcdefghZjklmnopq",
                    ]).prop_map(String::from),
                    1 => "[ab]{0,24}",
                ]),
                0..80,
            )
        ) {
            let text = StringArray::from(text);
            if let Some(dict) = dictionary_of(&text) {
                prop_assert!(dict.values().len() <= MAX_DICT_VALUES);
                prop_assert_eq!(text_of(&dict).expect("text"), text);
            }
        }

        #[test]
        fn any_spans_come_back_the_same(
            spans in proptest::collection::vec(
                (
                    proptest::option::of(id_text(16)),
                    id_text(8),
                    proptest::option::of(id_text(8)),
                    any::<i64>(),
                    any::<i64>(),
                    (
                        name(),
                        proptest::option::of(name()),
                        proptest::collection::vec((name(), name()), 0..4),
                    ),
                ),
                0..40,
            )
        ) {
            let rows: Vec<SpanRow> = spans
                .iter()
                .map(|(trace, id, parent, start, end, (name, message, attributes))| SpanRow {
                    end_time: *end,
                    name: name.clone(),
                    status_message: message.clone(),
                    attributes: attributes.clone(),
                    ..span(trace.as_deref(), id, parent.as_deref(), *start)
                })
                .collect();
            let batch = span_batch(&rows).expect("batch");
            prop_assert_eq!(round_trip(ViewTable::Spans, &batch), kept(ViewTable::Spans, &batch));
        }
    }
}
