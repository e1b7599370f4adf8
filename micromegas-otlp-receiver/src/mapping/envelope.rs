//! The envelope all OTLP export requests share, read from their bytes: a list of resources,
//! each with its resource and a list of scopes, each with its scope and its items (spans, log
//! records). The items are handed over as bytes, for the signal's own reader.

use super::common::Scope;
use super::wire::{Fields, WireError};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// The names of the envelope's fields for one signal (they name the field in errors).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The request's list of resources (field 1).
    pub resources: &'static str,
    /// A resource's `Resource` (field 1).
    pub resource: &'static str,
    /// A resource's list of scopes (field 2).
    pub scopes: &'static str,
    /// A resource's schema URL (field 3).
    pub resource_schema: &'static str,
    /// A scope's `InstrumentationScope` (field 1).
    pub scope: &'static str,
    /// A scope's items (field 2).
    pub items: &'static str,
    /// A scope's schema URL (field 3).
    pub scope_schema: &'static str,
}

/// One resource of a request.
#[derive(Debug, Default)]
pub struct ResourceItems<'a> {
    /// The resource (its occurrences merged, as prost does), if any.
    pub resource: Option<Resource>,
    /// The bytes of each occurrence of the resource.
    pub resource_bytes: Vec<&'a [u8]>,
    /// The resource's schema URL.
    pub schema_url: &'a str,
    /// Each scope and its items.
    pub scopes: Vec<(Scope, Vec<&'a [u8]>)>,
}

impl ResourceItems<'_> {
    /// Number of items in all scopes.
    pub fn item_count(&self) -> usize {
        self.scopes.iter().map(|(_, items)| items.len()).sum()
    }
}

/// A scope and its items.
fn scope<'a>(bytes: &'a [u8], shape: &Shape) -> Result<(Scope, Vec<&'a [u8]>), WireError> {
    let mut scope: Option<InstrumentationScope> = None;
    let mut items = Vec::new();
    let mut schema_url = "";
    let mut fields = Fields::new(bytes);
    while let Some((tag, v)) = fields.next_field()? {
        match tag {
            1 => scope.get_or_insert_default().merge(v.bytes(shape.scope)?)?,
            2 => items.push(v.bytes(shape.items)?),
            3 => schema_url = v.text(shape.scope_schema)?,
            _ => {}
        }
    }
    Ok((Scope::new(scope.as_ref(), schema_url), items))
}

fn resource<'a>(bytes: &'a [u8], shape: &Shape) -> Result<ResourceItems<'a>, WireError> {
    let mut out = ResourceItems::default();
    let mut fields = Fields::new(bytes);
    while let Some((tag, v)) = fields.next_field()? {
        match tag {
            1 => {
                let bytes = v.bytes(shape.resource)?;
                out.resource_bytes.push(bytes);
                out.resource.get_or_insert_default().merge(bytes)?;
            }
            2 => out.scopes.push(scope(v.bytes(shape.scopes)?, shape)?),
            3 => out.schema_url = v.text(shape.resource_schema)?,
            _ => {}
        }
    }
    Ok(out)
}

/// The resources of a request, in order.
pub fn resources<'a>(bytes: &'a [u8], shape: &Shape) -> Result<Vec<ResourceItems<'a>>, WireError> {
    let mut out = Vec::new();
    let mut fields = Fields::new(bytes);
    while let Some((tag, v)) = fields.next_field()? {
        if tag == 1 {
            out.push(resource(v.bytes(shape.resources)?, shape)?);
        }
    }
    Ok(out)
}
