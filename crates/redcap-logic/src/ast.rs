//! Syntax tree of a logic expression.

use std::fmt;

use crate::value::format_number;

/// A field reference such as `[age]`, `[baseline_arm_1][weight]` or `[race(2)]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldRef {
    /// Unique event name for `[event][field]` references; `None` means the current event (or a
    /// classic, non-longitudinal project).
    pub event: Option<String>,
    /// The field (variable) name, as written.
    pub field: String,
    /// The raw option code for checkbox references such as `[race(2)]`.
    pub checkbox_code: Option<String>,
}

impl FieldRef {
    /// A plain `[field]` reference.
    pub fn new(field: impl Into<String>) -> Self {
        FieldRef { event: None, field: field.into(), checkbox_code: None }
    }

    /// The same reference qualified by a unique event name: `[event][field]`.
    #[must_use]
    pub fn with_event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// The same reference to one checkbox option: `[field(code)]`.
    #[must_use]
    pub fn with_checkbox_code(mut self, code: impl Into<String>) -> Self {
        self.checkbox_code = Some(code.into());
        self
    }

    /// The column holding this value in REDCap's flat record export: the field name, or for a
    /// checkbox option `field___code`, with the code lower-cased and every character other
    /// than ASCII letters and digits replaced by `_` (so `[race(-1)]` is `race____1`).
    pub fn column_name(&self) -> String {
        match &self.checkbox_code {
            None => self.field.clone(),
            Some(code) => {
                let code: String = code
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
                    .collect();
                format!("{}___{}", self.field, code)
            }
        }
    }
}

impl fmt::Display for FieldRef {
    /// Formats the reference in logic syntax, e.g. `[baseline_arm_1][race(2)]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(event) = &self.event {
            write!(f, "[{event}]")?;
        }
        match &self.checkbox_code {
            Some(code) => write!(f, "[{}({code})]", self.field),
            None => write!(f, "[{}]", self.field),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Pow => "^",
        }
    }
}

/// The supported functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    If,
    Datediff,
    Sum,
    Mean,
    Median,
    Min,
    Max,
    Round,
    Roundup,
    Rounddown,
    Abs,
    Sqrt,
    IsBlankOrMissingCode,
    IsNumber,
    IsInteger,
    Contains,
    NotContain,
    StartsWith,
    EndsWith,
    Length,
    Upper,
    Lower,
    Trim,
    Concat,
    Left,
    Right,
    Mid,
    Year,
    Month,
    Day,
}

/// Name, minimum and maximum (`None`: unbounded) argument counts.
const FUNCS: &[(Func, &str, usize, Option<usize>)] = &[
    (Func::If, "if", 3, Some(3)),
    (Func::Datediff, "datediff", 3, Some(5)),
    (Func::Sum, "sum", 1, None),
    (Func::Mean, "mean", 1, None),
    (Func::Median, "median", 1, None),
    (Func::Min, "min", 1, None),
    (Func::Max, "max", 1, None),
    (Func::Round, "round", 1, Some(2)),
    (Func::Roundup, "roundup", 1, Some(2)),
    (Func::Rounddown, "rounddown", 1, Some(2)),
    (Func::Abs, "abs", 1, Some(1)),
    (Func::Sqrt, "sqrt", 1, Some(1)),
    (Func::IsBlankOrMissingCode, "isblankormissingcode", 1, Some(1)),
    (Func::IsNumber, "isnumber", 1, Some(1)),
    (Func::IsInteger, "isinteger", 1, Some(1)),
    (Func::Contains, "contains", 2, Some(2)),
    (Func::NotContain, "not_contain", 2, Some(2)),
    (Func::StartsWith, "starts_with", 2, Some(2)),
    (Func::EndsWith, "ends_with", 2, Some(2)),
    (Func::Length, "length", 1, Some(1)),
    (Func::Upper, "upper", 1, Some(1)),
    (Func::Lower, "lower", 1, Some(1)),
    (Func::Trim, "trim", 1, Some(1)),
    (Func::Concat, "concat", 1, None),
    (Func::Left, "left", 2, Some(2)),
    (Func::Right, "right", 2, Some(2)),
    (Func::Mid, "mid", 3, Some(3)),
    (Func::Year, "year", 1, Some(1)),
    (Func::Month, "month", 1, Some(1)),
    (Func::Day, "day", 1, Some(1)),
];

impl Func {
    /// Looks a function up by name, ignoring ASCII case.
    pub(crate) fn lookup(name: &str) -> Option<Func> {
        FUNCS.iter().find(|(_, n, _, _)| n.eq_ignore_ascii_case(name)).map(|&(f, ..)| f)
    }

    fn entry(self) -> &'static (Func, &'static str, usize, Option<usize>) {
        FUNCS.iter().find(|(f, ..)| *f == self).expect("every function is in FUNCS")
    }

    pub(crate) fn name(self) -> &'static str {
        self.entry().1
    }

    pub(crate) fn arity(self) -> (usize, Option<usize>) {
        let &(_, _, min, max) = self.entry();
        (min, max)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Number(f64),
    Text(String),
    Bool(bool),
    Field(FieldRef),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    /// Two or more operands joined by `and` (n-ary so that long chains do not nest).
    And(Vec<Expr>),
    /// Two or more operands joined by `or`.
    Or(Vec<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// A left-to-right chain of operators of one precedence level, e.g. `a + b - c`
    /// (a `^` "chain" has one step; it nests to the right instead).
    Arith(Box<Expr>, Vec<(ArithOp, Expr)>),
    Call(Func, Vec<Expr>),
}

impl Expr {
    pub(crate) fn collect_fields(&self, out: &mut Vec<FieldRef>) {
        match self {
            Expr::Number(_) | Expr::Text(_) | Expr::Bool(_) => {}
            Expr::Field(f) => {
                if !out.contains(f) {
                    out.push(f.clone());
                }
            }
            Expr::Neg(e) | Expr::Not(e) => e.collect_fields(out),
            Expr::And(items) | Expr::Or(items) => items.iter().for_each(|e| e.collect_fields(out)),
            Expr::Compare(_, a, b) => {
                a.collect_fields(out);
                b.collect_fields(out);
            }
            Expr::Arith(first, rest) => {
                first.collect_fields(out);
                rest.iter().for_each(|(_, e)| e.collect_fields(out));
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.collect_fields(out)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(n) => f.write_str(&format_number(*n)),
            // A literal cannot contain its own quote character (there are no escapes), so one
            // of the two quote styles always fits.
            Expr::Text(s) if s.contains('\'') => write!(f, "\"{s}\""),
            Expr::Text(s) => write!(f, "'{s}'"),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Field(r) => r.fmt(f),
            Expr::Neg(e) => write!(f, "(-{e})"),
            Expr::Not(e) => write!(f, "(not {e})"),
            Expr::And(items) | Expr::Or(items) => {
                let sep = if matches!(self, Expr::And(_)) { " and " } else { " or " };
                f.write_str("(")?;
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    e.fmt(f)?;
                }
                f.write_str(")")
            }
            Expr::Compare(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            Expr::Arith(first, rest) => {
                write!(f, "({first}")?;
                for (op, e) in rest {
                    write!(f, " {} {e}", op.symbol())?;
                }
                f.write_str(")")
            }
            Expr::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    a.fmt(f)?;
                }
                f.write_str(")")
            }
        }
    }
}
