//! Empty answers: exports that match nothing, and exports of structure a project does not
//! have. The classic project's arms, events and form/event mappings (400, REDCapR's arm and
//! event tests) and a project without repeating setup (400) are in `meta.rs`.

use crate::common::*;

fn call(emu: &redcap_emulator::RunningEmulator, t: &str, fields: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", t)];
    f.extend_from_slice(fields);
    post(&emu.url(), &f)
}

/// An export that matches nothing is a success with no rows, never an error: REDCapR returns an
/// empty dataset for a date filter in the future (REDCapR issue #452, PR #453 "return empty
/// dataset"), PHPCap's integration tests get no rows for a future `dateRangeBegin` (reference
/// §4.4), and a project without records exports nothing (PyCap PR #118). JSON is `[]`, XML an
/// empty `<records>`, for flat and EAV exports, for a filter, unknown records, a future date
/// range and a project without records alike. CSV is the header line alone (reference §8 #29).
/// UNVERIFIED, and the evidence disagrees: PyCap PR #118 met a CSV body with "no columns and no
/// rows" for a new project, and REDCapR issue #624 reports REDCap 17.4.1 omitting the header
/// of empty sets; clients must accept both (an empty body and a header alone). Export Logging
/// and the File Repository listing answer the same way when nothing matches.
#[test]
fn exports_that_match_nothing() {
    let emu = start(&["redcapr-simple.xml", "redcapr-empty-rows.xml"]);
    let pids = emu.project_ids();
    let t = emu.token(pids[0], "admin").unwrap();
    let header = "record_id,name_first,name_last,address,telephone,email,dob,age,sex,demographics_complete,height,weight,bmi,comments,mugshot,health_complete,race___1,race___2,race___3,race___4,race___5,race___6,ethnicity,interpreter_needed,race_and_ethnicity_complete\n";
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<records>\n</records>\n";
    for nothing in [
        ("filterLogic", "[age] > 1000"),
        ("records[0]", "no-such-record"),
        ("dateRangeBegin", "2999-01-01 00:00:00"),
        ("dateRangeEnd", "1999-01-01 00:00:00"),
    ] {
        let export = |format: &str, ty: &str| {
            call(&emu, &t, &[("content", "record"), ("format", format), ("type", ty), nothing])
        };
        export("json", "flat").expect(200, "[]");
        export("json", "eav").expect(200, "[]");
        export("csv", "flat").expect(200, header);
        export("csv", "eav").expect(200, "record,field_name,value\n");
        export("xml", "flat").expect(200, xml);
        let odm = export("odm", "flat");
        assert_eq!(odm.status, 200);
        assert!(odm.text().contains("<ClinicalData") && !odm.text().contains("<SubjectData"), "{}", odm.text());
    }
    let empty = emu.token(pids[1], "admin").unwrap();
    let csv = call(&emu, &empty, &[("content", "record"), ("format", "csv")]);
    assert_eq!((csv.status, csv.text().lines().count()), (200, 1), "a header, no rows: {}", csv.text());
    call(&emu, &empty, &[("content", "record"), ("format", "json")]).expect(200, "[]");
    call(&emu, &empty, &[("content", "record"), ("format", "xml")]).expect(200, xml);
    // Other lists with nothing in them.
    call(&emu, &t, &[("content", "log"), ("format", "json"), ("logtype", "lock_record")]).expect(200, "[]");
    call(&emu, &t, &[("content", "log"), ("format", "csv"), ("logtype", "lock_record")])
        .expect(200, "timestamp,username,action,details,record\n");
    call(&emu, &t, &[("content", "fileRepository"), ("action", "list"), ("format", "json")]).expect(200, "[]");
}

/// Repeating setup a project has, and then does not: PHPCap's RepeatingTest exports its
/// repeatable-survey project's one repeating instrument (`count($result) == 1`); redcapAPI's
/// "Import and Export Repeating Instrument Settings" test backs its setup out by importing an
/// empty one ("Rows imported: 0"), after which nothing repeats. The emulator then answers the
/// export as for any project without repeating setup, REDCapR's recorded 400 (REDCapR
/// test-repeating-read "no repeating": `ERROR: You cannot export repeating instruments and
/// events because the project does not contain any repeating instruments and events`), and
/// Export Project Info says `has_repeating_instruments_or_events: 0`.
#[test]
fn repeating_setup_removed_by_an_empty_import() {
    let emu = start(&["phpcap-PHPCapRepeatableSurvey.xml"]);
    let t = admin(&emu);
    let export = |format: &str| call(&emu, &t, &[("content", "repeatingFormsEvents"), ("format", format)]);
    let rows = export("json").json();
    assert_eq!(rows, serde_json::json!([{"form_name": "weight", "custom_form_label": "[weight_date] [weight_time]"}]));
    let info = || call(&emu, &t, &[("content", "project"), ("format", "json")]).json();
    assert_eq!(info()["has_repeating_instruments_or_events"], 1);
    call(&emu, &t, &[("content", "repeatingFormsEvents"), ("format", "json"), ("data", "[]")]).expect(200, "0");
    export("csv").expect(
        400,
        "ERROR: You cannot export repeating instruments and events because the project does not contain any repeating instruments and events",
    );
    assert_eq!(info()["has_repeating_instruments_or_events"], 0);
    // A header without rows is an empty setup too.
    call(
        &emu,
        &t,
        &[("content", "repeatingFormsEvents"), ("format", "csv"), ("data", "form_name,custom_form_label\nweight,\n")],
    )
    .expect(200, "1");
    call(
        &emu,
        &t,
        &[("content", "repeatingFormsEvents"), ("format", "csv"), ("data", "form_name,custom_form_label\n")],
    )
    .expect(200, "0");
    assert_eq!(export("json").status, 400);
}
