//! The import check, on a small hand-written longitudinal project with a repeating instrument,
//! a repeating event, checkboxes, choices, validations with minimums and maximums, missing-data
//! codes and DAGs: each mistake it should catch, and clean rows that it must leave alone.

use redcap_core::{DateFormat, Row};
use redcap_dataset::ProjectSchema;
use redcap_dataset::check::{CheckOptions, Checker, ProblemKind, Severity};

fn meta(name: &str, form: &str, ty: &str, validation: &str, choices: &str, min: &str, max: &str) -> String {
    format!(
        r#"{{"field_name":"{name}","form_name":"{form}","field_type":"{ty}","field_label":"Label of {name}","select_choices_or_calculations":"{choices}","text_validation_type_or_show_slider_number":"{validation}","text_validation_min":"{min}","text_validation_max":"{max}"}}"#
    )
}

/// `enrol` in `baseline_arm_1`, `meds` a repeating instrument there, `visit` in the repeating
/// event `followup_arm_1`.
fn schema() -> ProjectSchema {
    let metadata = [
        meta("study_id", "enrol", "text", "", "", "", ""),
        meta("dob", "enrol", "text", "date_ymd", "", "1900-01-01", "today"),
        meta("seen_at", "enrol", "text", "datetime_ymd", "", "", ""),
        meta("wake", "enrol", "text", "time", "", "", ""),
        meta("age", "enrol", "text", "integer", "", "0", "120"),
        meta("height", "enrol", "text", "number_1dp", "", "", ""),
        meta("email", "enrol", "text", "email", "", "", ""),
        meta("consent", "enrol", "yesno", "", "", "", ""),
        meta("sex", "enrol", "radio", "", "1, Female | 2, Male", "", ""),
        meta("race", "enrol", "checkbox", "", "1, White | -1, Other | AB, Aboriginal", "", ""),
        meta("intro", "enrol", "descriptive", "", "", "", ""),
        meta("visit_date", "visit", "text", "date_ymd", "", "", ""),
        meta("drug", "meds", "dropdown", "", "a1, Aspirin | b2, Brufen", "", ""),
    ]
    .join(",");
    let json = format!(
        r#"{{
        "redcap_version": "14.0.0",
        "project_info": {{"project_id": 7, "is_longitudinal": 1, "missing_data_codes": "UNK, Unknown"}},
        "metadata": [{metadata}],
        "export_field_names": [
            {{"original_field_name":"race","choice_value":"1","export_field_name":"race___1"}},
            {{"original_field_name":"race","choice_value":"-1","export_field_name":"race____1"}},
            {{"original_field_name":"race","choice_value":"AB","export_field_name":"race___ab"}}
        ],
        "instruments": [{{"instrument_name":"enrol","instrument_label":"Enrolment"}},
                        {{"instrument_name":"visit","instrument_label":"Visit"}},
                        {{"instrument_name":"meds","instrument_label":"Medication"}}],
        "events": [{{"unique_event_name":"baseline_arm_1"}}, {{"unique_event_name":"followup_arm_1"}}],
        "mappings": [{{"unique_event_name":"baseline_arm_1","form":"enrol"}},
                     {{"unique_event_name":"baseline_arm_1","form":"meds"}},
                     {{"unique_event_name":"followup_arm_1","form":"visit"}}],
        "repeating": [{{"event_name":"baseline_arm_1","form_name":"meds"}},
                      {{"event_name":"followup_arm_1","form_name":""}}],
        "arms": [],
        "dags": [{{"unique_group_name":"north"}}]
    }}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn rows(json: &str) -> Vec<Row> {
    serde_json::from_str(json).unwrap()
}

fn checker() -> Checker {
    Checker::new(&schema(), CheckOptions::default().now("2025-06-30 12:00:00")).unwrap()
}

/// The kinds found in `json`'s rows, as (row, field, kind).
fn found(json: &str) -> Vec<(usize, String, ProblemKind)> {
    checker().check_flat(&rows(json)).into_iter().map(|p| (p.row, p.field, p.kind)).collect()
}

#[test]
fn clean_rows_have_no_problems() {
    let clean = r#"[
        {"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"1980-02-29","seen_at":"2024-01-02 13:45",
         "wake":"07:30","age":"44","height":"170.5","email":"ada@example.org","consent":"1","sex":"2",
         "race___1":"1","race____1":"0","race___ab":"","enrol_complete":"2","redcap_data_access_group":"north",
         "redcap_repeat_instrument":"","redcap_repeat_instance":""},
        {"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"meds",
         "redcap_repeat_instance":"2","drug":"b2","meds_complete":"0"},
        {"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"meds",
         "redcap_repeat_instance":"new","drug":"a1"},
        {"study_id":"1","redcap_event_name":"followup_arm_1","redcap_repeat_instance":1,"visit_date":"2024-03-01"},
        {"study_id":"2","redcap_event_name":"baseline_arm_1","age":"UNK","dob":"UNK"}
    ]"#;
    assert_eq!(found(clean), vec![]);
}

#[test]
fn each_mistake_is_caught_with_its_row_record_and_field() {
    let cases: &[(&str, &str, ProblemKind)] = &[
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","agee":"4"}"#, "agee", ProblemKind::UnknownField),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","race___2":"1"}"#,
            "race___2",
            ProblemKind::UnknownField,
        ),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","race":"1"}"#, "race", ProblemKind::UnknownField),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","intro":"x"}"#, "intro", ProblemKind::UnknownField),
        // PyCap#152: labels where codes are expected.
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","sex":"Male"}"#, "sex", ProblemKind::Label),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","consent":"Yes"}"#, "consent", ProblemKind::Label),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","enrol_complete":"Complete"}"#,
            "enrol_complete",
            ProblemKind::Label,
        ),
        // redcapAPI#18: checkbox values other than 0/1.
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","race___ab":"AB"}"#,
            "race___ab",
            ProblemKind::CheckboxValue,
        ),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","race___1":"2"}"#,
            "race___1",
            ProblemKind::CheckboxValue,
        ),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","sex":"3"}"#, "sex", ProblemKind::NotAChoice),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","consent":"2"}"#, "consent", ProblemKind::NotAChoice),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","enrol_complete":"3"}"#,
            "enrol_complete",
            ProblemKind::NotAChoice,
        ),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"31/12/1980"}"#, "dob", ProblemKind::Format),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"1981-02-29"}"#, "dob", ProblemKind::Format),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","seen_at":"2024-01-02 13:45:10"}"#,
            "seen_at",
            ProblemKind::Format,
        ),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","wake":"7.30"}"#, "wake", ProblemKind::Format),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","age":"4.5"}"#, "age", ProblemKind::Format),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","height":"170.55"}"#, "height", ProblemKind::Format),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","email":"ada@"}"#, "email", ProblemKind::Format),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","age":"130"}"#, "age", ProblemKind::OutOfRange),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"1899-12-31"}"#, "dob", ProblemKind::OutOfRange),
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"2025-07-01"}"#, "dob", ProblemKind::OutOfRange),
        // PyCap#142: an instrument not designated for the event.
        (
            r#"{"study_id":"1","redcap_event_name":"followup_arm_1","redcap_repeat_instance":"1","age":"4"}"#,
            "age",
            ProblemKind::NotDesignated,
        ),
        // PyCap#154: repeating rows without their instrument and instance, or with them on a
        // non-repeating instrument.
        (r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","drug":"a1"}"#, "drug", ProblemKind::RepeatMissing),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"meds","drug":"a1"}"#,
            "redcap_repeat_instance",
            ProblemKind::RepeatMissing,
        ),
        (
            r#"{"study_id":"1","redcap_event_name":"followup_arm_1","visit_date":"2024-01-01"}"#,
            "visit_date",
            ProblemKind::RepeatMissing,
        ),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"enrol","redcap_repeat_instance":"1","age":"4"}"#,
            "redcap_repeat_instrument",
            ProblemKind::NotRepeating,
        ),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instance":"1","age":"4"}"#,
            "redcap_repeat_instance",
            ProblemKind::NotRepeating,
        ),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"meds","redcap_repeat_instance":"x"}"#,
            "redcap_repeat_instance",
            ProblemKind::Format,
        ),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"meds","redcap_repeat_instance":"1","age":"4"}"#,
            "age",
            ProblemKind::OtherInstrument,
        ),
        (r#"{"study_id":"1","age":"4"}"#, "redcap_event_name", ProblemKind::EventMissing),
        (r#"{"study_id":"1","redcap_event_name":"week_9","age":"4"}"#, "redcap_event_name", ProblemKind::UnknownEvent),
        (
            r#"{"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_data_access_group":"south"}"#,
            "redcap_data_access_group",
            ProblemKind::UnknownDag,
        ),
        (r#"{"study_id":"","redcap_event_name":"baseline_arm_1","age":"4"}"#, "study_id", ProblemKind::NoRecordId),
    ];
    for (i, (row, field, kind)) in cases.iter().enumerate() {
        // The mistake is the third row, after two clean ones.
        let json = format!(
            r#"[{{"study_id":"9","redcap_event_name":"baseline_arm_1","age":"1"}},
                {{"study_id":"9","redcap_event_name":"baseline_arm_1","sex":"1"}}, {row}]"#
        );
        let problems = checker().check_flat(&rows(&json));
        assert_eq!(problems.len(), 1, "case {i} {row}: {problems:#?}");
        let p = &problems[0];
        assert_eq!((p.row, p.field.as_str(), p.kind), (3, *field, *kind), "case {i} {row}: {p:#?}");
        assert_eq!(p.record, if *kind == ProblemKind::NoRecordId { "" } else { "1" });
        assert!(!p.reason.is_empty());
        let want = if *kind == ProblemKind::OutOfRange { Severity::Warning } else { Severity::Error };
        assert_eq!(p.severity, want, "case {i}");
    }
}

#[test]
fn reasons_say_what_was_meant() {
    let p =
        &checker().check_flat(&rows(r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","sex":" male "}]"#))[0];
    assert_eq!(p.kind, ProblemKind::Label);
    assert!(p.reason.contains("label of code `2`"), "{}", p.reason);
    assert_eq!(p.event.as_deref(), Some("baseline_arm_1"));
    let p =
        &checker().check_flat(&rows(r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","race___2":"1"}]"#))[0];
    assert!(p.reason.contains("1, -1, AB"), "{}", p.reason);
    let p = &checker().check_flat(&rows(r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","Age":"1"}]"#))[0];
    assert!(p.reason.contains("did you mean `age`"), "{}", p.reason);
    let p = &checker().check_flat(&rows(r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","race":"1"}]"#))[0];
    assert!(p.reason.contains("race___1, race____1, race___ab"), "{}", p.reason);
}

#[test]
fn dates_follow_the_import_date_format() {
    let mdy = Checker::new(&schema(), CheckOptions::default().date_format(DateFormat::Mdy)).unwrap();
    let ok = rows(
        r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"2/29/1980","seen_at":"12/31/2024 23:59"}]"#,
    );
    assert_eq!(mdy.check_flat(&ok), vec![]);
    let bad = rows(r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"1980-02-29"}]"#);
    assert_eq!(mdy.check_flat(&bad)[0].kind, ProblemKind::Format);
    // Without a known "today", a `today` bound is not checked.
    let no_today = Checker::new(&schema(), CheckOptions::default()).unwrap();
    let future = rows(r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"2999-01-01"}]"#);
    assert_eq!(no_today.check_flat(&future), vec![]);
}

#[test]
fn eav_rows_are_checked_cell_by_cell() {
    let eav = rows(
        r#"[{"record":"1","redcap_event_name":"baseline_arm_1","field_name":"age","value":"44"},
            {"record":"1","redcap_event_name":"baseline_arm_1","field_name":"race___1","value":"yes"},
            {"record":"1","redcap_event_name":"baseline_arm_1","field_name":"drug","value":"a1"},
            {"record":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"meds","redcap_repeat_instance":"1","field_name":"drug","value":"Aspirin"}]"#,
    );
    let got: Vec<(usize, ProblemKind)> = checker().check_eav(&eav).into_iter().map(|p| (p.row, p.kind)).collect();
    assert_eq!(got, vec![(2, ProblemKind::CheckboxValue), (3, ProblemKind::RepeatMissing), (4, ProblemKind::Label)]);
}

#[test]
fn a_classic_project_takes_no_event() {
    let mut s = schema();
    s.project_info.insert("is_longitudinal".into(), "0".into());
    s.mappings.clear();
    s.events.clear();
    s.repeating = serde_json::from_str(r#"[{"event_name":"","form_name":"meds"}]"#).unwrap();
    let c = Checker::new(&s, CheckOptions::default()).unwrap();
    let got: Vec<ProblemKind> = c
        .check_flat(&rows(
            r#"[{"study_id":"1","age":"4"},
                {"study_id":"1","redcap_repeat_instrument":"meds","redcap_repeat_instance":"1","drug":"a1"},
                {"study_id":"1","redcap_event_name":"baseline_arm_1","age":"4"},
                {"study_id":"1","drug":"a1"}]"#,
        ))
        .into_iter()
        .map(|p| p.kind)
        .collect();
    assert_eq!(got, vec![ProblemKind::UnknownEvent, ProblemKind::RepeatMissing]);
}

#[test]
fn the_diff_names_each_changed_cell_and_what_overwrite_blanks() {
    use redcap_dataset::diff::{ChangeKind, diff};
    let c = checker();
    let stored = rows(
        r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"","redcap_repeat_instance":"",
             "age":"44","sex":"1","race___1":"1","race____1":"0","dob":"1980-02-29","enrol_complete":"0"},
            {"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"meds","redcap_repeat_instance":1,
             "age":"","drug":"a1"}]"#,
    );
    let import = rows(
        r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","age":"45","sex":"","race___1":"","race____1":"1",
             "dob":"1980-02-29","enrol_complete":"0"},
            {"study_id":"1","redcap_event_name":"baseline_arm_1","redcap_repeat_instrument":"meds","redcap_repeat_instance":"1","drug":"a1"},
            {"study_id":"2","redcap_event_name":"baseline_arm_1","age":"3"}]"#,
    );
    let got = |d: &redcap_dataset::diff::Diff| -> Vec<(usize, String, String, String, ChangeKind)> {
        d.changes.iter().map(|c| (c.row, c.field.clone(), c.old.clone(), c.new.clone(), c.kind)).collect()
    };
    let normal = diff(&c, &import, &stored, false);
    let s = |x: &str| x.to_owned();
    assert_eq!(
        got(&normal),
        vec![
            (1, s("age"), s("44"), s("45"), ChangeKind::Changed),
            (1, s("race____1"), s("0"), s("1"), ChangeKind::Added),
            (3, s("age"), s(""), s("3"), ChangeKind::Added),
        ]
    );
    assert_eq!(normal.new_records, 1);
    assert_eq!(normal.changed_rows.len(), 2, "the unchanged repeating row is left out");
    let slim = &normal.changed_rows[0];
    let keys: Vec<&str> = slim.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for k in ["study_id", "redcap_event_name", "age", "race____1"] {
        assert!(slim.contains_key(k), "{k} in {keys:?}");
    }
    let over = diff(&c, &import, &stored, true);
    assert_eq!(
        got(&over)[..4],
        [
            (1, s("age"), s("44"), s("45"), ChangeKind::Changed),
            (1, s("sex"), s("1"), s(""), ChangeKind::Blanked),
            (1, s("race___1"), s("1"), s("0"), ChangeKind::Changed),
            (1, s("race____1"), s("0"), s("1"), ChangeKind::Added),
        ]
    );
    // Dates in the import's format compare with REDCap's YYYY-MM-DD.
    let mdy = Checker::new(&schema(), CheckOptions::default().date_format(DateFormat::Mdy)).unwrap();
    let same_date = rows(r#"[{"study_id":"1","redcap_event_name":"baseline_arm_1","dob":"2/29/1980"}]"#);
    assert_eq!(diff(&mdy, &same_date, &stored, false).changes, vec![]);
}
