//! `format=odm` for Export Records, Export Reports and Import Records: REDCap's ClinicalData
//! shape, and round trips through the loader and through Import Records.

use crate::common::*;
use redcap_emulator::{Emulator, RunningEmulator};
use serde_json::Value;

/// Fixtures covering classic, longitudinal, repeating instruments, repeating events, DAGs,
/// checkboxes, surveys and files.
const ROUND_TRIP: &[&str] = &[
    "redcapr-simple.xml",
    "pycap-doctest_project.xml",
    "redcapr-repeating-instruments.xml",
    "redcapr-vignette-repeating.xml",
    "redcapr-longitudinal.xml",
    "redcapr-survey.xml",
    "pycap-test_long_project.xml",
];

fn fixture_xml(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// `<ClinicalData …>…</ClinicalData>` of a document.
fn clinical_section(xml: &str) -> &str {
    let start = xml.find("<ClinicalData").expect("ClinicalData");
    let end = xml.find("</ClinicalData>").expect("end of ClinicalData") + "</ClinicalData>".len();
    &xml[start..end]
}

/// The fixture with its ClinicalData replaced (`None`: removed).
fn with_clinical(xml: &str, clinical: Option<&str>) -> String {
    match xml.find("<ClinicalData") {
        Some(_) => xml.replace(clinical_section(xml), clinical.unwrap_or("")),
        None => xml.replace("</ODM>", &format!("{}\n</ODM>", clinical.unwrap_or(""))),
    }
}

fn start_xml(xml: String) -> RunningEmulator {
    Emulator::builder().in_memory().deterministic_tokens(11).project_xml(xml).start().unwrap()
}

fn records_json(emu: &RunningEmulator, extra: &[(&str, &str)]) -> Vec<Value> {
    let t = admin(emu);
    let mut f = vec![("token", t.as_str()), ("content", "record"), ("format", "json")];
    f.extend_from_slice(extra);
    let r = post(&emu.url(), &f);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

/// File Upload fields of a project (their names).
fn file_fields(emu: &RunningEmulator) -> Vec<String> {
    let t = admin(emu);
    let m = post(&emu.url(), &[("token", &t), ("content", "metadata"), ("format", "json")]).json();
    m.as_array()
        .unwrap()
        .iter()
        .filter(|f| f["field_type"] == "file")
        .map(|f| f["field_name"].as_str().unwrap().to_owned())
        .collect()
}

fn without(rows: Vec<Value>, keys: &[String]) -> Vec<Value> {
    rows.into_iter()
        .map(|mut r| {
            for k in keys {
                r.as_object_mut().unwrap().remove(k);
            }
            r
        })
        .collect()
}

fn odm_export(emu: &RunningEmulator, extra: &[(&str, &str)]) -> String {
    let t = admin(emu);
    let mut f = vec![("token", t.as_str()), ("content", "record"), ("format", "odm")];
    f.extend_from_slice(extra);
    let r = post(&emu.url(), &f);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/xml"));
    r.text()
}

#[test]
fn records_as_odm_have_redcaps_clinical_data_shape() {
    let emu = start(&["redcapr-simple.xml"]);
    let x = odm_export(&emu, &[]);
    assert!(
        x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<ODM xmlns=\"http://www.cdisc.org/ns/odm/v1.3\"")
    );
    assert!(x.contains("ODMVersion=\"1.3.1\"") && x.contains("SourceSystem=\"REDCap\""));
    assert!(
        x.contains("<ClinicalData StudyOID=\"Project.REDCapRSimple\" MetaDataVersionOID=\"Metadata.REDCapRSimple_")
    );
    // Records export carries data only, no metadata.
    assert!(!x.contains("<Study") && !x.contains("<MetaDataVersion"));
    assert!(x.trim_end().ends_with("</ClinicalData>\n</ODM>"));
    let subject = x.find("<SubjectData SubjectKey=\"1\" redcap:RecordIdField=\"record_id\">").unwrap();
    let rest = &x[subject..];
    // Classic project: FormData straight under SubjectData, as in REDCap's files.
    assert!(
        rest.trim_start_matches(|c| c != '\n')
            .trim_start()
            .starts_with("<FormData FormOID=\"Form.demographics\" FormRepeatKey=\"1\">")
    );
    assert!(rest.contains("<ItemGroupData ItemGroupOID=\"demographics.record_id\" ItemGroupRepeatKey=\"1\">"));
    assert!(rest.contains("<ItemData ItemOID=\"record_id\" Value=\"1\"/>"));
    assert!(rest.contains("<ItemData ItemOID=\"name_first\" Value=\"Nutmeg\"/>"));
    // A line break survives as a character reference; every checkbox option is written.
    assert!(rest.contains("<ItemData ItemOID=\"address\" Value=\"14 Rose Cottage St.&#10;Kenning UK, 323232\"/>"));
    assert!(rest.contains("<ItemData ItemOID=\"race___5\" Value=\"1\"/>"));
    assert!(rest.contains("<ItemData ItemOID=\"race___1\" Value=\"0\"/>"));
    assert!(rest.contains("<ItemData ItemOID=\"demographics_complete\" Value=\"2\"/>"));
    // No DAG unless asked; files are not carried by a records export.
    assert!(!x.contains("redcap_data_access_group"));
    assert!(!x.contains("mugshot"));
    let with_dag = odm_export(&emu, &[("exportDataAccessGroups", "true"), ("records[0]", "1")]);
    assert!(with_dag.contains("<ItemData ItemOID=\"redcap_data_access_group\" Value=\"dag_1\"/>"));
    assert_eq!(with_dag.matches("<SubjectData").count(), 1, "records filter applies");
    // Field selection applies too.
    let one = odm_export(&emu, &[("fields[0]", "age")]);
    assert!(one.contains("ItemOID=\"age\"") && !one.contains("ItemOID=\"name_first\""));
    assert!(!one.contains("ItemOID=\"record_id\""));
}

#[test]
fn longitudinal_and_repeating_odm() {
    let emu = start(&["pycap-doctest_project.xml"]);
    let x = odm_export(&emu, &[]);
    assert!(x.contains(
        "<StudyEventData StudyEventOID=\"Event.event_1_arm_1\" StudyEventRepeatKey=\"1\" redcap:UniqueEventName=\"event_1_arm_1\">"
    ));
    let emu = start(&["redcapr-repeating-instruments.xml"]);
    let x = odm_export(&emu, &[("records[0]", "1")]);
    for k in 1..=3 {
        assert!(x.contains(&format!("<FormData FormOID=\"Form.bp\" FormRepeatKey=\"{k}\">")), "{x}");
    }
    assert!(!x.contains("StudyEventData"));
}

#[test]
fn odm_round_trips_through_the_loader() {
    for name in ROUND_TRIP {
        let emu = start(&[name]);
        let opts = [("exportDataAccessGroups", "true"), ("exportSurveyFields", "true")];
        let odm = odm_export(&emu, &opts);
        let xml = with_clinical(&fixture_xml(name), Some(clinical_section(&odm)));
        let fresh = start_xml(xml);
        let files = file_fields(&emu);
        let before = without(records_json(&emu, &opts), &files);
        let after = without(records_json(&fresh, &opts), &files);
        assert!(!before.is_empty(), "{name}");
        assert_eq!(after, before, "{name}");
    }
}

#[test]
fn odm_round_trips_through_import_records() {
    for name in ROUND_TRIP {
        let emu = start(&[name]);
        let odm = odm_export(&emu, &[("exportDataAccessGroups", "true")]);
        let fresh = start_xml(with_clinical(&fixture_xml(name), None));
        assert!(records_json(&fresh, &[]).is_empty());
        let t = admin(&fresh);
        let r = post(
            &fresh.url(),
            &[("token", &t), ("content", "record"), ("format", "odm"), ("data", &odm), ("returnFormat", "json")],
        );
        let n = records_json(&emu, &[])
            .iter()
            .map(|r| r[r.as_object().unwrap().keys().next().unwrap()].to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        r.expect(200, &format!("{{\"count\":{n}}}"));
        let files = file_fields(&emu);
        let opts = [("exportDataAccessGroups", "true")];
        assert_eq!(without(records_json(&fresh, &opts), &files), without(records_json(&emu, &opts), &files), "{name}");
    }
}

#[test]
fn odm_import_errors_are_reported() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let import = |data: &str| {
        post(
            &emu.url(),
            &[("token", &t), ("content", "record"), ("format", "odm"), ("data", data), ("returnFormat", "json")],
        )
    };
    let r = import("<ODM><ClinicalData>");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().starts_with("The ODM data could not be imported"));
    assert_eq!(import("<ODM/>").status, 400);
    let bad = "<ODM><ClinicalData><SubjectData SubjectKey=\"77\"><FormData FormOID=\"Form.demographics\"><ItemGroupData>\
               <ItemData ItemOID=\"sex\" Value=\"9\"/></ItemGroupData></FormData></SubjectData></ClinicalData></ODM>";
    let r = import(bad);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().starts_with("\"77\",\"sex\",\"9\","));
}

#[test]
fn reports_as_odm_hold_the_reports_fields() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let id = emu.report_id(emu.project_ids()[0], "test-report-1").unwrap().to_string();
    let r = post(&emu.url(), &[("token", &t), ("content", "report"), ("format", "odm"), ("report_id", &id)]);
    assert_eq!(r.status, 200);
    let x = r.text();
    assert!(x.contains("<ClinicalData"));
    assert_eq!(x.matches("<SubjectData").count(), 5);
    for f in ["record_id", "height", "health_complete", "address", "ethnicity"] {
        assert!(x.contains(&format!("ItemOID=\"{f}\"")), "{f}");
    }
    assert!(!x.contains("ItemOID=\"name_first\"") && !x.contains("ItemOID=\"race___1\""));
}
