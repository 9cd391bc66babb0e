//! Static descriptions of parameters, and conversion of typed values into wire values.
//!
//! Generated request types describe each parameter with a [`ParamInfo`]; the wire rules (arrays,
//! booleans, omission, allowed values) live here once and serve both the typed requests and the
//! dynamic encoder the CLI uses.

use crate::types::WireEnum;
use crate::upload::Upload;

/// Element type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueType {
    /// Free text (including `data` payloads and REDCap logic).
    String,
    /// A non-negative integer (ids, arm numbers, instances).
    Int,
    /// A flag; see [`BoolWire`].
    Bool(BoolWire),
    /// One of the [`crate::types`] enums, by name.
    Enum(&'static str),
    /// `YYYY-MM-DD HH:MM:SS` (server time).
    Timestamp,
    /// `YYYY-MM-DD HH:MM` (server time; Export Logging).
    Minute,
    /// The uploaded file: a multipart part named after the parameter.
    File,
}

/// How a flag travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoolWire {
    /// `true` / `false` (what REDCapR and redcapAPI send; live-tested).
    TrueFalse,
    /// `1` / `0` (`override`, `delete_logging`).
    OneZero,
    /// Sent only when true: REDCap switches it on by mere presence (`allRecords` of Export PDF).
    Presence,
}

/// How a list travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shape {
    /// One value.
    Scalar,
    /// `name[0]=a&name[1]=b`: REDCap's recommended array form.
    Indexed,
    /// `name=a,b`: only where the API documents a comma list.
    Comma,
}

/// Everything the encoder needs to know about one parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParamInfo {
    /// Wire name (case-sensitive).
    pub name: &'static str,
    /// Element type.
    pub ty: ValueType,
    /// Scalar or list, and how a list is written.
    pub shape: Shape,
    /// Must be given.
    pub required: bool,
    /// Sent even when false or empty (e.g. `delete_logging=0`, whose server default may erase logs).
    pub always: bool,
    /// Allowed spellings when narrower than the type (e.g. `format` without `odm`); empty = any.
    pub allowed: &'static [&'static str],
    /// REDCap's default when the parameter is left out, for documentation.
    pub server_default: Option<&'static str>,
    /// One-line description.
    pub doc: &'static str,
}

impl ParamInfo {
    /// A descriptor with the common defaults: an optional scalar string.
    pub const fn new(name: &'static str, ty: ValueType) -> Self {
        ParamInfo {
            name,
            ty,
            shape: Shape::Scalar,
            required: false,
            always: false,
            allowed: &[],
            server_default: None,
            doc: "",
        }
    }

    /// Makes it required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Sends it even when false or empty.
    pub const fn always(mut self) -> Self {
        self.always = true;
        self
    }

    /// Sets the list shape.
    pub const fn shape(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    /// Narrows the allowed spellings.
    pub const fn allowed(mut self, allowed: &'static [&'static str]) -> Self {
        self.allowed = allowed;
        self
    }

    /// Records REDCap's default.
    pub const fn server_default(mut self, value: &'static str) -> Self {
        self.server_default = Some(value);
        self
    }

    /// Sets the description.
    pub const fn doc(mut self, doc: &'static str) -> Self {
        self.doc = doc;
        self
    }

    /// The spellings a value may take: `allowed`, else the enum's values.
    pub fn allowed_values(&self) -> Option<&'static [&'static str]> {
        if !self.allowed.is_empty() {
            return Some(self.allowed);
        }
        match self.ty {
            ValueType::Enum(name) => crate::types::enum_values(name),
            _ => None,
        }
    }
}

/// A value ready to be checked against its [`ParamInfo`] and written.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ParamValue {
    /// Not given.
    Absent,
    /// One value.
    Text(String),
    /// Several values.
    List(Vec<String>),
    /// A flag.
    Bool(bool),
    /// A file to upload.
    File(Upload),
}

/// Converts a typed field into a [`ParamValue`].
pub trait ToParam {
    /// The wire value.
    fn to_param(&self) -> ParamValue;
}

impl ToParam for String {
    fn to_param(&self) -> ParamValue {
        ParamValue::Text(self.clone())
    }
}

impl ToParam for str {
    fn to_param(&self) -> ParamValue {
        ParamValue::Text(self.to_owned())
    }
}

impl ToParam for u64 {
    fn to_param(&self) -> ParamValue {
        ParamValue::Text(self.to_string())
    }
}

impl ToParam for bool {
    fn to_param(&self) -> ParamValue {
        ParamValue::Bool(*self)
    }
}

impl ToParam for Upload {
    fn to_param(&self) -> ParamValue {
        ParamValue::File(self.clone())
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> ParamValue {
        match self {
            Some(v) => v.to_param(),
            None => ParamValue::Absent,
        }
    }
}

impl<T: ToParam> ToParam for Vec<T> {
    fn to_param(&self) -> ParamValue {
        ParamValue::List(
            self.iter()
                .filter_map(|v| match v.to_param() {
                    ParamValue::Text(s) => Some(s),
                    _ => None,
                })
                .collect(),
        )
    }
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> ParamValue {
        (**self).to_param()
    }
}

macro_rules! enum_to_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> ParamValue {
                ParamValue::Text(self.as_wire().to_owned())
            }
        }
    )*};
}
// Every enum of the one table of wire values.
include!("generated/enum_params.rs");
