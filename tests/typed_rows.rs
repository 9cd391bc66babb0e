//! Typed rows of fixed-shape answers, exported from the in-process emulator in json, csv and xml
//! through both clients: every format gives the same typed values.

use redcap::rows::{Field, FieldType, Validation};
use redcap::{Error, Format, Method, metadata};
use redcap_core::RetryPolicy;
use redcap_emulator::{Emulator, RunningEmulator};

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
    _emu: RunningEmulator,
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
        Env { _emu: emu, api }
    }

    /// The rows of `request` in every format, checked equal; the JSON rows are returned.
    fn same_in_every_format<M, T>(&self, request: impl Fn(Format) -> M) -> Vec<T>
    where
        M: Method<Output = redcap::core::Rows<T>>,
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

for_both_clients!(dictionary_in_every_format);
