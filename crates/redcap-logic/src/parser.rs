//! Precedence-climbing (Pratt) parser.
//!
//! Operators, loosest binding first:
//!
//! | level | operators                          | notes                                   |
//! |-------|------------------------------------|-----------------------------------------|
//! | 1     | `or`, `\|\|`                         | n-ary                                   |
//! | 2     | `and`, `&&`                        | n-ary                                   |
//! | 3     | prefix `not`, `!`                  |                                         |
//! | 4     | `=` `==` `<>` `!=` `<` `<=` `>` `>=` | comparisons do not chain                |
//! | 5     | `+` `-`                            | left to right                           |
//! | 6     | `*` `/`                            | left to right                           |
//! | 7     | prefix `-`                         |                                         |
//! | 8     | `^`                                | right-associative, so `-2^2` is `-4`    |
//!
//! `not` / `!` bind looser than comparisons, so `not [a] = 1` means `not ([a] = 1)`, which is
//! what a REDCap author writing it means (unlike PHP, where `!` binds tighter).
//!
//! Primaries: numbers, strings, `true`, `false`, field references, `name(args…)` and
//! parenthesised expressions. Only parentheses, calls and prefix operators recurse, and each
//! level costs just a few stack frames; [`MAX_DEPTH`] bounds the nesting.

use crate::ast::{ArithOp, CmpOp, Expr, Func};
use crate::error::ParseError;
use crate::eval::{DateUnit, DatediffOption};
use crate::lexer::{Tok, Token, lex};
use crate::value::Value;

pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { src, toks: lex(src)?, pos: 0, depth: 0 };
    let expr = p.nested(0)?;
    match p.peek().tok {
        Tok::Eof => Ok(expr),
        _ => Err(p.unexpected()),
    }
}

const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const ADD: u8 = 5;
const MUL: u8 = 6;
const NEG: u8 = 7;
const POW: u8 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Infix {
    Or,
    And,
    Cmp(CmpOp),
    Arith(ArithOp),
}

/// Deepest nesting of parentheses, function calls, `not`, unary minus and `^` accepted.
///
/// Chains of `and`, `or`, `+ -` and `* /` do not count (they are stored flat), so this only
/// bounds genuinely nested input and keeps parsing and evaluation from exhausting the stack.
pub(crate) const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    /// Current nesting depth, see [`MAX_DEPTH`].
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn bump(&mut self) {
        if !matches!(self.toks[self.pos].tok, Tok::Eof) {
            self.pos += 1;
        }
    }

    fn error(&self, at: usize, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.src, at, msg)
    }

    /// An "unexpected …" error for the next token.
    fn unexpected(&self) -> ParseError {
        let t = self.peek();
        let text = &self.src[t.start..t.end];
        let msg = match &t.tok {
            Tok::Eof => "unexpected end of input".to_owned(),
            Tok::Number(_) => format!("unexpected number `{text}`"),
            Tok::Text(_) => format!("unexpected string {text}"),
            Tok::Field(_) => format!("unexpected field reference `{text}`"),
            Tok::Ident(s) if is_keyword(s) => format!("unexpected keyword `{text}`"),
            Tok::Ident(_) => format!("unexpected identifier `{text}` (quote text values, e.g. '{text}')"),
            _ => format!("unexpected '{text}'"),
        };
        self.error(t.start, msg)
    }

    #[cold]
    fn too_deep(&self) -> ParseError {
        self.error(self.peek().start, format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"))
    }

    /// The binary operator at the current token, with its level.
    fn infix(&self) -> Option<(u8, Infix)> {
        Some(match &self.peek().tok {
            Tok::Ident(s) if s.eq_ignore_ascii_case("or") => (OR, Infix::Or),
            Tok::OrOr => (OR, Infix::Or),
            Tok::Ident(s) if s.eq_ignore_ascii_case("and") => (AND, Infix::And),
            Tok::AndAnd => (AND, Infix::And),
            Tok::Cmp(op) => (CMP, Infix::Cmp(*op)),
            Tok::Plus => (ADD, Infix::Arith(ArithOp::Add)),
            Tok::Minus => (ADD, Infix::Arith(ArithOp::Sub)),
            Tok::Star => (MUL, Infix::Arith(ArithOp::Mul)),
            Tok::Slash => (MUL, Infix::Arith(ArithOp::Div)),
            Tok::Caret => (POW, Infix::Arith(ArithOp::Pow)),
            _ => return None,
        })
    }

    /// An expression whose binary operators all bind at least as tightly as level `min`.
    ///
    /// Each operator is handled in its own function so that this one, which every nesting
    /// level passes through, keeps a small stack frame.
    #[expect(clippy::question_mark, reason = "`?` costs stack space in debug builds on this hot recursive path")]
    fn expr(&mut self, min: u8) -> Result<Expr, ParseError> {
        let mut lhs = match self.primary(min) {
            Ok(e) => e,
            Err(e) => return Err(e),
        };
        while let Some((level, op)) = self.infix() {
            if level < min {
                break;
            }
            self.bump();
            let next = match op {
                Infix::Or | Infix::And => self.bool_chain(lhs, level, op),
                Infix::Cmp(cmp) => self.compare(lhs, cmp),
                Infix::Arith(ArithOp::Pow) => self.power(lhs),
                Infix::Arith(first) => self.arith_chain(lhs, level, first),
            };
            lhs = match next {
                Ok(e) => e,
                Err(e) => return Err(e),
            };
        }
        Ok(lhs)
    }

    /// `lhs or b or c…` / `lhs and b and c…` as one n-ary node.
    fn bool_chain(&mut self, lhs: Expr, level: u8, op: Infix) -> Result<Expr, ParseError> {
        let mut items = vec![lhs, self.expr(level + 1)?];
        while matches!(self.infix(), Some((l, _)) if l == level) {
            self.bump();
            items.push(self.expr(level + 1)?);
        }
        Ok(if op == Infix::Or { Expr::Or(items) } else { Expr::And(items) })
    }

    /// `lhs <op> rhs`; comparisons do not chain.
    fn compare(&mut self, lhs: Expr, op: CmpOp) -> Result<Expr, ParseError> {
        let rhs = self.expr(CMP + 1)?;
        if let Tok::Cmp(_) = self.peek().tok {
            let at = self.peek().start;
            return Err(self.error(at, "comparisons cannot be chained (combine them with `and`)"));
        }
        Ok(Expr::Compare(op, Box::new(lhs), Box::new(rhs)))
    }

    /// `lhs ^ exponent`, right-associative; the exponent may be negated (`2 ^ -1`).
    fn power(&mut self, lhs: Expr) -> Result<Expr, ParseError> {
        let exponent = self.nested(NEG)?;
        Ok(Expr::Arith(Box::new(lhs), vec![(ArithOp::Pow, exponent)]))
    }

    /// `lhs + b - c…` / `lhs * b / c…` as one left-to-right chain.
    fn arith_chain(&mut self, lhs: Expr, level: u8, first: ArithOp) -> Result<Expr, ParseError> {
        let mut rest = vec![(first, self.expr(level + 1)?)];
        while let Some((l, Infix::Arith(op))) = self.infix() {
            if l != level {
                break;
            }
            self.bump();
            rest.push((op, self.expr(level + 1)?));
        }
        Ok(Expr::Arith(Box::new(lhs), rest))
    }

    /// A literal, field, call or parenthesised expression, or a prefix operator allowed at
    /// level `min` (`not` only where a comparison could start, `-` anywhere).
    fn primary(&mut self, min: u8) -> Result<Expr, ParseError> {
        let expr = match &self.peek().tok {
            Tok::Number(n) => Expr::Number(*n),
            Tok::Text(s) => Expr::Text(s.clone()),
            Tok::Field(f) => Expr::Field(f.clone()),
            Tok::LParen => return self.parenthesised(),
            Tok::Bang if min <= NOT => return self.prefix(NOT),
            Tok::Ident(s) if min <= NOT && s.eq_ignore_ascii_case("not") => return self.prefix(NOT),
            Tok::Minus => return self.prefix(NEG),
            Tok::Ident(name) if name.eq_ignore_ascii_case("true") => Expr::Bool(true),
            Tok::Ident(name) if name.eq_ignore_ascii_case("false") => Expr::Bool(false),
            Tok::Ident(name)
                if !is_keyword(name) && matches!(self.toks.get(self.pos + 1).map(|t| &t.tok), Some(Tok::LParen)) =>
            {
                return self.call();
            }
            _ => return Err(self.unexpected()),
        };
        self.bump();
        Ok(expr)
    }

    /// `( expr )`.
    fn parenthesised(&mut self) -> Result<Expr, ParseError> {
        let open = self.peek().start;
        self.bump();
        let result = self.nested(0);
        match result {
            Ok(e) => self.close_paren(open).map(|()| e),
            Err(e) => Err(e),
        }
    }

    /// `not x` / `-x`: the operand is everything binding at least as tightly as the operator.
    fn prefix(&mut self, level: u8) -> Result<Expr, ParseError> {
        self.bump();
        let wrap = if level == NOT { Expr::Not } else { Expr::Neg };
        self.nested(level).map(|operand| wrap(Box::new(operand)))
    }

    /// [`Parser::expr`] one nesting level deeper.
    fn nested(&mut self, min: u8) -> Result<Expr, ParseError> {
        // No `?` here or in the other functions on the recursion path (`expr`, `parenthesised`,
        // `prefix`, `call`): in debug builds each `?` costs stack space.
        if self.depth >= MAX_DEPTH {
            return Err(self.too_deep());
        }
        self.depth += 1;
        let result = self.expr(min);
        self.depth -= 1;
        result
    }

    /// Expects the `)` matching the `(` at `open`.
    fn close_paren(&mut self, open: usize) -> Result<(), ParseError> {
        match self.peek().tok {
            Tok::RParen => {
                self.bump();
                Ok(())
            }
            Tok::Eof => Err(self.error(open, "unclosed '('")),
            _ => Err(self.unexpected()),
        }
    }

    /// `name(args…)`, at the function name.
    fn call(&mut self) -> Result<Expr, ParseError> {
        let at = self.peek().start;
        let Tok::Ident(name) = &self.peek().tok else { unreachable!("call() starts at a name") };
        let func = Func::lookup(name).ok_or_else(|| self.unsupported(at))?;
        self.bump(); // name
        let open = self.peek().start;
        self.bump(); // (
        let mut args = Vec::new();
        let mut arg_starts = Vec::new();
        if !matches!(self.peek().tok, Tok::RParen) {
            loop {
                arg_starts.push(self.peek().start);
                match self.nested(0) {
                    Ok(arg) => args.push(arg),
                    Err(e) => return Err(e),
                }
                if let Tok::Comma = self.peek().tok {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        self.close_paren(open)?;

        let (min, max) = func.arity();
        if args.len() < min || max.is_some_and(|max| args.len() > max) {
            return Err(self.arity_error(func, args.len(), at));
        }
        if func == Func::Datediff {
            self.check_datediff(&args, &arg_starts)?;
        }
        Ok(Expr::Call(func, args))
    }

    #[cold]
    fn unsupported(&self, at: usize) -> ParseError {
        let t = self.peek();
        self.error(at, format!("unsupported function `{}`", &self.src[t.start..t.end]))
    }

    #[cold]
    fn arity_error(&self, func: Func, got: usize, at: usize) -> ParseError {
        let (min, max) = func.arity();
        let expected = match max {
            Some(max) if max == min => format!("{min}"),
            Some(max) => format!("{min} to {max}"),
            None => format!("at least {min}"),
        };
        let plural = if max.unwrap_or(min) == 1 { "" } else { "s" };
        self.error(at, format!("function `{}` takes {expected} argument{plural}, got {got}", func.name()))
    }

    /// Checks literal `datediff` arguments now rather than at every evaluation.
    fn check_datediff(&self, args: &[Expr], starts: &[usize]) -> Result<(), ParseError> {
        for (i, (arg, &at)) in args.iter().zip(starts).enumerate() {
            let literal = match arg {
                Expr::Text(s) => Value::from(s.as_str()),
                Expr::Number(n) => Value::Number(*n),
                Expr::Bool(b) => Value::Bool(*b),
                _ => continue,
            };
            let text = literal.text();
            match i {
                0 | 1 if text.eq_ignore_ascii_case("now") => {
                    return Err(self.error(at, "'now' is not supported in datediff (use 'today' or a datetime field)"));
                }
                2 if DateUnit::parse(&text).is_none() => {
                    return Err(self.error(at, format!("invalid datediff unit {}", DateUnit::describe_invalid(&text))));
                }
                3 if DatediffOption::from_value(&literal).is_none() => {
                    return Err(self.error(
                        at,
                        format!("invalid datediff option '{text}' (expected \"ymd\", \"mdy\", \"dmy\", true or false)"),
                    ));
                }
                4 if !matches!(DatediffOption::from_value(&literal), Some(DatediffOption::Signed(_))) => {
                    return Err(self.error(at, format!("invalid datediff option '{text}' (expected true or false)")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn is_keyword(s: &str) -> bool {
    ["and", "or", "not"].iter().any(|k| k.eq_ignore_ascii_case(s))
}
