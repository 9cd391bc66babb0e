//! A synthetic project for the record benchmarks: one form, `record_id` plus text fields, and
//! (optionally) N records with every field filled, as REDCap project XML.

use std::io::{self, Write};

/// The value of field `f` of record `r`: short text of realistic length, deterministic.
pub fn value(r: u64, f: u64) -> String {
    format!("v{r}-{f}-{}", (r.wrapping_mul(2_654_435_761) ^ f.wrapping_mul(40_503)) % 100_000)
}

/// Field names: `record_id`, then `f01`, `f02` … (`fields` in all).
pub fn field_names(fields: u64) -> Vec<String> {
    std::iter::once("record_id".to_owned()).chain((1..fields).map(|i| format!("f{i:02}"))).collect()
}

/// A row of the synthetic project with 30 fields, as a caller's own struct would hold it.
#[expect(dead_code, reason = "the benchmark measures holding the fields, not reading them")]
#[derive(Debug, serde::Deserialize)]
pub struct TypedRow {
    record_id: String,
    f01: String,
    f02: String,
    f03: String,
    f04: String,
    f05: String,
    f06: String,
    f07: String,
    f08: String,
    f09: String,
    f10: String,
    f11: String,
    f12: String,
    f13: String,
    f14: String,
    f15: String,
    f16: String,
    f17: String,
    f18: String,
    f19: String,
    f20: String,
    f21: String,
    f22: String,
    f23: String,
    f24: String,
    f25: String,
    f26: String,
    f27: String,
    f28: String,
    f29: String,
    data_complete: String,
}

/// Writes project XML with `fields` fields and `records` records.
pub fn project_xml(out: &mut impl Write, fields: u64, records: u64) -> io::Result<()> {
    let names = field_names(fields);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8" ?>"#)?;
    writeln!(
        out,
        r#"<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:redcap="https://projectredcap.org" ODMVersion="1.3.1" FileType="Snapshot" Description="bench" SourceSystem="REDCap" SourceSystemVersion="14.5.2">"#
    )?;
    writeln!(out, r#"<Study OID="Project.Bench"><GlobalVariables><StudyName>Bench {records}x{fields}</StudyName>"#)?;
    writeln!(out, "<redcap:RecordAutonumberingEnabled>0</redcap:RecordAutonumberingEnabled>")?;
    writeln!(out, "<redcap:Purpose>0</redcap:Purpose></GlobalVariables>")?;
    writeln!(out, r#"<MetaDataVersion OID="Metadata.Bench" Name="Bench" redcap:RecordIdField="record_id">"#)?;
    writeln!(out, r#"<FormDef OID="Form.data" Name="data" Repeating="No" redcap:FormName="data">"#)?;
    for n in names.iter().map(String::as_str).chain(["data_complete"]) {
        writeln!(out, r#"<ItemGroupRef ItemGroupOID="data.{n}" Mandatory="No"/>"#)?;
    }
    writeln!(out, "</FormDef>")?;
    for n in names.iter().map(String::as_str).chain(["data_complete"]) {
        writeln!(
            out,
            r#"<ItemGroupDef OID="data.{n}" Name="data" Repeating="No"><ItemRef ItemOID="{n}" Mandatory="No" redcap:Variable="{n}"/></ItemGroupDef>"#
        )?;
    }
    for n in &names {
        writeln!(
            out,
            r#"<ItemDef OID="{n}" Name="{n}" DataType="text" Length="999" redcap:Variable="{n}" redcap:FieldType="text"><Question><TranslatedText>{n}</TranslatedText></Question></ItemDef>"#
        )?;
    }
    writeln!(
        out,
        r#"<ItemDef OID="data_complete" Name="data_complete" DataType="text" Length="1" redcap:Variable="data_complete" redcap:FieldType="select" redcap:SectionHeader="Form Status"><Question><TranslatedText>Complete?</TranslatedText></Question><CodeListRef CodeListOID="data_complete.choices"/></ItemDef>"#
    )?;
    writeln!(
        out,
        r#"<CodeList OID="data_complete.choices" Name="data_complete" DataType="text" redcap:Variable="data_complete"><CodeListItem CodedValue="0"><Decode><TranslatedText>Incomplete</TranslatedText></Decode></CodeListItem><CodeListItem CodedValue="1"><Decode><TranslatedText>Unverified</TranslatedText></Decode></CodeListItem><CodeListItem CodedValue="2"><Decode><TranslatedText>Complete</TranslatedText></Decode></CodeListItem></CodeList>"#
    )?;
    writeln!(out, "</MetaDataVersion></Study>")?;
    if records > 0 {
        writeln!(out, r#"<ClinicalData StudyOID="Project.Bench" MetaDataVersionOID="Metadata.Bench">"#)?;
        for r in 1..=records {
            write!(
                out,
                r#"<SubjectData SubjectKey="{r}" redcap:RecordIdField="record_id"><FormData FormOID="Form.data" FormRepeatKey="1">"#
            )?;
            write!(
                out,
                r#"<ItemGroupData ItemGroupOID="data.record_id" ItemGroupRepeatKey="1"><ItemData ItemOID="record_id" Value="{r}"/>"#
            )?;
            for (i, n) in names.iter().enumerate().skip(1) {
                write!(out, r#"<ItemData ItemOID="{n}" Value="{}"/>"#, value(r, i as u64))?;
            }
            writeln!(out, "</ItemGroupData></FormData></SubjectData>")?;
        }
        writeln!(out, "</ClinicalData>")?;
    }
    writeln!(out, "</ODM>")
}
