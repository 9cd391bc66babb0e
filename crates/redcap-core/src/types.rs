//! Enumerated parameter values, each with its exact wire spelling.

use std::fmt;

/// An enum whose values travel as fixed strings.
pub trait WireEnum: Sized + Copy + 'static {
    /// Every value, in documentation order.
    const ALL: &'static [Self];
    /// The exact string sent to REDCap.
    fn as_wire(self) -> &'static str;
    /// Parses an exact wire spelling.
    fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_wire() == s)
    }
}

/// A value outside an enum's documented spellings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}; expected one of: {expected}")]
pub struct UnknownValue {
    /// Name of the enum.
    pub what: &'static str,
    /// What was given.
    pub value: String,
    /// Allowed spellings, comma-separated.
    pub expected: String,
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vm])* #[doc = concat!("`", $wire, "`")] $variant),+ }

        impl WireEnum for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn as_wire(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_wire())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <Self as WireEnum>::from_wire(s).ok_or_else(|| UnknownValue {
                    what: stringify!($name),
                    value: s.to_owned(),
                    expected: Self::ALL.iter().map(|v| v.as_wire()).collect::<Vec<_>>().join(", "),
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_wire())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

impl From<Format> for ReturnFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Json => ReturnFormat::Json,
            Format::Csv => ReturnFormat::Csv,
            Format::Xml | Format::Odm => ReturnFormat::Xml,
        }
    }
}

impl CsvDelimiter {
    /// The byte that separates fields.
    pub fn byte(self) -> u8 {
        match self {
            CsvDelimiter::Comma => b',',
            CsvDelimiter::Tab => b'\t',
            CsvDelimiter::Semicolon => b';',
            CsvDelimiter::Pipe => b'|',
            CsvDelimiter::Caret => b'^',
        }
    }
}

// The enums themselves, and `enum_values`, from the one table of wire values.
include!("generated/enums.rs");

#[cfg(test)]
mod tests {
    use super::*;

    fn same<E: WireEnum>(name: &str) {
        let listed: Vec<&str> = E::ALL.iter().map(|v| v.as_wire()).collect();
        assert_eq!(enum_values(name).unwrap(), listed.as_slice(), "{name}");
    }

    #[test]
    fn table_matches_the_enums() {
        same::<Format>("Format");
        same::<ReturnFormat>("ReturnFormat");
        same::<RawOrLabel>("RawOrLabel");
        same::<CsvDelimiter>("CsvDelimiter");
        same::<DecimalCharacter>("DecimalCharacter");
        same::<OverwriteBehavior>("OverwriteBehavior");
        same::<ReturnContent>("ReturnContent");
        same::<RecordType>("RecordType");
        same::<DateFormat>("DateFormat");
        same::<LogType>("LogType");
        assert_eq!(enum_values("Nope"), None);
    }

    #[test]
    fn parse_and_display() {
        assert_eq!("tab".parse::<CsvDelimiter>().unwrap().byte(), b'\t');
        assert_eq!(Format::Odm.to_string(), "odm");
        let err = "both".parse::<RawOrLabel>().unwrap_err();
        assert_eq!(err.to_string(), "`both` is not a valid RawOrLabel; expected one of: raw, label");
        assert_eq!(ReturnFormat::from(Format::Odm), ReturnFormat::Xml);
    }
}
