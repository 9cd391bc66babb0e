//! File Repository: all five methods (seeds RC-API-46/47/48; reference §3.10, §5.5, §5.6).

use crate::common::*;
use redcap_emulator::{Rights, RunningEmulator, User};

fn folder_msg(id: &str) -> String {
    format!(
        "The File Repository folder folder_id={id} does not exist or else you do not have permission to that folder because it is DAG-restricted or Role-restricted."
    )
}

fn create(emu: &RunningEmulator, t: &str, extra: &[(&str, &str)]) -> i64 {
    let mut f = vec![("token", t), ("content", "fileRepository"), ("action", "createFolder"), ("format", "json")];
    f.extend_from_slice(extra);
    let r = post(&emu.url(), &f);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()[0]["folder_id"].as_i64().unwrap()
}

fn list(emu: &RunningEmulator, t: &str, folder: Option<i64>) -> Resp {
    let fid = folder.map(|f| f.to_string());
    let mut f = vec![("token", t), ("content", "fileRepository"), ("action", "list"), ("format", "json")];
    if let Some(fid) = &fid {
        f.push(("folder_id", fid));
    }
    post(&emu.url(), &f)
}

fn upload(emu: &RunningEmulator, t: &str, folder: Option<i64>, name: &str, bytes: &[u8]) -> Resp {
    let fid = folder.map(|f| f.to_string());
    let mut f = vec![("token", t), ("content", "fileRepository"), ("action", "import"), ("returnFormat", "json")];
    if let Some(fid) = &fid {
        f.push(("folder_id", fid));
    }
    post_multipart(&emu.url(), &f, Some((name, bytes)))
}

fn export(emu: &RunningEmulator, t: &str, doc: i64) -> Resp {
    let d = doc.to_string();
    post(
        &emu.url(),
        &[("token", t), ("content", "fileRepository"), ("action", "export"), ("doc_id", &d), ("returnFormat", "json")],
    )
}

#[test]
fn create_folder_answers_folder_id_in_each_format() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let a = create(&emu, &t, &[("name", "Study Protocols")]);
    let r = post(
        &emu.url(),
        &[("token", &t), ("content", "fileRepository"), ("action", "createFolder"), ("name", "b"), ("format", "csv")],
    );
    r.expect(200, &format!("folder_id\n{}\n", a + 1));
    let r =
        post(&emu.url(), &[("token", &t), ("content", "fileRepository"), ("action", "createFolder"), ("name", "c")]);
    r.expect(
        200,
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<items>\n<item><folder_id>{}</folder_id></item>\n</items>\n",
            a + 2
        ),
    );
    let r = post(
        &emu.url(),
        &[("token", &t), ("content", "fileRepository"), ("action", "createFolder"), ("format", "json")],
    );
    assert_eq!(r.status, 400);
    let long = "x".repeat(151);
    let r = post(
        &emu.url(),
        &[
            ("token", &t),
            ("content", "fileRepository"),
            ("action", "createFolder"),
            ("name", &long),
            ("format", "json"),
        ],
    );
    assert_eq!(r.status, 400);
}

#[test]
fn list_import_export_delete_round_trip() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    // Empty repository.
    list(&emu, &t, None).expect(200, "[]");
    let folder = create(&emu, &t, &[("name", "the-state")]);
    // Import answers an empty 200.
    upload(&emu, &t, None, "consent_form_v3.pdf", b"%PDF-1.4 fake").expect(200, "");
    upload(&emu, &t, None, "a.txt", b"hello").expect(200, "");
    upload(&emu, &t, Some(folder), "inside.csv", b"x,y\n1,2\n").expect(200, "");
    // Folders first, then files by name.
    let top = list(&emu, &t, None).json();
    let items = top.as_array().unwrap();
    assert_eq!(items.len(), 3, "{top}");
    assert_eq!(items[0], serde_json::json!({"folder_id": folder, "name": "the-state"}));
    assert_eq!(items[1]["name"], "a.txt");
    assert!(items[1]["doc_id"].is_i64());
    assert!(items[1].get("folder_id").is_none());
    assert_eq!(items[2]["name"], "consent_form_v3.pdf");
    let inner = list(&emu, &t, Some(folder)).json();
    assert_eq!(inner.as_array().unwrap().len(), 1);
    assert_eq!(inner[0]["name"], "inside.csv");
    // Export: bytes plus the name in Content-Type and Content-Disposition.
    let doc = items[1]["doc_id"].as_i64().unwrap();
    let r = export(&emu, &t, doc);
    r.expect(200, "hello");
    assert_eq!(r.header("content-type").unwrap(), "text/plain; name=\"a.txt\"; charset=UTF-8");
    assert_eq!(r.header("content-length").unwrap(), "5");
    assert_eq!(r.header("content-disposition").unwrap(), "attachment; filename=\"a.txt\"");
    let pdf = export(&emu, &t, items[2]["doc_id"].as_i64().unwrap());
    assert_eq!(pdf.header("content-type").unwrap(), "application/pdf; name=\"consent_form_v3.pdf\"");
    // Delete: empty 200, gone from the listing and from export, kept in the recycle bin.
    let d = doc.to_string();
    post(&emu.url(), &[("token", &t), ("content", "fileRepository"), ("action", "delete"), ("doc_id", &d)])
        .expect(200, "");
    let after = list(&emu, &t, None).json();
    assert!(after.as_array().unwrap().iter().all(|e| e["doc_id"] != doc));
    assert_eq!(export(&emu, &t, doc).status, 400);
    assert_eq!(emu.recycled_files(emu.project_ids()[0]), vec![doc]);
}

#[test]
fn list_in_csv_and_xml() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let dag = emu.dag_id(pid, "dag_1").unwrap().to_string();
    let f = create(&emu, &t, &[("name", "site a, docs"), ("dag_id", &dag)]);
    upload(&emu, &t, None, "mugshot-1.jpg", b"\xff\xd8\xff").expect(200, "");
    let r = post(&emu.url(), &[("token", &t), ("content", "fileRepository"), ("action", "list"), ("format", "csv")]);
    let (h, rows) = csv_rows(&r.text());
    assert_eq!(h, ["folder_id", "doc_id", "name", "role", "dag"]);
    assert_eq!(rows[0], [f.to_string(), String::new(), "site a, docs".into(), String::new(), "dag_1".into()]);
    assert!(rows[1][1].parse::<i64>().is_ok());
    assert_eq!(rows[1][2], "mugshot-1.jpg");
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let x = post(&emu.url(), &[("token", &t), ("content", "fileRepository"), ("action", "list")]).text();
    assert!(
        x.contains(&format!("<item><folder_id>{f}</folder_id><name>site a, docs</name><dag>dag_1</dag></item>")),
        "{x}"
    );
    // Empty folder in CSV: header only.
    let g = create(&emu, &t, &[("name", "empty")]).to_string();
    let r = post(
        &emu.url(),
        &[("token", &t), ("content", "fileRepository"), ("action", "list"), ("format", "csv"), ("folder_id", &g)],
    );
    r.expect(200, "folder_id,doc_id,name,role,dag\n");
}

#[test]
fn unknown_folder_is_400_with_the_recorded_message() {
    let emu = start(&["redcapr-simple.xml", "redcapr-dag.xml"]);
    let t = admin(&emu);
    let r = post(
        &emu.url(),
        &[("token", &t), ("content", "fileRepository"), ("action", "list"), ("format", "csv"), ("folder_id", "99")],
    );
    r.expect(400, &format!("ERROR: {}", folder_msg("99")));
    // A folder of another project is "not found" too, for list and import.
    let other = emu.token(emu.project_ids()[1], "admin").unwrap();
    let f = create(&emu, &other, &[("name", "theirs")]);
    let r = list(&emu, &t, Some(f));
    r.expect(400, &format!("{{\"error\":\"{}\"}}", folder_msg(&f.to_string())));
    assert_eq!(upload(&emu, &t, Some(f), "x.txt", b"x").status, 400);
    // And a doc of another project cannot be exported or deleted.
    upload(&emu, &other, None, "secret.txt", b"s").expect(200, "");
    let doc = list(&emu, &other, None).json()[1]["doc_id"].as_i64().unwrap();
    assert_eq!(export(&emu, &t, doc).status, 400);
    let d = doc.to_string();
    assert_eq!(
        post(&emu.url(), &[("token", &t), ("content", "fileRepository"), ("action", "delete"), ("doc_id", &d)]).status,
        400
    );
    export(&emu, &other, doc).expect(200, "s");
}

#[test]
fn dag_restricted_folders() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let dag1 = emu.dag_id(pid, "dag_1").unwrap().to_string();
    let f = create(&emu, &t, &[("name", "site 1 only"), ("dag_id", &dag1)]);
    upload(&emu, &t, Some(f), "site1.txt", b"one").expect(200, "");
    let doc = list(&emu, &t, Some(f)).json()[0]["doc_id"].as_i64().unwrap();
    let inside = emu.add_user(pid, User::new("in_dag_1").dag("dag_1")).unwrap();
    let outside = emu.add_user(pid, User::new("in_dag_2").dag("dag_2")).unwrap();
    // The restriction is visible as `dag`, only on restricted folders.
    let seen = list(&emu, &inside, None).json();
    assert_eq!(seen, serde_json::json!([{"folder_id": f, "name": "site 1 only", "dag": "dag_1"}]));
    assert_eq!(list(&emu, &inside, Some(f)).json()[0]["name"], "site1.txt");
    export(&emu, &inside, doc).expect(200, "one");
    // Users of another DAG do not see it and cannot use it.
    list(&emu, &outside, None).expect(200, "[]");
    list(&emu, &outside, Some(f)).expect(400, &format!("{{\"error\":\"{}\"}}", folder_msg(&f.to_string())));
    assert_eq!(upload(&emu, &outside, Some(f), "x.txt", b"x").status, 400);
    assert_eq!(export(&emu, &outside, doc).status, 400);
    // A sub-folder of a restricted folder is out of reach as well.
    let sub = create(&emu, &t, &[("name", "sub"), ("folder_id", &f.to_string())]);
    assert_eq!(list(&emu, &outside, Some(sub)).status, 400);
    assert_eq!(list(&emu, &inside, Some(sub)).status, 200);
}

#[test]
fn role_restricted_folders() {
    // The REDCapR file-repo fixture has two roles with API and File Repository rights.
    let emu = start(&["redcapr-file-repo.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let (writer_role, reader_role) = ("U-4133AMPEL9", "U-8163T4EPEE");
    let role = emu.role_id(pid, writer_role).unwrap().to_string();
    let f = create(&emu, &t, &[("name", "writers only"), ("role_id", &role)]);
    create(&emu, &t, &[("name", "open")]);
    let writer = emu.add_user(pid, User::new("writer").role(writer_role)).unwrap();
    let reader = emu.add_user(pid, User::new("reader").role(reader_role)).unwrap();
    upload(&emu, &writer, Some(f), "r.txt", b"role data").expect(200, "");
    // Members of the role see the folder, with its `role`; unrestricted folders carry no key.
    let seen = list(&emu, &writer, None).json();
    assert_eq!(
        seen,
        serde_json::json!([{"folder_id": f + 1, "name": "open"}, {"folder_id": f, "name": "writers only", "role": writer_role}])
    );
    let doc = list(&emu, &writer, Some(f)).json()[0]["doc_id"].as_i64().unwrap();
    export(&emu, &writer, doc).expect(200, "role data");
    // Users outside the role (another role, or none) do not.
    for outsider in [&reader, &t] {
        let names: Vec<String> = list(&emu, outsider, None)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["open"]);
        list(&emu, outsider, Some(f)).expect(400, &format!("{{\"error\":\"{}\"}}", folder_msg(&f.to_string())));
        assert_eq!(export(&emu, outsider, doc).status, 400);
    }
    // A role's rights replace the user's: the reader role has no API import.
    upload(&emu, &reader, None, "x.txt", b"x")
        .expect(403, "{\"error\":\"You do not have API Import/Update privileges\"}");
}

#[test]
fn rights_failures() {
    let emu = start(&["redcapr-simple.xml"]);
    let pid = emu.project_ids()[0];
    let no_fr =
        emu.add_user(pid, User::new("nofr").rights(Rights { file_repository: false, ..Rights::full() })).unwrap();
    let no_imp = emu.add_user(pid, User::new("noimp").rights(Rights { api_import: false, ..Rights::full() })).unwrap();
    let no_exp = emu.add_user(pid, User::new("noexp").rights(Rights { api_export: false, ..Rights::full() })).unwrap();
    list(&emu, &no_fr, None).expect(403, "{\"error\":\"You do not have File Repository privileges\"}");
    assert_eq!(upload(&emu, &no_fr, None, "a", b"a").status, 403);
    let r = post(
        &emu.url(),
        &[
            ("token", &no_imp),
            ("content", "fileRepository"),
            ("action", "createFolder"),
            ("name", "x"),
            ("format", "json"),
        ],
    );
    r.expect(403, "{\"error\":\"You do not have API Import/Update privileges\"}");
    upload(&emu, &no_imp, None, "a.txt", b"a")
        .expect(403, "{\"error\":\"You do not have API Import/Update privileges\"}");
    list(&emu, &no_imp, None).expect(200, "[]");
    list(&emu, &no_exp, None).expect(403, "{\"error\":\"You do not have API Export privileges\"}");
    upload(&emu, &no_exp, None, "a.txt", b"a").expect(200, "");
    let doc = list(&emu, &admin(&emu), None).json()[0]["doc_id"].as_i64().unwrap();
    assert_eq!(export(&emu, &no_exp, doc).status, 403);
    let d = doc.to_string();
    assert_eq!(
        post(&emu.url(), &[("token", &no_imp), ("content", "fileRepository"), ("action", "delete"), ("doc_id", &d)])
            .status,
        403
    );
}

#[test]
fn import_without_a_file_and_bad_ids() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let r = post(
        &emu.url(),
        &[
            ("token", &t),
            ("content", "fileRepository"),
            ("action", "import"),
            ("file", "not a file"),
            ("returnFormat", "json"),
        ],
    );
    // A text field named `file` is no upload: REDCap's recorded text (files.rs cites it).
    r.expect(400, "{\"error\":\"No valid file was uploaded\"}");
    assert_eq!(export(&emu, &t, 424242).status, 400);
    let r = post(
        &emu.url(),
        &[("token", &t), ("content", "fileRepository"), ("action", "export"), ("returnFormat", "json")],
    );
    assert_eq!(r.status, 400);
    let r = post(
        &emu.url(),
        &[("token", &t), ("content", "fileRepository"), ("action", "rename"), ("returnFormat", "json")],
    );
    r.expect(400, "{\"error\":\"The value of the parameter \\\"action\\\" is not valid\"}");
}

#[test]
fn same_name_twice_makes_two_files() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    upload(&emu, &t, None, "dup.txt", b"first").expect(200, "");
    upload(&emu, &t, None, "dup.txt", b"second").expect(200, "");
    let l = list(&emu, &t, None).json();
    let docs: Vec<i64> = l.as_array().unwrap().iter().map(|e| e["doc_id"].as_i64().unwrap()).collect();
    assert_eq!(docs.len(), 2);
    assert_ne!(docs[0], docs[1]);
    export(&emu, &t, docs[0]).expect(200, "first");
    export(&emu, &t, docs[1]).expect(200, "second");
}

#[test]
fn binary_and_larger_files_round_trip() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let mut big: Vec<u8> = (0..=255u8).cycle().take(3 * 1024 * 1024 + 17).collect();
    big[1000] = b'\r';
    upload(&emu, &t, None, "blob.bin", &big).expect(200, "");
    let doc = list(&emu, &t, None).json()[0]["doc_id"].as_i64().unwrap();
    let r = export(&emu, &t, doc);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").unwrap(), big.len().to_string());
    assert_eq!(r.header("content-type").unwrap(), "application/octet-stream; name=\"blob.bin\"");
    assert!(r.body == big);
}
