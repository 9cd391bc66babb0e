//! Export Logging: what REDCap writes to its log, as recorded.

use crate::common::*;
use serde_json::Value;

fn log(emu: &redcap_emulator::RunningEmulator, t: &str) -> Vec<Value> {
    let r = post(&emu.url(), &[("token", t), ("content", "log"), ("format", "json")]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

/// REDCapR's recorded Export Logging of its simple project (specific-redcapr/log-read/
/// 2024-10-11.R): the metadata-like exports are logged as action `Manage/Design` with details
/// `Export project information (API)`, `Export instruments (API)`, `Export DAGs (API)`,
/// `Export Logging (API)`; a record write has the record in `record`, the changed values as
/// `field = 'value'` in `details` with line breaks as spaces ("…a DAG assigned  So call up
/// Trudy…"), and minute-precision timestamps.
#[test]
fn exports_and_record_writes_are_logged_as_recorded() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let data = r#"[{"record_id":"5","comments":"assigned\n\nSo call up"}]"#;
    post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json"), ("data", data)])
        .expect(200, "{\"count\": 1}".replace(' ', "").as_str());
    for content in ["project", "instrument", "dag"] {
        assert_eq!(post(&emu.url(), &[("token", &t), ("content", content), ("format", "json")]).status, 200);
    }
    let first = log(&emu, &t);
    assert!(
        !first.iter().any(|e| e["details"] == "Export Logging (API)"),
        "an Export Logging call does not list itself"
    );
    let entries = log(&emu, &t);
    let details: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["action"].as_str().unwrap(), e["details"].as_str().unwrap())).collect();
    for d in
        ["Export project information (API)", "Export instruments (API)", "Export DAGs (API)", "Export Logging (API)"]
    {
        assert!(details.contains(&("Manage/Design", d)), "{d} in {details:?}");
    }
    let write = entries.iter().find(|e| e["record"] == "5").expect("the record write");
    assert_eq!(write["action"], "Update record (API) 5");
    assert_eq!(write["details"], "comments = 'assigned  So call up'");
    assert_eq!(write["username"], "admin");
    let ts = write["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 16, "YYYY-MM-DD HH:MM: {ts}");
    assert_eq!((&ts[4..5], &ts[10..11], &ts[13..14]), ("-", " ", ":"));
    // Newest first.
    assert_eq!(entries[0]["details"], "Export Logging (API)");
}
