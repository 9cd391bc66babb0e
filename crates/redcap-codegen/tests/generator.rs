//! The generator's output for a fixture spec, and one test per validation rule.

use redcap_codegen::{Paths, SpecErrors, load_area};

fn fixture() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/every_type.toml")).unwrap()
}

#[test]
fn fixture_module_is_as_reviewed() {
    let area = load_area("fixtures/every_type.toml", &fixture()).unwrap();
    let spec = redcap_codegen::Spec { enums: redcap_codegen::core_enums(), areas: vec![area] };
    let files = redcap_codegen::emit::files(&spec, "fixtures", &Paths::default());
    assert_eq!(files.keys().collect::<Vec<_>>(), ["fixture/everything.rs", "fixture/mod.rs", "mod.rs"]);
    insta::assert_snapshot!("every_type_module", files["fixture/everything.rs"]);
    insta::assert_snapshot!("every_type_registry", files["mod.rs"]);
}

/// Replaces `from` (must occur) in the fixture and returns the validation errors.
fn errors_after(from: &str, to: &str) -> Vec<String> {
    let text = fixture();
    assert!(text.contains(from), "fixture lacks {from:?}");
    match load_area("fixtures/every_type.toml", &text.replacen(from, to, 1)) {
        Ok(_) => Vec::new(),
        Err(SpecErrors(errors)) => errors.into_iter().map(|e| e.to_string()).collect(),
    }
}

fn assert_rejects(from: &str, to: &str, expected: &str) {
    let errors = errors_after(from, to);
    assert!(
        errors.iter().any(|e| e == expected),
        "replacing {from:?} with {to:?}: expected\n  {expected}\ngot\n  {}",
        errors.join("\n  ")
    );
}

const M: &str = "fixtures/every_type.toml: method `everything`";

#[test]
fn the_fixture_is_valid() {
    assert_eq!(errors_after("Fixture notes", "Fixture notes"), Vec::<String>::new());
}

#[test]
fn rejects_unknown_types() {
    assert_rejects(
        "type = \"timestamp\"",
        "type = \"datetime\"",
        &format!(
            "{M}: key `param.dateRangeBegin.type`: unknown type `datetime` (expected string, int, bool, timestamp, minute, file, enum:<Name>, or list<…> of one of them)"
        ),
    );
    assert_rejects(
        "enum:CsvDelimiter",
        "enum:Delimiter",
        &format!("{M}: key `param.csvDelimiter.type`: unknown enum `Delimiter` (not in enums.toml)"),
    );
}

#[test]
fn rejects_lists_without_encoding_and_scalars_with_one() {
    assert_rejects(
        "encoding = \"indexed\"\n",
        "",
        &format!("{M}: key `param.records.encoding`: a list needs encoding = \"indexed\" or \"comma\""),
    );
    assert_rejects(
        "encoding = \"comma\"",
        "encoding = \"json\"",
        &format!("{M}: key `param.arms.encoding`: unknown encoding `json` (indexed or comma)"),
    );
    assert_rejects(
        "type = \"int\"\ndefault",
        "type = \"int\"\nencoding = \"indexed\"\ndefault",
        &format!("{M}: key `param.repeat_instance.encoding`: only lists have an encoding"),
    );
}

#[test]
fn rejects_bad_flag_wires() {
    assert_rejects(
        "wire = \"one_zero\"",
        "wire = \"yes_no\"",
        &format!("{M}: key `param.override.wire`: unknown flag wire `yes_no` (true_false, one_zero or presence)"),
    );
    assert_rejects(
        "type = \"timestamp\"",
        "type = \"timestamp\"\nwire = \"one_zero\"",
        &format!("{M}: key `param.dateRangeBegin.wire`: only flags have a wire spelling"),
    );
}

#[test]
fn rejects_values_outside_enums() {
    assert_rejects(
        "allowed = [\"json\", \"csv\"]",
        "allowed = [\"json\", \"yaml\"]",
        &format!("{M}: key `param.format.allowed`: `yaml` is not a value of enum Format"),
    );
    assert_rejects(
        "client_default = \"json\"",
        "client_default = \"xml\"",
        &format!("{M}: key `param.format.client_default`: `xml` is not one of: json, csv"),
    );
    assert_rejects(
        "csvDelimiter = \"tab\"",
        "csvDelimiter = \"space\"",
        &format!("{M}: key `example.full.params.csvDelimiter`: `space` is not one of: ,, tab, ;, |, ^"),
    );
}

#[test]
fn rejects_bad_examples() {
    assert_rejects(
        "params = { record = \"1001\", ",
        "params = { ",
        &format!("{M}: key `example.full.params`: the required parameter `record` has no value"),
    );
    assert_rejects(
        "repeat_instance = 2",
        "repeat_instance = \"two\"",
        &format!(
            "{M}: key `example.full.params.repeat_instance`: `\"two\"` does not fit type Int (expected a non-negative integer)"
        ),
    );
    assert_rejects(
        "records = [\"1\", \"2\"]",
        "nope = [\"1\"]",
        &format!("{M}: key `example.full.params.nope`: no such parameter"),
    );
    assert_rejects(
        "[[method.example]]\nname = \"full\"",
        "[[method.other]]\nname = \"full\"",
        &format!(
            "{M}: unknown field `other`, expected one of `name`, `content`, `action`, `summary`, `notes`, `response`, `token`, `idempotent`, `streaming`, `rights`, `since`, `reference`, `fixed`, `param`, `example`, `row`, `single`"
        ),
    );
}

#[test]
fn rejects_retryable_writes_and_unstreamed_files() {
    assert_rejects(
        "action = \"export\"",
        "action = \"delete\"",
        &format!(
            "{M}: key `idempotent`: a method that imports, uploads, deletes or creates must be idempotent = false (it would be retried into duplicates)"
        ),
    );
    assert_rejects(
        "response = \"data\"\nidempotent = true\nstreaming = true",
        "response = \"bytes\"\nidempotent = true",
        &format!("{M}: key `streaming`: a method that returns file bytes must be streaming = true"),
    );
    assert_rejects(
        "response = \"data\"",
        "response = \"rows\"",
        &format!(
            "{M}: key `response`: unknown response kind `rows` (expected one of: data, bytes, text, one, count, empty, import, new_token, version, folder_id, file_repository_list)"
        ),
    );
}

#[test]
fn rejects_name_clashes() {
    assert_rejects(
        "rust_name = \"override_all\"\n",
        "",
        &format!("{M}: key `param.override.rust_name`: `override` is not a usable Rust field name; set rust_name"),
    );
    assert_rejects("name = \"records\"", "name = \"record\"", &format!("{M}: key `param.record.name`: declared twice"));
    assert_rejects(
        "fixed = { prefix = \"my_module\" }",
        "fixed = { record = \"x\" }",
        &format!("{M}: key `fixed.record`: collides with a parameter"),
    );
    assert_rejects(
        "name = \"record\"\ntype",
        "name = \"token\"\ntype",
        &format!("{M}: key `param.token.name`: token, content and action are written by the generator"),
    );
}

#[test]
fn rejects_duplicate_methods_across_files() {
    let text = fixture();
    let area = load_area("a.toml", &text).unwrap();
    let mut other = load_area("b.toml", &text.replace("area = \"fixture\"", "area = \"other\"")).unwrap();
    other.file = "b.toml".into();
    let spec = redcap_codegen::Spec { enums: redcap_codegen::core_enums(), areas: vec![area, other] };
    let err = redcap_codegen::validate::validate(&spec).unwrap_err().to_string();
    assert_eq!(
        err,
        "b.toml: method `everything`: key `content`: content `fixture` with action Some(\"export\") (without data) is already method `fixture.everything`"
    );
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let err = load_area("broken.toml", "area = \"x\"\ntitle = \"t\"\n[[method]\n").unwrap_err().to_string();
    assert!(err.starts_with("broken.toml: ") && err.contains("(line 3)"), "{err}");
}
