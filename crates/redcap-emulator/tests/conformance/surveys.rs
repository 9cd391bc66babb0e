//! Surveys: links, access and return codes, the Survey Queue link and the participant list
//! (reference §2 rows 51–55, §3.10), on the survey fixtures: REDCapR's `survey` project
//! (classic, three surveys, e-mail field `email`), PyCap's long project (longitudinal, Survey
//! Queue on) and PyCap's doctest project (a repeating event).

use std::collections::BTreeMap;

use redcap_emulator::{Emulator, Rights, RunningEmulator, User};

use crate::common::*;

fn call(emu: &RunningEmulator, token: &str, content: &str, extra: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", token), ("content", content)];
    f.extend_from_slice(extra);
    post(&emu.url(), &f)
}

/// `http://127.0.0.1:<port>/`: the emulator's URL less `api/`.
fn base(emu: &RunningEmulator) -> String {
    emu.url().strip_suffix("api/").unwrap().to_owned()
}

fn alnum(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The `s=` hash of a survey link under `base`.
#[track_caller]
fn hash_of(link: &str, base: &str) -> String {
    let hash = link.strip_prefix(&format!("{base}surveys/?s=")).unwrap_or_else(|| panic!("not a survey link: {link}"));
    assert!(alnum(hash, 10), "REDCap's hashes are 10 letters and digits (REDCapR: ?s=8KuzSLMHf6): {hash}");
    hash.to_owned()
}

const PMQ: &str = "participant_morale_questionnaire";

/// REDCapR test-survey-link-export-oneshot.R: the link of record 1's survey is
/// `<REDCap base>/surveys/?s=<10 characters>`; the same request gives the same link; another
/// record or another survey has its own.
#[test]
fn survey_link_is_stable_per_participant_and_under_the_emulators_url() {
    let emu = start(&["redcapr-survey.xml"]);
    let t = admin(&emu);
    let link = |record: &str, form: &str| {
        let r = call(&emu, &t, "surveyLink", &[("record", record), ("instrument", form), ("returnFormat", "csv")]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    let b = base(&emu);
    let one = hash_of(&link("1", PMQ), &b);
    assert_eq!(hash_of(&link("1", PMQ), &b), one, "stable");
    let two = hash_of(&link("2", PMQ), &b);
    let other_form = hash_of(&link("1", "prescreening_survey"), &b);
    assert!(one != two && one != other_form && two != other_form);
}

/// Access code 9 characters, return code 8 characters (reference §2 rows 52 and 54), both
/// letters and digits (PHPCap SurveyTest::testExportSurveyReturnCode asserts ctype_alnum), stable.
#[test]
fn access_and_return_codes() {
    let emu = start(&["redcapr-survey.xml"]);
    let t = admin(&emu);
    let code = |content: &str, record: &str| {
        let r = call(&emu, &t, content, &[("record", record), ("instrument", PMQ)]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    let access = code("surveyAccessCode", "1");
    assert!(alnum(&access, 9), "{access}");
    let ret = code("surveyReturnCode", "1");
    assert!(alnum(&ret, 8), "{ret}");
    assert_eq!(code("surveyAccessCode", "1"), access);
    assert_eq!(code("surveyReturnCode", "1"), ret);
    assert_ne!(code("surveyAccessCode", "2"), access);
}

/// REDCapR test-survey-link-export-oneshot.R "Nonexistent Record ID": status 400 and, with
/// returnFormat=csv, the body `ERROR: The record '-1' does not exist`.
#[test]
fn unknown_record_is_refused_with_redcaps_text() {
    let emu = start(&["redcapr-survey.xml"]);
    let t = admin(&emu);
    for content in ["surveyLink", "surveyAccessCode", "surveyReturnCode"] {
        call(&emu, &t, content, &[("record", "-1"), ("instrument", PMQ), ("returnFormat", "csv")])
            .expect(400, "ERROR: The record '-1' does not exist");
    }
}

/// An instrument that is not a survey, an unknown instrument, a project without surveys and
/// missing parameters are 400s, never a link.
#[test]
fn not_a_survey_and_surveys_off() {
    let emu = start(&["redcapr-survey.xml", "redcapr-simple.xml"]);
    let pids = emu.project_ids();
    let t = emu.token(pids[0], "admin").unwrap();
    let json = ("returnFormat", "json");
    call(&emu, &t, "surveyLink", &[("record", "1"), ("instrument", "completion_data"), json]).expect(
        400,
        "{\"error\":\"The instrument \\\"completion_data\\\" is not enabled as a survey in this project\"}",
    );
    call(&emu, &t, "participantList", &[("instrument", "completion_data"), json]).expect(
        400,
        "{\"error\":\"The instrument \\\"completion_data\\\" is not enabled as a survey in this project\"}",
    );
    call(&emu, &t, "surveyLink", &[("record", "1"), ("instrument", "nope"), json])
        .expect(400, "{\"error\":\"The value of the parameter \\\"instrument\\\" is not valid: 'nope'\"}");
    call(&emu, &t, "surveyLink", &[("instrument", PMQ), json])
        .expect(400, "{\"error\":\"The parameter 'record' is missing\"}");
    call(&emu, &t, "surveyReturnCode", &[("record", "1"), json])
        .expect(400, "{\"error\":\"The parameter 'instrument' is missing\"}");
    let simple = emu.token(pids[1], "admin").unwrap();
    for content in ["surveyLink", "surveyAccessCode", "surveyReturnCode", "surveyQueueLink", "participantList"] {
        call(&emu, &simple, content, &[("record", "1"), ("instrument", "demographics"), json])
            .expect(400, "{\"error\":\"Surveys are not enabled in this project\"}");
    }
}

/// API Export and Manage Survey Participants are both needed (API help, quoted in the C#
/// client's doc comments); a DAG user sees only their DAG's records.
#[test]
fn rights_and_dags() {
    let emu = start(&["redcapr-survey.xml"]);
    let pid = emu.project_ids()[0];
    let t = admin(&emu);
    let no_export =
        emu.add_user(pid, User::new("noexport").rights(Rights { api_export: false, ..Rights::full() })).unwrap();
    let no_participants =
        emu.add_user(pid, User::new("noparts").rights(Rights { other: BTreeMap::new(), ..Rights::full() })).unwrap();
    let json = ("returnFormat", "json");
    for content in ["surveyLink", "surveyAccessCode", "surveyReturnCode", "surveyQueueLink", "participantList"] {
        call(&emu, &no_export, content, &[("record", "1"), ("instrument", PMQ), json])
            .expect(403, "{\"error\":\"You do not have API Export privileges\"}");
        call(&emu, &no_participants, content, &[("record", "1"), ("instrument", PMQ), json])
            .expect(403, "{\"error\":\"You do not have Manage Survey Participants privileges\"}");
    }
    // Put record 2 in a DAG; a user of another DAG cannot reach it, nor list it.
    call(&emu, &t, "dag", &[("action", "import"), ("format", "json"), ("data", r#"[{"data_access_group_name":"Site A","unique_group_name":""},{"data_access_group_name":"Site B","unique_group_name":""}]"#)])
        .expect(200, "2");
    let r = call(
        &emu,
        &t,
        "record",
        &[("format", "json"), ("data", r#"[{"participant_id":"2","redcap_data_access_group":"site_a"}]"#)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let site_b = emu.add_user(pid, User::new("siteb").dag("site_b")).unwrap();
    call(&emu, &site_b, "surveyLink", &[("record", "2"), ("instrument", PMQ), ("returnFormat", "csv")])
        .expect(400, "ERROR: The record '2' does not exist");
    let rows = call(&emu, &site_b, "participantList", &[("instrument", PMQ), ("format", "json")]).json();
    assert_eq!(rows, serde_json::json!([]));
    let site_a = emu.add_user(pid, User::new("sitea").dag("site_a")).unwrap();
    let rows = call(&emu, &site_a, "participantList", &[("instrument", PMQ), ("format", "json")]).json();
    let records: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["record"].as_str().unwrap()).collect();
    assert_eq!(records, ["2"]);
}

/// Longitudinal projects: `event` is required and must have the survey designated; a repeating
/// event (PyCap's doctest project repeats event_1_arm_1) has one link per instance, and
/// `repeat_instance` above 1 elsewhere is refused.
#[test]
fn events_and_instances() {
    let emu = start(&["pycap-test_long_project.xml", "pycap-doctest_project.xml"]);
    let pids = emu.project_ids();
    let long = emu.token(pids[0], "admin").unwrap();
    let json = ("returnFormat", "json");
    let rec = call(&emu, &long, "record", &[("format", "json"), ("fields", "study_id")]).json();
    let first = rec[0]["study_id"].as_str().unwrap().to_owned();
    call(&emu, &long, "surveyLink", &[("record", &first), ("instrument", "contact_info"), json]).expect(
        400,
        "{\"error\":\"The parameter 'event' is missing: a unique event name is required in longitudinal projects\"}",
    );
    call(
        &emu,
        &long,
        "surveyLink",
        &[("record", &first), ("instrument", "contact_info"), ("event", "dose_1_arm_1"), json],
    )
    .expect(
        400,
        "{\"error\":\"The instrument \\\"contact_info\\\" is not designated for the event \\\"dose_1_arm_1\\\"\"}",
    );
    call(&emu, &long, "surveyLink", &[("record", &first), ("instrument", "contact_info"), ("event", "nowhere"), json])
        .expect(400, "{\"error\":\"The value of the parameter \\\"event\\\" is not valid: 'nowhere'\"}");
    let ok = call(
        &emu,
        &long,
        "surveyLink",
        &[("record", &first), ("instrument", "contact_info"), ("event", "enrollment_arm_1"), json],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    hash_of(&ok.text(), &base(&emu));
    call(
        &emu,
        &long,
        "surveyLink",
        &[("record", &first), ("instrument", "contact_info"), ("event", "enrollment_arm_1"), ("repeat_instance", "2"), json],
    )
    .expect(
        400,
        "{\"error\":\"The parameter \\\"repeat_instance\\\" cannot be 2: the instrument \\\"contact_info\\\" does not repeat in this event\"}",
    );

    let doc = emu.token(pids[1], "admin").unwrap();
    let rec = call(&emu, &doc, "record", &[("format", "json"), ("fields", "record_id")]).json();
    let first = rec[0]["record_id"].as_str().unwrap().to_owned();
    let link = |instance: &str| {
        let r = call(
            &emu,
            &doc,
            "surveyLink",
            &[("record", &first), ("instrument", "form_1"), ("event", "event_1_arm_1"), ("repeat_instance", instance)],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        hash_of(&r.text(), &base(&emu))
    };
    let one = link("1");
    assert_eq!(link("1"), one);
    let three = link("3");
    assert_ne!(one, three);
    assert_eq!(link("3"), three);
    call(
        &emu,
        &doc,
        "surveyLink",
        &[("record", &first), ("instrument", "form_1"), ("event", "event_1_arm_1"), ("repeat_instance", "0"), json],
    )
    .expect(400, "{\"error\":\"The value of the parameter \\\"repeat_instance\\\" is not valid\"}");
}

/// The Survey Queue link is per record, `…/surveys/?sq=…` (reference §2 row 53), for a project
/// whose XML activates the queue (PyCap's long project: `redcap:SurveysQueue active="1"`).
#[test]
fn survey_queue_link() {
    let emu = start(&["pycap-test_long_project.xml", "redcapr-survey.xml"]);
    let pids = emu.project_ids();
    let long = emu.token(pids[0], "admin").unwrap();
    let rec = call(&emu, &long, "record", &[("format", "json"), ("fields", "study_id")]).json();
    let first = rec[0]["study_id"].as_str().unwrap().to_owned();
    let r = call(&emu, &long, "surveyQueueLink", &[("record", &first)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let link = r.text();
    let hash = link.strip_prefix(&format!("{}surveys/?sq=", base(&emu))).unwrap();
    assert!(alnum(hash, 10), "{link}");
    assert_eq!(call(&emu, &long, "surveyQueueLink", &[("record", &first)]).text(), link);
    call(&emu, &long, "surveyQueueLink", &[("record", "no-such"), ("returnFormat", "csv")])
        .expect(400, "ERROR: The record 'no-such' does not exist");
    let no_queue = emu.token(pids[1], "admin").unwrap();
    call(&emu, &no_queue, "surveyQueueLink", &[("record", "1"), ("returnFormat", "csv")])
        .expect(400, "ERROR: The Survey Queue is not enabled in this project");
}

/// Participant list columns as redcapAPI documents them (R/surveyMethods.R), e-mail from the
/// project's invitation e-mail field (`redcap:SurveyInvitationEmailField` = `email`), response
/// status 0/1/2 (reference §3.10) from the survey timestamps of REDCapR's survey fixture (record
/// 1's morale questionnaire is `[not completed]`, both pre-screening surveys are completed),
/// codes and links the same as the single-participant methods give. PHPCap's SurveyTest finds
/// its participant by `email` and `identifier`.
#[test]
fn participant_list() {
    let emu = start(&["redcapr-survey.xml"]);
    let t = admin(&emu);
    let rows = call(&emu, &t, "participantList", &[("instrument", PMQ), ("format", "json")]).json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let keys: Vec<&str> = rows[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "email",
            "email_occurrence",
            "identifier",
            "record",
            "invitation_sent_status",
            "invitation_send_time",
            "response_status",
            "survey_access_code",
            "survey_link",
            "survey_queue_link"
        ]
    );
    assert_eq!((rows[0]["record"].as_str(), rows[0]["email"].as_str()), (Some("1"), Some("aaa@bbb.com")));
    assert_eq!((rows[1]["record"].as_str(), rows[1]["email"].as_str()), (Some("2"), Some("ccc@ddd.com")));
    assert_eq!((rows[0]["response_status"].as_i64(), rows[1]["response_status"].as_i64()), (Some(1), Some(0)));
    assert_eq!(rows[0]["invitation_sent_status"].as_i64(), Some(0));
    assert_eq!(rows[0]["email_occurrence"].as_i64(), Some(1));
    assert_eq!(rows[0]["survey_queue_link"].as_str(), Some(""), "no queue in this project");
    let access = call(&emu, &t, "surveyAccessCode", &[("record", "1"), ("instrument", PMQ)]).text();
    let link = call(&emu, &t, "surveyLink", &[("record", "1"), ("instrument", PMQ)]).text();
    assert_eq!(rows[0]["survey_access_code"].as_str(), Some(access.as_str()));
    assert_eq!(rows[0]["survey_link"].as_str(), Some(link.as_str()));

    let pre = call(&emu, &t, "participantList", &[("instrument", "prescreening_survey"), ("format", "json")]).json();
    let status: Vec<i64> = pre.as_array().unwrap().iter().map(|r| r["response_status"].as_i64().unwrap()).collect();
    assert_eq!(status, [2, 2]);

    let csv = call(&emu, &t, "participantList", &[("instrument", PMQ), ("format", "csv")]).text();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "email,email_occurrence,identifier,record,invitation_sent_status,invitation_send_time,response_status,survey_access_code,survey_link,survey_queue_link"
        )
    );
    assert!(lines.next().unwrap().starts_with(&format!("aaa@bbb.com,1,,1,0,,1,{access},{link},")));
}

/// A missing `record` or `instrument` is answered with REDCap's recorded text, before any
/// check of the project's surveys (AndrewPoppe/ApiUserRights tests/playwright/e2e/
/// unit_test.spec.js, against a live REDCap: `The parameter 'record' is missing` for Survey
/// Link, Survey Queue Link and Survey Return Code, `The parameter 'instrument' is missing` for
/// the Participant List). Survey Access Code takes the same parameters as Survey Link.
#[test]
fn missing_parameters_are_answered_with_redcaps_text() {
    let emu = start(&["redcapr-survey.xml", "redcapr-simple.xml"]);
    for pid in emu.project_ids() {
        let t = emu.token(pid, "admin").unwrap();
        for content in ["surveyLink", "surveyQueueLink", "surveyReturnCode", "surveyAccessCode"] {
            call(&emu, &t, content, &[("returnFormat", "json")])
                .expect(400, "{\"error\":\"The parameter 'record' is missing\"}");
        }
        call(&emu, &t, "participantList", &[("returnFormat", "json")])
            .expect(400, "{\"error\":\"The parameter 'instrument' is missing\"}");
    }
}

/// A longitudinal participant list names its event; its rows carry the Survey Queue link.
/// PyCap's integration test against a live REDCap gets one row for `contact_info` in
/// `enrollment_arm_1` of its long project (tests/integration/test_long_project.py
/// `test_survey_participant_export`: `len(data) == 1`; record 2 is in arm 2).
#[test]
fn longitudinal_participant_list() {
    let emu = start(&["pycap-test_long_project.xml"]);
    let t = admin(&emu);
    call(&emu, &t, "participantList", &[("instrument", "contact_info"), ("returnFormat", "csv")]).expect(
        400,
        "ERROR: The parameter 'event' is missing: a unique event name is required in longitudinal projects",
    );
    let rows = call(
        &emu,
        &t,
        "participantList",
        &[("instrument", "contact_info"), ("event", "enrollment_arm_1"), ("format", "json")],
    )
    .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    for r in rows {
        let record = r["record"].as_str().unwrap();
        let queue = call(&emu, &t, "surveyQueueLink", &[("record", record)]).text();
        assert_eq!(r["survey_queue_link"].as_str(), Some(queue.as_str()));
    }
}

/// Codes live in the store: a restart on the same data directory gives the same link; a renamed
/// record keeps its link; a deleted record's link is gone with it.
#[test]
fn codes_are_kept_renamed_and_deleted_with_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Emulator::builder()
            .data_dir(dir.path())
            .project_xml_file(fixture("redcapr-survey.xml"))
            .unwrap()
            .start()
            .unwrap()
    };
    let (link, token) = {
        let emu = open();
        let t = admin(&emu);
        let link = call(&emu, &t, "surveyLink", &[("record", "1"), ("instrument", PMQ)]).text();
        let hash = hash_of(&link, &base(&emu));
        emu.shutdown();
        (hash, t)
    };
    let emu = open();
    let b = base(&emu);
    let again = call(&emu, &token, "surveyLink", &[("record", "1"), ("instrument", PMQ)]).text();
    assert_eq!(hash_of(&again, &b), link, "same link after a restart");
    call(&emu, &token, "record", &[("action", "rename"), ("record", "1"), ("new_record_name", "101")]).expect(200, "1");
    let renamed = call(&emu, &token, "surveyLink", &[("record", "101"), ("instrument", PMQ)]).text();
    assert_eq!(hash_of(&renamed, &b), link, "the link follows the renamed record");
    call(&emu, &token, "record", &[("action", "delete"), ("records[0]", "101")]).expect(200, "1");
    let r = call(&emu, &token, "record", &[("format", "json"), ("data", r#"[{"participant_id":"101"}]"#)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh = call(&emu, &token, "surveyLink", &[("record", "101"), ("instrument", PMQ)]).text();
    assert_ne!(hash_of(&fresh, &b), link, "a new record of the same name gets a new link");
}

/// A configured base URL (REDCap's own address, when the emulator sits behind a proxy) is
/// what links are made under.
#[test]
fn configured_base_url() {
    let emu = Emulator::builder()
        .in_memory()
        .base_url("https://redcap.example.org/redcap")
        .project_xml_file(fixture("redcapr-survey.xml"))
        .unwrap()
        .start()
        .unwrap();
    let t = admin(&emu);
    let link = call(&emu, &t, "surveyLink", &[("record", "2"), ("instrument", PMQ)]).text();
    hash_of(&link, "https://redcap.example.org/redcap/");
}

/// The Survey Queue settings survive Export Project XML: a project created from the export has
/// its queue on.
#[test]
fn survey_settings_round_trip_through_project_xml() {
    let emu = start(&["pycap-test_long_project.xml"]);
    let t = admin(&emu);
    let xml = call(&emu, &t, "project_xml", &[("returnMetadataOnly", "false")]).text();
    let again = Emulator::builder().in_memory().project_xml(xml).start().unwrap();
    let t2 = admin(&again);
    let rec = call(&again, &t2, "record", &[("format", "json"), ("fields", "study_id")]).json();
    let first = rec[0]["study_id"].as_str().unwrap().to_owned();
    let r = call(&again, &t2, "surveyQueueLink", &[("record", &first)]);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Without a configured base URL, links are made under the address the request was sent to
/// (its `Host` header); a `Host` that is not a plain host and port is not put in a link.
#[test]
fn links_follow_the_host_the_request_was_sent_to() {
    use std::io::{Read, Write};
    let emu = start(&["redcapr-survey.xml"]);
    let t = admin(&emu);
    let link_for_host = |host: &str| {
        let body = format!("token={t}&content=surveyLink&record=1&instrument={PMQ}");
        let mut s = std::net::TcpStream::connect(emu.addr()).unwrap();
        write!(
            s,
            "POST /api/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out.rsplit("\r\n\r\n").next().unwrap().to_owned()
    };
    let link = link_for_host("redcap.test:8443");
    assert!(link.starts_with("http://redcap.test:8443/surveys/?s="), "{link}");
    let hash = link.rsplit('=').next().unwrap().to_owned();
    let odd = link_for_host("a\"b<c>");
    assert_eq!(odd, format!("http://localhost/surveys/?s={hash}"), "same participant, no odd host in the link");
}
