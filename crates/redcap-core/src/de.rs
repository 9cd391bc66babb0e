//! Lenient deserializers for REDCap values, for `#[serde(deserialize_with = "…")]`.
//!
//! REDCap sends the same column as a JSON number in one format or method and as text in another
//! (`arm_num` is `1` in JSON and `"1"` in CSV and XML; user rights are numbers, role rights strings),
//! writes flags as `0`/`1` or `y`/blank, and leaves absent values blank rather than null. These
//! functions accept every such spelling:
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Arm {
//!     #[serde(deserialize_with = "redcap_core::de::u64")]
//!     arm_num: u64,
//!     #[serde(default, deserialize_with = "redcap_core::de::blank_as_none")]
//!     name: Option<String>,
//! }
//! let a: Arm = serde_json::from_str(r#"{"arm_num": "2", "name": ""}"#).unwrap();
//! assert_eq!((a.arm_num, a.name), (2, None));
//! ```
//!
//! The `opt_*` forms read blank (`""`, whitespace) and null as `None`; combine them with
//! `#[serde(default)]` so an absent column is `None` too.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::calendar::{Date, DateTime};

/// A scalar as it came: number, text, bool or nothing.
enum Scalar {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> Option<String> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
            Scalar::U64(n) => Some(n.to_string()),
            Scalar::I64(n) => Some(n.to_string()),
            Scalar::F64(n) => Some(n.to_string()),
            Scalar::Str(s) => Some(s.clone()),
        }
    }

    fn is_blank(&self) -> bool {
        match self {
            Scalar::Null => true,
            Scalar::Str(s) => s.trim().is_empty(),
            _ => false,
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, a string, a boolean or nothing")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

fn invalid<E: de::Error>(s: &Scalar, expected: &str) -> E {
    let got = s.text().unwrap_or_else(|| "nothing".to_owned());
    E::custom(format!("`{got}` is not {expected}"))
}

macro_rules! number {
    ($name:ident, $opt:ident, $t:ty, $what:literal) => {
        #[doc = concat!("A `", stringify!($t), "` from a number or a numeric string (surrounding spaces allowed).")]
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
            let s = scalar(d)?;
            to_number::<$t, D::Error>(&s, $what)?.ok_or_else(|| invalid(&s, $what))
        }

        #[doc = concat!("Like [`", stringify!($name), "`](fn@", stringify!($name), "), with blank or null as `None`.")]
        pub fn $opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
            let s = scalar(d)?;
            if s.is_blank() { Ok(None) } else { to_number::<$t, D::Error>(&s, $what) }
        }
    };
}

trait FromScalar: Sized + std::str::FromStr {
    fn from_u64(n: u64) -> Option<Self>;
    fn from_i64(n: i64) -> Option<Self>;
    fn from_f64(n: f64) -> Option<Self>;
}

impl FromScalar for u64 {
    fn from_u64(n: u64) -> Option<Self> {
        Some(n)
    }
    fn from_i64(n: i64) -> Option<Self> {
        n.try_into().ok()
    }
    fn from_f64(n: f64) -> Option<Self> {
        (n.fract() == 0.0 && n >= 0.0 && n < u64::MAX as f64).then_some(n as u64)
    }
}

impl FromScalar for i64 {
    fn from_u64(n: u64) -> Option<Self> {
        n.try_into().ok()
    }
    fn from_i64(n: i64) -> Option<Self> {
        Some(n)
    }
    fn from_f64(n: f64) -> Option<Self> {
        (n.fract() == 0.0 && n.abs() < i64::MAX as f64).then_some(n as i64)
    }
}

impl FromScalar for f64 {
    fn from_u64(n: u64) -> Option<Self> {
        Some(n as f64)
    }
    fn from_i64(n: i64) -> Option<Self> {
        Some(n as f64)
    }
    fn from_f64(n: f64) -> Option<Self> {
        Some(n)
    }
}

fn to_number<T: FromScalar, E: de::Error>(s: &Scalar, what: &str) -> Result<Option<T>, E> {
    let v = match s {
        Scalar::U64(n) => T::from_u64(*n),
        Scalar::I64(n) => T::from_i64(*n),
        Scalar::F64(n) => T::from_f64(*n),
        Scalar::Str(t) => t.trim().parse().ok(),
        Scalar::Bool(_) | Scalar::Null => None,
    };
    v.map(Some).ok_or_else(|| invalid(s, what))
}

number!(u64, opt_u64, u64, "a whole number");
number!(i64, opt_i64, i64, "a whole number");
number!(f64, opt_f64, f64, "a number");

fn to_bool(s: &Scalar) -> Option<Option<bool>> {
    match s {
        Scalar::Null => Some(None),
        Scalar::Bool(b) => Some(Some(*b)),
        Scalar::U64(0) | Scalar::I64(0) => Some(Some(false)),
        Scalar::U64(1) | Scalar::I64(1) => Some(Some(true)),
        Scalar::Str(t) => match t.trim().to_ascii_lowercase().as_str() {
            "" => Some(None),
            "1" | "y" | "yes" | "true" => Some(Some(true)),
            "0" | "n" | "no" | "false" => Some(Some(false)),
            _ => None,
        },
        _ => None,
    }
}

const BOOL: &str = "a flag (0/1, y/n, true/false)";

/// A flag from `0`/`1` (number or text), `y`/`n`, `yes`/`no` or `true`/`false`; blank is `false`
/// (REDCap leaves an unset flag such as a field's `identifier` blank).
pub fn bool01<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = scalar(d)?;
    to_bool(&s).map(|b| b.unwrap_or(false)).ok_or_else(|| invalid(&s, BOOL))
}

/// Like [`bool01`], with blank or null as `None`.
pub fn opt_bool01<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let s = scalar(d)?;
    to_bool(&s).ok_or_else(|| invalid(&s, BOOL))
}

/// Text from a string or a number (a number keeps its JSON spelling); null is `""`.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(scalar(d)?.text().unwrap_or_default())
}

/// Text from a string or a number, with blank (empty or whitespace only) or null as `None`.
pub fn blank_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = scalar(d)?;
    Ok(if s.is_blank() { None } else { s.text() })
}

/// Any `T: FromStr` from its text (a number is read as its text).
pub fn parse<'de, D: Deserializer<'de>, T: std::str::FromStr>(d: D) -> Result<T, D::Error>
where
    T::Err: fmt::Display,
{
    let s = scalar(d)?;
    s.text().unwrap_or_default().trim().parse().map_err(de::Error::custom)
}

/// Like [`parse`], with blank or null as `None`.
pub fn opt_parse<'de, D: Deserializer<'de>, T: std::str::FromStr>(d: D) -> Result<Option<T>, D::Error>
where
    T::Err: fmt::Display,
{
    let s = scalar(d)?;
    if s.is_blank() {
        Ok(None)
    } else {
        s.text().unwrap_or_default().trim().parse().map(Some).map_err(de::Error::custom)
    }
}

/// A [`Date`] from `YYYY-MM-DD`.
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    let s = scalar(d)?;
    s.text().unwrap_or_default().parse().map_err(de::Error::custom)
}

/// Like [`date`], with blank or null as `None`.
pub fn opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    let s = scalar(d)?;
    if s.is_blank() { Ok(None) } else { s.text().unwrap_or_default().parse().map(Some).map_err(de::Error::custom) }
}

/// A [`DateTime`] from `YYYY-MM-DD HH:MM` or `YYYY-MM-DD HH:MM:SS`.
pub fn datetime<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime, D::Error> {
    let s = scalar(d)?;
    s.text().unwrap_or_default().parse().map_err(de::Error::custom)
}

/// Like [`datetime`], with blank or null as `None`.
pub fn opt_datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime>, D::Error> {
    let s = scalar(d)?;
    if s.is_blank() { Ok(None) } else { s.text().unwrap_or_default().parse().map(Some).map_err(de::Error::custom) }
}

/// A map of names to numbers, such as a user's `forms` rights, from any of REDCap's spellings: a
/// JSON object `{"demographics": 1}` (values numbers or text), a CSV cell
/// `demographics:1,visit:0`, or XML child elements `<demographics>1</demographics>`. Blank is empty.
pub fn number_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u64>, D::Error> {
    d.deserialize_any(NumberMapVisitor(PhantomData))
}

struct NumberMapVisitor<'a>(PhantomData<&'a ()>);

impl<'de> Visitor<'de> for NumberMapVisitor<'_> {
    type Value = BTreeMap<String, u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of names to numbers, or `name:number,…` text")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        struct Num(u64);
        impl<'de> serde::Deserialize<'de> for Num {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                u64(d).map(Num)
            }
        }
        let mut out = BTreeMap::new();
        while let Some((k, Num(v))) = map.next_entry::<String, Num>()? {
            out.insert(k, v);
        }
        Ok(out)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let mut out = BTreeMap::new();
        for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, n) = pair.rsplit_once(':').ok_or_else(|| E::custom(format!("`{pair}` is not `name:number`")))?;
            let n = n.trim().parse().map_err(|_| E::custom(format!("`{pair}` is not `name:number`")))?;
            out.insert(k.trim().to_owned(), n);
        }
        Ok(out)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // An empty JSON array stands for an empty object in PHP's encoding.
        match seq.next_element::<de::IgnoredAny>()? {
            None => Ok(BTreeMap::new()),
            Some(_) => Err(de::Error::custom("expected a map of names to numbers, found a non-empty list")),
        }
    }
}

// Here rather than in `calendar`: the lenient readers are this module's concern, and the
// dependency stays one way (de -> calendar).
impl<'de> serde::Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        date(d)
    }
}

impl<'de> serde::Deserialize<'de> for DateTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        datetime(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(default, deserialize_with = "opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "opt_bool01")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "blank_as_none")]
        s: Option<String>,
        #[serde(default, deserialize_with = "number_map")]
        m: BTreeMap<String, u64>,
        #[serde(default, deserialize_with = "opt_datetime")]
        t: Option<DateTime>,
    }

    #[test]
    fn numbers_and_text_alike() {
        let a: T = serde_json::from_str(r#"{"n":3,"b":1,"s":7,"m":{"a":1,"b":"0"},"t":"2024-01-02 03:04"}"#).unwrap();
        let b: T =
            serde_json::from_str(r#"{"n":" 3 ","b":"y","s":"7","m":"a:1,b:0","t":"2024-01-02 03:04:00"}"#).unwrap();
        assert_eq!(a, b);
        let blank: T = serde_json::from_str(r#"{"n":"","b":"","s":" ","m":"","t":""}"#).unwrap();
        assert_eq!(blank, T { n: None, b: None, s: None, m: BTreeMap::new(), t: None });
        let e = serde_json::from_str::<T>(r#"{"n":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("`x` is not a whole number"), "{e}");
        assert!(serde_json::from_str::<T>(r#"{"b":"2"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"n":-1}"#).is_err());
    }
}
