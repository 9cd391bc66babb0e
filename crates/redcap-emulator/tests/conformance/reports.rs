//! Export Reports (seed RC-API-38): fields, order, filters, options, rights.

use crate::common::*;
use redcap_emulator::{DataExport, Emulator, Rights, RunningEmulator, User};

fn report(emu: &RunningEmulator, t: &str, id: i64, extra: &[(&str, &str)]) -> Resp {
    let id = id.to_string();
    let mut f = vec![("token", t), ("content", "report"), ("format", "json"), ("report_id", id.as_str())];
    f.extend_from_slice(extra);
    post(&emu.url(), &f)
}

#[test]
fn report_fields_in_report_order_as_recorded() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let id = emu.report_id(emu.project_ids()[0], "test-report-1").unwrap();
    let r = report(&emu, &t, id, &[("format", "csv")]);
    let (h, rows) = csv_rows(&r.text());
    // REDCapR's recorded report: the report's own column order, line breaks removed.
    assert_eq!(h, ["record_id", "height", "health_complete", "address", "ethnicity"]);
    let col = |i: usize| rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
    assert_eq!(col(0), ["1", "2", "3", "4", "5"]);
    assert_eq!(col(1), ["7", "6", "180", "165", "193.04"]);
    assert_eq!(col(2), ["1", "0", "2", "2", "0"]);
    assert_eq!(col(4), ["1", "1", "0", "1", "2"]);
    assert_eq!(rows[0][3], "14 Rose Cottage St. Kenning UK, 323232");
    // Labels (the recorded export_checkbox_label case).
    let v = report(&emu, &t, id, &[("rawOrLabel", "label"), ("exportCheckboxLabel", "true")]).json();
    let st: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["health_complete"].as_str().unwrap()).collect();
    assert_eq!(st, ["Unverified", "Incomplete", "Complete", "Complete", "Incomplete"]);
    assert_eq!(v[0]["ethnicity"], "NOT Hispanic or Latino");
    // Label headers and a delimiter.
    let r = report(&emu, &t, id, &[("format", "csv"), ("rawOrLabelHeaders", "label"), ("csvDelimiter", ";")]);
    assert_eq!(
        r.text().lines().next().unwrap(),
        "\"Study ID\";\"Height (cm)\";Complete?;\"Street, City, State, ZIP\";Ethnicity"
    );
    // decimalCharacter applies to number fields.
    let v = report(&emu, &t, id, &[("decimalCharacter", ",")]).json();
    assert_eq!(v[4]["height"], "193,04");
    // XML.
    let x = report(&emu, &t, id, &[("format", "xml")]).text();
    assert!(
        x.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<records>\n<item><record_id>1</record_id><height>7</height>"
        ),
        "{x}"
    );
}

#[test]
fn combined_checkboxes() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let id = emu.report_id(emu.project_ids()[0], "test-report-2").unwrap();
    let v = report(&emu, &t, id, &[]).json();
    let keys: Vec<&str> = v[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["record_id", "race"]);
    assert_eq!(v[3]["race"], "2,5");
    assert_eq!(report(&emu, &t, id, &[("rawOrLabel", "label")]).json()[3]["race"], "Asian,White");
}

#[test]
fn another_projects_report_is_403() {
    let emu = start(&["redcapr-simple.xml", "pycap-doctest_project.xml"]);
    let t = admin(&emu);
    let theirs = emu.report_id(emu.project_ids()[1], "Example Report").unwrap();
    report(&emu, &t, theirs, &[]).expect(
        403,
        &format!("{{\"error\":\"The API request cannot complete because report_id={theirs} does not belong to this project.\"}}"),
    );
    assert_eq!(report(&emu, &t, 987654, &[]).status, 403);
    let r =
        post(&emu.url(), &[("token", &t), ("content", "report"), ("report_id", "my_report"), ("returnFormat", "json")]);
    assert_eq!(r.status, 400);
}

#[test]
fn report_filter_logic_with_event_name() {
    // advanced_logic `([event-name][field_1] = "1")`, filter_type RECORD.
    let emu = start(&["pycap-doctest_project.xml"]);
    let t = admin(&emu);
    let id = emu.report_id(emu.project_ids()[0], "R-139MKP9FXE").unwrap();
    let v = report(&emu, &t, id, &[]).json();
    let ids: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["record_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "3"]);
    assert_eq!(v[0]["checkbox_field___2"], "1");
    assert_eq!(v[0]["redcap_event_name"], "event_1_arm_1");
}

fn simple_with_report(replace_from: &str, replace_to: &str) -> (RunningEmulator, String, i64) {
    let xml = std::fs::read_to_string(fixture("redcapr-simple.xml")).unwrap();
    assert!(xml.contains(replace_from));
    let xml = xml.replacen(replace_from, replace_to, 1);
    let emu = Emulator::builder().project_xml(xml).start().unwrap();
    let t = admin(&emu);
    let id = emu.report_id(emu.project_ids()[0], "test-report-1").unwrap();
    (emu, t, id)
}

#[test]
fn report_advanced_logic_and_dag_limits() {
    let (emu, t, id) = simple_with_report("advanced_logic=\"\"", "advanced_logic=\"[age] &gt; 60 or [sex] = '0'\"");
    let ids = |r: Resp| -> Vec<String> {
        r.json().as_array().unwrap().iter().map(|x| x["record_id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(report(&emu, &t, id, &[])), ["1", "3", "4"]);
    // Limited by the caller's DAG.
    let pid = emu.project_ids()[0];
    let site = emu.add_user(pid, User::new("s1").dag("dag_1")).unwrap();
    assert_eq!(ids(report(&emu, &site, id, &[])), ["1", "3"]);
    // And by data-export rights: no access fails; removing identifiers drops `address`.
    let none = emu
        .add_user(pid, User::new("none").rights(Rights { data_export: DataExport::NoAccess, ..Rights::full() }))
        .unwrap();
    assert_eq!(report(&emu, &none, id, &[]).status, 403);
    let noid = emu
        .add_user(
            pid,
            User::new("noid").rights(Rights { data_export: DataExport::RemoveIdentifiers, ..Rights::full() }),
        )
        .unwrap();
    let v = report(&emu, &noid, id, &[]).json();
    assert!(v[0].get("address").is_none() && v[0].get("height").is_some());
}

#[test]
fn report_ordering_and_dag_filter() {
    let (emu, t, id) = simple_with_report(
        "orderby_field1=\"record_id\" orderby_sort1=\"ASC\"",
        "orderby_field1=\"height\" orderby_sort1=\"DESC\"",
    );
    let v = report(&emu, &t, id, &[]).json();
    let h: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["height"].as_str().unwrap()).collect();
    assert_eq!(h, ["193.04", "180", "165", "7", "6"]);
    let (emu, t, id) = simple_with_report("redcap_reports_filter_dags=\"\"", "redcap_reports_filter_dags=\"dag_2\"");
    let v = report(&emu, &t, id, &[]).json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["record_id"], "5");
}

#[test]
fn report_event_filter_in_a_longitudinal_project() {
    let emu = start(&["phpcap-PHPCapLongitudinalData.xml"]);
    let t = admin(&emu);
    let id = emu.report_id(emu.project_ids()[0], "Exercise").unwrap();
    let v = report(&emu, &t, id, &[]).json();
    let rows = v.as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| ["enrollment_arm_1", "enrollment_arm_2"].contains(&r["redcap_event_name"].as_str().unwrap()))
    );
    let keys: Vec<&str> = rows[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(&keys[..3], ["study_id", "redcap_event_name", "age"]);
}
