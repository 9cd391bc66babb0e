//! Export PDF (reference §3.4; API help: exp_instr_pdf; KB RC-API-15): a real PDF, read back
//! with lopdf's text extraction, holding the instruments' labels and the records' values.

use redcap_emulator::{DataExport, Rights, RunningEmulator, User};

use crate::common::*;

fn pdf(emu: &RunningEmulator, token: &str, extra: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", token), ("content", "pdf")];
    f.extend_from_slice(extra);
    post(&emu.url(), &f)
}

/// The text of every page, as a PDF reader extracts it.
#[track_caller]
fn text(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.starts_with(b"%PDF-"), "a PDF");
    let doc = lopdf::Document::load_mem(&r.body).expect("lopdf reads the PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).expect("text extracts")
}

fn pages(r: &Resp) -> usize {
    lopdf::Document::load_mem(&r.body).unwrap().get_pages().len()
}

/// Without `record` the PDF holds blank forms (reference §3.4): labels, section headers and
/// every choice label, no data.
#[test]
fn blank_instruments() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let all = text(&pdf(&emu, &t, &[]));
    // The fixture's instrument labels are their names.
    for label in ["demographics", "health", "race_and_ethnicity", "Contact Information", "First Name", "Gender"] {
        assert!(all.contains(label), "{label} in {all}");
    }
    for choice in ["Female", "Male", "American Indian/Alaska Native", "Hispanic or Latino", "Incomplete"] {
        assert!(all.contains(choice), "{choice}");
    }
    assert!(!all.contains("Nutmeg"), "blank forms hold no data");
    let one = pdf(&emu, &t, &[("instrument", "health")]);
    let health = text(&one);
    assert!(health.contains("health") && health.contains("General Comments") && health.contains("Weight"), "{health}");
    assert!(!health.contains("First Name"), "only the instrument asked for");
    assert_eq!(pages(&one), 1);
}

/// One record: each instrument's labels with the record's values, choice fields by their
/// labels, the file field by its file name.
#[test]
fn one_record() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let r = pdf(&emu, &t, &[("record", "1")]);
    let all = text(&r);
    for want in ["Study ID: 1", "First Name", "Nutmeg", "Nutmouse", "nutty@mouse.com", "204.1", "mugshot-1.jpg"] {
        assert!(all.contains(want), "{want} in {all}");
    }
    // sex = 0 is "Female": chosen is marked, the other option still listed.
    assert!(all.contains("(X) Female") && all.contains("( ) Male"), "{all}");
    // race___5 checked: White.
    assert!(all.contains("[X] White") && all.contains("[ ] Asian"), "{all}");
    let other = text(&pdf(&emu, &t, &[("record", "2")]));
    assert!(other.contains("Study ID: 2") && !other.contains("Nutmeg"), "only the record asked for");
    assert_eq!(pages(&r), 3, "one page per instrument");
}

/// `compactDisplay` leaves out fields without data and unselected choices (API help:
/// exp_instr_pdf).
#[test]
fn compact_display() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let r = call_import(&emu, &t, r#"[{"record_id":"9","name_first":"Solo","sex":"1"}]"#);
    assert_eq!(r, "{\"count\":1}");
    let full = text(&pdf(&emu, &t, &[("record", "9"), ("instrument", "demographics")]));
    assert!(full.contains("Last Name") && full.contains("( ) Female") && full.contains("(X) Male"));
    let compact = text(&pdf(&emu, &t, &[("record", "9"), ("instrument", "demographics"), ("compactDisplay", "true")]));
    assert!(compact.contains("First Name") && compact.contains("Solo") && compact.contains("(X) Male"), "{compact}");
    assert!(!compact.contains("Last Name"), "an empty field is left out: {compact}");
    assert!(!compact.contains("Female"), "an unselected choice is left out: {compact}");
}

fn call_import(emu: &RunningEmulator, t: &str, data: &str) -> String {
    let r = post(&emu.url(), &[("token", t), ("content", "record"), ("format", "json"), ("data", data)]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// `allRecords` is switched on by its mere presence, whatever its value, and then `record`,
/// `event` and `instrument` are ignored (PHPCap `processAllRecordsArgument`; KB RC-API-15);
/// the old spelling `allrecords` works too (PyCap API changelog 6.4.3). A DAG user gets only
/// their DAG's records.
#[test]
fn all_records() {
    let emu = start(&["redcapr-simple.xml"]);
    let pid = emu.project_ids()[0];
    let t = admin(&emu);
    for flag in [("allRecords", "true"), ("allRecords", "false"), ("allrecords", "")] {
        let all = text(&pdf(&emu, &t, &[flag, ("record", "1"), ("instrument", "health")]));
        for who in ["Study ID: 1", "Study ID: 2", "Study ID: 3", "Study ID: 4", "Study ID: 5"] {
            assert!(all.contains(who), "{flag:?}: {who}");
        }
        assert!(all.contains("First Name"), "every instrument despite instrument=health");
    }
    let site = emu.add_user(pid, User::new("site2").dag("dag_2")).unwrap();
    let mine = text(&pdf(&emu, &site, &[("allRecords", "")]));
    assert!(mine.contains("Study ID: 5") && !mine.contains("Study ID: 1"), "{mine}");
    pdf(&emu, &site, &[("record", "1"), ("returnFormat", "csv")]).expect(400, "ERROR: The record '1' does not exist");
}

/// Longitudinal projects: `event` picks one event's instruments and the event is named on
/// the page; an instrument not designated for the event is refused.
#[test]
fn longitudinal_event() {
    let emu = start(&["redcapr-longitudinal.xml"]);
    let t = admin(&emu);
    let ids =
        post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json"), ("fields", "study_id")]).json();
    let first = ids[0]["study_id"].as_str().unwrap().to_owned();
    let r = pdf(&emu, &t, &[("record", &first), ("event", "enrollment_arm_1")]);
    let one = text(&r);
    assert!(one.contains("Event: Enrollment"), "{one}");
    assert!(!one.contains("Event: Dose 1"), "only the event asked for");
    let every = text(&pdf(&emu, &t, &[("record", &first)]));
    assert!(every.contains("Event: Enrollment") && every.contains("Event: Dose 1"), "{every}");
    let blank = text(&pdf(&emu, &t, &[("event", "dose_1_arm_1")]));
    assert!(blank.contains("Visit Lab Data") || blank.contains("Patient Morale Questionnaire"), "{blank}");
    assert!(!blank.contains("Demographics"), "blank forms of that event only: {blank}");
    pdf(
        &emu,
        &t,
        &[("record", &first), ("event", "dose_1_arm_1"), ("instrument", "demographics"), ("returnFormat", "json")],
    )
    .expect(
        400,
        "{\"error\":\"The instrument \\\"demographics\\\" is not designated for the event \\\"dose_1_arm_1\\\"\"}",
    );
    pdf(&emu, &t, &[("event", "nowhere"), ("returnFormat", "json")])
        .expect(400, "{\"error\":\"The value of the parameter \\\"event\\\" is not valid: 'nowhere'\"}");
}

/// A repeating instrument: `repeat_instance` picks the instance (default 1, API help), named on
/// the page; every instance is in an all-records PDF.
#[test]
fn repeat_instances() {
    let emu = start(&["redcapr-repeating-instruments.xml"]);
    let t = admin(&emu);
    let second = text(&pdf(&emu, &t, &[("record", "1"), ("instrument", "bp"), ("repeat_instance", "2")]));
    assert!(second.contains("Instance: 2") && second.contains("111") && !second.contains("110"), "{second}");
    let first = text(&pdf(&emu, &t, &[("record", "1"), ("instrument", "bp")]));
    assert!(first.contains("Instance: 1") && first.contains("110") && !first.contains("111"), "{first}");
    let all = text(&pdf(&emu, &t, &[("allRecords", "1")]));
    for v in ["110", "111", "112", "114"] {
        assert!(all.contains(v), "{v}");
    }
}

/// Headers like a downloaded file's (reference §5.5): `Content-Type: application/pdf;
/// name="…pdf"`, and Content-Disposition (on by default).
#[test]
fn headers_name_the_file() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let r = pdf(&emu, &t, &[("record", "1"), ("instrument", "health")]);
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap();
    assert!(ct.starts_with("application/pdf; name=\"") && ct.ends_with(".pdf\""), "{ct}");
    assert!(ct.ends_with("; name=\"REDCapR_simple_health_1.pdf\""), "{ct}");
    let cd = r.header("content-disposition").unwrap();
    assert!(cd.starts_with("attachment; filename=\"") && cd.ends_with(".pdf\""), "{cd}");
    assert_eq!(r.header("content-length").unwrap(), r.body.len().to_string());
}

/// API Export and a data export right are needed; values of identifier fields are left out
/// under a de-identified export right (data-export rights apply: API help exp_instr_pdf).
#[test]
fn rights() {
    let emu = start(&["redcapr-simple.xml"]);
    let pid = emu.project_ids()[0];
    let no_api = emu.add_user(pid, User::new("noapi").rights(Rights { api_export: false, ..Rights::full() })).unwrap();
    pdf(&emu, &no_api, &[("returnFormat", "json")])
        .expect(403, "{\"error\":\"You do not have API Export privileges\"}");
    let none = emu
        .add_user(pid, User::new("none").rights(Rights { data_export: DataExport::NoAccess, ..Rights::full() }))
        .unwrap();
    assert_eq!(pdf(&emu, &none, &[("record", "1")]).status, 403);
    let deid = emu
        .add_user(pid, User::new("deid").rights(Rights { data_export: DataExport::DeIdentified, ..Rights::full() }))
        .unwrap();
    let text = text(&pdf(&emu, &deid, &[("record", "1"), ("instrument", "demographics")]));
    assert!(text.contains("First Name") && !text.contains("Nutmeg"), "an identifier's value is left out: {text}");
    assert!(text.contains("(X) Female"), "{text}");
}

/// Per-instrument export rights (`forms_export`) apply to the PDF as to Export Records (API
/// help exp_instr_pdf: data-export rights applied; REDCapR#396 for the per-form rights): the
/// values of an instrument without export rights are left out, its labels stay.
#[test]
fn per_form_export_rights() {
    let emu = start(&["redcapr-simple.xml"]);
    let pid = emu.project_ids()[0];
    let rights = Rights { forms_export: vec![("health".into(), 0), ("demographics".into(), 1)], ..Rights::full() };
    let limited = emu.add_user(pid, User::new("limited").rights(rights)).unwrap();
    let all = text(&pdf(&emu, &limited, &[("record", "1")]));
    assert!(all.contains("Nutmeg") && all.contains("General Comments"), "{all}");
    for gone in ["Character in a book", "204.1", "mugshot-1.jpg"] {
        assert!(!all.contains(gone), "{gone}: a value of the instrument without export rights, in {all}");
    }
}

/// Bad parameters are 400s.
#[test]
fn bad_parameters() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    pdf(&emu, &t, &[("record", "nope"), ("returnFormat", "csv")])
        .expect(400, "ERROR: The record 'nope' does not exist");
    pdf(&emu, &t, &[("instrument", "nope"), ("returnFormat", "csv")])
        .expect(400, "ERROR: The value of the parameter \"instrument\" is not valid: 'nope'");
    pdf(&emu, &t, &[("record", "1"), ("repeat_instance", "x"), ("returnFormat", "csv")])
        .expect(400, "ERROR: The value of the parameter \"repeat_instance\" is not valid");
}
