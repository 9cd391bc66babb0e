//! Spec validation: every rule names the file, the method and the key it checks.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{AreaSpec, EnumSpec, MethodSpec, ParamSpec, ResponseKind, Spec, SpecError, SpecErrors};

pub use crate::spec::{ParamType, Scalar, parse_type};

/// The type of a row column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Text.
    String,
    /// Whole number (ids, arm numbers, rights).
    Integer,
    /// Decimal number (day offsets).
    Number,
    /// `0`/`1`.
    Boolean,
    /// `y`/blank (a field's `identifier`, `required_field`, `matrix_ranking`).
    Flag,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DD HH:MM[:SS]`.
    DateTime,
    /// Names to numbers (a user's `forms`).
    Map,
    /// A `[[value_enum]]`.
    Enum(String),
}

/// Parses a column `type`.
pub fn parse_column_type(s: &str) -> Result<ColumnType, String> {
    Ok(match s {
        "string" => ColumnType::String,
        "integer" => ColumnType::Integer,
        "number" => ColumnType::Number,
        "boolean" => ColumnType::Boolean,
        "flag" => ColumnType::Flag,
        "date" => ColumnType::Date,
        "datetime" => ColumnType::DateTime,
        "map" => ColumnType::Map,
        other => match other.strip_prefix("enum:") {
            Some(name) if !name.is_empty() => ColumnType::Enum(name.to_owned()),
            _ => {
                return Err(format!(
                    "unknown column type `{s}` (expected string, integer, number, boolean, flag, date, datetime, map or enum:<Name>)"
                ));
            }
        },
    })
}

/// The Rust field name of a column.
pub fn column_rust_name(c: &crate::spec::ColumnSpec) -> String {
    c.rust_name.clone().unwrap_or_else(|| snake_case(&c.name))
}

fn is_type_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Checks rows and value enums across all areas (they share one `rows` module).
fn validate_rows(spec: &Spec) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    let mut enums = BTreeSet::new();
    for area in &spec.areas {
        let mut ctx = Ctx { file: &area.file, method: None, errors: Vec::new() };
        for e in &area.value_enums {
            let key = format!("value_enum.{}", e.name);
            if !is_type_name(&e.name) {
                ctx.err(&key, "the name must be a CamelCase type name");
            }
            if types.insert(&e.name, &area.file).is_some() {
                ctx.err(&key, "another row or value enum has this name");
            }
            enums.insert(e.name.as_str());
            let mut wires = BTreeSet::new();
            let mut variants = BTreeSet::new();
            for v in &e.values {
                if !wires.insert(&v.wire) {
                    ctx.err(format!("{key}.values"), format!("`{}` is listed twice", v.wire));
                }
                if !is_type_name(&v.variant) || v.variant == "Other" || !variants.insert(&v.variant) {
                    ctx.err(
                        format!("{key}.values"),
                        format!("variant `{}` is not a unique CamelCase name (nor `Other`)", v.variant),
                    );
                }
            }
        }
        for r in &area.rows {
            if !is_type_name(&r.name) {
                ctx.err(format!("row.{}", r.name), "the name must be a CamelCase type name");
            }
            if types.insert(&r.name, &area.file).is_some() {
                ctx.err(format!("row.{}", r.name), "another row or value enum has this name");
            }
        }
        errors.append(&mut ctx.errors);
    }
    for area in &spec.areas {
        let mut ctx = Ctx { file: &area.file, method: None, errors: Vec::new() };
        for r in &area.rows {
            let mut names = BTreeSet::new();
            if r.columns.is_empty() {
                ctx.err(format!("row.{}", r.name), "has no columns");
            }
            for c in &r.columns {
                let key = format!("row.{}.{}", r.name, c.name);
                let field = column_rust_name(c);
                if !is_snake_ident(&field) || field == "extra" {
                    ctx.err(&key, format!("`{field}` is not a usable field name; set rust_name"));
                }
                if !names.insert(c.name.clone()) {
                    ctx.err(&key, "the column is listed twice");
                }
                if c.doc.trim().is_empty() {
                    ctx.err(format!("{key}.doc"), "must not be empty");
                }
                match parse_column_type(&c.ty) {
                    Ok(ColumnType::Enum(name)) if !enums.contains(name.as_str()) => {
                        ctx.err(format!("{key}.type"), format!("no [[value_enum]] is named `{name}`"))
                    }
                    Ok(_) => {}
                    Err(e) => ctx.err(format!("{key}.type"), e),
                }
            }
        }
        for m in &area.methods {
            ctx.method = Some(&m.name);
            match &m.row {
                Some(row) if !types.contains_key(row.as_str()) || enums.contains(row.as_str()) => {
                    ctx.err("row", format!("no [[row]] is named `{row}`"))
                }
                Some(_) if m.response != ResponseKind::Data && !m.params.iter().any(|p| p.name == "data") => {
                    ctx.err("row", "only a `data` answer or a method with a `data` parameter has rows")
                }
                None if m.single => ctx.err("single", "needs `row`"),
                _ => {}
            }
        }
        errors.append(&mut ctx.errors);
    }
    errors
}

/// Response kinds the generator knows, by their spec names.
pub const RESPONSE_KINDS: &[&str] = crate::spec::ResponseKind::NAMES;

/// Actions whose calls change the server and must never be repeated automatically.
const WRITE_ACTIONS: &[&str] = &["import", "delete", "createFolder", "rename", "randomize", "switch"];

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super",
    "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box",
    "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Whether `s` is a usable snake_case Rust identifier.
pub fn is_snake_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !KEYWORDS.contains(&s)
}

/// `returnFormat` → `return_format`, `allRecords` → `all_records`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '-' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

/// The Rust field name of a parameter.
pub fn rust_name(p: &ParamSpec) -> String {
    p.rust_name.clone().unwrap_or_else(|| snake_case(&p.name))
}

struct Ctx<'a> {
    file: &'a str,
    method: Option<&'a str>,
    errors: Vec<SpecError>,
}

impl Ctx<'_> {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError {
            file: self.file.to_owned(),
            method: self.method.map(str::to_owned),
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Checks the whole spec; reports every problem found.
pub fn validate(spec: &Spec) -> Result<(), SpecErrors> {
    let mut errors = Vec::new();
    let mut areas = BTreeSet::new();
    let mut keys: BTreeMap<(String, Option<String>, bool), String> = BTreeMap::new();
    for area in &spec.areas {
        let mut ctx = Ctx { file: &area.file, method: None, errors: Vec::new() };
        if !is_snake_ident(&area.area) {
            ctx.err("area", format!("`{}` is not a snake_case identifier", area.area));
        }
        if !areas.insert(area.area.clone()) {
            ctx.err("area", format!("area `{}` is defined by another file too", area.area));
        }
        if area.title.trim().is_empty() {
            ctx.err("title", "must not be empty");
        }
        errors.append(&mut ctx.errors);
        errors.extend(validate_area(area, &spec.enums, &mut keys));
    }
    errors.extend(validate_rows(spec));
    if errors.is_empty() { Ok(()) } else { Err(SpecErrors(errors)) }
}

/// Checks one area; `keys` collects `(content, action, sends data)` across areas.
pub fn validate_area(
    area: &AreaSpec,
    enums: &BTreeMap<String, EnumSpec>,
    keys: &mut BTreeMap<(String, Option<String>, bool), String>,
) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for m in &area.methods {
        let mut ctx = Ctx { file: &area.file, method: Some(&m.name), errors: Vec::new() };
        if !names.insert(m.name.clone()) {
            ctx.err("name", "another method of this file has the same name");
        }
        let id = format!("{}.{}", area.area, m.name);
        let sends_data = m.params.iter().any(|p| p.name == "data" && p.required);
        let key = (m.content.clone(), m.action.clone(), sends_data);
        if let Some(other) = keys.get(&key) {
            ctx.err(
                "content",
                format!(
                    "content `{}` with action {:?} ({}) is already method `{other}`",
                    m.content,
                    m.action,
                    if sends_data { "with data" } else { "without data" }
                ),
            );
        } else {
            keys.insert(key, id);
        }
        validate_method(&mut ctx, m, enums);
        errors.append(&mut ctx.errors);
    }
    errors
}

fn validate_method(ctx: &mut Ctx<'_>, m: &MethodSpec, enums: &BTreeMap<String, EnumSpec>) {
    if !is_snake_ident(&m.name) {
        ctx.err("name", format!("`{}` is not a snake_case identifier", m.name));
    }
    if m.content.trim().is_empty() {
        ctx.err("content", "must not be empty");
    }
    if m.summary.trim().is_empty() {
        ctx.err("summary", "must not be empty");
    }
    if m.reference.trim().is_empty() {
        ctx.err("reference", "must cite where the facts come from");
    }
    if let ResponseKind::Unknown(name) = &m.response {
        ctx.err("response", format!("unknown response kind `{name}` (expected one of: {})", RESPONSE_KINDS.join(", ")));
    }
    if m.response == ResponseKind::Bytes && !m.streaming {
        ctx.err("streaming", "a method that returns file bytes must be streaming = true");
    }
    if m.streaming && !matches!(m.response, ResponseKind::Bytes | ResponseKind::Data) {
        ctx.err("streaming", format!("only `bytes` and `data` responses can stream, not `{}`", m.response.name()));
    }
    if !matches!(m.token.as_str(), "project" | "super" | "either") {
        ctx.err("token", format!("`{}` is not one of: project, super, either", m.token));
    }
    let writes = m.action.as_deref().is_some_and(|a| WRITE_ACTIONS.contains(&a))
        || m.params.iter().any(|p| p.name == "data" || p.ty.text == "file");
    if writes && m.idempotent {
        ctx.err("idempotent", "a method that imports, uploads, deletes or creates must be idempotent = false (it would be retried into duplicates)");
    }

    let mut wire_names = BTreeSet::new();
    let mut rust_names = BTreeSet::new();
    let mut files = 0;
    for p in &m.params {
        let key = |k: &str| format!("param.{}.{k}", p.name);
        if p.name.is_empty() {
            ctx.err("param.name", "must not be empty");
            continue;
        }
        if matches!(p.name.as_str(), "token" | "content" | "action") {
            ctx.err(key("name"), "token, content and action are written by the generator");
        }
        if !wire_names.insert(p.name.clone()) {
            ctx.err(key("name"), "declared twice");
        }
        let rn = rust_name(p);
        if !is_snake_ident(&rn) || rn == "new" {
            ctx.err(key("rust_name"), format!("`{rn}` is not a usable Rust field name; set rust_name"));
        }
        if !rust_names.insert(rn.clone()) {
            ctx.err(key("rust_name"), format!("field name `{rn}` is used twice"));
        }
        if p.doc.trim().is_empty() {
            ctx.err(key("doc"), "must not be empty");
        }
        let ty = match &p.ty.parsed {
            Ok(t) => t.clone(),
            Err(msg) => {
                ctx.err(key("type"), msg.clone());
                continue;
            }
        };
        match (&ty.list, p.encoding.as_deref()) {
            (true, Some("indexed" | "comma")) | (false, None) => {}
            (true, None) => ctx.err(key("encoding"), "a list needs encoding = \"indexed\" or \"comma\""),
            (true, Some(other)) => ctx.err(key("encoding"), format!("unknown encoding `{other}` (indexed or comma)")),
            (false, Some(_)) => ctx.err(key("encoding"), "only lists have an encoding"),
        }
        match (&ty.scalar, p.wire.as_deref()) {
            (Scalar::Bool, None | Some("true_false" | "one_zero")) | (_, None) => {}
            (Scalar::Bool, Some("presence")) if p.required => {
                ctx.err(key("wire"), "a presence flag cannot be required")
            }
            (Scalar::Bool, Some("presence")) => {}
            (Scalar::Bool, Some(other)) => {
                ctx.err(key("wire"), format!("unknown flag wire `{other}` (true_false, one_zero or presence)"))
            }
            (_, Some(_)) => ctx.err(key("wire"), "only flags have a wire spelling"),
        }
        if ty.scalar == Scalar::File {
            files += 1;
            if m.streaming {
                ctx.err(key("type"), "an upload method cannot also stream its response");
            }
        }
        let values: Option<Vec<String>> = match &ty.scalar {
            Scalar::Enum(name) => match enums.get(name) {
                Some(e) => Some(e.wires()),
                None => {
                    ctx.err(key("type"), format!("unknown enum `{name}` (not in enums.toml)"));
                    continue;
                }
            },
            _ => None,
        };
        if !p.allowed.is_empty() {
            match (&ty.scalar, &values) {
                (Scalar::Enum(name), Some(values)) => {
                    for a in &p.allowed {
                        if !values.contains(a) {
                            ctx.err(key("allowed"), format!("`{a}` is not a value of enum {name}"));
                        }
                    }
                }
                (Scalar::String, _) => {}
                _ => ctx.err(key("allowed"), "only enums and strings can narrow their values"),
            }
        }
        let permitted: Option<Vec<String>> = if p.allowed.is_empty() { values } else { Some(p.allowed.clone()) };
        if let Some(d) = &p.client_default {
            if ty.list || ty.scalar == Scalar::File {
                ctx.err(key("client_default"), "lists and files have no client default");
            } else if let Err(msg) = check_value(&ty, d, permitted.as_deref()) {
                ctx.err(key("client_default"), msg);
            }
        }
    }
    if files > 1 {
        ctx.err("param", "at most one file parameter");
    }
    for k in m.fixed.keys() {
        if wire_names.contains(k) || matches!(k.as_str(), "token" | "content" | "action") {
            ctx.err(format!("fixed.{k}"), "collides with a parameter");
        }
    }

    if m.examples.is_empty() {
        ctx.err("example", "at least one [[method.example]] is required (it becomes a snapshot test)");
    }
    let mut example_names = BTreeSet::new();
    for ex in &m.examples {
        let ekey = |k: &str| format!("example.{}.{k}", ex.name);
        if !is_snake_ident(&ex.name) {
            ctx.err(ekey("name"), "must be a snake_case name");
        }
        if !example_names.insert(ex.name.clone()) {
            ctx.err(ekey("name"), "two examples have this name");
        }
        for (name, value) in &ex.params {
            let Some(p) = m.params.iter().find(|p| &p.name == name) else {
                ctx.err(ekey(&format!("params.{name}")), "no such parameter");
                continue;
            };
            let Ok(ty) = &p.ty.parsed else { continue };
            let permitted: Option<Vec<String>> = if !p.allowed.is_empty() {
                Some(p.allowed.clone())
            } else if let Scalar::Enum(n) = &ty.scalar {
                enums.get(n).map(|e| e.wires())
            } else {
                None
            };
            if let Err(msg) = check_value(ty, value, permitted.as_deref()) {
                ctx.err(ekey(&format!("params.{name}")), msg);
            }
        }
        for p in m.params.iter().filter(|p| p.required && p.client_default.is_none()) {
            if !ex.params.contains_key(&p.name) {
                ctx.err(ekey("params"), format!("the required parameter `{}` has no value", p.name));
            }
        }
    }
}

/// Checks a TOML value against a type (and allowed spellings).
pub fn check_value(ty: &ParamType, value: &toml::Value, allowed: Option<&[String]>) -> Result<(), String> {
    if ty.list {
        let items = value.as_array().ok_or("expected an array")?;
        let scalar = ParamType { scalar: ty.scalar.clone(), list: false };
        return items.iter().try_for_each(|v| check_value(&scalar, v, allowed));
    }
    match (&ty.scalar, value) {
        (Scalar::String | Scalar::Enum(_), toml::Value::String(s)) => match allowed {
            Some(a) if !a.contains(s) => Err(format!("`{s}` is not one of: {}", a.join(", "))),
            _ => Ok(()),
        },
        (Scalar::Int, toml::Value::Integer(n)) if *n >= 0 => Ok(()),
        (Scalar::Bool, toml::Value::Boolean(_)) => Ok(()),
        (Scalar::Timestamp, toml::Value::String(s)) if is_pattern(s, "dddd-dd-dd dd:dd:dd") => Ok(()),
        (Scalar::Minute, toml::Value::String(s)) if is_pattern(s, "dddd-dd-dd dd:dd") => Ok(()),
        (Scalar::File, toml::Value::Table(t))
            if t.get("name").is_some_and(|v| v.is_str())
                && t.get("text").is_some_and(|v| v.is_str())
                && t.len() == 2 =>
        {
            Ok(())
        }
        (scalar, v) => Err(format!(
            "`{v}` does not fit type {scalar:?}{}",
            match scalar {
                Scalar::File => " (expected { name = \"…\", text = \"…\" })",
                Scalar::Int => " (expected a non-negative integer)",
                Scalar::Timestamp => " (expected \"YYYY-MM-DD HH:MM:SS\")",
                Scalar::Minute => " (expected \"YYYY-MM-DD HH:MM\")",
                _ => "",
            }
        )),
    }
}

fn is_pattern(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| if p == b'd' { c.is_ascii_digit() } else { c == p })
}
