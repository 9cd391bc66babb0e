//! What PyCap 2.7.0's doctests (recorded against redcapdemo.vumc.org; run by `cargo xtask
//! compat`) show REDCap answering, each test naming the doctest it follows.

use crate::common::*;
use redcap_emulator::{Emulator, RunningEmulator};
use serde_json::{Value, json};

fn call(emu: &RunningEmulator, t: &str, fields: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", t), ("format", "json"), ("returnFormat", "json")];
    f.extend_from_slice(fields);
    post(&emu.url(), &f)
}

fn header(csv: &str) -> Vec<String> {
    csv.lines().next().unwrap_or_default().split(',').map(str::to_owned).collect()
}

/// The rights columns of a user, in REDCap's order, after the identity columns.
const USER_RIGHTS: &[&str] = &[
    "design",
    "alerts",
    "user_rights",
    "data_access_groups",
    "reports",
    "stats_and_charts",
    "manage_survey_participants",
    "calendar",
    "data_import_tool",
    "data_comparison_tool",
    "logging",
    "email_logging",
    "file_repository",
    "data_quality_create",
    "data_quality_execute",
    "api_export",
    "api_import",
    "api_modules",
    "mobile_app",
    "mobile_app_download_data",
    "record_create",
    "record_rename",
    "record_delete",
];

/// PyCap 2.7.0 doctest redcap.methods.users.Users.export_users: `'expiration': '',
/// 'data_access_group': '', 'data_access_group_id': '', 'design': 1, 'alerts': 1, 'user_rights': 1,
/// 'data_access_groups': 1, 'reports': 1, ...` for the project's creator; the locking rights in the
/// order of the doctest redcap.methods.users.Users.import_users and REDCapR's users-export
/// fixture; `data_access_group_label` only from REDCap 16.0.0 (redcapAPI's user-structure test).
#[test]
fn users_export_columns_and_the_creators_rights() {
    let emu = start(&["pycap-doctest_project.xml"]);
    let t = admin(&emu);
    let csv = call(&emu, &t, &[("content", "user"), ("format", "csv")]).text();
    let mut want: Vec<&str> =
        vec!["username", "email", "firstname", "lastname", "expiration", "data_access_group", "data_access_group_id"];
    want.extend_from_slice(USER_RIGHTS);
    want.extend_from_slice(&[
        "lock_records_all_forms",
        "lock_records",
        "lock_records_customization",
        "forms",
        "forms_export",
    ]);
    assert_eq!(header(&csv), want);
    let users = call(&emu, &t, &[("content", "user")]).json();
    let me = &users[0];
    for right in ["design", "alerts", "user_rights", "data_access_groups", "reports", "stats_and_charts", "calendar"] {
        assert_eq!(me[right], 1, "{right} in {me}");
    }
    assert_eq!((me["expiration"].clone(), me["data_access_group_id"].clone()), (json!(""), json!("")));

    let mut b = Emulator::builder().in_memory().deterministic_tokens(7).version("16.0.0");
    b = b.project_xml_file(fixture("pycap-doctest_project.xml")).unwrap();
    let v16 = b.start().unwrap();
    let csv = call(&v16, &admin(&v16), &[("content", "user"), ("format", "csv")]).text();
    let cols = header(&csv);
    let at = cols.iter().position(|c| c == "data_access_group_id").unwrap();
    assert_eq!(cols[at + 1], "data_access_group_label", "{cols:?}");
}

/// PyCap 2.7.0 doctest redcap.methods.user_roles.UserRoles.export_user_roles: the rights of
/// `Test role` (from the project XML) as strings, `'record_delete': '0',
/// 'lock_records_customization': '0', 'lock_records': '0', ..., 'forms': {'form_1': 2},
/// 'forms_export': {'form_1': 0}`.
#[test]
fn roles_export_columns_and_values() {
    let emu = start(&["pycap-doctest_project.xml"]);
    let t = admin(&emu);
    let csv = call(&emu, &t, &[("content", "userRole"), ("format", "csv")]).text();
    let mut want = vec!["unique_role_name", "role_label"];
    want.extend_from_slice(USER_RIGHTS);
    want.extend_from_slice(&[
        "lock_records_customization",
        "lock_records",
        "lock_records_all_forms",
        "forms",
        "forms_export",
    ]);
    assert_eq!(header(&csv), want);
    let roles = call(&emu, &t, &[("content", "userRole")]).json();
    let role = &roles[0];
    assert_eq!(role["role_label"], "Test role");
    for right in USER_RIGHTS {
        assert_eq!(role[*right], "0", "{right} in {role}");
    }
    assert_eq!((role["forms"].clone(), role["forms_export"].clone()), (json!({"form_1": 2}), json!({"form_1": 0})));
}

/// PyCap 2.7.0 doctest redcap.methods.records.Records.export_records: the label export shows
/// `"Event 1"` (no arm) although the doctests before it left an arm 2 without events; REDCap's
/// project XML names an event with its arm once events are in several arms (REDCapR's
/// arm-multiple-delete fixture: `Name="Event 1 (Arm 1: Arm 1)"`).
#[test]
fn event_labels_name_the_arm_only_when_events_are_in_several_arms() {
    let emu = start(&["pycap-doctest_project.xml"]);
    let t = admin(&emu);
    let labels = |emu: &RunningEmulator| {
        call(
            emu,
            &t,
            &[
                ("content", "record"),
                ("format", "csv"),
                ("fields[0]", "field_1"),
                ("fields[1]", "checkbox_field"),
                // PyCap adds the record id field to the fields asked for.
                ("fields[2]", "record_id"),
                ("rawOrLabel", "label"),
            ],
        )
        .text()
    };
    let doctest = "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,field_1,checkbox_field___1,checkbox_field___2\n\
                   1,\"Event 1\",,1,Yes,Unchecked,Checked\n2,\"Event 1\",,1,No,Unchecked,Unchecked\n";
    // The doctest redcap.methods.records.Records.delete_records, run before, deletes record 3.
    call(&emu, &t, &[("content", "record"), ("action", "delete"), ("records[0]", "3")]).expect(200, "1");
    assert_eq!(labels(&emu), doctest);
    call(&emu, &t, &[("content", "arm"), ("action", "import"), ("data", r#"[{"arm_num": 2, "name": "Arm 2"}]"#)])
        .expect(200, "1");
    assert_eq!(labels(&emu), doctest, "an arm without events changes no label");
    let xml =
        |emu: &RunningEmulator| call(emu, &t, &[("content", "project_xml"), ("returnMetadataOnly", "true")]).text();
    assert!(xml(&emu).contains(r#"<StudyEventDef OID="Event.event_1_arm_1" Name="Event 1" "#), "{}", xml(&emu));
    let event = r#"[{"event_name": "Event 1", "arm_num": 2, "unique_event_name": "event_1_arm_2"}]"#;
    call(&emu, &t, &[("content", "event"), ("action", "import"), ("data", event)]).expect(200, "1");
    assert!(labels(&emu).contains("1,\"Event 1 (Arm 1: Arm 1)\",,1,Yes"), "{}", labels(&emu));
    assert!(xml(&emu).contains(r#"Name="Event 1 (Arm 2: Arm 2)""#));
}

/// PyCap 2.7.0 doctest redcap.methods.logging.Logging.export_logging: project creation is logged
/// with action `'Manage/Design '` (trailing space) and details `'Create project ...'`.
#[test]
fn project_creation_is_logged_as_redcap_logs_it() {
    let emu = Emulator::builder().in_memory().deterministic_tokens(7).start().unwrap();
    let xml = std::fs::read_to_string(fixture("pycap-doctest_project.xml")).unwrap();
    let info = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><item><project_title>Doctest</project_title><purpose>0</purpose></item>";
    let r = post(
        &emu.url(),
        &[("token", &emu.super_token()), ("content", "project"), ("format", "xml"), ("data", info), ("odm", &xml)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.text();
    let log = call(&emu, &token, &[("content", "log")]).json();
    let creation: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["details"].as_str().unwrap().starts_with("Create project"))
        .collect();
    assert_eq!(creation.len(), 1, "{log}");
    assert_eq!(creation[0]["action"], "Manage/Design ");
    // The doctest's `'details': 'Create project ...'}, ...]`: older entries follow it (the
    // records of the XML, written before it).
    let entries = log.as_array().unwrap();
    let at = entries.iter().position(|r| r["details"] == "Create project (API)").unwrap();
    let older: Vec<&str> = entries[at + 1..].iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(older, ["Create record (API) 3", "Create record (API) 2", "Create record (API) 1"]);
}

/// PyCap 2.7.0 doctest redcap.methods.data_access_groups.DataAccessGroups.import_user_dag_assignment:
/// users come in username order (`pandeharris@gmail.com` before the creator).
#[test]
fn user_dag_mapping_in_username_order() {
    let mut b = Emulator::builder().in_memory().deterministic_tokens(7).admin_username("pycap_superuser");
    b = b.project_xml_file(fixture("pycap-doctest_project.xml")).unwrap();
    let emu = b.start().unwrap();
    let t = emu.token(emu.project_ids()[0], "pycap_superuser").unwrap();
    call(&emu, &t, &[("content", "user"), ("data", r#"[{"username": "pandeharris@gmail.com"}]"#)]).expect(200, "1");
    let map = r#"[{"username": "pandeharris@gmail.com", "redcap_data_access_group": "test_dag"}]"#;
    call(&emu, &t, &[("content", "userDagMapping"), ("action", "import"), ("data", map)]).expect(200, "1");
    assert_eq!(
        call(&emu, &t, &[("content", "userDagMapping")]).json(),
        json!([{"username": "pandeharris@gmail.com", "redcap_data_access_group": "test_dag"},
               {"username": "pycap_superuser", "redcap_data_access_group": ""}])
    );
}

/// An import into an instrument not designated for the event names the event by its label, arm
/// included where events are in several arms (redcapAPI PR #348 records REDCap's message:
/// `… not designated for the event named 'event_1 (Arm 1: Arm 1)'. You are not allowed to import
/// data for this field into this event.`).
#[test]
fn undesignated_import_names_the_event_by_its_label() {
    let emu = start(&["redcapr-longitudinal.xml"]);
    let t = admin(&emu);
    let data = r#"[{"study_id": "1", "redcap_event_name": "dose_1_arm_1", "first_name": "X"}]"#;
    let r = call(&emu, &t, &[("content", "record"), ("data", data)]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains(
            "not designated for the event named 'Dose 1 (Arm 1: Drug A)'. You are not allowed to import data for this field into this event."
        ),
        "{}",
        r.text()
    );
}

/// PHPCap's integration test testImportRepeatingIntrumentsAndEventsWithSuperToken: a project
/// created through the super token from PHPCapRepeatingForms.REDCap.xml (no repeating setup),
/// then the repeating setup imported as CSV (`1`), exported as CSV with the classic project's two
/// columns: `form_name,custom_form_label\nweight,[weight_date] [weight_time]\n`.
#[test]
fn repeating_setup_of_a_created_classic_project() {
    let emu = Emulator::builder().in_memory().deterministic_tokens(7).start().unwrap();
    let odm = std::fs::read_to_string(fixture("phpcap-PHPCapRepeatingForms.xml")).unwrap();
    let info = r#"[{"project_title": "PHPCap Created Project for Repeating Forms Test", "purpose": "1", "purpose_other": "PHPCap project creation for testing Import Repeating Instruments and Events"}]"#;
    let r = post(
        &emu.url(),
        &[("token", &emu.super_token()), ("content", "project"), ("format", "json"), ("data", info), ("odm", &odm)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.text();
    let setup = "form_name,custom_form_label\nweight,[weight_date] [weight_time]\n";
    call(&emu, &token, &[("content", "repeatingFormsEvents"), ("format", "csv"), ("data", setup)]).expect(200, "1");
    call(&emu, &token, &[("content", "repeatingFormsEvents"), ("format", "csv")]).expect(200, setup);
}
