//! EAV export and import, backgroundProcess, exportSurveyFields.

use crate::common::*;
use redcap_emulator::{Emulator, RunningEmulator};
use serde_json::{Value, json};

fn call(emu: &RunningEmulator, t: &str, fields: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", t), ("content", "record"), ("format", "json"), ("returnFormat", "json")];
    f.extend_from_slice(fields);
    post(&emu.url(), &f)
}

#[test]
fn eav_export_lists_one_value_per_row() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let fields = [("type", "eav"), ("records[0]", "1"), ("fields", "record_id,name_first,race,health_complete")];
    let v = call(&emu, &t, &fields).json();
    assert_eq!(
        v,
        json!([
            {"record": "1", "field_name": "record_id", "value": "1"},
            {"record": "1", "field_name": "name_first", "value": "Nutmeg"},
            {"record": "1", "field_name": "health_complete", "value": "1"},
            {"record": "1", "field_name": "race", "value": "5"}
        ])
    );
    let mut labelled = fields.to_vec();
    labelled.push(("rawOrLabel", "label"));
    let v = call(&emu, &t, &labelled).json();
    assert_eq!(v[2]["value"], "Unverified");
    assert_eq!(v[3]["value"], "White");
    let mut csv = fields.to_vec();
    csv.push(("format", "csv"));
    assert_eq!(call(&emu, &t, &csv).text().lines().next(), Some("record,field_name,value"));
    // Longitudinal with a repeating event: the event and repeat columns follow.
    let long = start(&["pycap-doctest_project.xml"]);
    let v = call(&long, &admin(&long), &[("type", "eav"), ("records[0]", "1"), ("fields[0]", "field_1")]).json();
    assert_eq!(
        v,
        json!([{"record": "1", "field_name": "field_1", "value": "1", "redcap_event_name": "event_1_arm_1",
                "redcap_repeat_instrument": "", "redcap_repeat_instance": 1}])
    );
}

#[test]
fn eav_import_and_round_trip() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let data = json!([
        {"record": "30", "field_name": "name_first", "value": "Eve"},
        {"record": "30", "field_name": "race___2", "value": "1"},
        {"record": "30", "field_name": "race", "value": "4"},
        {"record": "31", "field_name": "age", "value": 40}
    ])
    .to_string();
    call(&emu, &t, &[("type", "eav"), ("data", &data)]).expect(200, "{\"count\":2}");
    let v = call(&emu, &t, &[("records", "30,31"), ("fields", "record_id,name_first,race,age")]).json();
    assert_eq!(
        (v[0]["name_first"].as_str(), v[0]["race___2"].as_str(), v[0]["race___4"].as_str()),
        (Some("Eve"), Some("1"), Some("1"))
    );
    assert_eq!(v[1]["age"], "40");
    // Export as EAV, import into an empty copy of the project: the flat data match (file
    // values are names in an export and are not imported as data).
    let xml = std::fs::read_to_string(fixture("redcapr-simple.xml")).unwrap();
    let start_c = xml.find("<ClinicalData").unwrap();
    let end_c = xml.find("</ClinicalData>").unwrap() + "</ClinicalData>".len();
    let empty = format!("{}{}", &xml[..start_c], &xml[end_c..]);
    let copy = Emulator::builder().in_memory().project_xml(empty).start().unwrap();
    let eav = call(&emu, &t, &[("type", "eav"), ("format", "csv"), ("exportDataAccessGroups", "true")]).text();
    let r = post(
        &copy.url(),
        &[
            ("token", &admin(&copy)),
            ("content", "record"),
            ("type", "eav"),
            ("format", "csv"),
            ("data", &eav),
            ("returnFormat", "json"),
        ],
    );
    r.expect(200, "{\"count\":7}");
    let strip = |v: Value| -> Value {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("mugshot");
                r
            })
            .collect()
    };
    let opts = [("exportDataAccessGroups", "true")];
    assert_eq!(strip(call(&copy, &admin(&copy), &opts).json()), strip(call(&emu, &t, &opts).json()));
    assert_eq!(call(&copy, &admin(&copy), &[("records[0]", "1")]).json()[0]["mugshot"], "", "no file from a name");
}

#[test]
fn eav_import_errors() {
    let emu = start(&["redcapr-repeating-instruments.xml"]);
    let t = admin(&emu);
    let r = call(
        &emu,
        &t,
        &[
            ("type", "eav"),
            (
                "data",
                r#"[{"record":"1","field_name":"bp_systolic","value":"1","redcap_repeat_instrument":"bp","redcap_repeat_instance":"new"}]"#,
            ),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("instance numbering with new cannot be used with type=eav"));
    let r = call(&emu, &t, &[("type", "eav"), ("data", r#"[{"id":"1","value":"x"}]"#)]);
    assert_eq!(r.status, 400);
    let r = call(&emu, &t, &[("type", "eav"), ("data", r#"[{"record":"1","field_name":"race","value":"99"}]"#)]);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().starts_with("\"1\",\"race\",\"99\""));
    let r = call(&emu, &t, &[("type", "bogus"), ("data", "[]")]);
    assert_eq!(r.status, 400);
}

#[test]
fn background_import_answers_a_success_flag() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    call(&emu, &t, &[("backgroundProcess", "true"), ("data", r#"[{"record_id":"40","name_first":"Bg"}]"#)])
        .expect(200, "{\"success\":true}");
    assert_eq!(call(&emu, &t, &[("records[0]", "40"), ("fields[0]", "name_first")]).json()[0]["name_first"], "Bg");
    // A data problem: nothing is written, success is false and the reason is in the log.
    call(&emu, &t, &[("backgroundProcess", "1"), ("data", r#"[{"record_id":"41","sex":"7"}]"#)])
        .expect(200, "{\"success\":false}");
    call(&emu, &t, &[("records[0]", "41")]).expect(200, "[]");
    let log = post(&emu.url(), &[("token", &t), ("content", "log"), ("format", "json")]).json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["details"].as_str().unwrap().starts_with("Background data import failed: \"41\",\"sex\""))
    );
    call(&emu, &t, &[("backgroundProcess", "true"), ("data", r#"[{"record_id":"42"}]"#), ("returnFormat", "csv")])
        .expect(200, "true");
    call(&emu, &t, &[("backgroundProcess", "true"), ("data", r#"[{"record_id":"43"}]"#), ("returnFormat", "xml")])
        .expect(200, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><success>true</success>");
    // Parameter errors are still errors.
    assert_eq!(
        call(&emu, &t, &[("backgroundProcess", "true"), ("data", "[]"), ("overwriteBehavior", "bogus")]).status,
        400
    );
}

#[test]
fn export_survey_fields_adds_identifier_and_timestamps() {
    let emu = start(&["redcapr-survey.xml"]);
    let t = admin(&emu);
    let plain = call(&emu, &t, &[("records[0]", "1")]).json();
    assert!(
        plain[0].get("prescreening_survey_timestamp").is_none() && plain[0].get("redcap_survey_identifier").is_none()
    );
    let v = call(&emu, &t, &[("records[0]", "1"), ("exportSurveyFields", "true")]).json();
    let keys: Vec<&str> = v[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(&keys[..3], ["participant_id", "redcap_survey_identifier", "prescreening_survey_timestamp"]);
    assert_eq!(v[0]["prescreening_survey_timestamp"], "2024-10-13 20:39:30");
    assert_eq!(v[0]["participant_morale_questionnaire_timestamp"], "[not completed]");
    let first_morale = keys.iter().position(|k| k.starts_with("participant_morale_questionnaire")).unwrap();
    assert_eq!(keys[first_morale], "participant_morale_questionnaire_timestamp", "the timestamp leads its form");
    // Only forms with selected fields get their timestamp; re-importing the columns is harmless.
    let v =
        call(&emu, &t, &[("records[0]", "1"), ("fields", "participant_id,dob"), ("exportSurveyFields", "true")]).json();
    let keys: Vec<&str> = v[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["participant_id", "redcap_survey_identifier", "prescreening_survey_timestamp", "dob"]);
    let back = v.to_string();
    call(&emu, &t, &[("data", &back)]).expect(200, "{\"count\":1}");
    // A project without surveys is unchanged by the flag.
    let simple = start(&["redcapr-simple.xml"]);
    let st = admin(&simple);
    assert_eq!(call(&simple, &st, &[("exportSurveyFields", "true")]).json(), call(&simple, &st, &[]).json());
}

/// In EAV a File Upload value is REDCap's internal doc id, a number, not the file's name
/// (REDCapR inst/test-data/specific-redcapr/read-oneshot-eav/default.R: `mugshot = 22:26`, one
/// id per record; label-and-dag.R: `197977L` …). Flat exports keep the name.
#[test]
fn eav_file_values_are_doc_ids() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let eav = call(&emu, &t, &[("type", "eav"), ("fields[0]", "mugshot")]).json();
    let ids: Vec<i64> = eav
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["field_name"] == "mugshot")
        .map(|r| r["value"].as_str().unwrap().parse::<i64>().expect("a numeric doc id"))
        .collect();
    assert_eq!(ids.len(), 5, "{eav}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "distinct ids in upload order: {ids:?}");
    let flat = call(&emu, &t, &[("fields[0]", "mugshot"), ("records[0]", "1")]).json();
    assert_eq!(flat[0]["mugshot"], "mugshot-1.jpg");
}
