//! Parser and evaluator for REDCap's *logic* language.
//!
//! REDCap uses one small expression language for the `filterLogic` parameter of Export Records,
//! for report filters and for branching logic. This crate parses that language into a [`Logic`]
//! value and evaluates it against a record through the [`Context`] trait.
//!
//! ```
//! use redcap_logic::{Date, MapContext, parse};
//!
//! let logic = parse("[age] > 30 and [name_first] = 'John Lee'")?;
//! let record = MapContext::new().with("age", "31").with("name_first", "John Lee");
//! assert!(logic.is_true(&record)?);
//!
//! let age = parse("rounddown(datediff([dob], 'today', 'y'))")?;
//! let record = MapContext::new().with("dob", "2000-06-15").with_today(Date::new(2024, 6, 15).unwrap());
//! assert_eq!(age.eval(&record)?.to_string(), "24");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Syntax
//!
//! * Field references: `[age]`, `[baseline_arm_1][weight]` (event, then field), checkbox options
//!   `[race(2)]` and `[baseline_arm_1][race(2)]`. Smart variables (`[user-name]`, …) and repeat
//!   instances (`[field][2]`) are rejected with a parse error.
//! * Literals: numbers (`30`, `2.5`), strings in single or double quotes (`'John Lee'`, `"2"`,
//!   no escape sequences), `''` for blank, and `true` / `false`.
//! * Operators, loosest first: `or` / `||`; `and` / `&&`; prefix `not` / `!`; comparisons
//!   `=` / `==`, `<>` / `!=`, `<`, `<=`, `>`, `>=` (not chainable); `+` `-`; `*` `/`; unary `-`;
//!   `^` (power, right-associative, so `-2^2` is `-4`). Keywords are case-insensitive.
//! * Functions (case-insensitive names): `if`, `datediff`, `sum`, `mean`, `median`, `min`, `max`,
//!   `round`, `roundup`, `rounddown`, `abs`, `sqrt`, `isblankormissingcode`, `isnumber`,
//!   `isinteger`, `contains`, `not_contain`, `starts_with`, `ends_with`, `length`, `upper`,
//!   `lower`, `trim`, `concat`, `left`, `right`, `mid`, `year`, `month`, `day`. Any other name is
//!   a parse error (`unsupported function `foo``), never a silently wrong answer.
//!
//! # Semantics
//!
//! REDCap is PHP-based and loosely typed; this crate follows the documented behaviour and picks
//! the least surprising rule where the documentation is silent. The choices are documented where
//! they apply: see [`Value`] (blank and truthiness), [`Logic::eval`] (comparisons and
//! arithmetic), [`Context`] (field values, checkboxes, `'today'`) and the function list below.
//!
//! # Functions
//!
//! * `if(cond, a, b)`: `a` when `cond` is truthy, else `b`; only the chosen branch is evaluated.
//! * `datediff(d1, d2, unit [, format] [, signed])`: `d2 - d1` in `unit`, which is `"y"`
//!   (years of 365.2425 days), `"M"` (months of 30.44 days), `"d"`, `"h"`, `"m"` (minutes) or
//!   `"s"` — case-sensitive, as in REDCap. The result is fractional and, unless `signed` is
//!   true, absolute. Dates are `YYYY-MM-DD` optionally followed by `HH:MM[:SS]`; `format`
//!   (`"ymd"`, `"mdy"`, `"dmy"`) additionally allows values in that order (REDCap stores
//!   Y-M-D, so it is rarely needed), and may be omitted so that the fourth argument is the
//!   `signed` flag. The literal `'today'` means [`Context::today`] at midnight. A blank or
//!   invalid date makes the result blank. Literal units and options are checked at parse
//!   time; `'now'` is rejected (it would need a clock with a time zone).
//! * `sum`, `mean`, `median`, `min`, `max` (one or more arguments) skip blank and non-numeric
//!   arguments — REDCap documents skipping blanks, which is why `sum([a], [b])` is preferred to
//!   `[a] + [b]`; with no numeric argument at all the result is blank (there is nothing to
//!   aggregate, and a blank fails every ordered comparison).
//! * `round(x [, decimals])` rounds half away from zero (PHP's rule), `roundup` away from zero
//!   and `rounddown` toward zero (the spreadsheet functions REDCap mirrors); negative `decimals`
//!   round to tens, hundreds, …; a blank or non-numeric `x` gives blank.
//! * `abs(x)`, `sqrt(x)`: blank for blank/non-numeric input (and `sqrt` of a negative number).
//! * `isblankormissingcode(x)`: true when `x` is blank or equals one of
//!   [`Context::missing_codes`].
//! * `isnumber(x)`: true for numbers and numeric text; `isinteger(x)`: true for whole numbers
//!   and text made of an optional sign and digits (`"12"`, not `"12.0"`); both false for blank.
//! * `contains`, `not_contain`, `starts_with`, `ends_with(haystack, needle)`: case-insensitive,
//!   as REDCap documents; blank reads as the empty string.
//! * `length`, `upper`, `lower`, `trim`, `concat(…)`, `left(text, n)`, `right(text, n)`,
//!   `mid(text, start, n)` work on characters; `mid`'s `start` is 1-based.
//! * `year(d)`, `month(d)`, `day(d)`: the date's part as a number (`'today'` allowed), blank if
//!   `d` is not a date.
#![warn(missing_docs)]

mod ast;
mod context;
mod date;
mod error;
mod eval;
mod lexer;
mod parser;
mod value;

use std::fmt;
use std::str::FromStr;

pub use ast::FieldRef;
pub use context::{Context, MapContext};
pub use date::Date;
pub use error::{EvalError, ParseError};
pub use value::Value;

/// Parses REDCap logic such as `[age] > 30 and [sex] = '1'`.
///
/// Everything that can be checked without data is checked here: syntax, function names and
/// argument counts, and literal `datediff` units and options.
///
/// # Errors
///
/// A [`ParseError`] naming the problem and where it is, e.g. `unexpected ')' at column 12` or
/// ``unsupported function `foo` at column 1``.
pub fn parse(src: &str) -> Result<Logic, ParseError> {
    parser::parse(src).map(|expr| Logic { expr })
}

/// A parsed logic expression, ready to evaluate against any number of records.
///
/// Its [`Display`](fmt::Display) form is a canonical, fully parenthesised rendering that parses
/// back to an equal `Logic` (handy to see how precedence was applied), unless the added
/// parentheses push it past the nesting limit.
///
/// Parsing accepts at most 100 levels of nesting (parentheses, function calls, `not`, unary
/// minus, `^`), so that parsing and evaluating untrusted logic cannot exhaust the stack; long
/// chains such as `[id] = '1' or [id] = '2' or …` or `[q1] + [q2] + …` do not nest and are
/// unlimited.
#[derive(Debug, Clone, PartialEq)]
pub struct Logic {
    expr: ast::Expr,
}

impl Logic {
    /// Evaluates the expression for one record.
    ///
    /// Comparisons (`=`, `<>`, `<`, …) follow these rules, in order:
    ///
    /// 1. **A blank on either side.** `=` is true only when both sides are blank (so a blank
    ///    field equals `''`), and `<>` is its negation (so `<>` between a blank and a non-blank
    ///    value is true). Ordered comparisons (`<`, `<=`, `>`, `>=`) are always false: REDCap
    ///    documents that a blank field in a numeric comparison is false (`[age] > 30` is not
    ///    satisfied by a missing age), and the same rule is applied to text and dates so a
    ///    missing value never satisfies a range filter. Use `[x] <> ''` to test for presence.
    /// 2. **Both sides look numeric** (numbers, booleans as 1/0, or text such as `"10"`, `" 2.5"`,
    ///    `"1e3"`): compared as numbers, so `"10" > "9"` and `"1.0" = 1`. This mirrors PHP's
    ///    comparison of numeric strings, which REDCap relies on because every field value is
    ///    stored as text.
    /// 3. **Otherwise** both sides are compared as text, case-sensitively, by Unicode code
    ///    point (byte order), which also orders `YYYY-MM-DD` dates correctly.
    ///
    /// Arithmetic (`+ - * / ^`, unary `-`) needs numeric operands; a blank or non-numeric
    /// operand, a division by zero or a non-finite result makes the result blank. This follows
    /// REDCap's calculated fields, where any blank input makes the calculation blank (use
    /// `sum()` to skip blanks); a blank result then fails every ordered comparison.
    ///
    /// `and`, `or` and `not` work on truthiness (see [`Value::is_truthy`]), short-circuit, and
    /// return booleans. `if()` only evaluates the branch it takes.
    ///
    /// # Errors
    ///
    /// An [`EvalError`] only for problems that parsing could not see, e.g. a `datediff` unit
    /// that comes from a field and is not one of `y M d h m s`. Data problems (blank or
    /// malformed values) never error; they yield blanks as described above.
    pub fn eval(&self, ctx: &dyn Context) -> Result<Value, EvalError> {
        eval::eval(&self.expr, ctx)
    }

    /// Evaluates the expression and reports whether the result is truthy, which is how
    /// REDCap decides whether a record passes a filter or a field is shown.
    ///
    /// # Errors
    ///
    /// As for [`Logic::eval`].
    pub fn is_true(&self, ctx: &dyn Context) -> Result<bool, EvalError> {
        Ok(self.eval(ctx)?.is_truthy())
    }

    /// Every field reference in the expression, in order of first appearance and without
    /// duplicates, so callers can check names (and events) against a project's metadata.
    pub fn fields(&self) -> Vec<FieldRef> {
        let mut out = Vec::new();
        self.expr.collect_fields(&mut out);
        out
    }
}

impl fmt::Display for Logic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl FromStr for Logic {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}
