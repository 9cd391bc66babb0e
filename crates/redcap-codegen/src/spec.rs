//! The spec's data model and its loading from TOML, with errors that name file, method and key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// A problem in the spec: which file, which method, which key, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The spec file, as given to the loader (e.g. `spec/record.toml`).
    pub file: String,
    /// The method's name, when the problem is inside one.
    pub method: Option<String>,
    /// The key, as a dotted path inside the method or file (e.g. `params.doc_id.type`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(m) = &self.method {
            write!(f, ": method `{m}`")?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SpecError {}

/// Several problems at once (validation reports all it finds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl From<SpecError> for SpecErrors {
    fn from(e: SpecError) -> Self {
        SpecErrors(vec![e])
    }
}

/// One enum of wire values (`spec/enums.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumSpec {
    /// Rust name, e.g. `Format` (the type lives in `redcap_core`).
    pub name: String,
    /// Description.
    pub doc: String,
    /// Values in documentation order.
    pub values: Vec<EnumValue>,
}

/// One enum value.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumValue {
    /// Exact wire spelling.
    pub wire: String,
    /// Rust variant name in `redcap_core`.
    pub variant: String,
}

impl EnumSpec {
    /// The wire spellings.
    pub fn wires(&self) -> Vec<String> {
        self.values.iter().map(|v| v.wire.clone()).collect()
    }
}

/// One spec file: an area of the API (`spec/<area>.toml`).
#[derive(Clone, Debug, PartialEq)]
pub struct AreaSpec {
    /// The file it came from.
    pub file: String,
    /// Module name, e.g. `file_repository`.
    pub area: String,
    /// Human title.
    pub title: String,
    /// Methods in file order.
    pub methods: Vec<MethodSpec>,
    /// Row shapes of this area's fixed-shape answers and imports.
    pub rows: Vec<RowSpec>,
    /// Enums of row columns (string-valued, with a fallback for values the spec does not know).
    pub value_enums: Vec<ValueEnumSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AreaHeader {
    area: String,
    title: String,
    #[serde(default, rename = "method")]
    _methods: Vec<toml::Value>,
    #[serde(default, rename = "row")]
    rows: Vec<RowSpec>,
    #[serde(default, rename = "value_enum")]
    value_enums: Vec<ValueEnumSpec>,
}

/// The shape of one row of a fixed-shape answer (`[[row]]`): it becomes a struct in
/// `redcap_api::rows` that reads json, csv and xml alike and keeps unknown columns.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// Rust type name, e.g. `Arm`.
    pub name: String,
    /// Description (first line: a summary).
    pub doc: String,
    /// Root element of the XML `data` of an import (REDCap's examples use `records`, `items`, `users`).
    #[serde(default = "default_xml_root")]
    pub xml_root: String,
    /// On import, leave out blank optional columns instead of sending them blank (for imports where
    /// an absent attribute means "unchanged", such as users and project settings).
    #[serde(default)]
    pub omit_blank: bool,
    /// Columns in REDCap's order.
    #[serde(rename = "column")]
    pub columns: Vec<ColumnSpec>,
}

fn default_xml_root() -> String {
    "items".to_owned()
}

/// One column of a row.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name on the wire.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` (`0`/`1`), `flag` (`y`/blank), `date`, `datetime`,
    /// `map` (names to numbers, such as a user's `forms`), or `enum:<Name>` of a `[[value_enum]]`.
    #[serde(rename = "type")]
    pub ty: String,
    /// May be absent or blank (then `None`).
    #[serde(default)]
    pub optional: bool,
    /// One-line description.
    pub doc: String,
    /// REDCap version that added the column, where known.
    #[serde(default)]
    pub since: Option<String>,
    /// Rust field name when the column name does not fit (keywords).
    #[serde(default)]
    pub rust_name: Option<String>,
    /// Other names of the column that REDCap uses (the data dictionary's CSV header of the web
    /// interface, e.g. `Variable / Field Name`).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// An enum of a column's values (`[[value_enum]]`), e.g. a field's type.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueEnumSpec {
    /// Rust type name.
    pub name: String,
    /// Description.
    pub doc: String,
    /// Known values in documentation order; anything else becomes `Other(String)`.
    pub values: Vec<ValueSpec>,
}

/// One known value of a [`ValueEnumSpec`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSpec {
    /// Exact wire spelling.
    pub wire: String,
    /// Rust variant name.
    pub variant: String,
    /// What it means.
    pub doc: String,
}

/// One REDCap API method.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    /// Module name inside the area, e.g. `export`.
    pub name: String,
    /// `content` value.
    pub content: String,
    /// `action` value, where the method sends one.
    #[serde(default)]
    pub action: Option<String>,
    /// One-line summary.
    pub summary: String,
    /// Longer notes (quirks, evidence), rendered into the module docs.
    #[serde(default)]
    pub notes: Option<String>,
    /// What a success returns.
    pub response: ResponseKind,
    /// `project` (default), `super` or `either`.
    #[serde(default = "default_token")]
    pub token: String,
    /// May the call be repeated harmlessly (and so retried)?
    pub idempotent: bool,
    /// Must the success body be streamed?
    #[serde(default)]
    pub streaming: bool,
    /// Rights the documentation names.
    #[serde(default)]
    pub rights: Vec<String>,
    /// REDCap version that introduced it, where known.
    #[serde(default)]
    pub since: Option<String>,
    /// Where the facts come from.
    pub reference: String,
    /// Fields always sent with a fixed value (e.g. an External Module's `prefix`).
    #[serde(default)]
    pub fixed: BTreeMap<String, String>,
    /// Parameters in wire order.
    #[serde(default, rename = "param")]
    pub params: Vec<ParamSpec>,
    /// Example calls; each becomes a snapshot test.
    #[serde(default, rename = "example")]
    pub examples: Vec<ExampleSpec>,
    /// The `[[row]]` this method exports (its `Output` becomes typed rows) or imports (its
    /// `Request` gains `from_rows`).
    #[serde(default)]
    pub row: Option<String>,
    /// The answer (or `data`) is one object rather than a list (project info).
    #[serde(default)]
    pub single: bool,
}

fn default_token() -> String {
    "project".to_owned()
}

/// One parameter.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Wire name (case-sensitive).
    pub name: String,
    /// `string`, `int`, `bool`, `timestamp`, `minute`, `file`, `enum:<Name>`, or `list<…>` of a
    /// scalar type.
    #[serde(rename = "type")]
    pub ty: TypeSpec,
    /// Must be given.
    #[serde(default)]
    pub required: bool,
    /// For lists: `indexed` (`name[0]=…`) or `comma`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// For flags: `true_false` (default), `one_zero` or `presence`.
    #[serde(default)]
    pub wire: Option<String>,
    /// Send even when false/empty.
    #[serde(default)]
    pub always: bool,
    /// Allowed spellings, narrower than the type.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// REDCap's default (documentation only).
    #[serde(default)]
    pub default: Option<String>,
    /// What `Request::new` fills in (the client's choice, e.g. `format = json`).
    #[serde(default)]
    pub client_default: Option<toml::Value>,
    /// One-line description.
    pub doc: String,
    /// REDCap version that added the parameter, where known.
    #[serde(default)]
    pub since: Option<String>,
    /// Rust field name when the snake-cased wire name does not fit (keywords).
    #[serde(default)]
    pub rust_name: Option<String>,
}

/// An example call.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleSpec {
    /// Snapshot name.
    pub name: String,
    /// Parameter values by wire name.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
}

/// What a method's answer is (`response`); the output type and the decoder follow from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseKind {
    /// Structured data in the requested format.
    Data,
    /// File bytes, streamed, named in the headers.
    Bytes,
    /// A bare string.
    Text,
    /// `1` on success.
    One,
    /// A count.
    Count,
    /// An empty body.
    Empty,
    /// Import Records' result, per `returnContent`.
    Import,
    /// A new project's API token.
    NewToken,
    /// `MAJOR.MINOR.PATCH`.
    Version,
    /// A new folder's id.
    FolderId,
    /// One level of the File Repository.
    FileRepositoryList,
    /// A name the generator does not know: validation rejects it, naming the key.
    Unknown(String),
}

impl ResponseKind {
    /// The known kinds' spec names.
    pub const NAMES: &'static [&'static str] = &[
        "data",
        "bytes",
        "text",
        "one",
        "count",
        "empty",
        "import",
        "new_token",
        "version",
        "folder_id",
        "file_repository_list",
    ];

    /// The kind of a spec name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "data" => ResponseKind::Data,
            "bytes" => ResponseKind::Bytes,
            "text" => ResponseKind::Text,
            "one" => ResponseKind::One,
            "count" => ResponseKind::Count,
            "empty" => ResponseKind::Empty,
            "import" => ResponseKind::Import,
            "new_token" => ResponseKind::NewToken,
            "version" => ResponseKind::Version,
            "folder_id" => ResponseKind::FolderId,
            "file_repository_list" => ResponseKind::FileRepositoryList,
            other => ResponseKind::Unknown(other.to_owned()),
        }
    }

    /// Its spec name (also the name of its decoder in `redcap_core::decode`).
    pub fn name(&self) -> &str {
        match self {
            ResponseKind::Data => "data",
            ResponseKind::Bytes => "bytes",
            ResponseKind::Text => "text",
            ResponseKind::One => "one",
            ResponseKind::Count => "count",
            ResponseKind::Empty => "empty",
            ResponseKind::Import => "import",
            ResponseKind::NewToken => "new_token",
            ResponseKind::Version => "version",
            ResponseKind::FolderId => "folder_id",
            ResponseKind::FileRepositoryList => "file_repository_list",
            ResponseKind::Unknown(name) => name,
        }
    }
}

impl<'de> Deserialize<'de> for ResponseKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| ResponseKind::from_name(&s))
    }
}

/// A parameter's `type` as written and as parsed (validation reports a parse error, naming
/// the key; emission only ever sees parsed types).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeSpec {
    /// As written.
    pub text: String,
    /// As parsed.
    pub parsed: Result<ParamType, String>,
}

impl<'de> Deserialize<'de> for TypeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = parse_type(&text);
        Ok(TypeSpec { text, parsed })
    }
}

/// Element type of a parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// Text.
    String,
    /// Non-negative integer.
    Int,
    /// Flag.
    Bool,
    /// `YYYY-MM-DD HH:MM:SS`.
    Timestamp,
    /// `YYYY-MM-DD HH:MM`.
    Minute,
    /// Uploaded file.
    File,
    /// A named enum.
    Enum(String),
}

/// A parsed `type` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamType {
    /// Element type.
    pub scalar: Scalar,
    /// `list<…>`.
    pub list: bool,
}

/// Parses `string`, `list<int>`, `enum:Format` ….
pub fn parse_type(s: &str) -> Result<ParamType, String> {
    let (inner, list) = match s.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
        Some(inner) => (inner, true),
        None => (s, false),
    };
    let scalar = match inner {
        "string" => Scalar::String,
        "int" => Scalar::Int,
        "bool" => Scalar::Bool,
        "timestamp" => Scalar::Timestamp,
        "minute" => Scalar::Minute,
        "file" => Scalar::File,
        other => match other.strip_prefix("enum:") {
            Some(name) if !name.is_empty() => Scalar::Enum(name.to_owned()),
            _ => {
                return Err(format!(
                    "unknown type `{s}` (expected string, int, bool, timestamp, minute, file, enum:<Name>, or list<…> of one of them)"
                ));
            }
        },
    };
    if list && matches!(scalar, Scalar::Bool | Scalar::File) {
        return Err(format!("`{s}`: lists of flags or files are not supported"));
    }
    Ok(ParamType { scalar, list })
}

/// The whole spec: enums and areas.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Enums by name.
    pub enums: BTreeMap<String, EnumSpec>,
    /// Areas in file-name order.
    pub areas: Vec<AreaSpec>,
}

/// The enums of `redcap_core::types`, described for the generator (which never links core).
pub const CORE_ENUMS_TOML: &str = include_str!("core_enums.toml");

/// The parsed [`CORE_ENUMS_TOML`].
pub fn core_enums() -> BTreeMap<String, EnumSpec> {
    parse_enums("redcap-codegen/src/core_enums.toml", CORE_ENUMS_TOML).expect("the built-in enum table parses")
}

fn toml_error(file: &str, method: Option<String>, key: &str, text: &str, e: &toml::de::Error) -> SpecError {
    let location = e
        .span()
        .map(|s| {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        })
        .unwrap_or_default();
    SpecError { file: file.to_owned(), method, key: key.to_owned(), message: format!("{}{location}", e.message()) }
}

/// Parses the enums file.
pub fn parse_enums(file: &str, text: &str) -> Result<BTreeMap<String, EnumSpec>, SpecError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct EnumsFile {
        #[serde(rename = "enum")]
        enums: Vec<EnumSpec>,
    }
    let parsed: EnumsFile = toml::from_str(text).map_err(|e| toml_error(file, None, "", text, &e))?;
    let mut out = BTreeMap::new();
    for e in parsed.enums {
        if out.contains_key(&e.name) {
            return Err(SpecError {
                file: file.to_owned(),
                method: None,
                key: format!("enum.{}", e.name),
                message: "defined twice".into(),
            });
        }
        out.insert(e.name.clone(), e);
    }
    Ok(out)
}

/// Parses one area file. Each method is read on its own so an error can name it.
pub fn parse_area(file: &str, text: &str) -> Result<AreaSpec, SpecError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(file, None, "", text, &e))?;
    let header: AreaHeader =
        AreaHeader::deserialize(toml::Value::Table(table.clone())).map_err(|e| toml_error(file, None, "", text, &e))?;
    let raw_methods = match table.get("method") {
        Some(toml::Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(SpecError {
                file: file.to_owned(),
                method: None,
                key: "method".into(),
                message: "must be an array of tables ([[method]])".into(),
            });
        }
        None => Vec::new(),
    };
    let mut methods = Vec::new();
    for (i, raw) in raw_methods.into_iter().enumerate() {
        let name = raw.get("name").and_then(|n| n.as_str()).map(str::to_owned).unwrap_or_else(|| format!("#{}", i + 1));
        let method = MethodSpec::deserialize(raw).map_err(|e| SpecError {
            file: file.to_owned(),
            method: Some(name),
            key: String::new(),
            message: e.message().to_owned(),
        })?;
        methods.push(method);
    }
    Ok(AreaSpec {
        file: file.to_owned(),
        area: header.area,
        title: header.title,
        methods,
        rows: header.rows,
        value_enums: header.value_enums,
    })
}

/// Loads every `*.toml` of a directory, in file-name order, and validates the whole.
/// `display_dir` is how file names appear in errors and stamps (e.g. `spec`).
pub fn load_dir(dir: &Path, display_dir: &str) -> Result<Spec, SpecErrors> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| SpecError {
            file: display_dir.to_owned(),
            method: None,
            key: String::new(),
            message: format!("cannot list: {e}"),
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let mut areas = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let file = format!("{display_dir}/{name}");
        let parsed = std::fs::read_to_string(dir.join(&name))
            .map_err(|e| SpecError {
                file: file.clone(),
                method: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            })
            .and_then(|text| parse_area(&file, &text));
        match parsed {
            Ok(a) => areas.push(a),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    let spec = Spec { enums: core_enums(), areas };
    crate::validate::validate(&spec)?;
    Ok(spec)
}
