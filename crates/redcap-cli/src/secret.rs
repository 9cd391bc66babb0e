//! A token as the user typed it, before validation. It is never shown: `Debug` redacts it,
//! there is no `Display`, and parsing never fails (so clap never echoes it in an error).

use std::fmt;

/// A secret string (an API token).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for validation and the request. Never print what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether nothing (or only whitespace) was given.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s: Secret = "0123456789ABCDEF0123456789ABCDEF".parse().unwrap();
        assert!(!format!("{s:?}").contains("0123"));
        assert!(!format!("{:?}", Some(s.clone())).contains("0123"));
        assert_eq!(s.expose(), "0123456789ABCDEF0123456789ABCDEF");
    }
}
