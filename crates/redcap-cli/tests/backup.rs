//! `redcap backup DIR` and `redcap backup verify DIR` as a cron job runs them: a subprocess
//! with no terminal, `-q --json`, against the emulator with the demo project.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{Fixture, write};

/// A cron run: `-q --json`; stdout is exactly one JSON object, stderr is empty.
fn cron_backup(f: &Fixture, dir: &str) -> Value {
    let out = f.run(&["backup", "-q", "--json", dir]);
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "-q leaves stderr empty: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "only the JSON result on stdout: {stdout}");
    serde_json::from_str(&stdout).expect("stdout is JSON")
}

/// The demo project with a File Upload field holding a file in record 1001, and a file in
/// the File Repository.
fn project_with_files(f: &Fixture) {
    let dict: Value = serde_json::from_str(&f.ok(&["call", "metadata.export"])).unwrap();
    let mut dict = dict.as_array().unwrap().clone();
    let mut consent = dict[1].clone();
    for (k, v) in consent.as_object_mut().unwrap() {
        if k != "form_name" {
            *v = Value::String(String::new());
        }
    }
    consent["field_name"] = "consent_scan".into();
    consent["field_type"] = "file".into();
    consent["field_label"] = "Signed consent".into();
    dict.insert(2, consent);
    write(&f.path("dict.json"), serde_json::to_string(&dict).unwrap().as_bytes());
    f.ok(&["call", "metadata.import", "-p", "data=@dict.json"]);
    write(&f.path("scan.pdf"), b"%PDF-1.4 consent of 1001\n");
    let records: Value = serde_json::from_str(&f.ok(&["call", "record.export", "-p", "fields=record_id"])).unwrap();
    let record = records[0]["record_id"].as_str().unwrap().to_owned();
    f.ok(&[
        "call",
        "file.import",
        "-p",
        &format!("record={record}"),
        "-p",
        "field=consent_scan",
        "-p",
        "file=scan.pdf",
    ]);
    write(&f.path("upload/protocol.txt"), b"the protocol\n");
    f.ok(&["files", "put", "upload/protocol.txt"]);
}

fn part<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["parts"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("part {name}"))
}

#[test]
fn a_cron_backup_saves_every_part_and_verifies() {
    let f = Fixture::new();
    project_with_files(&f);
    let result = cron_backup(&f, "bk");
    assert_eq!(result["complete"], true, "{result}");
    assert!(result["project_id"].as_u64().is_some(), "{result}");
    assert!(!result["redcap_version"].as_str().unwrap().is_empty());
    for name in [
        "project_xml",
        "metadata",
        "users",
        "user_roles",
        "user_role_mappings",
        "dags",
        "user_dag_mappings",
        "arms",
        "events",
        "instrument_event_mappings",
        "repeating",
        "record_files",
        "file_repository",
    ] {
        let p = part(&result, name);
        match p["status"].as_str().unwrap() {
            "saved" => {
                let file = p["file"].as_str().unwrap();
                assert!(f.path("bk").join(file).exists(), "{name}: {file}");
            }
            "skipped" => assert!(!p["reason"].as_str().unwrap_or_default().is_empty(), "{name}: a skip says why"),
            other => panic!("{name}: {other}"),
        }
    }
    for required in ["project_xml", "metadata", "users", "dags", "record_files", "file_repository"] {
        assert_eq!(part(&result, required)["status"], "saved", "{required}: {result}");
    }
    // The demo project is classic: REDCap refuses its arms, which is a skip, not a failure.
    assert_eq!(part(&result, "arms")["status"], "skipped", "{result}");
    assert!(part(&result, "arms")["reason"].as_str().unwrap().contains("classic"), "{result}");
    assert!(!f.path("bk/arms.json").exists());
    let xml = std::fs::read_to_string(f.path("bk/project.xml")).unwrap();
    assert!(xml.contains("<ClinicalData"), "the project XML has the data");
    assert_eq!(result["record_files"]["downloaded"], 1, "{result}");
    let record_files: Vec<_> = walk(&f.path("bk/record-files"));
    assert_eq!(record_files.len(), 1, "{record_files:?}");
    assert_eq!(std::fs::read(&record_files[0]).unwrap(), b"%PDF-1.4 consent of 1001\n");
    assert_eq!(std::fs::read(f.path("bk/file-repository/protocol.txt")).unwrap(), b"the protocol\n");

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(f.path("bk/backup-manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let protocol = files.iter().find(|e| e["path"] == "file-repository/protocol.txt").expect("listed");
    assert_eq!(protocol["size"], 13);
    assert_eq!(protocol["sha256"].as_str().unwrap().len(), 64);
    assert!(files.iter().any(|e| e["path"] == "project.xml"));
    assert_eq!(manifest["project_id"], result["project_id"]);

    let verified = f.ok(&["backup", "verify", "-q", "--json", "bk"]);
    let v: Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["checked"].as_u64().unwrap() >= 10);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn verify_fails_on_a_changed_or_missing_file() {
    let f = Fixture::new();
    project_with_files(&f);
    cron_backup(&f, "bk");
    f.ok(&["backup", "verify", "bk"]);

    // One byte changed, same size.
    let path = f.path("bk/file-repository/protocol.txt");
    write(&path, b"the protocoL\n");
    let out = f.run(&["backup", "verify", "-q", "--json", "bk"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["changed"], serde_json::json!(["file-repository/protocol.txt"]));

    // Back as it was: passes again; then a deleted file fails, named on stdout.
    write(&path, b"the protocol\n");
    f.ok(&["backup", "verify", "bk"]);
    std::fs::remove_file(f.path("bk/users.json")).unwrap();
    let out = f.run(&["backup", "verify", "bk"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "missing\tusers.json\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 missing"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_rerun_downloads_no_file_repository_file_again() {
    let f = Fixture::new();
    project_with_files(&f);
    let first = cron_backup(&f, "bk");
    assert_eq!(first["file_repository"]["transferred"], 1, "{first}");
    let second = cron_backup(&f, "bk");
    assert_eq!(second["file_repository"]["transferred"], 0, "{second}");
    assert_eq!(second["file_repository"]["skipped"], 1, "{second}");
    f.ok(&["backup", "verify", "bk"]);
}

#[test]
fn parts_refused_for_lack_of_rights_are_skipped_not_failures() {
    let f = Fixture::new();
    project_with_files(&f);
    let pid = f.emu.project_ids()[0];
    let rights =
        redcap_emulator::Rights { user_rights: false, file_repository: false, ..redcap_emulator::Rights::full() };
    let limited = f.emu.add_user(pid, redcap_emulator::User::new("no_admin").rights(rights)).unwrap();
    let out = f.run_as(&limited, &["backup", "-q", "--json", "bk"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["users", "file_repository"] {
        let p = part(&result, name);
        assert_eq!(p["status"], "skipped", "{name}: {result}");
        assert!(p["reason"].as_str().unwrap().contains("HTTP 403"), "{name}: {result}");
    }
    assert_eq!(part(&result, "project_xml")["status"], "saved");
    assert_eq!(result["file_repository"], Value::Null);
    assert!(!f.path("bk/users.json").exists() && !f.path("bk/file-repository").exists());
    let out = f.run_as(&limited, &["backup", "verify", "bk"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
