//! API tokens. A token is a password: it is never shown by `Debug`, `Display` or any error.

use std::fmt;

/// Which kind of token a method needs, or a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A 32-hex-character project token.
    Project,
    /// A 64-hex-character super token (one per user, granted by an administrator).
    Super,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::Project => "project token (32 hex characters)",
            TokenKind::Super => "super token (64 hex characters)",
        })
    }
}

/// Which tokens a method accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenRequirement {
    /// Only a project token.
    Project,
    /// Only a super token (Create Project).
    Super,
    /// Either kind (Export Version).
    Either,
}

impl TokenRequirement {
    /// Whether a token of `kind` may be sent.
    pub fn accepts(self, kind: TokenKind) -> bool {
        matches!(
            (self, kind),
            (TokenRequirement::Either, _)
                | (TokenRequirement::Project, TokenKind::Project)
                | (TokenRequirement::Super, TokenKind::Super)
        )
    }
}

/// Why a string is not a usable token. Carries no part of the token itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Nothing was given.
    #[error("the API token is empty")]
    Empty,
    /// The length is neither 32 nor 64.
    #[error(
        "the API token has {0} characters; a REDCap project token has 32 hexadecimal characters and a super token 64"
    )]
    Length(usize),
    /// A character that is not a hexadecimal digit, at this 0-based position.
    #[error(
        "the API token has a character that is not a hexadecimal digit at position {0} (spaces, quotes and line \
         breaks count)"
    )]
    NotHex(usize),
    /// A lower-case letter, at this 0-based position. REDCap makes its tokens of digits and
    /// upper-case letters; a lowered copy (an editor, a secrets tool) would reach the server
    /// and be answered as a token without API rights.
    #[error(
        "the API token has a lower-case letter at position {0}; REDCap's tokens are digits and upper-case letters \
         A-F: copy it again from the project's API page"
    )]
    Lowercase(usize),
}

/// A validated REDCap API token.
///
/// Accepts exactly 32 (project) or 64 (super) hexadecimal digits, upper-case as REDCap makes
/// them; one trailing newline (`\n` or `\r\n`, as left by `cat token.txt` or a secrets file) is
/// trimmed, anything else is refused before any request is made.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token {
    secret: String,
    kind: TokenKind,
}

impl Token {
    /// Validates `raw` as a project or super token.
    pub fn new(raw: &str) -> Result<Self, TokenError> {
        let trimmed = raw.strip_suffix("\r\n").or_else(|| raw.strip_suffix('\n')).unwrap_or(raw);
        if trimmed.is_empty() {
            return Err(TokenError::Empty);
        }
        if let Some(pos) = trimmed.chars().position(|c| !c.is_ascii_hexdigit()) {
            return Err(TokenError::NotHex(pos));
        }
        let kind = match trimmed.len() {
            32 => TokenKind::Project,
            64 => TokenKind::Super,
            n => return Err(TokenError::Length(n)),
        };
        if let Some(pos) = trimmed.chars().position(|c| c.is_ascii_lowercase()) {
            return Err(TokenError::Lowercase(pos));
        }
        Ok(Token { secret: trimmed.to_owned(), kind })
    }

    /// Project or super token.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The secret itself, for the `token` form field. Never log what this returns.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }
}

impl std::str::FromStr for Token {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Token::new(s)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:?}, [redacted])", self.kind)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "0123456789ABCDEF0123456789ABCDEF";

    #[test]
    fn project_and_super_tokens() {
        assert_eq!(Token::new(P).unwrap().kind(), TokenKind::Project);
        let s = format!("{P}{P}");
        assert_eq!(Token::new(&s).unwrap().kind(), TokenKind::Super);
    }

    #[test]
    fn one_trailing_newline_is_trimmed() {
        assert_eq!(Token::new(&format!("{P}\n")).unwrap().expose_secret(), P);
        assert_eq!(Token::new(&format!("{P}\r\n")).unwrap().expose_secret(), P);
        assert_eq!(Token::new(&format!("{P}\n\n")), Err(TokenError::NotHex(32)));
    }

    #[test]
    fn refusals_do_not_echo_the_token() {
        for bad in ["", " ", "abc", &format!(" {P}"), &format!("{P}0"), &P.replace('A', "G")] {
            let err = Token::new(bad).unwrap_err();
            let text = err.to_string();
            assert!(!text.contains(P) && !text.contains("0123456789"), "{text}");
        }
        assert_eq!(Token::new(""), Err(TokenError::Empty));
        assert_eq!(Token::new(&P[..31]), Err(TokenError::Length(31)));
        assert_eq!(Token::new(&format!("{P}0")), Err(TokenError::Length(33)));
    }

    #[test]
    fn lower_case_is_refused_with_its_position() {
        let lowered = format!("{}{}", &P[..30], P[30..].to_lowercase());
        assert_eq!(Token::new(&lowered), Err(TokenError::Lowercase(30)));
        assert_eq!(Token::new(&P.to_lowercase()), Err(TokenError::Lowercase(10)));
        let text = Token::new(&P.to_lowercase()).unwrap_err().to_string();
        assert!(text.contains("upper-case") && !text.to_lowercase().contains(&P.to_lowercase()), "{text}");
    }

    #[test]
    fn debug_and_display_redact() {
        let t = Token::new(P).unwrap();
        assert_eq!(format!("{t:?}"), "Token(Project, [redacted])");
        assert_eq!(t.to_string(), "[redacted]");
        assert!(!format!("{:?}", Some(&t)).contains(P));
    }

    #[test]
    fn requirements() {
        assert!(TokenRequirement::Either.accepts(TokenKind::Super));
        assert!(!TokenRequirement::Project.accepts(TokenKind::Super));
        assert!(!TokenRequirement::Super.accepts(TokenKind::Project));
    }
}
