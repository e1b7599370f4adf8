//! SQL functions of the lake.

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, Volatility,
};
use std::sync::{Arc, LazyLock};

/// `property_get(properties, key)`: the value of `key` in a `Map<Utf8, Utf8>` column (the
/// `properties` of logs and measures, the `attributes` of spans), NULL when absent.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PropertyGet {
    signature: Signature,
}

impl Default for PropertyGet {
    fn default() -> Self {
        Self {
            // The exact types of the lake's columns first: they make the function's example
            // signature, which lists it in `SHOW FUNCTIONS` and `information_schema`. Any
            // other pair of arguments is checked by `return_type`.
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![crate::tables::map_type(), DataType::Utf8]),
                    TypeSignature::Any(2),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

static PROPERTY_GET_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DocSection {
            include: true,
            label: "Micromegas functions",
            description: None,
        },
        "The value of a key in a map of properties: the `properties` of log_entries, \
         measures and processes, the `attributes` of spans; NULL when the key is absent.",
        "property_get(properties, key)",
    )
    .with_argument("properties", "A Map<Utf8, Utf8> column.")
    .with_argument("key", "The key, as text.")
    .with_sql_example(
        "SELECT property_get(attributes, 'http.route') AS route, count(*) FROM spans \
         GROUP BY route",
    )
    .build()
});

impl ScalarUDFImpl for PropertyGet {
    fn name(&self) -> &str {
        "property_get"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&PROPERTY_GET_DOC)
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::Map(_, _), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8] => {
                Ok(DataType::Utf8)
            }
            _ => plan_err!(
                "property_get(properties, key) takes a Map<Utf8, Utf8> column and a string \
                 key, not {args:?}"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [map, key] = args.args.as_slice() else {
            return exec_err!("property_get takes 2 arguments");
        };
        let map = map.clone().into_array(rows)?;
        let keys: ArrayRef = match key {
            ColumnarValue::Scalar(s) => {
                let k = match s {
                    ScalarValue::Utf8(k) | ScalarValue::Utf8View(k) | ScalarValue::LargeUtf8(k) => {
                        k.clone()
                    }
                    other => return exec_err!("property_get key must be a string, not {other}"),
                };
                Arc::new(StringArray::from(vec![k; rows]))
            }
            ColumnarValue::Array(a) => arrow::compute::cast(a, &DataType::Utf8)?,
        };
        let keys = keys.as_string::<i32>();
        let map = map.as_map();
        let entry_keys = arrow::compute::cast(map.keys(), &DataType::Utf8)?;
        let entry_values = arrow::compute::cast(map.values(), &DataType::Utf8)?;
        let (entry_keys, entry_values) = (
            entry_keys.as_string::<i32>(),
            entry_values.as_string::<i32>(),
        );
        let offsets = map.value_offsets();
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for row in 0..rows {
            if map.is_null(row) || keys.is_null(row) {
                out.append_null();
                continue;
            }
            let wanted = keys.value(row);
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let found = (start..end).find(|&i| entry_keys.value(i) == wanted);
            match found {
                Some(i) if !entry_values.is_null(i) => out.append_value(entry_values.value(i)),
                _ => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Every function the lake adds to DataFusion's.
pub fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(PropertyGet::default())]
}
