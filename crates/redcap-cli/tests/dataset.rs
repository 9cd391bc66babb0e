//! `redcap dataset pull` as a subprocess against the emulator (the demo project).

use assert_cmd::Command;
use redcap_emulator::Emulator;

const DEMO_XML: &str = include_str!("../demo/demo-project.xml");

#[test]
fn dataset_pull_writes_typed_tables_a_dictionary_problems_and_a_manifest() {
    let emu = Emulator::builder().project_xml(DEMO_XML).in_memory().start().expect("emulator starts");
    let pid = emu.project_ids()[0];
    let token = emu.token(pid, redcap_emulator::DEFAULT_ADMIN).expect("admin token");
    let work = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_redcap"))
            .current_dir(work.path())
            .env("REDCAP_CONFIG_DIR", config.path())
            .env_remove("REDCAP_PROFILE")
            .env("REDCAP_API_URL", emu.url())
            .env("REDCAP_API_TOKEN", &token)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["dataset", "pull", "study", "--batch-size", "2", "--labels"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(&token) && !String::from_utf8_lossy(&out.stdout).contains(&token));
    assert!(stderr.contains("Pulled ") && stderr.contains(" into study"), "{stderr}");
    let dir = work.path().join("study");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("_manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["options"]["layout"]["labels"], true);
    let tables = manifest["tables"].as_object().unwrap();
    assert!(tables.contains_key("_dictionary") && tables.contains_key("_problems"));
    for (name, entry) in tables {
        let file = dir.join(entry["file"].as_str().unwrap());
        assert!(file.exists(), "{name}");
        assert!(file.extension().is_some_and(|e| e == "parquet"));
    }
    assert!(manifest["records"].as_u64().unwrap() > 0);

    let out = run(&["dataset", "pull", "csv", "--format", "csv", "--forms", "nope"]);
    assert_eq!(out.status.code(), Some(2), "an unknown instrument is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no instrument `nope`"));

    let out = run(&["-q", "--json", "dataset", "pull", "arrow", "--format", "arrow"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "-q: nothing on stderr");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints the manifest");
    assert_eq!(printed["tables"]["_dictionary"]["file"], "_dictionary.arrow");
    assert!(work.path().join("arrow/_dictionary.arrow").exists());
}

#[test]
fn dataset_sync_updates_in_place_prints_a_json_summary_and_refuses_a_directory_without_a_dataset() {
    let emu = Emulator::builder().project_xml(DEMO_XML).in_memory().start().expect("emulator starts");
    let pid = emu.project_ids()[0];
    let token = emu.token(pid, redcap_emulator::DEFAULT_ADMIN).expect("admin token");
    let work = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_redcap"))
            .current_dir(work.path())
            .env("REDCAP_CONFIG_DIR", config.path())
            .env_remove("REDCAP_PROFILE")
            .env("REDCAP_API_URL", emu.url())
            .env("REDCAP_API_TOKEN", &token)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["dataset", "pull", "study"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("study/_manifest.json")).unwrap()).unwrap();
    assert!(before["watermark"].is_string(), "the pull takes a watermark: {before}");

    let out = run(&["--json", "dataset", "sync", "study", "--parallel", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(&token) && !String::from_utf8_lossy(&out.stdout).contains(&token));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints the summary");
    assert_eq!(summary["rebuilt"], serde_json::Value::Null, "{summary}");
    assert_eq!(summary["dropped"], 0, "{summary}");
    assert_eq!(summary["records"], before["records"]);
    assert!(stderr.contains("Synced study:"), "{stderr}");

    let out = run(&["dataset", "sync", "nothing-here"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a dataset"));
}

/// A dataset pulled with `--forms sleep_diary`, then the instrument removed from the
/// dictionary: the sync stops with a clear message before reading anything else, and leaves the
/// dataset as it was (a rebuild without the instrument would quietly change what it holds).
#[test]
fn dataset_sync_of_a_pull_whose_instrument_was_removed_fails_clearly_and_keeps_the_dataset() {
    let emu = Emulator::builder().project_xml(DEMO_XML).in_memory().start().expect("emulator starts");
    let pid = emu.project_ids()[0];
    let token = emu.token(pid, redcap_emulator::DEFAULT_ADMIN).expect("admin token");
    let work = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_redcap"))
            .current_dir(work.path())
            .env("REDCAP_CONFIG_DIR", config.path())
            .env_remove("REDCAP_PROFILE")
            .env("REDCAP_API_URL", emu.url())
            .env("REDCAP_API_TOKEN", &token)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["dataset", "pull", "study", "--forms", "sleep_diary"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest = std::fs::read(work.path().join("study/_manifest.json")).unwrap();

    let client = redcap::blocking::Client::builder(emu.url(), &token).allow_http(true).build().unwrap();
    let fields = client.call(&redcap::metadata::export::Request::new()).unwrap().raw().rows().unwrap();
    let kept: Vec<serde_json::Value> =
        fields.into_iter().filter(|f| f["form_name"] != "sleep_diary").map(serde_json::Value::Object).collect();
    client.call(&redcap::metadata::import::Request::new(serde_json::Value::Array(kept).to_string())).unwrap();

    let out = run(&["dataset", "sync", "study"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pulled with --forms sleep_diary") && stderr.contains("no longer has instrument `sleep_diary`"),
        "{stderr}"
    );
    assert!(stderr.contains("redcap dataset pull DIR --forms"), "the way out: {stderr}");
    assert_eq!(std::fs::read(work.path().join("study/_manifest.json")).unwrap(), manifest, "left as it was");
}
