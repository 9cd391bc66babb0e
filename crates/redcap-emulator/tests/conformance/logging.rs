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

/// Export PDF and the survey methods are logged too. REDCap logs its API exports (REDCapR's
/// recorded log: action `Manage/Design`, details `Export … (API)`); the texts of these methods'
/// entries are not recorded (UNVERIFIED), so the emulator writes them in that style: survey
/// methods and blank PDFs as `Manage/Design` (`Export survey link (API) record = '1',
/// instrument = '…'`), a PDF of records' data as `Data export (API)`, like Export Records. The
/// record is named in the details, never in `record`: dataset sync takes a line with a record
/// for a change of its data (redcap-dataset `log_change`).
#[test]
fn pdf_and_survey_methods_are_logged() {
    let emu = start(&["redcapr-survey.xml", "pycap-test_long_project.xml"]);
    let pids = emu.project_ids();
    let t = emu.token(pids[0], "admin").unwrap();
    let pmq = "participant_morale_questionnaire";
    for content in ["surveyLink", "surveyAccessCode", "surveyReturnCode"] {
        let r = post(&emu.url(), &[("token", &t), ("content", content), ("record", "1"), ("instrument", pmq)]);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = post(&emu.url(), &[("token", &t), ("content", "participantList"), ("instrument", pmq), ("format", "json")]);
    assert_eq!(r.status, 200);
    for extra in [&[][..], &[("record", "2"), ("instrument", pmq)][..], &[("allRecords", "")][..]] {
        let mut f = vec![("token", t.as_str()), ("content", "pdf")];
        f.extend_from_slice(extra);
        assert_eq!(post(&emu.url(), &f).status, 200);
    }
    let entries = log(&emu, &t);
    let rows: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["details"].as_str().unwrap(), e["record"].as_str().unwrap_or("")))
        .collect();
    let q = format!("instrument = '{pmq}'");
    for want in [
        ("Manage/Design", format!("Export survey link (API) record = '1', {q}"), ""),
        ("Manage/Design", format!("Export survey access code (API) record = '1', {q}"), ""),
        ("Manage/Design", format!("Export survey return code (API) record = '1', {q}"), ""),
        ("Manage/Design", format!("Export survey participant list (API) {q}"), ""),
        ("Manage/Design", "Export PDF (API)".to_owned(), ""),
        ("Data export (API)", format!("Export PDF (API) record = '2' {q}"), ""),
        ("Data export (API)", "Export PDF (API) all records".to_owned(), ""),
    ] {
        assert!(rows.contains(&(want.0, want.1.as_str(), want.2)), "{want:?} in {rows:?}");
    }
    let long = emu.token(pids[1], "admin").unwrap();
    let r = post(&emu.url(), &[("token", &long), ("content", "surveyQueueLink"), ("record", "1")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let entries = log(&emu, &long);
    assert!(
        entries.iter().any(|e| e["details"] == "Export survey queue link (API) record = '1'" && e["record"] == ""),
        "{entries:?}"
    );
}
