//! Typed rows of fixed-shape answers, exported from the in-process emulator in json, csv and xml
//! through both clients: every format gives the same typed values.

use redcap::core::{Rows, Single};
use redcap::rows::{Arm, Dag, Event, Field, FieldType, UserRoleMapping, Validation};
use redcap::{
    Error, Format, LogType, Method, arm, dag, event, instrument, log, metadata, project, record, repeating, user,
    user_role,
};
use redcap_core::RetryPolicy;
use redcap_emulator::{Emulator, RunningEmulator, User};

const FORMATS: [Format; 3] = [Format::Json, Format::Csv, Format::Xml];

trait Api: Sized {
    fn connect(url: &str, token: &str) -> Result<Self, Error>;
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error>;
}

fn policy() -> RetryPolicy {
    RetryPolicy::default().with_base_delay(std::time::Duration::from_millis(5))
}

struct Blocking(redcap::blocking::Client);

impl Api for Blocking {
    fn connect(url: &str, token: &str) -> Result<Self, Error> {
        redcap::blocking::Client::builder(url, token).allow_http(true).retry(policy()).build().map(Blocking)
    }
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error> {
        self.0.call(m)
    }
}

struct Async {
    client: redcap::asynchronous::Client,
    rt: tokio::runtime::Runtime,
}

impl Api for Async {
    fn connect(url: &str, token: &str) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = redcap::asynchronous::Client::builder(url, token).allow_http(true).retry(policy()).build()?;
        Ok(Async { client, rt })
    }
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error> {
        self.rt.block_on(self.client.call(m))
    }
}

struct Env<A> {
    emu: RunningEmulator,
    pid: i64,
    api: A,
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(redcap_tests::workspace_root().join(path)).expect("fixture")
}

impl<A: Api> Env<A> {
    fn new(fixture_name: &str) -> Self {
        let xml = fixture(&format!("crates/redcap-emulator/fixtures/{fixture_name}"));
        let emu = Emulator::builder().project_xml(xml).in_memory().deterministic_tokens(7).start().expect("emulator");
        let pid = emu.project_ids()[0];
        let token = emu.token(pid, "admin").expect("admin token");
        let api = A::connect(&emu.url(), &token).expect("client");
        Env { emu, pid, api }
    }

    fn with_file(path: &str) -> Self {
        let xml = fixture(path);
        let emu = Emulator::builder().project_xml(xml).in_memory().deterministic_tokens(7).start().expect("emulator");
        let pid = emu.project_ids()[0];
        let token = emu.token(pid, "admin").expect("admin token");
        let api = A::connect(&emu.url(), &token).expect("client");
        Env { emu, pid, api }
    }

    /// The one object of `request` in every format, checked equal.
    fn single_in_every_format<M, T>(&self, request: impl Fn(Format) -> M) -> T
    where
        M: Method<Output = Single<T>>,
        T: PartialEq + std::fmt::Debug,
    {
        let mut all: Vec<T> = FORMATS
            .iter()
            .map(|f| self.api.call(&request(*f)).unwrap_or_else(|e| panic!("{f}: {e}")).into_inner())
            .collect();
        let json = all.remove(0);
        for (f, v) in FORMATS[1..].iter().zip(all) {
            assert_eq!(v, json, "{f} differs from json");
        }
        json
    }

    /// The rows of `request` in every format, checked equal; the JSON rows are returned.
    fn same_in_every_format<M, T>(&self, request: impl Fn(Format) -> M) -> Vec<T>
    where
        M: Method<Output = Rows<T>>,
        T: PartialEq + std::fmt::Debug,
    {
        let mut all: Vec<Vec<T>> = Vec::new();
        for f in FORMATS {
            let rows = self.api.call(&request(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(rows.raw().format(), f);
            all.push(rows.into_vec());
        }
        let json = all.remove(0);
        for (f, rows) in FORMATS[1..].iter().zip(all) {
            assert_eq!(rows, json, "{f} rows differ from json");
        }
        json
    }
}

fn field<'a>(fields: &'a [Field], name: &str) -> &'a Field {
    fields.iter().find(|f| f.field_name == name).unwrap_or_else(|| panic!("no field {name}"))
}

fn dictionary_in_every_format<A: Api>() {
    let env = Env::<A>::new("redcapr-validation-types-1.xml");
    let fields = env.same_in_every_format(|f| metadata::export::Request::new().format(f));
    assert_eq!(fields[0].field_name, "record_id");
    assert_eq!(field(&fields, "v_date_dmy").validation(), Some(Validation::DateDmy));
    assert_eq!(field(&fields, "v_number_2dp_comma_decimal").validation(), Some(Validation::Number2dpCommaDecimal));
    assert_eq!(field(&fields, "f_signature").validation(), Some(Validation::Signature));
    let radio = field(&fields, "f_radio");
    assert_eq!(radio.field_type, FieldType::Radio);
    let codes: Vec<String> = radio.choices().into_iter().map(|c| c.code).collect();
    assert_eq!(codes, ["0", "1", "2"]);
    assert_eq!(radio.choices()[2].label, "Two");
    assert_eq!(field(&fields, "f_calculated").calculation(), Some("3+4"));
    assert!(field(&fields, "f_calculated").choices().is_empty());
    assert_eq!(field(&fields, "f_slider").validation(), None);

    // The project's own dictionary (REDCap's web-interface CSV header) reads into the same rows.
    let csv = fixture("tests/fixtures/redcapr-validation-types-1-dictionary.csv");
    let from_file: Vec<Field> = redcap::core::rows::decode(Format::Csv, None, csv.as_bytes()).unwrap();
    let names = |fs: &[Field]| fs.iter().map(|f| (f.field_name.clone(), f.field_type.clone())).collect::<Vec<_>>();
    assert_eq!(names(&from_file), names(&fields));
    for (a, b) in from_file.iter().zip(&fields) {
        assert_eq!(a.validation(), b.validation(), "{}", a.field_name);
        assert_eq!(a.choices(), b.choices(), "{}", a.field_name);
    }
}

fn longitudinal_design_in_every_format<A: Api>() {
    let env = Env::<A>::new("redcapr-longitudinal.xml");
    let arms = env.same_in_every_format(|f| arm::export::Request::new().format(f));
    assert!(arms.len() >= 2, "{arms:?}");
    assert_eq!(arms[0].arm_num, 1);
    let events = env.same_in_every_format(|f| event::export::Request::new().format(f));
    assert!(events.iter().all(|e| arms.iter().any(|a| a.arm_num == e.arm_num)), "{events:?}");
    assert!(events.iter().all(|e| e.unique_event_name.is_some() && e.event_id.is_some()));
    let mappings = env.same_in_every_format(|f| instrument::export_event_mappings::Request::new().format(f));
    assert!(
        mappings.iter().all(|m| events.iter().any(|e| e.unique_event_name.as_deref() == Some(&m.unique_event_name)))
    );
    let instruments = env.same_in_every_format(|f| instrument::export::Request::new().format(f));
    assert!(mappings.iter().all(|m| instruments.iter().any(|i| i.instrument_name == m.form)));
    let names = env.same_in_every_format(|f| metadata::export_field_names::Request::new().format(f));
    assert!(!names.is_empty());
    let info = env.single_in_every_format(|f| project::export_info::Request::new().format(f));
    assert_eq!(info.is_longitudinal, Some(true));
    assert_eq!(info.project_id, Some(env.pid as u64));
    assert!(info.creation_time.is_some(), "{info:?}");
}

fn repeating_setup_in_every_format<A: Api>() {
    let env = Env::<A>::new("redcapr-repeating-instruments.xml");
    let setup = env.same_in_every_format(|f| repeating::export::Request::new().format(f));
    assert!(!setup.is_empty());
    assert!(setup.iter().all(|r| r.form_name.is_some() || r.event_name.is_some()), "{setup:?}");
}

fn users_roles_and_groups_in_every_format<A: Api>() {
    let env = Env::<A>::with_file("crates/redcap-cli/demo/demo-project.xml");
    let dags = env.same_in_every_format(|f| dag::export::Request::new().format(f));
    assert!(dags.len() >= 2, "{dags:?}");
    assert!(dags.iter().all(|d| d.data_access_group_id.is_some()));
    let site = dags[0].unique_group_name.clone().unwrap();
    let roles = env.same_in_every_format(|f| user_role::export::Request::new().format(f));
    let role = roles[0].unique_role_name.clone().unwrap();
    assert!(!roles[0].forms.is_empty(), "{roles:?}");
    env.emu.add_user(env.pid, User::new("coordinator").dag(site.clone()).role(role.clone())).unwrap();
    let users = env.same_in_every_format(|f| user::export::Request::new().format(f));
    let coordinator = users.iter().find(|u| u.username == "coordinator").expect("coordinator listed");
    assert_eq!(coordinator.data_access_group.as_deref(), Some(site.as_str()));
    assert_eq!(coordinator.data_access_group_id, dags[0].data_access_group_id);
    assert!(!coordinator.forms.is_empty() && !coordinator.forms_export.is_empty(), "{coordinator:?}");
    let mappings = env.same_in_every_format(|f| user_role::export_mappings::Request::new().format(f));
    let mine = mappings.iter().find(|m| m.username == "coordinator").unwrap();
    assert_eq!(mine.unique_role_name.as_deref(), Some(role.as_str()));
    let user_dags = env.same_in_every_format(|f| dag::export_mappings::Request::new().format(f));
    let mine = user_dags.iter().find(|m| m.username == "coordinator").unwrap();
    assert_eq!(mine.redcap_data_access_group.as_deref(), Some(site.as_str()));
}

fn logging_in_every_format<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let rows = r#"[{"record_id":"901","name_first":"Ada"}]"#;
    env.api.call(&record::import::Request::new(rows)).unwrap();
    let entries = env.same_in_every_format(|f| log::export::Request::new().format(f).logtype(LogType::Record));
    let mine = entries.iter().find(|e| e.record.as_deref() == Some("901")).expect("the import is logged");
    assert_eq!(mine.username, "admin");
    assert!(mine.timestamp.date.year >= 2024, "{mine:?}");
}

/// Typed rows imported in each format come back as sent.
fn typed_imports_in_every_format<A: Api>() {
    let env = Env::<A>::new("redcapr-longitudinal.xml");
    for (i, f) in FORMATS.into_iter().enumerate() {
        let num = 7 + i as u64;
        let arms = [Arm::new(num, format!("Arm {num}, {f}"))];
        assert_eq!(env.api.call(&arm::import::Request::from_rows_as(f, &arms).unwrap()).unwrap(), 1, "{f}");
        let mut e = Event::new(format!("Visit {f}"), num);
        e.custom_event_label = Some("[visit_date]".into());
        assert_eq!(env.api.call(&event::import::Request::from_rows_as(f, &[e.clone()]).unwrap()).unwrap(), 1, "{f}");
        let back = env.api.call(&event::export::Request::new().arms([num])).unwrap().into_vec();
        assert_eq!(back.len(), 1, "{f}: {back:?}");
        assert_eq!((&back[0].event_name, back[0].arm_num), (&e.event_name, num));
        assert_eq!(back[0].custom_event_label, e.custom_event_label);
        let arms_back = env.api.call(&arm::export::Request::new().arms([num])).unwrap().into_vec();
        assert_eq!(arms_back, arms, "{f}");
    }
    // The dictionary, exported and imported back in each format, is unchanged.
    let before = env.api.call(&metadata::export::Request::new()).unwrap().into_vec();
    for f in FORMATS {
        let n = env.api.call(&metadata::import::Request::from_rows_as(f, &before).unwrap()).unwrap();
        assert_eq!(n, before.len() as u64, "{f}");
        assert_eq!(env.api.call(&metadata::export::Request::new()).unwrap().into_vec(), before, "{f}");
    }
}

/// Records of the caller's own type, imported in each format, come back as sent.
fn typed_record_imports_in_every_format<A: Api>() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Person {
        record_id: String,
        name_first: String,
        #[serde(deserialize_with = "redcap::de::u64")]
        weight: u64,
    }
    let env = Env::<A>::new("redcapr-simple.xml");
    for (i, f) in FORMATS.into_iter().enumerate() {
        let people = [
            Person { record_id: format!("7{i}1"), name_first: "Ada, \"the first\"".into(), weight: 60 },
            Person { record_id: format!("7{i}2"), name_first: "Grace <&>".into(), weight: 55 },
        ];
        let request = record::import::Request::from_records_as(f, &people).unwrap();
        assert_eq!(env.api.call(&request).unwrap(), redcap::ImportOutcome::Count(2), "{f}");
        let ids = [format!("7{i}1"), format!("7{i}2")];
        let back: Vec<Person> = env
            .api
            .call(&record::export::Request::new().records(ids).fields(["record_id", "name_first", "weight"]))
            .unwrap()
            .rows_as()
            .unwrap();
        assert_eq!(back, people, "{f}");
    }
}

fn typed_group_imports<A: Api>() {
    let env = Env::<A>::with_file("crates/redcap-cli/demo/demo-project.xml");
    for f in FORMATS {
        let name = format!("Site {f}");
        let n = env.api.call(&dag::import::Request::from_rows_as(f, &[Dag::new(name.clone())]).unwrap()).unwrap();
        assert_eq!(n, 1, "{f}");
        let dags = env.api.call(&dag::export::Request::new()).unwrap().into_vec();
        let made = dags.iter().find(|d| d.data_access_group_name == name).unwrap_or_else(|| panic!("{f}: {dags:?}"));
        let unique = made.unique_group_name.clone().unwrap();
        env.emu.add_user(env.pid, User::new(format!("u_{f}"))).unwrap();
        let mut m = UserRoleMapping::new(format!("u_{f}"));
        m.data_access_group = Some(unique.clone());
        let roles = env.api.call(&user_role::export::Request::new()).unwrap();
        m.unique_role_name = roles[0].unique_role_name.clone();
        env.api.call(&user_role::import_mappings::Request::from_rows_as(f, &[m.clone()]).unwrap()).unwrap();
        let back = env.api.call(&user_role::export_mappings::Request::new()).unwrap();
        assert!(back.contains(&m), "{f}: {back:?}");
    }
}

macro_rules! for_both_clients {
    ($($name:ident),* $(,)?) => {
        mod blocking {
            $(#[test] fn $name() { super::$name::<super::Blocking>() })*
        }
        mod asynchronous {
            $(#[test] fn $name() { super::$name::<super::Async>() })*
        }
    };
}

for_both_clients!(
    dictionary_in_every_format,
    longitudinal_design_in_every_format,
    repeating_setup_in_every_format,
    users_roles_and_groups_in_every_format,
    logging_in_every_format,
    typed_imports_in_every_format,
    typed_group_imports,
    typed_record_imports_in_every_format,
);

/// A column this version does not know survives decoding in every format, and goes back on import.
#[test]
fn unknown_columns_survive() {
    let bodies = [
        (Format::Json, r#"[{"arm_num":1,"name":"Drug A","arm_color":"blue"}]"#.to_owned()),
        (Format::Csv, "arm_num,name,arm_color\n1,\"Drug A\",blue\n".to_owned()),
        (Format::Xml, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<arms><item><arm_num>1</arm_num><name>Drug A</name><arm_color>blue</arm_color></item></arms>".to_owned()),
    ];
    for (f, body) in bodies {
        let arms: Vec<Arm> = redcap::core::rows::decode(f, None, body.as_bytes()).unwrap();
        assert_eq!(arms[0].arm_num, 1);
        assert_eq!(arms[0].extra.get("arm_color").and_then(|v| v.as_str()), Some("blue"), "{f}");
        let sent = arm::import::Request::from_rows_as(f, &arms).unwrap().data;
        assert!(sent.contains("arm_color") && sent.contains("blue"), "{f}: {sent}");
        let again: Vec<Arm> = redcap::core::rows::decode(f, None, sent.as_bytes()).unwrap();
        assert_eq!(again, arms, "{f}");
    }
}

/// A value that does not fit names its row and column, with a hint.
#[test]
fn decode_errors_name_row_and_column() {
    let e = redcap::core::rows::decode::<Arm>(Format::Csv, None, b"arm_num,name\n1,a\ntwo,b\n").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("row 1") && text.contains("`arm_num`") && text.contains("`two`"), "{text}");
    assert!(text.contains("REDCap sends most values as text"), "{text}");
}
