//! Export Project XML (`content=project_xml`): a whole project as ODM that loads again.

use crate::common::*;
use redcap_emulator::{DataExport, Emulator, Rights, RunningEmulator, User};
use serde_json::Value;

fn project_xml(emu: &RunningEmulator, t: &str, extra: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", t), ("content", "project_xml")];
    f.extend_from_slice(extra);
    post(&emu.url(), &f)
}

const FULL: [(&str, &str); 3] =
    [("exportDataAccessGroups", "true"), ("exportSurveyFields", "true"), ("exportFiles", "true")];

/// A JSON export with some keys dropped from every object (ids that a reload renumbers).
fn export(emu: &RunningEmulator, fields: &[(&str, &str)], drop: &[&str]) -> (u16, Value) {
    let t = admin(emu);
    let mut f = vec![("token", t.as_str()), ("format", "json"), ("returnFormat", "json")];
    f.extend_from_slice(fields);
    let r = post(&emu.url(), &f);
    let mut v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|_| Value::String(r.text()));
    let strip = |o: &mut Value| {
        if let Some(m) = o.as_object_mut() {
            for k in drop {
                m.remove(*k);
            }
        }
    };
    match &mut v {
        Value::Array(items) => items.iter_mut().for_each(strip),
        other => strip(other),
    }
    (r.status, v)
}

const INFO_KEYS: &[&str] = &[
    "project_id",
    "creation_time",
    "production_time",
    "project_language",
    "project_irb_number",
    "project_grant_number",
    "project_pi_firstname",
    "project_pi_lastname",
    "project_pi_email",
    "ddp_enabled",
    "external_modules",
    "in_production",
];

/// Everything an export shows of a project, as (what, status, body).
fn snapshot(emu: &RunningEmulator) -> Vec<(String, u16, Value)> {
    let mut out = Vec::new();
    type Call<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let calls: Vec<Call> = vec![
        ("metadata", vec![("content", "metadata")], vec![]),
        ("instruments", vec![("content", "instrument")], vec![]),
        ("field names", vec![("content", "exportFieldNames")], vec![]),
        ("events", vec![("content", "event")], vec!["event_id"]),
        ("arms", vec![("content", "arm")], vec![]),
        ("mappings", vec![("content", "formEventMapping")], vec![]),
        ("repeating", vec![("content", "repeatingFormsEvents")], vec![]),
        ("dags", vec![("content", "dag")], vec!["data_access_group_id"]),
        ("roles", vec![("content", "userRole")], vec![]),
        ("info", vec![("content", "project")], INFO_KEYS.to_vec()),
        (
            "records",
            vec![("content", "record"), ("exportDataAccessGroups", "true"), ("exportSurveyFields", "true")],
            vec![],
        ),
    ];
    for (what, params, drop) in calls {
        let (s, v) = export(emu, &params, &drop);
        out.push((what.to_owned(), s, v));
    }
    let pid = emu.project_ids()[0];
    let reports =
        post(&emu.url(), &[("token", &admin(emu)), ("content", "project_xml"), ("returnMetadataOnly", "true")]).text();
    for title in reports.split("<redcap:Reports title=\"").skip(1).map(|s| s.split('"').next().unwrap().to_owned()) {
        let id = emu.report_id(pid, &title).unwrap().to_string();
        let (s, v) = export(emu, &[("content", "report"), ("report_id", &id)], &[]);
        out.push((format!("report {title}"), s, v));
    }
    out
}

#[test]
fn every_fixture_round_trips_through_project_xml() {
    let names: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    assert_eq!(names.len(), 36);
    for name in names {
        let emu = start(&[&name]);
        let r = project_xml(&emu, &admin(&emu), &FULL);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/xml"));
        let copy =
            Emulator::builder().in_memory().project_xml(r.text()).start().unwrap_or_else(|e| panic!("{name}: {e}"));
        let (a, b) = (snapshot(&emu), snapshot(&copy));
        assert_eq!(a.len(), b.len(), "{name}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{name}: {}", x.0);
        }
    }
}

#[test]
fn files_are_embedded_and_come_back() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let x = project_xml(&emu, &t, &FULL).text();
    assert!(x.contains("<ItemDataBase64Binary ItemOID=\"mugshot\" redcap:DocName=\"mugshot-1.jpg\" redcap:MimeType=\"image/jpeg\"><![CDATA[/9j/"));
    let copy = Emulator::builder().in_memory().project_xml(x).start().unwrap();
    let get = |emu: &RunningEmulator| {
        let t = admin(emu);
        post(
            &emu.url(),
            &[("token", &t), ("content", "file"), ("action", "export"), ("record", "1"), ("field", "mugshot")],
        )
    };
    let (a, b) = (get(&emu), get(&copy));
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.body.len() > 1000);
    assert_eq!(a.body, b.body);
    // Without exportFiles the files are left out (a bare name would not load back as a file).
    let plain = project_xml(&emu, &t, &[]).text();
    assert!(!plain.contains("ItemDataBase64Binary") && !plain.contains("<ItemData ItemOID=\"mugshot\""));
}

#[test]
fn metadata_is_complete_and_filters_apply_to_data() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let meta = project_xml(&emu, &t, &[("returnMetadataOnly", "true")]).text();
    assert!(meta.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<ODM "));
    assert!(
        meta.contains("<Study OID=\"Project.REDCapRSimple\">")
            && meta.contains("<StudyName>REDCapR: simple</StudyName>")
    );
    assert!(
        meta.contains("<MetaDataVersion OID=\"Metadata.REDCapRSimple_")
            && meta.contains("redcap:RecordIdField=\"record_id\"")
    );
    assert!(meta.contains("<FormDef OID=\"Form.demographics\" Name=\"demographics\""), "{meta}");
    assert!(meta.contains("<ItemDef OID=\"race___2\" Name=\"race___2\" DataType=\"boolean\""));
    assert!(meta.contains("<redcap:Reports title=\"test-report-1\""));
    assert!(!meta.contains("<ClinicalData"));
    let x = project_xml(&emu, &t, &[("records[0]", "2"), ("fields[0]", "record_id"), ("fields[1]", "age")]).text();
    assert_eq!(x.matches("<SubjectData").count(), 1);
    assert!(x.contains("<SubjectData SubjectKey=\"2\""));
    assert!(x.contains("<ItemData ItemOID=\"age\"") && !x.contains("<ItemData ItemOID=\"name_first\""));
    assert!(x.contains("<ItemDef OID=\"name_first\""), "the metadata stays complete");
    assert!(!x.contains("ItemOID=\"redcap_data_access_group\" Value"), "no DAG without exportDataAccessGroups");
    let x = project_xml(&emu, &t, &[("filterLogic", "[age] >= 61")]).text();
    assert_eq!(x.matches("<SubjectData").count(), 2);
    let r = project_xml(&emu, &t, &[("filterLogic", "[nope] = 1"), ("returnFormat", "json")]);
    assert_eq!(r.status, 400);
    // Data-export rights apply to the data only.
    let pid = emu.project_ids()[0];
    let none = emu
        .add_user(pid, User::new("none").rights(Rights { data_export: DataExport::NoAccess, ..Rights::full() }))
        .unwrap();
    assert_eq!(project_xml(&emu, &none, &[]).status, 403);
    assert_eq!(project_xml(&emu, &none, &[("returnMetadataOnly", "true")]).status, 200);
    let deid = emu
        .add_user(
            pid,
            User::new("deid").rights(Rights { data_export: DataExport::RemoveIdentifiers, ..Rights::full() }),
        )
        .unwrap();
    let x = project_xml(&emu, &deid, &[]).text();
    assert!(x.contains("<ItemData ItemOID=\"age\"") && !x.contains("<ItemData ItemOID=\"name_first\""));
    let noexp = emu.add_user(pid, User::new("noexp").rights(Rights { api_export: false, ..Rights::full() })).unwrap();
    project_xml(&emu, &noexp, &[("returnFormat", "json")])
        .expect(403, "{\"error\":\"You do not have API Export privileges\"}");
}

#[test]
fn create_project_from_an_exported_project_xml() {
    let emu = start(&["pycap-doctest_project.xml"]);
    let xml = project_xml(&emu, &admin(&emu), &FULL).text();
    let r = post(
        &emu.url(),
        &[
            ("token", &emu.super_token()),
            ("content", "project"),
            ("format", "json"),
            ("data", "[{\"project_title\":\"Copy\",\"purpose\":\"0\"}]"),
            ("odm", &xml),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let copy = r.text();
    let recs = |t: &str| {
        post(&emu.url(), &[("token", t), ("content", "record"), ("format", "json"), ("exportDataAccessGroups", "true")])
            .json()
    };
    assert_eq!(recs(&copy), recs(&admin(&emu)));
    assert!(!recs(&copy).as_array().unwrap().is_empty());
}
