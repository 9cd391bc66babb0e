//! Tokeniser.

use crate::ast::{CmpOp, FieldRef};
use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(f64),
    Text(String),
    Field(FieldRef),
    /// A bare word: a keyword (`and`, `or`, `not`, `true`, `false`) or a function name.
    Ident(String),
    LParen,
    RParen,
    Comma,
    Cmp(CmpOp),
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Bang,
    AndAnd,
    OrOr,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Byte range in the source.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let err = |at: usize, msg: String| ParseError::new(src, at, msg);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let next = bytes.get(i + 1).copied();
        let (tok, len) = match c {
            '0'..='9' | '.' => {
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == b'.' {
                    j += 1;
                    while j < bytes.len() && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                let text = &src[i..j];
                if text == "." {
                    return Err(err(i, "unexpected '.'".into()));
                }
                let n = text.parse::<f64>().map_err(|_| err(i, format!("invalid number `{text}`")))?;
                (Tok::Number(n), j - i)
            }
            'a'..='z' | 'A'..='Z' | '_' => {
                let len = bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                (Tok::Ident(src[i..i + len].to_owned()), len)
            }
            '\'' | '"' => match src[i + 1..].find(c) {
                Some(p) => (Tok::Text(src[i + 1..i + 1 + p].to_owned()), p + 2),
                None => return Err(err(i, "unterminated string".into())),
            },
            '[' => {
                let (field, end) = lex_field(src, i)?;
                (Tok::Field(field), end - i)
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '*' => (Tok::Star, 1),
            '/' => (Tok::Slash, 1),
            '^' => (Tok::Caret, 1),
            '=' if next == Some(b'=') => (Tok::Cmp(CmpOp::Eq), 2),
            '=' => (Tok::Cmp(CmpOp::Eq), 1),
            '<' if next == Some(b'=') => (Tok::Cmp(CmpOp::Le), 2),
            '<' if next == Some(b'>') => (Tok::Cmp(CmpOp::Ne), 2),
            '<' => (Tok::Cmp(CmpOp::Lt), 1),
            '>' if next == Some(b'=') => (Tok::Cmp(CmpOp::Ge), 2),
            '>' => (Tok::Cmp(CmpOp::Gt), 1),
            '!' if next == Some(b'=') => (Tok::Cmp(CmpOp::Ne), 2),
            '!' => (Tok::Bang, 1),
            '&' if next == Some(b'&') => (Tok::AndAnd, 2),
            '|' if next == Some(b'|') => (Tok::OrOr, 2),
            '&' => return Err(err(i, "unexpected '&' (use `and` or `&&`)".into())),
            '|' => return Err(err(i, "unexpected '|' (use `or` or `||`)".into())),
            ']' => return Err(err(i, "unexpected ']'".into())),
            _ => return Err(err(i, format!("unexpected character '{c}'"))),
        };
        i += len;
        out.push(Token { tok, start, end: i });
    }
    out.push(Token { tok: Tok::Eof, start: src.len(), end: src.len() });
    Ok(out)
}

/// One bracketed part of a field reference: its offset (of `[`) and content.
type Part<'a> = (usize, &'a str);

/// Lexes `[field]`, `[field(code)]`, `[event][field]` or `[event][field(code)]` starting at the
/// `[` at `start`; returns the reference and the offset just past it.
fn lex_field(src: &str, start: usize) -> Result<(FieldRef, usize), ParseError> {
    let mut parts: Vec<Part<'_>> = Vec::new();
    let mut i = start;
    while src[i..].starts_with('[') {
        let close = src[i + 1..]
            .find(['[', ']'])
            .filter(|&p| src[i + 1 + p..].starts_with(']'))
            .ok_or_else(|| ParseError::new(src, i, "unterminated field reference"))?;
        parts.push((i, &src[i + 1..i + 1 + close]));
        i += close + 2;
    }
    let bracketed = |(_, content): Part<'_>| format!("[{content}]");
    let is_instance = |(_, content): Part<'_>| !content.is_empty() && content.bytes().all(|b| b.is_ascii_digit());
    let part_error = |part: Part<'_>| {
        let msg = if part.1.contains(['-', ':']) {
            format!("unsupported smart variable `{}`", bracketed(part))
        } else {
            format!("invalid field reference `{}`", bracketed(part))
        };
        ParseError::new(src, part.0, msg)
    };

    let last = *parts.last().expect("at least one part");
    if parts.len() > 1 && is_instance(last) {
        return Err(ParseError::new(src, last.0, format!("repeat instance `{}` is not supported", bracketed(last))));
    }
    let field = match parts[..] {
        [field] => {
            let (name, code) = split_field(field.1).ok_or_else(|| part_error(field))?;
            FieldRef { event: None, field: name.to_owned(), checkbox_code: code.map(str::to_owned) }
        }
        [event, field] => {
            if !is_event_name(event.1) {
                return Err(if event.1.contains(['-', ':']) {
                    part_error(event)
                } else {
                    ParseError::new(src, event.0, format!("invalid event name `{}`", bracketed(event)))
                });
            }
            let (name, code) = split_field(field.1).ok_or_else(|| part_error(field))?;
            FieldRef { event: Some(event.1.to_owned()), field: name.to_owned(), checkbox_code: code.map(str::to_owned) }
        }
        _ => return Err(ParseError::new(src, start, "too many bracketed parts in field reference")),
    };
    Ok((field, i))
}

/// Splits `name` or `name(code)`; `None` if either part is malformed.
fn split_field(content: &str) -> Option<(&str, Option<&str>)> {
    let (name, code) = match content.find('(') {
        Some(p) => (&content[..p], Some(content[p + 1..].strip_suffix(')')?)),
        None => (content, None),
    };
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let code_ok = code.is_none_or(|c| {
        !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    });
    (name_ok && code_ok).then_some((name, code))
}

/// Unique event names are generated from event labels and may start with a digit.
fn is_event_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
