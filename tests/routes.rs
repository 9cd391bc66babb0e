//! Every spec method's example request, as the library encodes it, sent to the emulator: each
//! gets a real answer (a success, or REDCap's own refusal of that example's values) or the
//! explicit "not emulated" error, and none is lost in routing ("content is not valid", "action
//! is not valid"). Each example runs against a fresh project shaped like the one the spec's
//! examples talk about (records 1001–1004, arms 1–3, DAGs `site_a`…`site_d`, users `jsmith` and
//! `mgarcia`, role `U-527D39JXAC`, two surveys), so the examples succeed unless they name ids the
//! emulator numbers itself (listed in `REFUSED`).

use std::collections::BTreeMap;
use std::io::Read;

use redcap_blocking::UreqTransport;
use redcap_core::{ApiUrl, DynamicCall, PreparedRequest, Token, TokenRequirement, Transport, TransportConfig};
use redcap_emulator::{Emulator, RunningEmulator, User};

/// The answer's error text when the emulator does not emulate a documented method.
const NOT_EMULATED: &str = "The emulator does not implement";

/// Examples refused by REDCap's rules whatever the project, with the start of the refusal: they
/// name ids that the emulator numbers itself (folders, files, reports), or (Create
/// Project from ODM) carry a stub document with no `<MetaDataVersion>`.
const REFUSED: &[(&str, &str, &str)] = &[
    ("file_repository.create_folder", "restricted_subfolder", "The File Repository folder folder_id=45 does not exist"),
    ("file_repository.list", "folder_as_csv", "The File Repository folder folder_id=45 does not exist"),
    ("file_repository.export", "by_doc_id", "The File Repository file doc_id=201 does not exist"),
    ("file_repository.import", "into_folder", "The File Repository folder folder_id=45 does not exist"),
    ("file_repository.delete", "by_doc_id", "The File Repository file doc_id=201 does not exist"),
    ("project.create", "from_odm", "The ODM document could not be imported"),
    ("report.export", "by_id", "The API request cannot complete because report_id=42 does not belong to this project."),
    (
        "report.export",
        "csv_labels_pipe",
        "The API request cannot complete because report_id=42 does not belong to this project.",
    ),
];

/// Examples written for a classic project (no events): they run against the classic variant.
const CLASSIC: &[(&str, &str)] = &[
    ("file.export", "classic"),
    ("file.import", "classic"),
    ("file.delete", "classic"),
    ("record.import", "auto_number_ids"),
    ("record.import", "csv_overwrite_mdy"),
    ("survey.export_link", "classic"),
    ("survey.export_access_code", "classic"),
    ("survey.export_return_code", "classic"),
    ("survey.export_participant_list", "classic"),
];

/// The answers of a call the emulator could not route to a method.
const ROUTING: &[&str] = &[
    "The value of the parameter \"content\" is not valid",
    "The value of the parameter \"action\" is not valid",
    "The parameter \"action\" is missing",
];

/// What one example got.
#[derive(Debug)]
enum Outcome {
    Ok,
    NotEmulated,
    Refused(String),
}

struct Api {
    url: ApiUrl,
    transport: UreqTransport,
}

impl Api {
    fn new(emu: &RunningEmulator) -> Self {
        let url = ApiUrl::parse_allow_http(&emu.url()).expect("emulator URL");
        Api { url, transport: UreqTransport::new(&TransportConfig::default()).expect("transport") }
    }

    fn send(&self, prepared: &PreparedRequest) -> (u16, String) {
        let response = self.transport.send(prepared).expect("the emulator answers");
        let status = response.status().as_u16();
        let mut body = String::new();
        response.into_body().read_to_string(&mut body).expect("a text body");
        (status, body)
    }

    /// One setup call; it must succeed.
    fn call(&self, token: &Token, method: &str, pairs: &[(&str, &str)]) -> String {
        let info = redcap_api::METHODS.iter().find(|m| m.id == method).expect("a spec method");
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let prepared = DynamicCall::new(info, &pairs).and_then(|c| c.prepare(&self.url, token)).expect("encodes");
        let (status, body) = self.send(&prepared);
        assert_eq!(status, 200, "setup call {method} {pairs:?} failed: {body}");
        body
    }
}

/// A form, its fields (`name:type`, the first form's first field is the record id).
const FORMS: &[(&str, &[&str])] = &[
    (
        "demographics",
        &[
            "record_id:text",
            "dob:text:date_ymd",
            "age:text",
            "sex:radio",
            "weight_kg:text",
            "consent_form:file",
            "symptoms:checkbox",
        ],
    ),
    ("vital_signs", &["sbp:text"]),
    ("baseline_labs", &["lab_report:file"]),
    ("medications", &["med_name:text"]),
    ("adverse_events", &["ae_term:text"]),
    ("baseline_survey", &["feeling:text"]),
    ("weekly_diary", &["mood:text"]),
];

fn dictionary() -> String {
    let mut rows = Vec::new();
    for (form, fields) in FORMS {
        for f in *fields {
            let mut parts = f.split(':');
            let (name, ty) = (parts.next().unwrap(), parts.next().unwrap());
            let validation = parts.next().unwrap_or("");
            let choices = match ty {
                "radio" => "1, Male | 2, Female",
                "checkbox" => "1, Fever | 2, Cough | 3, Fatigue",
                _ => "",
            };
            rows.push(serde_json::json!({
                "field_name": name, "form_name": form, "field_type": ty, "field_label": name,
                "select_choices_or_calculations": choices,
                "text_validation_type_or_show_slider_number": validation,
            }));
        }
    }
    serde_json::Value::Array(rows).to_string()
}

fn json(rows: &[serde_json::Value]) -> String {
    serde_json::Value::Array(rows.to_vec()).to_string()
}

/// The project XML of a project like the one the spec's examples describe (longitudinal, or
/// classic for the examples written for one), built through the API. Surveys and a role's unique
/// name cannot be set through the API: they are written into the XML.
fn template(emu: &RunningEmulator, api: &Api, dir: &std::path::Path, longitudinal: bool) -> String {
    let sup = Token::new(&emu.super_token()).expect("super token");
    let data = r#"[{"project_title":"Hypertension Cohort Study","purpose":"0"}]"#;
    let token = Token::new(api.call(&sup, "project.create", &[("format", "json"), ("data", data)]).trim())
        .expect("project token");
    let t = &token;
    api.call(t, "metadata.import", &[("format", "json"), ("data", &dictionary())]);
    api.call(t, "project.import_info", &[("format", "json"), ("data", r#"{"surveys_enabled":"1"}"#)]);
    api.call(
        t,
        "user_role.import",
        &[("format", "json"), ("data", r#"[{"unique_role_name":"","role_label":"Data Entry"}]"#)],
    );
    if longitudinal {
        events(api, t);
    }
    let dags: Vec<_> = ["Site A", "Site B", "Site C", "Site D"]
        .iter()
        .map(|n| serde_json::json!({"data_access_group_name": n, "unique_group_name": ""}))
        .collect();
    api.call(t, "dag.import", &[("format", "json"), ("data", &json(&dags))]);
    let at = |event: &str, mut row: serde_json::Value| {
        if longitudinal {
            row["redcap_event_name"] = event.into();
        }
        row
    };
    let mut rows = vec![
        at("baseline_arm_1", serde_json::json!({"record_id": "1001", "age": "54", "sex": "2"})),
        at("baseline_arm_1", serde_json::json!({"record_id": "1002", "age": "61", "sex": "1"})),
        at("baseline_arm_1", serde_json::json!({"record_id": "1004", "age": "38"})),
    ];
    if longitudinal {
        rows.extend([
            serde_json::json!({"record_id": "1001", "redcap_event_name": "visit_1_arm_1",
                "redcap_repeat_instrument": "baseline_labs", "redcap_repeat_instance": "2"}),
            serde_json::json!({"record_id": "1002", "redcap_event_name": "visit_2_arm_2", "age": "61"}),
            serde_json::json!({"record_id": "1003", "redcap_event_name": "visit_2_arm_2",
                "redcap_repeat_instrument": "adverse_events", "redcap_repeat_instance": "2", "ae_term": "rash"}),
        ]);
    }
    api.call(t, "record.import", &[("format", "json"), ("data", &json(&rows))]);
    let consent = dir.join("consent.pdf");
    std::fs::write(&consent, b"%PDF-1.4 consent").expect("temp file");
    let consent = consent.to_str().expect("UTF-8 path");
    if longitudinal {
        api.call(
            t,
            "file.import",
            &[("record", "1001"), ("field", "consent_form"), ("event", "baseline_arm_1"), ("file", consent)],
        );
        api.call(
            t,
            "file.import",
            &[
                ("record", "1001"),
                ("field", "lab_report"),
                ("event", "visit_1_arm_1"),
                ("repeat_instance", "2"),
                ("file", consent),
            ],
        );
    } else {
        api.call(t, "file.import", &[("record", "1001"), ("field", "consent_form"), ("file", consent)]);
    }
    let xml = api.call(t, "project.export_xml", &[("exportFiles", "1")]);
    let surveys = "<redcap:SurveysGroup>\n\t\t<redcap:Surveys form_name=\"baseline_survey\" title=\"Baseline\"/>\n\t\t\
                   <redcap:Surveys form_name=\"weekly_diary\" title=\"Weekly diary\"/>\n\t</redcap:SurveysGroup>\n\t\
                   <redcap:SurveysQueueGroup>\n\t\t<redcap:SurveysQueue active=\"1\" event_id=\"week_2_arm_1\" \
                   survey_id=\"weekly_diary\"/>\n\t</redcap:SurveysQueueGroup>\n\t";
    let role = xml.split("unique_role_name=\"").nth(1).and_then(|r| r.split('"').next()).expect("the role").to_owned();
    assert!(!xml.contains("<redcap:SurveysGroup>"), "no survey is set through the API");
    xml.replacen("</GlobalVariables>", &format!("{surveys}</GlobalVariables>"), 1).replace(&role, "U-527D39JXAC")
}

/// A fresh project from `xml` (`n` makes each load a new project); its admin's token.
fn fresh(emu: &RunningEmulator, xml: &str, n: usize) -> Token {
    let pid = emu.load_project_xml(&format!("{xml}<!-- {n} -->")).expect("the template loads");
    for name in ["jsmith", "mgarcia"] {
        emu.add_user(pid, User::new(name)).expect("user added");
    }
    emu.set_dag_switcher(pid, "admin", &["site_b"]).expect("DAG switcher");
    Token::new(&emu.token(pid, "admin").expect("admin token")).expect("token")
}

/// Arms 1–3, their events, mappings and repeating setup.
fn events(api: &Api, t: &Token) {
    api.call(t, "project.import_info", &[("format", "json"), ("data", r#"{"is_longitudinal":"1"}"#)]);
    let arms: Vec<_> = ["Drug A", "Drug B", "Placebo"]
        .iter()
        .enumerate()
        .map(|(i, n)| serde_json::json!({"arm_num": (i + 1).to_string(), "name": n}))
        .collect();
    api.call(t, "arm.import", &[("format", "json"), ("data", &json(&arms))]);
    let events: Vec<_> = [
        ("Baseline", 1),
        ("Visit 1", 1),
        ("Visit 2", 1),
        ("Follow Up", 1),
        ("Week 2", 1),
        ("Visit 2", 2),
        ("Screening", 3),
    ]
    .iter()
    .map(|(n, a)| serde_json::json!({"event_name": n, "arm_num": a.to_string()}))
    .collect();
    api.call(t, "event.import", &[("format", "json"), ("data", &json(&events))]);
    let mappings: Vec<_> = [
        ("baseline_arm_1", "demographics"),
        ("baseline_arm_1", "baseline_survey"),
        ("visit_1_arm_1", "vital_signs"),
        ("visit_1_arm_1", "baseline_labs"),
        ("visit_1_arm_1", "medications"),
        ("visit_2_arm_1", "vital_signs"),
        ("follow_up_arm_1", "adverse_events"),
        ("week_2_arm_1", "weekly_diary"),
        ("visit_2_arm_2", "demographics"),
        ("visit_2_arm_2", "adverse_events"),
        ("screening_arm_3", "demographics"),
    ]
    .iter()
    .map(|(e, f)| serde_json::json!({"arm_num": &e[e.len() - 1..], "unique_event_name": e, "form": f}))
    .collect();
    api.call(t, "instrument.import_event_mappings", &[("format", "json"), ("data", &json(&mappings))]);
    let repeating: Vec<_> =
        [("visit_1_arm_1", "baseline_labs"), ("visit_2_arm_2", "adverse_events"), ("week_2_arm_1", "weekly_diary")]
            .iter()
            .map(|(e, f)| serde_json::json!({"event_name": e, "form_name": f, "custom_form_label": ""}))
            .collect();
    api.call(t, "repeating.import", &[("format", "json"), ("data", &json(&repeating))]);
}

fn outcome(status: u16, body: &str) -> Outcome {
    // JSON errors unless the example asks for CSV ones (`ERROR: …`).
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.strip_prefix("ERROR: ").unwrap_or(body).to_owned());
    match status {
        200 => Outcome::Ok,
        _ if message.starts_with(NOT_EMULATED) => Outcome::NotEmulated,
        _ => Outcome::Refused(message),
    }
}

#[test]
fn every_spec_example_reaches_a_handler() {
    let emu = Emulator::builder().in_memory().deterministic_tokens(12).start().expect("emulator starts");
    let api = Api::new(&emu);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut seen: BTreeMap<&str, Vec<(&str, Outcome)>> = BTreeMap::new();
    let mut problems = Vec::new();
    let longitudinal_xml = template(&emu, &api, dir.path(), true);
    let classic_xml = template(&emu, &api, dir.path(), false);
    let mut n = 0;
    for info in redcap_api::METHODS {
        // The examples of one method, each against a project of its own.
        let names: Vec<&str> = redcap_api::prepare_examples(&api.url, &redcap_tests::token(), redcap_tests::BOUNDARY)
            .into_iter()
            .filter(|(id, _, _)| *id == info.id)
            .map(|(_, example, _)| example)
            .collect();
        assert!(!names.is_empty(), "{} has no example", info.id);
        for name in names {
            let classic = CLASSIC.contains(&(info.id, name));
            n += 1;
            let token = fresh(&emu, if classic { &classic_xml } else { &longitudinal_xml }, n);
            let token =
                if info.token == TokenRequirement::Super { Token::new(&emu.super_token()).unwrap() } else { token };
            let (_, _, prepared) = redcap_api::prepare_examples(&api.url, &token, redcap_tests::BOUNDARY)
                .into_iter()
                .find(|(id, example, _)| *id == info.id && *example == name)
                .expect("the same example");
            let (status, body) = api.send(&prepared.expect("the example encodes"));
            let got = outcome(status, &body);
            if matches!(&got, Outcome::Refused(text) if ROUTING.iter().any(|r| text.starts_with(r))) {
                problems.push(format!("{} {name}: lost in routing: {got:?}", info.id));
                continue;
            }
            let refusal = REFUSED.iter().find(|(id, ex, _)| *id == info.id && *ex == name);
            match (&got, refusal) {
                (Outcome::Refused(text), Some((_, _, expected))) if text.starts_with(expected) => {}
                (Outcome::Refused(text), _) => problems.push(format!("{} {name}: refused ({status}): {text}", info.id)),
                (_, Some((_, _, expected))) => {
                    problems.push(format!("{} {name}: expected REDCap's refusal \"{expected}\", got {got:?}", info.id))
                }
                _ => {}
            }
            seen.entry(info.id).or_default().push((name, got));
        }
    }
    assert!(problems.is_empty(), "{} examples did not get a real answer:\n{}", problems.len(), problems.join("\n"));
    assert_eq!(seen.len(), 55, "every documented method was sent (reference §2)");
    // Every method the emulator emulates succeeds for at least one of its examples (unless every
    // example is one REDCap refuses, above).
    for (id, outcomes) in &seen {
        let emulated = outcomes.iter().all(|(_, o)| !matches!(o, Outcome::NotEmulated));
        let all_refused = outcomes.iter().all(|(ex, _)| REFUSED.iter().any(|(i, e, _)| i == id && e == ex));
        if emulated && !all_refused {
            assert!(outcomes.iter().any(|(_, o)| matches!(o, Outcome::Ok)), "{id}: no example succeeded: {outcomes:?}");
        } else if !emulated {
            assert!(
                outcomes.iter().all(|(_, o)| matches!(o, Outcome::NotEmulated)),
                "{id}: not emulated for one example but not another: {outcomes:?}"
            );
        }
    }
}
