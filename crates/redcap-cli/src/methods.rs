//! The API methods as the spec describes them: the list, and one method's parameters.

use redcap::core::{ParamInfo, Shape, TokenRequirement, ValueType};
use redcap::{METHODS, MethodInfo};

/// Parameters `redcap call` sends as `json` unless given (the typed requests do the same;
/// REDCap's own default is xml).
pub const JSON_DEFAULTS: [&str; 2] = ["format", "returnFormat"];

/// Whether `redcap call` fills `param` with `json` when it is not given.
pub fn defaults_to_json(param: &ParamInfo) -> bool {
    JSON_DEFAULTS.contains(&param.name) && param.allowed_values().is_some_and(|v| v.contains(&"json"))
}

/// One line per method: id and summary, aligned.
pub fn list() -> String {
    let width = METHODS.iter().map(|m| m.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for m in METHODS {
        out.push_str(&format!("  {:width$}  {}\n", m.id, m.summary));
    }
    out
}

/// The type of a parameter, in words.
fn type_words(p: &ParamInfo) -> String {
    let base = match p.ty {
        ValueType::String => "text".to_owned(),
        ValueType::Int => "integer".to_owned(),
        ValueType::Bool(_) => "true or false".to_owned(),
        ValueType::Enum(_) => "choice".to_owned(),
        ValueType::Timestamp => "YYYY-MM-DD HH:MM:SS".to_owned(),
        ValueType::Minute => "YYYY-MM-DD HH:MM".to_owned(),
        ValueType::File => "file path (uploaded)".to_owned(),
        _ => "text".to_owned(),
    };
    match p.shape {
        Shape::Scalar => base,
        _ => format!("list of {base} (repeat --param, or separate with commas)"),
    }
}

/// Everything about one parameter, as lines.
fn param_lines(p: &ParamInfo) -> Vec<String> {
    let mut facts = vec![type_words(p), if p.required { "required".into() } else { "optional".into() }];
    if let Some(values) = p.allowed_values() {
        facts.push(format!("one of: {}", values.join(", ")));
    }
    if let Some(d) = p.server_default {
        facts.push(format!("REDCap's default: {d}"));
    }
    if defaults_to_json(p) {
        facts.push("redcap sends json unless given".into());
    }
    let mut lines = vec![format!("  {}", p.name), format!("      {}", facts.join("; "))];
    if !p.doc.is_empty() {
        for l in wrap(p.doc, 90) {
            lines.push(format!("      {l}"));
        }
    }
    lines
}

/// The parameter section of `redcap call <method> --help` and `redcap methods show`.
pub fn params_help(m: &MethodInfo) -> String {
    let mut out = String::new();
    let token = match m.token {
        TokenRequirement::Super => "a super token",
        TokenRequirement::Either => "a project or super token",
        _ => "a project token",
    };
    let mut facts = vec![
        match m.action {
            Some(a) => format!("content={}, action={a}", m.content),
            None => format!("content={}", m.content),
        },
        format!("needs {token}"),
    ];
    if let Some(v) = m.since {
        facts.push(format!("since REDCap {v}"));
    }
    facts.push(if m.idempotent { "retried on network failure".into() } else { "never retried".into() });
    out.push_str(&format!("Method: {}\n", facts.join("; ")));
    if !m.rights.is_empty() {
        out.push_str(&format!("Rights: {}\n", m.rights.join(", ")));
    }
    out.push('\n');
    if m.params.is_empty() {
        out.push_str("Parameters: none\n");
    } else {
        out.push_str("Parameters (each as --param NAME=VALUE; VALUE @FILE reads the value from FILE):\n");
        for p in m.params {
            for l in param_lines(p) {
                out.push_str(&l);
                out.push('\n');
            }
        }
    }
    out
}

/// Full description of one method.
pub fn show(m: &MethodInfo) -> String {
    format!("{}: {}\n\n{}", m.id, m.summary, params_help(m))
}

/// Greedy word wrap.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_listed_with_its_summary() {
        let l = list();
        assert_eq!(l.lines().count(), METHODS.len());
        assert_eq!(METHODS.len(), 55);
        assert!(l.contains("file_repository.import") && l.contains("Import (upload) a file"));
    }

    #[test]
    fn a_method_shows_every_parameter() {
        let m = redcap::method("record.export").unwrap();
        let text = show(m);
        for p in m.params {
            assert!(text.contains(&format!("\n  {}\n", p.name)), "{} missing in\n{text}", p.name);
        }
        assert!(text.contains("one of: json, csv, xml, odm"));
        assert!(text.contains("REDCap's default: xml"));
        assert!(text.contains("Rights: API Export"), "{text}");
        let up = show(redcap::method("file_repository.import").unwrap());
        assert!(up.contains("file path (uploaded); required"), "{up}");
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
    }
}
