//! Transport rules, tokens, error envelopes, version, project info, create project.

use crate::common::*;
use redcap_emulator::{Emulator, Rights, User};

const NO_API: &str = "You do not have permissions to use the API";
const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>";

#[test]
fn other_http_methods_get_501_in_xml() {
    let emu = start(&[]);
    let r = get(&emu.url());
    r.expect(
        501,
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><hash><error>The requested method is not implemented.</error></hash>",
    );
}

#[test]
fn unknown_path_is_a_web_server_404() {
    let emu = start(&[]);
    let url = emu.url().replace("/api/", "/redcap/");
    let r = post(&url, &[("token", "x")]);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<title>404 Not Found</title>"));
}

#[test]
fn bad_token_is_403_in_each_format() {
    let emu = start(&["redcapr-simple.xml"]);
    let unknown = "0123456789ABCDEF0123456789ABCDEF";
    let cases = [
        (Some("json"), format!("{{\"error\":\"{NO_API}\"}}"), "application/json"),
        (Some("csv"), format!("ERROR: {NO_API}"), "text/csv"),
        (Some("xml"), format!("{XML_HEAD}<hash><error>{NO_API}</error></hash>"), "text/xml"),
        (None, format!("{XML_HEAD}<hash><error>{NO_API}</error></hash>"), "text/xml"),
    ];
    for (rf, body, ct) in cases {
        let mut f = vec![("token", unknown), ("content", "version")];
        if let Some(rf) = rf {
            f.push(("returnFormat", rf));
        }
        let r = post(&emu.url(), &f);
        r.expect(403, &body);
        assert!(r.header("content-type").unwrap().starts_with(ct));
    }
}

#[test]
fn malformed_and_missing_tokens_are_403() {
    let emu = start(&["redcapr-simple.xml"]);
    let good = admin(&emu);
    for t in [
        String::new(),
        "abc".into(),
        format!("{good}\n"),
        format!("{good}0"),
        good.replace(|c: char| c.is_ascii_digit(), "G"),
    ] {
        post(&emu.url(), &[("token", &t), ("content", "version"), ("format", "json")])
            .expect(403, &format!("{{\"error\":\"{NO_API}\"}}"));
    }
    post(&emu.url(), &[("content", "version"), ("format", "csv")]).expect(403, &format!("ERROR: {NO_API}"));
}

#[test]
fn error_format_follows_return_format_then_format() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let msg = "The value of the parameter \\\"content\\\" is not valid";
    post(&emu.url(), &[("token", &t), ("content", "nope"), ("format", "csv"), ("returnFormat", "json")])
        .expect(400, &format!("{{\"error\":\"{msg}\"}}"));
    post(&emu.url(), &[("token", &t), ("content", "nope"), ("format", "csv")])
        .expect(400, "ERROR: The value of the parameter \"content\" is not valid");
    post(&emu.url(), &[("token", &t), ("content", "nope")]).expect(
        400,
        // Quotes are escaped by the XML writer (escaping in REDCap's envelope is UNVERIFIED).
        &format!("{XML_HEAD}<hash><error>The value of the parameter &quot;content&quot; is not valid</error></hash>"),
    );
}

#[test]
fn version_is_text_and_configurable() {
    let emu = Emulator::builder()
        .project_xml_file(fixture("redcapr-simple.xml"))
        .unwrap()
        .version("13.10.3")
        .start()
        .unwrap();
    let t = admin(&emu);
    post(&emu.url(), &[("token", &t), ("content", "version")]).expect(200, "13.10.3");
    // Also without the trailing slash, and with a super token.
    let url = emu.url().trim_end_matches('/').to_owned();
    post(&url, &[("token", &emu.super_token()), ("content", "version")]).expect(200, "13.10.3");
}

#[test]
fn multipart_bodies_work_for_ordinary_methods() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    post_multipart(&emu.url(), &[("token", &t), ("content", "version")], None).expect(200, "14.5.2");
}

#[test]
fn malformed_bodies_get_400_not_a_crash() {
    let emu = start(&["redcapr-simple.xml"]);
    let r = post_raw(&emu.url(), "multipart/form-data; boundary=zzz", b"--zzz\r\ngarbage");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("<hash><error>"));
    let r = post_raw(&emu.url(), "multipart/form-data", b"x");
    assert_eq!(r.status, 400);
    // Invalid percent-encoding and binary junk still parse as (useless) form fields.
    let r = post_raw(&emu.url(), "application/x-www-form-urlencoded", b"%zz=%ff&\xff\xfe");
    assert_eq!(r.status, 403);
}

#[test]
fn bodies_over_the_limit_get_413() {
    let emu = Emulator::builder()
        .project_xml_file(fixture("redcapr-simple.xml"))
        .unwrap()
        .max_form_bytes(1000)
        .start()
        .unwrap();
    let t = admin(&emu);
    let big = "x".repeat(5000);
    let r = post(&emu.url(), &[("token", &t), ("content", "version"), ("data", &big)]);
    assert_eq!(r.status, 413);
    assert!(r.text().contains("limit of 1000 bytes"));
}

#[test]
fn missing_api_export_right_is_403() {
    let emu = start(&["redcapr-simple.xml"]);
    let pid = emu.project_ids()[0];
    let t = emu.add_user(pid, User::new("importer").rights(Rights { api_export: false, ..Rights::full() })).unwrap();
    post(&emu.url(), &[("token", &t), ("content", "project"), ("format", "json")])
        .expect(403, "{\"error\":\"You do not have API Export privileges\"}");
}

#[test]
fn unimplemented_methods_name_themselves() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let r =
        post(&emu.url(), &[("token", &t), ("content", "record"), ("action", "randomize"), ("returnFormat", "json")]);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("\"Randomize Record\" (content=record, action=randomize)"));
    // An unknown action of an emulated method is a plain bad parameter.
    post(&emu.url(), &[("token", &t), ("content", "arm"), ("action", "bogus"), ("returnFormat", "csv")])
        .expect(400, "ERROR: The value of the parameter \"action\" is not valid");
}

#[test]
fn project_info_in_each_format() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let j = post(&emu.url(), &[("token", &t), ("content", "project"), ("format", "json")]);
    assert_eq!(j.status, 200);
    let v = j.json();
    assert!(v.is_object(), "a single object, not an array");
    assert_eq!(v["project_id"], pid);
    assert_eq!(v["project_title"], "REDCap: simple".replace("REDCap:", "REDCapR:"));
    assert_eq!(v["purpose"], 4);
    assert_eq!(v["is_longitudinal"], 0);
    assert_eq!(v["record_autonumbering_enabled"], 1);
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.first().unwrap().as_str(), "project_id");
    assert_eq!(keys.last().unwrap().as_str(), "bypass_branching_erase_field_prompt");
    assert_eq!(keys.len(), 27);
    // Integers in JSON, the last one too: PyCap's recorded doctest of Export Project Info
    // (redcap/methods/project_info.py) ends with `'bypass_branching_erase_field_prompt': 0`.
    for k in [
        "project_id",
        "in_production",
        "purpose",
        "is_longitudinal",
        "has_repeating_instruments_or_events",
        "surveys_enabled",
        "scheduling_enabled",
        "record_autonumbering_enabled",
        "randomization_enabled",
        "ddp_enabled",
        "display_today_now_button",
        "bypass_branching_erase_field_prompt",
    ] {
        assert!(v[k].is_i64(), "{k} is {}", v[k]);
    }
    assert_eq!(v["bypass_branching_erase_field_prompt"], 0);
    let c = post(&emu.url(), &[("token", &t), ("content", "project"), ("format", "csv")]);
    let (h, rows) = csv_rows(&c.text());
    assert_eq!(h[1], "project_title");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "REDCapR: simple");
    let x = post(&emu.url(), &[("token", &t), ("content", "project")]);
    assert!(x.text().contains("<project_title>REDCapR: simple</project_title>"), "{}", x.text());
}

#[test]
fn create_project_with_super_token_and_odm() {
    let emu = start(&[]);
    let xml = std::fs::read_to_string(fixture("pycap-doctest_project.xml")).unwrap();
    let r = post(
        &emu.url(),
        &[
            ("token", &emu.super_token()),
            ("content", "project"),
            ("format", "json"),
            ("data", r#"[{"project_title":"Made by API","purpose":"0"}]"#),
            ("odm", &xml),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.text();
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let info = post(&emu.url(), &[("token", &token), ("content", "project"), ("format", "json")]).json();
    assert_eq!(info["project_title"], "Made by API");
    assert_eq!(info["is_longitudinal"], 1);
    // A project token cannot create projects (recorded text: AndrewPoppe/ApiUserRights
    // tests/playwright/e2e/unit_test.spec.js, against a live REDCap); a super token cannot read
    // project data.
    post(&emu.url(), &[("token", &token), ("content", "project"), ("data", "[]"), ("returnFormat", "csv")]).expect(
        403,
        "ERROR: You do not have permissions to use the API 'Create Project' method. You must have been granted a 64-character Super API Token from a REDCap administrator in order to utilize this method.",
    );
    post(&emu.url(), &[("token", &emu.super_token()), ("content", "record"), ("returnFormat", "csv")])
        .expect(403, &format!("ERROR: {NO_API}"));
}

#[test]
fn restart_with_the_same_data_dir_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (token, pid) = {
        let emu = Emulator::builder()
            .data_dir(dir.path())
            .project_xml_file(fixture("redcapr-simple.xml"))
            .unwrap()
            .start()
            .unwrap();
        let pid = emu.project_ids()[0];
        let t = emu.add_user(pid, User::new("kept")).unwrap();
        let r = post_multipart(
            &emu.url(),
            &[("token", &t), ("content", "fileRepository"), ("action", "import")],
            Some(("kept.txt", b"still here")),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let r = post(
            &emu.url(),
            &[
                ("token", &t),
                ("content", "record"),
                ("format", "json"),
                ("data", r#"[{"record_id":"77","name_first":"Kept"}]"#),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        emu.shutdown();
        (t, pid)
    };
    // Same data dir, same project file: nothing is loaded twice, all state is back.
    let emu = Emulator::builder()
        .data_dir(dir.path())
        .project_xml_file(fixture("redcapr-simple.xml"))
        .unwrap()
        .start()
        .unwrap();
    assert_eq!(emu.project_ids(), vec![pid]);
    assert_eq!(emu.token(pid, "kept").as_deref(), Some(token.as_str()));
    let list =
        post(&emu.url(), &[("token", &token), ("content", "fileRepository"), ("action", "list"), ("format", "json")])
            .json();
    let doc = list[0]["doc_id"].to_string();
    post(&emu.url(), &[("token", &token), ("content", "fileRepository"), ("action", "export"), ("doc_id", &doc)])
        .expect(200, "still here");
    let recs = post(
        &emu.url(),
        &[
            ("token", &token),
            ("content", "record"),
            ("format", "json"),
            ("records[0]", "77"),
            ("fields[0]", "name_first"),
        ],
    )
    .json();
    assert_eq!(recs[0]["name_first"], "Kept");
}

/// A project file is read as it is loaded; the same document given as text, as a file, or
/// through a pipe (read whole: it can be read once only) is one project in a data directory.
#[test]
fn a_project_loads_the_same_from_a_file_a_pipe_or_text_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture("redcapr-simple.xml");
    let text = std::fs::read_to_string(&path).unwrap();
    let from_file = Emulator::builder().data_dir(dir.path()).project_xml_file(&path).unwrap().build().unwrap();
    let pid = from_file.project_ids();
    assert_eq!(pid.len(), 1);
    let t = from_file.token(pid[0], "admin").unwrap();
    drop(from_file);
    let from_text = Emulator::builder().data_dir(dir.path()).project_xml(text.clone()).start().unwrap();
    assert_eq!(from_text.project_ids(), pid, "text of a document loaded from a file is not loaded again");
    let rows = post(&from_text.url(), &[("token", &t), ("content", "record"), ("format", "json")]).json();
    assert!(rows.as_array().is_some_and(|r| !r.is_empty()), "{rows}");
    from_text.shutdown();

    #[cfg(unix)]
    {
        let fifo = dir.path().join("project.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let writer = {
            let (fifo, text) = (fifo.clone(), text.clone());
            std::thread::spawn(move || std::fs::write(fifo, text).unwrap())
        };
        let fresh = tempfile::tempdir().unwrap();
        // (On a thread: a loader that reads the pipe twice waits for a second writer forever.)
        let (tx, rx) = std::sync::mpsc::channel();
        let (fifo2, data) = (fifo.clone(), fresh.path().to_owned());
        std::thread::spawn(move || {
            let _ = tx.send(Emulator::builder().data_dir(data).project_xml_file(&fifo2).unwrap().build());
        });
        let piped =
            rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the load through a pipe ended").unwrap();
        writer.join().unwrap();
        assert_eq!(piped.project_ids().len(), 1, "a project read through a pipe");
        let t = piped.token(piped.project_ids()[0], "admin").unwrap();
        drop(piped);
        // And that text is the same document as the file's.
        let again = Emulator::builder().data_dir(fresh.path()).project_xml_file(&path).unwrap().build().unwrap();
        assert_eq!(again.project_ids().len(), 1);
        assert_eq!(again.token(again.project_ids()[0], "admin").as_deref(), Some(t.as_str()));
    }
}

/// Delete methods and Export Reports sent without their parameter answer as a live REDCap does
/// (AndrewPoppe/ApiUserRights tests/playwright/e2e/unit_test.spec.js, "Make sure all API calls
/// work…", a classic project): `The 'arms' parameter is either missing or is not an array. …`
/// (also for `dags`, `users`, `roles`; for arms before the classic-project check), `The
/// 'records' parameter is an empty array. …`, and `report_id=` naming no report.
#[test]
fn bare_delete_and_report_calls_answer_redcaps_recorded_texts() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let bare = |content: &str, action: &str| {
        let mut f = vec![("token", t.as_str()), ("content", content), ("returnFormat", "json")];
        if !action.is_empty() {
            f.push(("action", action));
        }
        post(&emu.url(), &f)
    };
    for (content, list) in [("arm", "arms"), ("dag", "dags"), ("user", "users"), ("userRole", "roles")] {
        bare(content, "delete").expect(
            400,
            &format!("{{\"error\":\"The '{list}' parameter is either missing or is not an array. It must be provided as an array even if it only contains one value.\"}}"),
        );
    }
    bare("record", "delete").expect(
        400,
        "{\"error\":\"The 'records' parameter is an empty array. The parameter must be an array containing one or more record names to delete.\"}",
    );
    bare("report", "").expect(
        403,
        "{\"error\":\"The API request cannot complete because report_id= does not belong to this project.\"}",
    );
}
