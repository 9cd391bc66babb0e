//! Writes of users, roles, DAGs and their mappings, and Switch DAG.

use crate::common::*;
use redcap_emulator::{Rights, RunningEmulator, User};
use serde_json::{Value, json};

fn call(emu: &RunningEmulator, t: &str, fields: &[(&str, &str)]) -> Resp {
    let mut f = vec![("token", t), ("format", "json"), ("returnFormat", "json")];
    f.extend_from_slice(fields);
    post(&emu.url(), &f)
}

fn import(emu: &RunningEmulator, t: &str, content: &str, data: &Value, extra: &[(&str, &str)]) -> Resp {
    let data = data.to_string();
    let mut f = vec![("content", content), ("data", data.as_str())];
    f.extend_from_slice(extra);
    call(emu, t, &f)
}

fn find(list: &Value, key: &str, value: &str) -> Option<Value> {
    list.as_array().unwrap().iter().find(|x| x[key] == value).cloned()
}

#[test]
fn dags_create_rename_delete() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let data = json!([{"data_access_group_name": "Site C", "unique_group_name": ""}, {"data_access_group_name": "Renamed One", "unique_group_name": "dag_1"}]);
    import(&emu, &t, "dag", &data, &[("action", "import")]).expect(200, "2");
    let dags = call(&emu, &t, &[("content", "dag")]).json();
    assert!(find(&dags, "unique_group_name", "site_c").is_some(), "{dags}");
    let renamed = find(&dags, "data_access_group_name", "Renamed One").unwrap();
    assert_eq!(renamed["unique_group_name"], "renamed_one", "the unique name follows the label");
    let recs =
        call(&emu, &t, &[("content", "record"), ("fields[0]", "record_id"), ("exportDataAccessGroups", "true")]).json();
    assert_eq!(recs[0]["redcap_data_access_group"], "renamed_one", "records stay in the renamed DAG");
    // A second "Site C" gets a distinct unique name.
    import(
        &emu,
        &t,
        "dag",
        &json!([{"data_access_group_name": "Site C", "unique_group_name": ""}]),
        &[("action", "import")],
    )
    .expect(200, "1");
    assert!(find(&call(&emu, &t, &[("content", "dag")]).json(), "unique_group_name", "site_c_2").is_some());
    let r = import(
        &emu,
        &t,
        "dag",
        &json!([{"data_access_group_name": "X", "unique_group_name": "nope"}]),
        &[("action", "import")],
    );
    assert_eq!(r.status, 400);
    // Delete: records become unassigned.
    call(&emu, &t, &[("content", "dag"), ("action", "delete"), ("dags[0]", "renamed_one")]).expect(200, "1");
    let recs =
        call(&emu, &t, &[("content", "record"), ("fields[0]", "record_id"), ("exportDataAccessGroups", "true")]).json();
    assert_eq!(recs[0]["redcap_data_access_group"], "");
    call(&emu, &t, &[("content", "dag"), ("action", "delete"), ("dags[0]", "renamed_one")])
        .expect(400, "{\"error\":\"The following values in the parameter \\\"dags\\\" are not valid: 'renamed_one'\"}");
    let pid = emu.project_ids()[0];
    let nodag =
        emu.add_user(pid, User::new("nodag").rights(Rights { data_access_groups: false, ..Rights::full() })).unwrap();
    import(&emu, &nodag, "dag", &json!([{"data_access_group_name": "Z", "unique_group_name": ""}]), &[("action", "import")]).expect(
        400,
        "{\"error\":\"Insufficient user privileges: You must have 'API Import/Update' privileges and 'Data Access Groups' privileges in the project.\"}",
    );
    let log = call(&emu, &t, &[("content", "log"), ("logtype", "manage")]).json();
    let details: Vec<&str> = log.as_array().unwrap().iter().map(|r| r["details"].as_str().unwrap()).collect();
    assert!(details.contains(&"Create data access group 'site_c' (API)"), "{details:?}");
    assert!(details.contains(&"Delete data access group 'renamed_one' (API)"), "{details:?}");
}

#[test]
fn user_dag_mapping_and_switch_dag() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let site = emu.add_user(pid, User::new("site").dag("dag_1")).unwrap();
    let ids = |tok: &str| -> Vec<String> {
        call(&emu, tok, &[("content", "record"), ("fields[0]", "record_id")])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["record_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&site), ["1", "2", "3"]);
    // Without a DAG Switcher entry the switch is refused.
    let r = call(&emu, &site, &[("content", "dag"), ("action", "switch"), ("dag", "dag_2")]);
    assert_eq!(r.status, 400);
    emu.set_dag_switcher(pid, "site", &["dag_1", "dag_2"]).unwrap();
    call(&emu, &site, &[("content", "dag"), ("action", "switch"), ("dag", "dag_2")]).expect(200, "1");
    assert_eq!(ids(&site), ["5"]);
    assert_eq!(
        call(&emu, &site, &[("content", "dag"), ("action", "switch"), ("dag", "")]).status,
        400,
        "no DAG is not on the list"
    );
    assert_eq!(call(&emu, &site, &[("content", "dag"), ("action", "switch"), ("dag", "nope")]).status, 400);
    // User-DAG assignments.
    import(
        &emu,
        &t,
        "userDagMapping",
        &json!([{"username": "site", "redcap_data_access_group": ""}]),
        &[("action", "import")],
    )
    .expect(200, "1");
    assert_eq!(ids(&site).len(), 5);
    let map = call(&emu, &t, &[("content", "userDagMapping")]).json();
    assert_eq!(find(&map, "username", "site").unwrap()["redcap_data_access_group"], "");
    let r =
        import(&emu, &t, "userDagMapping", &json!([{"username": "ghost", "redcap_data_access_group": "dag_1"}]), &[]);
    assert_eq!(r.status, 400);
    let r = import(&emu, &t, "userDagMapping", &json!([{"username": "site", "redcap_data_access_group": "nope"}]), &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn users_import_update_and_delete() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let data = json!([{"username": "newbie", "email": "n@example.org", "firstname": "New", "lastname": "Bie",
        "api_export": "1", "data_access_group": "dag_1", "forms_export": {"demographics": 2, "health": 2}}]);
    import(&emu, &t, "user", &data, &[]).expect(200, "1");
    let users = call(&emu, &t, &[("content", "user")]).json();
    let nb = find(&users, "username", "newbie").unwrap();
    assert_eq!(
        (nb["email"].as_str(), nb["api_export"].as_i64(), nb["api_import"].as_i64()),
        (Some("n@example.org"), Some(1), Some(0))
    );
    assert_eq!((nb["design"].as_i64(), nb["data_access_group"].as_str()), (Some(0), Some("dag_1")));
    assert_eq!(nb["forms_export"]["health"], 2, "de-identified");
    assert_eq!(emu.token(pid, "newbie"), None, "imported users get no token");
    // An update changes only what the row holds.
    import(&emu, &t, "user", &json!([{"username": "newbie", "api_import": 1}]), &[]).expect(200, "1");
    let nb = find(&call(&emu, &t, &[("content", "user")]).json(), "username", "newbie").unwrap();
    assert_eq!(
        (nb["api_export"].as_i64(), nb["api_import"].as_i64(), nb["email"].as_str()),
        (Some(1), Some(1), Some("n@example.org"))
    );
    // CSV forms_export cells and errors.
    let csv = "username,api_export,forms_export\nother,1,\"demographics:1,health:0\"\n";
    post(&emu.url(), &[("token", &t), ("content", "user"), ("format", "csv"), ("data", csv)]).expect(200, "1");
    let r = import(&emu, &t, "user", &json!([{"username": "x", "api_export": "yes"}]), &[]);
    assert_eq!(r.status, 400);
    assert_eq!(import(&emu, &t, "user", &json!([{"username": "x", "data_access_group": "nope"}]), &[]).status, 400);
    // Delete: the user and their token are gone.
    let tok = emu.add_user(pid, User::new("leaver")).unwrap();
    call(&emu, &t, &[("content", "user"), ("action", "delete"), ("users[0]", "leaver"), ("users[1]", "newbie")])
        .expect(200, "2");
    assert!(find(&call(&emu, &t, &[("content", "user")]).json(), "username", "leaver").is_none());
    assert_eq!(call(&emu, &tok, &[("content", "version")]).status, 403);
    assert_eq!(call(&emu, &t, &[("content", "user"), ("action", "delete"), ("users[0]", "ghost")]).status, 400);
    let nur = emu.add_user(pid, User::new("nur").rights(Rights { user_rights: false, ..Rights::full() })).unwrap();
    import(&emu, &nur, "user", &json!([{"username": "y"}]), &[])
        .expect(403, "{\"error\":\"You do not have User Rights privileges\"}");
    let log = call(&emu, &t, &[("content", "log"), ("logtype", "user")]).json();
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"Add user") && actions.contains(&"Edit user") && actions.contains(&"Delete user"),
        "{actions:?}"
    );
}

#[test]
fn roles_import_assign_and_delete() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    import(
        &emu,
        &t,
        "userRole",
        &json!([{"unique_role_name": "", "role_label": "Reviewers", "api_export": "1", "data_export": "2"}]),
        &[],
    )
    .expect(200, "1");
    let roles = call(&emu, &t, &[("content", "userRole")]).json();
    let rev = find(&roles, "role_label", "Reviewers").unwrap();
    let unique = rev["unique_role_name"].as_str().unwrap().to_owned();
    assert!(unique.starts_with("U-") && unique.len() == 12, "{unique}");
    assert_eq!((rev["api_export"].as_str(), rev["api_import"].as_str()), (Some("1"), Some("0")));
    import(
        &emu,
        &t,
        "userRole",
        &json!([{"unique_role_name": unique, "role_label": "Readers", "api_import": "1"}]),
        &[],
    )
    .expect(200, "1");
    let rev = find(&call(&emu, &t, &[("content", "userRole")]).json(), "unique_role_name", &unique).unwrap();
    assert_eq!(
        (rev["role_label"].as_str(), rev["api_import"].as_str(), rev["api_export"].as_str()),
        (Some("Readers"), Some("1"), Some("1"))
    );
    assert_eq!(
        import(&emu, &t, "userRole", &json!([{"unique_role_name": "U-NOPE", "role_label": "x"}]), &[]).status,
        400
    );
    assert_eq!(import(&emu, &t, "userRole", &json!([{"unique_role_name": ""}]), &[]).status, 400);
    // Assign (the role's rights then apply) with a DAG, as PyCap sends it (no action).
    let tok = emu.add_user(pid, User::new("member").rights(Rights::none())).unwrap();
    assert_eq!(call(&emu, &tok, &[("content", "version")]).status, 403);
    import(
        &emu,
        &t,
        "userRoleMapping",
        &json!([{"username": "member", "unique_role_name": unique, "data_access_group": "dag_2"}]),
        &[],
    )
    .expect(200, "1");
    assert_eq!(call(&emu, &tok, &[("content", "version")]).status, 200, "the role grants API Export");
    let map = call(&emu, &t, &[("content", "userRoleMapping")]).json();
    assert_eq!(
        find(&map, "username", "member").unwrap(),
        json!({"username": "member", "unique_role_name": unique, "data_access_group": "dag_2"})
    );
    assert_eq!(
        import(&emu, &t, "userRoleMapping", &json!([{"username": "member", "unique_role_name": "U-NOPE"}]), &[]).status,
        400
    );
    // Delete: the member keeps the rights the role gave.
    call(&emu, &t, &[("content", "userRole"), ("action", "delete"), ("roles[0]", &unique)]).expect(200, "1");
    assert!(find(&call(&emu, &t, &[("content", "userRole")]).json(), "unique_role_name", &unique).is_none());
    let map = call(&emu, &t, &[("content", "userRoleMapping")]).json();
    assert_eq!(find(&map, "username", "member").unwrap()["unique_role_name"], "");
    assert_eq!(call(&emu, &tok, &[("content", "version")]).status, 200);
    assert_eq!(call(&emu, &t, &[("content", "userRole"), ("action", "delete"), ("roles[0]", &unique)]).status, 400);
    // Blank role removes an assignment.
    let api = "U-639NX7EKW8";
    import(
        &emu,
        &t,
        "userRoleMapping",
        &json!([{"username": "member", "unique_role_name": api}]),
        &[("action", "import")],
    )
    .expect(200, "1");
    import(&emu, &t, "userRoleMapping", &json!([{"username": "member", "unique_role_name": ""}]), &[]).expect(200, "1");
    assert_eq!(
        find(&call(&emu, &t, &[("content", "userRoleMapping")]).json(), "username", "member").unwrap()["unique_role_name"],
        ""
    );
}

/// Security (issue 12): a user assigned to a DAG cannot manage DAGs or DAG assignments, even
/// with every right (what `redcap-emulator token add --dag` grants). Public evidence: REDCap's
/// DAG help as institutions publish it — "An unassigned user has access to all records across all
/// DAG. They are able to create and modify DAG." (University of York REDCap wiki) and "Users that
/// are not assigned to a DAG may interact with all participant records and may also reassign
/// participants from one DAG to another" (QMUL REDCap docs); a DAG-assigned user with User Rights
/// manages only the users of their own group (redcapAPI issue #500 shows that a user import
/// without `data_access_group` un-assigns the user, which is exactly the escape closed here).
#[test]
fn dag_assigned_users_cannot_manage_dags_or_assignments() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let site = emu.add_user(pid, User::new("site").dag("dag_1")).unwrap();
    emu.add_user(pid, User::new("peer").dag("dag_1").rights(Rights::none())).unwrap();
    emu.add_user(pid, User::new("other").dag("dag_2").rights(Rights::none())).unwrap();
    let mapping = |who: &str| -> Value {
        find(&call(&emu, &t, &[("content", "userDagMapping")]).json(), "username", who).unwrap()
            ["redcap_data_access_group"]
            .clone()
    };
    let dags_before = call(&emu, &t, &[("content", "dag")]).json();
    let refused = |r: Resp, what: &str| {
        assert!(matches!(r.status, 400 | 403), "{what}: {} {}", r.status, r.text());
    };
    // DAG methods.
    refused(
        import(
            &emu,
            &site,
            "dag",
            &json!([{"data_access_group_name": "Mine", "unique_group_name": ""}]),
            &[("action", "import")],
        ),
        "create a DAG",
    );
    refused(
        import(
            &emu,
            &site,
            "dag",
            &json!([{"data_access_group_name": "Renamed", "unique_group_name": "dag_2"}]),
            &[("action", "import")],
        ),
        "rename a DAG",
    );
    for d in ["dag_1", "dag_2"] {
        refused(call(&emu, &site, &[("content", "dag"), ("action", "delete"), ("dags[0]", d)]), "delete a DAG");
    }
    assert_eq!(call(&emu, &t, &[("content", "dag")]).json(), dags_before, "DAGs unchanged");
    // User-DAG assignments: neither themselves nor anyone else.
    for (who, to) in [("site", ""), ("site", "dag_2"), ("other", "dag_1"), ("peer", ""), ("admin", "dag_1")] {
        refused(
            import(
                &emu,
                &site,
                "userDagMapping",
                &json!([{"username": who, "redcap_data_access_group": to}]),
                &[("action", "import")],
            ),
            &format!("assign {who} to '{to}'"),
        );
    }
    // Import Users: no leaving the group, no moving users, no editing users outside the group.
    for (who, dag) in
        [("site", Some("")), ("site", Some("dag_2")), ("peer", Some("dag_2")), ("other", None), ("admin", None)]
    {
        let mut row = json!({"username": who, "logging": "1"});
        if let Some(d) = dag {
            row["data_access_group"] = d.into();
        }
        refused(import(&emu, &site, "user", &json!([row]), &[]), &format!("user import of {who} with DAG {dag:?}"));
    }
    // Import User-Role Assignments with a DAG column.
    refused(
        import(
            &emu,
            &site,
            "userRoleMapping",
            &json!([{"username": "site", "unique_role_name": "", "data_access_group": ""}]),
            &[],
        ),
        "role mapping that leaves the group",
    );
    // Delete Users outside the group.
    for who in ["other", "admin"] {
        refused(call(&emu, &site, &[("content", "user"), ("action", "delete"), ("users[0]", who)]), "delete");
    }
    for (who, dag) in [("site", "dag_1"), ("peer", "dag_1"), ("other", "dag_2"), ("admin", "")] {
        assert_eq!(mapping(who), dag, "{who} kept their DAG");
    }
    // What stays allowed: a user import that leaves the DAG out keeps a group member in the
    // group, and a new user joins the importer's group.
    import(&emu, &site, "user", &json!([{"username": "peer", "logging": "1"}, {"username": "newbie"}]), &[])
        .expect(200, "2");
    assert_eq!((mapping("peer"), mapping("newbie")), (json!("dag_1"), json!("dag_1")));
    // Switch DAG is the DAG-assigned user's own way between groups (the DAG Switcher decides).
    emu.set_dag_switcher(pid, "site", &["dag_1", "dag_2"]).unwrap();
    call(&emu, &site, &[("content", "dag"), ("action", "switch"), ("dag", "dag_2")]).expect(200, "1");
    // An unassigned user with the DAG right still manages everything.
    import(
        &emu,
        &t,
        "userDagMapping",
        &json!([{"username": "other", "redcap_data_access_group": "dag_1"}]),
        &[("action", "import")],
    )
    .expect(200, "1");
}

/// Rights are exported with their real values, per-form rights included, in both of REDCap's
/// encodings. Evidence: the roles in the project XML REDCap wrote for PyCap's doctest project
/// (`data_entry="[form_1,2]"`, exported as `'forms': {'form_1': 2}` in PyCap's recorded
/// `export_user_roles` doctest) and PyCap's simple project (`graphical="1" calendar="1"
/// participants="1"`); REDCapR's recorded users export has `user_rights = 2L` (read only) and
/// `manage_survey_participants = TRUE`; the form-right codes from 15.6 (128 none, 129 read only,
/// 130 view and edit, +8 edit survey responses, +16 delete) are quoted from REDCap's API help in
/// redcapAPI issues #463/#469 and REDCapR issue #590.
#[test]
fn rights_keep_their_real_values() {
    let emu = start(&["pycap-doctest_project.xml", "pycap-test_simple_project.xml"]);
    let ids = emu.project_ids();
    let t = emu.token(ids[0], "admin").unwrap();
    let roles = call(&emu, &t, &[("content", "userRole")]).json();
    assert_eq!(roles[0]["forms"], json!({"form_1": 2}), "{roles}");
    assert_eq!(roles[0]["forms_export"], json!({"form_1": 0}));
    assert_eq!(roles[0]["role_label"], "Test role");
    let t2 = emu.token(ids[1], "admin").unwrap();
    let r2 = call(&emu, &t2, &[("content", "userRole")]).json();
    let role = find(&r2, "role_label", "Example Role").unwrap();
    for (k, v) in [
        ("stats_and_charts", "1"),
        ("calendar", "1"),
        ("manage_survey_participants", "1"),
        ("reports", "1"),
        ("file_repository", "1"),
        ("record_create", "1"),
        ("design", "0"),
        ("api_export", "0"),
    ] {
        assert_eq!(role[k], v, "{k} in {role}");
    }
    assert_eq!(role["forms"]["demographics"], 1);
    // Users: read-only User Rights (2), other rights and 15.6-style form codes come back as given.
    let rows = json!([{"username": "reader", "user_rights": "2", "api_export": "1", "api_import": "1",
        "alerts": "1", "calendar": "1", "forms": {"form_1": 146}, "forms_export": {"form_1": 2}}]);
    import(&emu, &t, "user", &rows, &[]).expect(200, "1");
    let users = call(&emu, &t, &[("content", "user")]).json();
    let reader = find(&users, "username", "reader").unwrap();
    assert_eq!(
        (reader["user_rights"].clone(), reader["alerts"].clone(), reader["calendar"].clone()),
        (json!(2), json!(1), json!(1))
    );
    assert_eq!(
        (reader["forms"].clone(), reader["forms_export"].clone()),
        (json!({"form_1": 146}), json!({"form_1": 2}))
    );
    assert_eq!(reader["stats_and_charts"], 0);
    let csv = call(&emu, &t, &[("content", "user"), ("format", "csv")]).text();
    assert!(csv.contains(",form_1:146,form_1:2"), "{csv}");
    // A read-only User Rights user may export users and roles but not change them.
    let rt = emu
        .add_user(ids[0], User::new("reader2").rights(Rights { user_rights_read_only: true, ..Rights::full() }))
        .unwrap();
    assert_eq!(call(&emu, &rt, &[("content", "user")]).status, 200);
    assert_eq!(call(&emu, &rt, &[("content", "userRole")]).status, 200);
    let r = import(&emu, &rt, "user", &json!([{"username": "x"}]), &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    // They survive a project XML round trip.
    let xml = call(&emu, &t, &[("content", "project_xml"), ("returnMetadataOnly", "true")]).text();
    assert!(xml.contains("data_entry=\"[form_1,2]\""), "{xml}");
}

/// Export rights are per instrument (`forms_export`; the users export replaced `data_export`
/// with it by REDCap 12.5.2, REDCapR#396) and Export Records applies them (API help:
/// exp_records, "data-export rights are applied"): a form without export rights is left out
/// whole, `<form>_complete` too; a de-identified form loses its free text, dates and identifiers;
/// the record id always stays. Set through a users import (CSV `form:code` cells) and from the
/// project XML's `data_export_instruments`, in flat, EAV and project XML exports.
#[test]
fn per_form_export_rights_are_enforced() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let limited = emu.add_user(pid, User::new("limited")).unwrap();
    let csv = "username,api_export,forms_export\nlimited,1,\"demographics:2,health:0,race_and_ethnicity:1\"\n";
    call(&emu, &t, &[("content", "user"), ("format", "csv"), ("data", csv)]).expect(200, "1");
    let rows = call(&emu, &limited, &[("content", "record")]).json();
    let row = rows[0].as_object().unwrap();
    let keys: Vec<&str> = row.keys().map(String::as_str).collect();
    assert!(keys.contains(&"record_id") && keys.contains(&"race___1") && keys.contains(&"ethnicity"), "{keys:?}");
    assert!(keys.contains(&"demographics_complete") && keys.contains(&"sex"), "{keys:?}");
    for gone in ["height", "weight", "bmi", "comments", "mugshot", "health_complete"] {
        assert!(!keys.contains(&gone), "{gone} of the form without export rights in {keys:?}");
    }
    for gone in ["name_first", "dob", "address", "email"] {
        assert!(!keys.contains(&gone), "{gone} of the de-identified form in {keys:?}");
    }
    let eav = call(&emu, &limited, &[("content", "record"), ("type", "eav")]).json();
    assert!(
        eav.as_array().unwrap().iter().all(|r| r["field_name"] != "height" && r["field_name"] != "health_complete")
    );
    let xml = call(&emu, &limited, &[("content", "project_xml"), ("returnMetadataOnly", "false")]).text();
    assert!(!xml.contains("<ItemData ItemOID=\"height\""), "the project XML's data follow the same rights");
    assert!(xml.contains("<ItemData ItemOID=\"ethnicity\""), "{xml}");
    // Asking for the field by name does not get around it.
    let asked =
        call(&emu, &limited, &[("content", "record"), ("fields[0]", "record_id"), ("fields[1]", "height")]).json();
    assert!(asked[0].get("height").is_none(), "{asked}");

    // The same rights from the project XML (a role with `data_export_instruments`).
    let xml = std::fs::read_to_string(fixture("redcapr-simple.xml")).unwrap().replace(
        "</redcap:UserRolesGroup>",
        "<redcap:UserRoles role_name=\"No health\" unique_role_name=\"U-NOHEALTH1\" api_export=\"1\" \
         data_export_instruments=\"[demographics,1][health,0][race_and_ethnicity,1]\" \
         data_entry=\"[demographics,1][health,1][race_and_ethnicity,1]\"/></redcap:UserRolesGroup>",
    );
    assert!(xml.contains("U-NOHEALTH1"), "the fixture has a roles group");
    let emu =
        redcap_emulator::Emulator::builder().in_memory().deterministic_tokens(7).project_xml(xml).start().unwrap();
    let pid = emu.project_ids()[0];
    let role_user = emu.add_user(pid, User::new("r").role("U-NOHEALTH1")).unwrap();
    let rows = call(&emu, &role_user, &[("content", "record")]).json();
    assert!(rows[0].get("height").is_none() && rows[0].get("name_first").is_some(), "{}", rows[0]);
}

/// Reports and Export a File follow the per-instrument export rights too (API help:
/// exp_reports and exp_file: data-export rights applied).
#[test]
fn per_form_export_rights_apply_to_reports_and_files() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let limited = emu.add_user(pid, User::new("limited")).unwrap();
    let csv = "username,api_export,forms_export\nlimited,1,\"demographics:1,health:0,race_and_ethnicity:1\"\n";
    call(&emu, &t, &[("content", "user"), ("format", "csv"), ("data", csv)]).expect(200, "1");
    let file =
        call(&emu, &limited, &[("content", "file"), ("action", "export"), ("record", "1"), ("field", "mugshot")]);
    assert_eq!(file.status, 403, "{}", file.text());
    assert_eq!(
        call(&emu, &t, &[("content", "file"), ("action", "export"), ("record", "1"), ("field", "mugshot")]).status,
        200
    );
    let id = emu.report_id(pid, "test-report-1").unwrap().to_string();
    let csv = call(&emu, &limited, &[("content", "report"), ("format", "csv"), ("report_id", &id)]).text();
    assert_eq!(csv.lines().next(), Some("record_id,address,ethnicity"), "the report's health columns are left out");
}

/// Data entry rights are per instrument (`forms`; the project XML's `data_entry`) and an API
/// write follows them like the user's own: "tokens inherit the requesting user's access rights"
/// (seed RC-API-01) and "the system shall allow data to be changed only by a user who has edit
/// access to the data entry form" (REDCap's validation suite, vanderbilt-redcap/redcap_rsvc
/// B.3.16.1100). A field, `<form>_complete` or a file of an instrument with No Access or Read
/// Only rights is refused, in the legacy codes (0 none, 2 read only) and REDCap 15.6's (128
/// none, 129 read only, 130 edit; redcapAPI issue #469), and nothing of the import is written.
/// The text is UNVERIFIED (no recording shows it): Import Records answers it as one of its
/// `"record","field","value","message"` lines (reference §5.2) and Import / Delete a File as a
/// 403, like Export a File's per-form refusal. Choices, also UNVERIFIED: a blank cell of such an
/// instrument without `overwriteBehavior=overwrite` writes nothing and passes; the record-id
/// column only names the record.
#[test]
fn per_form_entry_rights_are_enforced_on_import() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let pid = emu.project_ids()[0];
    let limited = emu.add_user(pid, User::new("limited")).unwrap();
    let csv = "username,forms\nlimited,\"demographics:129,health:128,race_and_ethnicity:130\"\n";
    call(&emu, &t, &[("content", "user"), ("format", "csv"), ("data", csv)]).expect(200, "1");
    let write = |token: &str, data: Value| import(&emu, token, "record", &json!([data]), &[]);
    let refusal = |field: &str, form: &str, right: &str, value: &str| {
        format!(
            "\"1\",\"{field}\",\"{value}\",\"This field ('{field}') exists on an instrument ('{form}') for which your data entry rights are \"\"{right}\"\". You are not allowed to import data for this field.\""
        )
    };
    let r = write(&limited, json!({"record_id": "1", "height": "150", "ethnicity": "0"}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], refusal("height", "health", "No Access", "150"));
    let r = write(&limited, json!({"record_id": "1", "name_first": "X", "demographics_complete": "0"}));
    assert_eq!(
        r.json()["error"],
        [
            refusal("name_first", "demographics", "Read Only", "X"),
            refusal("demographics_complete", "demographics", "Read Only", "0")
        ]
        .join("\n")
    );
    let r = write(&limited, json!({"record_id": "1", "health_complete": "1"}));
    assert_eq!(r.json()["error"], refusal("health_complete", "health", "No Access", "1"));
    let stored = call(&emu, &t, &[("content", "record"), ("records[0]", "1")]).json();
    assert_eq!(
        (stored[0]["height"].as_str(), stored[0]["ethnicity"].as_str(), stored[0]["name_first"].as_str()),
        (Some("7"), Some("1"), Some("Nutmeg")),
        "nothing of a refused import is written"
    );
    // The instrument with edit rights takes writes; blank cells of the others are no writes.
    write(&limited, json!({"record_id": "1", "ethnicity": "0", "height": "", "name_first": ""}))
        .expect(200, "{\"count\":1}");
    let r = import(
        &emu,
        &limited,
        "record",
        &json!([{"record_id": "1", "height": ""}]),
        &[("overwriteBehavior", "overwrite")],
    );
    assert_eq!(
        r.json()["error"],
        refusal("height", "health", "No Access", ""),
        "an overwrite with blank erases: refused"
    );
    // Files of the instrument without edit rights: neither uploaded nor deleted.
    let url = emu.url();
    let file_call = [
        ("token", limited.as_str()),
        ("content", "file"),
        ("record", "1"),
        ("field", "mugshot"),
        ("returnFormat", "json"),
    ];
    let mut up = file_call.to_vec();
    up.push(("action", "import"));
    let r = post_multipart(&url, &up, Some(("x.txt", b"x")));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.json()["error"],
        "This field ('mugshot') exists on an instrument ('health') for which your data entry rights are \"No Access\". You are not allowed to import data for this field."
    );
    let mut del = file_call.to_vec();
    del.push(("action", "delete"));
    assert_eq!(post(&url, &del).status, 403);
    let admin_file =
        [("token", t.as_str()), ("content", "file"), ("action", "export"), ("record", "1"), ("field", "mugshot")];
    assert_eq!(post(&url, &admin_file).status, 200, "the file is still there");

    // The legacy codes, from the project XML's `data_entry` of a role.
    let xml = std::fs::read_to_string(fixture("redcapr-simple.xml")).unwrap().replace(
        "</redcap:UserRolesGroup>",
        "<redcap:UserRoles role_name=\"Entry\" unique_role_name=\"U-ENTRY1\" api_export=\"1\" api_import=\"1\" \
         data_export_instruments=\"[demographics,1][health,1][race_and_ethnicity,1]\" \
         data_entry=\"[demographics,2][health,0][race_and_ethnicity,1]\"/></redcap:UserRolesGroup>",
    );
    let emu =
        redcap_emulator::Emulator::builder().in_memory().deterministic_tokens(7).project_xml(xml).start().unwrap();
    let pid = emu.project_ids()[0];
    let role_user = emu.add_user(pid, User::new("r").role("U-ENTRY1")).unwrap();
    let write = |data: Value| import(&emu, &role_user, "record", &json!([data]), &[]);
    assert_eq!(
        write(json!({"record_id": "1", "weight": "2"})).json()["error"],
        refusal("weight", "health", "No Access", "2")
    );
    assert_eq!(
        write(json!({"record_id": "1", "sex": "1"})).json()["error"],
        refusal("sex", "demographics", "Read Only", "1")
    );
    write(json!({"record_id": "1", "race___1": "1"})).expect(200, "{\"count\":1}");
}
