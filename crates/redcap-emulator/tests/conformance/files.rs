//! Record files: Export / Import / Delete a File of File Upload fields (`content=file`).

use crate::common::*;
use redcap_emulator::{Rights, RunningEmulator, User};

fn file_call(emu: &RunningEmulator, t: &str, action: &str, extra: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", t), ("content", "file"), ("action", action), ("returnFormat", "json")];
    f.extend_from_slice(extra);
    post(&emu.url(), &f)
}

fn upload(emu: &RunningEmulator, t: &str, extra: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Resp {
    let mut f = vec![("token", t), ("content", "file"), ("action", "import"), ("returnFormat", "json")];
    f.extend_from_slice(extra);
    post_multipart(&emu.url(), &f, file)
}

fn field_value(emu: &RunningEmulator, t: &str, record: &str, field: &str) -> String {
    let v = post(
        &emu.url(),
        &[("token", t), ("content", "record"), ("format", "json"), ("records[0]", record), ("fields[0]", field)],
    )
    .json();
    v[0][field].as_str().unwrap_or("").to_owned()
}

#[test]
fn export_a_stored_file_with_download_headers() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let r = file_call(&emu, &t, "export", &[("record", "1"), ("field", "mugshot")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type").as_deref(), Some("image/jpeg; name=\"mugshot-1.jpg\""));
    assert_eq!(r.header("content-disposition").as_deref(), Some("attachment; filename=\"mugshot-1.jpg\""));
    assert_eq!(&r.body[..2], &[0xFF, 0xD8], "JPEG bytes");
    assert_eq!(r.header("content-length").unwrap(), r.body.len().to_string());
}

#[test]
fn import_replace_export_and_delete() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    upload(&emu, &t, &[("record", "2"), ("field", "mugshot")], Some(("notes.txt", b"first\n"))).expect(200, "");
    assert_eq!(field_value(&emu, &t, "2", "mugshot"), "notes.txt", "the record export shows the stored name");
    let r = file_call(&emu, &t, "export", &[("record", "2"), ("field", "mugshot")]);
    r.expect(200, "first\n");
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain; name=\"notes.txt\"; charset=UTF-8"));
    // A second upload replaces the first.
    upload(&emu, &t, &[("record", "2"), ("field", "mugshot")], Some(("v2.csv", b"a,b\n"))).expect(200, "");
    file_call(&emu, &t, "export", &[("record", "2"), ("field", "mugshot")]).expect(200, "a,b\n");
    assert_eq!(field_value(&emu, &t, "2", "mugshot"), "v2.csv");
    file_call(&emu, &t, "delete", &[("record", "2"), ("field", "mugshot")]).expect(200, "");
    assert_eq!(field_value(&emu, &t, "2", "mugshot"), "");
    let r = file_call(&emu, &t, "export", &[("record", "2"), ("field", "mugshot")]);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().starts_with("There is no file to download"));
    assert_eq!(file_call(&emu, &t, "delete", &[("record", "2"), ("field", "mugshot")]).status, 400);
    // Every write is logged.
    let log = post(&emu.url(), &[("token", &t), ("content", "log"), ("format", "json"), ("record", "2")]).json();
    let details: Vec<&str> = log.as_array().unwrap().iter().map(|r| r["details"].as_str().unwrap()).collect();
    assert!(details.contains(&"Upload document (API) mugshot = 'notes.txt'"), "{details:?}");
    assert!(details.contains(&"Delete uploaded document (API) mugshot"), "{details:?}");
}

#[test]
fn documented_errors() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    for field in ["name_first", "nope"] {
        file_call(&emu, &t, "export", &[("record", "1"), ("field", field)])
            .expect(400, &format!("{{\"error\":\"The field '{field}' does not exist or is not a 'file' field\"}}"));
    }
    file_call(&emu, &t, "export", &[("record", "999"), ("field", "mugshot")])
        .expect(400, "{\"error\":\"The record '999' does not exist\"}");
    let r = upload(&emu, &t, &[("record", "999"), ("field", "mugshot")], Some(("x.txt", b"x")));
    assert_eq!(r.status, 400, "the record must exist");
    let r = upload(&emu, &t, &[("record", "1"), ("field", "mugshot")], None);
    assert_eq!(r.status, 400);
    r.expect(400, "{\"error\":\"No valid file was uploaded\"}");
    let r = file_call(&emu, &t, "export", &[("record", "1"), ("field", "mugshot"), ("repeat_instance", "2")]);
    assert_eq!(r.status, 400, "nothing repeats in this project");
    assert_eq!(file_call(&emu, &t, "export", &[("field", "mugshot")]).status, 400);
    assert_eq!(file_call(&emu, &t, "rename", &[("record", "1"), ("field", "mugshot")]).status, 400);
    // Rights and DAGs.
    let pid = emu.project_ids()[0];
    let ro = emu.add_user(pid, User::new("ro").rights(Rights { api_import: false, ..Rights::full() })).unwrap();
    upload(&emu, &ro, &[("record", "1"), ("field", "mugshot")], Some(("x.txt", b"x")))
        .expect(403, "{\"error\":\"You do not have API Import/Update privileges\"}");
    assert_eq!(file_call(&emu, &ro, "delete", &[("record", "1"), ("field", "mugshot")]).status, 403);
    let site2 = emu.add_user(pid, User::new("site2").dag("dag_2")).unwrap();
    assert_eq!(
        file_call(&emu, &site2, "export", &[("record", "1"), ("field", "mugshot")]).status,
        400,
        "record of another DAG"
    );
    assert_eq!(file_call(&emu, &site2, "export", &[("record", "5"), ("field", "mugshot")]).status, 200, "own DAG");
}

/// The record-file and File Repository methods sent without their parameters answer as a live
/// REDCap does (AndrewPoppe/ApiUserRights tests/playwright/e2e/unit_test.spec.js, "Make sure
/// all API calls work…", JSON error bodies): the record is checked first and a missing one is
/// `The record '' does not exist`; an import without a file is `No valid file was uploaded`;
/// a folder without a name `new folder 'name' not provided`; a repository file without a
/// doc_id `Invalid doc_id or missing doc_id`.
#[test]
fn calls_without_parameters_answer_redcaps_recorded_texts() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let bare = |content: &str, action: &str| {
        post(&emu.url(), &[("token", &t), ("content", content), ("action", action), ("returnFormat", "json")])
    };
    bare("file", "export").expect(400, "{\"error\":\"The record '' does not exist\"}");
    bare("file", "delete").expect(400, "{\"error\":\"The record '' does not exist\"}");
    bare("file", "import").expect(400, "{\"error\":\"No valid file was uploaded\"}");
    bare("fileRepository", "createFolder").expect(400, "{\"error\":\"new folder 'name' not provided\"}");
    bare("fileRepository", "export").expect(400, "{\"error\":\"Invalid doc_id or missing doc_id\"}");
    bare("fileRepository", "import").expect(400, "{\"error\":\"No valid file was uploaded\"}");
    bare("fileRepository", "delete").expect(400, "{\"error\":\"Invalid doc_id or missing doc_id\"}");
    // The record before the field: an unknown record with no field names the record.
    post(
        &emu.url(),
        &[("token", &t), ("content", "file"), ("action", "export"), ("record", "999"), ("returnFormat", "json")],
    )
    .expect(400, "{\"error\":\"The record '999' does not exist\"}");
}

#[test]
fn signature_fields_cannot_be_imported() {
    let emu = start(&["redcapr-validation-types-1.xml"]);
    let t = admin(&emu);
    let rid = post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json")]).json()[0]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let r = upload(&emu, &t, &[("record", &rid), ("field", "f_signature")], Some(("s.png", b"png")));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("signature"));
}

#[test]
fn longitudinal_projects_need_the_event_and_repeat_instances_work() {
    let emu = start(&["pycap-doctest_project.xml"]);
    let t = admin(&emu);
    let r = file_call(&emu, &t, "export", &[("record", "1"), ("field", "upload_field")]);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().starts_with("The parameter \"event\" is missing"), "{}", r.text());
    assert_eq!(
        file_call(&emu, &t, "export", &[("record", "1"), ("field", "upload_field"), ("event", "nope_arm_1")]).status,
        400
    );
    // event_2_arm_1 has no instruments.
    assert_eq!(
        file_call(&emu, &t, "export", &[("record", "1"), ("field", "upload_field"), ("event", "event_2_arm_1")]).status,
        400
    );
    let stored =
        file_call(&emu, &t, "export", &[("record", "1"), ("field", "upload_field"), ("event", "event_1_arm_1")]);
    assert_eq!(stored.status, 200, "{}", stored.text());
    // event_1_arm_1 repeats: instance 2 may be new.
    let ev2 = [("record", "1"), ("field", "upload_field"), ("event", "event_1_arm_1"), ("repeat_instance", "2")];
    upload(&emu, &t, &ev2, Some(("second.txt", b"two"))).expect(200, "");
    file_call(&emu, &t, "export", &ev2).expect(200, "two");
    let first =
        file_call(&emu, &t, "export", &[("record", "1"), ("field", "upload_field"), ("event", "event_1_arm_1")]);
    assert_eq!(first.body, stored.body, "instance 1 is untouched");
    let rows =
        post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json"), ("records[0]", "1")]).json();
    let inst2 = rows.as_array().unwrap().iter().find(|r| r["redcap_repeat_instance"] == 2).unwrap();
    assert_eq!(inst2["upload_field"], "second.txt");
}

/// Security (issue 12): a File Upload field whose stored value was forged (a text field set to a
/// doc id, then turned into a file field by a dictionary import) must not give out files that
/// belong to another record, field or project: a record file belongs to one record, field, event
/// and instance of one project.
#[test]
fn a_forged_doc_id_does_not_reach_other_files() {
    let emu = start(&["redcapr-simple.xml", "redcapr-file-repo.xml"]);
    let ids = emu.project_ids();
    let t = emu.token(ids[0], "admin").unwrap();
    let other = emu.token(ids[1], "admin").unwrap();
    // A secret in the other project's File Repository, and a second record file in this project.
    let r = post_multipart(
        &emu.url(),
        &[("token", &other), ("content", "fileRepository"), ("action", "import"), ("returnFormat", "json")],
        Some(("secret.txt", b"other project's secret\n")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    upload(&emu, &t, &[("record", "2"), ("field", "mugshot")], Some(("r2.txt", b"record 2's file\n"))).expect(200, "");
    // New records whose text field holds every plausible doc id.
    let rows: Vec<serde_json::Value> =
        (1..=40).map(|i| serde_json::json!({"record_id": format!("f{i}"), "name_first": i.to_string()})).collect();
    let data = serde_json::to_string(&rows).unwrap();
    let r = post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json"), ("data", &data)]);
    assert_eq!(r.status, 200, "{}", r.text());
    // Turn the text field into a File Upload field.
    let mut meta = post(&emu.url(), &[("token", &t), ("content", "metadata"), ("format", "json")]).json();
    for f in meta.as_array_mut().unwrap() {
        if f["field_name"] == "name_first" {
            f["field_type"] = "file".into();
            f["text_validation_type_or_show_slider_number"] = "".into();
        }
    }
    let meta = serde_json::to_string(&meta).unwrap();
    let r = post(&emu.url(), &[("token", &t), ("content", "metadata"), ("format", "json"), ("data", &meta)]);
    assert_eq!(r.status, 200, "{}", r.text());
    for i in 1..=40 {
        let rec = format!("f{i}");
        let r = file_call(&emu, &t, "export", &[("record", &rec), ("field", "name_first")]);
        assert_eq!(r.status, 400, "doc {i} reached through a forged value: {}", r.text());
        assert_eq!(field_value(&emu, &t, &rec, "name_first"), "", "no file name shows for a forged value");
    }
    let xml = post(
        &emu.url(),
        &[("token", &t), ("content", "project_xml"), ("exportFiles", "true"), ("returnFormat", "json")],
    );
    assert_eq!(xml.status, 200);
    let text = xml.text();
    for secret in ["other project's secret", "record 2's file"] {
        let b64 = base64_of(secret.as_bytes());
        let b64 = &b64[..16];
        assert_eq!(text.matches(b64).count(), usize::from(secret.starts_with("record")), "{secret} embedded");
    }
    // The genuine files still export.
    assert_eq!(file_call(&emu, &t, "export", &[("record", "1"), ("field", "mugshot")]).status, 200);
    file_call(&emu, &t, "export", &[("record", "2"), ("field", "mugshot")]).expect(200, "record 2's file\n");
}

fn base64_of(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * k)) as usize & 63] as char);
        }
    }
    out
}
