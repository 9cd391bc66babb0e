//! Typed record imports: Import Records' `data` from rows of any `Serialize` type (records have no
//! fixed shape, so this is not generated from a `[[row]]`).

use redcap_core::{EncodeError, Format};
use serde::Serialize;

use crate::record::import::Request;

impl Request {
    /// A request whose `data` is `rows`, sent as JSON. A row is any `Serialize` type that writes
    /// a map of export field names to values: a struct, a `BTreeMap`, a [`redcap_core::Row`].
    pub fn from_records<T: Serialize>(rows: &[T]) -> Result<Self, EncodeError> {
        Self::from_records_as(Format::Json, rows)
    }

    /// A request whose `data` is `rows`, encoded in `format` (also sent as `format`): CSV with a
    /// header of every column in first-seen order, or XML `<records><item>…</item></records>`.
    pub fn from_records_as<T: Serialize>(format: Format, rows: &[T]) -> Result<Self, EncodeError> {
        let mut request = Request::new(redcap_core::rows::encode(format, "records", rows)?);
        request.format = Some(format);
        Ok(request)
    }
}
