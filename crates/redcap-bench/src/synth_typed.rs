//! A typed synthetic project for the dataset benchmark: 30 fields over two instruments —
//! `baseline` (dates, datetimes, times, integers, numbers, radio, dropdown, yes/no, true/false,
//! two checkboxes, email, text, notes) and `visits`, a repeating instrument (record `r` has
//! `r % 3` instances) — as REDCap project XML, every value deterministic and valid.

use std::io::{self, Write};

/// What a field is.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Notes,
    Valid(&'static str),
    Radio(&'static [(&'static str, &'static str)]),
    Dropdown(&'static [(&'static str, &'static str)]),
    YesNo,
    TrueFalse,
    Checkbox(&'static [(&'static str, &'static str)]),
}

const SEX: &[(&str, &str)] = &[("1", "Female"), ("2", "Male")];
const SITE: &[(&str, &str)] = &[("1", "North"), ("2", "South"), ("3", "East"), ("4", "West"), ("5", "Central")];
const VISIT_TYPE: &[(&str, &str)] = &[("1", "Clinic"), ("2", "Phone"), ("3", "Home")];
const RACE: &[(&str, &str)] = &[("1", "White"), ("2", "Black"), ("3", "Asian"), ("4", "Other"), ("-1", "Refused")];
const SYMPTOMS: &[(&str, &str)] = &[("a", "Cough"), ("b", "Fever"), ("c", "Fatigue"), ("d", "None")];
const DRUG: &[(&str, &str)] = &[("a1", "Aspirin"), ("b2", "Brufen"), ("c3", "Codeine"), ("d4", "Diclofenac")];

const BASELINE: &[(&str, Kind)] = &[
    ("record_id", Kind::Text),
    ("name", Kind::Text),
    ("dob", Kind::Valid("date_ymd")),
    ("enrolled_at", Kind::Valid("datetime_ymd")),
    ("seen_at", Kind::Valid("datetime_seconds_ymd")),
    ("wake", Kind::Valid("time")),
    ("age", Kind::Valid("int")),
    ("weight", Kind::Valid("number_1dp")),
    ("height", Kind::Valid("float")),
    ("bmi", Kind::Valid("number_2dp")),
    ("sbp", Kind::Valid("int")),
    ("dbp", Kind::Valid("int")),
    ("glucose", Kind::Valid("float")),
    ("sex", Kind::Radio(SEX)),
    ("site", Kind::Dropdown(SITE)),
    ("smoker", Kind::YesNo),
    ("consent", Kind::TrueFalse),
    ("race", Kind::Checkbox(RACE)),
    ("symptoms", Kind::Checkbox(SYMPTOMS)),
    ("email", Kind::Valid("email")),
    ("comments", Kind::Notes),
    ("visit_type", Kind::Radio(VISIT_TYPE)),
    ("score", Kind::Valid("int")),
];

const VISITS: &[(&str, Kind)] = &[
    ("visit_date", Kind::Valid("date_ymd")),
    ("visit_score", Kind::Valid("int")),
    ("visit_drug", Kind::Dropdown(DRUG)),
    ("visit_dose", Kind::Valid("float")),
    ("visit_ae", Kind::YesNo),
    ("visit_note", Kind::Text),
    ("visit_time", Kind::Valid("time")),
];

/// An instrument: name, label, fields.
type Form = (&'static str, &'static str, &'static [(&'static str, Kind)]);

const FORMS: &[Form] = &[("baseline", "Baseline", BASELINE), ("visits", "Visits", VISITS)];

/// Dictionary fields (30).
pub const FIELDS: usize = BASELINE.len() + VISITS.len();

fn hash(r: u64, f: u64) -> u64 {
    let mut x = r.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ f.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x.wrapping_mul(0x94D0_49BB_1331_11EB) >> 8
}

fn value(name: &str, kind: Kind, r: u64, f: u64) -> Vec<(String, String)> {
    let h = hash(r, f);
    let one = |v: String| vec![(name.to_owned(), v)];
    let date = |h: u64| format!("{}-{:02}-{:02}", 1940 + h % 70, 1 + (h >> 8) % 12, 1 + (h >> 16) % 28);
    let clock = |h: u64| format!("{:02}:{:02}", h % 24, (h >> 8) % 60);
    let pick = |choices: &[(&str, &str)]| choices[(h % choices.len() as u64) as usize].0.to_owned();
    match kind {
        Kind::Text if name == "record_id" => one(r.to_string()),
        Kind::Text => one(format!("t{r}-{}", h % 100_000)),
        Kind::Notes => one(format!("Note for record {r}: {} words of free text here.", h % 50)),
        Kind::Valid("date_ymd") => one(date(h)),
        Kind::Valid("datetime_ymd") => one(format!("{} {}", date(h), clock(h >> 24))),
        Kind::Valid("datetime_seconds_ymd") => one(format!("{} {}:{:02}", date(h), clock(h >> 24), (h >> 40) % 60)),
        Kind::Valid("time") => one(clock(h)),
        Kind::Valid("int") => one((h % 200).to_string()),
        Kind::Valid("number_1dp") => one(format!("{}.{}", 40 + h % 80, (h >> 8) % 10)),
        Kind::Valid("number_2dp") => one(format!("{}.{:02}", 15 + h % 25, (h >> 8) % 100)),
        Kind::Valid("email") => one(format!("p{r}@example.org")),
        Kind::Valid(_) => one(format!("{}.{:03}", h % 300, (h >> 12) % 1000)),
        Kind::Radio(c) | Kind::Dropdown(c) => one(pick(c)),
        Kind::YesNo | Kind::TrueFalse => one((h % 2).to_string()),
        Kind::Checkbox(c) => {
            c.iter().enumerate().map(|(i, (code, _))| (export(name, code), ((h >> i) & 1).to_string())).collect()
        }
    }
}

/// REDCap's export name of a checkbox option (`-1` → `race____1`).
fn export(field: &str, code: &str) -> String {
    let code: String =
        code.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("{field}___{code}")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;")
}

/// Writes the project XML with `records` records.
pub fn project_xml(out: &mut impl Write, records: u64) -> io::Result<()> {
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8" ?>"#)?;
    writeln!(
        out,
        r#"<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:redcap="https://projectredcap.org" ODMVersion="1.3.1" FileType="Snapshot" Description="bench typed" SourceSystem="REDCap" SourceSystemVersion="14.5.2">"#
    )?;
    writeln!(out, r#"<Study OID="Project.BenchTyped"><GlobalVariables><StudyName>Typed {records}</StudyName>"#)?;
    writeln!(out, "<redcap:RecordAutonumberingEnabled>0</redcap:RecordAutonumberingEnabled>")?;
    writeln!(
        out,
        r#"<redcap:RepeatingInstrumentsAndEvents><redcap:RepeatingInstruments><redcap:RepeatingInstrument redcap:UniqueEventName="event_1_arm_1" redcap:RepeatInstrument="visits" redcap:CustomLabel=""/></redcap:RepeatingInstruments></redcap:RepeatingInstrumentsAndEvents>"#
    )?;
    writeln!(out, "</GlobalVariables>")?;
    writeln!(out, r#"<MetaDataVersion OID="Metadata.BenchTyped" Name="Bench" redcap:RecordIdField="record_id">"#)?;
    for (form, label, _) in FORMS {
        writeln!(out, r#"<FormDef OID="Form.{form}" Name="{label}" Repeating="No" redcap:FormName="{form}">"#)?;
        writeln!(out, r#"<ItemGroupRef ItemGroupOID="{form}.fields" Mandatory="No"/>"#)?;
        writeln!(out, r#"<ItemGroupRef ItemGroupOID="{form}.{form}_complete" Mandatory="No"/></FormDef>"#)?;
    }
    for (form, label, fields) in FORMS {
        writeln!(out, r#"<ItemGroupDef OID="{form}.fields" Name="{label}" Repeating="No">"#)?;
        for (name, kind) in *fields {
            let items: Vec<String> = match kind {
                Kind::Checkbox(c) => c.iter().map(|(code, _)| export(name, code)).collect(),
                _ => vec![(*name).to_owned()],
            };
            for item in items {
                writeln!(out, r#"<ItemRef ItemOID="{item}" Mandatory="No" redcap:Variable="{name}"/>"#)?;
            }
        }
        writeln!(out, "</ItemGroupDef>")?;
        writeln!(
            out,
            r#"<ItemGroupDef OID="{form}.{form}_complete" Name="Form Status" Repeating="No"><ItemRef ItemOID="{form}_complete" Mandatory="No" redcap:Variable="{form}_complete"/></ItemGroupDef>"#
        )?;
    }
    let mut code_lists = String::new();
    let list = |oid: &str, var: &str, extra: &str, items: &[(&str, &str)]| {
        let items: String = items
            .iter()
            .map(|(c, l)| format!(r#"<CodeListItem CodedValue="{c}"><Decode><TranslatedText>{l}</TranslatedText></Decode></CodeListItem>"#))
            .collect();
        format!(
            r#"<CodeList OID="{oid}.choices" Name="{oid}" DataType="text" redcap:Variable="{var}"{extra}>{items}</CodeList>"#
        )
    };
    for (form, _, fields) in FORMS {
        for (name, kind) in *fields {
            let q = format!("<Question><TranslatedText>{name}</TranslatedText></Question>");
            match kind {
                Kind::Checkbox(c) => {
                    let all: Vec<String> = c.iter().map(|(code, l)| format!("{code}, {l}")).collect();
                    let extra = format!(r#" redcap:CheckboxChoices="{}""#, xml_escape(&all.join("|")));
                    for (code, _) in *c {
                        let item = export(name, code);
                        writeln!(
                            out,
                            r#"<ItemDef OID="{item}" Name="{item}" DataType="boolean" Length="1" redcap:Variable="{name}" redcap:FieldType="checkbox">{q}<CodeListRef CodeListOID="{item}.choices"/></ItemDef>"#
                        )?;
                        code_lists.push_str(&list(&item, name, &extra, &[("1", "Checked"), ("0", "Unchecked")]));
                        code_lists.push('\n');
                    }
                }
                Kind::Radio(c) | Kind::Dropdown(c) => {
                    let t = if matches!(kind, Kind::Radio(_)) { "radio" } else { "select" };
                    writeln!(
                        out,
                        r#"<ItemDef OID="{name}" Name="{name}" DataType="text" Length="999" redcap:Variable="{name}" redcap:FieldType="{t}">{q}<CodeListRef CodeListOID="{name}.choices"/></ItemDef>"#
                    )?;
                    code_lists.push_str(&list(name, name, "", c));
                    code_lists.push('\n');
                }
                _ => {
                    let (t, v) = match kind {
                        Kind::Notes => ("textarea", String::new()),
                        Kind::YesNo => ("yesno", String::new()),
                        Kind::TrueFalse => ("truefalse", String::new()),
                        Kind::Valid(v) => ("text", format!(r#" redcap:TextValidationType="{v}""#)),
                        _ => ("text", String::new()),
                    };
                    writeln!(
                        out,
                        r#"<ItemDef OID="{name}" Name="{name}" DataType="text" Length="999" redcap:Variable="{name}" redcap:FieldType="{t}"{v}>{q}</ItemDef>"#
                    )?;
                }
            }
        }
        let status = [("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete")];
        writeln!(
            out,
            r#"<ItemDef OID="{form}_complete" Name="{form}_complete" DataType="text" Length="1" redcap:Variable="{form}_complete" redcap:FieldType="select" redcap:SectionHeader="Form Status"><Question><TranslatedText>Complete?</TranslatedText></Question><CodeListRef CodeListOID="{form}_complete.choices"/></ItemDef>"#
        )?;
        code_lists.push_str(&list(&format!("{form}_complete"), &format!("{form}_complete"), "", &status));
        code_lists.push('\n');
    }
    out.write_all(code_lists.as_bytes())?;
    writeln!(out, "</MetaDataVersion></Study>")?;
    writeln!(out, r#"<ClinicalData StudyOID="Project.BenchTyped" MetaDataVersionOID="Metadata.BenchTyped">"#)?;
    for r in 1..=records {
        write!(out, r#"<SubjectData SubjectKey="{r}" redcap:RecordIdField="record_id">"#)?;
        for (form, _, fields) in FORMS {
            let instances = if *form == "visits" { r % 3 } else { 1 };
            for instance in 1..=instances {
                write!(out, r#"<FormData FormOID="Form.{form}" FormRepeatKey="{instance}">"#)?;
                write!(out, r#"<ItemGroupData ItemGroupOID="{form}.fields" ItemGroupRepeatKey="1">"#)?;
                for (i, (name, kind)) in fields.iter().enumerate() {
                    for (item, v) in value(name, *kind, r * 7 + instance, i as u64) {
                        let v = if *name == "record_id" { r.to_string() } else { v };
                        write!(out, r#"<ItemData ItemOID="{item}" Value="{}"/>"#, xml_escape(&v))?;
                    }
                }
                write!(
                    out,
                    r#"</ItemGroupData><ItemGroupData ItemGroupOID="{form}.{form}_complete" ItemGroupRepeatKey="1"><ItemData ItemOID="{form}_complete" Value="{}"/></ItemGroupData></FormData>"#,
                    (r + instance) % 3
                )?;
            }
        }
        writeln!(out, "</SubjectData>")?;
    }
    writeln!(out, "</ClinicalData>")?;
    writeln!(out, "</ODM>")
}

/// A row of this project's flat export as a caller's own typed struct would hold it: numbers,
/// dates and flags read by `redcap::de`, choice codes as small integers, text as `String`
/// (times too: `redcap::de` has no time type). Blank cells (the other instrument's columns on
/// every row) are `None`.
#[expect(dead_code, reason = "the benchmark measures holding the rows, not reading them")]
#[derive(Debug, serde::Deserialize)]
pub struct TypedRow {
    record_id: String,
    #[serde(default, deserialize_with = "redcap::de::blank_as_none")]
    redcap_repeat_instrument: Option<String>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    redcap_repeat_instance: Option<u32>,
    #[serde(default, deserialize_with = "redcap::de::blank_as_none")]
    name: Option<String>,
    #[serde(default, deserialize_with = "redcap::de::opt_date")]
    dob: Option<redcap::Date>,
    #[serde(default, deserialize_with = "redcap::de::opt_datetime")]
    enrolled_at: Option<redcap::DateTime>,
    #[serde(default, deserialize_with = "redcap::de::opt_datetime")]
    seen_at: Option<redcap::DateTime>,
    #[serde(default, deserialize_with = "redcap::de::blank_as_none")]
    wake: Option<String>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    age: Option<i64>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    weight: Option<f64>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    height: Option<f64>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    bmi: Option<f64>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    sbp: Option<i64>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    dbp: Option<i64>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    glucose: Option<f64>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    sex: Option<u8>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    site: Option<u8>,
    #[serde(default, deserialize_with = "redcap::de::opt_bool01")]
    smoker: Option<bool>,
    #[serde(default, deserialize_with = "redcap::de::opt_bool01")]
    consent: Option<bool>,
    #[serde(default, rename = "race___1", deserialize_with = "redcap::de::opt_bool01")]
    race_white: Option<bool>,
    #[serde(default, rename = "race___2", deserialize_with = "redcap::de::opt_bool01")]
    race_black: Option<bool>,
    #[serde(default, rename = "race___3", deserialize_with = "redcap::de::opt_bool01")]
    race_asian: Option<bool>,
    #[serde(default, rename = "race___4", deserialize_with = "redcap::de::opt_bool01")]
    race_other: Option<bool>,
    #[serde(default, rename = "race____1", deserialize_with = "redcap::de::opt_bool01")]
    race_refused: Option<bool>,
    #[serde(default, rename = "symptoms___a", deserialize_with = "redcap::de::opt_bool01")]
    cough: Option<bool>,
    #[serde(default, rename = "symptoms___b", deserialize_with = "redcap::de::opt_bool01")]
    fever: Option<bool>,
    #[serde(default, rename = "symptoms___c", deserialize_with = "redcap::de::opt_bool01")]
    fatigue: Option<bool>,
    #[serde(default, rename = "symptoms___d", deserialize_with = "redcap::de::opt_bool01")]
    no_symptoms: Option<bool>,
    #[serde(default, deserialize_with = "redcap::de::blank_as_none")]
    email: Option<String>,
    #[serde(default, deserialize_with = "redcap::de::blank_as_none")]
    comments: Option<String>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    visit_type: Option<u8>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    score: Option<i64>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    baseline_complete: Option<u8>,
    #[serde(default, deserialize_with = "redcap::de::opt_date")]
    visit_date: Option<redcap::Date>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    visit_score: Option<i64>,
    #[serde(default, deserialize_with = "redcap::de::blank_as_none")]
    visit_drug: Option<String>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    visit_dose: Option<f64>,
    #[serde(default, deserialize_with = "redcap::de::opt_bool01")]
    visit_ae: Option<bool>,
    #[serde(default, deserialize_with = "redcap::de::blank_as_none")]
    visit_note: Option<String>,
    #[serde(default, deserialize_with = "redcap::de::blank_as_none")]
    visit_time: Option<String>,
    #[serde(default, deserialize_with = "redcap::de::opt_parse")]
    visits_complete: Option<u8>,
}
