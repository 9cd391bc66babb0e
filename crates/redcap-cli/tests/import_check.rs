//! `redcap records import --check`, `--diff` and `--only-changed` against the emulator, on two
//! fixture projects: the classic typed-dataset project (validations, choices, checkboxes, a
//! repeating instrument, DAGs) and PyCap's longitudinal test project (events, instrument-event
//! mappings, a repeating instrument in one event). Every mistake is caught before any import
//! request: the emulator's call counter moves by exactly the schema's calls.

use std::path::Path;

use assert_cmd::Command;
use redcap::dataset::blocking::Datasets;
use redcap_emulator::{Emulator, RunningEmulator};

const TYPED_XML: &str = include_str!("../../../tests/fixtures/dataset-typed.xml");
const LONG_XML: &str = include_str!("../../redcap-emulator/fixtures/pycap-test_long_project.xml");

struct Fixture {
    emu: RunningEmulator,
    token: String,
    work: tempfile::TempDir,
    config: tempfile::TempDir,
    /// API calls of one project-schema fetch.
    schema_calls: u64,
}

impl Fixture {
    fn new(xml: &str) -> Fixture {
        let emu = Emulator::builder().project_xml(xml).in_memory().start().expect("emulator starts");
        let pid = emu.project_ids()[0];
        let token = emu.token(pid, redcap_emulator::DEFAULT_ADMIN).expect("admin token");
        let client = redcap::blocking::Client::builder(emu.url(), token.clone()).allow_http(true).build().unwrap();
        let before = emu.faults().calls();
        client.project_schema().unwrap();
        let schema_calls = emu.faults().calls() - before;
        assert!(schema_calls >= 5, "{schema_calls}");
        Fixture { emu, token, work: tempfile::tempdir().unwrap(), config: tempfile::tempdir().unwrap(), schema_calls }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_redcap"))
            .current_dir(self.work.path())
            .env("REDCAP_CONFIG_DIR", self.config.path())
            .env_remove("REDCAP_PROFILE")
            .env("REDCAP_API_URL", self.emu.url())
            .env("REDCAP_API_TOKEN", &self.token)
            .args(args)
            .output()
            .unwrap()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.work.path().join(name), text).unwrap();
    }

    /// Runs `args`, returning (exit code, stdout, stderr, API calls made).
    fn calls(&self, args: &[&str]) -> (i32, String, String, u64) {
        let before = self.emu.faults().calls();
        let out = self.run(args);
        let calls = self.emu.faults().calls() - before;
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(!stdout.contains(&self.token) && !stderr.contains(&self.token));
        (out.status.code().unwrap_or(-1), stdout, stderr, calls)
    }

    fn export(&self, records: &str) -> Vec<serde_json::Value> {
        let out = self.run(&["records", "export", "--records", records]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().unwrap().clone()
    }
}

/// Each (file, json, field expected in the problem, kind).
fn check_each(f: &Fixture, cases: &[(&str, &str, &str)]) {
    for (i, (rows, field, kind)) in cases.iter().enumerate() {
        let name = format!("case{i}.json");
        f.write(&name, rows);
        let (code, stdout, stderr, calls) = f.calls(&["records", "import", &name, "--check"]);
        assert_eq!(code, 1, "case {i} {rows}: {stdout}{stderr}");
        assert_eq!(calls, f.schema_calls, "case {i}: only the schema was fetched, nothing imported");
        assert!(stdout.contains(field) && stderr.contains("nothing was sent"), "case {i}: {stdout}{stderr}");
        let (code, stdout, _, calls) = f.calls(&["--json", "records", "import", &name, "--check"]);
        assert_eq!((code, calls), (1, f.schema_calls));
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let problems = v["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "case {i} {rows}: {problems:#?}");
        let p = &problems[0];
        assert_eq!((p["field"].as_str(), p["kind"].as_str()), (Some(*field), Some(*kind)), "case {i}: {p}");
        assert_eq!(p["row"], 2, "case {i}: the second row, after a clean one");
        assert!(!p["record"].as_str().unwrap().is_empty() && !p["reason"].as_str().unwrap().is_empty());
        // A real import refuses the same rows before sending anything.
        let (code, _, stderr, calls) = f.calls(&["records", "import", &name]);
        if *kind == "out_of_range" {
            continue;
        }
        assert_eq!((code, calls), (1, f.schema_calls), "case {i}: {stderr}");
        assert!(stderr.contains(field) && stderr.contains("--no-check"), "case {i}: {stderr}");
    }
}

#[test]
fn check_catches_each_mistake_on_a_classic_project_before_any_import() {
    let f = Fixture::new(TYPED_XML);
    let row = |cells: &str| format!(r#"[{{"record_id":"7","age":"30"}}, {{"record_id":"7",{cells}}}]"#);
    let cases = [
        (row(r#""agee":"4""#), "agee", "unknown_field"),
        (row(r#""race___2":"1""#), "race___2", "unknown_field"),
        (row(r#""sex":"Male""#), "sex", "label"),
        (row(r#""consent":"Yes""#), "consent", "label"),
        (row(r#""race___ab":"2""#), "race___ab", "checkbox_value"),
        (row(r#""sex":"3""#), "sex", "not_a_choice"),
        (row(r#""drug":"c3","redcap_repeat_instrument":"meds","redcap_repeat_instance":"1""#), "drug", "not_a_choice"),
        (row(r#""dob":"31/12/1980""#), "dob", "format"),
        (row(r#""age":"thirty""#), "age", "format"),
        (row(r#""weight":"1,5""#), "weight", "format"),
        (row(r#""dose":"1.5","redcap_repeat_instrument":"meds","redcap_repeat_instance":"1""#), "dose", "format"),
        (row(r#""wake":"25:00""#), "wake", "format"),
        // PyCap#154: a repeating instrument's value on a row without its instrument and instance.
        (row(r#""drug":"a1""#), "drug", "repeat_missing"),
        (
            row(r#""redcap_repeat_instrument":"enrol","redcap_repeat_instance":"1","name":"x""#),
            "redcap_repeat_instrument",
            "not_repeating",
        ),
        (row(r#""redcap_event_name":"event_1_arm_1""#), "redcap_event_name", "unknown_event"),
        (row(r#""redcap_data_access_group":"east""#), "redcap_data_access_group", "unknown_dag"),
    ];
    let cases: Vec<(&str, &str, &str)> = cases.iter().map(|(r, f, k)| (r.as_str(), *f, *k)).collect();
    // The imports were all refused: the record is as the fixture has it.
    let before = f.export("7");
    check_each(&f, &cases);
    assert_eq!(f.export("7"), before);

    // The date format of the import decides how dates are read (`dob` is `date_dmy`; the
    // file is in DMY).
    f.write("dmy.csv", "record_id,dob\n7,31/12/1980\n");
    let (code, _, stderr, _) = f.calls(&["records", "import", "dmy.csv", "--check", "--date-format", "dmy"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("No problems in 1 row"), "{stderr}");
}

#[test]
fn check_catches_event_and_repeat_mistakes_on_a_longitudinal_project() {
    let f = Fixture::new(LONG_XML);
    let row = |cells: &str| {
        format!(r#"[{{"study_id":"1","redcap_event_name":"enrollment_arm_1","sex":"1"}}, {{"study_id":"1",{cells}}}]"#)
    };
    let cases = [
        (row(r#""sex":"0""#), "redcap_event_name", "event_missing"),
        (row(r#""redcap_event_name":"week_9_arm_1","sex":"0""#), "redcap_event_name", "unknown_event"),
        // PyCap#142: demographics is not designated for dose_1_arm_1.
        (row(r#""redcap_event_name":"dose_1_arm_1","sex":"0""#), "sex", "not_designated"),
        // PyCap#154: baseline_data repeats in enrollment_arm_1.
        (row(r#""redcap_event_name":"enrollment_arm_1","height2":"170""#), "height2", "repeat_missing"),
        (
            row(
                r#""redcap_event_name":"enrollment_arm_1","redcap_repeat_instrument":"demographics","redcap_repeat_instance":"1","sex":"0""#,
            ),
            "redcap_repeat_instrument",
            "not_repeating",
        ),
        (
            row(
                r#""redcap_event_name":"enrollment_arm_1","redcap_repeat_instrument":"baseline_data","redcap_repeat_instance":"1","sex":"0""#,
            ),
            "sex",
            "other_instrument",
        ),
        (row(r#""redcap_event_name":"enrollment_arm_1","sex":"Female""#), "sex", "label"),
        (row(r#""redcap_event_name":"enrollment_arm_1","email":"nobody""#), "email", "format"),
        (row(r#""redcap_event_name":"enrollment_arm_1","gym___9":"1""#), "gym___9", "unknown_field"),
    ];
    let cases: Vec<(&str, &str, &str)> = cases.iter().map(|(r, f, k)| (r.as_str(), *f, *k)).collect();
    check_each(&f, &cases);
    // A right repeating row passes.
    f.write(
        "ok.json",
        r#"[{"study_id":"1","redcap_event_name":"enrollment_arm_1","redcap_repeat_instrument":"baseline_data","redcap_repeat_instance":"new","height2":"170"}]"#,
    );
    let (code, _, stderr, calls) = f.calls(&["records", "import", "ok.json", "--check"]);
    assert_eq!((code, calls), (0, f.schema_calls), "{stderr}");
}

#[test]
fn diff_shows_changes_and_only_changed_sends_them() {
    let f = Fixture::new(TYPED_XML);
    let stored = f.export("0042");
    let base = stored.iter().find(|r| r["redcap_repeat_instrument"] == "").unwrap().clone();
    let cell = |k: &str| base[k].as_str().unwrap().to_owned();
    assert_ne!(cell("name"), "", "the fixture's record 0042 has a name");
    let new_age = if cell("age") == "41" { "42" } else { "41" };
    // Unchanged name, a new age, a blank sex (kept, or blanked with --overwrite), a new record.
    let import = format!(
        r#"[{{"record_id":"0042","name":"{}","age":"{new_age}","sex":""}}, {{"record_id":"900","name":"New"}}]"#,
        cell("name")
    );
    f.write("change.json", &import);

    let (code, stdout, stderr, calls) = f.calls(&["--json", "records", "import", "change.json", "--diff"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let changes: Vec<(String, String, String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
            (s("record"), s("field"), s("new"), s("kind"))
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        changes,
        vec![(s("0042"), s("age"), s(new_age), s("changed")), (s("900"), s("name"), s("New"), s("added"))]
    );
    assert_eq!(v["new_records"], 1);
    assert!(calls > f.schema_calls, "the diff exports the stored records");
    assert_eq!(f.export("0042"), stored, "--diff sends nothing");
    assert!(f.export("900").is_empty());

    let had_sex = !cell("sex").is_empty();
    let (code, stdout, _, _) = f.calls(&["--json", "records", "import", "change.json", "--diff", "--overwrite"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let blanked = v["changes"].as_array().unwrap().iter().any(|c| c["field"] == "sex" && c["kind"] == "blanked");
    assert_eq!(blanked, had_sex, "--overwrite would blank the stored sex: {v}");

    // Table output names the cells.
    let (code, stdout, stderr, _) = f.calls(&["records", "import", "change.json", "--diff"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("age") && stdout.contains(new_age), "{stdout}");
    assert!(stderr.contains("2 cells would change in 2 rows (1 new record)"), "{stderr}");

    let (code, stdout, stderr, _) = f.calls(&["--json", "records", "import", "change.json", "--only-changed"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Sending 2 changed cells in 2 of 2 rows"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["rows"], 2);
    let after = f.export("0042");
    let after_base = after.iter().find(|r| r["redcap_repeat_instrument"] == "").unwrap();
    assert_eq!(after_base["age"], new_age);
    assert_eq!(after_base["sex"], base["sex"], "a blank cell without --overwrite keeps the value");
    assert_eq!(f.export("900")[0]["name"], "New");

    // Nothing left to change: nothing is imported.
    let (code, _, stderr, calls) = f.calls(&["records", "import", "change.json", "--only-changed"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Nothing to change"), "{stderr}");
    let (_, _, _, diff_calls) = f.calls(&["records", "import", "change.json", "--diff"]);
    assert_eq!(calls, diff_calls, "no import call after the diff's export");
    assert!(Path::new(&f.work.path().join("change.json")).exists());
}
