//! Evaluation.

use std::cmp::Ordering;

use crate::ast::{ArithOp, CmpOp, Expr, FieldRef, Func};
use crate::context::Context;
use crate::date::{DateFormat, civil_from_days, parse_datetime};
use crate::error::EvalError;
use crate::value::{Value, parse_numeric};

/// Evaluates an expression. Every nesting level of the expression passes through here and
/// [`call`], so both stay small; the work is done in helpers.
pub(crate) fn eval(expr: &Expr, ctx: &dyn Context) -> Result<Value, EvalError> {
    match expr {
        Expr::Number(n) => Ok(Value::number(*n)),
        Expr::Text(s) => Ok(Value::from(s.as_str())),
        Expr::Bool(b) => Ok(Value::Bool(*b)),
        Expr::Field(f) => Ok(field_value(f, ctx)),
        Expr::Neg(e) => eval(e, ctx).map(|v| v.as_number().map_or(Value::Blank, |n| Value::number(-n))),
        Expr::Not(e) => eval(e, ctx).map(|v| Value::Bool(!v.is_truthy())),
        Expr::And(items) => all_or_any(items, false, ctx),
        Expr::Or(items) => all_or_any(items, true, ctx),
        Expr::Compare(op, a, b) => eval_compare(*op, a, b, ctx),
        Expr::Arith(first, rest) => eval_arith(first, rest, ctx),
        Expr::Call(func, args) => call(*func, args, ctx),
    }
}

/// `and` (`stop_on = false`) or `or` (`stop_on = true`), short-circuiting.
fn all_or_any(items: &[Expr], stop_on: bool, ctx: &dyn Context) -> Result<Value, EvalError> {
    for e in items {
        if eval(e, ctx)?.is_truthy() == stop_on {
            return Ok(Value::Bool(stop_on));
        }
    }
    Ok(Value::Bool(!stop_on))
}

fn eval_compare(op: CmpOp, a: &Expr, b: &Expr, ctx: &dyn Context) -> Result<Value, EvalError> {
    let a = eval(a, ctx)?;
    let b = eval(b, ctx)?;
    Ok(Value::Bool(compare(op, &a, &b)))
}

fn eval_arith(first: &Expr, rest: &[(ArithOp, Expr)], ctx: &dyn Context) -> Result<Value, EvalError> {
    let mut acc = eval(first, ctx)?;
    for (op, e) in rest {
        acc = arith(*op, &acc, &eval(e, ctx)?);
    }
    Ok(acc)
}

/// A field's value; checkbox options are never blank (unchecked is `"0"`).
fn field_value(f: &FieldRef, ctx: &dyn Context) -> Value {
    let v = ctx.value(f).unwrap_or_default();
    if f.checkbox_code.is_some() && v.is_empty() { Value::Text("0".to_owned()) } else { Value::from(v) }
}

/// The comparison rules documented on [`crate::Logic::eval`].
fn compare(op: CmpOp, l: &Value, r: &Value) -> bool {
    if l.is_blank() || r.is_blank() {
        let both = l.is_blank() && r.is_blank();
        return match op {
            CmpOp::Eq => both,
            CmpOp::Ne => !both,
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => false,
        };
    }
    let ord = match (l.as_number(), r.as_number()) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(l.text().as_ref().cmp(r.text().as_ref())),
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// Arithmetic: blank unless both operands are numeric and the result is finite.
fn arith(op: ArithOp, l: &Value, r: &Value) -> Value {
    let (Some(a), Some(b)) = (l.as_number(), r.as_number()) else { return Value::Blank };
    Value::number(match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div if b == 0.0 => return Value::Blank,
        ArithOp::Div => a / b,
        ArithOp::Pow => a.powf(b),
    })
}

/// A `datediff` unit. The letters are case-sensitive, as in REDCap: `M` is months and `m`
/// minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateUnit {
    Years,
    Months,
    Days,
    Hours,
    Minutes,
    Seconds,
}

impl DateUnit {
    pub(crate) fn parse(s: &str) -> Option<DateUnit> {
        Some(match s {
            "y" => DateUnit::Years,
            "M" => DateUnit::Months,
            "d" => DateUnit::Days,
            "h" => DateUnit::Hours,
            "m" => DateUnit::Minutes,
            "s" => DateUnit::Seconds,
            _ => return None,
        })
    }

    pub(crate) fn describe_invalid(s: &str) -> String {
        format!("'{s}' (expected \"y\", \"M\", \"d\", \"h\", \"m\" or \"s\")")
    }

    /// Length in seconds. REDCap defines a year as 365.2425 days and a month as 30.44 days,
    /// so `datediff` in years or months is a (fractional) day count divided by those.
    fn seconds(self) -> f64 {
        match self {
            DateUnit::Years => 365.2425 * 86_400.0,
            DateUnit::Months => 30.44 * 86_400.0,
            DateUnit::Days => 86_400.0,
            DateUnit::Hours => 3_600.0,
            DateUnit::Minutes => 60.0,
            DateUnit::Seconds => 1.0,
        }
    }
}

/// The optional fourth and fifth `datediff` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatediffOption {
    /// `"ymd"`, `"mdy"` or `"dmy"`: the order of date parts in the values.
    Format(DateFormat),
    /// `returnSignedValue`.
    Signed(bool),
}

impl DatediffOption {
    pub(crate) fn from_value(v: &Value) -> Option<DatediffOption> {
        match v {
            Value::Bool(b) => Some(DatediffOption::Signed(*b)),
            Value::Number(n) => Some(DatediffOption::Signed(*n != 0.0)),
            Value::Text(s) if s.eq_ignore_ascii_case("true") => Some(DatediffOption::Signed(true)),
            Value::Text(s) if s.eq_ignore_ascii_case("false") => Some(DatediffOption::Signed(false)),
            Value::Text(s) => match parse_numeric(s) {
                Some(n) => Some(DatediffOption::Signed(n != 0.0)),
                None => DateFormat::parse(s).map(DatediffOption::Format),
            },
            Value::Blank => None,
        }
    }
}

/// `datediff(date1, date2, unit [, format] [, signed])`: `date2 - date1` in `unit`, as an
/// absolute value unless `signed` is true; blank when either date is blank or invalid.
fn datediff(args: &[Value]) -> Result<Value, EvalError> {
    let unit = DateUnit::parse(&args[2].text()).ok_or_else(|| {
        EvalError::new(format!("invalid datediff unit {}", DateUnit::describe_invalid(&args[2].text())))
    })?;
    let mut format = DateFormat::Ymd;
    let mut signed = false;
    if let Some(v) = args.get(3) {
        match DatediffOption::from_value(v) {
            Some(DatediffOption::Format(f)) => format = f,
            Some(DatediffOption::Signed(s)) => signed = s,
            None => return Err(EvalError::new(format!("invalid datediff option '{v}'"))),
        }
    }
    if let Some(v) = args.get(4) {
        match DatediffOption::from_value(v) {
            Some(DatediffOption::Signed(s)) => signed = s,
            _ => return Err(EvalError::new(format!("invalid datediff option '{v}' (expected true or false)"))),
        }
    }
    let (Some(t1), Some(t2)) = (parse_datetime(&args[0].text(), format), parse_datetime(&args[1].text(), format))
    else {
        return Ok(Value::Blank);
    };
    // Second-resolution timestamps of real dates convert to f64 exactly.
    let diff = (t2 - t1) as f64 / unit.seconds();
    Ok(Value::number(if signed { diff } else { diff.abs() }))
}

/// Whether argument `i` of `func` is a date, where the literal `'today'` (any case) stands for
/// the context's date.
fn takes_date(func: Func, i: usize) -> bool {
    match func {
        Func::Datediff => i < 2,
        Func::Year | Func::Month | Func::Day => i == 0,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rounding {
    /// Half away from zero (`round`).
    Nearest,
    /// Away from zero (`roundup`).
    Up,
    /// Toward zero (`rounddown`).
    Down,
}

/// Rounds `x` to `digits` decimals (negative: tens, hundreds, …).
///
/// The scaled value is first snapped to 15 significant digits, like PHP's `round`, so that
/// decimal inputs behave as written: `round(1.005, 2)` is `1.01` and `roundup(1.1, 1)` is
/// `1.1`, although `1.005 * 100` and `1.1 * 10` are not exact in binary.
fn round_to(x: f64, digits: f64, mode: Rounding) -> f64 {
    let d = digits.trunc().clamp(-300.0, 300.0) as i32;
    if d >= 15 {
        return x;
    }
    let scale = 10f64.powi(d.abs());
    let y = if d >= 0 { x * scale } else { x / scale };
    let y = format!("{y:.14e}").parse::<f64>().unwrap_or(y);
    let r = match mode {
        Rounding::Nearest => y.round(),
        Rounding::Up if y >= 0.0 => y.ceil(),
        Rounding::Up => y.floor(),
        Rounding::Down => y.trunc(),
    };
    if d >= 0 { r / scale } else { r * scale }
}

fn is_integer_text(s: &str) -> bool {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A non-negative whole count from a value (fractions truncated), for `left`, `right`, `mid`.
fn count(v: &Value) -> Option<usize> {
    v.as_number().filter(|n| *n >= 0.0).map(|n| n.trunc() as usize)
}

/// Calls a function: `if` evaluates only the branch it takes; every other function gets all
/// its arguments evaluated first (a literal `'today'` in a date position becomes the context's
/// date) and is then applied by [`apply`], which does not recurse.
fn call(func: Func, args: &[Expr], ctx: &dyn Context) -> Result<Value, EvalError> {
    if func == Func::If {
        let branch = if eval(&args[0], ctx)?.is_truthy() { &args[1] } else { &args[2] };
        return eval(branch, ctx);
    }
    let mut values = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let today = matches!(arg, Expr::Text(s) if s.eq_ignore_ascii_case("today")) && takes_date(func, i);
        values.push(if today { Value::Text(ctx.today().to_string()) } else { eval(arg, ctx)? });
    }
    apply(func, values, ctx)
}

/// Applies a function other than `if` to its evaluated arguments; the semantics are documented
/// in the crate documentation.
fn apply(func: Func, args: Vec<Value>, ctx: &dyn Context) -> Result<Value, EvalError> {
    let number = |i: usize| args.get(i).and_then(Value::as_number);
    let text = |i: usize| args[i].text();
    Ok(match func {
        // Handled lazily by `call`; kept here so the match stays exhaustive.
        Func::If => {
            if args[0].is_truthy() {
                args[1].clone()
            } else {
                args[2].clone()
            }
        }
        Func::Datediff => return datediff(&args),
        Func::Sum | Func::Mean | Func::Median | Func::Min | Func::Max => {
            let mut nums: Vec<f64> = args.iter().filter_map(Value::as_number).collect();
            if nums.is_empty() {
                return Ok(Value::Blank);
            }
            let sum: f64 = nums.iter().sum();
            Value::number(match func {
                Func::Sum => sum,
                Func::Mean => sum / nums.len() as f64,
                Func::Median => {
                    nums.sort_by(f64::total_cmp);
                    let mid = nums.len() / 2;
                    if nums.len() % 2 == 1 { nums[mid] } else { (nums[mid - 1] + nums[mid]) / 2.0 }
                }
                Func::Min => nums.iter().copied().fold(f64::INFINITY, f64::min),
                _ => nums.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
        }
        Func::Round | Func::Roundup | Func::Rounddown => {
            let mode = match func {
                Func::Round => Rounding::Nearest,
                Func::Roundup => Rounding::Up,
                _ => Rounding::Down,
            };
            let digits = if args.len() > 1 { number(1) } else { Some(0.0) };
            match (number(0), digits) {
                (Some(x), Some(d)) => Value::number(round_to(x, d, mode)),
                _ => Value::Blank,
            }
        }
        Func::Abs => number(0).map_or(Value::Blank, |n| Value::number(n.abs())),
        Func::Sqrt => number(0).filter(|n| *n >= 0.0).map_or(Value::Blank, |n| Value::number(n.sqrt())),
        Func::IsBlankOrMissingCode => {
            Value::Bool(args[0].is_blank() || ctx.missing_codes().iter().any(|c| *c == text(0)))
        }
        Func::IsNumber => Value::Bool(match &args[0] {
            Value::Number(_) => true,
            Value::Text(s) => parse_numeric(s).is_some(),
            Value::Blank | Value::Bool(_) => false,
        }),
        Func::IsInteger => Value::Bool(match &args[0] {
            Value::Number(n) => n.fract() == 0.0,
            Value::Text(s) => is_integer_text(s),
            Value::Blank | Value::Bool(_) => false,
        }),
        Func::Contains | Func::NotContain | Func::StartsWith | Func::EndsWith => {
            let haystack = text(0).to_lowercase();
            let needle = text(1).to_lowercase();
            Value::Bool(match func {
                Func::Contains => haystack.contains(&needle),
                Func::NotContain => !haystack.contains(&needle),
                Func::StartsWith => haystack.starts_with(&needle),
                _ => haystack.ends_with(&needle),
            })
        }
        Func::Length => Value::Number(text(0).chars().count() as f64),
        Func::Upper => Value::from(text(0).to_uppercase()),
        Func::Lower => Value::from(text(0).to_lowercase()),
        Func::Trim => Value::from(text(0).trim()),
        Func::Concat => Value::from(args.iter().map(|v| v.text()).collect::<String>()),
        Func::Left | Func::Right => {
            let Some(n) = count(&args[1]) else { return Ok(Value::Blank) };
            let text = text(0);
            let len = text.chars().count();
            let skip = if func == Func::Left { 0 } else { len.saturating_sub(n) };
            Value::from(text.chars().skip(skip).take(n).collect::<String>())
        }
        Func::Mid => {
            let (Some(start), Some(n)) = (count(&args[1]), count(&args[2])) else { return Ok(Value::Blank) };
            if start == 0 {
                return Ok(Value::Blank);
            }
            Value::from(text(0).chars().skip(start - 1).take(n).collect::<String>())
        }
        Func::Year | Func::Month | Func::Day => match parse_datetime(&text(0), DateFormat::Ymd) {
            Some(ts) => {
                let (y, m, d) = civil_from_days(ts.div_euclid(86_400));
                Value::Number(f64::from(match func {
                    Func::Year => y,
                    Func::Month => m as i32,
                    _ => d as i32,
                }))
            }
            None => Value::Blank,
        },
    })
}
