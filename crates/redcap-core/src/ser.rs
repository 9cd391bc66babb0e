//! Serializers for REDCap import rows, for `#[serde(serialize_with = "…")]`: values go as text,
//! as REDCap's own exports and the API help's examples write them.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::Serializer;
use serde::ser::SerializeMap;

/// Any value by its `Display` text (numbers, dates, enums).
pub fn text<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Like [`text`]; `None` is blank.
pub fn opt_text<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}

/// A flag as `1`/`0`.
pub fn bool01<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *v { "1" } else { "0" })
}

/// Like [`bool01`]; `None` is blank.
pub fn opt_bool01<S: Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => bool01(b, s),
        None => s.serialize_str(""),
    }
}

/// A flag as `y`/blank (a field's `identifier`, `required_field`, `matrix_ranking`).
pub fn flag<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *v { "y" } else { "" })
}

/// Like [`flag`]; `None` is blank.
pub fn opt_flag<S: Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
    flag(&v.unwrap_or(false), s)
}

/// A map of names to numbers as an object of text values (`{"demographics": "1"}`).
pub fn number_map<S: Serializer>(v: &BTreeMap<String, u64>, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, n) in v {
        m.serialize_entry(k, &n.to_string())?;
    }
    m.end()
}
