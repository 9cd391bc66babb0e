//! Imports and deletes of structure: metadata, arms, events, mappings, repeating setup,
//! project settings.

use crate::common::*;
use redcap_emulator::{Rights, RunningEmulator, User};
use serde_json::{Value, json};

fn call(emu: &RunningEmulator, t: &str, fields: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", t), ("format", "json"), ("returnFormat", "json")];
    f.extend_from_slice(fields);
    post(&emu.url(), &f)
}

fn json_of(emu: &RunningEmulator, t: &str, content: &str) -> Value {
    let r = call(emu, t, &[("content", content)]);
    assert_eq!(r.status, 200, "{content}: {}", r.text());
    r.json()
}

fn import(emu: &RunningEmulator, t: &str, content: &str, data: &Value, extra: &[(&str, &str)]) -> Resp {
    let data = data.to_string();
    let mut f = vec![("content", content), ("data", data.as_str())];
    f.extend_from_slice(extra);
    call(emu, t, &f)
}

fn error(r: &Resp) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn import_metadata_replaces_the_dictionary() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let mut dict: Vec<Value> = json_of(&emu, &t, "metadata").as_array().unwrap().clone();
    // Drop `comments`, add a field to `health` and a new form.
    dict.retain(|f| f["field_name"] != "comments");
    let mut new_field = dict.iter().find(|f| f["field_name"] == "age").unwrap().clone();
    new_field["field_name"] = json!("new_text");
    new_field["form_name"] = json!("health");
    new_field["field_label"] = json!("New text");
    let pos = dict.iter().position(|f| f["field_name"] == "mugshot").unwrap();
    dict.insert(pos + 1, new_field);
    let mut extra = dict.last().unwrap().clone();
    extra["field_name"] = json!("extra_note");
    extra["form_name"] = json!("extra_info");
    extra["field_type"] = json!("notes");
    extra["select_choices_or_calculations"] = json!("");
    dict.push(extra);
    let n = dict.len();
    import(&emu, &t, "metadata", &Value::from(dict.clone()), &[]).expect(200, &n.to_string());
    let after = json_of(&emu, &t, "metadata");
    assert_eq!(after, Value::from(dict), "the export shows exactly the imported dictionary");
    let forms = json_of(&emu, &t, "instrument");
    assert_eq!(
        forms.as_array().unwrap().last().unwrap(),
        &json!({"instrument_name": "extra_info", "instrument_label": "Extra Info"})
    );
    // Data of the removed field is gone; other data stays.
    let recs = call(&emu, &t, &[("content", "record"), ("records[0]", "1")]).json();
    assert!(recs[0].get("comments").is_none());
    assert_eq!(recs[0]["name_first"], "Nutmeg");
    assert_eq!(recs[0]["new_text"], "");
    let log = call(&emu, &t, &[("content", "log"), ("logtype", "manage")]).json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["details"].as_str().unwrap().starts_with("Import data dictionary (API)"))
    );
}

#[test]
fn import_metadata_in_csv_with_the_ui_header_and_round_trips() {
    let emu = start(&["redcapr-longitudinal.xml"]);
    let t = admin(&emu);
    let before = json_of(&emu, &t, "metadata");
    // Exporting and importing the dictionary unchanged keeps it identical.
    let n = before.as_array().unwrap().len();
    import(&emu, &t, "metadata", &before, &[]).expect(200, &n.to_string());
    assert_eq!(json_of(&emu, &t, "metadata"), before);
    let csv = "\"Variable / Field Name\",\"Form Name\",\"Section Header\",\"Field Type\",\"Field Label\",\"Choices, Calculations, OR Slider Labels\"\n\
               study_id,demographics,,text,\"Study ID\",\n\
               color,demographics,,radio,Colour,\"1, Red | 2, Blue\"\n";
    let r = post(&emu.url(), &[("token", &t), ("content", "metadata"), ("format", "csv"), ("data", csv)]);
    r.expect(200, "2");
    let m = json_of(&emu, &t, "metadata");
    assert_eq!(m.as_array().unwrap().len(), 2);
    assert_eq!(m[1]["select_choices_or_calculations"], "1, Red | 2, Blue");
    assert_eq!(m[1]["field_type"], "radio");
}

#[test]
fn import_metadata_errors_rights_and_status() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let row = |name: &str, form: &str, ftype: &str, choices: &str| json!({"field_name": name, "form_name": form, "field_type": ftype, "field_label": name, "select_choices_or_calculations": choices});
    let r = import(
        &emu,
        &t,
        "metadata",
        &json!([row("record_id", "f", "text", ""), row("x", "f", "bogus", ""), row("x", "f", "radio", "")]),
        &[],
    );
    assert_eq!(r.status, 400);
    let lines: Vec<String> = error(&r).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("field type \"bogus\""));
    assert!(lines[1].contains("used more than once") && lines[2].contains("needs choices"));
    let r = import(
        &emu,
        &t,
        "metadata",
        &json!([row("id", "a", "radio", "1, x"), row("b", "b", "text", ""), row("c", "a", "text", "")]),
        &[],
    );
    assert!(error(&r).contains("record-id field") && error(&r).contains("next to each other"), "{}", r.text());
    assert_eq!(json_of(&emu, &t, "metadata").as_array().unwrap().len(), 17, "nothing changed");
    let pid = emu.project_ids()[0];
    let nodesign = emu.add_user(pid, User::new("nd").rights(Rights { design: false, ..Rights::full() })).unwrap();
    import(&emu, &nodesign, "metadata", &json!([row("record_id", "f", "text", "")]), &[])
        .expect(403, "{\"error\":\"You do not have Project Design and Setup privileges\"}");
    let noimport = emu.add_user(pid, User::new("ni").rights(Rights { api_import: false, ..Rights::full() })).unwrap();
    assert_eq!(import(&emu, &noimport, "metadata", &json!([row("record_id", "f", "text", "")]), &[]).status, 403);
    emu.set_in_production(pid, true).unwrap();
    let r = import(&emu, &t, "metadata", &json!([row("record_id", "f", "text", "")]), &[]);
    assert_eq!(r.status, 400);
    assert!(error(&r).contains("Development"));
    assert_eq!(json_of(&emu, &t, "project")["in_production"], 1);
}

#[test]
fn arms_import_rename_override_and_delete() {
    let emu = start(&["redcapr-longitudinal.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let arms = json_of(&emu, &t, "arm");
    assert_eq!(arms.as_array().unwrap().len(), 2);
    import(
        &emu,
        &t,
        "arm",
        &json!([{"arm_num": 1, "name": "Arm A"}, {"arm_num": "3", "name": "Third"}]),
        &[("action", "import")],
    )
    .expect(200, "2");
    let arms = json_of(&emu, &t, "arm");
    assert_eq!(arms[0], json!({"arm_num": 1, "name": "Arm A"}));
    // Arm 3 has no events yet, and REDCap exports only arms with events (PyCap's integration
    // test_arms_import); it exists all the same (deleted below).
    assert_eq!(arms.as_array().unwrap().len(), 2, "{arms}");
    // action is required with data.
    assert_eq!(import(&emu, &t, "arm", &json!([{"arm_num": 1, "name": "x"}]), &[]).status, 400);
    // Delete arm 3 (no events) and check unknown arms.
    let r = call(&emu, &t, &[("content", "arm"), ("action", "delete"), ("arms[0]", "9")]);
    r.expect(400, "{\"error\":\"The following values in the parameter \\\"arms\\\" are not valid: '9'\"}");
    call(&emu, &t, &[("content", "arm"), ("action", "delete"), ("arms[0]", "3")]).expect(200, "1");
    // Deleting arm 2 removes its events and their data.
    let events_before = json_of(&emu, &t, "event").as_array().unwrap().len();
    let arm2_events = json_of(&emu, &t, "event").as_array().unwrap().iter().filter(|e| e["arm_num"] == 2).count();
    assert!(arm2_events > 0);
    call(&emu, &t, &[("content", "arm"), ("action", "delete"), ("arms[0]", "2")]).expect(200, "1");
    assert_eq!(json_of(&emu, &t, "event").as_array().unwrap().len(), events_before - arm2_events);
    let recs = json_of(&emu, &t, "record");
    assert!(recs.as_array().unwrap().iter().all(|r| r["redcap_event_name"].as_str().unwrap().ends_with("_arm_1")));
    // override=1 deletes everything first (Development only).
    emu.set_in_production(pid, true).unwrap();
    let over = json!([{"arm_num": 1, "name": "Only"}, {"arm_num": 2, "name": "Two"}]);
    assert_eq!(import(&emu, &t, "arm", &over, &[("action", "import"), ("override", "1")]).status, 400);
    import(&emu, &t, "arm", &json!([{"arm_num": 1, "name": "Renamed in production"}]), &[("action", "import")])
        .expect(200, "1");
    emu.set_in_production(pid, false).unwrap();
    import(&emu, &t, "arm", &over, &[("action", "import"), ("override", "1")]).expect(200, "2");
    assert_eq!(json_of(&emu, &t, "event"), json!([]));
    assert_eq!(json_of(&emu, &t, "arm"), json!([]), "no arm has events yet");
    import(
        &emu,
        &t,
        "event",
        &json!([{"event_name": "E", "arm_num": 1}, {"event_name": "E", "arm_num": 2}]),
        &[("action", "import")],
    )
    .expect(200, "2");
    assert_eq!(json_of(&emu, &t, "arm"), json!([{"arm_num": 1, "name": "Only"}, {"arm_num": 2, "name": "Two"}]));
    call(&emu, &t, &[("content", "event"), ("action", "delete"), ("events[0]", "e_arm_1"), ("events[1]", "e_arm_2")])
        .expect(200, "2");
    assert_eq!(json_of(&emu, &t, "record"), json!([]), "records lost their events");
}

fn is_longitudinal(emu: &RunningEmulator, t: &str) -> i64 {
    json_of(emu, t, "project")["is_longitudinal"].as_i64().expect("is_longitudinal is a number")
}

/// redcapAPI's arm method tests (tests/testthat/test-106-armsMethods-Functionality.R), run by its
/// maintainers against a live REDCap: a longitudinal project whose arms are all deleted reports
/// `is_longitudinal` 0 and may be made classic; arms and events imported into the classic project
/// are accepted (counts 3 and 3) but not exported, and `is_longitudinal` stays 0, until
/// `is_longitudinal` 1 is imported — then exactly those arms and events come back. With the
/// setting on, importing arms and events is enough to be longitudinal again.
#[test]
fn arms_and_events_imported_into_a_classic_project_appear_once_it_is_longitudinal() {
    let emu = start(&["redcapr-longitudinal.xml"]);
    let t = admin(&emu);
    assert_eq!(is_longitudinal(&emu, &t), 1);
    call(&emu, &t, &[("content", "arm"), ("action", "delete"), ("arms[0]", "1"), ("arms[1]", "2")]).expect(200, "2");
    assert_eq!(is_longitudinal(&emu, &t), 0, "no events: not longitudinal");
    import(&emu, &t, "project_settings", &json!({"is_longitudinal": "0"}), &[]).expect(200, "1");

    let arms =
        json!([{"arm_num": 1, "name": "Arm 1"}, {"arm_num": 2, "name": "Arm 2"}, {"arm_num": 3, "name": "Arm 3"}]);
    import(&emu, &t, "arm", &arms, &[("action", "import")]).expect(200, "3");
    assert_eq!(is_longitudinal(&emu, &t), 0);
    assert_eq!(call(&emu, &t, &[("content", "arm")]).status, 400, "a classic project exports no arms");
    let events = json!([{"event_name": "event_1", "arm_num": 1}, {"event_name": "event_1", "arm_num": 2}, {"event_name": "event_1", "arm_num": 3}]);
    import(&emu, &t, "event", &events, &[("action", "import")]).expect(200, "3");
    assert_eq!(is_longitudinal(&emu, &t), 0, "the setting is still off");
    // An override would delete the classic project's hidden event and its records.
    let r = import(&emu, &t, "arm", &arms, &[("action", "import"), ("override", "1")]);
    assert_eq!(error(&r), "Importing arms with override=1 is not possible in a classic project");
    assert_eq!(call(&emu, &t, &[("content", "event")]).status, 400);

    import(&emu, &t, "project_settings", &json!({"is_longitudinal": 1}), &[]).expect(200, "1");
    assert_eq!(is_longitudinal(&emu, &t), 1);
    assert_eq!(json_of(&emu, &t, "arm"), arms);
    let got: Vec<(String, i64)> = json_of(&emu, &t, "event")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event_name"].as_str().unwrap().to_owned(), e["arm_num"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, [("event_1".to_owned(), 1), ("event_1".to_owned(), 2), ("event_1".to_owned(), 3)]);

    // Deleting every arm leaves the setting on: arms and events make it longitudinal again
    // without importing the setting (redcapAPI's override test starts there).
    call(&emu, &t, &[("content", "arm"), ("action", "delete"), ("arms[0]", "1"), ("arms[1]", "2"), ("arms[2]", "3")])
        .expect(200, "3");
    assert_eq!(is_longitudinal(&emu, &t), 0);
    import(&emu, &t, "arm", &json!([{"arm_num": 10, "name": "Arm x"}]), &[("action", "import")]).expect(200, "1");
    import(&emu, &t, "event", &json!([{"event_name": "event_x", "arm_num": 10}]), &[("action", "import")])
        .expect(200, "1");
    assert_eq!(is_longitudinal(&emu, &t), 1);
    assert_eq!(json_of(&emu, &t, "arm"), json!([{"arm_num": 10, "name": "Arm x"}]));
}

#[test]
fn events_import_update_and_delete() {
    let emu = start(&["redcapr-longitudinal.xml"]);
    let t = admin(&emu);
    let data = json!([
        {"event_name": "XYZ", "arm_num": "2", "day_offset": "5", "offset_min": "0", "offset_max": "1"},
        {"event_name": "Enrollment (renamed)", "arm_num": "1", "unique_event_name": "enrollment_arm_1", "custom_event_label": "[name_first]"},
        {"event_name": "XYZ", "arm_num": "2"}
    ]);
    import(&emu, &t, "event", &data, &[("action", "import")]).expect(200, "3");
    let events = json_of(&emu, &t, "event");
    let by = |u: &str| events.as_array().unwrap().iter().find(|e| e["unique_event_name"] == u).cloned();
    let xyz = by("xyz_arm_2").expect("generated unique name");
    assert_eq!(xyz["event_name"], "XYZ");
    assert!(by("xyz_2_arm_2").is_some(), "a clash gets a suffix");
    let enr = by("enrollment_arm_1").unwrap();
    assert_eq!(
        (enr["event_name"].as_str(), enr["custom_event_label"].as_str()),
        (Some("Enrollment (renamed)"), Some("[name_first]"))
    );
    assert!(xyz["event_id"].as_i64().unwrap() > 0);
    // Events of arm 2 come after arm 1's.
    let arms: Vec<i64> = events.as_array().unwrap().iter().map(|e| e["arm_num"].as_i64().unwrap()).collect();
    assert!(arms.windows(2).all(|w| w[0] <= w[1]));
    let r = import(&emu, &t, "event", &json!([{"event_name": "Bad", "arm_num": "7"}]), &[("action", "import")]);
    assert_eq!(r.status, 400);
    assert!(error(&r).contains("arm_num"));
    // Deleting an event deletes its data.
    let before = json_of(&emu, &t, "record").as_array().unwrap().len();
    let in_enrollment = json_of(&emu, &t, "record")
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["redcap_event_name"] == "enrollment_arm_1")
        .count();
    assert!(in_enrollment > 0);
    call(
        &emu,
        &t,
        &[("content", "event"), ("action", "delete"), ("events[0]", "enrollment_arm_1"), ("events[1]", "xyz_arm_2")],
    )
    .expect(200, "2");
    assert_eq!(json_of(&emu, &t, "record").as_array().unwrap().len(), before - in_enrollment);
    let maps = json_of(&emu, &t, "formEventMapping");
    assert!(maps.as_array().unwrap().iter().all(|m| m["unique_event_name"] != "enrollment_arm_1"));
    assert_eq!(call(&emu, &t, &[("content", "event"), ("action", "delete"), ("events[0]", "nope")]).status, 400);
    // override=1 replaces all events.
    import(
        &emu,
        &t,
        "event",
        &json!([{"event_name": "Only", "arm_num": 1}]),
        &[("action", "import"), ("override", "1")],
    )
    .expect(200, "1");
    let events = json_of(&emu, &t, "event");
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["unique_event_name"], "only_arm_1");
}

#[test]
fn instrument_event_mappings_are_replaced() {
    let emu = start(&["redcapr-longitudinal.xml"]);
    let t = admin(&emu);
    let data = json!([{"arm_num": 1, "unique_event_name": "enrollment_arm_1", "form": "demographics"}, {"arm_num": "1", "unique_event_name": "dose_1_arm_1", "form": "demographics"}]);
    import(&emu, &t, "formEventMapping", &data, &[("action", "import")]).expect(200, "2");
    assert_eq!(
        json_of(&emu, &t, "formEventMapping"),
        json!([{"arm_num": 1, "unique_event_name": "enrollment_arm_1", "form": "demographics"}, {"arm_num": 1, "unique_event_name": "dose_1_arm_1", "form": "demographics"}])
    );
    let r = import(
        &emu,
        &t,
        "formEventMapping",
        &json!([{"arm_num": 1, "unique_event_name": "nope_arm_1", "form": "demographics"}]),
        &[],
    );
    assert_eq!(r.status, 400);
    let r = import(
        &emu,
        &t,
        "formEventMapping",
        &json!([{"arm_num": 2, "unique_event_name": "enrollment_arm_1", "form": "demographics"}]),
        &[],
    );
    assert_eq!(r.status, 400, "arm mismatch");
    let classic = start(&["redcapr-simple.xml"]);
    let r = import(&classic, &admin(&classic), "formEventMapping", &data, &[]);
    assert_eq!(error(&r), "You cannot import form/event mappings for classic projects");
}

#[test]
fn repeating_setup_import_moves_data() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    import(&emu, &t, "repeatingFormsEvents", &json!([{"form_name": "health", "custom_form_label": "[height]"}]), &[])
        .expect(200, "1");
    assert_eq!(
        json_of(&emu, &t, "repeatingFormsEvents"),
        json!([{"form_name": "health", "custom_form_label": "[height]"}])
    );
    let rows = call(&emu, &t, &[("content", "record"), ("records[0]", "1"), ("fields", "record_id,height")]).json();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert_eq!(rows[1]["redcap_repeat_instrument"], "health");
    assert_eq!(rows[1]["redcap_repeat_instance"], 1);
    assert_eq!(rows[1]["height"], "7", "existing values became instance 1");
    // A new instance, then the form stops repeating: instance 1 comes back to the base row.
    let r = import(
        &emu,
        &t,
        "record",
        &json!([{"record_id": "1", "redcap_repeat_instrument": "health", "redcap_repeat_instance": "2", "height": "8"}]),
        &[],
    );
    r.expect(200, "{\"count\":1}");
    import(&emu, &t, "repeatingFormsEvents", &json!([]), &[]).expect(200, "0");
    let r = call(&emu, &t, &[("content", "repeatingFormsEvents")]);
    assert_eq!(r.status, 400);
    let rows = call(&emu, &t, &[("content", "record"), ("records[0]", "1"), ("fields", "record_id,height")]).json();
    assert_eq!(rows, json!([{"record_id": "1", "height": "7"}]));
    let r = import(&emu, &t, "repeatingFormsEvents", &json!([{"form_name": "nope", "custom_form_label": ""}]), &[]);
    assert_eq!(r.status, 400);
    // Export and import both need Project Design.
    let nd =
        emu.add_user(emu.project_ids()[0], User::new("nd").rights(Rights { design: false, ..Rights::full() })).unwrap();
    call(&emu, &nd, &[("content", "repeatingFormsEvents")])
        .expect(403, "{\"error\":\"You do not have Project Design and Setup privileges\"}");
    assert_eq!(import(&emu, &nd, "repeatingFormsEvents", &json!([]), &[]).status, 403);
    // Longitudinal: a repeating event and a repeating instrument, with the KB's label key.
    let long = start(&["redcapr-longitudinal.xml"]);
    let lt = admin(&long);
    let setup = json!([{"event_name": "dose_1_arm_1", "form_name": ""}, {"event_name": "visit_1_arm_1", "form_name": "visit_lab_data", "custom_repeat_instrument_label": "lab"}]);
    import(&long, &lt, "repeatingFormsEvents", &setup, &[]).expect(200, "2");
    assert_eq!(
        json_of(&long, &lt, "repeatingFormsEvents"),
        json!([{"event_name": "dose_1_arm_1", "form_name": "", "custom_form_label": ""}, {"event_name": "visit_1_arm_1", "form_name": "visit_lab_data", "custom_form_label": "lab"}])
    );
    let both = json!([{"event_name": "visit_1_arm_1", "form_name": ""}, {"event_name": "visit_1_arm_1", "form_name": "visit_lab_data"}]);
    assert_eq!(import(&long, &lt, "repeatingFormsEvents", &both, &[]).status, 400);
}

#[test]
fn project_settings_import_counts_attributes() {
    let emu = start(&["redcapr-longitudinal.xml"]);
    let t = admin(&emu);
    let data =
        json!({"project_title": "Renamed", "purpose": "2", "project_notes": "n", "surveys_enabled": 1, "bogus": "x"});
    import(&emu, &t, "project_settings", &data, &[]).expect(200, "4");
    let info = json_of(&emu, &t, "project");
    assert_eq!((info["project_title"].as_str(), info["purpose"].as_i64()), (Some("Renamed"), Some(2)));
    assert_eq!((info["project_notes"].as_str(), info["surveys_enabled"].as_i64()), (Some("n"), Some(1)));
    assert_eq!(import(&emu, &t, "project_settings", &json!({"purpose": "9"}), &[]).status, 400);
    assert_eq!(import(&emu, &t, "project_settings", &json!({"secondary_unique_field": "nope"}), &[]).status, 400);
    let r = import(&emu, &t, "project_settings", &json!({"is_longitudinal": "0"}), &[]);
    assert!(error(&r).contains("more than one event"));
    let pid = emu.project_ids()[0];
    let nodesign = emu.add_user(pid, User::new("nd").rights(Rights { design: false, ..Rights::full() })).unwrap();
    assert_eq!(import(&emu, &nodesign, "project_settings", &json!({"purpose": "1"}), &[]).status, 403);
    // A classic project can become longitudinal; its one event keeps the data.
    let classic = start(&["redcapr-simple.xml"]);
    let ct = admin(&classic);
    import(&classic, &ct, "project_settings", &json!({"is_longitudinal": "1"}), &[]).expect(200, "1");
    let rows = json_of(&classic, &ct, "record");
    assert_eq!(rows[0]["redcap_event_name"], "event_1_arm_1");
    assert_eq!(rows.as_array().unwrap().len(), 5);
}

/// PyCap's integration test `test_arms_import_override` (tests/integration/test_long_project.py,
/// run against a live REDCap with this very project): save the events and mappings, add arm 3
/// and an event in it, import arms 1 and 2 with `override=1` (every arm, event and mapping is
/// deleted), then restore the saved events (16) and mappings (44) — which only works when an
/// imported event keeps its `unique_event_name`. Also from that file: "REDCap will not return an
/// Arm unless it has an event associated with it" (`test_arms_import`).
#[test]
fn a_saved_structure_is_restored_after_an_arm_override() {
    let emu = start(&["pycap-test_long_project.xml"]);
    let t = admin(&emu);
    let events = json_of(&emu, &t, "event");
    let fem = json_of(&emu, &t, "formEventMapping");
    assert_eq!((events.as_array().unwrap().len(), fem.as_array().unwrap().len()), (16, 44));
    let arm_list = |emu: &RunningEmulator| -> Vec<(i64, String)> {
        json_of(emu, &t, "arm")
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["arm_num"].as_i64().unwrap(), a["name"].as_str().unwrap().to_owned()))
            .collect()
    };
    import(&emu, &t, "arm", &json!([{"arm_num": 3, "name": "Drug C"}]), &[("action", "import")]).expect(200, "1");
    assert_eq!(arm_list(&emu).len(), 2, "an arm without events is not exported");
    import(&emu, &t, "event", &json!([{"event_name": "new_event", "arm_num": "3"}]), &[("action", "import")])
        .expect(200, "1");
    assert_eq!(arm_list(&emu).len(), 3);
    import(
        &emu,
        &t,
        "arm",
        &json!([{"arm_num": 1, "name": "Drug A"}, {"arm_num": 2, "name": "Drug B"}]),
        &[("action", "import"), ("override", "1")],
    )
    .expect(200, "2");
    import(&emu, &t, "event", &events, &[("action", "import")]).expect(200, "16");
    import(&emu, &t, "formEventMapping", &fem, &[("action", "import")]).expect(200, "44");
    assert_eq!(arm_list(&emu), [(1, "Drug A".to_owned()), (2, "Drug B".to_owned())]);
    let names = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|e| e["unique_event_name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&json_of(&emu, &t, "event")), names(&events), "unique event names kept");
    assert_eq!(json_of(&emu, &t, "formEventMapping"), fem);
}

/// REDCap derives a unique event name from the first 18 characters of the label's slug: the
/// recorded project XML of PyCap's long project has "Deadline to opt out of study" as
/// `deadline_to_opt_ou_arm_2` and "Deadline to return feedback" as `deadline_to_return_arm_2`;
/// PyCap's `test_events_import` makes "XYZ" in arm 2 `xyz_arm_2`.
#[test]
fn unique_event_names_follow_the_truncation_rule() {
    let emu = start(&["pycap-test_long_project.xml"]);
    let t = admin(&emu);
    let rows = json!([
        {"event_name": "XYZ", "arm_num": "2"},
        {"event_name": "Deadline to opt out of study again", "arm_num": "1"},
        {"event_name": "Deadline to return feedback", "arm_num": "1"},
    ]);
    import(&emu, &t, "event", &rows, &[("action", "import")]).expect(200, "3");
    let names: Vec<String> = json_of(&emu, &t, "event")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["unique_event_name"].as_str().unwrap().to_owned())
        .collect();
    for n in ["xyz_arm_2", "deadline_to_opt_ou_arm_1", "deadline_to_return_arm_1"] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
}
